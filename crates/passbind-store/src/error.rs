//! Database errors as [`StoreError`]s.
//!
//! Messages are for logs. They name the operation, the database's error code and its primary
//! message (which names a constraint or a table, never a bound value); they never carry the
//! driver's detail fields, decoded values or connection strings, so no secret can leak through.

use crate::Backend;
use passbind_core::model::StoreError;

/// A violated integrity constraint, recognised by its SQLSTATE (PostgreSQL) or extended result
/// code (SQLite), never by the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// PostgreSQL 23505; SQLite 2067 (`SQLITE_CONSTRAINT_UNIQUE`), 1555 (`..._PRIMARYKEY`).
    Unique,
    /// PostgreSQL 23503; SQLite 787 (`SQLITE_CONSTRAINT_FOREIGNKEY`).
    ForeignKey,
}

pub(crate) fn violation(e: &sqlx::Error) -> Option<Violation> {
    let code = match e {
        sqlx::Error::Database(db) => db.code()?,
        _ => return None,
    };
    match &*code {
        "23505" | "2067" | "1555" => Some(Violation::Unique),
        "23503" | "787" => Some(Violation::ForeignKey),
        _ => None,
    }
}

/// Whether SQLite gave up waiting for a lock (`SQLITE_BUSY` or `SQLITE_LOCKED`, any extended
/// variant), which happens once the busy timeout has passed.
fn sqlite_busy(code: &str) -> bool {
    code.parse::<i32>()
        .map(|c| matches!(c & 0xff, 5 | 6))
        .unwrap_or(false)
}

pub(crate) fn db(backend: Backend, context: &str, e: sqlx::Error) -> StoreError {
    StoreError::Backend(describe(backend, context, &e))
}

fn describe(backend: Backend, context: &str, e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if backend == Backend::Sqlite && sqlite_busy(&code) {
                format!("{context}: the database is busy or locked (SQLite code {code}); the busy timeout passed")
            } else {
                format!("{context}: database error {code}: {}", d.message())
            }
        }
        sqlx::Error::PoolTimedOut => {
            format!("{context}: timed out waiting for a database connection")
        }
        sqlx::Error::PoolClosed => format!("{context}: the connection pool is closed"),
        sqlx::Error::Io(io) => format!("{context}: I/O error: {io}"),
        sqlx::Error::Tls(_) => format!("{context}: TLS error"),
        sqlx::Error::Protocol(p) => format!("{context}: protocol error: {p}"),
        // The source of a decoding error may quote the value: leave it out.
        sqlx::Error::ColumnDecode { index, .. } => {
            format!("{context}: cannot decode column {index}")
        }
        sqlx::Error::Decode(_) => format!("{context}: cannot decode a value"),
        sqlx::Error::ColumnNotFound(c) => format!("{context}: no column {c}"),
        sqlx::Error::RowNotFound => format!("{context}: no row"),
        sqlx::Error::Migrate(m) => format!("{context}: migration failed: {m}"),
        sqlx::Error::Configuration(c) => {
            format!("{context}: invalid database configuration: {c}")
        }
        other => format!("{context}: {other}"),
    }
}

/// A stored value the adapter cannot turn into a record: the database holds something this
/// version does not understand. The value itself is not quoted.
pub(crate) fn corrupt(table: &str, column: &str, what: &str) -> StoreError {
    StoreError::Backend(format!("stored {table}.{column} is invalid: {what}"))
}

#[cfg(test)]
mod tests {
    use super::sqlite_busy;

    #[test]
    fn busy_codes() {
        assert!(sqlite_busy("5"));
        assert!(sqlite_busy("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(sqlite_busy("6"));
        assert!(sqlite_busy("262")); // SQLITE_LOCKED_SHAREDCACHE
        assert!(!sqlite_busy("2067"));
        assert!(!sqlite_busy("40001"));
        assert!(!sqlite_busy(""));
    }
}
