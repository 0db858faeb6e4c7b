//! The database check: PostgreSQL answers, and the connections in use stay within the
//! connection budget.

use std::collections::BTreeMap;
use std::time::Instant;

use super::super::verdict::{self, round};
use super::super::{Check, Verifier};
use crate::target::Probes;

impl Verifier<'_> {
    /// Check 4: the database answers, and the connections in use stay within the budget.
    pub(in crate::verify) async fn database(&self) -> Check {
        let budget = self.loaded.spec.budget();
        let sql = "SELECT coalesce(nullif(application_name, ''), '(none)'), count(*) FROM pg_stat_activity \
                   WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1";
        let t = Instant::now();
        let rows = match self.probes.sql(sql).await {
            Ok(r) => r,
            Err(e) => return Check::failed("database", format!("{e:#}")),
        };
        let ms = round(t.elapsed().as_secs_f64() * 1000.0, 0);
        let usage: BTreeMap<String, u32> = rows
            .iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.parse().ok()?)))
            .collect();
        verdict::database_check(ms, &usage, &self.node_names(), &budget)
    }
}
