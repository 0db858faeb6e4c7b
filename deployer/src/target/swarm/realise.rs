//! A model unit as a Swarm service: the bollard `ServiceSpec`, its secrets and
//! the balancer's config object. Every value comes from the [`Unit`]; what is
//! the swarm's own is decided here: one service for all app nodes (a task per
//! node, named like the node), placement of the stateful units, host-mode
//! publishing, start-first rolling updates that roll back on failure.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Mount, MountType, MountVolumeOptions,
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecModeReplicatedJob, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1,
    TaskSpecContainerSpecSecrets, TaskSpecLogDriver, TaskSpecPlacement, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use node_contract::var;
use sha2::{Digest, Sha256};

use crate::config::SwarmSpec;
use crate::model::{hash, LogRotation, Model, Unit};
use crate::names::{Role, LABEL_CLUSTER, LABEL_FINGERPRINT, LABEL_ROLE, LABEL_SPEC_HASH};
use crate::secrets::{SecretFile, Secrets};
use crate::target::docker::realise::health;

/// The label a secret or config carries with the file it stands for.
pub const LABEL_FILE: &str = "io.deployer.file";

/// Where nginx reads its config.
pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";

/// How long a task must stay healthy after an update before Swarm moves on.
const MONITOR: Duration = Duration::from_secs(5);

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// The service a unit is a task of: the app service for every node, the
/// unit's own name otherwise.
pub fn service_of(model: &Model, unit: &Unit) -> String {
    match unit.role() {
        Role::App => model.names.app_service(),
        _ => unit.name.clone(),
    }
}

/// Labels of the cluster's network, secrets and configs.
pub fn cluster_labels(model: &Model) -> HashMap<String, String> {
    HashMap::from([(LABEL_CLUSTER.to_string(), model.names.cluster().to_string())])
}

/// A versioned name for an immutable Swarm object: `<cluster>-<file>-<hash>`.
/// Rotating a value makes a new object; services move to it in a rolling update.
pub fn versioned(model: &Model, file: &str, contents: &[u8]) -> String {
    let h = hex::encode(&Sha256::digest(contents)[..6]);
    format!("{}-{file}-{h}", model.names.cluster())
}

/// One secret or config object to create (if missing) before the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub name: String,
    /// The engine's ID, once it exists (a service names both).
    pub id: String,
    pub labels: HashMap<String, String>,
    /// Base64, as the Engine API takes it.
    pub data: String,
}

/// The Swarm secret of each of the cluster's secret files.
pub fn secret_objects(model: &Model, secrets: &Secrets) -> Vec<(SecretFile, Object)> {
    secrets
        .files()
        .map(|s| {
            let value = secrets.value(s).as_bytes();
            let mut labels = cluster_labels(model);
            labels.insert(LABEL_FILE.into(), s.file_name().into());
            (
                s,
                Object {
                    id: String::new(),
                    name: versioned(model, s.file_name(), value),
                    labels,
                    data: base64::engine::general_purpose::STANDARD.encode(value),
                },
            )
        })
        .collect()
}

/// The balancer's config as a Swarm config object.
pub fn nginx_config(model: &Model) -> Object {
    let mut labels = cluster_labels(model);
    labels.insert(LABEL_FILE.into(), "nginx.conf".into());
    Object {
        id: String::new(),
        name: versioned(model, "nginx", model.nginx_conf.as_bytes()),
        labels,
        data: base64::engine::general_purpose::STANDARD.encode(model.nginx_conf.as_bytes()),
    }
}

/// The labels of a unit's service: the cluster, its role, the spec hash and
/// the fingerprint it was made from.
pub fn labels(model: &Model, unit: &Unit) -> HashMap<String, String> {
    let mut l = cluster_labels(model);
    l.insert(LABEL_ROLE.to_string(), unit.role().as_str().to_string());
    l.insert(LABEL_SPEC_HASH.to_string(), unit.hash());
    l.insert(
        LABEL_FINGERPRINT.to_string(),
        serde_json::to_string(&unit.fingerprint).unwrap_or_default(),
    );
    l
}

/// What a service's spec needs besides the unit: where things are placed,
/// the rollout's shape, the names of the secret and config objects.
pub struct Context<'a> {
    pub swarm: &'a SwarmSpec,
    pub max_surge: u32,
    pub health_timeout: Duration,
    /// Secret file → the Swarm secret's versioned name.
    pub secrets: &'a [(SecretFile, Object)],
    pub nginx: Option<&'a Object>,
}

/// The service to create or update for `unit` with `replicas` tasks (app
/// nodes: one service, a task per node; the migration: a one-off job).
pub fn service(model: &Model, unit: &Unit, replicas: u32, cx: &Context) -> ServiceSpec {
    let role = unit.role();
    let mut env: Vec<String> = unit
        .env
        .iter()
        .map(|(k, v)| match (role, k.as_str()) {
            // Each task is named like the node it stands for: `<cluster>-app-<slot>`.
            (Role::App, var::NODE_NAME) => format!("{k}={{{{.Service.Name}}}}-{{{{.Task.Slot}}}}"),
            _ => format!("{k}={v}"),
        })
        .collect();
    env.sort_by_key(|e| e.split('=').next().map(str::to_string));
    let secrets = unit
        .secrets
        .iter()
        .filter_map(|f| cx.secrets.iter().find(|(s, _)| s == f))
        .map(|(s, o)| TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(s.file_name().into()),
                uid: Some(unit.user.0.to_string()),
                gid: Some(unit.user.1.to_string()),
                mode: Some(0o400),
            }),
            secret_name: Some(o.name.clone()),
            secret_id: Some(o.id.clone()),
        })
        .collect::<Vec<_>>();
    let configs = match (role, cx.nginx) {
        (Role::Balancer, Some(o)) => Some(vec![TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some(NGINX_CONF.into()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o444),
            }),
            config_name: Some(o.name.clone()),
            config_id: Some(o.id.clone()),
            ..Default::default()
        }]),
        _ => None,
    };
    let mounts = unit.volume.as_ref().map(|(volume, path)| {
        vec![Mount {
            target: Some(path.to_string()),
            source: Some(volume.clone()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(cluster_labels(model)),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let constraints = match role {
        Role::Postgres => vec![format!("node.hostname=={}", cx.swarm.database_host())],
        Role::Balancer => vec![format!("node.hostname=={}", cx.swarm.balancer_host())],
        _ => Vec::new(),
    };
    let job = role == Role::Migrate;
    let container = TaskSpecContainerSpec {
        image: Some(unit.image.clone()),
        labels: Some(labels(model, unit)),
        // `args` is the image's CMD (its entrypoint stays, as on the single
        // engine); `command` would replace the entrypoint.
        args: (!unit.command.is_empty()).then(|| unit.command.clone()),
        env: (!env.is_empty()).then_some(env),
        user: Some(format!("{}:{}", unit.user.0, unit.user.1)),
        mounts,
        stop_signal: Some(unit.stop_signal.to_string()),
        stop_grace_period: Some(nanos(unit.stop_grace)),
        health_check: unit.health.as_ref().map(health),
        secrets: (!secrets.is_empty()).then_some(secrets),
        configs,
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(if job {
                TaskSpecRestartPolicyConditionEnum::NONE
            } else {
                TaskSpecRestartPolicyConditionEnum::ANY
            }),
            delay: Some(nanos(Duration::from_secs(1))),
            ..Default::default()
        }),
        placement: (!constraints.is_empty()).then(|| TaskSpecPlacement {
            constraints: Some(constraints),
            ..Default::default()
        }),
        networks: Some(vec![NetworkAttachmentConfig {
            target: Some(model.network.clone()),
            ..Default::default()
        }]),
        // Rotated on every host, as on one engine: no log grows without end.
        log_driver: Some(TaskSpecLogDriver {
            name: Some(LogRotation::DRIVER.to_string()),
            options: Some(
                unit.logs
                    .options()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        }),
        ..Default::default()
    };
    let mode = if job {
        ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(1),
                total_completions: Some(1),
            }),
            ..Default::default()
        }
    } else {
        ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas.into()),
            }),
            ..Default::default()
        }
    };
    // Nodes are stateless and hold no host port: start the new task first, a
    // batch of max_surge at a time. PostgreSQL (its volume) and the balancer
    // (its host port) cannot run twice: stop first.
    let start_first = role == Role::App;
    let update = (!job).then(|| ServiceSpecUpdateConfig {
        parallelism: Some(if start_first { cx.max_surge.max(1) } else { 1 }.into()),
        delay: Some(0),
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
        monitor: Some(nanos(MONITOR)),
        max_failure_ratio: Some(0.0),
        order: Some(if start_first {
            ServiceSpecUpdateConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        }),
    });
    let rollback = (!job).then(|| ServiceSpecRollbackConfig {
        parallelism: Some(if start_first { cx.max_surge.max(1) } else { 1 }.into()),
        delay: Some(0),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(nanos(MONITOR)),
        max_failure_ratio: Some(0.0),
        order: Some(if start_first {
            ServiceSpecRollbackConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
        }),
    });
    let ports = (!unit.publish.is_empty()).then(|| {
        unit.publish
            .iter()
            .map(|p| EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(p.container_port.into()),
                published_port: Some(p.host_port.into()),
                // The routing mesh binds every host and is unreliable on loopback:
                // the balancer answers on its own host only.
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            })
            .collect()
    });
    ServiceSpec {
        name: Some(service_of(model, unit)),
        labels: Some(labels(model, unit)),
        task_template: Some(task),
        mode: Some(mode),
        update_config: update,
        rollback_config: rollback,
        endpoint_spec: Some(EndpointSpec {
            // No virtual IP: the balancer resolves `tasks.<service>` itself.
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports,
        }),
        ..Default::default()
    }
}

/// The spec hash the service's labels record (the unit's).
pub fn spec_hash(unit: &Unit) -> String {
    hash(&unit.fingerprint)
}
