//! SQLite migrations on the writer's connection, kept in the same `_sqlx_migrations` table
//! (same columns, same checksums) that sqlx's migrator writes, so a database created by an
//! earlier Passbind migrates on as before. PostgreSQL uses sqlx's migrator itself.

use passbind_core::model::StoreError;
use rusqlite::{Connection, OptionalExtension};
use sqlx::migrate::Migrator;
use std::time::Instant;

fn fail(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("migrate: {what}: {e}"))
}

/// Applies every migration not applied yet, each in its own transaction, in version order.
/// A migration applied earlier whose file changed since is an error (its checksum differs).
pub(crate) fn run(conn: &Connection, migrator: &Migrator) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )
    .map_err(|e| fail("create the migrations table", e))?;
    for m in migrator.iter() {
        if m.migration_type.is_down_migration() {
            continue;
        }
        let applied: Option<(bool, Vec<u8>)> = conn
            .query_row(
                "SELECT success, checksum FROM _sqlx_migrations WHERE version = ?",
                [m.version],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| fail("read the migrations table", e))?;
        match applied {
            Some((true, checksum)) if checksum == *m.checksum => continue,
            Some((true, _)) => {
                return Err(StoreError::Backend(format!(
                    "migrate: migration {} was applied but has been modified since",
                    m.version
                )))
            }
            Some((false, _)) => {
                return Err(StoreError::Backend(format!(
                    "migrate: migration {} is partially applied; fix and remove it manually",
                    m.version
                )))
            }
            None => {}
        }
        let started = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| fail("begin", e))?;
        let applied = conn.execute_batch(&m.sql).and_then(|()| {
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES (?, ?, TRUE, ?, ?)",
                rusqlite::params![
                    m.version,
                    &*m.description,
                    &*m.checksum,
                    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
                ],
            )
        });
        match applied.and_then(|_| conn.execute_batch("COMMIT")) {
            Ok(()) => {}
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(fail(&format!("migration {}", m.version), e));
            }
        }
    }
    Ok(())
}
