//! The job queue in PostgreSQL, shared by every node (Oban-like): `queue` holds the SQL,
//! `runner` the node's workers, `workers` what each kind of job does.

pub mod queue;
pub mod runner;
pub mod workers;

use std::str::FromStr;

use serde::Serialize;

pub use queue::{JobView, NewJob, Queue, Stats};
pub use runner::JobRunner;

/// Where a job is in its life. `available`, `scheduled` and `retryable` jobs are run once their
/// `scheduled_at` has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, sqlx::Type)]
#[sqlx(type_name = "job_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Available,
    Scheduled,
    Executing,
    Retryable,
    Completed,
    Discarded,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Executing,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Executing => "executing",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
        }
    }
}

/// The kinds of job a node knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Completes at once: for tests and benchmarks.
    Noop,
    /// Writes a welcome email for a new user to the outbox.
    WelcomeEmail,
    /// Sleeps `{"ms": n}` milliseconds, then completes.
    Sleep,
    /// Fails with `{"message": "…"}`; with `{"times": n}` only its first n attempts fail.
    Fail,
}

impl JobKind {
    pub const NAMES: [&'static str; 4] = ["noop", "welcome_email", "sleep", "fail"];

    /// Whether a client may enqueue this kind through the API. `welcome_email` is the system's
    /// own (a client could otherwise mail any user); `sleep` and `fail` exist for tests and
    /// only with `test_kinds` (the node's `JOB_TEST_KINDS`): a dozen long sleeps would hold
    /// every worker.
    pub fn enqueueable(self, test_kinds: bool) -> bool {
        match self {
            JobKind::Noop => true,
            JobKind::WelcomeEmail => false,
            JobKind::Sleep | JobKind::Fail => test_kinds,
        }
    }

    /// The kinds a client may enqueue, for error messages.
    pub fn enqueueable_names(test_kinds: bool) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|name| {
                name.parse::<JobKind>()
                    .is_ok_and(|kind| kind.enqueueable(test_kinds))
            })
            .copied()
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Noop => "noop",
            JobKind::WelcomeEmail => "welcome_email",
            JobKind::Sleep => "sleep",
            JobKind::Fail => "fail",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown job kind `{0}`")]
pub struct UnknownKind(String);

impl FromStr for JobKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "noop" => Ok(JobKind::Noop),
            "welcome_email" => Ok(JobKind::WelcomeEmail),
            "sleep" => Ok(JobKind::Sleep),
            "fail" => Ok(JobKind::Fail),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}
