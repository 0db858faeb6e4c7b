//! `POST /api/users` (sign-up) and `GET /api/users` (a page of users, authenticated).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::{CurrentUser, Role};
use crate::error::{ApiError, FieldErrors};
use crate::extract::{ApiJson, ApiQuery};
use crate::jobs::{queue, JobKind, NewJob};
use crate::rate_limit::{LoginLimiter, Verdict};
use crate::routes::auth::ClientAddr;
use crate::state::AppState;

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_NAME_CHARS: usize = 200;
const MAX_EMAIL_CHARS: usize = 254;

/// The sign-up body as sent; every field is checked by `NewUser::parse`.
#[derive(Debug, Deserialize)]
pub struct SignUpBody {
    email: Option<String>,
    full_name: Option<String>,
    password: Option<String>,
    password_confirmation: Option<String>,
}

/// A validated sign-up.
#[derive(Debug)]
pub struct NewUser {
    pub email: String,
    pub full_name: String,
    pub password: String,
}

impl NewUser {
    pub fn parse(body: SignUpBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let email = body.email.unwrap_or_default().trim().to_owned();
        if email.is_empty() {
            errors.add("email", "can't be blank");
        } else if email.chars().count() > MAX_EMAIL_CHARS
            || !email_address::EmailAddress::is_valid(&email)
        {
            errors.add("email", "has invalid format");
        }
        let full_name = body.full_name.unwrap_or_default().trim().to_owned();
        if full_name.is_empty() {
            errors.add("full_name", "can't be blank");
        } else if full_name.chars().count() > MAX_NAME_CHARS {
            errors.add(
                "full_name",
                format!("should be at most {MAX_NAME_CHARS} characters"),
            );
        } else if full_name.chars().any(char::is_control) {
            errors.add("full_name", "has invalid characters");
        }
        let password = body.password.unwrap_or_default();
        let length = password.chars().count();
        if length < MIN_PASSWORD_CHARS {
            errors.add(
                "password",
                format!("should be at least {MIN_PASSWORD_CHARS} characters"),
            );
        } else if length > MAX_PASSWORD_CHARS {
            errors.add(
                "password",
                format!("should be at most {MAX_PASSWORD_CHARS} characters"),
            );
        }
        if body.password_confirmation.as_deref() != Some(password.as_str()) {
            errors.add("password_confirmation", "does not match password");
        }
        if errors.is_empty() {
            Ok(Self {
                email,
                full_name,
                password,
            })
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct UserView {
    id: Uuid,
    email: String,
    full_name: String,
    inserted_at: DateTime<Utc>,
}

pub async fn create(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<SignUpBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let new_user = NewUser::parse(body).map_err(ApiError::Validation)?;
    // Each sign-up costs a full password hash: a limited number per client address.
    let key = LoginLimiter::signup_key(&client);
    let limit = state.signup_limit;
    let counted = match state
        .login_limiter
        .hit(&key, limit.max_per_window, limit.window)
        .await
    {
        Ok(Verdict::Allowed { .. }) => true,
        Ok(Verdict::Blocked { retry_after_secs }) => {
            return Err(ApiError::TooManySignups { retry_after_secs })
        }
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "sign-up rate limit unavailable"
            );
            false
        }
    };
    // Cheap early answer for the common case; the unique index settles races below.
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))")
            .bind(&new_user.email)
            .fetch_one(&state.pool)
            .await?;
    if taken {
        return Err(ApiError::EmailTaken);
    }
    let Ok(ticket) = state.passwords.ticket() else {
        if counted {
            state.login_limiter.give_back(&key).await;
        }
        return Err(ApiError::busy());
    };
    let password_hash = state
        .passwords
        .hash(ticket, new_user.password)
        .await
        .map_err(ApiError::internal)?;
    let id = Uuid::now_v7();
    let mut transaction = state.pool.begin().await?;
    let inserted = sqlx::query_as::<_, UserView>(
        "INSERT INTO users (id, email, full_name, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING id, email, full_name, inserted_at",
    )
    .bind(id)
    .bind(&new_user.email)
    .bind(&new_user.full_name)
    .bind(&password_hash)
    .fetch_one(&mut *transaction)
    .await;
    let user = match inserted {
        Ok(user) => user,
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(ApiError::EmailTaken)
        }
        Err(error) => return Err(error.into()),
    };
    queue::enqueue(
        &mut *transaction,
        &NewJob::now(
            JobKind::WelcomeEmail,
            json!({"user_id": user.id}),
            Some(user.id),
        ),
    )
    .await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({"data": user}))))
}

/// `?limit=&after=` as sent.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// A page of users for an admin; anyone else gets a page with only themselves, so nobody
/// learns other people's emails.
pub async fn list(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut errors = FieldErrors::default();
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<i64>() {
            Ok(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
            _ => {
                errors.add("limit", format!("must be a number from 1 to {MAX_PAGE}"));
                DEFAULT_PAGE
            }
        },
    };
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.add("after", "is not a valid cursor");
                None
            }
        },
    };
    errors.into_result()?;
    let only = match user.role(&state.pool).await? {
        Role::Admin => None,
        Role::User => Some(user.id),
    };
    // Ids are UUIDv7, so ordering by id is ordering by creation time.
    let mut users = sqlx::query_as::<_, UserView>(
        "SELECT id, email, full_name, inserted_at FROM users
         WHERE ($1::uuid IS NULL OR id > $1) AND ($3::uuid IS NULL OR id = $3)
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit + 1)
    .bind(only)
    .fetch_all(&state.pool)
    .await?;
    let next_cursor = if users.len() as i64 > limit {
        users.truncate(limit as usize);
        users.last().map(|user| user.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({"data": users, "next_cursor": next_cursor})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(email: &str, name: &str, password: &str, confirmation: &str) -> SignUpBody {
        SignUpBody {
            email: Some(email.into()),
            full_name: Some(name.into()),
            password: Some(password.into()),
            password_confirmation: Some(confirmation.into()),
        }
    }

    #[test]
    fn a_valid_sign_up_parses() {
        let user =
            NewUser::parse(body(" ada@example.com ", "Ada", "password1", "password1")).unwrap();
        assert_eq!(user.email, "ada@example.com");
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (body("nope", "Ada", "password1", "password1"), "email"),
            (body("", "Ada", "password1", "password1"), "email"),
            (
                body("a@example.com", "  ", "password1", "password1"),
                "full_name",
            ),
            (body("a@example.com", "Ada", "short", "short"), "password"),
            (
                body("a@example.com", "Ada", "password1", "password2"),
                "password_confirmation",
            ),
        ];
        for (body, field) in cases {
            let errors = NewUser::parse(body).unwrap_err();
            assert_eq!(errors.fields(), vec![field]);
        }
    }
}
