//! Sealing TOTP secrets at rest (AES-256-GCM, `ring`, already in the tree through rustls).
//!
//! With `MFA_ENCRYPTION_KEY` set, a secret is stored as `v1:{key id}:{base64url(nonce ‖
//! ciphertext ‖ tag)}`, bound to its account (the user id is the associated data: a sealed
//! secret copied to another row does not open). The key id is the first four bytes of the
//! key's SHA-256, so a secret names the key that opens it: `MFA_ENCRYPTION_OLD_KEYS` keeps
//! retired keys working while secrets move to the new one. Without a key, secrets are stored
//! as `plain:{base32}` (and sealed the next time they are used once a key is set).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use crate::{
    config::{ExposeSecret, Secret, mfa_key_bytes},
    error::AppError,
};

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys secrets are sealed with (the first) and opened with (any).
pub struct Sealer {
    current: Option<Key>,
    old: Vec<Key>,
}

/// A secret as opened, and whether it should be stored again (it was not sealed with the
/// current key).
pub struct Opened {
    pub secret: Vec<u8>,
    pub stale: bool,
}

impl Sealer {
    /// The keys, as configured (each checked when the configuration was read).
    pub fn new(current: Option<&Secret>, old: &[Secret]) -> Result<Self, String> {
        let key = |secret: &Secret| -> Result<Key, String> {
            let bytes = mfa_key_bytes(secret.expose_secret())?;
            let id = Sha256::digest(bytes)[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "bad key".to_owned())?;
            Ok(Key {
                id,
                key: LessSafeKey::new(key),
            })
        };
        Ok(Self {
            current: current.map(key).transpose()?,
            old: old.iter().map(key).collect::<Result<_, _>>()?,
        })
    }

    /// The stored form of `secret`, for account `user_id`.
    pub fn seal(&self, user_id: i32, secret: &[u8]) -> Result<String, AppError> {
        let Some(key) = &self.current else {
            return Ok(format!("plain:{}", super::totp::base32(secret)));
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        let mut sealed = secret.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user_id.to_be_bytes()),
                &mut sealed,
            )
            .map_err(|_| AppError::internal(anyhow::anyhow!("sealing a TOTP secret failed")))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("v1:{}:{}", key.id, URL_SAFE_NO_PAD.encode(blob)))
    }

    /// The secret stored as `stored` for account `user_id`. A secret sealed with a key that
    /// is not configured, or altered, is an internal error (logged; the code check fails).
    pub fn open(&self, user_id: i32, stored: &str) -> Result<Opened, AppError> {
        let fail =
            |why: &str| AppError::internal(anyhow::anyhow!("TOTP secret of user {user_id}: {why}"));
        if let Some(base32) = stored.strip_prefix("plain:") {
            let secret = totp_rs::Secret::try_from_base32(base32)
                .map_err(|_| fail("not base32"))?
                .to_vec();
            return Ok(Opened {
                secret,
                stale: self.current.is_some(),
            });
        }
        let mut parts = stored.splitn(3, ':');
        let (Some("v1"), Some(id), Some(blob)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(fail("unknown format"));
        };
        let (key, stale) = match &self.current {
            Some(key) if key.id == id => (key, false),
            _ => (
                self.old
                    .iter()
                    .find(|key| key.id == id)
                    .ok_or_else(|| fail("sealed with a key that is not configured (MFA_ENCRYPTION_KEY, MFA_ENCRYPTION_OLD_KEYS)"))?,
                true,
            ),
        };
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| fail("not base64"))?;
        if blob.len() < NONCE_LEN {
            return Err(fail("too short"));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail("bad nonce"))?;
        let mut sealed = sealed.to_vec();
        let secret = key
            .key
            .open_in_place(nonce, Aad::from(user_id.to_be_bytes()), &mut sealed)
            .map_err(|_| fail("does not open"))?
            .to_vec();
        Ok(Opened { secret, stale })
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::config::MFA_KEY_BYTES;

    fn key(byte: u8) -> Secret {
        Secret::from(STANDARD.encode([byte; MFA_KEY_BYTES]))
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let sealer = Sealer::new(Some(&key(1)), &[]).unwrap();
        let stored = sealer.seal(7, b"0123456789abcdefghij").unwrap();
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains("GAYTEMZUGU3DOOBZMFRGGZDFMZTWQ2LK"));
        let opened = sealer.open(7, &stored).unwrap();
        assert_eq!(opened.secret, b"0123456789abcdefghij");
        assert!(!opened.stale);
        assert!(sealer.open(8, &stored).is_err(), "bound to the account");
        // Two seals of one secret differ (a fresh nonce each).
        assert_ne!(stored, sealer.seal(7, b"0123456789abcdefghij").unwrap());
        let other = Sealer::new(Some(&key(2)), &[]).unwrap();
        assert!(other.open(7, &stored).is_err(), "another key");
    }

    #[test]
    fn a_retired_key_still_opens_and_marks_the_secret_stale() {
        let old = Sealer::new(Some(&key(1)), &[]).unwrap();
        let stored = old.seal(7, b"secret-secret-secret").unwrap();
        let rotated = Sealer::new(Some(&key(2)), &[key(1)]).unwrap();
        let opened = rotated.open(7, &stored).unwrap();
        assert_eq!(opened.secret, b"secret-secret-secret");
        assert!(opened.stale);
    }

    #[test]
    fn without_a_key_secrets_are_plain_and_a_new_key_takes_them_over() {
        let none = Sealer::new(None, &[]).unwrap();
        let stored = none.seal(7, b"secret-secret-secret").unwrap();
        assert!(stored.starts_with("plain:"));
        assert!(!none.open(7, &stored).unwrap().stale);
        let keyed = Sealer::new(Some(&key(1)), &[]).unwrap();
        let opened = keyed.open(7, &stored).unwrap();
        assert_eq!(opened.secret, b"secret-secret-secret");
        assert!(opened.stale);
    }
}
