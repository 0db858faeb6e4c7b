//! The `CurrentUser` extractor: a valid `Authorization: Bearer <token>` or a 401.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The user a valid bearer token names.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub id: Uuid,
}

/// What a user may do beyond their own data. Stored in `users.role`; `admin` is granted only
/// by the operator (`app admin grant EMAIL`), never through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The stored value; anything but `admin` grants nothing.
    pub fn parse(stored: &str) -> Role {
        match stored {
            "admin" => Role::Admin,
            _ => Role::User,
        }
    }
}

impl CurrentUser {
    /// The user's role as stored now (not as it was when the token was issued, so a revoked
    /// admin loses it at once). A user deleted since the token was issued is a 401.
    pub async fn role(&self, pool: &PgPool) -> Result<Role, ApiError> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(self.id)
            .fetch_optional(pool)
            .await?;
        role.map(|role| Role::parse(&role))
            .ok_or(ApiError::Unauthorized)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let id = state
            .tokens
            .verify(token.trim())
            .map_err(|_| ApiError::Unauthorized)?;
        Ok(Self { id })
    }
}
