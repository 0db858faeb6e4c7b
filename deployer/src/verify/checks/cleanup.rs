//! The last check: deletes what this verify run created (by the tag it generated) and
//! confirms none of it is left.

use super::super::verdict::{self, Removed};
use super::super::{Check, Verifier};
use crate::target::Probes;

impl Verifier<'_> {
    /// Deletes what this run created, found by the random tag it generated and nothing a real
    /// user could match: its user (by its exact email, `verify-<tag>@verify.invalid`; its outbox
    /// email goes with it), the jobs it enqueued (`args.verify` = the tag) and those caused by
    /// its user, and the failed-login counters of its email.
    pub(in crate::verify) async fn cleanup(&self) -> Check {
        let email = self.email();
        let tag = &self.tag;
        // The tag is 12 of [a-z0-9] (random_tag), so both literals are plain.
        debug_assert!(tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let sql = format!(
            "WITH u AS (SELECT id FROM users WHERE email = '{email}'), \
             j AS (DELETE FROM jobs WHERE args->>'verify' = '{tag}' \
                   OR owner_id IN (SELECT id FROM u) \
                   OR (kind = 'welcome_email' AND args->>'user_id' IN (SELECT id::text FROM u)) RETURNING 1), \
             o AS (DELETE FROM outbox_emails WHERE user_id IN (SELECT id FROM u) RETURNING 1), \
             f AS (DELETE FROM login_failures WHERE split_part(key, '|', 2) = '{email}' RETURNING 1), \
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
        // Nothing of this run may be left.
        let left = self
            .probes
            .sql(&format!(
                "SELECT (SELECT count(*) FROM users WHERE email = '{email}') + \
                 (SELECT count(*) FROM jobs WHERE args->>'verify' = '{tag}')"
            ))
            .await
            .ok()
            .and_then(|r| r.first()?.first()?.parse::<u64>().ok());
        verdict::cleanup_check(&email, &self.tag, removed, left)
    }
}
