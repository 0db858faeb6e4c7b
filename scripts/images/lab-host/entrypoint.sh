#!/bin/sh
# Entry point of a lab host (scripts/swarm-lab): clears the runtime state a killed engine left,
# writes daemon.json, starts the registry forwarder and execs dockerd.
#
# Environment (set by scripts/swarm-lab):
#   LAB_REGISTRY_NAME     host:port of the lab registry on the lab network (trusted as insecure)
#   LAB_REGISTRY_PORT     also reach it on 127.0.0.1:PORT inside this host (same port as outside)
#   LAB_STORAGE_DRIVER    dockerd storage driver (default: overlay2 where an overlay mount works
#                         on /var/lib/docker, else vfs)
set -eu

log() { echo "[lab-host] $*" >&2; }

# A `docker kill` leaves pid files and sockets behind; the processes they name are gone.
rm -rf /var/run/docker.pid /var/run/docker /var/run/containerd

# cgroup v1: the machine's hierarchy is bind-mounted read-write; the engine puts its containers
# under its own cgroup (a relative cgroup-parent), so they count in this host's container and
# the outer engine removes them with it.
# cgroup v2 (unified hierarchy): the container has its own cgroup namespace; move this shell
# into a leaf cgroup and enable every controller for the engine's children, as the official
# docker:dind image does (not tried on this project's machines, which run cgroup v1).
cgroup_parent='"cgroup-parent": "lab",'
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cgroup_parent=""
    log "cgroup v2: nesting"
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
        >/sys/fs/cgroup/cgroup.subtree_control
elif [ ! -w /sys/fs/cgroup/cpuset ]; then
    # access(2) reports EROFS: without the rw bind mount inner containers fail with
    # "mkdir /sys/fs/cgroup/cpuset/docker: read-only file system".
    log "ERROR: /sys/fs/cgroup/cpuset is read-only; run the host with -v /sys/fs/cgroup:/sys/fs/cgroup:rw"
    exit 1
fi

# overlay2 needs an overlay mount on /var/lib/docker (a volume, so not itself on overlayfs);
# vfs works everywhere but copies every layer in full.
driver="${LAB_STORAGE_DRIVER:-}"
if [ -z "$driver" ]; then
    probe=/var/lib/docker/.overlay-probe
    rm -rf "$probe"
    mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
    if mount -t overlay overlay \
        -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
        umount "$probe/merged"
        driver=overlay2
    else
        driver=vfs
    fi
    rm -rf "$probe"
fi
log "storage driver $driver"

mkdir -p /etc/docker
insecure=""
if [ -n "${LAB_REGISTRY_NAME:-}" ]; then
    insecure="\"$LAB_REGISTRY_NAME\""
fi
cat >/etc/docker/daemon.json <<JSON
{
  $cgroup_parent
  "storage-driver": "$driver",
  "insecure-registries": [$insecure],
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "2" }
}
JSON

if [ -n "${LAB_REGISTRY_NAME:-}" ] && [ -n "${LAB_REGISTRY_PORT:-}" ]; then
    # 127.0.0.0/8 registries are insecure by default, so this needs no daemon.json entry.
    socat "TCP-LISTEN:$LAB_REGISTRY_PORT,bind=127.0.0.1,fork,reuseaddr" \
        "TCP:$LAB_REGISTRY_NAME" &
fi

exec dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 --tls=false "$@"
