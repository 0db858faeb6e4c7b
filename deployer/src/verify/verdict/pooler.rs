//! The pooler check: both sides of a pooled budget, as sampled under load.

use serde::Serialize;
use serde_json::json;

use super::super::Check;
use crate::budget::Budget;

/// One sample of both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(in crate::verify) struct PoolerSample {
    /// Client backends in `pg_stat_activity` (every client, the probe left out).
    pub postgres: u32,
    /// The cluster database's pool on PgBouncer: its clients, server connections, and
    /// clients waiting for one.
    pub pooler_clients: u32,
    pub pooler_servers: u32,
    pub waiting: u32,
}

pub(in crate::verify) struct PoolerFigures {
    pub requests: usize,
    pub concurrency: usize,
    /// Why each failed request failed.
    pub errors: Vec<String>,
    pub samples: Vec<PoolerSample>,
    /// Samples that could not be taken.
    pub sample_errors: Vec<String>,
    /// Nodes' LISTEN sessions on PostgreSQL itself (None: not read).
    pub listeners: Option<u32>,
    pub nodes: u32,
    pub budget: Budget,
}

/// Passes when every request succeeded, every sample was taken, PostgreSQL never held
/// more than the budget's server side, PgBouncer never more servers than its pool nor
/// more clients than the client side, and every node listens on PostgreSQL directly.
pub(in crate::verify) fn pooler_check(f: &PoolerFigures) -> Check {
    let b = &f.budget;
    let Some(clients) = &b.clients else {
        return Check::failed("pooler", "the cluster has no pooler");
    };
    let peak = |get: fn(&PoolerSample) -> u32| f.samples.iter().map(get).max().unwrap_or(0);
    let postgres = peak(|s| s.postgres);
    let servers = peak(|s| s.pooler_servers);
    let pooled_clients = peak(|s| s.pooler_clients);
    let waiting = peak(|s| s.waiting);
    let mut wrong = Vec::new();
    if !f.errors.is_empty() {
        wrong.push(format!(
            "{} of {} requests failed (first: {})",
            f.errors.len(),
            f.requests,
            f.errors[0]
        ));
    }
    if f.samples.is_empty() {
        wrong.push(format!(
            "no sample of the connections ({})",
            f.sample_errors.first().map_or("none taken", String::as_str)
        ));
    }
    if postgres > b.peak {
        wrong.push(format!(
            "PostgreSQL held {postgres} > the server side's {}",
            b.peak
        ));
    }
    if servers > b.server_pool {
        wrong.push(format!(
            "PgBouncer held {servers} server connections > its pool of {}",
            b.server_pool
        ));
    }
    if pooled_clients > clients.peak {
        wrong.push(format!(
            "PgBouncer had {pooled_clients} clients > the client side's {}",
            clients.peak
        ));
    }
    match f.listeners {
        Some(n) if n == f.nodes => {}
        Some(n) => wrong.push(format!(
            "{n} LISTEN sessions on PostgreSQL for {} nodes",
            f.nodes
        )),
        None => wrong.push("the LISTEN sessions could not be counted".into()),
    }
    let summary = format!(
        "{} × GET /api/auth/me, {} at a time, {} errors; peaks over {} samples: PostgreSQL {postgres} ≤ server side {} (limit {}), PgBouncer {servers} servers ≤ pool {}, {pooled_clients} clients ≤ client side {} ({waiting} waiting); LISTEN direct: {}{}",
        f.requests,
        f.concurrency,
        f.errors.len(),
        f.samples.len(),
        b.peak,
        b.limit,
        b.server_pool,
        clients.peak,
        f.listeners.map_or("?".to_string(), |n| format!("{n} of {} nodes", f.nodes)),
        if wrong.is_empty() {
            String::new()
        } else {
            format!("; {}", wrong.join("; "))
        }
    );
    Check::new(
        "pooler",
        wrong.is_empty(),
        summary,
        json!({
            "requests": f.requests,
            "errors": f.errors.len(),
            "first_errors": f.errors.iter().take(5).collect::<Vec<_>>(),
            "samples": f.samples.len(),
            "sample_errors": f.sample_errors.iter().take(5).collect::<Vec<_>>(),
            "peak_postgres_connections": postgres,
            "peak_pooler_servers": servers,
            "peak_pooler_clients": pooled_clients,
            "peak_waiting": waiting,
            "listeners": f.listeners,
            "budget": b,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{BudgetInput, PoolerInput};

    fn figures(
        samples: &[(u32, u32, u32)],
        errors: &[&str],
        listeners: Option<u32>,
    ) -> PoolerFigures {
        PoolerFigures {
            requests: 1000,
            concurrency: 10,
            errors: errors.iter().map(|e| e.to_string()).collect(),
            samples: samples
                .iter()
                .map(|&(postgres, pooler_servers, pooler_clients)| PoolerSample {
                    postgres,
                    pooler_clients,
                    pooler_servers,
                    waiting: 0,
                })
                .collect(),
            sample_errors: Vec::new(),
            listeners,
            nodes: 3,
            // Server side 20 + 4 × 1 + 3 = 27 of 97; client side 4 × 10 + 3 = 43.
            budget: Budget::compute(&BudgetInput {
                nodes: 3,
                pool_size: 10,
                max_surge: 1,
                reserve: 3,
                max_connections: 100,
                superuser_reserved: 3,
                pooler: Some(PoolerInput {
                    server_pool: 20,
                    max_clients: 1000,
                }),
            }),
        }
    }

    #[test]
    fn both_sides_within_the_budget_pass() {
        let c = pooler_check(&figures(&[(9, 5, 12), (14, 10, 30)], &[], Some(3)));
        assert!(c.passed, "{}", c.summary);
        assert_eq!(
            c.summary,
            "1000 × GET /api/auth/me, 10 at a time, 0 errors; peaks over 2 samples: PostgreSQL 14 ≤ server side 27 (limit 97), PgBouncer 10 servers ≤ pool 20, 30 clients ≤ client side 43 (0 waiting); LISTEN direct: 3 of 3 nodes"
        );
        assert_eq!(c.figures["peak_postgres_connections"], 14);
    }

    #[test]
    fn each_side_over_its_budget_fails_naming_it() {
        for (sample, listeners, errors, want) in [
            (
                (28, 10, 30),
                Some(3),
                vec![],
                "PostgreSQL held 28 > the server side's 27",
            ),
            (
                (14, 21, 30),
                Some(3),
                vec![],
                "PgBouncer held 21 server connections > its pool of 20",
            ),
            (
                (14, 10, 44),
                Some(3),
                vec![],
                "PgBouncer had 44 clients > the client side's 43",
            ),
            (
                (14, 10, 30),
                Some(0),
                vec![],
                "0 LISTEN sessions on PostgreSQL for 3 nodes",
            ),
            (
                (14, 10, 30),
                None,
                vec![],
                "the LISTEN sessions could not be counted",
            ),
            (
                (14, 10, 30),
                Some(3),
                vec!["status 503"],
                "1 of 1000 requests failed (first: status 503)",
            ),
        ] {
            let c = pooler_check(&figures(&[sample], &errors, listeners));
            assert!(!c.passed, "{want}");
            assert!(c.summary.ends_with(&format!("; {want}")), "{}", c.summary);
        }
        let none = pooler_check(&figures(&[], &[], Some(3)));
        assert!(!none.passed);
        assert!(
            none.summary.contains("no sample of the connections"),
            "{}",
            none.summary
        );
    }
}
