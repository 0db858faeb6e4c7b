//! `deployer logs` on a swarm: the log sources are the tasks of the cluster's
//! services that ever had a container, read through the manager (task logs).
//! An app task is named by its slot, as the node it stands for
//! (`demo-app.2` → `demo-app-2`): a rolling update's new task keeps its slot,
//! so its lines go on under the same name.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::TaskState;
use bollard::query_parameters as q;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::logs::Selection;
use crate::names::{Names, NodeIndex, Role, LABEL_CLUSTER, LABEL_ROLE};
use crate::target::docker::engine::Engine;
use crate::target::logs::{LogSources, LogsError, Read, Source};

#[derive(Clone)]
pub struct SwarmLogs {
    engine: Engine,
    names: Names,
    selection: Selection,
}

impl SwarmLogs {
    pub fn new(engine: Engine, names: Names, selection: Selection) -> SwarmLogs {
        SwarmLogs {
            engine,
            names,
            selection,
        }
    }
}

impl LogSources for SwarmLogs {
    const POLL: Duration = Duration::from_secs(1);

    async fn sources(&self) -> Result<Vec<Source>, LogsError> {
        let d = &self.engine.docker;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_CLUSTER}={}", self.names.cluster())],
        )]);
        let services: HashMap<String, (String, Role)> = d
            .list_services(Some(
                q::ListServicesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|source| LogsError::List {
                what: "services",
                source,
            })?
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let role = Role::parse(spec.labels?.get(LABEL_ROLE)?)?;
                self.selection
                    .wants(role)
                    .then_some((s.id?, (spec.name?, role)))
            })
            .collect();
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let filters = HashMap::from([("service".to_string(), services.keys().cloned().collect())]);
        let tasks = d
            .list_tasks(Some(
                q::ListTasksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|source| LogsError::List {
                what: "tasks",
                source,
            })?;
        let mut sources = Vec::new();
        for t in tasks {
            let Some((service, role)) = t.service_id.as_ref().and_then(|s| services.get(s)) else {
                continue;
            };
            let status = t.status.unwrap_or_default();
            let ran = status
                .container_status
                .and_then(|c| c.container_id)
                .is_some_and(|c| !c.is_empty());
            let Some(id) = t.id.filter(|_| ran) else {
                continue;
            };
            let unit = match role {
                Role::App => {
                    let slot = t
                        .slot
                        .and_then(|s| u32::try_from(s).ok())
                        .and_then(NodeIndex::new);
                    match slot {
                        Some(i) if self.selection.includes(Role::App, Some(i)) => {
                            self.names.node(i)
                        }
                        _ => continue,
                    }
                }
                _ => service.clone(),
            };
            sources.push(Source {
                id,
                unit,
                running: status.state == Some(TaskState::RUNNING)
                    && t.desired_state == Some(TaskState::RUNNING),
            });
        }
        Ok(sources)
    }

    fn stream(
        &self,
        id: &str,
        read: Read,
    ) -> BoxStream<'_, Result<LogOutput, bollard::errors::Error>> {
        self.engine
            .docker
            .task_logs(id, Some(read.options()))
            .boxed()
    }
}
