//! What a target reports of the cluster, target-neutral: the units that carry the
//! cluster's label, and whether its network and volume exist and are its own.
//! Each target fills it in its own way (`target::docker::observe`).

use serde::Serialize;

use crate::model::Fingerprint;
use crate::names::{Role, Slot};

/// Whether a named object (network, volume) exists, and whose it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    #[default]
    Absent,
    /// It exists and carries the cluster's label.
    Owned,
    /// It exists under the cluster's name but without its label: someone
    /// else's. Never used, never removed.
    Foreign,
}

impl Presence {
    pub fn is_owned(self) -> bool {
        self == Presence::Owned
    }
    pub fn is_absent(self) -> bool {
        self == Presence::Absent
    }
    pub fn is_foreign(self) -> bool {
        self == Presence::Foreign
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedUnit {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// None for a labelled object under a name the deployer never gives.
    pub slot: Option<Slot>,
    pub running: bool,
    /// "healthy", "unhealthy", "starting", or None without a health check.
    pub health: Option<String>,
    pub hash: String,
    pub fingerprint: Fingerprint,
    pub image: String,
    /// The engine's own status line, e.g. "Up 3 minutes (healthy)".
    pub status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub network: Presence,
    pub volume: Presence,
    /// The data volume's record of the password it was created with, when it has one.
    pub volume_password_check: Option<String>,
    pub units: Vec<ObservedUnit>,
    /// The balancer's running config, when there is a balancer.
    pub nginx_conf: Option<String>,
}

impl Observed {
    pub fn get(&self, name: &str) -> Option<&ObservedUnit> {
        self.units.iter().find(|c| c.name == name)
    }

    /// Nothing of the cluster's exists (a foreign network or volume is not its own).
    pub fn is_empty(&self) -> bool {
        !self.network.is_owned() && !self.volume.is_owned() && self.units.is_empty()
    }
}
