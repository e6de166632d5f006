//! Expiring counters, in this process or in Redis.
//!
//! With `REDIS_URL` every operation is one atomic Redis round trip, so all replicas share the
//! counts. When Redis cannot be reached the service keeps answering: it counts in memory
//! (logging that it does, at most every 30 s), stops asking Redis for a few seconds, and goes
//! back to it by itself once it answers again.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{AsyncCommands, aio::ConnectionManager};

/// How long a failed Redis call keeps the store on its local counters.
const REDIS_PAUSE: Duration = Duration::from_secs(2);
/// Redis calls that take longer than this count as failed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Memory counters kept at most; past it, expired ones are dropped, then all (fail open).
const MAX_MEMORY_KEYS: usize = 100_000;

pub struct CounterStore {
    memory: MemoryCounters,
    redis: Option<RedisCounters>,
}

impl CounterStore {
    pub fn memory() -> Self {
        Self {
            memory: MemoryCounters::default(),
            redis: None,
        }
    }

    /// Counters in Redis at `url` (connected on first use), keys under `prefix`.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        Ok(Self {
            memory: MemoryCounters::default(),
            redis: Some(RedisCounters {
                manager: ConnectionManager::new_lazy_with_config(client, config)?,
                prefix: prefix.to_owned(),
                paused_until: AtomicU64::new(0),
                last_warning: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        })
    }

    /// Adds one to `key` (which expires `ttl` after its first count); returns the new count
    /// and the time left before it resets.
    pub async fn incr(&self, key: &str, ttl: Duration) -> (u64, Duration) {
        if let Some(redis) = self.available_redis() {
            match redis.incr(key, ttl).await {
                Ok(result) => return result,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.incr(key, ttl)
    }

    /// Time left on `key`, if it is set.
    pub async fn ttl(&self, key: &str) -> Option<Duration> {
        if let Some(redis) = self.available_redis() {
            match redis.ttl(key).await {
                Ok(result) => return result,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.ttl(key)
    }

    /// Sets `key` for `ttl`.
    pub async fn set(&self, key: &str, ttl: Duration) {
        if let Some(redis) = self.available_redis() {
            match redis.set(key, ttl).await {
                Ok(()) => return,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.set(key, ttl);
    }

    pub async fn delete(&self, key: &str) {
        if let Some(redis) = self.available_redis() {
            match redis.delete(key).await {
                Ok(()) => return,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.delete(key);
    }

    fn available_redis(&self) -> Option<&RedisCounters> {
        self.redis.as_ref().filter(|r| !r.paused())
    }
}

struct RedisCounters {
    manager: ConnectionManager,
    prefix: String,
    /// Milliseconds since `epoch` until which Redis is not asked.
    paused_until: AtomicU64,
    last_warning: AtomicU64,
    epoch: Instant,
}

impl RedisCounters {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn paused(&self) -> bool {
        self.now_ms() < self.paused_until.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &redis::RedisError) {
        let now = self.now_ms();
        self.paused_until
            .store(now + REDIS_PAUSE.as_millis() as u64, Ordering::Relaxed);
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 30_000)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %error, "Redis unreachable: rate limits are counted in this process until it answers");
        }
    }

    async fn incr(&self, key: &str, ttl: Duration) -> redis::RedisResult<(u64, Duration)> {
        let key = self.key(key);
        let mut conn = self.manager.clone();
        let (count, pttl): (u64, i64) = timeout(
            redis::pipe()
                .atomic()
                .incr(&key, 1)
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl.as_millis() as u64)
                .arg("NX")
                .ignore()
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn),
        )
        .await?;
        Ok((count, Duration::from_millis(pttl.max(0) as u64)))
    }

    async fn ttl(&self, key: &str) -> redis::RedisResult<Option<Duration>> {
        let mut conn = self.manager.clone();
        let pttl: i64 = timeout(conn.pttl(self.key(key))).await?;
        Ok((pttl > 0).then(|| Duration::from_millis(pttl as u64)))
    }

    async fn set(&self, key: &str, ttl: Duration) -> redis::RedisResult<()> {
        let mut conn = self.manager.clone();
        timeout(conn.pset_ex(self.key(key), 1, ttl.as_millis() as u64)).await
    }

    async fn delete(&self, key: &str) -> redis::RedisResult<()> {
        let mut conn = self.manager.clone();
        timeout(conn.del(self.key(key))).await
    }
}

async fn timeout<T>(call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(REDIS_TIMEOUT * 2, call)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis call timed out",
            )))
        })
}

/// Counters of this process only.
#[derive(Default)]
struct MemoryCounters {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl MemoryCounters {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (u64, Instant)>, Instant) -> T) -> T {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if entries.len() >= MAX_MEMORY_KEYS {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= MAX_MEMORY_KEYS {
                tracing::warn!("rate-limit counters full: starting over");
                entries.clear();
            }
        }
        f(&mut entries, now)
    }

    fn incr(&self, key: &str, ttl: Duration) -> (u64, Duration) {
        self.with(|entries, now| {
            let entry = entries.entry(key.to_owned()).or_insert((0, now + ttl));
            if entry.1 <= now {
                *entry = (0, now + ttl);
            }
            entry.0 += 1;
            (entry.0, entry.1 - now)
        })
    }

    fn ttl(&self, key: &str) -> Option<Duration> {
        self.with(|entries, now| {
            entries
                .get(key)
                .filter(|(_, expires)| *expires > now)
                .map(|(_, expires)| *expires - now)
        })
    }

    fn set(&self, key: &str, ttl: Duration) {
        self.with(|entries, now| {
            entries.insert(key.to_owned(), (1, now + ttl));
        });
    }

    fn delete(&self, key: &str) {
        self.with(|entries, _| {
            entries.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counters_count_and_expire() {
        let store = CounterStore::memory();
        let ttl = Duration::from_millis(50);
        assert_eq!(store.incr("k", ttl).await.0, 1);
        assert_eq!(store.incr("k", ttl).await.0, 2);
        assert!(store.ttl("k").await.is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.ttl("k").await, None);
        assert_eq!(store.incr("k", ttl).await.0, 1);
        store.set("lock", ttl).await;
        assert!(store.ttl("lock").await.is_some());
        store.delete("lock").await;
        assert_eq!(store.ttl("lock").await, None);
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_memory_quickly() {
        // Nothing listens on port 1.
        let store = CounterStore::redis("redis://127.0.0.1:1", "test:").unwrap();
        let started = Instant::now();
        assert_eq!(store.incr("k", Duration::from_secs(5)).await.0, 1);
        assert_eq!(store.incr("k", Duration::from_secs(5)).await.0, 2);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
