//! HS256 access tokens with `sub`, `exp`, `iat` and `iss`; validation pins the algorithm.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtSettings;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("failed to sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("the token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the token's subject is not a user id")]
    Subject,
}

pub struct Tokens {
    /// Tells this key's entries in the verified-token cache from another instance's (tests
    /// run nodes with different keys in one process).
    id: u64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    issuer: String,
}

impl Tokens {
    pub fn new(settings: &JwtSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 5;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            encoding: EncodingKey::from_secret(&settings.secret),
            decoding: DecodingKey::from_secret(&settings.secret),
            validation,
            ttl: settings.ttl,
            issuer: settings.issuer.clone(),
        }
    }

    /// How long an issued token lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for a user.
    pub fn issue(&self, user_id: Uuid) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError::Sign)
    }

    /// Checks signature, algorithm, expiry and issuer and returns the user id.
    ///
    /// A client sends the same token with every request of its lifetime; checking the signature
    /// and parsing the claims again each time cost ~27,000 instructions a request
    /// (`scripts/bench-instructions.sh`), a hit in this thread's cache of verified tokens ~500.
    /// Verifying is a function of the token's exact text, the key and the clock alone, so a hit
    /// answers what verifying would: the expiry is checked again on every use. Only tokens that
    /// verified are kept (a forged one costs the full check every time), in a map with a
    /// per-process random hash key; a full cache is emptied.
    pub fn verify(&self, token: &str) -> Result<Uuid, TokenError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if let Some(id) = self.cached(token, now) {
            return Ok(id);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(TokenError::Invalid)?;
        let id = Uuid::parse_str(&data.claims.sub).map_err(|_| TokenError::Subject)?;
        VERIFIED.with(|verified| {
            let mut verified = verified.borrow_mut();
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(
                token.into(),
                Verified {
                    key: self.id,
                    user: id,
                    exp: data.claims.exp,
                },
            );
        });
        Ok(id)
    }

    /// The user of a token this thread verified with this key, unless it has expired by `now`
    /// (with the same leeway as the full check).
    fn cached(&self, token: &str, now: i64) -> Option<Uuid> {
        let leeway = self.validation.leeway as i64;
        VERIFIED.with(|verified| {
            verified
                .borrow()
                .get(token)
                .filter(|hit| hit.key == self.id && hit.exp >= now - leeway)
                .map(|hit| hit.user)
        })
    }
}

/// A token that verified: with which key, whose it is, until when.
struct Verified {
    key: u64,
    user: Uuid,
    exp: i64,
}

const VERIFIED_CAPACITY: usize = 1024;

thread_local! {
    static VERIFIED: RefCell<HashMap<Box<str>, Verified>> = RefCell::new(HashMap::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&JwtSettings {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            ttl: Duration::from_secs(60),
            issuer: "app".into(),
        })
    }

    #[test]
    fn round_trip() {
        let tokens = tokens();
        let id = Uuid::now_v7();
        assert_eq!(tokens.verify(&tokens.issue(id).unwrap()).unwrap(), id);
    }

    #[test]
    fn alg_none_is_rejected() {
        use base64_like::encode;
        let tokens = tokens();
        let now = chrono::Utc::now().timestamp();
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = encode(
            format!(
                r#"{{"sub":"{}","exp":{},"iat":{},"iss":"app"}}"#,
                Uuid::now_v7(),
                now + 60,
                now
            )
            .as_bytes(),
        );
        assert!(tokens.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn other_issuer_and_other_key_are_rejected() {
        let tokens = tokens();
        // Each key's own token verified first: the cache of verified tokens must not let
        // one key's token through another's check.
        let other = Tokens::new(&JwtSettings {
            secret: b"another-key-another-key-another-key!".to_vec(),
            ttl: Duration::from_secs(60),
            issuer: "app".into(),
        });
        let others = other.issue(Uuid::now_v7()).unwrap();
        assert!(other.verify(&others).is_ok());
        assert!(tokens.verify(&others).is_err());
        let foreign = Tokens::new(&JwtSettings {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            ttl: Duration::from_secs(60),
            issuer: "someone-else".into(),
        });
        let foreigns = foreign.issue(Uuid::now_v7()).unwrap();
        assert!(foreign.verify(&foreigns).is_ok());
        assert!(tokens.verify(&foreigns).is_err());
    }

    #[test]
    fn a_verified_token_is_still_refused_once_it_expires() {
        let tokens = tokens();
        let id = Uuid::now_v7();
        let before = chrono::Utc::now().timestamp();
        let token = tokens.issue(id).unwrap();
        let after = chrono::Utc::now().timestamp();
        assert_eq!(tokens.verify(&token).unwrap(), id);
        // Cached: answered without the full check while it is valid (ttl 60 s, leeway 5 s)...
        assert_eq!(tokens.cached(&token, before), Some(id));
        assert_eq!(tokens.cached(&token, before + 64), Some(id));
        // ...and not once it has expired.
        assert_eq!(tokens.cached(&token, after + 66), None);
        // A token that failed is never cached.
        let tampered = format!("{token}x");
        assert!(tokens.verify(&tampered).is_err());
        assert_eq!(tokens.cached(&tampered, after), None);
    }

    /// Base64url without padding, enough for hand-made test tokens.
    mod base64_like {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        pub fn encode(input: &[u8]) -> String {
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                let chars = chunk.len() + 1;
                for i in 0..chars {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
