//! The cleanup check: the rows verify labelled are deleted and nothing is left.

use serde_json::json;

use super::super::Check;

/// Rows the cleanup deleted: users, jobs, outbox emails, login-failure counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::verify) struct Removed {
    pub users: u64,
    pub jobs: u64,
    pub outbox: u64,
    pub failures: u64,
}

impl Removed {
    /// The cleanup query's one row.
    pub fn parse(rows: &[Vec<String>]) -> Option<Removed> {
        let nums: Vec<u64> = rows
            .first()
            .map(|r| r.iter().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let [users, jobs, outbox, failures] = nums[..] else {
            return None;
        };
        Some(Removed {
            users,
            jobs,
            outbox,
            failures,
        })
    }
}

/// The cleanup check: it passes when nothing labelled is `left` (None: unknown).
pub(in crate::verify) fn cleanup_check(
    email: &str,
    tag: &str,
    removed: Removed,
    left: Option<u64>,
) -> Check {
    let Removed {
        users,
        jobs,
        outbox,
        failures,
    } = removed;
    Check::new(
        "cleanup",
        left == Some(0),
        format!(
            "removed test user {email} ({users}), {jobs} jobs, {outbox} outbox email{}, {failures} login counters{}",
            if outbox == 1 { "" } else { "s" },
            match left {
                Some(0) => String::new(),
                Some(n) => format!("; {n} rows are left"),
                None => "; could not confirm nothing is left".into(),
            }
        ),
        json!({
            "email": email, "tag": tag,
            "users": users, "jobs": jobs, "outbox_emails": outbox, "login_failures": failures,
            "left": left,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::strings;
    use super::*;

    #[test]
    fn cleanup_passes_only_when_nothing_is_left() {
        let rows = vec![strings(&["1", "3", "1", "0"])];
        let removed = Removed::parse(&rows).unwrap();
        assert_eq!(
            removed,
            Removed {
                users: 1,
                jobs: 3,
                outbox: 1,
                failures: 0
            }
        );
        assert_eq!(Removed::parse(&[strings(&["1", "2"])]), None);
        assert_eq!(Removed::parse(&[]), None);
        let e = "verify-x@verify.invalid";
        let done = cleanup_check(e, "x", removed, Some(0));
        assert!(done.passed);
        assert_eq!(
            done.summary,
            "removed test user verify-x@verify.invalid (1), 3 jobs, 1 outbox email, 0 login counters"
        );
        assert!(cleanup_check(e, "x", removed, Some(2))
            .summary
            .ends_with("; 2 rows are left"));
        let unknown = cleanup_check(e, "x", removed, None);
        assert!(!unknown.passed);
        assert!(unknown
            .summary
            .ends_with("; could not confirm nothing is left"));
    }
}
