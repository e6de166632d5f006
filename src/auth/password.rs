//! bcrypt, run off the async executor.
//!
//! A bcrypt hash at cost 12 takes a few hundred milliseconds of CPU. On a tokio worker it would
//! stall every other request on that thread, so hashing runs on the blocking pool, and a
//! semaphore caps how many hashes run at once (one per core): a login flood then queues here
//! instead of filling the blocking pool with hundreds of threads fighting over two cores.

use std::sync::Arc;

use tokio::sync::{OnceCell, Semaphore};
use tracing::Instrument;

use crate::{
    domain::{MAX_PASSWORD_BYTES, Password},
    error::AppError,
};

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    cost: u32,
    permits: Semaphore,
    /// A hash of a random password at the configured cost, checked when the email is unknown
    /// so that both login failures cost the same time. Made on first use: it takes as long
    /// as a real hash and would otherwise delay start-up.
    dummy: OnceCell<String>,
}

impl PasswordHasher {
    pub fn new(cost: u32) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                cost,
                permits: Semaphore::new(parallelism),
                dummy: OnceCell::new(),
            }),
        }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let cost = self.inner.cost;
        let password = password.expose().to_owned();
        self.blocking(move || bcrypt::hash(password, cost).map_err(AppError::internal))
            .await
    }

    /// True when `password` matches `hash`. A password over bcrypt's 72 bytes never matches:
    /// bcrypt would compare only its first 72 bytes.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, AppError> {
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let password = password.to_owned();
        let hash = hash.to_owned();
        let matched = self
            .blocking(move || bcrypt::verify(password, &hash).map_err(AppError::internal))
            .await?;
        Ok(matched && !too_long)
    }

    /// Spends the time of one verification and always fails: for unknown emails.
    pub async fn verify_dummy(&self, password: &str) -> Result<bool, AppError> {
        let cost = self.inner.cost;
        let dummy = self
            .inner
            .dummy
            .get_or_try_init(|| {
                self.blocking(move || {
                    let mut random = [0u8; 32];
                    getrandom::fill(&mut random).map_err(AppError::internal)?;
                    bcrypt::hash(random, cost).map_err(AppError::internal)
                })
            })
            .await?;
        self.verify(password, dummy).await.map(|_| false)
    }

    /// Runs `work` on the blocking pool once a permit is free, inside the caller's span.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let queued = std::time::Instant::now();
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(AppError::internal)?;
        metrics::histogram!("password_hash_queue_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await
            .map_err(AppError::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(4);
        let password = Password::parse("StrongPass123".into()).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify("StrongPass123", &hash).await.unwrap());
        assert!(!hasher.verify("StrongPass124", &hash).await.unwrap());
        assert!(!hasher.verify_dummy("StrongPass123").await.unwrap());
    }

    #[tokio::test]
    async fn a_longer_password_sharing_the_first_72_bytes_does_not_match() {
        let hasher = PasswordHasher::new(4);
        let password = Password::parse("p".repeat(72)).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&"p".repeat(72), &hash).await.unwrap());
        assert!(!hasher.verify(&"p".repeat(80), &hash).await.unwrap());
    }
}
