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

pub struct CounterStore {
    memory: MemoryCounters,
    redis: Option<RedisCounters>,
}

impl CounterStore {
    /// Counters in this process, keeping at most `max_addresses` address counters.
    pub fn memory(max_addresses: usize) -> Self {
        Self {
            memory: MemoryCounters::new(max_addresses),
            redis: None,
        }
    }

    /// Counters in Redis at `url` (connected on first use), keys under `prefix`; in memory
    /// (as [`CounterStore::memory`]) while Redis does not answer.
    pub fn redis(url: &str, prefix: &str, max_addresses: usize) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        Ok(Self {
            memory: MemoryCounters::new(max_addresses),
            redis: Some(RedisCounters {
                manager: ConnectionManager::new_lazy_with_config(client, config)?,
                prefix: prefix.to_owned(),
                paused_until: AtomicU64::new(0),
                last_warning: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        })
    }

    /// Adds one to an account's `key` (which expires `ttl` after its first count); returns
    /// the new count and the time left before it resets. Kept until it expires.
    pub async fn incr(&self, key: &str, ttl: Duration) -> (u64, Duration) {
        if let Some(redis) = self.available_redis() {
            match redis.incr(key, ttl).await {
                Ok(result) => return result,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.incr(Table::Accounts, key, ttl)
    }

    /// As [`CounterStore::incr`], for a client address's counter: in memory, the least
    /// recently used of these go first when the table is full.
    pub async fn incr_address(&self, key: &str, ttl: Duration) -> (u64, Duration) {
        if let Some(redis) = self.available_redis() {
            match redis.incr(key, ttl).await {
                Ok(result) => return result,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.incr(Table::Addresses, key, ttl)
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

    /// Takes one from `key`'s count, if it is set and above zero (its expiry stays).
    pub async fn decr(&self, key: &str) {
        if let Some(redis) = self.available_redis() {
            match redis.decr(key).await {
                Ok(()) => return,
                Err(e) => redis.failed(&e),
            }
        }
        self.memory.decr(key);
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

    async fn decr(&self, key: &str) -> redis::RedisResult<()> {
        // One script: a key that expired meanwhile is not brought back (at -1, for good).
        const SCRIPT: &str = "local v = tonumber(redis.call('GET', KEYS[1])) \
            if v and v > 0 then redis.call('DECR', KEYS[1]) end return 0";
        let mut conn = self.manager.clone();
        let _: i64 = timeout(
            redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(self.key(key))
                .query_async(&mut conn),
        )
        .await?;
        Ok(())
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

/// Which memory table a counter lives in.
#[derive(Clone, Copy)]
enum Table {
    /// Per client address: bounded; when full, the least recently used go first. Forgetting
    /// one only gives an address a fresh minute.
    Addresses,
    /// Per account (failures, locks, lock history): never dropped before they expire. Each
    /// new key costs the caller a password check, which bounds how fast they can grow.
    Accounts,
}

/// Counters of this process only.
struct MemoryCounters {
    addresses: Mutex<Entries>,
    accounts: Mutex<Entries>,
    max_addresses: usize,
}

/// Counters by key: count, expiry, and when each was last touched.
#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    clock: u64,
    /// The size at which expired entries are next swept out.
    sweep_at: usize,
}

struct Entry {
    count: u64,
    expires: Instant,
    used: u64,
}

/// The share of the address table freed at once when it is full, so eviction is rare.
const EVICT_SHARE: usize = 10;
/// Size below which the tables are never swept.
const MIN_SWEEP: usize = 1024;

impl MemoryCounters {
    fn new(max_addresses: usize) -> Self {
        Self {
            addresses: Mutex::default(),
            accounts: Mutex::default(),
            max_addresses: max_addresses.max(1),
        }
    }

    fn with<T>(&self, table: Table, f: impl FnOnce(&mut Entries, Instant) -> T) -> T {
        let entries = match table {
            Table::Addresses => &self.addresses,
            Table::Accounts => &self.accounts,
        };
        let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.clock += 1;
        if entries.map.len() >= entries.sweep_at.max(MIN_SWEEP) {
            entries.map.retain(|_, entry| entry.expires > now);
            entries.sweep_at = entries.map.len() * 2;
        }
        if let Table::Addresses = table
            && entries.map.len() >= self.max_addresses
        {
            entries.evict_least_recent(self.max_addresses / EVICT_SHARE + 1);
        }
        f(&mut entries, now)
    }

    fn incr(&self, table: Table, key: &str, ttl: Duration) -> (u64, Duration) {
        self.with(table, |entries, now| {
            let used = entries.clock;
            let entry = entries.map.entry(key.to_owned()).or_insert(Entry {
                count: 0,
                expires: now + ttl,
                used,
            });
            if entry.expires <= now {
                *entry = Entry {
                    count: 0,
                    expires: now + ttl,
                    used,
                };
            }
            entry.count += 1;
            entry.used = used;
            (entry.count, entry.expires - now)
        })
    }

    fn ttl(&self, key: &str) -> Option<Duration> {
        self.with(Table::Accounts, |entries, now| {
            entries
                .map
                .get(key)
                .filter(|entry| entry.expires > now)
                .map(|entry| entry.expires - now)
        })
    }

    fn set(&self, key: &str, ttl: Duration) {
        self.with(Table::Accounts, |entries, now| {
            let used = entries.clock;
            entries.map.insert(
                key.to_owned(),
                Entry {
                    count: 1,
                    expires: now + ttl,
                    used,
                },
            );
        });
    }

    fn decr(&self, key: &str) {
        self.with(Table::Accounts, |entries, now| {
            if let Some(entry) = entries.map.get_mut(key)
                && entry.expires > now
            {
                entry.count = entry.count.saturating_sub(1);
            }
        });
    }

    fn delete(&self, key: &str) {
        self.with(Table::Accounts, |entries, _| {
            entries.map.remove(key);
        });
    }
}

impl Entries {
    /// Drops the `count` entries touched least recently.
    fn evict_least_recent(&mut self, count: usize) {
        let mut used: Vec<u64> = self.map.values().map(|entry| entry.used).collect();
        let count = count.min(used.len());
        if count == 0 {
            return;
        }
        let (_, &mut cutoff, _) = used.select_nth_unstable(count - 1);
        let mut left = count;
        self.map.retain(|_, entry| {
            if left > 0 && entry.used <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counters_count_and_expire() {
        let store = CounterStore::memory(100);
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
        let store = CounterStore::redis("redis://127.0.0.1:1", "test:", 100).unwrap();
        let started = Instant::now();
        assert_eq!(store.incr("k", Duration::from_secs(5)).await.0, 1);
        assert_eq!(store.incr("k", Duration::from_secs(5)).await.0, 2);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_full_address_table_never_forgets_an_account() {
        let store = CounterStore::memory(1000);
        let hour = Duration::from_secs(3600);
        store.set("login:lock:a@x", hour).await;
        store.incr("login:failures:b@x", hour).await;
        // A busy address, used all along, and a flood of new ones.
        for i in 0..100_500u32 {
            store.incr_address(&format!("login:ip:{i}"), hour).await;
            if i % 100 == 0 {
                store.incr_address("login:ip:busy", hour).await;
            }
        }
        assert!(
            store.ttl("login:lock:a@x").await.is_some(),
            "lock forgotten"
        );
        assert_eq!(store.incr("login:failures:b@x", hour).await.0, 2);
        assert!(store.incr_address("login:ip:busy", hour).await.0 > 1000);
        let size = store.memory.addresses.lock().unwrap().map.len();
        assert!(size <= 1000, "{size}");
    }
}
