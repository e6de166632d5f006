//! Rate limits on login and registration.
//!
//! - Per client address, every login attempt counts (`LOGIN_PER_IP_PER_MINUTE`), and every
//!   registration (`REGISTER_PER_IP_PER_MINUTE`), in fixed one-minute windows.
//! - Per account, at most `LOGIN_MAX_FAILURES` passwords are checked per `LOGIN_WINDOW_SECS`,
//!   however the attempts arrive. Each attempt *reserves* its check before the (slow) hash
//!   runs, so a thousand parallel guesses cannot all pass a check made before any of them
//!   failed; a success gives the reservations back. The attempt holding the last reservation
//!   locks the account when it fails: one window, doubled for each further lock within a
//!   day, up to a day. While locked, even the right password is answered 429.
//! - Per-address counters are kept per /64 for IPv6: one subscriber owns a whole /64.
//!
//! The limits are checked in the service layer, so REST, GraphQL, every alias in a document
//! and every operation in a batch count alike, and they share one set of counters.

mod store;

use secrecy::ExposeSecret;
use std::{net::IpAddr, time::Duration};

pub use store::CounterStore;

use crate::{config::Config, error::AppError};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Messages one account may ask for in an hour.
const MAILS_PER_HOUR: u64 = 3;
/// Attempts to change one account's address in an hour.
const EMAIL_CHANGES_PER_HOUR: u64 = 3;

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
            Some(url) => CounterStore::redis(url.expose_secret(), &config.redis_key_prefix, config.rate_limit_max_keys).unwrap_or_else(|e| {
                tracing::error!(error = %e, "REDIS_URL is not usable: counting rate limits in this process");
                CounterStore::memory(config.rate_limit_max_keys)
            }),
            None => CounterStore::memory(config.rate_limit_max_keys),
        };
        Self {
            store,
            login_max_failures: u64::from(config.login_max_failures.max(1)),
            login_window: config.login_window.max(Duration::from_secs(1)),
            login_per_ip: u64::from(config.login_per_ip_per_minute),
            register_per_ip: u64::from(config.register_per_ip_per_minute),
        }
    }

    /// Counts a login attempt and reserves one password check for it; refuses it when the
    /// address is over its limit, the account is locked, or the account's checks for this
    /// window are all taken (by failures or by attempts still running).
    pub async fn login_attempt(
        &self,
        client: IpAddr,
        email: &str,
    ) -> Result<Reservation, AppError> {
        self.refresh_attempt(client).await?;
        if let Some(left) = self.store.ttl(&lock_key(email)).await {
            return Err(limited("account_locked", left));
        }
        let (number, reset) = self
            .store
            .incr(&failures_key(email), self.login_window)
            .await;
        if number > self.login_max_failures {
            return Err(limited("login_account", reset));
        }
        Ok(Reservation { number })
    }

    /// Counts a token refresh against the address's login limit: a refresh token is a
    /// credential, and guessing one is guessing a password.
    pub async fn refresh_attempt(&self, client: IpAddr) -> Result<(), AppError> {
        let (count, reset) = self
            .store
            .incr_address(&address_key("login", client), MINUTE)
            .await;
        if count > self.login_per_ip {
            return Err(limited("login_address", reset));
        }
        Ok(())
    }

    /// Records a failed check; the one that held the last reservation locks the account, and
    /// gets the lock's length back.
    pub async fn login_failed(&self, email: &str, reservation: Reservation) -> Option<Duration> {
        if reservation.number == self.login_max_failures {
            let (lockouts, _) = self
                .store
                .incr(&account_key("login:lockouts", email), DAY)
                .await;
            let factor = 1u32 << lockouts.saturating_sub(1).min(16);
            let lock = (self.login_window * factor).min(DAY);
            self.store.set(&lock_key(email), lock).await;
            self.store.delete(&failures_key(email)).await;
            tracing::warn!(
                lock_secs = lock.as_secs(),
                "account locked after repeated failed logins"
            );
            return Some(lock);
        }
        None
    }

    /// Gives a reservation back without a verdict: the right password of an account whose
    /// second factor is still due. Its failures stay (only a completed sign-in clears them),
    /// and the check does not count as one.
    pub async fn login_released(&self, email: &str, _reservation: Reservation) {
        self.store.decr(&failures_key(email)).await;
    }

    /// A successful login clears the account's failures and reservations (not its lock
    /// history).
    pub async fn login_succeeded(&self, email: &str, _reservation: Reservation) {
        self.store.delete(&failures_key(email)).await;
    }

    /// Counts a verification message asked for by `user_id`: at most 3 an hour.
    pub async fn verification_mail(&self, user_id: i32) -> Result<(), AppError> {
        let (count, reset) = self
            .store
            .incr(&format!("mail:verify:{user_id}"), HOUR)
            .await;
        if count > MAILS_PER_HOUR {
            return Err(limited("verification_mail", reset));
        }
        Ok(())
    }

    /// Counts an attempt to change the address of `user_id` (a refused one too: trying taken
    /// addresses is how accounts are enumerated): at most 3 an hour, then 429.
    pub async fn email_change(&self, user_id: i32) -> Result<(), AppError> {
        let (count, reset) = self
            .store
            .incr(&format!("email:change:{user_id}"), HOUR)
            .await;
        if count > EMAIL_CHANGES_PER_HOUR {
            return Err(limited("email_change", reset));
        }
        Ok(())
    }

    /// Counts a password-reset request from `client`: 429 past `per_hour`.
    pub async fn recovery_request(&self, client: IpAddr, per_hour: u64) -> Result<(), AppError> {
        let (count, reset) = self
            .store
            .incr_address(&address_key("recovery", client), HOUR)
            .await;
        if count > per_hour {
            return Err(limited("recovery_address", reset));
        }
        Ok(())
    }

    /// Counts a reset message for `email`; false past 3 an hour (the request is answered as
    /// usual, and nothing is sent).
    pub async fn recovery_mail(&self, email: &str) -> bool {
        let (count, _) = self
            .store
            .incr(&account_key("mail:reset", email), HOUR)
            .await;
        count <= MAILS_PER_HOUR
    }

    /// Forgets the account's failed logins and lock (after a password reset).
    pub async fn clear_lockout(&self, email: &str) {
        self.store.delete(&failures_key(email)).await;
        self.store.delete(&lock_key(email)).await;
    }

    /// Counts a registration from `client`; refuses it over the limit.
    pub async fn registration(&self, client: IpAddr) -> Result<(), AppError> {
        let (count, reset) = self
            .store
            .incr_address(&address_key("register", client), MINUTE)
            .await;
        if count > self.register_per_ip {
            return Err(limited("registration_address", reset));
        }
        Ok(())
    }
}

/// A password check an attempt may make: the `number`-th of its account's window.
#[derive(Debug)]
#[must_use = "report the outcome with login_failed or login_succeeded"]
pub struct Reservation {
    number: u64,
}

/// The counter key of a client address: the address itself for IPv4, its /64 for IPv6.
fn address_key(purpose: &str, client: IpAddr) -> String {
    match crate::net::canonical(client) {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            format!("{purpose}:ip:{}/64", std::net::Ipv6Addr::from(network))
        }
        v4 => format!("{purpose}:ip:{v4}"),
    }
}

/// The counter key of an account's `purpose`: a fixed-size digest of the email, so that no
/// counter (in memory or in Redis) grows with what a client typed.
fn account_key(purpose: &str, email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(email.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{purpose}:{hex}")
}

fn failures_key(email: &str) -> String {
    account_key("login:failures", email)
}

fn lock_key(email: &str) -> String {
    account_key("login:lock", email)
}

/// 429 with the whole seconds to wait (at least one).
/// The 429 of limit `name` (a label of `rate_limit_refusals_total`), counted.
fn limited(name: &'static str, left: Duration) -> AppError {
    metrics::counter!("rate_limit_refusals_total", "limit" => name).increment(1);
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

    fn retry_after<T>(result: Result<T, AppError>) -> u64 {
        match result {
            Err(AppError::RateLimited { retry_after_secs }) => retry_after_secs,
            other => panic!("expected 429, got {:?}", other.err().map(|e| e.code())),
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn fail(l: &RateLimiter, email: &str) {
        let reservation = l.login_attempt(IP, email).await.unwrap();
        l.login_failed(email, reservation).await;
    }

    #[tokio::test]
    async fn failures_lock_the_account_for_a_growing_time() {
        let l = limiter(&[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_WINDOW_SECS", "100")]);
        for _ in 0..3 {
            fail(&l, "a@x").await;
        }
        assert_eq!(retry_after(l.login_attempt(IP, "a@x").await), 100);
        // Another account is not affected.
        let other = l.login_attempt(IP, "b@x").await.unwrap();
        l.login_succeeded("b@x", other).await;
        // A second lock lasts twice as long.
        l.store.delete(&lock_key("a@x")).await;
        for _ in 0..3 {
            fail(&l, "a@x").await;
        }
        assert_eq!(retry_after(l.login_attempt(IP, "a@x").await), 200);
    }

    #[tokio::test]
    async fn success_clears_the_failures() {
        let l = limiter(&[("LOGIN_MAX_FAILURES", "3")]);
        fail(&l, "a@x").await;
        fail(&l, "a@x").await;
        let right = l.login_attempt(IP, "a@x").await.unwrap();
        l.login_succeeded("a@x", right).await;
        fail(&l, "a@x").await;
        fail(&l, "a@x").await;
        let _ = l.login_attempt(IP, "a@x").await.unwrap();
    }

    #[tokio::test]
    async fn a_released_check_neither_fails_nor_clears() {
        let l = limiter(&[("LOGIN_MAX_FAILURES", "3")]);
        fail(&l, "a@x").await;
        fail(&l, "a@x").await;
        // Right passwords whose second factor is still due, any number of them.
        for _ in 0..5 {
            let right = l.login_attempt(IP, "a@x").await.unwrap();
            l.login_released("a@x", right).await;
        }
        // The two failures are still there: the third locks.
        fail(&l, "a@x").await;
        assert!(l.store.ttl(&lock_key("a@x")).await.is_some(), "locked");
    }

    #[tokio::test]
    async fn checks_are_reserved_before_they_run() {
        // Forty attempts arrive before any has finished its check: only three may run.
        let l = limiter(&[("LOGIN_MAX_FAILURES", "3")]);
        let mut granted = Vec::new();
        let mut refused = 0;
        for _ in 0..40 {
            match l.login_attempt(IP, "a@x").await {
                Ok(reservation) => granted.push(reservation),
                Err(_) => refused += 1,
            }
        }
        assert_eq!((granted.len(), refused), (3, 37));
        for reservation in granted {
            l.login_failed("a@x", reservation).await;
        }
        assert!(l.store.ttl(&lock_key("a@x")).await.is_some(), "locked");
    }

    #[test]
    fn account_keys_are_fixed_size_digests() {
        let short = failures_key("a@x");
        let huge = failures_key(&"a".repeat(1_000_000));
        assert_eq!(short.len(), huge.len());
        assert_eq!(short.len(), "login:failures:".len() + 32);
        assert!(!short.contains("a@x"));
        assert_ne!(failures_key("a@x"), failures_key("b@x"));
        assert_ne!(failures_key("a@x"), lock_key("a@x"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key("login", a), address_key("login", b));
        assert_ne!(address_key("login", a), address_key("login", c));
        assert_eq!(address_key("login", IP), "login:ip:127.0.0.1");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(address_key("login", mapped), "login:ip:10.1.2.3");
    }

    #[tokio::test]
    async fn every_attempt_counts_per_address() {
        let l = limiter(&[
            ("LOGIN_PER_IP_PER_MINUTE", "5"),
            ("REGISTER_PER_IP_PER_MINUTE", "2"),
        ]);
        for i in 0..5 {
            let _ = l.login_attempt(IP, &format!("{i}@x")).await.unwrap();
        }
        assert!(retry_after(l.login_attempt(IP, "z@x").await) <= 60);
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let _ = l.login_attempt(other, "z@x").await.unwrap();
        l.registration(IP).await.unwrap();
        l.registration(IP).await.unwrap();
        assert!(l.registration(IP).await.is_err());
    }
}
