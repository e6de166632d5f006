//! Key lookups on SQLite run on the calling thread, not through SQLx's worker thread.
//!
//! SQLx runs each SQLite connection on a thread of its own: a query is a message to that
//! thread and a wake-up back, and handing the connection back to the pool is another round
//! (a ping). For the account behind a live session, a lookup SQLite answers in a few
//! microseconds, those four context switches were about half of an authenticated read's CPU.
//! The reads every authenticated request makes (`services::prepared`) run here instead, with
//! the same SQL text and values, on one of a few read-only connections, and their rows
//! decode into the entities by their own column definitions (through their `ActiveModel`).
//!
//! It is safe to run them inline: in WAL mode a reader never waits for the writer, each
//! statement is a read transaction of its own that sees every commit before it (from this
//! process or another, so a revoked session is refused on the next request), and the
//! connections have no busy timeout. Where SQLite would make a reader wait (a WAL recovery
//! after a crash), or anything else goes wrong, the read answers [`Unavailable`] and the
//! caller runs it through SQLx as before.

use std::{path::PathBuf, sync::Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{OpenFlags, types::Value as Stored};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ColumnType, DbErr, EntityTrait, IdenStatic, Iterable,
    PrimaryKeyToColumn, TryIntoModel, Value,
};

use super::Unavailable;

/// Read-only connections to the database file, opened on first use and kept.
pub struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Connections kept open between reads: one per thread that reads at once, the
    /// runtime's workers (one per core).
    keep_open: usize,
}

/// A row read inline: each column's name and stored value.
#[derive(Debug)]
pub struct Row(Vec<(String, Stored)>);

impl Row {
    /// The `E` whose columns the row holds as `{prefix}{column}` (as sea-orm's
    /// `find_also_related` names them), or `None` when its primary key is NULL (the empty
    /// side of a left join).
    pub fn model<E>(&self, prefix: &str) -> Result<Option<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        let mut model = <E::ActiveModel as ActiveModelTrait>::default();
        // sea-orm selects an entity's columns in their declared order, so the next one is
        // almost always where the search starts.
        let mut next = 0;
        for column in E::Column::iter() {
            let name = column.as_str();
            let is_it = |(key, _): &(String, Stored)| key.strip_prefix(prefix) == Some(name);
            let at =
                match self.0.get(next) {
                    Some(cell) if is_it(cell) => next,
                    _ => self.0.iter().position(is_it).ok_or_else(|| {
                        DbErr::Custom(format!("no column {prefix}{name} in the row"))
                    })?,
                };
            next = at + 1;
            let stored = &self.0[at].1;
            let is_key = E::PrimaryKey::iter().any(|key| key.into_column().as_str() == name);
            if is_key && *stored == Stored::Null {
                return Ok(None);
            }
            let value = decode(column.def().get_column_type(), stored)
                .ok_or_else(|| DbErr::Custom(format!("column {prefix}{name} does not decode")))?;
            model.try_set(column, value)?;
        }
        model.try_into_model().map(Some)
    }
}

impl InlineReader {
    /// A reader for the database file at `path` (opened lazily: the file may not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            keep_open: std::thread::available_parallelism().map_or(4, usize::from),
        }
    }

    /// Runs `sql` with `values`: its first row.
    pub fn one(&self, sql: &str, values: &[Value]) -> Result<Option<Row>, Unavailable> {
        let connection = self.take()?;
        let result = read_one(&connection, sql, values);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.keep_open {
                idle.push(connection);
            }
        }
        result.map_err(|error| {
            tracing::debug!(
                ?error,
                "inline SQLite read unavailable; reading through SQLx"
            );
            Unavailable
        })
    }

    fn take(&self) -> Result<rusqlite::Connection, Unavailable> {
        if let Some(connection) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(connection);
        }
        self.open().map_err(|error| {
            tracing::warn!(%error, "cannot open an inline SQLite reader");
            Unavailable
        })
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        // Never wait on the calling thread: a busy database answers at once, and the read
        // goes through SQLx, which may wait.
        connection.busy_timeout(std::time::Duration::ZERO)?;
        // One plan per statement, as on SQLx's connections (see `stable_query_plans`).
        connection.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(connection)
    }
}

/// Why a read could not run inline (logged at debug level).
#[derive(Debug)]
enum ReadError {
    Sqlite(#[allow(dead_code, reason = "read by the log line's Debug")] rusqlite::Error),
    /// A value of a type inline reads do not bind.
    Value,
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

fn read_one(
    connection: &rusqlite::Connection,
    sql: &str,
    values: &[Value],
) -> Result<Option<Row>, ReadError> {
    let mut statement = connection.prepare_cached(sql)?;
    for (index, value) in values.iter().enumerate() {
        bind(&mut statement, index + 1, value)?;
    }
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = statement.raw_query();
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let mut columns = Vec::with_capacity(names.len());
    for (index, name) in names.into_iter().enumerate() {
        columns.push((name, row.get::<_, Stored>(index)?));
    }
    Ok(Some(Row(columns)))
}

/// Binds `value` as SQLx's SQLite driver does, so that comparisons with stored values (time
/// stamps are text) mean the same.
fn bind(
    statement: &mut rusqlite::CachedStatement<'_>,
    index: usize,
    value: &Value,
) -> Result<(), ReadError> {
    let result = match value {
        Value::Int(Some(v)) => statement.raw_bind_parameter(index, v),
        Value::BigUnsigned(Some(v)) => {
            statement.raw_bind_parameter(index, i64::try_from(*v).map_err(|_| ReadError::Value)?)
        }
        Value::String(Some(v)) => statement.raw_bind_parameter(index, v.as_str()),
        Value::ChronoDateTimeUtc(Some(v)) => {
            statement.raw_bind_parameter(index, v.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }
        _ => return Err(ReadError::Value),
    };
    Ok(result?)
}

/// A stored value as the sea-orm `Value` a column of `column_type` takes; `None` if it is
/// not one, or of a type inline reads do not decode.
fn decode(column_type: &ColumnType, stored: &Stored) -> Option<Value> {
    let text = || match stored {
        Stored::Text(text) => Some(text.as_str()),
        _ => None,
    };
    let null = *stored == Stored::Null;
    Some(match column_type {
        ColumnType::Integer if null => Value::Int(None),
        ColumnType::Integer => match stored {
            Stored::Integer(v) => Value::Int(Some(i32::try_from(*v).ok()?)),
            _ => return None,
        },
        ColumnType::Boolean if null => Value::Bool(None),
        ColumnType::Boolean => match stored {
            Stored::Integer(v) => Value::Bool(Some(*v != 0)),
            _ => return None,
        },
        ColumnType::String(_) | ColumnType::Text if null => Value::String(None),
        ColumnType::String(_) | ColumnType::Text => Value::String(Some(text()?.to_owned())),
        ColumnType::TimestampWithTimeZone if null => Value::ChronoDateTimeUtc(None),
        ColumnType::TimestampWithTimeZone => Value::ChronoDateTimeUtc(Some(time(text()?)?)),
        _ => return None,
    })
}

/// A time stamp as SQLx writes them (RFC 3339), or as SQLite's own `CURRENT_TIMESTAMP` does.
fn time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.to_utc());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%F %T%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_read_as_sqlx_writes_them_and_as_sqlite_does() {
        let written = DateTime::parse_from_rfc3339("2026-12-07T20:25:59.595997+00:00").unwrap();
        assert_eq!(
            time("2026-12-07T20:25:59.595997+00:00"),
            Some(written.to_utc())
        );
        assert_eq!(
            time("2026-12-07 20:25:59"),
            Some(
                DateTime::parse_from_rfc3339("2026-12-07T20:25:59Z")
                    .unwrap()
                    .to_utc()
            )
        );
        assert_eq!(time("yesterday"), None);
    }

    #[test]
    fn values_decode_by_their_column_type_or_not_at_all() {
        let text = ColumnType::String(sea_orm::sea_query::StringLen::None);
        assert_eq!(
            decode(&text, &Stored::Text("a".into())),
            Some(Value::String(Some("a".into())))
        );
        assert_eq!(decode(&text, &Stored::Null), Some(Value::String(None)));
        assert_eq!(decode(&text, &Stored::Integer(1)), None);
        assert_eq!(
            decode(&ColumnType::Boolean, &Stored::Integer(1)),
            Some(Value::Bool(Some(true)))
        );
        assert_eq!(
            decode(&ColumnType::Integer, &Stored::Integer(1 << 40)),
            None
        );
        assert_eq!(decode(&ColumnType::Uuid, &Stored::Null), None);
    }
}
