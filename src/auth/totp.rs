//! Time-based one-time passwords (RFC 6238 with `totp-rs`: SHA-1, 6 digits, 30 s steps, one
//! step of skew either way), the `otpauth://` URI authenticator apps read, and recovery codes.
//!
//! Checking a code returns the step it matched; that no step is accepted twice is for the
//! caller, which keeps the last accepted step per account and moves it forward atomically.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::error::AppError;

/// Bytes of a new secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Seconds of a step.
pub const STEP_SECS: u64 = 30;
/// Recovery codes an account holds.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (without its hyphens): 16 of 31, about 79 bits.
const RECOVERY_CODE_CHARS: usize = 16;
/// No 0/o, 1/i/l: nothing a person could read as another.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// RFC 3986's unreserved characters stay; everything else in a label or issuer is escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A new random secret.
pub fn new_secret() -> Result<Vec<u8>, AppError> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    Ok(bytes)
}

/// The secret as authenticator apps take it typed in: base32, no padding.
pub fn base32(secret: &[u8]) -> String {
    Secret::from(secret).to_base32()
}

/// `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT).to_string();
    let account = utf8_percent_encode(account, URI_COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits=6&period={STEP_SECS}",
        base32(secret)
    )
}

/// The step (`unix / 30`) whose code `code` is, within one step of `unix`; `None` when it
/// is none of them.
pub fn matching_step(secret: &[u8], code: &str, unix: u64) -> Option<u64> {
    totp(secret)?.check(code, unix)
}

/// The code of `unix`'s step (for tests and the command line).
pub fn code_at(secret: &[u8], unix: u64) -> Option<String> {
    Some(totp(secret)?.generate(unix).to_string())
}

fn totp(secret: &[u8]) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .build()
        .ok()
}

/// Ten new recovery codes, as shown to the person: `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Result<Vec<String>, AppError> {
    (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect()
}

fn new_recovery_code() -> Result<String, AppError> {
    let mut chars = Vec::with_capacity(RECOVERY_CODE_CHARS);
    let mut bytes = [0u8; 32];
    // Rejection sampling keeps every character equally likely.
    let limit = (256 / RECOVERY_ALPHABET.len() * RECOVERY_ALPHABET.len()) as u8;
    while chars.len() < RECOVERY_CODE_CHARS {
        getrandom::fill(&mut bytes).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        chars.extend(
            bytes
                .iter()
                .filter(|b| **b < limit)
                .map(|b| RECOVERY_ALPHABET[usize::from(*b) % RECOVERY_ALPHABET.len()]),
        );
    }
    chars.truncate(RECOVERY_CODE_CHARS);
    let groups: Vec<&str> = chars
        .chunks(4)
        .map(|group| std::str::from_utf8(group).unwrap_or_default())
        .collect();
    Ok(groups.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, cut to six digits.
    #[test]
    fn codes_follow_rfc_6238() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, time).as_deref(), Some(code), "at {time}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = new_secret().unwrap();
        let now = 1_800_000_015;
        let step = now / STEP_SECS;
        for offset in [-1i64, 0, 1] {
            let at = (now as i64 + offset * STEP_SECS as i64) as u64;
            let code = code_at(&secret, at).unwrap();
            assert_eq!(
                matching_step(&secret, &code, now),
                Some((step as i64 + offset) as u64)
            );
        }
        for offset in [-3i64, -2, 2] {
            let at = (now as i64 + offset * STEP_SECS as i64) as u64;
            let code = code_at(&secret, at).unwrap();
            // A code of a far step may by chance equal a near one's (1 in 10⁵); not here.
            if (-1..=1).all(|near| {
                code_at(&secret, (now as i64 + near * STEP_SECS as i64) as u64).unwrap() != code
            }) {
                assert_eq!(matching_step(&secret, &code, now), None, "offset {offset}");
            }
        }
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "+12345", now), None);
    }

    #[test]
    fn uris_carry_the_secret_and_escape_the_label() {
        let secret = [0u8; SECRET_BYTES];
        let uri = otpauth_uri("nta user-svc", "a+b@example.com", &secret);
        assert_eq!(
            uri,
            "otpauth://totp/nta%20user-svc:a%2Bb%40example.com?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
             &issuer=nta%20user-svc&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(base32(&new_secret().unwrap()).len(), 32);
    }

    #[test]
    fn recovery_codes_are_long_unambiguous_and_distinct() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 19);
            assert!(code.split('-').all(|g| g.len() == 4));
            assert!(
                code.bytes()
                    .all(|b| b == b'-' || RECOVERY_ALPHABET.contains(&b))
            );
        }
    }
}
