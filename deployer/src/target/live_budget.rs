//! The live budget check every target makes before nodes change: the running
//! database's `max_connections`, and the connections held by clients other
//! than this cluster's nodes, against the cluster's peak. The SQL and the
//! judgement are here; each target runs the SQL its own way.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum LiveBudgetError {
    #[error(
        "the connection budget does not fit the running database: it allows {limit} connections \
         ({max_connections} max_connections − {reserved} reserved); other clients hold {others}, \
         and the cluster's peak is {peak}: {} > {limit}. Lower pool_size or close the other connections",
        peak + others
    )]
    Over {
        limit: u32,
        max_connections: u32,
        reserved: u32,
        others: u32,
        peak: u32,
    },
    #[error("unexpected answer from pg_stat_activity: {answer:?}")]
    Answer { answer: Vec<Vec<String>> },
}

/// max_connections, superuser_reserved_connections, and the client connections
/// that are not the cluster's nodes, its migration, or this query.
pub fn sql(cluster: &str) -> String {
    format!(
        "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections'), \
         count(*) FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
         AND application_name NOT LIKE '{cluster}-app-%' AND application_name <> '{cluster}-migrate') \
         FROM pg_stat_activity"
    )
}

/// The budget fits the running database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub peak: u32,
    pub others: u32,
    pub limit: u32,
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "budget: peak {} + {} other connection(s) ≤ {} on the running database",
            self.peak, self.others, self.limit
        )
    }
}

/// Judges the answer to [`sql`] against the cluster's `peak`.
pub fn judge(rows: &[Vec<String>], peak: u32) -> Result<Fit, LiveBudgetError> {
    let nums: Vec<u32> = rows
        .first()
        .map(|r| r.iter().filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_default();
    let [max_connections, reserved, others] = nums[..] else {
        return Err(LiveBudgetError::Answer {
            answer: rows.to_vec(),
        });
    };
    let limit = max_connections.saturating_sub(reserved);
    if peak + others > limit {
        return Err(LiveBudgetError::Over {
            limit,
            max_connections,
            reserved,
            others,
            peak,
        });
    }
    Ok(Fit {
        peak,
        others,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &[&str]) -> Vec<Vec<String>> {
        vec![v.iter().map(|s| s.to_string()).collect()]
    }

    #[test]
    fn other_clients_count_against_the_peak() {
        assert_eq!(
            judge(&row(&["100", "3", "10"]), 47).unwrap(),
            Fit {
                peak: 47,
                others: 10,
                limit: 97
            }
        );
        let e = judge(&row(&["100", "3", "51"]), 47).unwrap_err();
        assert!(e.to_string().contains("98 > 97"), "{e}");
    }

    #[test]
    fn an_answer_that_is_not_three_numbers_is_an_error() {
        assert!(matches!(
            judge(&row(&["100", "x"]), 1),
            Err(LiveBudgetError::Answer { .. })
        ));
        assert!(judge(&[], 1).is_err());
    }
}
