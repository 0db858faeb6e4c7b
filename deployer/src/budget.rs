//! The connection budget: does the cluster fit under PostgreSQL's `max_connections`?
//!
//! Each node opens at most `pool_size` pooled connections (request handlers and job
//! workers share the pool) plus one dedicated connection that LISTENs for job
//! notifications. During a rolling update `max_surge` extra nodes exist. The
//! deployer itself needs a few connections (migrations, `status`) and a human may
//! open psql: that is the reserve.
//!
//! ```text
//! per node = pool_size + 1
//! steady   = nodes × per node + reserve
//! peak     = (nodes + max_surge) × per node + reserve
//! limit    = max_connections − superuser_reserved_connections
//! peak ≤ limit
//! ```

use serde::Serialize;

/// Connections a node opens beyond its pool: the job queue's LISTEN connection.
pub const EXTRA_PER_NODE: u32 = 1;

/// What the budget depends on, as plain numbers (the cluster spec provides them
/// through `ClusterSpec::budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetInput {
    pub nodes: u32,
    pub pool_size: u32,
    pub max_surge: u32,
    /// Connections kept free for migrations, `deployer status` and a psql session.
    pub reserve: u32,
    pub max_connections: u32,
    pub superuser_reserved: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub nodes: u32,
    pub max_surge: u32,
    pub pool_size: u32,
    pub extra_per_node: u32,
    pub per_node: u32,
    pub reserve: u32,
    pub steady: u32,
    pub peak: u32,
    pub max_connections: u32,
    pub superuser_reserved: u32,
    pub limit: u32,
}

impl Budget {
    pub fn compute(input: &BudgetInput) -> Budget {
        let BudgetInput {
            nodes,
            pool_size,
            max_surge,
            reserve,
            max_connections,
            superuser_reserved,
        } = *input;
        let per_node = pool_size + EXTRA_PER_NODE;
        Budget {
            nodes,
            max_surge,
            pool_size,
            extra_per_node: EXTRA_PER_NODE,
            per_node,
            reserve,
            steady: nodes * per_node + reserve,
            peak: (nodes + max_surge) * per_node + reserve,
            max_connections,
            superuser_reserved,
            limit: max_connections.saturating_sub(superuser_reserved),
        }
    }

    pub fn fits(&self) -> bool {
        self.peak <= self.limit
    }

    pub fn over_by(&self) -> u32 {
        self.peak.saturating_sub(self.limit)
    }

    pub fn headroom(&self) -> i64 {
        self.limit as i64 - self.peak as i64
    }

    pub fn headroom_percent(&self) -> f64 {
        if self.limit == 0 {
            return 0.0;
        }
        self.headroom() as f64 * 100.0 / self.limit as f64
    }

    /// The largest pool_size for which the peak fits, if any pool of at least 1 does.
    pub fn largest_pool_that_fits(&self) -> Option<u32> {
        let instances = self.nodes + self.max_surge;
        let available = self.limit.checked_sub(self.reserve)?;
        let per_node = available / instances;
        let pool = per_node.checked_sub(self.extra_per_node)?;
        (pool >= 1).then_some(pool)
    }

    /// The max_connections at which the current peak would just fit.
    pub fn max_connections_needed(&self) -> u32 {
        self.peak + self.superuser_reserved
    }

    /// The max_connections that leaves `percent` of headroom at peak.
    pub fn max_connections_for_headroom(&self, percent: f64) -> u32 {
        let limit = (self.peak as f64 / (1.0 - percent / 100.0)).ceil() as u32;
        limit + self.superuser_reserved
    }

    pub fn formula(&self) -> String {
        format!(
            "peak = (nodes {} + max_surge {}) × (pool_size {} + {} listener) + reserve {} = {}",
            self.nodes,
            self.max_surge,
            self.pool_size,
            self.extra_per_node,
            self.reserve,
            self.peak
        )
    }

    /// The budget as a small table, as `deployer validate` prints it.
    pub fn table(&self) -> String {
        let rows = [
            (
                "per node".to_string(),
                format!("{} pool + {} listener", self.pool_size, self.extra_per_node),
                self.per_node.to_string(),
            ),
            (
                "steady state".to_string(),
                format!(
                    "{} nodes × {} + {} reserve",
                    self.nodes, self.per_node, self.reserve
                ),
                self.steady.to_string(),
            ),
            (
                "peak (rolling update)".to_string(),
                format!(
                    "({} + {} surge) × {} + {} reserve",
                    self.nodes, self.max_surge, self.per_node, self.reserve
                ),
                self.peak.to_string(),
            ),
            (
                "limit".to_string(),
                format!(
                    "{} max_connections − {} superuser reserved",
                    self.max_connections, self.superuser_reserved
                ),
                self.limit.to_string(),
            ),
            (
                "headroom".to_string(),
                format!("{:.1}% of the limit", self.headroom_percent()),
                self.headroom().to_string(),
            ),
        ];
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
        let mut out = String::from("connection budget\n");
        for (a, b, c) in rows {
            let pad = w1 - b.chars().count();
            out.push_str(&format!("  {a:<w0$}  {b}{}  {c:>w2$}\n", " ".repeat(pad)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(nodes: u32, surge: u32, pool: u32, reserve: u32, max: u32, su: u32) -> Budget {
        Budget::compute(&BudgetInput {
            nodes,
            pool_size: pool,
            max_surge: surge,
            reserve,
            max_connections: max,
            superuser_reserved: su,
        })
    }

    #[test]
    fn classic_three_nodes_fit() {
        let b = budget(3, 1, 10, 3, 100, 3);
        assert_eq!(b.per_node, 11);
        assert_eq!(b.steady, 36);
        assert_eq!(b.peak, 47);
        assert_eq!(b.limit, 97);
        assert!(b.fits());
        assert_eq!(b.headroom(), 50);
    }

    #[test]
    fn over_budget_suggests_pool_and_max_connections() {
        // 5 nodes + 1 surge, pool 20: 6 × 21 + 3 = 129 > 97.
        let b = budget(5, 1, 20, 3, 100, 3);
        assert_eq!(b.peak, 129);
        assert_eq!(b.over_by(), 32);
        // (97 - 3) / 6 = 15 per node → pool 14: 6 × 15 + 3 = 93 ≤ 97.
        assert_eq!(b.largest_pool_that_fits(), Some(14));
        assert_eq!(b.max_connections_needed(), 132);
        let fixed = budget(5, 1, 14, 3, 100, 3);
        assert!(fixed.fits());
        let one_more = budget(5, 1, 15, 3, 100, 3);
        assert!(!one_more.fits());
    }

    #[test]
    fn no_pool_fits_when_nodes_alone_overflow() {
        let b = budget(60, 4, 10, 3, 100, 3);
        assert_eq!(b.largest_pool_that_fits(), None);
    }

    #[test]
    fn table_lists_every_row() {
        // The same table `deployer validate` prints for the example cluster.toml.
        let t = budget(3, 1, 10, 3, 100, 3).table();
        assert_eq!(
            t,
            "connection budget\n\
             \x20 per node               10 pool + 1 listener                        11\n\
             \x20 steady state           3 nodes × 11 + 3 reserve                    36\n\
             \x20 peak (rolling update)  (3 + 1 surge) × 11 + 3 reserve              47\n\
             \x20 limit                  100 max_connections − 3 superuser reserved  97\n\
             \x20 headroom               51.5% of the limit                          50\n"
        );
    }

    #[test]
    fn headroom_target() {
        let b = budget(3, 1, 10, 3, 50, 3);
        // peak 47, limit 47: 0% headroom; 10% needs limit ≥ 52.2 → 53 + 3.
        assert_eq!(b.headroom(), 0);
        assert_eq!(b.max_connections_for_headroom(10.0), 56);
    }
}
