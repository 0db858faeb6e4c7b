//! Rendering `templates/` into `generated/`: the nginx config and a
//! docker-compose file, from a validated spec only.

use std::path::{Component, Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::Choice;
use crate::config::ClusterSpec;
use crate::model::{self, Images, LogRotation, Model, Unit, Upstream};
use crate::names::{self, Role, Slot};
use crate::secrets::{self, SecretFile};

/// The templates compiled into the binary, used when no `templates/` directory
/// sits next to cluster.toml.
const BUILTIN: &[(&str, &str)] = &[
    (
        "nginx.conf.j2",
        include_str!("../../templates/nginx.conf.j2"),
    ),
    (
        "docker-compose.yml.j2",
        include_str!("../../templates/docker-compose.yml.j2"),
    ),
];

/// Output file name → template name.
pub const OUTPUTS: &[(&str, &str)] = &[
    ("nginx.conf", "nginx.conf.j2"),
    ("docker-compose.yml", "docker-compose.yml.j2"),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot load template {name}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot read template directory {}", dir.display())]
    TemplateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `s` as a YAML double-quoted scalar (a JSON string is one) with `$` doubled
/// for compose: any text becomes one safe value, never a new key or document.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(&s.replace('$', "$$")).unwrap_or_else(|_| "\"\"".to_string())
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub name: &'static str,
    pub contents: String,
}

/// The one template environment: strict undefined, no escaping, newlines kept.
#[derive(Clone)]
pub struct Templates {
    env: Environment<'static>,
    pub source: String,
}

impl Templates {
    /// Templates from `dir` when it exists, else the built-in copies.
    pub fn load(dir: Option<&Path>) -> Result<Templates, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Compose interpolates `$` everywhere: `$$` is a literal dollar.
        env.add_filter("yaml", |v: String| yaml_string(&v));
        env.add_filter("yaml_list", |v: Vec<String>| {
            let items: Vec<String> = v.iter().map(|s| yaml_string(s)).collect();
            format!("[{}]", items.join(", "))
        });
        let mut source = "built-in templates".to_string();
        for (name, builtin) in BUILTIN {
            let text = match dir {
                Some(dir) if dir.is_dir() => {
                    source = dir.display().to_string();
                    let path = dir.join(name);
                    std::fs::read_to_string(&path).map_err(|source| RenderError::TemplateDir {
                        dir: dir.to_path_buf(),
                        source,
                    })?
                }
                _ => builtin.to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|source| RenderError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Templates { env, source })
    }

    fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, RenderError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|source| RenderError::Template {
                name: name.to_string(),
                source,
            })
    }

    /// nginx.conf for the given upstream (the applier renders intermediate
    /// configs while the cluster changes size; `render_all` the final one).
    pub fn nginx(&self, spec: &ClusterSpec, upstream: &Upstream) -> Result<String, RenderError> {
        let b = &spec.balancer();
        self.render(
            "nginx.conf.j2",
            minijinja::context! {
                cluster => spec.name().as_str(),
                upstream_names => &upstream.names,
                resolver => upstream.resolver.to_string(),
                valid => upstream.valid.as_secs().max(1),
                strategy => b.strategy().as_str(),
                app_port => upstream.port,
                listen_port => names::BALANCER_LISTEN_PORT,
                max_fails => b.max_fails(),
                fail_timeout => b.fail_timeout().as_secs(),
                keepalive => b.keepalive(),
                connect_timeout => b.connect_timeout().as_secs(),
                read_timeout => b.read_timeout().as_secs(),
                worker_connections => b.worker_connections(),
                access_log => b.access_log().as_str(),
                // A name can stand for many nodes: the count is not known here.
                next_upstream_tries => 3,
                tls => b.tls().map(|t| minijinja::context! {
                    listen_port => names::BALANCER_TLS_LISTEN_PORT,
                    // Where the redirect sends clients: the published HTTPS port (443 unsaid).
                    port_suffix => if t.https_port() == 443 { String::new() } else { format!(":{}", t.https_port()) },
                    certificate => SecretFile::TlsCertificate.path(),
                    key => SecretFile::TlsKey.path(),
                    hsts_max_age => t.hsts_max_age(),
                    sha256 => &t.certificate().sha256,
                    names => t.certificate().names.join(", "),
                    expires => t.certificate().expiry_date(),
                }),
            },
        )
    }

    /// The compose file: every unit of the model as a compose service, so the
    /// compose path runs exactly what `deployer apply` runs. `secrets_dir` is
    /// how the file refers to the secrets directory.
    pub fn compose(&self, model: &Model, secrets_dir: &str) -> Result<String, RenderError> {
        let node_services: Vec<String> = model.nodes().map(|u| service_name(u.slot)).collect();
        let mut units: Vec<&Unit> = model.units.iter().collect();
        // The one-off migration runs after PostgreSQL, before the nodes.
        let at = units
            .iter()
            .position(|u| u.role() == Role::App)
            .unwrap_or(units.len());
        units.insert(at, &model.migrate);
        let services: Vec<minijinja::Value> = units
            .into_iter()
            .map(|u| {
                let depends_on: Vec<(String, &str)> = match u.slot {
                    Slot::Migrate => vec![("postgres".into(), "service_healthy")],
                    Slot::Pooler(_) => vec![("postgres".into(), "service_healthy")],
                    Slot::Node(_) => {
                        let mut d = vec![("migrate".to_string(), "service_completed_successfully")];
                        if model.unit(Slot::Redis).is_some() {
                            d.push(("redis".into(), "service_healthy"));
                        }
                        if model.units.iter().any(|u| u.role() == Role::Pooler) {
                            d.push(("pooler".into(), "service_healthy"));
                        }
                        d
                    }
                    Slot::Balancer => node_services
                        .iter()
                        .map(|s| (s.clone(), "service_healthy"))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut volumes = Vec::new();
                if let Some((_, path)) = &u.volume {
                    volumes.push(format!("pgdata:{path}"));
                }
                if u.slot == Slot::Balancer {
                    volumes.push("./nginx.conf:/etc/nginx/nginx.conf:ro".to_string());
                }
                minijinja::context! {
                    service => service_name(u.slot),
                    // The migration is a one-off: compose names it itself.
                    container => (u.slot != Slot::Migrate).then(|| u.name.clone()),
                    image => &u.image,
                    user => format!("{}:{}", u.user.0, u.user.1),
                    command => &u.command,
                    environment => &u.env,
                    secrets => u.secrets.iter().map(|s| s.file_name()).collect::<Vec<_>>(),
                    ports => (!u.publish.is_empty()).then(|| u.publish.iter().map(|p| format!("{}:{}:{}", p.host_ip, p.host_port, p.container_port)).collect::<Vec<_>>()),
                    volumes => volumes,
                    health => u.health.as_ref().map(|h| minijinja::context! {
                        test => &h.test,
                        interval => compose_duration(h.interval),
                        timeout => compose_duration(h.timeout),
                        retries => h.retries,
                        start_period => compose_duration(h.start_period),
                    }),
                    stop_signal => u.stop_signal,
                    stop_grace_period => compose_duration(u.stop_grace),
                    restart => if u.restart { "unless-stopped" } else { "no" },
                    depends_on => depends_on,
                    log_driver => LogRotation::DRIVER,
                    log_options => u.logs.options(),
                }
            })
            .collect();
        // The secret files some service mounts (the pooler's only with a pooler).
        let secrets: Vec<minijinja::Value> = SecretFile::ALL
            .iter()
            .filter(|s| {
                let all = model.units.iter().chain([&model.migrate]);
                all.flat_map(|u| &u.secrets).any(|f| f == *s)
            })
            .map(|s| {
                minijinja::context! {
                    name => s.file_name(),
                    file => format!("{secrets_dir}/{}/{}", secrets::COMPOSE_DIR, s.file_name()),
                }
            })
            .collect();
        self.render(
            "docker-compose.yml.j2",
            minijinja::context! {
                cluster => model.names.cluster(),
                secrets_dir => secrets_dir,
                network => &model.network,
                volume => &model.volume,
                services => services,
                secrets => secrets,
            },
        )
    }

    /// Every output file for the spec; `secrets_dir` is how the compose file
    /// refers to the secrets directory (relative to the output directory).
    pub fn render_all(
        &self,
        spec: &ClusterSpec,
        secrets_dir: &str,
    ) -> Result<Vec<Rendered>, RenderError> {
        let nginx = self.nginx(spec, &model::upstream(spec))?;
        let model = model::model(spec, &Images::refs(spec), nginx.clone());
        Ok(vec![
            Rendered {
                name: OUTPUTS[0].0,
                contents: nginx,
            },
            Rendered {
                name: OUTPUTS[1].0,
                contents: self.compose(&model, secrets_dir)?,
            },
        ])
    }
}

/// The compose service of a slot: `postgres`, `app-2`, `balancer`, …
fn service_name(slot: Slot) -> String {
    match slot {
        Slot::Node(i) | Slot::OldNode(i) | Slot::NewNode(i) => format!("app-{i}"),
        Slot::Postgres => "postgres".into(),
        Slot::Redis => "redis".into(),
        Slot::Pooler(_) => "pooler".into(),
        Slot::Balancer => "balancer".into(),
        Slot::Migrate => "migrate".into(),
    }
}

/// `1s`, `500ms`: compose's duration syntax.
fn compose_duration(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Writes each file that changed through a temp file and a rename, so a reader
/// never sees half a file; unchanged files are left alone.
pub fn write_all(out: &Path, files: &[Rendered]) -> Result<(), RenderError> {
    std::fs::create_dir_all(out).map_err(|source| RenderError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    for f in files {
        let path = out.join(f.name);
        if std::fs::read_to_string(&path).is_ok_and(|s| s == f.contents) {
            continue;
        }
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::NamedTempFile::new_in(out)?;
            std::io::Write::write_all(&mut tmp, f.contents.as_bytes())?;
            let tmp_path = tmp.into_temp_path();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o644))?;
            }
            tmp_path.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|source| RenderError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// A file in `out` that differs from what would be rendered.
#[derive(Debug, Clone)]
pub struct Drift {
    pub name: &'static str,
    pub missing: bool,
    pub diff: String,
}

/// Compares the rendered files with what `out` holds; empty when they match.
pub fn check(out: &Path, files: &[Rendered]) -> Vec<Drift> {
    files
        .iter()
        .filter_map(|f| {
            let path = out.join(f.name);
            let current = std::fs::read_to_string(&path);
            let (old, missing) = match &current {
                Ok(s) if *s == f.contents => return None,
                Ok(s) => (s.as_str(), false),
                Err(_) => ("", true),
            };
            let diff = similar::TextDiff::from_lines(old, &f.contents)
                .unified_diff()
                .context_radius(2)
                .header(
                    &format!("{} (on disk)", path.display()),
                    &format!("{} (from cluster.toml)", path.display()),
                )
                .to_string();
            Some(Drift {
                name: f.name,
                missing,
                diff,
            })
        })
        .collect()
}

/// `to` relative to `from` (both made absolute against the current directory),
/// e.g. `generated` → `.deployer/secrets` gives `../.deployer/secrets`.
pub fn relative_path(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| -> Vec<String> {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    parts.pop();
                }
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        parts
    };
    let (f, t) = (abs(from), abs(to));
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out: Vec<String> = vec!["..".to_string(); f.len() - common];
    out.extend(t[common..].iter().cloned());
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_line_follows_the_file() {
        let t = Templates::load(None).unwrap();
        for (value, line) in [
            (
                "sampled",
                "access_log /dev/stdout cluster buffer=64k flush=1s if=$log_this;",
            ),
            (
                "buffered",
                "access_log /dev/stdout cluster buffer=64k flush=1s;",
            ),
            ("unbuffered", "access_log /dev/stdout cluster;"),
            ("off", "access_log off;"),
        ] {
            let spec = crate::fixtures::spec(&format!("[balancer]\naccess_log = \"{value}\"\n"));
            let conf = t.nginx(&spec, &model::upstream(&spec)).unwrap();
            let http_level: Vec<&str> = conf
                .lines()
                .filter(|l| l.starts_with("    access_log"))
                .map(str::trim)
                .collect();
            assert_eq!(http_level, [line], "{value}");
        }
    }

    #[test]
    fn metrics_and_readiness_are_not_served_through_the_balancer() {
        let t = Templates::load(None).unwrap();
        let spec = crate::fixtures::spec("");
        let conf = t.nginx(&spec, &model::upstream(&spec)).unwrap();
        for path in ["/metrics", "/api/ready"] {
            let at = conf
                .find(&format!("location = {path} {{"))
                .unwrap_or_else(|| panic!("a {path} location"));
            assert!(
                conf[at..]
                    .lines()
                    .take(4)
                    .any(|l| l.trim() == "return 404;"),
                "{conf}"
            );
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/a/generated"), Path::new("/a/.deployer/secrets")),
            "../.deployer/secrets"
        );
        assert_eq!(relative_path(Path::new("/a"), Path::new("/a/b")), "b");
        assert_eq!(
            relative_path(Path::new("/a/x/y"), Path::new("/a/b")),
            "../../b"
        );
    }
}
