//! Rendering `templates/` into `generated/`: the nginx config and a
//! docker-compose file, from a validated spec only.

use std::path::{Component, Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::{ClusterSpec, LogFormat};
use crate::names::{self, Names};

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

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub name: &'static str,
    pub contents: String,
}

/// The one template environment: strict undefined, no escaping, newlines kept.
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
        // A JSON string is a valid YAML double-quoted scalar: any text becomes
        // one safe value, never a new key or document.
        env.add_filter("yaml", |v: String| {
            serde_json::to_string(&v).unwrap_or_else(|_| "\"\"".to_string())
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

    /// nginx.conf for the given upstream node host names (the applier renders
    /// intermediate configs during a rollout; `render_all` the final one).
    pub fn nginx(&self, spec: &ClusterSpec, nodes: &[String]) -> Result<String, RenderError> {
        let b = &spec.balancer;
        self.render(
            "nginx.conf.j2",
            minijinja::context! {
                cluster => spec.name.as_str(),
                nodes => nodes,
                strategy => b.strategy.as_str(),
                app_port => spec.app.port,
                listen_port => names::BALANCER_LISTEN_PORT,
                max_fails => b.max_fails,
                fail_timeout => b.fail_timeout,
                keepalive => b.keepalive,
                connect_timeout => b.connect_timeout,
                read_timeout => b.read_timeout,
                worker_connections => b.worker_connections,
                next_upstream_tries => nodes.len().clamp(1, 3),
            },
        )
    }

    pub fn compose(&self, spec: &ClusterSpec, secrets_dir: &str) -> Result<String, RenderError> {
        let n = Names::of(spec);
        let nodes: Vec<_> = (1..=spec.app.nodes)
            .map(|i| {
                minijinja::context! {
                    service => format!("app-{i}"),
                    container => n.node(i),
                    host_port => spec.app.host_port_base.map(|b| b as u32 + i - 1),
                }
            })
            .collect();
        self.render(
            "docker-compose.yml.j2",
            minijinja::context! {
                cluster => spec.name.as_str(),
                secrets_dir => secrets_dir,
                network => n.network(),
                volume => n.volume(),
                stop_grace_seconds => spec.rollout.stop_grace_seconds,
                db => minijinja::context! {
                    image => spec.database.image.as_str(),
                    container => n.postgres(),
                    user => spec.database.user.as_str(),
                    name => spec.database.name.as_str(),
                    max_connections => spec.database.max_connections,
                    superuser_reserved_connections => spec.database.superuser_reserved_connections,
                },
                redis => spec.redis.as_ref().map(|r| minijinja::context! {
                    image => r.image.as_str(),
                    container => n.redis(),
                }),
                app => minijinja::context! {
                    image => spec.app.image.as_str(),
                    user => names::APP_USER,
                    port => spec.app.port,
                    pool_size => spec.app.pool_size,
                    job_workers => spec.app.job_workers,
                    log_format => match spec.app.log_format { LogFormat::Json => "json", LogFormat::Text => "text" },
                    env => &spec.app.env,
                    healthcheck => app_healthcheck(spec.app.port),
                },
                nodes => nodes,
                lb => minijinja::context! {
                    image => spec.balancer.image.as_str(),
                    container => n.balancer(),
                    bind => spec.balancer.bind.to_string(),
                    port => spec.balancer.port,
                    listen_port => names::BALANCER_LISTEN_PORT,
                    healthcheck => http_probe(names::BALANCER_LISTEN_PORT, "/lb/health"),
                },
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
        let n = Names::of(spec);
        let nodes: Vec<String> = (1..=spec.app.nodes).map(|i| n.node(i)).collect();
        Ok(vec![
            Rendered {
                name: OUTPUTS[0].0,
                contents: self.nginx(spec, &nodes)?,
            },
            Rendered {
                name: OUTPUTS[1].0,
                contents: self.compose(spec, secrets_dir)?,
            },
        ])
    }
}

/// A shell probe (bash's /dev/tcp: no curl in slim images) that succeeds when
/// `GET path` on the local port answers 200.
pub fn http_probe(port: u16, path: &str) -> String {
    format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"
    )
}

/// The node's health check: ready means the database answers.
pub fn app_healthcheck(port: u16) -> String {
    http_probe(port, "/api/ready")
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
