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
//!
//! With a pooler (PgBouncer in transaction mode) in front, PostgreSQL sees the
//! pooler's server connections instead of the nodes' pools; only the job queue's
//! LISTEN connection (and `app migrate`'s advisory lock, in the reserve) go to it
//! directly, since they need a session of their own. The budget then has two
//! sides, and both must fit:
//!
//! ```text
//! server side (PostgreSQL)
//!   per node = 1                                  (the LISTEN connection, direct)
//!   peak     = server_pool + (nodes + max_surge) × 1 + reserve
//!   limit    = max_connections − superuser_reserved_connections
//! client side (the pooler)
//!   peak     = (nodes + max_surge) × pool_size + reserve
//!   limit    = the pooler's max_client_conn
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
    /// A pooler between the nodes and PostgreSQL, if any.
    pub pooler: Option<PoolerInput>,
}

/// The pooler's two limits: its connections to PostgreSQL, and the clients it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolerInput {
    /// Server connections the pooler opens to PostgreSQL at most.
    pub server_pool: u32,
    /// Client connections the pooler accepts at most (`max_client_conn`).
    pub max_clients: u32,
}

/// The client side of a pooled budget: the nodes' pools against the pooler's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientSide {
    pub per_node: u32,
    pub reserve: u32,
    pub steady: u32,
    pub peak: u32,
    /// The pooler's `max_client_conn`.
    pub limit: u32,
}

impl ClientSide {
    pub fn fit(&self) -> Fit {
        Fit {
            peak: self.peak,
            limit: self.limit,
        }
    }
}

/// One side of the budget: a peak against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub peak: u32,
    pub limit: u32,
}

impl Fit {
    pub fn fits(self) -> bool {
        self.peak <= self.limit
    }

    pub fn over_by(self) -> u32 {
        self.peak.saturating_sub(self.limit)
    }

    pub fn headroom(self) -> i64 {
        self.limit as i64 - self.peak as i64
    }

    pub fn headroom_percent(self) -> f64 {
        if self.limit == 0 {
            return 0.0;
        }
        self.headroom() as f64 * 100.0 / self.limit as f64
    }
}

/// The server side is what PostgreSQL sees: without a pooler, every node's pool
/// and listener; with one, the pooler's server pool and each node's listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub nodes: u32,
    pub max_surge: u32,
    pub pool_size: u32,
    pub extra_per_node: u32,
    /// Connections each node opens to PostgreSQL itself.
    pub per_node: u32,
    pub reserve: u32,
    /// The pooler's server connections (0 without a pooler).
    pub server_pool: u32,
    pub steady: u32,
    pub peak: u32,
    pub max_connections: u32,
    pub superuser_reserved: u32,
    pub limit: u32,
    /// The client side, when a pooler is in front.
    pub clients: Option<ClientSide>,
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
            pooler,
        } = *input;
        let (per_node, server_pool) = match pooler {
            None => (pool_size + EXTRA_PER_NODE, 0),
            Some(p) => (EXTRA_PER_NODE, p.server_pool),
        };
        let clients = pooler.map(|p| ClientSide {
            per_node: pool_size,
            reserve,
            steady: nodes * pool_size + reserve,
            peak: (nodes + max_surge) * pool_size + reserve,
            limit: p.max_clients,
        });
        Budget {
            nodes,
            max_surge,
            pool_size,
            extra_per_node: EXTRA_PER_NODE,
            per_node,
            reserve,
            server_pool,
            steady: server_pool + nodes * per_node + reserve,
            peak: server_pool + (nodes + max_surge) * per_node + reserve,
            max_connections,
            superuser_reserved,
            limit: max_connections.saturating_sub(superuser_reserved),
            clients,
        }
    }

    pub fn pooled(&self) -> bool {
        self.clients.is_some()
    }

    /// The server side: what PostgreSQL sees at peak against its limit.
    pub fn server(&self) -> Fit {
        Fit {
            peak: self.peak,
            limit: self.limit,
        }
    }

    /// Both sides fit.
    pub fn fits(&self) -> bool {
        self.server_fits() && self.clients.as_ref().is_none_or(|c| c.fit().fits())
    }

    /// The server side (PostgreSQL) fits.
    pub fn server_fits(&self) -> bool {
        self.server().fits()
    }

    pub fn over_by(&self) -> u32 {
        self.server().over_by()
    }

    pub fn headroom(&self) -> i64 {
        self.server().headroom()
    }

    pub fn headroom_percent(&self) -> f64 {
        self.server().headroom_percent()
    }

    /// The largest pool_size for which the peak fits, if any pool of at least 1 does:
    /// on the server side without a pooler, on the client side with one.
    pub fn largest_pool_that_fits(&self) -> Option<u32> {
        let instances = self.nodes + self.max_surge;
        let pool = match &self.clients {
            None => {
                let available = self.limit.checked_sub(self.reserve)?;
                (available / instances).checked_sub(self.extra_per_node)?
            }
            Some(c) => c.limit.checked_sub(c.reserve)? / instances,
        };
        (pool >= 1).then_some(pool)
    }

    /// With a pooler: the largest server pool for which the server side fits.
    pub fn largest_server_pool_that_fits(&self) -> Option<u32> {
        self.clients.as_ref()?;
        let direct = (self.nodes + self.max_surge) * self.per_node + self.reserve;
        let pool = self.limit.checked_sub(direct)?;
        (pool >= 1).then_some(pool)
    }

    /// With a pooler: the `max_client_conn` at which the client peak just fits.
    pub fn max_clients_needed(&self) -> Option<u32> {
        self.clients.as_ref().map(|c| c.peak)
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

    /// How the server side's peak is reached, with the numbers.
    pub fn formula(&self) -> String {
        if self.pooled() {
            return format!(
                "peak = pooler_pool_size {} + (nodes {} + max_surge {}) × {} listener + reserve {} = {}",
                self.server_pool,
                self.nodes,
                self.max_surge,
                self.extra_per_node,
                self.reserve,
                self.peak
            );
        }
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

    /// How the client side's peak is reached, with a pooler.
    pub fn client_formula(&self) -> Option<String> {
        let c = self.clients.as_ref()?;
        Some(format!(
            "clients at peak = (nodes {} + max_surge {}) × pool_size {} + reserve {} = {}",
            self.nodes, self.max_surge, c.per_node, c.reserve, c.peak
        ))
    }

    /// The budget as a small table, as `deployer validate` prints it.
    pub fn table(&self) -> String {
        match &self.clients {
            None => table("connection budget\n", &[self.server_rows()]),
            Some(c) => table(
                "connection budget (PgBouncer, transaction mode)\n",
                &[
                    section("server side: PostgreSQL", self.server_rows()),
                    section("client side: the pooler", client_rows(c, self)),
                ],
            ),
        }
    }

    fn server_rows(&self) -> Vec<Row> {
        if self.pooled() {
            return vec![
                (
                    "per node".into(),
                    format!("{} listener (direct)", self.extra_per_node),
                    self.per_node.to_string(),
                ),
                (
                    "pooler".into(),
                    format!("{} server connections", self.server_pool),
                    self.server_pool.to_string(),
                ),
                (
                    "steady state".into(),
                    format!(
                        "{} + {} nodes × {} + {} reserve",
                        self.server_pool, self.nodes, self.per_node, self.reserve
                    ),
                    self.steady.to_string(),
                ),
                (
                    "peak (rolling update)".into(),
                    format!(
                        "{} + ({} + {} surge) × {} + {} reserve",
                        self.server_pool, self.nodes, self.max_surge, self.per_node, self.reserve
                    ),
                    self.peak.to_string(),
                ),
                self.limit_row(),
                self.headroom_row(),
            ];
        }
        vec![
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
            self.limit_row(),
            self.headroom_row(),
        ]
    }

    fn limit_row(&self) -> Row {
        (
            "limit".to_string(),
            format!(
                "{} max_connections − {} superuser reserved",
                self.max_connections, self.superuser_reserved
            ),
            self.limit.to_string(),
        )
    }

    fn headroom_row(&self) -> Row {
        (
            "headroom".to_string(),
            format!("{:.1}% of the limit", self.headroom_percent()),
            self.headroom().to_string(),
        )
    }
}

/// One line of the table: what, how, how many.
type Row = (String, String, String);

fn section(title: &str, rows: Vec<Row>) -> Vec<Row> {
    let mut out = vec![(title.to_string(), String::new(), String::new())];
    out.extend(rows.into_iter().map(|(a, b, c)| (format!("  {a}"), b, c)));
    out
}

fn client_rows(c: &ClientSide, b: &Budget) -> Vec<Row> {
    vec![
        (
            "per node".into(),
            format!("{} pool", c.per_node),
            c.per_node.to_string(),
        ),
        (
            "steady state".into(),
            format!("{} nodes × {} + {} reserve", b.nodes, c.per_node, c.reserve),
            c.steady.to_string(),
        ),
        (
            "peak (rolling update)".into(),
            format!(
                "({} + {} surge) × {} + {} reserve",
                b.nodes, b.max_surge, c.per_node, c.reserve
            ),
            c.peak.to_string(),
        ),
        (
            "limit".into(),
            format!("{} pooler_max_client_conn", c.limit),
            c.limit.to_string(),
        ),
        (
            "headroom".into(),
            format!("{:.1}% of the limit", c.fit().headroom_percent()),
            c.fit().headroom().to_string(),
        ),
    ]
}

/// Rows aligned in three columns; a row with only a name is a section title.
fn table(title: &str, sections: &[Vec<Row>]) -> String {
    let rows: Vec<&Row> = sections.iter().flatten().collect();
    let w0 = rows
        .iter()
        .filter(|r| !r.1.is_empty())
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::from(title);
    for (a, b, c) in rows {
        if b.is_empty() {
            out.push_str(&format!("  {a}\n"));
            continue;
        }
        let pad = w1 - b.chars().count();
        out.push_str(&format!("  {a:<w0$}  {b}{}  {c:>w2$}\n", " ".repeat(pad)));
    }
    out
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
            pooler: None,
        })
    }

    /// `nodes` × `pool` behind a pooler with `server_pool` server connections and
    /// `max_clients`, max_surge 1, reserve 3, superuser reserve 3.
    fn pooled(nodes: u32, pool: u32, max: u32, server_pool: u32, max_clients: u32) -> Budget {
        Budget::compute(&BudgetInput {
            nodes,
            pool_size: pool,
            max_surge: 1,
            reserve: 3,
            max_connections: max,
            superuser_reserved: 3,
            pooler: Some(PoolerInput {
                server_pool,
                max_clients,
            }),
        })
    }

    #[test]
    fn twenty_nodes_fit_behind_a_pooler_but_not_without() {
        // Without: 21 × 11 + 3 = 234 > 97.
        let direct = budget(20, 1, 10, 3, 100, 3);
        assert_eq!(direct.peak, 234);
        assert!(!direct.fits());
        // With: PostgreSQL sees 20 pooled + 21 listeners + 3 reserve = 44 ≤ 97;
        // the pooler sees 21 × 10 + 3 = 213 ≤ 1000.
        let b = pooled(20, 10, 100, 20, 1000);
        assert_eq!(b.per_node, 1);
        assert_eq!(b.steady, 20 + 20 + 3);
        assert_eq!(b.peak, 44);
        assert_eq!(b.limit, 97);
        let c = b.clients.as_ref().unwrap();
        assert_eq!((c.steady, c.peak, c.limit), (203, 213, 1000));
        assert!(b.server_fits() && c.fit().fits() && b.fits());
        assert_eq!(
            b.formula(),
            "peak = pooler_pool_size 20 + (nodes 20 + max_surge 1) × 1 listener + reserve 3 = 44"
        );
        assert_eq!(
            b.client_formula().unwrap(),
            "clients at peak = (nodes 20 + max_surge 1) × pool_size 10 + reserve 3 = 213"
        );
    }

    #[test]
    fn pooled_server_side_over_suggests_the_server_pool_and_max_connections() {
        // 80 + 21 + 3 = 104 > 97: the largest server pool is 97 − 21 − 3 = 73.
        let b = pooled(20, 10, 100, 80, 1000);
        assert_eq!(b.peak, 104);
        assert_eq!(b.over_by(), 7);
        assert!(!b.fits());
        assert!(b.clients.as_ref().unwrap().fit().fits());
        assert_eq!(b.largest_server_pool_that_fits(), Some(73));
        assert_eq!(b.max_connections_needed(), 107);
        assert!(pooled(20, 10, 100, 73, 1000).fits());
        assert!(!pooled(20, 10, 100, 74, 1000).fits());
        // Listeners alone overflow: no server pool fits.
        assert_eq!(
            pooled(64, 10, 60, 20, 1000).largest_server_pool_that_fits(),
            None
        );
    }

    #[test]
    fn pooled_client_side_over_suggests_the_pool_and_max_client_conn() {
        // 21 × 10 + 3 = 213 > 200 clients.
        let b = pooled(20, 10, 100, 20, 200);
        assert!(b.server_fits());
        let c = b.clients.as_ref().unwrap();
        assert_eq!(c.fit().over_by(), 13);
        assert!(!b.fits());
        // (200 − 3) / 21 = 9: 21 × 9 + 3 = 192 ≤ 200.
        assert_eq!(b.largest_pool_that_fits(), Some(9));
        assert_eq!(b.max_clients_needed(), Some(213));
        assert!(pooled(20, 9, 100, 20, 200).fits());
        assert!(pooled(20, 10, 100, 20, 213).fits());
        assert!(!pooled(20, 10, 100, 20, 212).fits());
    }

    #[test]
    fn pooled_table_shows_both_sides() {
        let t = pooled(20, 10, 100, 20, 1000).table();
        assert_eq!(
            t,
            "connection budget (PgBouncer, transaction mode)\n\
             \x20 server side: PostgreSQL\n\
             \x20   per node               1 listener (direct)                            1\n\
             \x20   pooler                 20 server connections                         20\n\
             \x20   steady state           20 + 20 nodes × 1 + 3 reserve                 43\n\
             \x20   peak (rolling update)  20 + (20 + 1 surge) × 1 + 3 reserve           44\n\
             \x20   limit                  100 max_connections − 3 superuser reserved    97\n\
             \x20   headroom               54.6% of the limit                            53\n\
             \x20 client side: the pooler\n\
             \x20   per node               10 pool                                       10\n\
             \x20   steady state           20 nodes × 10 + 3 reserve                    203\n\
             \x20   peak (rolling update)  (20 + 1 surge) × 10 + 3 reserve              213\n\
             \x20   limit                  1000 pooler_max_client_conn                 1000\n\
             \x20   headroom               78.7% of the limit                           787\n"
        );
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
