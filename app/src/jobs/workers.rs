//! What each kind of job does.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::queue::FetchedJob;
use super::JobKind;

/// Runs one attempt of a job.
pub async fn perform(pool: &PgPool, job: &FetchedJob) -> anyhow::Result<()> {
    let kind: JobKind = job.kind.parse()?;
    match kind {
        JobKind::Noop => Ok(()),
        JobKind::Sleep => {
            #[derive(Deserialize)]
            struct Args {
                #[serde(default)]
                ms: u64,
            }
            let args: Args = parse_args(job)?;
            tokio::time::sleep(Duration::from_millis(args.ms.min(3_600_000))).await;
            Ok(())
        }
        JobKind::Fail => {
            #[derive(Deserialize)]
            struct Args {
                message: Option<String>,
                times: Option<i32>,
            }
            let args: Args = parse_args(job)?;
            if args.times.is_none_or(|times| job.attempts <= times) {
                bail!("{}", args.message.as_deref().unwrap_or("failed on purpose"));
            }
            Ok(())
        }
        JobKind::WelcomeEmail => welcome_email(pool, job).await,
    }
}

fn parse_args<T: serde::de::DeserializeOwned>(job: &FetchedJob) -> anyhow::Result<T> {
    serde_json::from_value(job.args.clone())
        .with_context(|| format!("invalid args for a `{}` job", job.kind))
}

/// Writes the welcome email to the outbox; a second run of the same job writes nothing new.
async fn welcome_email(pool: &PgPool, job: &FetchedJob) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Args {
        user_id: Uuid,
    }
    let args: Args = parse_args(job)?;
    let user: Option<(String, String)> =
        sqlx::query_as("SELECT email, full_name FROM users WHERE id = $1")
            .bind(args.user_id)
            .fetch_optional(pool)
            .await
            .context("failed to load the user")?;
    let Some((email, full_name)) = user else {
        bail!("user {} does not exist", args.user_id);
    };
    sqlx::query(
        "INSERT INTO outbox_emails (job_id, user_id, to_address, subject, body)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(job.id)
    .bind(args.user_id)
    .bind(&email)
    .bind("Welcome!")
    .bind(format!(
        "Hello {full_name},\n\nyour account is ready. Welcome aboard!\n"
    ))
    .execute(pool)
    .await
    .context("failed to write to the outbox")?;
    Ok(())
}
