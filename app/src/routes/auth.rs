//! `POST /api/auth/login` and `GET /api/auth/me`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, FieldErrors};
use crate::extract::ApiJson;
use crate::rate_limit::{LoginLimiter, Verdict};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

/// The client's address: `X-Real-IP` or the last `X-Forwarded-For` hop set by nginx in front of
/// the nodes, else the peer address.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let address = header("x-real-ip")
            .map(str::to_owned)
            .or_else(|| {
                header("x-forwarded-for")
                    .and_then(|value| value.rsplit(',').next())
                    .map(|value| value.trim().to_owned())
            })
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| info.0.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Self(address))
    }
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let email = body.email.unwrap_or_default().trim().to_owned();
    let password = body.password.unwrap_or_default();
    let mut errors = FieldErrors::default();
    if email.is_empty() {
        errors.add("email", "can't be blank");
    }
    if password.is_empty() {
        errors.add("password", "can't be blank");
    }
    errors.into_result()?;

    let key = LoginLimiter::key(&email, &client);
    let (verdict, user) = state
        .login_limiter
        .attempt_with_user(&state.pool, &email, &key)
        .await?;
    let counted = match verdict {
        Ok(Verdict::Allowed { .. }) => true,
        Ok(Verdict::Blocked { retry_after_secs }) => {
            return Err(ApiError::TooManyFailedLogins { retry_after_secs })
        }
        // Fail open: a broken limiter store must not lock everyone out; /api/ready reports it.
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "login rate limit unavailable");
            false
        }
    };
    // A place in the hashing queue: when the node is at capacity the answer is a quick 503,
    // and the attempt is given back (it was not tried). Blocked attempts never queue.
    let ticket = match state.passwords.ticket() {
        Ok(ticket) => ticket,
        Err(_) => {
            if counted {
                state.login_limiter.give_back(&key).await;
            }
            return Err(ApiError::busy());
        }
    };
    let (user_id, stored_hash) = match user {
        Some(user) => (Some(user.id), Some(user.password_hash)),
        None => (None, None),
    };
    // Unknown emails are verified against a dummy hash, so both failures take as long.
    let verified = state
        .passwords
        .verify(ticket, password, stored_hash)
        .await
        .map_err(ApiError::internal)?;
    // A failure stays counted (it was counted before the hash).
    let Some(user_id) = user_id.filter(|_| verified) else {
        return Err(ApiError::InvalidCredentials);
    };
    // A success forgets the window's attempts, this one included.
    if counted {
        if let Err(error) = state.login_limiter.reset(&key).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "failed to reset login failures"
            );
        }
    }
    let token = state.tokens.issue(user_id).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "data": {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.tokens.ttl().as_secs(),
        }
    })))
}

/// `GET /api/auth/me`'s answer: `{"data": {"id", "email", "full_name"}}`, serialized straight
/// from the row (a `json!` tree cost ~4,000 instructions a request more).
#[derive(Serialize, sqlx::FromRow)]
pub struct Me {
    id: Uuid,
    email: String,
    full_name: String,
}

#[derive(Serialize)]
pub struct Data<T> {
    data: T,
}

pub async fn me(
    user: CurrentUser,
    State(state): State<AppState>,
) -> Result<Json<Data<Me>>, ApiError> {
    let me: Option<Me> = sqlx::query_as("SELECT id, email, full_name FROM users WHERE id = $1")
        .bind(user.id)
        .fetch_optional(&state.pool)
        .await?;
    Ok(Json(Data {
        data: me.ok_or(ApiError::Unauthorized)?,
    }))
}
