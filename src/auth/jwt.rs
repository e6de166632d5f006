//! Access tokens: HMAC-signed JWTs with `sub`, `user_id`, `sid`, `amr`, `jti`, `iat` and `exp`;
//! only the configured algorithm is accepted.
//!
//! Only the configured algorithm verifies (`alg: none` and other algorithms are refused by
//! `jsonwebtoken` when the `Validation` names one), `exp` is required, and clock leeway is
//! kept small: the library's default of 60 s would let expired tokens live a minute longer.

use secrecy::ExposeSecret;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Bearer;
use crate::{config::JwtConfig, domain::Amr, error::AppError};

/// Clock skew tolerated between the issuer and this verifier.
pub const LEEWAY_SECS: u64 = 10;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string (the JWT convention).
    pub sub: String,
    /// The same id as a number, for clients that read it as one.
    pub user_id: i32,
    /// The session the token belongs to; it is refused once the session ends.
    pub sid: String,
    /// A random id, so that no two tokens are the same (two issued within one second would
    /// be otherwise).
    #[serde(default)]
    pub jti: String,
    /// How the session's sign-in was made (RFC 8176: `pwd`, `otp`, …). Issued for clients to
    /// read; not read back here (the session row holds it), so verifying allocates nothing
    /// for it.
    #[serde(default, skip_deserializing)]
    pub amr: Vec<&'static str>,
    pub iat: i64,
    pub exp: i64,
}

/// A freshly issued token and its lifetime in seconds.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(config: &JwtConfig) -> Self {
        let secret = config.secret.expose_secret().as_bytes();
        let mut validation = Validation::new(config.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header: Header::new(config.algorithm),
            validation,
            ttl: config.expires_in,
        }
    }

    pub fn issue(&self, bearer: Bearer, amr: &Amr) -> Result<IssuedToken, AppError> {
        let now = Utc::now().timestamp();
        let ttl = self.ttl.as_secs();
        let claims = Claims {
            sub: bearer.user_id.to_string(),
            user_id: bearer.user_id,
            sid: bearer.session_id.to_string(),
            jti: Uuid::new_v4().simple().to_string(),
            amr: amr.names().collect(),
            iat: now,
            exp: now + ttl as i64,
        };
        let token = encode(&self.header, &claims, &self.encoding).map_err(AppError::internal)?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
        })
    }

    /// The user and session a valid token speaks for; `None` for any invalid token, whatever
    /// the cause (a token without `sid` included). Whether the session is still live is for
    /// the service that serves the request to check.
    pub fn verify(&self, token: &str) -> Option<Bearer> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        // `sub` and `user_id` are both signed; a token where they disagree was not made here.
        if claims.sub.parse() != Ok(claims.user_id) {
            return None;
        }
        Some(Bearer {
            user_id: claims.user_id,
            session_id: Uuid::try_parse(&claims.sid).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::config::Secret;

    fn keys(secret: &str, algorithm: Algorithm) -> JwtKeys {
        JwtKeys::new(&JwtConfig {
            secret: Secret::from(secret),
            algorithm,
            expires_in: Duration::from_secs(3600),
            secret_generated: false,
        })
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn forge(claims: &serde_json::Value, algorithm: Algorithm, secret: &str) -> String {
        encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    const SID: &str = "6f1c3a4e-2b7d-4c1e-9a8f-0d2e4b6c8a10";

    fn bearer(user_id: i32) -> Bearer {
        Bearer {
            user_id,
            session_id: Uuid::parse_str(SID).unwrap(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let k = keys(SECRET, Algorithm::HS256);
        let amr = Amr::of(crate::domain::Factor::Password).and(crate::domain::Factor::Otp);
        let t = k.issue(bearer(42), &amr).unwrap();
        assert_eq!(t.expires_in, 3600);
        assert_eq!(k.verify(&t.token), Some(bearer(42)));
        let payload = t.token.split('.').nth(1).unwrap();
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
    }

    #[test]
    fn tokens_without_a_session_are_refused() {
        let k = keys(SECRET, Algorithm::HS256);
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({"sub": "1", "user_id": 1, "iat": now, "exp": now + 60});
        assert_eq!(k.verify(&forge(&claims, Algorithm::HS256, SECRET)), None);
        let claims =
            serde_json::json!({"sub": "1", "user_id": 1, "sid": "x", "iat": now, "exp": now + 60});
        assert_eq!(k.verify(&forge(&claims, Algorithm::HS256, SECRET)), None);
    }

    #[test]
    fn tokens_signed_otherwise_are_refused() {
        let k = keys(SECRET, Algorithm::HS256);
        let now = Utc::now().timestamp();
        let claims =
            serde_json::json!({"sub": "1", "user_id": 1, "sid": SID, "iat": now, "exp": now + 60});
        assert_eq!(
            k.verify(&forge(&claims, Algorithm::HS256, SECRET)),
            Some(bearer(1))
        );
        assert_eq!(k.verify(&forge(&claims, Algorithm::HS512, SECRET)), None);
        assert_eq!(
            k.verify(&forge(
                &claims,
                Algorithm::HS256,
                "another-secret-another-secret-xx"
            )),
            None
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys(SECRET, Algorithm::HS256);
        let now = Utc::now().timestamp();
        let b64 = |v: &serde_json::Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(
                &serde_json::json!({"sub": "1", "user_id": 1, "sid": SID, "iat": now, "exp": now + 60})
            )
        );
        assert_eq!(k.verify(&token), None);
    }

    #[test]
    fn expired_and_incomplete_tokens_are_refused() {
        let k = keys(SECRET, Algorithm::HS256);
        let now = Utc::now().timestamp();
        let expired = serde_json::json!(
            {"sub": "1", "user_id": 1, "sid": SID, "iat": now - 300, "exp": now - 120});
        assert_eq!(k.verify(&forge(&expired, Algorithm::HS256, SECRET)), None);
        let no_exp = serde_json::json!({"sub": "1", "user_id": 1, "sid": SID, "iat": now});
        assert_eq!(k.verify(&forge(&no_exp, Algorithm::HS256, SECRET)), None);
        let mismatched =
            serde_json::json!({"sub": "2", "user_id": 1, "sid": SID, "iat": now, "exp": now + 60});
        assert_eq!(
            k.verify(&forge(&mismatched, Algorithm::HS256, SECRET)),
            None
        );
        assert_eq!(k.verify("not.a.token"), None);
    }
}
