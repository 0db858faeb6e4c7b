//! Test fixtures shared by the planner's and the schedules' table tests: specs
//! from TOML snippets, models, and what a target would observe once a model was
//! applied.

use crate::config::{self, ClusterSpec};
use crate::model::{self, Images, Model};
use crate::names::{NodeIndex, Slot};
use crate::observed::{Observed, ObservedUnit, Presence};

/// The spec of cluster `t` with `extra` TOML appended.
pub fn spec(extra: &str) -> ClusterSpec {
    let src = format!("[cluster]\nname = \"t\"\n{extra}");
    config::parse(std::path::Path::new("cluster.toml"), src.as_bytes())
        .unwrap()
        .spec
}

pub fn images() -> Images {
    Images {
        app: "sha256:app1".into(),
        postgres: "sha256:pg".into(),
        redis: Some("sha256:redis".into()),
        pooler: Some("sha256:pgbouncer".into()),
        balancer: "sha256:nginx".into(),
    }
}

pub fn want(extra: &str) -> Model {
    want_with(extra, images())
}

pub fn want_with(extra: &str, images: Images) -> Model {
    let s = spec(extra);
    model::model(&s, &images, format!("conf with {} nodes", s.app().nodes()))
}

/// What the engine would show after `m` was applied.
pub fn converged(m: &Model) -> Observed {
    Observed {
        network: Presence::Owned,
        volume: Presence::Owned,
        volume_password_check: None,
        units: m
            .units
            .iter()
            .map(|u| ObservedUnit {
                id: format!("id-{}", u.name),
                name: u.name.clone(),
                role: u.role(),
                slot: Some(u.slot),
                running: true,
                health: Some("healthy".into()),
                hash: u.hash(),
                fingerprint: u.fingerprint.clone(),
                image: String::new(),
                status: "Up".into(),
            })
            .collect(),
        nginx_conf: Some(m.nginx_conf.clone()),
    }
}

/// What an apply killed mid-rollout leaves: node `i`'s old container under `<node>-old`.
pub fn leave_old_node(o: &mut Observed, i: u32) {
    let name = format!("t-app-{i}");
    let mut old = o.units.iter().find(|u| u.name == name).unwrap().clone();
    old.name = format!("{name}-old");
    old.slot = Some(Slot::OldNode(NodeIndex::new(i).unwrap()));
    o.units.push(old);
}
