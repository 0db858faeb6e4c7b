//! `POST /api/jobs`, `GET /api/jobs/{id}` and `GET /api/jobs/stats` (all authenticated).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{CurrentUser, Role};
use crate::config::JobSettings;
use crate::error::{ApiError, FieldErrors};
use crate::extract::{ApiJson, ApiPath};
use crate::jobs::{queue, JobKind, NewJob};
use crate::state::AppState;

/// The most attempts a client may ask for: with [`queue::MAX_ERROR_CHARS`] per attempt, a
/// job's error history stays under 13 KB.
const MAX_ATTEMPTS_LIMIT: i64 = 25;

/// The largest `args` accepted, serialized, in bytes.
pub const MAX_ARGS_BYTES: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
pub struct NewJobBody {
    kind: Option<String>,
    args: Option<serde_json::Value>,
    scheduled_at: Option<String>,
    max_attempts: Option<i64>,
}

impl NewJobBody {
    /// The job `owner` asked for, checked against the node's settings (`now` for the horizon).
    fn parse(
        self,
        settings: &JobSettings,
        owner: Uuid,
        now: DateTime<Utc>,
    ) -> Result<NewJob, FieldErrors> {
        let mut errors = FieldErrors::default();
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => {
                errors.add("kind", "can't be blank");
                None
            }
            Some(raw) => match raw.parse::<JobKind>() {
                Ok(kind) if kind.enqueueable(settings.test_kinds) => Some(kind),
                _ => {
                    errors.add(
                        "kind",
                        format!(
                            "is not one of {}",
                            JobKind::enqueueable_names(settings.test_kinds).join(", ")
                        ),
                    );
                    None
                }
            },
        };
        let args = match self.args {
            None | Some(serde_json::Value::Null) => json!({}),
            Some(args @ serde_json::Value::Object(_)) => {
                if args.to_string().len() > MAX_ARGS_BYTES {
                    errors.add(
                        "args",
                        format!("should be at most {MAX_ARGS_BYTES} bytes as JSON"),
                    );
                }
                args
            }
            Some(_) => {
                errors.add("args", "must be an object");
                json!({})
            }
        };
        let scheduled_at = match self.scheduled_at.as_deref() {
            None => None,
            Some(raw) => match DateTime::parse_from_rfc3339(raw) {
                Ok(at) => {
                    let at = at.with_timezone(&Utc);
                    let horizon = chrono::Duration::from_std(settings.schedule_horizon)
                        .unwrap_or(chrono::Duration::MAX);
                    if now
                        .checked_add_signed(horizon)
                        .is_some_and(|limit| at > limit)
                    {
                        errors.add(
                            "scheduled_at",
                            format!(
                                "must be at most {} days ahead",
                                settings.schedule_horizon.as_secs() / 86_400
                            ),
                        );
                    }
                    Some(at)
                }
                Err(_) => {
                    errors.add("scheduled_at", "must be an RFC 3339 timestamp");
                    None
                }
            },
        };
        let max_attempts = match self.max_attempts {
            None => i64::from(NewJob::DEFAULT_MAX_ATTEMPTS),
            Some(n) if (1..=MAX_ATTEMPTS_LIMIT).contains(&n) => n,
            Some(_) => {
                errors.add(
                    "max_attempts",
                    format!("must be from 1 to {MAX_ATTEMPTS_LIMIT}"),
                );
                1
            }
        };
        match (kind, errors.is_empty()) {
            (Some(kind), true) => Ok(NewJob {
                kind,
                args,
                scheduled_at,
                max_attempts: max_attempts as i32,
                owner: Some(owner),
            }),
            _ => Err(errors),
        }
    }
}

pub async fn create(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewJobBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let job = body
        .parse(&state.job_settings, user.id, Utc::now())
        .map_err(ApiError::Validation)?;
    let (id, job_state) = queue::enqueue(state.queue.pool(), &job).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"data": {"id": id, "state": job_state}})),
    ))
}

/// The caller's own job; someone else's is a 404, exactly like one that does not exist.
pub async fn show(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let job = state
        .queue
        .get(id, user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({"data": job})))
}

/// The whole queue's counts: for admins only (they tell how busy the service is).
pub async fn stats(
    user: CurrentUser,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if user.role(&state.pool).await? != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let stats = state.queue.stats().await?;
    Ok(Json(json!({"data": stats})))
}
