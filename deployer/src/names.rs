//! Names of everything a cluster owns on the engine, derived from its DNS label.
//! One place, so `render`, `plan` and `apply` always agree.

use crate::config::ClusterSpec;

/// Label keys every object of a cluster carries.
pub const LABEL_CLUSTER: &str = "io.deployer.cluster";
pub const LABEL_ROLE: &str = "io.deployer.role";
pub const LABEL_NODE: &str = "io.deployer.node";
pub const LABEL_SPEC_HASH: &str = "io.deployer.spec-hash";

/// The port nginx listens on inside its container (non-root, so ≥ 1024).
pub const BALANCER_LISTEN_PORT: u16 = 8080;
/// The uid:gid the app image's user has.
pub const APP_USER: &str = "10001:10001";
pub const NGINX_USER: &str = "101:101";
pub const POSTGRES_USER_ID: &str = "999:999";
pub const REDIS_USER: &str = "999:999";

#[derive(Debug, Clone)]
pub struct Names {
    pub cluster: String,
}

impl Names {
    pub fn of(spec: &ClusterSpec) -> Names {
        Names {
            cluster: spec.name.as_str().to_string(),
        }
    }

    pub fn network(&self) -> String {
        format!("{}-net", self.cluster)
    }
    pub fn volume(&self) -> String {
        format!("{}-pgdata", self.cluster)
    }
    pub fn postgres(&self) -> String {
        format!("{}-postgres", self.cluster)
    }
    pub fn redis(&self) -> String {
        format!("{}-redis", self.cluster)
    }
    pub fn balancer(&self) -> String {
        format!("{}-lb", self.cluster)
    }
    pub fn migrate(&self) -> String {
        format!("{}-migrate", self.cluster)
    }
    /// Node `i` (1-based), as container name, host name and upstream server.
    pub fn node(&self, i: u32) -> String {
        format!("{}-app-{i}", self.cluster)
    }
    /// The name node `i`'s old container takes during a rolling update, so its
    /// replacement can take the node's own name (and nginx's config never changes).
    pub fn node_old(&self, i: u32) -> String {
        format!("{}-app-{i}-old", self.cluster)
    }
}
