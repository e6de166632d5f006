//! The reads every authenticated request makes, built once.
//!
//! sea-query writes a query's SQL text afresh on every call: for the account joined to its
//! profile and live session that is about 10 µs, a tenth of a whole read's CPU. These three
//! are written once per backend and run with fresh values; the rows are read with the same
//! column prefixes sea-orm's `find_also_related` uses. A unit test checks that each query's
//! values come in the order [`values`] gives them.
//!
//! Outside a transaction they run through a `db::Reader`: inline on SQLite, without SQLx's
//! worker thread; on dedicated connections on PostgreSQL, without the pool's ping. In a
//! transaction, or when the reader is unavailable, through the connection as any query.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, QueryTrait, Statement, Value,
};
use uuid::Uuid;

use super::query::live_session;
use crate::{
    auth::Bearer,
    db::{Reader, Row},
    entities::{profile, user},
    error::AppError,
};

/// Where a prepared read runs: a transaction, or the pool (through the reader first).
pub(super) trait ReadSource {
    fn connection(&self) -> &impl ConnectionTrait;

    /// The reader, for a read outside any transaction.
    fn reader(&self) -> Option<&Reader> {
        None
    }
}

impl ReadSource for DatabaseTransaction {
    fn connection(&self) -> &impl ConnectionTrait {
        self
    }
}

/// The pool, for reads outside a transaction.
pub(super) struct Pool<'a> {
    pub db: &'a DatabaseConnection,
    pub reader: Option<&'a Reader>,
}

impl ReadSource for Pool<'_> {
    fn connection(&self) -> &impl ConnectionTrait {
        self.db
    }

    fn reader(&self) -> Option<&Reader> {
        self.reader
    }
}

/// SQL text for each backend.
struct Prepared {
    sqlite: String,
    postgres: String,
}

impl Prepared {
    fn new(query: &impl QueryTrait) -> Self {
        Self {
            sqlite: query.build(DbBackend::Sqlite).sql,
            postgres: query.build(DbBackend::Postgres).sql,
        }
    }

    async fn one(
        &'static self,
        source: &impl ReadSource,
        bearer: Bearer,
        now: DateTime<Utc>,
    ) -> Result<Option<Row>, AppError> {
        if let Some(reader) = source.reader()
            && let Ok(row) = reader
                .one(&self.sqlite, &self.postgres, values(bearer, now))
                .await
        {
            return Ok(row);
        }
        // In a transaction, or the reader could not: through the connection.
        let db = source.connection();
        let backend = db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => &self.postgres,
            _ => &self.sqlite,
        };
        let statement = Statement::from_sql_and_values(backend, sql.clone(), values(bearer, now));
        Ok(db.query_one_raw(statement).await?.map(Row::Sqlx))
    }
}

/// The values of every prepared query, in order: the user, the session, the time, the limit.
fn values(bearer: Bearer, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        bearer.user_id.into(),
        bearer.session_id.to_string().into(),
        now.into(),
        1u64.into(),
    ]
}

fn account_query(bearer: Bearer, now: DateTime<Utc>) -> impl QueryTrait {
    let query = user::Entity::find_by_id(bearer.user_id).find_also_related(profile::Entity);
    live_session(query, bearer, now).limit(1)
}

fn profile_query(bearer: Bearer, now: DateTime<Utc>) -> impl QueryTrait {
    let query = profile::Entity::find()
        .filter(profile::Column::UserId.eq(bearer.user_id))
        .find_also_related(user::Entity);
    live_session(query, bearer, now).limit(1)
}

fn user_query(bearer: Bearer, now: DateTime<Utc>) -> impl QueryTrait {
    live_session(user::Entity::find_by_id(bearer.user_id), bearer, now).limit(1)
}

/// Placeholder values to build the SQL text with.
fn template() -> (Bearer, DateTime<Utc>) {
    let bearer = Bearer {
        user_id: 0,
        session_id: Uuid::nil(),
    };
    (bearer, DateTime::UNIX_EPOCH)
}

static ACCOUNT: LazyLock<Prepared> = LazyLock::new(|| {
    let (bearer, now) = template();
    Prepared::new(&account_query(bearer, now))
});
static PROFILE: LazyLock<Prepared> = LazyLock::new(|| {
    let (bearer, now) = template();
    Prepared::new(&profile_query(bearer, now))
});
static USER: LazyLock<Prepared> = LazyLock::new(|| {
    let (bearer, now) = template();
    Prepared::new(&user_query(bearer, now))
});

/// The bearer's user and profile, if their session is live at `now`.
pub(super) async fn account(
    db: &impl ReadSource,
    bearer: Bearer,
    now: DateTime<Utc>,
) -> Result<Option<(user::Model, Option<profile::Model>)>, AppError> {
    let Some(row) = ACCOUNT.one(db, bearer, now).await? else {
        return Ok(None);
    };
    Ok(Some((
        row.required::<user::Entity>("A_")?,
        row.model::<profile::Entity>("B_")?,
    )))
}

/// The bearer's profile and user, if they have a profile and their session is live at `now`.
pub(super) async fn profile(
    db: &impl ReadSource,
    bearer: Bearer,
    now: DateTime<Utc>,
) -> Result<Option<(profile::Model, user::Model)>, AppError> {
    let Some(row) = PROFILE.one(db, bearer, now).await? else {
        return Ok(None);
    };
    Ok(Some((
        row.required::<profile::Entity>("A_")?,
        row.required::<user::Entity>("B_")?,
    )))
}

/// The bearer's user, if their session is live at `now`.
pub(super) async fn user(
    db: &impl ReadSource,
    bearer: Bearer,
    now: DateTime<Utc>,
) -> Result<Option<user::Model>, AppError> {
    let Some(row) = USER.one(db, bearer, now).await? else {
        return Ok(None);
    };
    Ok(Some(row.required::<user::Entity>("")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SQLite database in a temporary folder with one account, its profile and two
    /// sessions (one live, one revoked), and a second account with no profile.
    async fn database() -> (tempfile::TempDir, DatabaseConnection, Reader, [Bearer; 3]) {
        use sea_orm::{ActiveModelTrait, Set};

        use crate::{config::DatabaseConfig, entities::session};

        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            url: format!("sqlite://{}/t.db?mode=rwc", dir.path().display()).into(),
            max_connections: Some(2),
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        let db = crate::db::connect(&config).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let now = Utc::now();
        let mut bearers = Vec::new();
        for (n, email) in ["a@example.com", "b@example.com"].into_iter().enumerate() {
            let user = user::ActiveModel {
                email: Set(email.into()),
                password_hash: Set("x".into()),
                email_verified: Set(n == 0),
                role: Set("user".into()),
                mfa_enabled: Set(false),
                last_login_at: Set(Some(now)),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
            if n == 0 {
                profile::ActiveModel {
                    user_id: Set(user.id),
                    name: Set(Some("Ann".into())),
                    bio: Set(Some("two\nlines".into())),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&db)
                .await
                .unwrap();
            }
            for revoked in [false, true] {
                let id = Uuid::new_v4();
                session::ActiveModel {
                    id: Set(id.to_string()),
                    user_id: Set(user.id),
                    created_at: Set(now),
                    last_used_at: Set(now),
                    expires_at: Set(now + chrono::Duration::hours(1)),
                    revoked_at: Set(revoked.then_some(now)),
                    amr: Set("pwd".into()),
                    ..Default::default()
                }
                .insert(&db)
                .await
                .unwrap();
                if n == 0 || !revoked {
                    bearers.push(Bearer {
                        user_id: user.id,
                        session_id: id,
                    });
                }
            }
        }
        let reader = Reader::new(&config).expect("a file database reads inline");
        (dir, db, reader, bearers.try_into().unwrap())
    }

    /// Read inline, each query answers what it answers through SQLx: the same rows, the
    /// empty side of a left join as `None`, and nothing for a revoked session.
    #[tokio::test]
    async fn inline_reads_answer_as_sqlx_does() {
        let (_dir, db, reader, [live, revoked, no_profile]) = database().await;
        let inline = Pool {
            db: &db,
            reader: Some(&reader),
        };
        let sqlx = Pool {
            db: &db,
            reader: None,
        };
        let now = Utc::now();
        for bearer in [live, revoked, no_profile] {
            let (a, b) = (
                account(&inline, bearer, now).await.unwrap(),
                account(&sqlx, bearer, now).await.unwrap(),
            );
            assert_eq!(a, b, "account of {bearer:?}");
            let (a, b) = (
                profile(&inline, bearer, now).await.unwrap(),
                profile(&sqlx, bearer, now).await.unwrap(),
            );
            assert_eq!(a, b, "profile of {bearer:?}");
            let (a, b) = (
                user(&inline, bearer, now).await.unwrap(),
                user(&sqlx, bearer, now).await.unwrap(),
            );
            assert_eq!(a, b, "user of {bearer:?}");
        }
        let (user_row, profile_row) = account(&inline, live, now).await.unwrap().unwrap();
        assert_eq!(user_row.email, "a@example.com");
        assert!(user_row.email_verified);
        assert_eq!(profile_row.unwrap().bio.as_deref(), Some("two\nlines"));
        assert_eq!(account(&inline, revoked, now).await.unwrap(), None);
        let (_, none) = account(&inline, no_profile, now).await.unwrap().unwrap();
        assert_eq!(none, None);
        assert_eq!(profile(&inline, no_profile, now).await.unwrap(), None);
        // Expiry is compared as SQLx compares it (time stamps are text in SQLite).
        let later = now + chrono::Duration::hours(2);
        assert_eq!(user(&inline, live, later).await.unwrap(), None);
        assert_eq!(user(&sqlx, live, later).await.unwrap(), None);
    }

    /// The prepared text takes its values in the order `values` gives them, on both
    /// backends, for every query: the built query's own values are exactly those.
    #[test]
    fn every_query_takes_the_values_in_order() {
        let bearer = Bearer {
            user_id: 42,
            session_id: Uuid::new_v4(),
        };
        let now = Utc::now();
        let expected = Some(sea_orm::Values(values(bearer, now)));
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            for (name, built, prepared) in [
                (
                    "account",
                    account_query(bearer, now).build(backend),
                    &*ACCOUNT,
                ),
                (
                    "profile",
                    profile_query(bearer, now).build(backend),
                    &*PROFILE,
                ),
                ("user", user_query(bearer, now).build(backend), &*USER),
            ] {
                assert_eq!(built.values, expected, "{name} on {backend:?}");
                let text = match backend {
                    DbBackend::Postgres => &prepared.postgres,
                    _ => &prepared.sqlite,
                };
                assert_eq!(&built.sql, text, "{name} on {backend:?}");
            }
        }
    }
}
