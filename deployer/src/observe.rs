//! The observed state: what of the cluster runs on the engine now, found by its
//! labels. Objects without the cluster's label are never looked at.

use bollard::models::ContainerSummaryStateEnum;

use crate::desired::{Fingerprint, Role, LABEL_FINGERPRINT};
use crate::engine::{self, Engine};
use crate::names::{Names, LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, LABEL_SPEC_HASH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub node: Option<u32>,
    pub running: bool,
    /// "healthy", "unhealthy", "starting", or None without a health check.
    pub health: Option<String>,
    pub hash: String,
    pub fingerprint: Fingerprint,
    pub image: String,
    /// Docker's own status line, e.g. "Up 3 minutes (healthy)".
    pub status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub network: bool,
    pub volume: bool,
    pub containers: Vec<ObservedContainer>,
    /// /etc/nginx/nginx.conf inside the balancer container, when there is one.
    pub nginx_conf: Option<String>,
}

impl Observed {
    pub fn get(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers.iter().find(|c| c.name == name)
    }
    pub fn is_empty(&self) -> bool {
        !self.network && !self.volume && self.containers.is_empty()
    }
}

/// Reads the cluster's containers, network and volume from the engine.
pub async fn observe(engine: &Engine, names: &Names) -> engine::Result<Observed> {
    let summaries = engine
        .containers_with(&[format!("{LABEL_CLUSTER}={}", names.cluster)])
        .await?;
    let mut containers = Vec::new();
    for s in summaries {
        let labels = s.labels.clone().unwrap_or_default();
        let Some(role) = labels.get(LABEL_ROLE).and_then(|r| Role::parse(r)) else {
            continue;
        };
        let name = s
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        let status = s.status.clone().unwrap_or_default();
        let health = ["healthy", "unhealthy", "starting"]
            .into_iter()
            .find(|h| {
                status.contains(&format!("({h})")) || status.contains(&format!("(health: {h})"))
            })
            .map(str::to_string);
        containers.push(ObservedContainer {
            id: s.id.clone().unwrap_or_default(),
            name,
            role,
            node: labels.get(LABEL_NODE).and_then(|n| n.parse().ok()),
            running: s.state == Some(ContainerSummaryStateEnum::RUNNING),
            health,
            hash: labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default(),
            fingerprint: labels
                .get(LABEL_FINGERPRINT)
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_default(),
            image: s.image_id.clone().unwrap_or_default(),
            status,
        });
    }
    containers.sort_by(|a, b| (a.role, a.node, &a.name).cmp(&(b.role, b.node, &b.name)));
    let nginx_conf = match containers.iter().find(|c| c.role == Role::Balancer) {
        Some(b) => engine
            .read_file(&b.name, "/etc/nginx/nginx.conf")
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        None => None,
    };
    Ok(Observed {
        network: engine.network_exists(&names.network()).await?,
        volume: engine.volume_exists(&names.volume()).await?,
        containers,
        nginx_conf,
    })
}
