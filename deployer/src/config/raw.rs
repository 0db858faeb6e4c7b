//! The raw shape of `cluster.toml`: exactly what the user wrote, with spans.
//!
//! Nothing here is trusted. [`super::convert`] turns a [`RawConfig`] into a validated
//! [`super::ClusterSpec`]; code past that boundary never sees these types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Each section is parsed on its own (so one broken section does not hide the
/// problems of another), hence every section is optional here.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub cluster: Option<Spanned<RawCluster>>,
    pub app: Option<Spanned<RawApp>>,
    pub database: Option<Spanned<RawDatabase>>,
    pub redis: Option<Spanned<RawRedis>>,
    pub balancer: Option<Spanned<RawBalancer>>,
    pub rollout: Option<Spanned<RawRollout>>,
    pub logs: Option<Spanned<RawLogs>>,
    pub swarm: Option<Spanned<RawSwarm>>,
    /// Sections present in the file that could not be read (already reported).
    pub broken: std::collections::BTreeSet<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwarm {
    pub manager: Option<Spanned<String>>,
    pub registry: Option<Spanned<String>>,
    pub push_registry: Option<Spanned<String>>,
    pub database_host: Option<Spanned<String>>,
    pub balancer_host: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub nodes: Option<Spanned<i64>>,
    pub pool_size: Option<Spanned<i64>>,
    pub port: Option<Spanned<i64>>,
    pub image: Option<Spanned<String>>,
    pub job_workers: Option<Spanned<i64>>,
    pub log_format: Option<Spanned<String>>,
    pub host_port_base: Option<Spanned<i64>>,
    pub env: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub max_connections: Option<Spanned<i64>>,
    pub superuser_reserved_connections: Option<Spanned<i64>>,
    pub reserve_connections: Option<Spanned<i64>>,
    pub image: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub pooler: Option<Spanned<String>>,
    pub pooler_pool_size: Option<Spanned<i64>>,
    pub pooler_max_client_conn: Option<Spanned<i64>>,
    pub pooler_image: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub enabled: Option<Spanned<bool>>,
    pub image: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBalancer {
    pub strategy: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub bind: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    pub max_fails: Option<Spanned<i64>>,
    pub fail_timeout: Option<Spanned<i64>>,
    pub keepalive: Option<Spanned<i64>>,
    pub connect_timeout: Option<Spanned<i64>>,
    pub read_timeout: Option<Spanned<i64>>,
    pub worker_connections: Option<Spanned<i64>>,
    pub access_log: Option<Spanned<String>>,
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    pub https_port: Option<Spanned<i64>>,
    pub hsts_max_age: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub max_surge: Option<Spanned<i64>>,
    pub drain_seconds: Option<Spanned<i64>>,
    pub stop_grace_seconds: Option<Spanned<i64>>,
    pub health_timeout: Option<Spanned<i64>>,
    pub health_interval: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub max_size_mb: Option<Spanned<i64>>,
    pub max_files: Option<Spanned<i64>>,
}

/// The field names a `#[derive(Deserialize)]` struct accepts, read from serde itself
/// so the "did you mean" hints can never drift from the structs above.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Capture<'a>(&'a mut &'static [&'static str]);

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

/// The sections `cluster.toml` knows, in the order the reference documents them.
pub const SECTIONS: &[&str] = &[
    "cluster", "app", "database", "redis", "balancer", "rollout", "logs", "swarm",
];

pub fn section_fields(section: &str) -> &'static [&'static str] {
    match section {
        "cluster" => field_names::<RawCluster>(),
        "app" => field_names::<RawApp>(),
        "database" => field_names::<RawDatabase>(),
        "redis" => field_names::<RawRedis>(),
        "balancer" => field_names::<RawBalancer>(),
        "rollout" => field_names::<RawRollout>(),
        "logs" => field_names::<RawLogs>(),
        "swarm" => field_names::<RawSwarm>(),
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_serde() {
        assert_eq!(field_names::<RawCluster>(), &["name", "target"]);
        assert!(field_names::<RawApp>().contains(&"pool_size"));
        for s in SECTIONS {
            assert!(!section_fields(s).is_empty(), "{s}");
        }
    }
}
