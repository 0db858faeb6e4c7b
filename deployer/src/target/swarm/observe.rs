//! What of the cluster runs on the swarm now, found by its label. The app
//! service's tasks are reported as the nodes they stand for (`<cluster>-app-1`
//! … up to its replica count), so the same planner compares them with the
//! model: a service scaled or removed by hand is drift like a container.

use std::collections::HashMap;

use bollard::query_parameters as q;

use super::{api, decode, Result};
use crate::config::SwarmSpec;
use crate::names::{
    Names, NodeIndex, Role, Slot, LABEL_CLUSTER, LABEL_FINGERPRINT, LABEL_ROLE, LABEL_SPEC_HASH,
};
use crate::observed::{Observed, ObservedUnit, Presence};
use crate::target::docker::engine::{self, Engine};

fn presence<T>(p: &engine::Presence<T>) -> Presence {
    match p {
        engine::Presence::Absent => Presence::Absent,
        engine::Presence::Owned(_) => Presence::Owned,
        engine::Presence::Foreign => Presence::Foreign,
    }
}

/// Reads the cluster's services, network, volume and balancer config.
pub async fn observe(engine: &Engine, names: &Names, swarm: &SwarmSpec) -> Result<Observed> {
    let d = &engine.docker;
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{LABEL_CLUSTER}={}", names.cluster())],
    );
    let services = d
        .list_services(Some(
            q::ListServicesOptionsBuilder::default()
                .filters(&filters)
                .status(true)
                .build(),
        ))
        .await
        .map_err(api("listing services"))?;
    let mut units = Vec::new();
    let mut nginx_conf = None;
    for s in services {
        let Some(spec) = &s.spec else { continue };
        let labels = spec.labels.clone().unwrap_or_default();
        let Some(role) = labels.get(LABEL_ROLE).and_then(|r| Role::parse(r)) else {
            continue;
        };
        let name = spec.name.clone().unwrap_or_default();
        let status = s.service_status.clone().unwrap_or_default();
        let (running, desired) = (
            status.running_tasks.unwrap_or_default(),
            status.desired_tasks.unwrap_or_default(),
        );
        let line = format!("{running}/{desired} tasks running");
        let hash = labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default();
        let fingerprint: crate::model::Fingerprint = labels
            .get(LABEL_FINGERPRINT)
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default();
        let image = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let unit = |name: String, slot: Option<Slot>| ObservedUnit {
            id: s.id.clone().unwrap_or_default(),
            name,
            role,
            slot,
            // Swarm restarts and reschedules tasks itself: a service that
            // exists is running as far as the plan is concerned.
            running: true,
            health: None,
            hash: hash.clone(),
            fingerprint: fingerprint.clone(),
            image: image.clone(),
            status: line.clone(),
        };
        if role == Role::App && name == names.app_service() {
            let replicas = spec
                .mode
                .as_ref()
                .and_then(|m| m.replicated.as_ref())
                .and_then(|r| r.replicas)
                .unwrap_or_default()
                .max(0) as u32;
            for i in NodeIndex::first(replicas) {
                units.push(unit(names.node(i), Some(Slot::Node(i))));
            }
            continue;
        }
        if role == Role::Balancer {
            let config = spec
                .task_template
                .as_ref()
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.configs.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.config_id.clone().or(c.config_name.clone()));
            if let Some(id) = config {
                nginx_conf = d
                    .inspect_config(&id)
                    .await
                    .ok()
                    .and_then(|c| c.spec?.data)
                    .and_then(|data| decode(&data));
            }
        }
        let slot = names.parse(&name).filter(|slot| slot.role() == role);
        units.push(unit(name, slot));
    }
    units.sort_by(|a, b| (a.role, a.slot, &a.name).cmp(&(b.role, b.slot, &b.name)));

    // The volume lives on the database's host: seen directly when that is the
    // manager this deployer talks to, otherwise known through the PostgreSQL
    // service that mounts (and so creates) it.
    let here = d
        .info()
        .await
        .map_err(api("reading the engine's info"))?
        .name;
    let volume = if here.as_deref() == Some(swarm.database_host().as_str()) {
        presence(&engine.volume(&names.volume(), names.cluster()).await?)
    } else if units.iter().any(|u| u.role == Role::Postgres) {
        Presence::Owned
    } else {
        Presence::Absent
    };
    Ok(Observed {
        network: presence(&engine.network(&names.network(), names.cluster()).await?),
        volume,
        // The volume lives on the database host, which the manager cannot inspect.
        volume_password_check: None,
        units,
        nginx_conf,
    })
}
