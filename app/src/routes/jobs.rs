//! `POST /api/jobs`, `GET /api/jobs/{id}` and `GET /api/jobs/stats` (all authenticated).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::auth::CurrentUser;
use crate::error::{ApiError, FieldErrors};
use crate::extract::{ApiJson, ApiPath};
use crate::jobs::{queue, JobKind, NewJob};
use crate::state::AppState;

const MAX_ATTEMPTS_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct NewJobBody {
    kind: Option<String>,
    args: Option<serde_json::Value>,
    scheduled_at: Option<String>,
    max_attempts: Option<i64>,
}

impl NewJobBody {
    fn parse(self) -> Result<NewJob, FieldErrors> {
        let mut errors = FieldErrors::default();
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => {
                errors.add("kind", "can't be blank");
                None
            }
            Some(raw) => match raw.parse::<JobKind>() {
                Ok(kind) => Some(kind),
                Err(_) => {
                    errors.add(
                        "kind",
                        format!("is not one of {}", JobKind::NAMES.join(", ")),
                    );
                    None
                }
            },
        };
        let args = match self.args {
            None | Some(serde_json::Value::Null) => json!({}),
            Some(args @ serde_json::Value::Object(_)) => args,
            Some(_) => {
                errors.add("args", "must be an object");
                json!({})
            }
        };
        let scheduled_at = match self.scheduled_at.as_deref() {
            None => None,
            Some(raw) => match DateTime::parse_from_rfc3339(raw) {
                Ok(at) => Some(at.with_timezone(&Utc)),
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
            }),
            _ => Err(errors),
        }
    }
}

pub async fn create(
    _user: CurrentUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewJobBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let job = body.parse().map_err(ApiError::Validation)?;
    let (id, job_state) = queue::enqueue(state.queue.pool(), &job).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"data": {"id": id, "state": job_state}})),
    ))
}

pub async fn show(
    _user: CurrentUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let job = state.queue.get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!({"data": job})))
}

pub async fn stats(
    _user: CurrentUser,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let stats = state.queue.stats().await?;
    Ok(Json(json!({"data": stats})))
}
