//! The last check: deletes what verify created (also what an interrupted run left) and
//! confirms nothing labelled is left.

use super::super::verdict::{self, Removed};
use super::super::{Check, Verifier};
use crate::target::Probes;

impl Verifier<'_> {
    /// Deletes what verify created (also what an interrupted run left): its user (and, through the foreign key, its outbox
    /// email), every job it caused, and any failed-login counter of its address.
    pub(in crate::verify) async fn cleanup(&self) -> Check {
        let email = self.email();
        let sql = String::from(
            "WITH u AS (SELECT id FROM users WHERE email LIKE 'verify-%@verify.invalid'), \
             j AS (DELETE FROM jobs WHERE args ? 'verify' \
                   OR (kind = 'welcome_email' AND args->>'user_id' IN (SELECT id::text FROM u)) RETURNING 1), \
             o AS (DELETE FROM outbox_emails WHERE user_id IN (SELECT id FROM u) RETURNING 1), \
             f AS (DELETE FROM login_failures WHERE key LIKE 'login|verify-%@verify.invalid|%' RETURNING 1), \
             d AS (DELETE FROM users WHERE id IN (SELECT id FROM u) RETURNING 1) \
             SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM j), (SELECT count(*) FROM o), (SELECT count(*) FROM f)"
        );
        let rows = match self.probes.sql(&sql).await {
            Ok(r) => r,
            Err(e) => {
                return Check::failed(
                    "cleanup",
                    format!("could not delete test user {email} and its jobs: {e:#}"),
                )
            }
        };
        let Some(removed) = Removed::parse(&rows) else {
            return Check::failed("cleanup", format!("unexpected answer {rows:?}"));
        };
        // Nothing labelled may be left.
        let left = self
            .probes
            .sql(
                "SELECT (SELECT count(*) FROM users WHERE email LIKE 'verify-%@verify.invalid') + \
                 (SELECT count(*) FROM jobs WHERE args ? 'verify')",
            )
            .await
            .ok()
            .and_then(|r| r.first()?.first()?.parse::<u64>().ok());
        verdict::cleanup_check(&email, &self.tag, removed, left)
    }
}
