//! Key lookups on PostgreSQL on a few connections of their own, outside SQLx's pool.
//!
//! SQLx pings every connection as it goes back to its pool (a `Sync` and the server's
//! answer): for a read that is one query, that doubles the round trips, and on a loopback
//! a round trip is mostly CPU, the client's and the server's. The reads every authenticated
//! request makes (`services::prepared`) run here instead, on at most [`MAX_OPEN`] connections
//! that go back to a plain list when a query finishes. One taken after a second idle is
//! pinged first, as the pool does on checkout (a connection a firewall dropped must not
//! hang a request). A lease dropped mid-query (the client went away) closes its
//! connection, so none is reused in an unknown state. When no connection frees up within
//! the pool's acquire timeout, or anything fails, the read answers [`Unavailable`] and the
//! caller runs it through the pool.

use std::{
    str::FromStr,
    sync::Mutex,
    time::{Duration, Instant},
};

use sea_orm::{
    Value, Values,
    sqlx::{
        self, Connection,
        postgres::{PgConnectOptions, PgConnection, PgRow},
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::Unavailable;

/// Connections open at most, in use or idle: the most lookups in flight at once; the rest
/// wait for one, as they would for the pool.
const MAX_OPEN: usize = 8;

/// A connection idle for longer is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

pub struct DedicatedReader {
    options: PgConnectOptions,
    /// A place among the [`MAX_OPEN`] connections.
    places: Semaphore,
    /// How long a read waits for a place before it goes to the pool.
    wait: Duration,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
}

/// A place and its connection. Dropped without [`Lease::give_back`] (an error, a cancelled
/// request), the connection closes, so none is reused in an unknown state.
struct Lease<'a> {
    reader: &'a DedicatedReader,
    _place: SemaphorePermit<'a>,
    connection: PgConnection,
}

impl Lease<'_> {
    fn give_back(self) {
        let mut idle = self.reader.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push((self.connection, Instant::now()));
    }
}

impl DedicatedReader {
    /// A reader for the database at `url` (connections open on first use); a read waits
    /// for a connection at most `wait`.
    pub fn new(url: &str, wait: Duration) -> Option<Self> {
        let options = PgConnectOptions::from_str(url).ok()?;
        Some(Self {
            options,
            places: Semaphore::new(MAX_OPEN),
            wait,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `sql` with `values`: its first row.
    pub async fn one(
        &self,
        sql: &'static str,
        values: Vec<Value>,
    ) -> Result<Option<PgRow>, Unavailable> {
        let mut lease = self.lease().await?;
        match sqlx::query_with(sql, SqlxValues(Values(values)))
            .fetch_optional(&mut lease.connection)
            .await
        {
            Ok(row) => {
                lease.give_back();
                Ok(row)
            }
            Err(error) => {
                tracing::debug!(%error, "dedicated read failed; reading through the pool");
                Err(Unavailable)
            }
        }
    }

    async fn lease(&self) -> Result<Lease<'_>, Unavailable> {
        let place = tokio::time::timeout(self.wait, self.places.acquire())
            .await
            .map_err(|_| Unavailable)?
            .map_err(|_| Unavailable)?;
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match taken {
            Some((mut connection, since)) => {
                if since.elapsed() > PING_IF_IDLE_FOR {
                    connection.ping().await.map_err(|_| Unavailable)?;
                }
                connection
            }
            None => PgConnection::connect_with(&self.options)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "cannot open a dedicated PostgreSQL reader");
                    Unavailable
                })?,
        };
        Ok(Lease {
            reader: self,
            _place: place,
            connection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads cut off mid-query (a client that went away) free their place and close their
    /// connection; reads beyond the places wait for one. Needs PostgreSQL (`TEST_DATABASE_URL`,
    /// as the black-box suite; CI sets it).
    #[tokio::test]
    async fn cancelled_reads_free_their_place_and_many_reads_share_the_places() {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return;
        };
        let reader = DedicatedReader::new(&url, Duration::from_secs(5)).unwrap();
        for _ in 0..MAX_OPEN * 2 {
            let cut = tokio::time::timeout(
                Duration::from_millis(20),
                reader.one("SELECT pg_sleep(0.2)", vec![]),
            )
            .await;
            assert!(cut.is_err(), "the read was cut off");
        }
        assert_eq!(reader.places.available_permits(), MAX_OPEN);
        let row = reader
            .one("SELECT $1::int4 + 1 AS n", vec![Value::Int(Some(41))])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 42);

        let reads = (0..MAX_OPEN * 3).map(|_| reader.one("SELECT pg_sleep(0.01)", vec![]));
        for read in futures_util::future::join_all(reads).await {
            assert!(read.is_ok());
        }
        assert_eq!(reader.places.available_permits(), MAX_OPEN);
        let idle = reader.idle.lock().unwrap().len();
        assert!((1..=MAX_OPEN).contains(&idle), "{idle} idle");
    }
}
