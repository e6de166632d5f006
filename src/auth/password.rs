//! bcrypt, run off the async executor.
//!
//! A bcrypt hash at cost 12 takes a few hundred milliseconds of CPU. On a tokio worker it would
//! stall every other request on that thread, so hashing runs on the blocking pool, and a
//! semaphore caps how many hashes run at once (one per core): a login flood then queues here
//! instead of filling the blocking pool with hundreds of threads fighting over two cores.
//!
//! The queue itself is bounded by time: when a new hash would wait longer than
//! `HASH_QUEUE_MAX_WAIT_SECS` (the hashes ahead of it, times the recent time of one, over the
//! cores), it is refused at once with 503 `Server busy` and a `Retry-After`. A flood that stays
//! inside every address's limit then costs its senders refusals, not everyone's logins.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

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
    parallelism: usize,
    permits: Semaphore,
    /// Hashes waiting or running.
    queued: AtomicUsize,
    /// A moving average of one hash's time, in microseconds (0 until the first one).
    hash_micros: AtomicU64,
    max_wait: Duration,
    /// A hash of a random password at the configured cost, checked when the email is unknown
    /// so that both login failures cost the same time. Made on first use: it takes as long
    /// as a real hash and would otherwise delay start-up.
    dummy: OnceCell<String>,
}

/// The stored hash of an account that has no password (made through an external provider):
/// no password matches it; a password reset sets one.
pub const NO_PASSWORD: &str = "";

/// A first guess at one hash's time before any is measured: a hash at the cheapest cost (a
/// millisecond), doubled for each step of cost above it. A burst at start-up is then bounded
/// too, not only once the first hash has finished.
fn estimate_micros(cost: u32) -> u64 {
    const CHEAPEST: u32 = 4;
    let started = Instant::now();
    if bcrypt::hash("calibration", CHEAPEST).is_err() {
        return 0;
    }
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    micros.saturating_mul(1u64 << cost.saturating_sub(CHEAPEST).min(40))
}

/// One place in the queue, given back when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// Hashes at `cost`, refusing work that would wait longer than `max_wait` to start.
    pub fn new(cost: u32, max_wait: Duration) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                cost,
                parallelism,
                permits: Semaphore::new(parallelism),
                queued: AtomicUsize::new(0),
                hash_micros: AtomicU64::new(estimate_micros(cost)),
                max_wait,
                dummy: OnceCell::new(),
            }),
        }
    }

    /// `Busy` when a hash queued now would wait longer than allowed. Cheap: check it before
    /// any work a refusal should not cost (a login's reservation against its account).
    pub fn admit(&self) -> Result<(), AppError> {
        self.expected_wait(self.inner.queued.load(Ordering::Acquire))
    }

    /// `Busy` when a hash with `ahead` others waiting or running would wait too long.
    fn expected_wait(&self, ahead: usize) -> Result<(), AppError> {
        let one = self.inner.hash_micros.load(Ordering::Relaxed);
        let rounds = (ahead / self.inner.parallelism) as u64;
        let wait = Duration::from_micros(one.saturating_mul(rounds));
        if wait > self.inner.max_wait {
            metrics::counter!("rate_limit_refusals_total", "limit" => "hash_queue").increment(1);
            return Err(AppError::Busy {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        Ok(())
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let cost = self.inner.cost;
        let password = password.expose().to_owned();
        self.blocking(move || bcrypt::hash(password, cost).map_err(AppError::internal))
            .await
    }

    /// True when `password` matches `hash`. A password over bcrypt's 72 bytes never matches:
    /// bcrypt would compare only its first 72 bytes. An account without a password
    /// ([`NO_PASSWORD`]) matches nothing, after the same work as any other.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, AppError> {
        if hash == NO_PASSWORD {
            return self.verify_dummy(password).await;
        }
        self.check(password, hash).await
    }

    async fn check(&self, password: &str, hash: &str) -> Result<bool, AppError> {
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
        self.check(password, dummy).await.map(|_| false)
    }

    /// Runs `work` on the blocking pool once a permit is free, inside the caller's span.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let ahead = self.inner.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.inner.queued);
        self.expected_wait(ahead)?;
        let queued = Instant::now();
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(AppError::internal)?;
        metrics::histogram!("password_hash_queue_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        let span = tracing::Span::current();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await
            .map_err(AppError::internal)?;
        self.measured(started.elapsed());
        result
    }

    /// Folds one hash's time into the moving average (an eighth of the new sample).
    fn measured(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let average = &self.inner.hash_micros;
        let old = average.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        average.store(new, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(4, Duration::from_secs(5));
        let password = Password::parse("StrongPass123".into()).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify("StrongPass123", &hash).await.unwrap());
        assert!(!hasher.verify("StrongPass124", &hash).await.unwrap());
        assert!(!hasher.verify_dummy("StrongPass123").await.unwrap());
    }

    #[tokio::test]
    async fn work_that_would_wait_too_long_is_refused_at_once() {
        let hasher = PasswordHasher::new(4, Duration::from_secs(5));
        // An empty queue: nothing is refused.
        hasher.admit().unwrap();
        hasher.inner.hash_micros.store(0, Ordering::Relaxed);
        hasher.measured(Duration::from_secs(1));
        let cores = hasher.inner.parallelism;
        // Five rounds of hashes ahead: five seconds, at the limit.
        hasher.inner.queued.store(5 * cores, Ordering::Release);
        hasher.admit().unwrap();
        hasher.inner.queued.store(6 * cores, Ordering::Release);
        match hasher.admit() {
            Err(AppError::Busy { retry_after_secs }) => assert_eq!(retry_after_secs, 6),
            other => panic!("expected Busy, got {:?}", other.err().map(|e| e.code())),
        }
        let password = Password::parse("StrongPass123".into()).unwrap();
        assert!(matches!(
            hasher.hash(&password).await,
            Err(AppError::Busy { .. })
        ));
        // The refused one gave its place back.
        assert_eq!(hasher.inner.queued.load(Ordering::Acquire), 6 * cores);
    }

    #[tokio::test]
    async fn a_longer_password_sharing_the_first_72_bytes_does_not_match() {
        let hasher = PasswordHasher::new(4, Duration::from_secs(5));
        let password = Password::parse("p".repeat(72)).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&"p".repeat(72), &hash).await.unwrap());
        assert!(!hasher.verify(&"p".repeat(80), &hash).await.unwrap());
    }
}
