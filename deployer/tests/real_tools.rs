//! Rendered files checked by the real tools: `nginx -t` (with the node host names
//! resolvable through a private /etc/hosts in a mount namespace) and
//! `docker-compose config -q`. Snapshots cover every strategy.
//!
//! These need Debian's `nginx` and `docker-compose` and root (for `unshare -m`);
//! `.ci/run` installs them. A missing tool fails the test: it is never skipped.

mod common;

use std::path::Path;
use std::process::Command;

use common::{example, Dir};

const STRATEGIES: [&str; 4] = ["round_robin", "least_conn", "ip_hash", "random"];

fn render(dir: &Dir, toml: &str) -> (String, String) {
    dir.write("cluster.toml", toml);
    let run = dir.run(&["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let read = |f: &str| std::fs::read_to_string(dir.path().join("generated").join(f)).unwrap();
    (read("nginx.conf"), read("docker-compose.yml"))
}

fn with_strategy(strategy: &str) -> String {
    example().replace(
        "strategy = \"round_robin\"",
        &format!("strategy = \"{strategy}\""),
    )
}

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("`{name}` is not installed: run `apt-get install {name}` (or .ci/run, which does)");
}

/// `nginx -t` with every upstream host name resolving to 127.0.0.1.
fn nginx_t(dir: &Dir, hosts: &[String]) -> std::process::Output {
    let nginx = tool("nginx");
    let mut h = String::from("127.0.0.1 localhost\n");
    for host in hosts {
        h.push_str(&format!("127.0.0.1 {host}\n"));
    }
    let hosts_file = dir.write("hosts", h);
    let conf = dir.path().join("generated/nginx.conf");
    Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount --bind {} /etc/hosts && {nginx} -t -q -c {}",
            hosts_file.display(),
            conf.display()
        ))
        .output()
        .expect("run unshare")
}

#[test]
fn nginx_accepts_the_config_for_every_strategy() {
    for strategy in STRATEGIES {
        let dir = Dir::new();
        let (nginx, _) = render(&dir, &with_strategy(strategy));
        let hosts: Vec<String> = (1..=3).map(|i| format!("demo-app-{i}")).collect();
        let out = nginx_t(&dir, &hosts);
        assert!(
            out.status.success(),
            "nginx -t rejected the {strategy} config:\n{}\n{nginx}",
            String::from_utf8_lossy(&out.stderr)
        );
        insta::assert_snapshot!(format!("nginx_{strategy}"), nginx);
    }
}

#[test]
fn nginx_fails_when_a_node_name_does_not_resolve() {
    // The check is real: with one name missing from /etc/hosts nginx refuses.
    let dir = Dir::new();
    render(&dir, &example());
    let hosts: Vec<String> = (1..=2).map(|i| format!("demo-app-{i}")).collect();
    let out = nginx_t(&dir, &hosts);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("host not found in upstream \"demo-app-3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compose_config(dir: &Dir) -> std::process::Output {
    Command::new(tool("docker-compose"))
        .args(["-f", "generated/docker-compose.yml", "config", "-q"])
        .current_dir(dir.path())
        .output()
        .expect("run docker-compose")
}

#[test]
fn docker_compose_accepts_the_file() {
    for (name, toml) in [
        ("default", example()),
        (
            "redis_and_ports",
            example()
                .replace("enabled = false", "enabled = true")
                .replace("# host_port_base = 4001", "host_port_base = 4101")
                .replace("nodes = 3 ", "nodes = 5 "),
        ),
        (
            "pooler",
            example().replace("pooler = \"none\"", "pooler = \"pgbouncer\""),
        ),
    ] {
        let dir = Dir::new();
        let (_, compose) = render(&dir, &toml);
        let out = compose_config(&dir);
        assert!(
            out.status.success(),
            "docker-compose config rejected {name}:\n{}\n{compose}",
            String::from_utf8_lossy(&out.stderr)
        );
        insta::assert_snapshot!(format!("compose_{name}"), compose);
    }
}

#[test]
fn docker_compose_sees_the_budget_and_services() {
    let dir = Dir::new();
    render(&dir, &example().replace("nodes = 3 ", "nodes = 2 "));
    let out = Command::new(tool("docker-compose"))
        .args(["-f", "generated/docker-compose.yml", "config", "--services"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut services: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    services.sort();
    assert_eq!(
        services,
        ["app-1", "app-2", "balancer", "migrate", "postgres"]
    );
    let full = Command::new(tool("docker-compose"))
        .args(["-f", "generated/docker-compose.yml", "config"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&full.stdout);
    assert!(text.contains("max_connections=100"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    // The database is never published on the host.
    let pg = text
        .split("  postgres:")
        .nth(1)
        .unwrap()
        .split("\n  ")
        .next()
        .unwrap();
    assert!(!pg.contains("ports"), "{pg}");
}

#[test]
fn docker_compose_rejects_a_broken_file() {
    // The check is real: a file compose cannot read fails.
    let dir = Dir::new();
    render(&dir, &example());
    let path = dir.path().join("generated/docker-compose.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("    image:", "    imag:")).unwrap();
    assert!(!compose_config(&dir).status.success());
}
