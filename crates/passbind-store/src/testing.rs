//! Fresh, migrated stores for tests: this crate's, and any crate that tests against a real
//! database. These helpers panic with a clear message when the database cannot be had: a test
//! that needs PostgreSQL fails, it is never skipped silently.
//!
//! - [`fresh_sqlite`]: a new SQLite file in a temporary directory, removed when the returned
//!   [`tempfile::TempDir`] drops.
//! - [`fresh_postgres`]: a new schema `pbtest_<unix seconds>_<random>` on the server named by
//!   `PASSBIND_TEST_DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]), migrated, and a store
//!   whose connections use it as `search_path`. Schemas are left behind when the test ends (a
//!   drop would need async work in `Drop`); each call drops the test schemas older than an
//!   hour, so they do not pile up.

#![allow(clippy::panic)]

use crate::{connect, ConnectOptions, SqlStore};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable naming the PostgreSQL server for tests.
pub const DATABASE_URL_ENV: &str = "PASSBIND_TEST_DATABASE_URL";
/// Used when [`DATABASE_URL_ENV`] is unset: a local server with trust authentication.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const SCHEMA_PREFIX: &str = "pbtest_";
const SCHEMA_MAX_AGE_SECS: u64 = 3600;

/// A migrated store on a new SQLite file. Keep the directory alive as long as the store.
pub async fn fresh_sqlite() -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir()
        .unwrap_or_else(|e| panic!("fresh_sqlite: cannot create a temporary directory: {e}"));
    let path = dir.path().join("passbind.db");
    let url = format!("sqlite://{}", encode_path(&path.to_string_lossy()));
    let store = connect(&url, ConnectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("fresh_sqlite: cannot open {}: {e}", path.display()));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("fresh_sqlite: {e}"));
    (store, dir)
}

/// A migrated store in a new, uniquely named PostgreSQL schema on the server named by
/// `PASSBIND_TEST_DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]).
pub async fn fresh_postgres() -> SqlStore {
    match std::env::var(DATABASE_URL_ENV) {
        Ok(url) => fresh_postgres_in(&url, &format!("from {DATABASE_URL_ENV}")).await,
        Err(_) => {
            fresh_postgres_in(
                DEFAULT_DATABASE_URL,
                &format!("the default; {DATABASE_URL_ENV} is unset"),
            )
            .await
        }
    }
}

/// Like [`fresh_postgres`], on the server at `url`.
pub async fn fresh_postgres_at(url: &str) -> SqlStore {
    fresh_postgres_in(url, "given by the caller").await
}

async fn fresh_postgres_in(url: &str, source: &str) -> SqlStore {
    let unreachable = |e: &dyn std::fmt::Display| -> ! {
        panic!(
            "fresh_postgres: cannot use PostgreSQL at {} ({source}): {e}. Start a server there, \
             or set {DATABASE_URL_ENV} to the URL of one this test may create schemas on.",
            redact(url),
        )
    };

    let admin = connect(
        url,
        ConnectOptions {
            max_connections: Some(1),
            acquire_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| unreachable(&e));
    if admin.backend() != "postgres" {
        unreachable(&"the URL is not a postgres:// URL");
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    drop_old_schemas(&admin, now).await;
    let random = uuid::Uuid::new_v4().simple().to_string();
    let schema = format!("{SCHEMA_PREFIX}{now}_{}", &random[..16]);
    admin
        .execute_raw(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap_or_else(|e| unreachable(&e));
    admin.close().await;

    let store = connect(
        url,
        ConnectOptions {
            max_connections: Some(8),
            search_path: Some(schema),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| unreachable(&e));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("fresh_postgres: {e}"));
    store
}

/// Best effort: removes the test schemas created more than an hour ago.
async fn drop_old_schemas(admin: &SqlStore, now: u64) {
    let Ok(rows) = admin
        .query_raw("SELECT nspname::text AS name FROM pg_namespace WHERE nspname LIKE 'pbtest\\_%'")
        .await
    else {
        return;
    };
    for row in rows {
        let Some(name) = row.text(0) else {
            continue;
        };
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let is_ours = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if let Some(created) = created {
            if is_ours && now.saturating_sub(created) > SCHEMA_MAX_AGE_SECS {
                // Another test process may drop it at the same moment: errors are ignored.
                let _ = admin
                    .execute_raw(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await;
            }
        }
    }
}

/// Percent-encodes the characters that would end a path inside a `sqlite://` URL.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            _ => out.push(c),
        }
    }
    out
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "(an unparseable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{encode_path, redact};

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:redacted@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn encodes_paths() {
        assert_eq!(encode_path("/tmp/a?b#c%d"), "/tmp/a%3Fb%23c%25d");
    }
}
