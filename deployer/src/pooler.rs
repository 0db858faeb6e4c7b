//! What PgBouncer says about its pools (`SHOW POOLS` on its admin console), read by
//! `status` and `verify`. Target-neutral: rows in, figures out.

use serde::Serialize;

/// One pool (a database and user pair) of PgBouncer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    pub database: String,
    pub user: String,
    /// Clients linked to a server connection, or idle between transactions.
    pub clients_active: u32,
    /// Clients waiting for a server connection.
    pub clients_waiting: u32,
    /// Server connections carrying a transaction now.
    pub servers_active: u32,
    /// Server connections open and unused.
    pub servers_idle: u32,
    /// Server connections being checked, logged in, or just released.
    pub servers_other: u32,
}

impl PoolStats {
    /// Every client connection of the pool.
    pub fn clients(&self) -> u32 {
        self.clients_active + self.clients_waiting
    }

    /// Every connection the pool holds to PostgreSQL.
    pub fn servers(&self) -> u32 {
        self.servers_active + self.servers_idle + self.servers_other
    }

    /// `SHOW POOLS` as rows of fields whose first row is the header; the admin
    /// console's own pool (`pgbouncer`) is left out. Columns are found by name, so
    /// versions that add columns parse alike.
    pub fn parse(rows: &[Vec<String>]) -> Result<Vec<PoolStats>, String> {
        let (header, rows) = rows
            .split_first()
            .ok_or_else(|| "SHOW POOLS answered nothing".to_string())?;
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("SHOW POOLS has no column `{name}`"))
        };
        let text = |row: &[String], i: usize| row.get(i).cloned().unwrap_or_default();
        let num = |row: &[String], name: &str| -> Result<u32, String> {
            let i = col(name)?;
            let v = text(row, i);
            v.trim()
                .parse()
                .map_err(|_| format!("SHOW POOLS: `{name}` is `{v}`, not a number"))
        };
        let (db, user) = (col("database")?, col("user")?);
        let mut out = Vec::new();
        for row in rows {
            let database = text(row, db);
            if database == "pgbouncer" {
                continue;
            }
            let mut other = 0;
            for name in ["sv_used", "sv_tested", "sv_login"] {
                other += num(row, name)?;
            }
            out.push(PoolStats {
                database,
                user: text(row, user),
                clients_active: num(row, "cl_active")?,
                clients_waiting: num(row, "cl_waiting")?,
                servers_active: num(row, "sv_active")?,
                servers_idle: num(row, "sv_idle")?,
                servers_other: other,
            });
        }
        Ok(out)
    }

    /// `clients 12 (0 waiting), servers 4 (2 active, 2 idle)`.
    pub fn summary(&self) -> String {
        format!(
            "clients {} ({} waiting), servers {} ({} active, {} idle)",
            self.clients(),
            self.clients_waiting,
            self.servers(),
            self.servers_active,
            self.servers_idle
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[&str]) -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// The header PgBouncer 1.24 prints.
    const HEADER: &str = "database\tuser\tcl_active\tcl_waiting\tcl_active_cancel_req\tcl_waiting_cancel_req\tsv_active\tsv_active_cancel\tsv_being_canceled\tsv_idle\tsv_used\tsv_tested\tsv_login\tmaxwait\tmaxwait_us\tpool_mode\tload_balance_hosts";

    #[test]
    fn show_pools_parses_by_column_name_without_the_console() {
        let got = PoolStats::parse(&rows(&[
            HEADER,
            "app\tapp\t12\t3\t0\t0\t4\t0\t0\t2\t1\t0\t1\t0\t0\ttransaction\t",
            "pgbouncer\tpgbouncer\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tstatement\t",
        ]))
        .unwrap();
        assert_eq!(got.len(), 1);
        let p = &got[0];
        assert_eq!((p.database.as_str(), p.user.as_str()), ("app", "app"));
        assert_eq!((p.clients(), p.servers()), (15, 8));
        assert_eq!(
            p.summary(),
            "clients 15 (3 waiting), servers 8 (4 active, 2 idle)"
        );
    }

    #[test]
    fn a_strange_answer_is_an_error_not_a_zero() {
        assert!(PoolStats::parse(&[]).is_err());
        let missing = PoolStats::parse(&rows(&["database\tuser", "app\tapp"])).unwrap_err();
        assert_eq!(missing, "SHOW POOLS has no column `sv_used`");
        let bad = PoolStats::parse(&rows(&[
            HEADER,
            "app\tapp\tx\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\ttransaction\t",
        ]))
        .unwrap_err();
        assert_eq!(bad, "SHOW POOLS: `cl_active` is `x`, not a number");
    }
}
