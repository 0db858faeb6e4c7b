//! The [app] section: the nodes, their pool, image and extra environment.

use std::collections::BTreeMap;

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::RawApp;
use crate::config::spec::{AppSpec, LogFormat, MAX_NODES};

/// The section's values; an invalid one is reported and replaced by its default.
pub(super) fn convert(c: &mut Checker, a: &RawApp) -> AppSpec {
    let nodes = c.int(
        &a.nodes,
        "nodes",
        3,
        1..=MAX_NODES,
        "run between 1 and 64 app nodes; 3 survives the loss of one",
    );
    let pool_size = c.int(
        &a.pool_size,
        "pool_size",
        10,
        1..=1000,
        "each node's pool holds between 1 and 1000 connections; 10 is typical",
    );
    let port = c.int(
        &a.port,
        "port",
        4000,
        1024..=65535,
        "the app runs as a non-root user, so its port must be 1024 or above",
    );
    let image = c.image(&a.image, "image", "deployer-app:latest");
    let job_workers = c.int(
        &a.job_workers,
        "job_workers",
        4,
        // The node refuses JOB_WORKERS=0 at start (every node runs the shared queue), so a
        // file with 0 must not pass here and fail only when the nodes start.
        1..=256,
        "job workers per node run the shared queue and draw from the pool; at least 1",
    );
    let log_format = log_format(c, a);
    let host_port_base = a.host_port_base.as_ref().map(|_| {
        c.int(
            &a.host_port_base,
            "host_port_base",
            4001,
            1..=65535,
            "pick a free range, e.g. 4001",
        ) as u16
    });
    let env = env(c, a);
    AppSpec {
        nodes: nodes as u32,
        pool_size: pool_size as u32,
        port: port as u16,
        image,
        job_workers: job_workers as u32,
        log_format,
        host_port_base,
        env,
    }
}

fn log_format(c: &mut Checker, a: &RawApp) -> LogFormat {
    match &a.log_format {
        None => LogFormat::Json,
        Some(v) => match v.get_ref().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                c.diags.push(
                    Diagnostic::error(format!("unknown log_format `{other}`"), span(v))
                        .with_hint("use `json` or `text`"),
                );
                LogFormat::Json
            }
        },
    }
}

/// [app.env]: valid names that the deployer does not set itself, single-line values.
fn env(c: &mut Checker, a: &RawApp) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(e) = &a.env else {
        return env;
    };
    for (key, v) in e {
        let valid = key.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            c.diags.push(
                Diagnostic::error(format!("`{}` is not a valid environment variable name", key.escape_debug()), span(v))
                    .with_hint("use uppercase letters, digits and `_`, starting with a letter, e.g. `FEATURE_FLAG`"),
            );
        } else if node_contract::reserved().any(|r| r == key) {
            c.diags.push(
                Diagnostic::error(
                    format!("`{key}` is set by the deployer and cannot be overridden in [app.env]"),
                    span(v),
                )
                .with_hint("set it through its own key (e.g. [app] pool_size) instead"),
            );
        } else if v.get_ref().chars().any(|c| c.is_control() && c != '\t') {
            c.diags.push(
                Diagnostic::error(
                    format!(
                        "the value of `{key}` contains a control character (such as a newline)"
                    ),
                    span(v),
                )
                .with_hint("environment values are single-line text"),
            );
        } else {
            env.insert(key.clone(), v.get_ref().clone());
        }
    }
    env
}
