//! A model unit as a Docker container: the bollard create body, the labels that
//! make it the cluster's, and the tar of files placed before it starts. Every
//! value comes from the [`Unit`]; nothing about a node is decided here.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::model::{Health, LogRotation, Model, Unit};
use crate::names::{LABEL_CLUSTER, LABEL_FINGERPRINT, LABEL_NODE, LABEL_ROLE, LABEL_SPEC_HASH};
use crate::secrets::{SecretFile, Secrets};
use crate::target::docker::engine::archive;

/// Labels of the cluster's network and volume.
pub fn cluster_labels(model: &Model) -> HashMap<String, String> {
    HashMap::from([(LABEL_CLUSTER.to_string(), model.names.cluster().to_string())])
}

/// The labels a unit's container carries: the cluster, its role and node, the
/// spec hash and the fingerprint it was made from.
pub fn labels(model: &Model, unit: &Unit) -> HashMap<String, String> {
    let mut l = cluster_labels(model);
    l.insert(LABEL_ROLE.to_string(), unit.role().as_str().to_string());
    l.insert(LABEL_SPEC_HASH.to_string(), unit.hash());
    l.insert(
        LABEL_FINGERPRINT.to_string(),
        serde_json::to_string(&unit.fingerprint).unwrap_or_default(),
    );
    if let Some(i) = unit.slot.node() {
        l.insert(LABEL_NODE.to_string(), i.to_string());
    }
    l
}

fn nanos(d: std::time::Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

pub fn health(h: &Health) -> HealthConfig {
    HealthConfig {
        test: Some(h.test.clone()),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(h.retries as i64),
        start_period: Some(nanos(h.start_period)),
        start_interval: Some(nanos(h.start_interval)),
    }
}

/// The unit's log rotation as the engine takes it.
pub fn log_config(logs: &LogRotation) -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some(LogRotation::DRIVER.to_string()),
        config: Some(
            logs.options()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
    }
}

/// The container to create for `unit`.
pub fn container(model: &Model, unit: &Unit) -> ContainerCreateBody {
    let ports: Vec<String> = unit
        .publish
        .iter()
        .map(|p| format!("{}/tcp", p.container_port))
        .collect();
    ContainerCreateBody {
        image: Some(unit.image.clone()),
        user: Some(format!("{}:{}", unit.user.0, unit.user.1)),
        cmd: (!unit.command.is_empty()).then(|| unit.command.clone()),
        env: (!unit.env.is_empty())
            .then(|| unit.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        exposed_ports: (!ports.is_empty()).then_some(ports),
        healthcheck: unit.health.as_ref().map(health),
        stop_signal: Some(unit.stop_signal.to_string()),
        stop_timeout: Some(unit.stop_grace.as_secs() as i64),
        labels: Some(labels(model, unit)),
        host_config: Some(HostConfig {
            binds: unit
                .volume
                .as_ref()
                .map(|(volume, path)| vec![format!("{volume}:{path}")]),
            port_bindings: (!unit.publish.is_empty()).then(|| {
                unit.publish
                    .iter()
                    .map(|p| {
                        (
                            format!("{}/tcp", p.container_port),
                            Some(vec![PortBinding {
                                host_ip: Some(p.host_ip.to_string()),
                                host_port: Some(p.host_port.to_string()),
                            }]),
                        )
                    })
                    .collect()
            }),
            restart_policy: unit.restart.then_some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            log_config: Some(log_config(&unit.logs)),
            ..Default::default()
        }),
        // On the cluster's network, where the container's name resolves (Docker's
        // embedded DNS; a rename updates it). No aliases: a replacement node must
        // never share a name with the node it replaces.
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                model.network.clone(),
                EndpointSettings::default(),
            )])),
        }),
        ..Default::default()
    }
}

/// The unit's secret files, owned by its user, mode 0400; None when it has none.
pub fn secret_files(unit: &Unit, secrets: &Secrets) -> std::io::Result<Option<Vec<u8>>> {
    let contents: Vec<(SecretFile, &[u8])> = unit
        .secrets
        .iter()
        .map(|s| (*s, secrets.value(*s).as_bytes()))
        .collect();
    files(unit, &contents)
}

/// `contents` at their secret files' paths, owned by the unit's user, mode 0400; None when
/// there are none.
pub fn files<B: AsRef<[u8]>>(
    unit: &Unit,
    contents: &[(SecretFile, B)],
) -> std::io::Result<Option<Vec<u8>>> {
    if contents.is_empty() {
        return Ok(None);
    }
    // Dated now (nginx's config for them also turns off its reuse of certificates whose
    // files look unchanged across a reload: `ssl_object_cache_inheritable off`).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let files: Vec<archive::File> = contents
        .iter()
        .map(|(s, bytes)| archive::File {
            path: s.path(),
            contents: bytes.as_ref(),
            mode: 0o400,
            uid: unit.user.0 as u64,
            gid: unit.user.1 as u64,
            mtime: now,
        })
        .collect();
    archive::tar(&files).map(Some)
}

/// The balancer's config file as a tar for `/etc/nginx/nginx.conf`.
pub fn nginx_conf(conf: &str) -> std::io::Result<Vec<u8>> {
    archive::tar(&[archive::File {
        path: "/etc/nginx/nginx.conf",
        contents: conf.as_bytes(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
    }])
}

#[cfg(test)]
mod tests {
    use super::container;
    use crate::fixtures::want;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn a_container_is_checked_every_second_while_it_starts_then_at_the_files_interval() {
        let m = want("[rollout]\nhealth_interval = 7\nhealth_timeout = 40\n");
        for unit in m.units.iter() {
            let h = container(&m, unit)
                .healthcheck
                .expect("every kept container is checked");
            assert_eq!(h.interval, Some(7 * SECOND), "{}", unit.name);
            assert_eq!(h.start_interval, Some(SECOND), "{}", unit.name);
            assert_eq!(h.start_period, Some(40 * SECOND), "{}", unit.name);
            assert_eq!(h.retries, Some(3), "{}", unit.name);
        }
    }
}
