//! The database check: it answers, and the client connections stay within the budget.

use std::collections::BTreeMap;

use serde_json::json;

use super::super::Check;
use super::{listed, plural};
use crate::budget::Budget;

/// The database check: it answered in `ms`, with `usage` client connections per
/// application name; the cluster's `nodes` must stay within the `budget`.
pub(in crate::verify) fn database_check(
    ms: f64,
    usage: &BTreeMap<String, u32>,
    nodes: &[String],
    budget: &Budget,
) -> Check {
    let per_node: BTreeMap<&str, u32> = nodes
        .iter()
        .map(|n| (n.as_str(), usage.get(n).copied().unwrap_or(0)))
        .collect();
    let cluster: u32 = per_node.values().sum();
    let total: u32 = usage.values().sum();
    let mut over = Vec::new();
    // Behind a pooler a node's name is on its LISTEN session and on whichever of the
    // pooler's server connections last ran its queries, so names cannot be held to a
    // per-node figure; the pooler check holds both sides instead.
    if !budget.pooled() {
        for (node, &n) in &per_node {
            if n > budget.per_node {
                over.push(format!("{node} holds {n} > {} per node", budget.per_node));
            }
        }
    }
    if total > budget.limit {
        over.push(format!("{total} in use > limit {}", budget.limit));
    }
    let per_node_rule = if budget.pooled() {
        "through PgBouncer".to_string()
    } else {
        format!("≤ {} per node", budget.per_node)
    };
    let summary = format!(
        "answers in {ms} ms; {total} connection{} in use ({}), {per_node_rule}, budget peak {} of limit {}{}",
        plural(total as usize),
        listed(&per_node),
        budget.peak,
        budget.limit,
        if over.is_empty() {
            String::new()
        } else {
            format!("; {}", over.join("; "))
        }
    );
    Check::new(
        "database",
        over.is_empty(),
        summary,
        json!({
            "ms": ms,
            "connections_in_use": total,
            "cluster_connections": cluster,
            "per_node": per_node,
            "by_application": usage,
            "budget": budget,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::strings;
    use super::*;

    fn budget(per_node: u32, limit: u32) -> Budget {
        Budget {
            nodes: 2,
            max_surge: 1,
            pool_size: per_node - 1,
            extra_per_node: 1,
            per_node,
            reserve: 3,
            server_pool: 0,
            steady: 2 * per_node + 3,
            peak: 3 * per_node + 3,
            max_connections: limit + 3,
            superuser_reserved: 3,
            limit,
            clients: None,
        }
    }

    #[test]
    fn database_connections_are_held_to_the_budget() {
        let nodes = strings(&["c-app-1", "c-app-2"]);
        let usage = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let fine = database_check(
            3.0,
            &usage(&[("c-app-1", 4), ("psql", 1)]),
            &nodes,
            &budget(6, 20),
        );
        assert!(fine.passed, "{}", fine.summary);
        assert_eq!(
            fine.summary,
            "answers in 3 ms; 5 connections in use (c-app-1 4, c-app-2 0), ≤ 6 per node, budget peak 21 of limit 20"
        );
        assert_eq!(fine.figures["cluster_connections"], 4);
        let over = database_check(3.0, &usage(&[("c-app-1", 7)]), &nodes, &budget(6, 20));
        assert!(!over.passed);
        assert!(
            over.summary.ends_with("; c-app-1 holds 7 > 6 per node"),
            "{}",
            over.summary
        );
        let limit = database_check(3.0, &usage(&[("other", 21)]), &nodes, &budget(6, 20));
        assert!(
            limit.summary.ends_with("; 21 in use > limit 20"),
            "{}",
            limit.summary
        );
        // Behind a pooler, names are not held per node (the pooler check does it).
        let mut pooled = budget(6, 20);
        pooled.clients = Some(crate::budget::ClientSide {
            per_node: 5,
            reserve: 3,
            steady: 13,
            peak: 18,
            limit: 1000,
        });
        let behind = database_check(3.0, &usage(&[("c-app-1", 7)]), &nodes, &pooled);
        assert!(behind.passed, "{}", behind.summary);
        assert!(
            behind
                .summary
                .contains("(c-app-1 7, c-app-2 0), through PgBouncer,"),
            "{}",
            behind.summary
        );
        let one = database_check(3.0, &usage(&[("psql", 1)]), &nodes, &budget(6, 20));
        assert!(
            one.summary.contains("1 connection in use"),
            "{}",
            one.summary
        );
    }
}
