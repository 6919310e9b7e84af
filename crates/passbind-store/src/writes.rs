//! The writes of [`Changes::commit`](passbind_core::ports::Changes::commit), each with its
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

use crate::db::{args, DbErrorKind, Exec, Value};
use crate::error;
use crate::rows;
use crate::sql::{sql, stmt};
use crate::Backend;
use passbind_core::model::{Conflict, StoreError, Write};

/// A statement and its parameters.
pub(crate) type Stmt<'q> = (&'q str, Vec<Value<'q>>);

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
    conn: &mut dyn Exec,
    context: &'static str,
    on_unique: Conflict,
    (sql, args): Stmt<'_>,
) -> Result<u64, StoreError> {
    match conn.execute(sql, args).await {
        Ok(n) => Ok(n),
        Err(e) => Err(match e.kind {
            DbErrorKind::Unique => StoreError::Conflict(on_unique),
            DbErrorKind::ForeignKey => StoreError::Conflict(Conflict::NotFound),
            _ => error::db(context, e),
        }),
    }
}

/// Whether a query finds a row.
pub(crate) async fn exists(
    conn: &mut dyn Exec,
    context: &'static str,
    (sql, args): Stmt<'_>,
) -> Result<bool, StoreError> {
    conn.query(sql, args)
        .await
        .map(|rows| !rows.is_empty())
        .map_err(|e| error::db(context, e))
}

/// Fails with `conflict` when the statement affected no row.
pub(crate) fn require(rows: u64, conflict: Conflict) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::Conflict(conflict))
    } else {
        Ok(())
    }
}

/// What a single-statement write's zero affected rows mean.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OnZero {
    /// Nothing: the write may change no row.
    Fine,
    /// Its precondition failed.
    Conflict(Conflict),
    /// One of several preconditions failed; [`explain_zero`] finds out which.
    Explain,
}

/// A write that is one statement: its text in `?` form and in PostgreSQL's, its parameters,
/// and what a unique violation and zero affected rows mean.
pub(crate) struct Single<'q> {
    pub(crate) context: &'static str,
    pub(crate) text: &'static str,
    pub(crate) postgres: &'static str,
    pub(crate) args: Vec<Value<'q>>,
    pub(crate) on_unique: Conflict,
    pub(crate) on_zero: OnZero,
}

impl<'q> Single<'q> {
    fn new(
        context: &'static str,
        (text, postgres): (&'static str, &'static str),
        args: Vec<Value<'q>>,
        on_unique: Conflict,
        on_zero: OnZero,
    ) -> Self {
        Self {
            context,
            text,
            postgres,
            args,
            on_unique,
            on_zero,
        }
    }
}

/// Applies one write, with its precondition, in the caller's transaction.
pub(crate) async fn apply(b: Backend, conn: &mut dyn Exec, w: &Write) -> Result<(), StoreError> {
    let Some(one) = single(w)? else {
        return match w {
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
            _ => Err(StoreError::Backend(
                "a single-statement write without its statement".to_owned(),
            )),
        };
    };
    let text = match b {
        Backend::Sqlite => one.text,
        Backend::Postgres => one.postgres,
    };
    let rows = run(conn, one.context, one.on_unique, (text, one.args)).await?;
    match (rows, one.on_zero) {
        (0, OnZero::Conflict(c)) => Err(StoreError::Conflict(c)),
        (0, OnZero::Explain) => Err(explain_zero(b, conn, w).await?),
        _ => Ok(()),
    }
}

/// Why a write whose statement changed no row ([`OnZero::Explain`]) was refused.
pub(crate) async fn explain_zero(
    b: Backend,
    conn: &mut dyn Exec,
    w: &Write,
) -> Result<StoreError, StoreError> {
    use Conflict::*;
    Ok(StoreError::Conflict(match w {
        // The external id is taken, or else the id or the user handle.
        Write::InsertUser(u) => {
            let taken = exists(
                conn,
                "insert user",
                (
                    sql!(b, "SELECT 1 FROM users WHERE external_user_id = ?"),
                    args![u.external_user_id.as_str()],
                ),
            )
            .await?;
            if taken {
                DuplicateUser
            } else {
                DuplicateId
            }
        }
        // Which guard refused it: the credential (absent, revoked) or the counter.
        Write::UpdateCredentialUse { credential_id, .. } => {
            let live = exists(
                conn,
                "update credential use",
                (
                    sql!(
                        b,
                        "SELECT 1 FROM credentials WHERE credential_id = ? AND revoked_at IS NULL"
                    ),
                    args![credential_id.as_str()],
                ),
            )
            .await?;
            if live {
                CounterRegressed
            } else {
                NotFound
            }
        }
        _ => {
            return Err(StoreError::Backend(
                "no explanation for a write that changed no row".to_owned(),
            ))
        }
    }))
}

/// The write as one statement, if it is one (all but audit events, checkpoints and identity
/// proofs, which [`crate::audit`] writes).
pub(crate) fn single(w: &Write) -> Result<Option<Single<'_>>, StoreError> {
    use Conflict::*;
    Ok(Some(match w {
        Write::InsertUser(u) => Single::new(
            "insert user",
            stmt!(
                "INSERT INTO users (id, external_user_id, user_handle, created_at, erased_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                u.id.as_str(),
                u.external_user_id.as_str(),
                u.user_handle.as_slice(),
                u.created_at,
                u.erased_at
            ],
            DuplicateId,
            OnZero::Explain,
        ),
        Write::MarkUserErased { user_id, at } => {
            // Erasing twice keeps the first time.
            Single::new(
                "mark user erased",
                stmt!("UPDATE users SET erased_at = COALESCE(erased_at, ?) WHERE id = ?"),
                args![*at, user_id.as_str()],
                DuplicateId,
                OnZero::Conflict(NotFound),
            )
        }
        Write::InsertSession(s) => Single::new(
            "insert session",
            stmt!(
                "INSERT INTO sessions (id, flow, state, version, user_id, external_user_id, \
                 created_at, updated_at, expires_at, idv_provider, idv_run_id, idv_failure, \
                 credential_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ),
            args![
                s.id.as_str(),
                s.flow.as_str(),
                s.state.as_str(),
                s.version,
                s.user_id.as_str(),
                s.external_user_id.as_str(),
                s.created_at,
                s.updated_at,
                s.expires_at,
                s.idv_provider.as_deref(),
                s.idv_run_id.as_deref(),
                s.idv_failure.map(|f| f.as_str()),
                s.credential_id.as_deref(),
                rows::json(&s.data)?
            ],
            DuplicateId,
            OnZero::Conflict(DuplicateId),
        ),
        Write::UpdateSession {
            record: s,
            expected_version,
        } => Single::new(
            "update session",
            stmt!(
                "UPDATE sessions SET flow = ?, state = ?, version = ?, user_id = ?, \
                 external_user_id = ?, created_at = ?, updated_at = ?, expires_at = ?, \
                 idv_provider = ?, idv_run_id = ?, idv_failure = ?, credential_id = ?, data = ? \
                 WHERE id = ? AND version = ?"
            ),
            args![
                s.flow.as_str(),
                s.state.as_str(),
                s.version,
                s.user_id.as_str(),
                s.external_user_id.as_str(),
                s.created_at,
                s.updated_at,
                s.expires_at,
                s.idv_provider.as_deref(),
                s.idv_run_id.as_deref(),
                s.idv_failure.map(|f| f.as_str()),
                s.credential_id.as_deref(),
                rows::json(&s.data)?,
                s.id.as_str(),
                *expected_version
            ],
            DuplicateId,
            OnZero::Conflict(SessionVersion),
        ),
        Write::InsertEbt(e) => Single::new(
            "insert ebt",
            stmt!(
                "INSERT INTO ebts (user_id, key_version, wrapped_dek, ciphertext, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                e.user_id.as_str(),
                i64::from(e.key_version),
                e.wrapped_dek.as_slice(),
                e.ciphertext.as_slice(),
                e.created_at
            ],
            DuplicateEbt,
            OnZero::Conflict(DuplicateEbt),
        ),
        Write::ReplaceEbtKey {
            user_id,
            key_version,
            wrapped_dek,
        } => Single::new(
            "replace ebt key",
            stmt!("UPDATE ebts SET key_version = ?, wrapped_dek = ? WHERE user_id = ?"),
            args![
                i64::from(*key_version),
                wrapped_dek.as_slice(),
                user_id.as_str()
            ],
            DuplicateEbt,
            OnZero::Conflict(NotFound),
        ),
        Write::DeleteEbt { user_id } => Single::new(
            "delete ebt",
            stmt!("DELETE FROM ebts WHERE user_id = ?"),
            args![user_id.as_str()],
            DuplicateEbt,
            OnZero::Fine,
        ),
        Write::InsertCredential(c) => Single::new(
            "insert credential",
            stmt!(
                "INSERT INTO credentials (credential_id, user_id, public_key, alg, sign_count, \
                 aaguid, transports, backup_eligible, backed_up, attestation_format, \
                 device_label, registration_session_id, created_at, last_used_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                c.credential_id.as_str(),
                c.user_id.as_str(),
                c.public_key.as_deref(),
                c.alg,
                c.sign_count,
                c.aaguid.as_deref(),
                rows::string_list(&c.transports)?,
                rows::flag(c.backup_eligible),
                rows::flag(c.backed_up),
                c.attestation_format.as_deref(),
                c.device_label.as_deref(),
                c.registration_session_id.as_str(),
                c.created_at,
                c.last_used_at,
                c.revoked_at
            ],
            DuplicateCredential,
            OnZero::Conflict(DuplicateCredential),
        ),
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
            Single::new(
                "update credential use",
                stmt!(
                    "UPDATE credentials SET \
                 sign_count = CASE WHEN sign_count > ? THEN sign_count ELSE ? END, \
                 backed_up = ?, last_used_at = ? \
                 WHERE credential_id = ? AND revoked_at IS NULL \
                 AND (? = 0 OR sign_count < ? OR (sign_count = 0 AND ? = 0))"
                ),
                args![
                    *sign_count,
                    *sign_count,
                    rows::flag(*backed_up),
                    *last_used_at,
                    credential_id.as_str(),
                    rows::flag(*require_advance),
                    *sign_count,
                    *sign_count
                ],
                DuplicateCredential,
                OnZero::Explain,
            )
        }
        Write::RevokeCredential { credential_id, at } => Single::new(
            "revoke credential",
            stmt!(
                "UPDATE credentials SET revoked_at = ? \
                 WHERE credential_id = ? AND revoked_at IS NULL"
            ),
            args![*at, credential_id.as_str()],
            DuplicateCredential,
            OnZero::Conflict(NotFound),
        ),
        Write::RevokeUserCredentials { user_id, keep, at } => match keep {
            Some(keep) => Single::new(
                "revoke user credentials",
                stmt!(
                    "UPDATE credentials SET revoked_at = ? \
                     WHERE user_id = ? AND revoked_at IS NULL AND credential_id <> ?"
                ),
                args![*at, user_id.as_str(), keep.as_str()],
                DuplicateCredential,
                OnZero::Fine,
            ),
            None => Single::new(
                "revoke user credentials",
                stmt!(
                    "UPDATE credentials SET revoked_at = ? \
                     WHERE user_id = ? AND revoked_at IS NULL"
                ),
                args![*at, user_id.as_str()],
                DuplicateCredential,
                OnZero::Fine,
            ),
        },
        Write::EraseCredentialLabels { user_id } => Single::new(
            "erase credential labels",
            stmt!("UPDATE credentials SET device_label = NULL WHERE user_id = ?"),
            args![user_id.as_str()],
            DuplicateCredential,
            OnZero::Fine,
        ),
        Write::RecordIdvEvent {
            provider,
            event_key,
            received_at,
        } => Single::new(
            "record idv event",
            stmt!(
                "INSERT INTO idv_events (provider, event_key, received_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ),
            args![provider.as_str(), event_key.as_str(), *received_at],
            DuplicateIdvEvent,
            OnZero::Conflict(DuplicateIdvEvent),
        ),
        Write::InsertApiKey(k) => Single::new(
            "insert api key",
            stmt!(
                "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                k.id.as_str(),
                k.name.as_str(),
                k.secret_hash.as_slice(),
                rows::string_list(&k.scopes)?,
                k.created_at,
                k.revoked_at
            ],
            DuplicateId,
            OnZero::Conflict(DuplicateId),
        ),
        Write::RevokeApiKey { id, at } => Single::new(
            "revoke api key",
            stmt!("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
            args![*at, id.as_str()],
            DuplicateId,
            OnZero::Conflict(NotFound),
        ),
        Write::InsertSecret(s) => Single::new(
            "insert secret",
            stmt!(
                "INSERT INTO secrets (hash, kind, session_id, created_at, expires_at, \
                 consumed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                s.hash.as_slice(),
                s.kind.as_str(),
                s.session_id.as_str(),
                s.created_at,
                s.expires_at,
                s.consumed_at
            ],
            DuplicateId,
            OnZero::Conflict(DuplicateId),
        ),
        Write::RecordFailure { user_id, kind, at } => Single::new(
            "record failure",
            stmt!("INSERT INTO failures (user_id, kind, at) VALUES (?, ?, ?)"),
            args![user_id.as_str(), kind.as_str(), *at],
            DuplicateId,
            OnZero::Fine,
        ),
        Write::ConsumeSecret { hash, at } => Single::new(
            "consume secret",
            stmt!("UPDATE secrets SET consumed_at = ? WHERE hash = ? AND consumed_at IS NULL"),
            args![*at, hash.as_slice()],
            DuplicateId,
            OnZero::Conflict(NotFound),
        ),
        Write::AppendAudit(_) | Write::InsertCheckpoint { .. } | Write::InsertIdentityProof(_) => {
            return Ok(None)
        }
    }))
}
