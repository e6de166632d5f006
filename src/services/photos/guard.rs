//! What a slow or dead photo store may hold of the service: places, time, and a breaker.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use crate::error::AppError;

/// How long one call to the store may take, wherever it is.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may wait for one of the `PHOTO_STORE_CONCURRENCY` places.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failures in a row after which the store is not asked for [`BREAKER_OPEN`].
const BREAKER_FAILURES: u32 = 5;
const BREAKER_OPEN: Duration = Duration::from_secs(30);

/// What a slow or dead store may hold: at most `PHOTO_STORE_CONCURRENCY` calls at once, each
/// bounded by [`CALL_TIMEOUT`]; after [`BREAKER_FAILURES`] failures in a row every call is
/// answered 503 at once for [`BREAKER_OPEN`], then the store is tried again.
pub(super) struct StoreGuard {
    calls: Semaphore,
    failures: std::sync::atomic::AtomicU32,
    /// Milliseconds since `epoch` until which calls are refused.
    open_until: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl StoreGuard {
    pub(super) fn new(concurrency: usize) -> Self {
        Self {
            calls: Semaphore::new(concurrency.max(1)),
            failures: Default::default(),
            open_until: Default::default(),
            epoch: std::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs `call` within the bounds; `is_failure` tells which of its errors count against
    /// the store (a missing object does not). The outer error is the guard's own refusal.
    pub(super) async fn run<T, E>(
        &self,
        is_failure: impl Fn(&E) -> bool,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, AppError> {
        use std::sync::atomic::Ordering;
        if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            return Err(store_down(
                "the photo store failed repeatedly; not asking it for now",
            ));
        }
        let _permit = tokio::time::timeout(QUEUE_TIMEOUT, self.calls.acquire())
            .await
            .map_err(|_| store_down("every photo store call is in use"))?
            .map_err(AppError::internal)?;
        let result = tokio::time::timeout(CALL_TIMEOUT, call).await;
        match &result {
            Ok(Ok(_)) => self.failures.store(0, Ordering::Release),
            Ok(Err(e)) if !is_failure(e) => self.failures.store(0, Ordering::Release),
            _ => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= BREAKER_FAILURES {
                    let until = self.now_ms() + BREAKER_OPEN.as_millis() as u64;
                    self.open_until.store(until, Ordering::Release);
                    tracing::error!(
                        failures,
                        "photo store failing: refusing photo calls for 30 s"
                    );
                }
            }
        }
        result.map_err(|_| store_down("a photo store call timed out"))
    }
}

fn store_down(why: &'static str) -> AppError {
    AppError::Unavailable(Arc::new(anyhow::anyhow!(why)))
}
