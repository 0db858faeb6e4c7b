//! The Docker engine, through bollard: the only module that talks to it.
//! Small typed operations; the applier composes them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HealthStatusEnum};
use bollard::query_parameters as q;
use bollard::Docker;
use futures_util::StreamExt;

pub mod archive;
mod psql;

pub use psql::Psql;

use crate::names::LABEL_CLUSTER;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine (is dockerd running? try `docker info`)")]
    Connect(#[source] bollard::errors::Error),
    #[error("{op} failed")]
    Api {
        op: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{container} did not become healthy within {seconds}s: {reason}\n--- last log lines of {container} ---\n{logs}")]
    Unhealthy {
        container: String,
        seconds: u64,
        reason: String,
        logs: String,
    },
    #[error("`{cmd}` in {container} exited with {code}: {output}")]
    Exec {
        container: String,
        cmd: String,
        code: i64,
        output: String,
    },
    #[error("{container} exited with {code}\n--- last log lines of {container} ---\n{logs}")]
    Exited {
        container: String,
        code: i64,
        logs: String,
    },
}

pub type Result<T> = std::result::Result<T, EngineError>;

fn api(op: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
    let op = op.into();
    move |source| EngineError::Api { op, source }
}

/// Whether a bollard error is the engine's 404.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
}

impl Engine {
    /// Connects with the local defaults (DOCKER_HOST or the unix socket) and
    /// negotiates the API version, so older engines (e.g. 20.10, API 1.41) work.
    pub async fn connect() -> Result<Engine> {
        Engine::connect_to(None).await
    }

    /// Connects to `address` (the forms `DOCKER_HOST` takes: `unix://`,
    /// `tcp://` — with TLS when `DOCKER_TLS_VERIFY` is set, certificates from
    /// `DOCKER_CERT_PATH` —, `http(s)://`), or as [`Engine::connect`] does.
    pub async fn connect_to(address: Option<&str>) -> Result<Engine> {
        let docker = match address {
            Some(a) => Docker::connect_with_host(a),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(EngineError::Connect)?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(EngineError::Connect)?;
        docker.ping().await.map_err(EngineError::Connect)?;
        Ok(Engine { docker })
    }

    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspecting image {image}"))(e)),
        }
    }

    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerInspectResponse>> {
        match self
            .docker
            .inspect_container(name, None::<q::InspectContainerOptions>)
            .await
        {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspecting {name}"))(e)),
        }
    }

    /// Containers carrying all of `labels` (`key=value`), running or not.
    pub async fn containers_with(
        &self,
        labels: &[String],
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), labels.to_vec());
        let opts = q::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(api("listing containers"))
    }

    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let opts = q::CreateContainerOptionsBuilder::default()
            .name(name)
            .build();
        let r = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(api(format!("creating {name}")))?;
        Ok(r.id)
    }

    pub async fn start(&self, name: &str) -> Result<()> {
        self.docker
            .start_container(name, None::<q::StartContainerOptions>)
            .await
            .map_err(api(format!("starting {name}")))
    }

    /// SIGTERM (or the image's stop signal), then SIGKILL after `grace`.
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        let opts = q::StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("stopping {name}"))(e)),
        }
    }

    pub async fn remove(&self, name: &str) -> Result<()> {
        let opts = q::RemoveContainerOptionsBuilder::default()
            .force(true)
            .build();
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("removing {name}"))(e)),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let opts = q::RenameContainerOptionsBuilder::default().name(to).build();
        self.docker
            .rename_container(from, opts)
            .await
            .map_err(api(format!("renaming {from} to {to}")))
    }

    /// Extracts a tar archive into the container's filesystem at `/`.
    pub async fn upload(&self, name: &str, tar: Vec<u8>) -> Result<()> {
        let opts = q::UploadToContainerOptionsBuilder::default()
            .path("/")
            .build();
        self.docker
            .upload_to_container(name, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(api(format!("copying files into {name}")))
    }

    /// Reads one file out of a container, if it exists.
    pub async fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let opts = q::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(name, Some(opts));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => tar.extend_from_slice(&b),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(api(format!("reading {path} from {name}"))(e)),
            }
        }
        Ok(archive::first_file(&tar))
    }

    /// Runs a command in a running container; returns (exit code, output).
    pub async fn exec(
        &self,
        name: &str,
        cmd: &[&str],
        user: Option<&str>,
        env: &[String],
    ) -> Result<(i64, String)> {
        let what = format!("running `{}` in {name}", cmd.join(" "));
        let exec = self
            .docker
            .create_exec(
                name,
                bollard::models::ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    user: user.map(str::to_string),
                    env: (!env.is_empty()).then(|| env.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(what.clone()))?;
        let mut output = String::new();
        if let bollard::exec::StartExecResults::Attached {
            output: mut out, ..
        } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(api(what.clone()))?
        {
            while let Some(chunk) = out.next().await {
                match chunk {
                    Ok(c) => output.push_str(&c.to_string()),
                    Err(e) => return Err(api(what.clone())(e)),
                }
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(api(what))?;
        Ok((inspect.exit_code.unwrap_or(-1), output))
    }

    /// Like [`Engine::exec`], but a non-zero exit is an error.
    pub async fn exec_ok(&self, name: &str, cmd: &[&str], user: Option<&str>) -> Result<String> {
        let (code, output) = self.exec(name, cmd, user, &[]).await?;
        if code != 0 {
            return Err(EngineError::Exec {
                container: name.to_string(),
                cmd: cmd.join(" "),
                code,
                output: output.trim().to_string(),
            });
        }
        Ok(output)
    }

    /// The last `n` lines the container wrote.
    pub async fn logs(&self, name: &str, n: usize) -> String {
        let opts = q::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(opts));
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
        }
        out.trim_end().to_string()
    }

    /// Waits until the container's health check passes (or, without one, until it
    /// runs). Fails early when it exits, with its last log lines.
    ///
    /// Besides reading Docker's health status (which only changes once per check
    /// interval), it runs the same check itself every 200 ms, so a container that
    /// is ready is used within a fraction of a second.
    pub async fn wait_healthy(&self, name: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last_probe = String::from("no health check result yet");
        loop {
            let c = self.inspect(name).await?;
            let probe: Option<Vec<String>> = c
                .as_ref()
                .and_then(|c| c.config.as_ref())
                .and_then(|c| c.healthcheck.as_ref())
                .and_then(|h| h.test.clone())
                .and_then(|t| match t.first().map(String::as_str) {
                    Some("CMD") => Some(t[1..].to_vec()),
                    Some("CMD-SHELL") => {
                        Some(vec!["/bin/sh".into(), "-c".into(), t[1..].join(" ")])
                    }
                    _ => None,
                });
            let state = c.as_ref().and_then(|c| c.state.clone());
            let Some(state) = state else {
                return Err(EngineError::Unhealthy {
                    container: name.into(),
                    seconds: timeout.as_secs(),
                    reason: "the container is gone".into(),
                    logs: String::new(),
                });
            };
            if state.running != Some(true) {
                return Err(EngineError::Unhealthy {
                    container: name.into(),
                    seconds: timeout.as_secs(),
                    reason: format!(
                        "it exited with code {}",
                        state.exit_code.unwrap_or_default()
                    ),
                    logs: self.logs(name, 20).await,
                });
            }
            match state.health {
                None => return Ok(()),
                Some(h) => {
                    if h.status == Some(HealthStatusEnum::HEALTHY) {
                        return Ok(());
                    }
                    if let Some(r) = h.log.as_ref().and_then(|l| l.last()) {
                        last_probe = format!(
                            "last probe exited {}: {}",
                            r.exit_code.unwrap_or_default(),
                            r.output.as_deref().unwrap_or("").trim()
                        );
                    }
                    if let Some(cmd) = &probe {
                        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                        // The container's own user runs the check, as Docker would.
                        if let Ok((0, _)) = self.exec(name, &args, None, &[]).await {
                            return Ok(());
                        }
                    }
                }
            }
            if start.elapsed() > timeout {
                return Err(EngineError::Unhealthy {
                    container: name.into(),
                    seconds: timeout.as_secs(),
                    reason: last_probe,
                    logs: self.logs(name, 20).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for a container to exit; an exit code other than 0 is an error.
    pub async fn wait_exit(&self, name: &str) -> Result<()> {
        let mut stream = self
            .docker
            .wait_container(name, None::<q::WaitContainerOptions>);
        let mut code = 0;
        while let Some(r) = stream.next().await {
            match r {
                Ok(w) => code = w.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(api(format!("waiting for {name}"))(e)),
            }
        }
        if code != 0 {
            return Err(EngineError::Exited {
                container: name.into(),
                code,
                logs: self.logs(name, 30).await,
            });
        }
        Ok(())
    }

    /// The network called `name`, and whether it carries `cluster`'s label.
    pub async fn network(&self, name: &str, cluster: &str) -> Result<Presence<OwnedNetwork>> {
        match self
            .docker
            .inspect_network(name, None::<q::InspectNetworkOptions>)
            .await
        {
            // The engine also resolves IDs: only the exact name counts.
            Ok(n) if n.name.as_deref() != Some(name) => Ok(Presence::Absent),
            Ok(n) if labelled(n.labels.as_ref(), cluster) => Ok(Presence::Owned(OwnedNetwork {
                name: name.to_string(),
                id: n.id.unwrap_or_else(|| name.to_string()),
            })),
            Ok(_) => Ok(Presence::Foreign),
            Err(e) if is_not_found(&e) => Ok(Presence::Absent),
            Err(e) => Err(api(format!("inspecting network {name}"))(e)),
        }
    }

    pub async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        self.docker
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(api(format!("creating network {name}")))
    }

    /// Removes a network [`Engine::network`] found carrying the cluster's label, by its
    /// id: one created under the same name since is not touched.
    pub async fn remove_network(&self, network: OwnedNetwork) -> Result<()> {
        match self.docker.remove_network(&network.id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("removing network {}", network.name))(e)),
        }
    }

    /// The volume called `name`, and whether it carries `cluster`'s label.
    pub async fn volume(&self, name: &str, cluster: &str) -> Result<Presence<OwnedVolume>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) if labelled(Some(&v.labels), cluster) => Ok(Presence::Owned(OwnedVolume {
                name: name.to_string(),
                password_check: v.labels.get(crate::names::LABEL_PASSWORD_CHECK).cloned(),
            })),
            Ok(_) => Ok(Presence::Foreign),
            Err(e) if is_not_found(&e) => Ok(Presence::Absent),
            Err(e) => Err(api(format!("inspecting volume {name}"))(e)),
        }
    }

    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        self.docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(api(format!("creating volume {name}")))
    }

    /// Removes a volume [`Engine::volume`] found carrying the cluster's label.
    pub async fn remove_volume(&self, volume: OwnedVolume) -> Result<()> {
        match self
            .docker
            .remove_volume(&volume.name, None::<q::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("removing volume {}", volume.name))(e)),
        }
    }
}

/// Whether `labels` has `io.deployer.cluster=<cluster>`.
fn labelled(labels: Option<&HashMap<String, String>>, cluster: &str) -> bool {
    labels
        .and_then(|l| l.get(LABEL_CLUSTER))
        .map(String::as_str)
        == Some(cluster)
}

/// What the engine has under the name of a cluster's network or volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Presence<T> {
    /// Nothing by that name.
    #[default]
    Absent,
    /// It carries the cluster's label: the deployer made it, and may remove it.
    Owned(T),
    /// Something else has the name: no cluster label, or another cluster's.
    Foreign,
}

impl<T> Presence<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Presence::Absent)
    }
    pub fn is_owned(&self) -> bool {
        matches!(self, Presence::Owned(_))
    }
    pub fn is_foreign(&self) -> bool {
        matches!(self, Presence::Foreign)
    }
    /// The owned object, if it is one.
    pub fn owned(self) -> Option<T> {
        match self {
            Presence::Owned(t) => Some(t),
            _ => None,
        }
    }
    /// "absent", "owned" or "foreign", as `deployer status` shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Presence::Absent => "absent",
            Presence::Owned(_) => "owned",
            Presence::Foreign => "foreign",
        }
    }
}

/// A network seen carrying the cluster's label. Only [`Engine::network`] makes one,
/// so [`Engine::remove_network`] cannot be handed a network the deployer did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNetwork {
    name: String,
    id: String,
}

impl OwnedNetwork {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A volume seen carrying the cluster's label. Only [`Engine::volume`] makes one,
/// so [`Engine::remove_volume`] cannot be handed a volume the deployer did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVolume {
    name: String,
    /// The password check it was created with (none on a volume older than the label).
    pub password_check: Option<String>,
}

impl OwnedVolume {
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_own_label_makes_an_object_owned() {
        let l = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(labelled(Some(&l(&[(LABEL_CLUSTER, "demo")])), "demo"));
        assert!(!labelled(None, "demo"));
        assert!(!labelled(Some(&l(&[])), "demo"));
        assert!(!labelled(Some(&l(&[(LABEL_CLUSTER, "other")])), "demo"));
        assert!(!labelled(Some(&l(&[("cluster", "demo")])), "demo"));
    }
}
