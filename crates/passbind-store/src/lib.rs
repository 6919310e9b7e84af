//! Passbind's storage adapter: [`passbind_core::ports::Store`] on SQLite (the embedded default,
//! WAL mode) and on PostgreSQL (scale-out: any number of replicas share one database and
//! coordinate through it alone).
//!
//! # One store, two engines
//!
//! Both backends run the *same* Rust code and the same SQL text: the statements, their
//! preconditions, the audit appends and the row decoders are written once against a small
//! engine-neutral vocabulary ([`db`]: values, rows, "run this statement"). What differs is kept
//! small and explicit:
//! - the engine: SQLite through rusqlite, with one writer thread that commits changes in
//!   groups and read connections used in place ([`db::sqlite`]); PostgreSQL through sqlx's
//!   typed driver with prepared statements ([`db::postgres`]);
//! - placeholders: statements are written with `?` and rewritten to `$1, $2, ...` for PostgreSQL
//!   once per statement ([`sql`]);
//! - the schema: one migration set per backend (`migrations/sqlite`, `migrations/postgres`) with
//!   the same tables and column names, differing only in types;
//! - the transaction: on SQLite the writer's group transaction (`BEGIN IMMEDIATE`, a savepoint
//!   per change); on PostgreSQL a plain `BEGIN` (READ COMMITTED), where the guarded statements
//!   are race-free (see [`writes`]).
//!
//! The vocabulary is narrow on purpose (integers, text, bytes), which suits the schema: times
//! are `i64` milliseconds, booleans are the integers 0/1, byte strings are BLOB/BYTEA, string
//! lists and session data are JSON text.

mod audit;
mod change;
pub mod db;
mod error;
mod management;
mod rows;
mod sql;
mod store;
pub mod testing;
mod writes;

use db::sqlite::SqliteDb;
use db::{Row, Value};
use passbind_core::model::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How to connect. `Default` suits a server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// PostgreSQL: the pool's size (default 10). SQLite: the number of read connections beside
    /// the one writer (default 4). An in-memory SQLite database always uses one connection.
    pub max_connections: Option<u32>,
    /// PostgreSQL only: how long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// SQLite only: how long the writer waits for the database lock held by another process
    /// before its changes fail with [`StoreError::Backend`].
    pub busy_timeout: Duration,
    /// PostgreSQL only: the schema to work in (`SET search_path` on every connection). Letters,
    /// digits and `_` only, at most 63 characters. `None`: the server's default.
    pub search_path: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
            search_path: None,
        }
    }
}

pub(crate) enum Engine {
    Sqlite(SqliteDb),
    Postgres(sqlx::PgPool),
}

/// The store on SQLite or PostgreSQL. Cheap to clone (the engine is shared).
#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    engine: Arc<Engine>,
    /// SQLite: one audit sequencer pass at a time in this process.
    sequencer: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlStore {
    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    pub fn backend_kind(&self) -> Backend {
        self.backend
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs one statement outside Passbind's change path and returns the rows it changed: for
    /// tooling and tests that need raw SQL (on SQLite it runs on the writer, between groups).
    /// Changes to Passbind's records must go through [`passbind_core::ports::Changes::commit`].
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        match &*self.engine {
            Engine::Sqlite(db) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let sql = sql.to_owned();
                db.send(db::sqlite::Job::Run(Box::new(move |conn| {
                    let r = db::sqlite::SqliteExec::new(conn).execute_now(&sql, &[]);
                    let _ = tx.send(r);
                })))?;
                rx.await
                    .map_err(|_| StoreError::Backend("the SQLite writer is gone".into()))?
                    .map_err(|e| error::db("raw statement", e))
            }
            Engine::Postgres(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|d| d.rows_affected())
                .map_err(|e| error::db("raw statement", db::postgres::db_error(&e))),
        }
    }

    /// Runs one query outside Passbind's read methods (tooling and tests).
    pub async fn query_raw(&self, sql: &str) -> Result<Vec<Row>, StoreError> {
        self.rows("raw query", sql, Vec::new()).await
    }

    /// The rows of a short query: on SQLite run here, on a read connection.
    pub(crate) async fn rows(
        &self,
        context: &'static str,
        sql: &str,
        args: Vec<Value<'_>>,
    ) -> Result<Vec<Row>, StoreError> {
        match &*self.engine {
            Engine::Sqlite(db) => db.query(sql, &args),
            Engine::Postgres(pool) => db::postgres::query(pool, sql, &args).await,
        }
        .map_err(|e| error::db(context, e))
    }

    /// The rows of a query that may read many rows: on SQLite run on the blocking pool, so
    /// that it does not hold up the tasks of this thread.
    pub(crate) async fn rows_heavy(
        &self,
        context: &'static str,
        sql: &str,
        args: Vec<Value<'_>>,
    ) -> Result<Vec<Row>, StoreError> {
        match &*self.engine {
            Engine::Sqlite(_) => {
                let engine = Arc::clone(&self.engine);
                let sql = sql.to_owned();
                let args: Vec<Value<'static>> = args.into_iter().map(Value::into_owned).collect();
                tokio::task::spawn_blocking(move || match &*engine {
                    Engine::Sqlite(db) => db.query(&sql, &args),
                    Engine::Postgres(_) => Err(db::DbError::other("not SQLite")),
                })
                .await
                .map_err(|e| StoreError::Backend(format!("{context}: read task: {e}")))?
                .map_err(|e| error::db(context, e))
            }
            Engine::Postgres(pool) => db::postgres::query(pool, sql, &args)
                .await
                .map_err(|e| error::db(context, e)),
        }
    }

    /// Applies the pending versioned migrations of this backend. Idempotent; on PostgreSQL
    /// concurrent callers (replicas starting together) are serialised by an advisory lock, on
    /// SQLite by the writer.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &*self.engine {
            Engine::Postgres(pool) => POSTGRES_MIGRATIONS
                .run(pool)
                .await
                .map_err(|e| StoreError::Backend(format!("migrate: {e}"))),
            Engine::Sqlite(db) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                db.send(db::sqlite::Job::Run(Box::new(move |conn| {
                    let _ = tx.send(db::migrate::run(conn, &SQLITE_MIGRATIONS));
                })))?;
                rx.await
                    .map_err(|_| StoreError::Backend("the SQLite writer is gone".into()))?
            }
        }
    }

    /// The versions of this binary's migrations that the database has not applied, oldest
    /// first: all of them on an empty database, none on an up-to-date one. A production server
    /// refuses to start while any is missing (`passbind migrate` applies them).
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let (migrator, table_exists) = match self.backend {
            Backend::Sqlite => (
                &SQLITE_MIGRATIONS,
                "SELECT 1 AS present FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations'",
            ),
            Backend::Postgres => (
                &POSTGRES_MIGRATIONS,
                "SELECT 1 AS present WHERE to_regclass('_sqlx_migrations') IS NOT NULL",
            ),
        };
        let applied: Vec<i64> = if self
            .rows("look for the migrations table", table_exists, Vec::new())
            .await?
            .is_empty()
        {
            Vec::new()
        } else {
            self.rows(
                "read the applied migrations",
                "SELECT version FROM _sqlx_migrations WHERE success = TRUE",
                Vec::new(),
            )
            .await?
            .iter()
            .filter_map(|r| r.int(0))
            .collect()
        };
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    /// Closes the store: on PostgreSQL closes the pool (waits for the connections in use to be
    /// returned); on SQLite waits until every change queued before it is committed.
    pub async fn close(&self) {
        match &*self.engine {
            Engine::Postgres(pool) => pool.close().await,
            Engine::Sqlite(db) => {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                if db
                    .send(db::sqlite::Job::Run(Box::new(move |_| drop(tx))))
                    .is_ok()
                {
                    let _ = rx.await;
                }
            }
        }
    }
}

/// Connects to `sqlite://PATH` (the file is created if missing), `sqlite::memory:`, or
/// `postgres://...` / `postgresql://...`. Does not migrate: call [`SqlStore::migrate`].
pub async fn connect(url: &str, opts: ConnectOptions) -> Result<SqlStore, StoreError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        connect_sqlite(rest, &opts).await
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        connect_postgres(url, &opts).await
    } else {
        // The URL is not quoted: it may hold a password.
        Err(StoreError::Backend(
            "unsupported database URL: expected sqlite://PATH, sqlite::memory: or postgres://..."
                .to_owned(),
        ))
    }
}

async fn connect_sqlite(rest: &str, opts: &ConnectOptions) -> Result<SqlStore, StoreError> {
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    let memory = path == ":memory:"
        || params
            .into_iter()
            .flat_map(|p| p.split('&'))
            .any(|kv| kv == "mode=memory");
    if path.is_empty() {
        return Err(StoreError::Backend(
            "sqlite URL without a path: use sqlite://PATH or sqlite::memory:".to_owned(),
        ));
    }
    let settings = db::sqlite::Settings {
        path: (!memory).then(|| std::path::PathBuf::from(percent_decode(path))),
        readers: usize::try_from(opts.max_connections.unwrap_or(4)).unwrap_or(4),
        busy_timeout: opts.busy_timeout,
    };
    let db = tokio::task::spawn_blocking(move || SqliteDb::open(&settings))
        .await
        .map_err(|e| StoreError::Backend(format!("connect: {e}")))?
        .map_err(|e| error::db("connect", e))?;
    Ok(SqlStore {
        backend: Backend::Sqlite,
        engine: Arc::new(Engine::Sqlite(db)),
        sequencer: Arc::default(),
    })
}

/// Decodes `%XX` escapes in the path of a `sqlite://` URL (`%3F` for `?`, `%23` for `#`, ...).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn connect_postgres(url: &str, opts: &ConnectOptions) -> Result<SqlStore, StoreError> {
    let connect_options = PgConnectOptions::from_str(url)
        .map_err(|e| error::db("connect", db::postgres::db_error(&e)))?;
    let set_search_path = match &opts.search_path {
        Some(schema) if !valid_schema_name(schema) => {
            return Err(StoreError::Backend(
                "search_path: a schema name is letters, digits and _ (at most 63)".to_owned(),
            ));
        }
        // Validated above, and quoted: no injection, case preserved.
        Some(schema) => Some(Arc::new(format!("SET search_path TO \"{schema}\""))),
        None => None,
    };
    let mut pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.unwrap_or(10).max(1))
        .acquire_timeout(opts.acquire_timeout)
        // No ping on every acquire: a connection the server closed fails one statement, and
        // the pool replaces it.
        .test_before_acquire(false);
    if let Some(stmt) = set_search_path {
        pool = pool.after_connect(move |conn, _meta| {
            let stmt = Arc::clone(&stmt);
            Box::pin(async move {
                sqlx::query(stmt.as_str())
                    .persistent(false)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        });
    }
    let pool = pool
        .connect_with(connect_options)
        .await
        .map_err(|e| error::db("connect", db::postgres::db_error(&e)))?;
    Ok(SqlStore {
        backend: Backend::Postgres,
        engine: Arc::new(Engine::Postgres(pool)),
        sequencer: Arc::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::valid_schema_name;

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("pbtest_123_abc"));
        assert!(valid_schema_name("Public"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("a\"; DROP TABLE x; --"));
        assert!(!valid_schema_name(&"a".repeat(64)));
    }
}
