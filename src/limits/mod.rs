//! Rate limits on login and registration (SPEC §6).
//!
//! - Per client address, every login attempt counts (`LOGIN_PER_IP_PER_MINUTE`), and every
//!   registration (`REGISTER_PER_IP_PER_MINUTE`), in fixed one-minute windows.
//! - Per account, failed logins count (`LOGIN_MAX_FAILURES` per `LOGIN_WINDOW_SECS`). Reaching
//!   the limit locks the account for one window; each further lock within a day doubles that,
//!   up to a day. While locked, even the right password is answered 429.
//!
//! The limits are checked in the service layer, so REST, GraphQL, every alias in a document
//! and every operation in a batch count alike, and they share one set of counters.

mod store;

use std::{net::IpAddr, time::Duration};

pub use store::CounterStore;

use crate::{config::Config, error::AppError};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

pub struct RateLimiter {
    store: CounterStore,
    login_max_failures: u64,
    login_window: Duration,
    login_per_ip: u64,
    register_per_ip: u64,
}

impl RateLimiter {
    pub fn new(config: &Config) -> Self {
        let store = match &config.redis_url {
            Some(url) => CounterStore::redis(url.expose(), &config.redis_key_prefix).unwrap_or_else(|e| {
                tracing::error!(error = %e, "REDIS_URL is not usable: counting rate limits in this process");
                CounterStore::memory()
            }),
            None => CounterStore::memory(),
        };
        Self {
            store,
            login_max_failures: u64::from(config.login_max_failures.max(1)),
            login_window: config.login_window.max(Duration::from_secs(1)),
            login_per_ip: u64::from(config.login_per_ip_per_minute),
            register_per_ip: u64::from(config.register_per_ip_per_minute),
        }
    }

    /// Counts a login attempt; refuses it when the address is over its limit or the account
    /// is locked.
    pub async fn login_attempt(&self, client: IpAddr, email: &str) -> Result<(), AppError> {
        let (count, reset) = self.store.incr(&format!("login:ip:{client}"), MINUTE).await;
        if count > self.login_per_ip {
            return Err(limited(reset));
        }
        match self.store.ttl(&lock_key(email)).await {
            Some(left) => Err(limited(left)),
            None => Ok(()),
        }
    }

    /// Records a failed login; the failure that reaches the limit locks the account.
    pub async fn login_failed(&self, email: &str) {
        let (failures, _) = self
            .store
            .incr(&failures_key(email), self.login_window)
            .await;
        if failures == self.login_max_failures {
            let (lockouts, _) = self
                .store
                .incr(&format!("login:lockouts:{email}"), DAY)
                .await;
            let factor = 1u32 << lockouts.saturating_sub(1).min(16);
            let lock = (self.login_window * factor).min(DAY);
            self.store.set(&lock_key(email), lock).await;
            self.store.delete(&failures_key(email)).await;
            tracing::warn!(
                lock_secs = lock.as_secs(),
                "account locked after repeated failed logins"
            );
        }
    }

    /// A successful login clears the account's failures (not its lock history).
    pub async fn login_succeeded(&self, email: &str) {
        self.store.delete(&failures_key(email)).await;
    }

    /// Counts a registration from `client`; refuses it over the limit.
    pub async fn registration(&self, client: IpAddr) -> Result<(), AppError> {
        let (count, reset) = self
            .store
            .incr(&format!("register:ip:{client}"), MINUTE)
            .await;
        if count > self.register_per_ip {
            return Err(limited(reset));
        }
        Ok(())
    }
}

fn failures_key(email: &str) -> String {
    format!("login:failures:{email}")
}

fn lock_key(email: &str) -> String {
    format!("login:lock:{email}")
}

/// 429 with the whole seconds to wait (at least one).
fn limited(left: Duration) -> AppError {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    AppError::RateLimited {
        retry_after_secs: secs.max(1),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn limiter(pairs: &[(&str, &str)]) -> RateLimiter {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RateLimiter::new(&Config::from_lookup(|k| map.get(k).cloned()).unwrap())
    }

    fn retry_after(result: Result<(), AppError>) -> u64 {
        match result {
            Err(AppError::RateLimited { retry_after_secs }) => retry_after_secs,
            other => panic!("expected 429, got {:?}", other.err().map(|e| e.code())),
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn failures_lock_the_account_for_a_growing_time() {
        let l = limiter(&[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_WINDOW_SECS", "100")]);
        for _ in 0..3 {
            l.login_attempt(IP, "a@x").await.unwrap();
            l.login_failed("a@x").await;
        }
        assert_eq!(retry_after(l.login_attempt(IP, "a@x").await), 100);
        // Another account is not affected.
        l.login_attempt(IP, "b@x").await.unwrap();
        // A second lock lasts twice as long.
        l.store.delete(&lock_key("a@x")).await;
        for _ in 0..3 {
            l.login_failed("a@x").await;
        }
        assert_eq!(retry_after(l.login_attempt(IP, "a@x").await), 200);
    }

    #[tokio::test]
    async fn success_clears_the_failures() {
        let l = limiter(&[("LOGIN_MAX_FAILURES", "3")]);
        l.login_failed("a@x").await;
        l.login_failed("a@x").await;
        l.login_succeeded("a@x").await;
        l.login_failed("a@x").await;
        l.login_failed("a@x").await;
        l.login_attempt(IP, "a@x").await.unwrap();
    }

    #[tokio::test]
    async fn every_attempt_counts_per_address() {
        let l = limiter(&[
            ("LOGIN_PER_IP_PER_MINUTE", "5"),
            ("REGISTER_PER_IP_PER_MINUTE", "2"),
        ]);
        for i in 0..5 {
            l.login_attempt(IP, &format!("{i}@x")).await.unwrap();
        }
        assert!(retry_after(l.login_attempt(IP, "z@x").await) <= 60);
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        l.login_attempt(other, "z@x").await.unwrap();
        l.registration(IP).await.unwrap();
        l.registration(IP).await.unwrap();
        assert!(l.registration(IP).await.is_err());
    }
}
