//! The writes of [`Store::commit`](passbind_core::ports::Store::commit), each with its
//! precondition.
//!
//! How a precondition is checked, on both backends alike:
//! - "the row is in the expected state" (session version, not revoked, not consumed): a guarded
//!   `UPDATE ... WHERE <key> AND <guard>`; zero rows affected is the conflict. On PostgreSQL a
//!   concurrent transaction holding the row makes the `UPDATE` wait, then re-check the guard
//!   against the committed row (READ COMMITTED), so of two racing writers exactly one matches.
//!   On SQLite writers are serialised by `BEGIN IMMEDIATE`.
//! - "no such row yet" (users, sessions, credentials, biometric tokens, webhook events, API
//!   keys, secrets): `INSERT ... ON CONFLICT DO NOTHING`; zero rows affected means a unique
//!   constraint refused it. The unique constraint is the arbiter, so this is race-free, and unlike
//!   a failed statement it leaves a PostgreSQL transaction usable, which lets `InsertUser` find
//!   out *which* constraint refused it (the external id, or the id/handle) with one more query.
//! - Anything that still fails on a constraint is mapped by SQLSTATE / SQLite extended code
//!   ([`crate::error::violation`]): a unique violation (an `UpdateSession` that would give two
//!   sessions the same identity-verification run) to the write's duplicate conflict, a
//!   foreign-key violation (a biometric token or credential for an absent user) to `NotFound`.
//!
//! Where the `Write` docs are silent, this adapter decides:
//! - `InsertUser` whose id or user handle (not external id) is taken: `DuplicateId`.
//! - `InsertSession`, `InsertApiKey`, `InsertSecret` whose key is taken, and an `InsertSession`
//!   or `UpdateSession` that would reuse another session's (provider, run id): `DuplicateId`.
//! - `InsertEbt` / `InsertCredential` for a user that does not exist: `NotFound` (foreign key).
//! - `MarkUserErased` of an absent user: `NotFound`; of an erased user: no conflict, the first
//!   erasure time stays.
//! - `UpdateSession` of an absent session: `SessionVersion` (its stored version is not the
//!   expected one); with `record.version != expected_version + 1`: `Backend` (a caller bug),
//!   refused before the transaction starts.
//! - `UpdateSession` rewrites every column but `id`: the stored row becomes `record`.

use crate::error::{self, Violation};
use crate::rows;
use crate::sql::sql;
use crate::Backend;
use passbind_core::model::{Conflict, StoreError, Write};
use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection};

type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Checks what needs no database, before a transaction is opened.
pub(crate) fn validate(writes: &[Write]) -> Result<(), StoreError> {
    for w in writes {
        if let Write::UpdateSession {
            record,
            expected_version,
        } = w
        {
            if expected_version.checked_add(1) != Some(record.version) {
                return Err(StoreError::Backend(
                    "UpdateSession: record.version must be expected_version + 1".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// Runs one statement; returns the number of rows it affected. A constraint violation becomes
/// `Conflict(on_unique)` or `Conflict(NotFound)` (foreign key), anything else a backend error.
pub(crate) async fn run(
    b: Backend,
    conn: &mut AnyConnection,
    context: &'static str,
    on_unique: Conflict,
    q: Query<'_>,
) -> Result<u64, StoreError> {
    match q.execute(&mut *conn).await {
        Ok(done) => Ok(done.rows_affected()),
        Err(e) => Err(match error::violation(&e) {
            Some(Violation::Unique) => StoreError::Conflict(on_unique),
            Some(Violation::ForeignKey) => StoreError::Conflict(Conflict::NotFound),
            None => error::db(b, context, e),
        }),
    }
}

/// Fails with `conflict` when the statement affected no row.
pub(crate) fn require(rows: u64, conflict: Conflict) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::Conflict(conflict))
    } else {
        Ok(())
    }
}

pub(crate) async fn apply(
    b: Backend,
    conn: &mut AnyConnection,
    w: &Write,
) -> Result<(), StoreError> {
    use Conflict::*;
    match w {
        Write::InsertUser(u) => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO users (id, external_user_id, user_handle, created_at, erased_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ))
            .bind(u.id.as_str())
            .bind(u.external_user_id.as_str())
            .bind(u.user_handle.as_slice())
            .bind(u.created_at)
            .bind(u.erased_at);
            if run(b, conn, "insert user", DuplicateId, q).await? == 0 {
                let taken = sqlx::query(sql!(b, "SELECT 1 FROM users WHERE external_user_id = ?"))
                    .bind(u.external_user_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| error::db(b, "insert user", e))?;
                return Err(StoreError::Conflict(if taken.is_some() {
                    DuplicateUser
                } else {
                    DuplicateId
                }));
            }
            Ok(())
        }
        Write::MarkUserErased { user_id, at } => {
            // Erasing twice keeps the first time.
            let q = sqlx::query(sql!(
                b,
                "UPDATE users SET erased_at = COALESCE(erased_at, ?) WHERE id = ?"
            ))
            .bind(*at)
            .bind(user_id.as_str());
            require(
                run(b, conn, "mark user erased", DuplicateId, q).await?,
                NotFound,
            )
        }
        Write::InsertSession(s) => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO sessions (id, flow, state, version, user_id, external_user_id, \
                 created_at, updated_at, expires_at, idv_provider, idv_run_id, idv_failure, \
                 credential_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(s.id.as_str())
            .bind(s.flow.as_str())
            .bind(s.state.as_str())
            .bind(s.version)
            .bind(s.user_id.as_str())
            .bind(s.external_user_id.as_str())
            .bind(s.created_at)
            .bind(s.updated_at)
            .bind(s.expires_at)
            .bind(s.idv_provider.as_deref())
            .bind(s.idv_run_id.as_deref())
            .bind(s.idv_failure.map(|f| f.as_str()))
            .bind(s.credential_id.as_deref())
            .bind(rows::json(&s.data)?);
            require(
                run(b, conn, "insert session", DuplicateId, q).await?,
                DuplicateId,
            )
        }
        Write::UpdateSession {
            record: s,
            expected_version,
        } => {
            let q = sqlx::query(sql!(
                b,
                "UPDATE sessions SET flow = ?, state = ?, version = ?, user_id = ?, \
                 external_user_id = ?, created_at = ?, updated_at = ?, expires_at = ?, \
                 idv_provider = ?, idv_run_id = ?, idv_failure = ?, credential_id = ?, data = ? \
                 WHERE id = ? AND version = ?"
            ))
            .bind(s.flow.as_str())
            .bind(s.state.as_str())
            .bind(s.version)
            .bind(s.user_id.as_str())
            .bind(s.external_user_id.as_str())
            .bind(s.created_at)
            .bind(s.updated_at)
            .bind(s.expires_at)
            .bind(s.idv_provider.as_deref())
            .bind(s.idv_run_id.as_deref())
            .bind(s.idv_failure.map(|f| f.as_str()))
            .bind(s.credential_id.as_deref())
            .bind(rows::json(&s.data)?)
            .bind(s.id.as_str())
            .bind(*expected_version);
            require(
                run(b, conn, "update session", DuplicateId, q).await?,
                SessionVersion,
            )
        }
        Write::InsertEbt(e) => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO ebts (user_id, key_version, wrapped_dek, ciphertext, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ))
            .bind(e.user_id.as_str())
            .bind(i64::from(e.key_version))
            .bind(e.wrapped_dek.as_slice())
            .bind(e.ciphertext.as_slice())
            .bind(e.created_at);
            require(
                run(b, conn, "insert ebt", DuplicateEbt, q).await?,
                DuplicateEbt,
            )
        }
        Write::ReplaceEbtKey {
            user_id,
            key_version,
            wrapped_dek,
        } => {
            let q = sqlx::query(sql!(
                b,
                "UPDATE ebts SET key_version = ?, wrapped_dek = ? WHERE user_id = ?"
            ))
            .bind(i64::from(*key_version))
            .bind(wrapped_dek.as_slice())
            .bind(user_id.as_str());
            require(
                run(b, conn, "replace ebt key", DuplicateEbt, q).await?,
                NotFound,
            )
        }
        Write::DeleteEbt { user_id } => {
            let q =
                sqlx::query(sql!(b, "DELETE FROM ebts WHERE user_id = ?")).bind(user_id.as_str());
            run(b, conn, "delete ebt", DuplicateEbt, q).await.map(drop)
        }
        Write::InsertCredential(c) => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO credentials (credential_id, user_id, public_key, alg, sign_count, \
                 aaguid, transports, backup_eligible, backed_up, attestation_format, \
                 device_label, registration_session_id, created_at, last_used_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ))
            .bind(c.credential_id.as_str())
            .bind(c.user_id.as_str())
            .bind(c.public_key.as_deref())
            .bind(c.alg)
            .bind(c.sign_count)
            .bind(c.aaguid.as_deref())
            .bind(rows::string_list(&c.transports)?)
            .bind(rows::flag(c.backup_eligible))
            .bind(rows::flag(c.backed_up))
            .bind(c.attestation_format.as_deref())
            .bind(c.device_label.as_deref())
            .bind(c.registration_session_id.as_str())
            .bind(c.created_at)
            .bind(c.last_used_at)
            .bind(c.revoked_at);
            require(
                run(b, conn, "insert credential", DuplicateCredential, q).await?,
                DuplicateCredential,
            )
        }
        Write::UpdateCredentialUse {
            credential_id,
            sign_count,
            backed_up,
            last_used_at,
            require_advance,
        } => {
            // The maximum is taken against the committed row (PostgreSQL re-checks a row a
            // concurrent transaction changed; SQLite has one writer), never against a value
            // read before the transaction.
            let q = sqlx::query(sql!(
                b,
                "UPDATE credentials SET \
                 sign_count = CASE WHEN sign_count > ? THEN sign_count ELSE ? END, \
                 backed_up = ?, last_used_at = ? \
                 WHERE credential_id = ? AND revoked_at IS NULL \
                 AND (? = 0 OR sign_count < ? OR (sign_count = 0 AND ? = 0))"
            ))
            .bind(*sign_count)
            .bind(*sign_count)
            .bind(rows::flag(*backed_up))
            .bind(*last_used_at)
            .bind(credential_id.as_str())
            .bind(rows::flag(*require_advance))
            .bind(*sign_count)
            .bind(*sign_count);
            if run(b, conn, "update credential use", DuplicateCredential, q).await? > 0 {
                return Ok(());
            }
            // Which guard refused it: the credential (absent, revoked) or the counter.
            let live = sqlx::query(sql!(
                b,
                "SELECT 1 FROM credentials WHERE credential_id = ? AND revoked_at IS NULL"
            ))
            .bind(credential_id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| error::db(b, "update credential use", e))?;
            Err(StoreError::Conflict(if live.is_some() {
                CounterRegressed
            } else {
                NotFound
            }))
        }
        Write::RevokeCredential { credential_id, at } => {
            let q = sqlx::query(sql!(
                b,
                "UPDATE credentials SET revoked_at = ? \
                 WHERE credential_id = ? AND revoked_at IS NULL"
            ))
            .bind(*at)
            .bind(credential_id.as_str());
            require(
                run(b, conn, "revoke credential", DuplicateCredential, q).await?,
                NotFound,
            )
        }
        Write::RevokeUserCredentials { user_id, keep, at } => {
            let q = match keep {
                Some(keep) => sqlx::query(sql!(
                    b,
                    "UPDATE credentials SET revoked_at = ? \
                     WHERE user_id = ? AND revoked_at IS NULL AND credential_id <> ?"
                ))
                .bind(*at)
                .bind(user_id.as_str())
                .bind(keep.as_str()),
                None => sqlx::query(sql!(
                    b,
                    "UPDATE credentials SET revoked_at = ? \
                     WHERE user_id = ? AND revoked_at IS NULL"
                ))
                .bind(*at)
                .bind(user_id.as_str()),
            };
            run(b, conn, "revoke user credentials", DuplicateCredential, q)
                .await
                .map(drop)
        }
        Write::RecordIdvEvent {
            provider,
            event_key,
            received_at,
        } => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO idv_events (provider, event_key, received_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(provider.as_str())
            .bind(event_key.as_str())
            .bind(*received_at);
            require(
                run(b, conn, "record idv event", DuplicateIdvEvent, q).await?,
                DuplicateIdvEvent,
            )
        }
        Write::InsertApiKey(k) => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ))
            .bind(k.id.as_str())
            .bind(k.name.as_str())
            .bind(k.secret_hash.as_slice())
            .bind(rows::string_list(&k.scopes)?)
            .bind(k.created_at)
            .bind(k.revoked_at);
            require(
                run(b, conn, "insert api key", DuplicateId, q).await?,
                DuplicateId,
            )
        }
        Write::RevokeApiKey { id, at } => {
            let q = sqlx::query(sql!(
                b,
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
            ))
            .bind(*at)
            .bind(id.as_str());
            require(
                run(b, conn, "revoke api key", DuplicateId, q).await?,
                NotFound,
            )
        }
        Write::InsertSecret(s) => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO secrets (hash, kind, session_id, created_at, expires_at, \
                 consumed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ))
            .bind(s.hash.as_slice())
            .bind(s.kind.as_str())
            .bind(s.session_id.as_str())
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(s.consumed_at);
            require(
                run(b, conn, "insert secret", DuplicateId, q).await?,
                DuplicateId,
            )
        }
        Write::AppendAudit(d) => crate::audit::append_all(b, conn, &[d]).await,
        Write::InsertCheckpoint {
            checkpoint,
            frontier,
            previous_tree_size,
        } => {
            crate::audit::insert_checkpoint(b, conn, checkpoint, frontier, *previous_tree_size)
                .await
        }
        Write::InsertIdentityProof(p) => crate::audit::insert_identity_proof(b, conn, p).await,
        Write::RecordFailure { user_id, kind, at } => {
            let q = sqlx::query(sql!(
                b,
                "INSERT INTO failures (user_id, kind, at) VALUES (?, ?, ?)"
            ))
            .bind(user_id.as_str())
            .bind(kind.as_str())
            .bind(*at);
            run(b, conn, "record failure", DuplicateId, q).await?;
            Ok(())
        }
        Write::ConsumeSecret { hash, at } => {
            let q = sqlx::query(sql!(
                b,
                "UPDATE secrets SET consumed_at = ? WHERE hash = ? AND consumed_at IS NULL"
            ))
            .bind(*at)
            .bind(hash.as_slice());
            require(
                run(b, conn, "consume secret", DuplicateId, q).await?,
                NotFound,
            )
        }
    }
}
