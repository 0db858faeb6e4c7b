//! What of the cluster runs on the Docker engine now, found by its label.
//! Objects without the cluster's label are never looked at as the cluster's; a
//! network or volume under the cluster's name without it is reported [`Presence::Foreign`].

use bollard::models::ContainerSummaryStateEnum;

use crate::names::{Names, Role, LABEL_CLUSTER, LABEL_FINGERPRINT, LABEL_ROLE, LABEL_SPEC_HASH};
use crate::observed::{Observed, ObservedUnit, Presence};
use crate::target::docker::engine::{self, Engine};

fn presence<T>(p: &engine::Presence<T>) -> Presence {
    match p {
        engine::Presence::Absent => Presence::Absent,
        engine::Presence::Owned(_) => Presence::Owned,
        engine::Presence::Foreign => Presence::Foreign,
    }
}

/// Reads the cluster's containers, network and volume from the engine.
pub async fn observe(engine: &Engine, names: &Names) -> engine::Result<Observed> {
    let summaries = engine
        .containers_with(&[format!("{LABEL_CLUSTER}={}", names.cluster())])
        .await?;
    let mut units = Vec::new();
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
        units.push(ObservedUnit {
            id: s.id.clone().unwrap_or_default(),
            slot: names.parse(&name).filter(|slot| slot.role() == role),
            name,
            role,
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
    units.sort_by(|a, b| (a.role, a.slot, &a.name).cmp(&(b.role, b.slot, &b.name)));
    let nginx_conf = match units.iter().find(|c| c.role == Role::Balancer) {
        Some(b) => engine
            .read_file(&b.name, "/etc/nginx/nginx.conf")
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        None => None,
    };
    let volume = engine.volume(&names.volume(), names.cluster()).await?;
    let volume_password_check = match &volume {
        super::engine::Presence::Owned(v) => v.password_check.clone(),
        _ => None,
    };
    Ok(Observed {
        network: presence(&engine.network(&names.network(), names.cluster()).await?),
        volume: presence(&volume),
        volume_password_check,
        units,
        nginx_conf,
    })
}
