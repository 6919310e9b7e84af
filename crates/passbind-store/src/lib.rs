//! Passbind's storage adapter: [`passbind_core::ports::Store`] on SQLite (the embedded default,
//! WAL mode) and on PostgreSQL (scale-out: any number of replicas share one database and
//! coordinate through it alone).
//!
//! # One implementation over sqlx's `Any` driver
//!
//! Both backends run the *same* Rust code and the same SQL text through [`sqlx::AnyPool`]. The
//! alternative, two typed implementations (`SqlitePool`, `PgPool`), would either duplicate every
//! query and row decoder or hide them behind macros or heavy generic bounds over
//! `sqlx::Database`; the store's SQL is portable (`INSERT ... ON CONFLICT DO NOTHING`, guarded
//! `UPDATE`s, plain `SELECT`s), so one implementation is the clearest and least duplicated. What
//! differs is kept small and explicit:
//! - placeholders: statements are written with `?` and rewritten to `$1, $2, ...` for PostgreSQL
//!   once per statement ([`sql`]);
//! - the schema: one migration set per backend (`migrations/sqlite`, `migrations/postgres`) with
//!   the same tables and column names, differing only in types;
//! - connection setup: SQLite pragmas, or PostgreSQL's `search_path` ([`connect`]);
//! - the transaction start: `BEGIN IMMEDIATE` on SQLite, so that concurrent writers queue on the
//!   busy timeout instead of failing on a read-to-write lock upgrade; plain `BEGIN` (READ
//!   COMMITTED) on PostgreSQL, where the guarded statements are race-free (see [`writes`]).
//!
//! The price of `Any` is a narrower type vocabulary (integers, text, bytes), which suits the
//! schema anyway: times are `i64` milliseconds, booleans are the integers 0/1, byte strings are
//! BLOB/BYTEA, string lists and session data are JSON text.

mod audit;
mod error;
mod management;
mod rows;
mod sql;
mod store;
pub mod testing;
mod writes;

use passbind_core::model::StoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;
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
    /// The pool's size. `None`: 8 for a SQLite file (WAL lets readers run beside the one
    /// writer), 10 for PostgreSQL. An in-memory SQLite database always uses one connection.
    pub max_connections: Option<u32>,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the database lock held by another writer
    /// before its change fails with [`StoreError::Backend`].
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

/// The store: a connection pool on SQLite or PostgreSQL. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time. Writers of this process queue here instead of in
    /// SQLite's busy handler, whose sleep-and-retry adds milliseconds under contention; other
    /// processes on the same file still meet the busy timeout.
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqlStore {
    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    pub fn backend_kind(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for tooling and tests that need raw SQL. Changes to Passbind's
    /// records must go through [`passbind_core::ports::Store::commit`].
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the pending versioned migrations of this backend. Idempotent; on PostgreSQL
    /// concurrent callers (replicas starting together) are serialised by an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrate: {e}")))
    }

    /// Closes every connection of the pool (waits for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connects to `sqlite://PATH` (the file is created if missing), `sqlite::memory:`, or
/// `postgres://...` / `postgresql://...`. Does not migrate: call [`SqlStore::migrate`].
pub async fn connect(url: &str, opts: ConnectOptions) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        connect_sqlite(url, rest, &opts).await
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

async fn connect_sqlite(
    url: &str,
    rest: &str,
    opts: &ConnectOptions,
) -> Result<SqlStore, StoreError> {
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    let param = |name: &str| {
        params
            .into_iter()
            .flat_map(|p| p.split('&'))
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let memory = path == ":memory:" || param("mode") == Some("memory");
    if path.is_empty() {
        return Err(StoreError::Backend(
            "sqlite URL without a path: use sqlite://PATH or sqlite::memory:".to_owned(),
        ));
    }
    let url = if memory || param("mode").is_some() {
        url.to_owned()
    } else {
        let sep = if params.is_some() { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    };
    let connect_options =
        AnyConnectOptions::from_str(&url).map_err(|e| error::db(Backend::Sqlite, "connect", e))?;

    let busy_ms = i64::try_from(opts.busy_timeout.as_millis()).unwrap_or(i64::MAX);
    let mut pragmas = vec![
        format!("PRAGMA busy_timeout = {busy_ms}"),
        "PRAGMA foreign_keys = ON".to_owned(),
        "PRAGMA synchronous = NORMAL".to_owned(),
    ];
    if !memory {
        pragmas.push("PRAGMA journal_mode = WAL".to_owned());
    }
    let pragmas = Arc::new(pragmas);

    let mut pool = AnyPoolOptions::new()
        .acquire_timeout(opts.acquire_timeout)
        // A local file: a dead connection is not a thing worth a round trip per acquire.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let pragmas = Arc::clone(&pragmas);
            Box::pin(async move {
                for pragma in pragmas.iter() {
                    sqlx::query(pragma)
                        .persistent(false)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        });
    pool = if memory {
        // The in-memory database lives as long as a connection to it: keep exactly one.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(opts.max_connections.unwrap_or(8).max(1))
    };
    // `connect_with` opens a first connection, which switches a new file to WAL before any
    // other connection exists.
    let pool = pool
        .connect_with(connect_options)
        .await
        .map_err(|e| error::db(Backend::Sqlite, "connect", e))?;
    Ok(SqlStore {
        pool,
        backend: Backend::Sqlite,
        write_lock: Default::default(),
    })
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn connect_postgres(url: &str, opts: &ConnectOptions) -> Result<SqlStore, StoreError> {
    let connect_options =
        AnyConnectOptions::from_str(url).map_err(|e| error::db(Backend::Postgres, "connect", e))?;
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
    let mut pool = AnyPoolOptions::new()
        .max_connections(opts.max_connections.unwrap_or(10).max(1))
        .acquire_timeout(opts.acquire_timeout);
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
        .map_err(|e| error::db(Backend::Postgres, "connect", e))?;
    Ok(SqlStore {
        pool,
        backend: Backend::Postgres,
        write_lock: Default::default(),
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
