//! The database connection: SQLite (the zero-setup default) or PostgreSQL.
//!
//! SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, and every
//! write transaction starts with `BEGIN IMMEDIATE`: a deferred transaction that reads first
//! and then writes cannot wait for the lock and fails at once with `database is locked`,
//! whatever the busy timeout says. Taking the write lock up front makes writers queue instead.
//! The key lookups of every authenticated request run through a [`Reader`].

pub mod dedicated;
pub mod inline;

use secrecy::ExposeSecret;
use std::{ffi::c_int, path::Path, ptr::NonNull, time::Duration};

use libsqlite3_sys::sqlite3;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, QueryResult, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    TryIntoModel, Value,
    sqlx::{
        self,
        sqlite::{SqliteConnection, SqliteJournalMode, SqliteSynchronous},
    },
};

use crate::config::DatabaseConfig;

/// How long a SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled PostgreSQL connection idle for this long is pinged before use. SQLx already
/// pings every connection as it goes back to the pool, so one used moments ago is known to
/// be alive; pinging it again on checkout (SQLx's default) would add a round trip to every
/// query.
const PG_PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens the pool (creating the SQLite file and its folder when needed).
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let url = config.url.expose_secret();
    let mut options = ConnectOptions::new(url);
    options
        .acquire_timeout(config.acquire_timeout)
        .connect_timeout(config.acquire_timeout)
        .sqlx_logging(false);
    if is_sqlite(url) {
        if let Some(dir) = sqlite_file(url).and_then(Path::parent)
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
        }
        // A SQLite connection is a file handle in this process: it cannot be dropped by a
        // server or a firewall, so it needs no ping on checkout (each one is a round trip to
        // the connection's worker thread).
        options
            .max_connections(config.max_connections.unwrap_or(8))
            .test_before_acquire(false)
            .map_sqlx_sqlite_pool_opts(|pool| {
                pool.after_connect(|conn, _| Box::pin(stable_query_plans(conn)))
            })
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            });
    } else {
        options
            .max_connections(config.max_connections.unwrap_or(10))
            .test_before_acquire_if_idle_for(PG_PING_IF_IDLE_FOR);
    }
    Database::connect(options).await
}

/// Turns on SQLite's query planner stability guarantee for a new connection.
///
/// Without it SQLite marks a cached statement stale whenever a parameter that could change
/// its plan is bound again, and `LIMIT ?` is such a parameter. sea-orm's `.one()` adds
/// `LIMIT ?`, and SQLx binds every parameter on each run, so every `.one()` compiled its SQL
/// afresh: a fifth of the server's CPU on the profile read path. Our queries are key lookups
/// whose plans never depend on the values, so one plan per statement is what we want anyway.
async fn stable_query_plans(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    query_plan_stability(handle.as_raw_handle(), 1)
        .map(drop)
        .map_err(|rc| {
            sqlx::Error::Configuration(
                format!("cannot enable SQLITE_DBCONFIG_ENABLE_QPSG (code {rc})").into(),
            )
        })
}

/// Sets `SQLITE_DBCONFIG_ENABLE_QPSG` to `value` (1 on, 0 off, -1 unchanged) and returns
/// the setting now in force, or SQLite's error code.
fn query_plan_stability(db: NonNull<sqlite3>, value: c_int) -> Result<c_int, c_int> {
    let mut now: c_int = -1;
    // SAFETY: `db` is a live connection handle, locked by the caller for the call; this
    // option takes an int and an int* (sqlite.org/c3ref/c_dbconfig_defensive.html).
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db.as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            value,
            &mut now as *mut c_int,
        )
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(now)
    } else {
        Err(rc)
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Starts a transaction that will write: on SQLite it holds the write lock from the start.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// A reader could not run a lookup; run it through the pool.
#[derive(Debug)]
pub struct Unavailable;

/// Where the key lookups of authenticated requests run when not in a transaction: inline on
/// SQLite, on dedicated connections on PostgreSQL.
pub enum Reader {
    Sqlite(inline::InlineReader),
    Postgres(Box<dedicated::DedicatedReader>),
}

impl Reader {
    /// The reader for the configured database; `None` for an in-memory SQLite database
    /// (which every connection would see as a database of its own).
    pub fn new(config: &DatabaseConfig) -> Option<Self> {
        let url = config.url.expose_secret();
        if !is_sqlite(url) {
            return dedicated::DedicatedReader::new(url, config.acquire_timeout)
                .map(|reader| Self::Postgres(Box::new(reader)));
        }
        if url.contains("mode=memory") {
            return None;
        }
        sqlite_file(url).map(|path| Self::Sqlite(inline::InlineReader::new(path.to_owned())))
    }

    /// Runs the statement, written once for each backend, with `values`: its first row.
    pub async fn one(
        &self,
        sqlite: &str,
        postgres: &'static str,
        values: Vec<Value>,
    ) -> Result<Option<Row>, Unavailable> {
        match self {
            Self::Sqlite(reader) => Ok(reader.one(sqlite, &values)?.map(Row::Inline)),
            Self::Postgres(reader) => Ok(reader
                .one(postgres, values)
                .await?
                .map(|row| Row::Sqlx(row.into()))),
        }
    }
}

/// A row of a key lookup, read through SQLx or inline.
pub enum Row {
    Sqlx(QueryResult),
    Inline(inline::Row),
}

impl Row {
    /// The `E` whose columns the row holds as `{prefix}{column}` (as sea-orm's
    /// `find_also_related` names them); `None` when they are NULL (the empty side of a left
    /// join).
    pub fn model<E>(&self, prefix: &str) -> Result<Option<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        match self {
            Self::Sqlx(row) => E::Model::from_query_result_optional(row, prefix),
            Self::Inline(row) => row.model::<E>(prefix),
        }
    }

    /// The `E` the row has to hold.
    pub fn required<E>(&self, prefix: &str) -> Result<E::Model, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        self.model::<E>(prefix)?
            .ok_or_else(|| DbErr::Custom(format!("the {prefix} side of the row is NULL")))
    }
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file behind a `sqlite://path?…` URL, or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// Every pooled SQLite connection runs with the query planner stability guarantee, so
    /// a cached `… LIMIT ?` statement is not compiled again on each use.
    #[tokio::test]
    async fn sqlite_connections_keep_their_query_plans() {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            url: Secret::from(format!("sqlite://{}/t.db?mode=rwc", dir.path().display())),
            max_connections: Some(2),
            acquire_timeout: Duration::from_secs(5),
        };
        let db = connect(&config).await.unwrap();
        let mut conn = db.get_sqlite_connection_pool().acquire().await.unwrap();
        let mut handle = conn.lock_handle().await.unwrap();
        assert_eq!(query_plan_stability(handle.as_raw_handle(), -1), Ok(1));
    }

    #[test]
    fn sqlite_file_is_read_from_the_url() {
        assert_eq!(
            sqlite_file("sqlite://data/app.db?mode=rwc"),
            Some(Path::new("data/app.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///tmp/x.db"),
            Some(Path::new("/tmp/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/test"), None);
    }
}
