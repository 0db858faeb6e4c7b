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

/// The example with HTTPS: a self-signed certificate for localhost made now, and its key.
fn with_https(dir: &Dir) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    dir.write("tls/cert.pem", cert.pem());
    let key_file = dir.write("tls/key.pem", key.serialize_pem());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    example().replace(
        "[balancer]\n",
        "[balancer]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n",
    )
}

#[test]
fn the_https_config_passes_nginx_t_and_docker_compose_with_the_key_outside_generated() {
    let dir = Dir::new();
    let toml = with_https(&dir);
    let (nginx, compose) = render(&dir, &toml);
    // nginx -t loads the certificate and key from where both paths place them.
    let secrets = dir.path().join(".deployer/secrets/compose");
    let conf = dir.path().join("generated/nginx.conf");
    let out = Command::new("docker")
        .args(["run", "--rm", "--user", "101:101", "--network", "none"])
        .arg("-v")
        .arg(format!("{}:/etc/nginx/nginx.conf:ro", conf.display()))
        .arg("-v")
        .arg(format!(
            "{}:/run/secrets/tls_cert:ro",
            secrets.join("tls_cert").display()
        ))
        .arg("-v")
        .arg(format!(
            "{}:/run/secrets/tls_key:ro",
            secrets.join("tls_key").display()
        ))
        .args([balancer_image().as_str(), "nginx", "-t", "-q"])
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "nginx -t rejected the HTTPS config:\n{}\n{nginx}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "listen 8443 ssl;",
        "http2 on;",
        "ssl_certificate /run/secrets/tls_cert;",
        "ssl_certificate_key /run/secrets/tls_key;",
        "return 308 https://$host:4443$request_uri;",
        "add_header Strict-Transport-Security $hsts always;",
        "ssl_object_cache_inheritable off;",
    ] {
        assert!(nginx.contains(line), "{line} missing:\n{nginx}");
    }
    // docker-compose reads it; both ports are published, the key is a compose secret.
    let out = compose_config(&dir);
    assert!(
        out.status.success(),
        "docker-compose config rejected the HTTPS file:\n{}\n{compose}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(compose.contains("\"127.0.0.1:4000:8080\""), "{compose}");
    assert!(compose.contains("\"127.0.0.1:4443:8443\""), "{compose}");
    assert!(
        compose.contains("  tls_key:\n    file: \"../.deployer/secrets/compose/tls_key\""),
        "{compose}"
    );
    // The key is nowhere in generated/.
    let key = std::fs::read_to_string(dir.path().join("tls/key.pem")).unwrap();
    let body = key.lines().nth(1).unwrap();
    for f in ["nginx.conf", "docker-compose.yml"] {
        let text = std::fs::read_to_string(dir.path().join("generated").join(f)).unwrap();
        assert!(!text.contains(body), "the key is in generated/{f}");
    }
    // `validate` shows what the certificate covers.
    let run = dir.run(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("covers       localhost, 127.0.0.1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("https://127.0.0.1:4443/"),
        "{}",
        run.stdout
    );
}
