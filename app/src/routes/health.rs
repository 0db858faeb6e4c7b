//! Liveness (`/api/health`, no I/O) and readiness (`/api/ready`, database and Redis).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde_json::json;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Load balancers and benchmarks call this thousands of times a second, and every call in the
/// same millisecond answers the same bytes: each thread renders the body once per millisecond
/// (and node: tests run several in one process) and hands out cheap clones of it. The body is
/// written by hand around the node's name, escaped once: serde_json's general path cost ~800
/// instructions a render (`scripts/bench-instructions.sh`).
pub async fn health(State(state): State<AppState>) -> Response {
    struct Rendered {
        node: usize,
        /// `,"node":"…"}` for that node, JSON-escaped.
        node_json: String,
        at: i64,
        body: Bytes,
    }
    thread_local! {
        static RENDERED: RefCell<Option<Rendered>> = const { RefCell::new(None) };
    }
    let now = chrono::Utc::now();
    let millis = now.timestamp_millis();
    let node = Arc::as_ptr(&state.node).cast::<u8>() as usize;
    let body = RENDERED.with(|rendered| {
        let mut rendered = rendered.borrow_mut();
        if rendered.as_ref().is_none_or(|r| r.node != node) {
            let name = serde_json::to_string(&*state.node).expect("a string always serializes");
            *rendered = Some(Rendered {
                node,
                node_json: format!(",\"node\":{name}}}"),
                at: i64::MIN,
                body: Bytes::new(),
            });
        }
        let rendered = rendered.as_mut().expect("set above");
        if rendered.at != millis {
            let mut body = String::with_capacity(96 + rendered.node_json.len());
            body.push_str("{\"status\":\"ok\",\"timestamp\":\"");
            push_timestamp(&mut body, &now);
            body.push_str("\",\"version\":\"");
            body.push_str(env!("CARGO_PKG_VERSION"));
            body.push_str("\",\"uptime\":");
            push_seconds(&mut body, state.started_at.elapsed());
            body.push_str(&rendered.node_json);
            rendered.at = millis;
            rendered.body = Bytes::from(body);
        }
        rendered.body.clone()
    });
    let mut response = Response::new(Body::from(body));
    // Room for every header the answer leaves with (content type and length, the security
    // headers of `routes::service`): one allocation, no regrowth.
    response.headers_mut().reserve(8);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `now` as RFC 3339 in UTC with milliseconds (`2026-11-27T23:27:46.716Z`), digit by digit:
/// at 5 nodes a node thread renders the body for about every second request, and chrono's
/// general formatter and a float's `Display` for the uptime cost ~220 instructions more a
/// request (`scripts/bench-instructions.sh`).
fn push_timestamp(out: &mut String, now: &chrono::DateTime<chrono::Utc>) {
    use chrono::{Datelike, Timelike};
    let year = now.year();
    if !(0..=9999).contains(&year) {
        // Not a year this clock will read; RFC 3339 has no form for it, chrono's is the fallback.
        out.push_str(&now.to_rfc3339_opts(SecondsFormat::Millis, true));
        return;
    }
    push_digits(out, year as u32, 4);
    out.push('-');
    push_digits(out, now.month(), 2);
    out.push('-');
    push_digits(out, now.day(), 2);
    out.push('T');
    push_digits(out, now.hour(), 2);
    out.push(':');
    push_digits(out, now.minute(), 2);
    out.push(':');
    // A leap second shows as second 60, as chrono writes it.
    push_digits(out, now.second() + now.nanosecond() / 1_000_000_000, 2);
    out.push('.');
    push_digits(out, now.nanosecond() % 1_000_000_000 / 1_000_000, 3);
    out.push('Z');
}

/// A duration as seconds with millisecond precision (`811.051`), a JSON number.
fn push_seconds(out: &mut String, elapsed: Duration) {
    push_digits(out, u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX), 1);
    out.push('.');
    push_digits(out, elapsed.subsec_millis(), 3);
}

/// `n` in decimal, zero-padded to `width` digits (wider if it needs more).
fn push_digits(out: &mut String, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = at.min(digits.len().saturating_sub(width));
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let database = check(async {
        sqlx::query("SELECT 1")
            .execute(&state.pool)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    })
    .await;
    let redis = match &state.redis {
        None => None,
        Some(connection) => {
            let mut connection = connection.clone();
            Some(
                check(async move {
                    redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await
                        .map(drop)
                        .map_err(|error| error.to_string())
                })
                .await,
            )
        }
    };
    let draining = state.is_shutting_down();
    let mut checks = serde_json::Map::new();
    checks.insert("database".into(), json!(label(&database)));
    if let Some(redis) = &redis {
        checks.insert("redis".into(), json!(label(redis)));
    }
    if draining {
        checks.insert("shutdown".into(), json!("draining"));
    }
    let healthy = database.is_ok() && redis.as_ref().is_none_or(Result::is_ok) && !draining;
    let (status, word) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        for (name, result) in [("database", Some(&database)), ("redis", redis.as_ref())] {
            if let Some(Err(error)) = result {
                tracing::warn!(check = name, error = %error, "readiness check failed");
            }
        }
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(json!({"status": word, "node": &*state.node, "checks": checks})),
    )
        .into_response()
}

async fn check(probe: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err("timed out".into()),
    }
}

fn label(result: &Result<(), String>) -> &'static str {
    if result.is_ok() {
        "ok"
    } else {
        "failing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn timestamp(now: chrono::DateTime<Utc>) -> String {
        let mut out = String::new();
        push_timestamp(&mut out, &now);
        out
    }

    #[test]
    fn timestamps_read_as_chrono_writes_them() {
        let base = Utc.with_ymd_and_hms(2026, 11, 27, 23, 27, 46).unwrap();
        for now in [
            base,
            base + Duration::from_millis(716),
            base + Duration::from_nanos(999_999_999),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2000, 2, 29, 9, 5, 7).unwrap() + Duration::from_millis(7),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            // A leap second, as chrono represents one.
            Utc.from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_milli_opt(23, 59, 59, 1_500)
                    .unwrap(),
            ),
        ] {
            assert_eq!(
                timestamp(now),
                now.to_rfc3339_opts(SecondsFormat::Millis, true),
                "{now:?}"
            );
        }
    }

    #[test]
    fn uptime_is_seconds_with_milliseconds() {
        let seconds = |d: Duration| {
            let mut out = String::new();
            push_seconds(&mut out, d);
            out
        };
        assert_eq!(seconds(Duration::ZERO), "0.000");
        assert_eq!(seconds(Duration::from_micros(811_050_818)), "811.050");
        assert_eq!(seconds(Duration::from_millis(1_007)), "1.007");
        assert!(seconds(Duration::from_secs(3_600)).parse::<f64>().unwrap() == 3_600.0);
    }

    #[test]
    fn digits_are_padded_to_their_width() {
        let digits = |n: u32, width: usize| {
            let mut out = String::new();
            push_digits(&mut out, n, width);
            out
        };
        assert_eq!(digits(7, 2), "07");
        assert_eq!(digits(0, 3), "000");
        assert_eq!(digits(2026, 4), "2026");
        assert_eq!(digits(12345, 2), "12345");
        assert_eq!(digits(u32::MAX, 1), "4294967295");
    }
}
