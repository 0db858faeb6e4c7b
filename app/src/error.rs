//! The one place where errors become HTTP responses. Clients get a stable JSON body and never
//! internal text; the detail goes to the log.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Validation messages by field, rendered as `{"errors":{"<field>":["<message>",…]}}`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<&'static str, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_default().push(message.into());
    }

    /// The fields with errors, in order.
    pub fn fields(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was added, else the errors as a 422.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }

    pub fn single(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed: {0:?}")]
    Validation(FieldErrors),
    #[error("the email is already taken")]
    EmailTaken,
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins")]
    TooManyFailedLogins { retry_after_secs: u64 },
    #[error("too many sign-ups from this address")]
    TooManySignups { retry_after_secs: u64 },
    #[error("forbidden")]
    Forbidden,
    /// The password hashing queue is full: the node is at capacity for logins and sign-ups.
    #[error("too busy to hash a password now")]
    Busy { retry_after_secs: u64 },
    #[error("the request took too long")]
    Timeout,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A request body the server cannot read: malformed JSON, wrong content type, too large.
    #[error("bad request body ({code})")]
    BadBody {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    },
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// The password hashing queue is full: retry in a second, when hashes have finished.
    pub fn busy() -> Self {
        Self::Busy {
            retry_after_secs: 1,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// The database being away (refused, reset, shutting down, or no connection
    /// free in time) is a 503 the client may retry; anything else is a 500.
    fn from(error: sqlx::Error) -> Self {
        if database_unavailable(&error) {
            tracing::debug!(error = %error, "database unavailable");
            return Self::Unavailable;
        }
        Self::Internal(anyhow::Error::new(error).context("database query failed"))
    }
}

/// Whether an error means "the database cannot be reached now" rather than a bug.
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01..57P03 (shutdown, crash,
        // cannot connect now: the server is starting or stopping).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

fn error_body(code: &str, message: &str) -> Json<serde_json::Value> {
    Json(json!({"error": {"code": code, "message": message}}))
}

/// An error answer with a `Retry-After` header.
fn retry_after(status: StatusCode, code: &str, message: &str, secs: u64) -> Response {
    let mut response = (status, error_body(code, message)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"errors": errors.0})),
            )
                .into_response(),
            Self::EmailTaken => (
                StatusCode::CONFLICT,
                Json(json!({"errors": {"email": ["has already been taken"]}})),
            )
                .into_response(),
            Self::Unauthorized => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    error_body("unauthorized", "missing or invalid bearer token"),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                error_body("invalid_credentials", "invalid email or password"),
            )
                .into_response(),
            Self::TooManyFailedLogins { retry_after_secs } => retry_after(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_logins",
                "too many failed logins; try again later",
                retry_after_secs,
            ),
            Self::TooManySignups { retry_after_secs } => retry_after(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_signups",
                "too many sign-ups from this address; try again later",
                retry_after_secs,
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                error_body("forbidden", "you may not do this"),
            )
                .into_response(),
            Self::Busy { retry_after_secs } => retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the service is busy; try again shortly",
                retry_after_secs,
            ),
            Self::Timeout => {
                tracing::warn!("a request took longer than the request timeout");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    error_body("timeout", "the request took too long"),
                )
                    .into_response()
            }
            Self::NotFound => {
                (StatusCode::NOT_FOUND, error_body("not_found", "not found")).into_response()
            }
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                error_body("method_not_allowed", "method not allowed"),
            )
                .into_response(),
            Self::BadBody {
                status,
                code,
                message,
            } => (status, error_body(code, message)).into_response(),
            Self::Unavailable => {
                tracing::warn!("request failed: the database is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    error_body("unavailable", "service temporarily unavailable"),
                )
                    .into_response()
            }
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_body("internal_error", "internal server error"),
                )
                    .into_response()
            }
        }
    }
}
