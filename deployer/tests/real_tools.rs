//! Rendered files checked by the real tools: `nginx -t` in the balancer image the
//! example names (the config needs nginx >= 1.27.4, which Debian bookworm's host nginx
//! is not; the nodes' names are resolved at run time, so none has to resolve here) and
//! `docker-compose config -q`. Snapshots cover every strategy.
//!
//! These need Docker with that image (`scripts/build-images.sh`) and Debian's
//! `docker-compose`; `.ci/run` provides them. A missing tool fails the test: it is never
//! skipped.

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

/// The balancer image the example cluster names.
fn balancer_image() -> String {
    let example = example();
    let at = example.find("[balancer]").expect("a [balancer] section");
    example[at..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("image = \""))
        .and_then(|r| r.split('"').next())
        .expect("the example names the balancer image")
        .to_string()
}

/// `nginx -t` on `generated/nginx.conf`, as the balancer's user in the balancer's image.
fn nginx_t(dir: &Dir) -> std::process::Output {
    let conf = dir.path().join("generated/nginx.conf");
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--user",
            "101:101",
            "--network",
            "none",
            "-v",
        ])
        .arg(format!("{}:/etc/nginx/nginx.conf:ro", conf.display()))
        .args([balancer_image().as_str(), "nginx", "-t", "-q"])
        .output()
        .expect("run docker (install docker.io, or run .ci/run)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Unable to find image")
            && !err.contains("Cannot connect to the Docker daemon"),
        "nginx -t needs Docker and the balancer image: run scripts/build-images.sh\n{err}"
    );
    out
}

#[test]
fn nginx_accepts_the_config_for_every_strategy() {
    for strategy in STRATEGIES {
        let dir = Dir::new();
        let (nginx, _) = render(&dir, &with_strategy(strategy));
        let out = nginx_t(&dir);
        assert!(
            out.status.success(),
            "nginx -t rejected the {strategy} config:\n{}\n{nginx}",
            String::from_utf8_lossy(&out.stderr)
        );
        insta::assert_snapshot!(format!("nginx_{strategy}"), nginx);
    }
}

#[test]
fn nginx_refuses_a_broken_config() {
    // The check is real: a config nginx cannot read is refused, naming the line.
    let dir = Dir::new();
    let (nginx, _) = render(&dir, &example());
    dir.write(
        "generated/nginx.conf",
        nginx.replace("zone app_nodes 256k;", "zone app_nodes 256k"),
    );
    let out = nginx_t(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nginx.conf:"), "{err}");
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
