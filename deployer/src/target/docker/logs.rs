//! `deployer logs` on one engine: the log sources are the cluster's containers
//! (found by its label), each named by its unit — a node's containers by the
//! node's number label, so `<node>-new` and `<node>-old` write under the
//! node's own name through a rollout.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::ContainerSummaryStateEnum;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::engine::Engine;
use crate::logs::Selection;
use crate::names::{Names, NodeIndex, Role, LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE};
use crate::target::logs::{LogSources, LogsError, Read, Source};

#[derive(Clone)]
pub struct DockerLogs {
    engine: Engine,
    names: Names,
    selection: Selection,
}

impl DockerLogs {
    pub fn new(engine: Engine, names: Names, selection: Selection) -> DockerLogs {
        DockerLogs {
            engine,
            names,
            selection,
        }
    }
}

impl LogSources for DockerLogs {
    const POLL: Duration = Duration::from_millis(500);

    async fn sources(&self) -> Result<Vec<Source>, LogsError> {
        let filters = std::collections::HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_CLUSTER}={}", self.names.cluster())],
        )]);
        let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .engine
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|source| LogsError::List {
                what: "containers",
                source,
            })?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.as_ref()?;
                let role = Role::parse(labels.get(LABEL_ROLE)?)?;
                let node = labels
                    .get(LABEL_NODE)
                    .and_then(|n| n.parse().ok())
                    .and_then(NodeIndex::new);
                if !self.selection.includes(role, node) {
                    return None;
                }
                let name = c
                    .names
                    .as_ref()?
                    .first()?
                    .trim_start_matches('/')
                    .to_string();
                Some(Source {
                    id: c.id.clone()?,
                    unit: match node {
                        Some(i) if role == Role::App => self.names.node(i),
                        _ => name,
                    },
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                })
            })
            .collect())
    }

    fn stream(
        &self,
        id: &str,
        read: Read,
    ) -> BoxStream<'_, Result<LogOutput, bollard::errors::Error>> {
        self.engine.docker.logs(id, Some(read.options())).boxed()
    }
}
