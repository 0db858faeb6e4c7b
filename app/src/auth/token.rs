//! HS256 access tokens with `sub`, `exp`, `iat` and `iss`; validation pins the algorithm.

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
        Self {
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
    pub fn verify(&self, token: &str) -> Result<Uuid, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(TokenError::Invalid)?;
        Uuid::parse_str(&data.claims.sub).map_err(|_| TokenError::Subject)
    }
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
        let other = Tokens::new(&JwtSettings {
            secret: b"another-key-another-key-another-key!".to_vec(),
            ttl: Duration::from_secs(60),
            issuer: "app".into(),
        });
        assert!(tokens
            .verify(&other.issue(Uuid::now_v7()).unwrap())
            .is_err());
        let foreign = Tokens::new(&JwtSettings {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            ttl: Duration::from_secs(60),
            issuer: "someone-else".into(),
        });
        assert!(tokens
            .verify(&foreign.issue(Uuid::now_v7()).unwrap())
            .is_err());
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
