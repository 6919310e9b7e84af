//! The audit log in the database: pending events, the sequencer that integrates them,
//! checkpoints, identity proofs, and their reads.
//!
//! A change writes its events into `audit_pending` in its own transaction (no change without
//! its events, no event without its change) and takes no lock that another change needs. The
//! sequencer ([`integrate_batch`], one at a time: a PostgreSQL advisory lock, SQLite's writer)
//! moves them in id order into `audit_events`: it reads the head `(last_seq, last_hash)`, seals
//! each event with `passbind_audit::ChainHead`, inserts them, deletes exactly the pending rows
//! it read and moves the head, in one transaction. Sequence numbers are therefore gap-free and
//! the chain has no fork, with any number of replicas.

use crate::db::{args, Exec, Row, Value};
use crate::error;
use crate::sql::sql;
use crate::Backend;
use passbind_audit::{Actor, AuditEvent, ChainHead, Checkpoint, EventDraft};
use passbind_core::model::{AuditDraft, Conflict, IdentityProofRecord, StoreError};

fn draft(d: &AuditDraft) -> EventDraft {
    EventDraft {
        time_ms: d.time_ms,
        event_type: d.event_type.clone(),
        outcome: d.outcome.clone(),
        reason: d.reason.clone(),
        session_id: d.session_id.clone(),
        flow: d.flow.clone(),
        actor: Actor {
            kind: d.actor_kind.clone(),
            id: d.actor_id.clone(),
        },
        user_ref: d.user_ref.clone(),
        tx_hash: d.tx_hash.clone(),
        details: d.details.clone(),
    }
}

/// Writes the events of one change, in the change's transaction, as pending: one multi-row
/// insert into `audit_pending`, no chain head, no lock shared with other changes. The audit
/// sequencer ([`integrate_batch`]) gives them their place in the log.
pub(crate) async fn append_all(
    b: Backend,
    conn: &mut dyn Exec,
    drafts: &[&AuditDraft],
) -> Result<(), StoreError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let (text, params) = pending_insert(drafts)?;
    let text = match b {
        Backend::Sqlite => text,
        Backend::Postgres => crate::sql::to_postgres(&text),
    };
    conn.execute(&text, params)
        .await
        .map_err(|e| error::db("record audit events", e))?;
    Ok(())
}

/// The multi-row insert of [`append_all`], in `?` form, and its parameters.
pub(crate) fn pending_insert<'q>(
    drafts: &[&AuditDraft],
) -> Result<(String, Vec<Value<'q>>), StoreError> {
    let mut text = String::from("INSERT INTO audit_pending (created_at, draft) VALUES ");
    let mut params: Vec<Value<'_>> = Vec::with_capacity(drafts.len() * 2);
    for (i, d) in drafts.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str("(?, ?)");
        let json = serde_json::to_string(&draft(d))
            .map_err(|e| StoreError::Backend(format!("audit event: {e}")))?;
        params.extend(args![d.time_ms, json]);
    }
    Ok((text, params))
}

/// The sequencer's lock on PostgreSQL (transaction-scoped advisory lock).
const SEQUENCER_LOCK: i64 = 7_020_411_325_040_322;

/// Rows per multi-row statement of the sequencer (7 parameters each: far below both engines'
/// parameter limits).
const CHUNK: usize = 500;

/// Pending events read by the sequencer, sealed into their place in the log.
pub(crate) struct Sealed {
    /// The head the events were chained to.
    pub(crate) from_seq: i64,
    /// The head after them.
    pub(crate) head: ChainHead,
    /// The pending rows they came from.
    pub(crate) ids: Vec<i64>,
    /// `(seq, event, event as JSON)`.
    pub(crate) events: Vec<(i64, AuditEvent, String)>,
}

/// Takes the sequencer's lock on PostgreSQL for the caller's transaction: `false` when `wait`
/// is off and another replica holds it. On SQLite there is nothing to take (the writer).
pub(crate) async fn lock_sequencer(
    b: Backend,
    conn: &mut dyn Exec,
    wait: bool,
) -> Result<bool, StoreError> {
    if b == Backend::Sqlite {
        return Ok(true);
    }
    let sql = if wait {
        "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l"
    } else {
        "SELECT 1 AS locked WHERE pg_try_advisory_xact_lock($1)"
    };
    let got = conn
        .query(sql, args![SEQUENCER_LOCK])
        .await
        .map_err(|e| error::db("lock audit sequencer", e))?;
    Ok(!got.is_empty())
}

/// Reads up to `limit` pending events (id order) and the head, and seals the events onto the
/// head. `None` when nothing is pending.
pub(crate) async fn read_and_seal(
    b: Backend,
    conn: &mut dyn Exec,
    limit: usize,
) -> Result<Option<Sealed>, StoreError> {
    let pending = conn
        .query(
            sql!(b, "SELECT id, draft FROM audit_pending ORDER BY id LIMIT ?"),
            args![i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await
        .map_err(|e| error::db("read pending audit events", e))?;
    if pending.is_empty() {
        return Ok(None);
    }
    let rows = conn
        .query(
            "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
            args![],
        )
        .await
        .map_err(|e| error::db("read audit head", e))?;
    let bad = || StoreError::Backend("read audit head: no head row".into());
    let row = rows.first().ok_or_else(bad)?;
    let last_seq: i64 = row.try_get("last_seq").map_err(|_| bad())?;
    let last_hash: String = row.try_get("last_hash").map_err(|_| bad())?;
    seal(&pending, last_seq, last_hash).map(Some)
}

/// Seals pending rows (`id`, `draft`) onto the head `(last_seq, last_hash)`: pure work, no I/O.
pub(crate) fn seal(
    pending: &[Row],
    last_seq: i64,
    last_hash: String,
) -> Result<Sealed, StoreError> {
    let mut head = ChainHead {
        last_seq: u64::try_from(last_seq)
            .map_err(|_| StoreError::Backend("audit head: negative sequence".into()))?,
        last_hash,
    };
    let corrupt = || StoreError::Backend("audit_pending: unreadable row".into());
    let mut ids = Vec::with_capacity(pending.len());
    let mut events = Vec::with_capacity(pending.len());
    for p in pending {
        let id: i64 = p.try_get("id").map_err(|_| corrupt())?;
        let text: String = p.try_get("draft").map_err(|_| corrupt())?;
        let d: EventDraft = serde_json::from_str(&text).map_err(|_| corrupt())?;
        let event = head
            .append(d)
            .map_err(|e| StoreError::Backend(format!("audit event: {e}")))?;
        let json = serde_json::to_string(&event)
            .map_err(|e| StoreError::Backend(format!("audit event: {e}")))?;
        let seq = i64::try_from(event.seq)
            .map_err(|_| StoreError::Backend("audit sequence overflow".into()))?;
        ids.push(id);
        events.push((seq, event, json));
    }
    Ok(Sealed {
        from_seq: last_seq,
        head,
        ids,
        events,
    })
}

/// Writes sealed events into the log in the caller's transaction: inserts them, deletes
/// exactly the pending rows they came from, and moves the head, provided the head is still
/// the one they were sealed onto (else `Conflict::StaleCheckpoint`: another sequencer got in
/// between, and nothing is written). Returns how many it wrote.
pub(crate) async fn write_sealed(
    b: Backend,
    conn: &mut dyn Exec,
    sealed: &Sealed,
) -> Result<u64, StoreError> {
    let last = i64::try_from(sealed.head.last_seq)
        .map_err(|_| StoreError::Backend("audit sequence overflow".into()))?;
    let moved = conn
        .execute(
            sql!(
                b,
                "UPDATE audit_head SET last_seq = ?, last_hash = ? WHERE id = 1 AND last_seq = ?"
            ),
            args![last, sealed.head.last_hash.as_str(), sealed.from_seq],
        )
        .await
        .map_err(|e| error::db("move audit head", e))?;
    if moved == 0 {
        return Err(StoreError::Conflict(Conflict::StaleCheckpoint));
    }
    for chunk in sealed.events.chunks(CHUNK) {
        let mut text = String::from(
            "INSERT INTO audit_events (seq, time_ms, event_type, session_id, user_ref, hash, event) VALUES ",
        );
        let mut params: Vec<Value<'_>> = Vec::with_capacity(chunk.len() * 7);
        for (i, (seq, event, json)) in chunk.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str("(?, ?, ?, ?, ?, ?, ?)");
            params.extend(args![
                *seq,
                event.time_ms,
                event.event_type.as_str(),
                event.session_id.as_deref(),
                event.user_ref.as_deref(),
                event.hash.as_str(),
                json.as_str()
            ]);
        }
        let text = match b {
            Backend::Sqlite => text,
            Backend::Postgres => crate::sql::to_postgres(&text),
        };
        conn.execute(&text, params)
            .await
            .map_err(|e| error::db("insert audit events", e))?;
    }
    for chunk in sealed.ids.chunks(CHUNK) {
        let mut text = String::from("DELETE FROM audit_pending WHERE id IN (");
        for i in 0..chunk.len() {
            text.push_str(if i == 0 { "?" } else { ", ?" });
        }
        text.push(')');
        let text = match b {
            Backend::Sqlite => text,
            Backend::Postgres => crate::sql::to_postgres(&text),
        };
        let params: Vec<Value<'_>> = chunk.iter().map(|id| Value::from(*id)).collect();
        let deleted = conn
            .execute(&text, params)
            .await
            .map_err(|e| error::db("delete integrated audit events", e))?;
        if deleted != chunk.len() as u64 {
            // Another sequencer integrated some of them: undo this pass.
            return Err(StoreError::Conflict(Conflict::StaleCheckpoint));
        }
    }
    Ok(u64::try_from(sealed.ids.len()).unwrap_or(u64::MAX))
}

/// Inserts a checkpoint if the newest stored one is still the one of `previous_tree_size`, the
/// new tree is larger and its time not earlier. Signers are serialised: on PostgreSQL by a
/// transaction-scoped advisory lock taken before the newest checkpoint is read (READ COMMITTED
/// then sees every checkpoint committed before the lock was granted); on SQLite by the one
/// writer. Without this, two replicas that read the same newest checkpoint could both insert,
/// the larger tree with the earlier time.
pub(crate) async fn insert_checkpoint(
    b: Backend,
    conn: &mut dyn Exec,
    c: &Checkpoint,
    frontier: &[String],
    previous_tree_size: u64,
) -> Result<(), StoreError> {
    let size = i64::try_from(c.tree_size)
        .map_err(|_| StoreError::Backend("checkpoint size overflow".into()))?;
    if b == Backend::Postgres {
        conn.query("SELECT pg_advisory_xact_lock(7020411325040321)", args![])
            .await
            .map_err(|e| error::db("lock checkpoint signer", e))?;
    }
    let newest = conn
        .query(
            "SELECT tree_size, time_ms FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
            args![],
        )
        .await
        .map_err(|e| error::db("read newest checkpoint", e))?;
    let bad = || StoreError::Backend("read newest checkpoint: unreadable row".into());
    let (newest_size, newest_time) = match newest.first() {
        Some(row) => (
            row.try_get::<i64>("tree_size").map_err(|_| bad())?,
            row.try_get::<i64>("time_ms").map_err(|_| bad())?,
        ),
        None => (0, i64::MIN),
    };
    if u64::try_from(newest_size).ok() != Some(previous_tree_size)
        || size <= newest_size
        || c.time_ms < newest_time
    {
        return Err(StoreError::Conflict(Conflict::StaleCheckpoint));
    }
    let frontier = serde_json::to_string(frontier)
        .map_err(|e| StoreError::Backend(format!("frontier: {e}")))?;
    let done = conn
        .execute(
            sql!(
                b,
                "INSERT INTO audit_checkpoints (tree_size, root_hash, time_ms, key_id, \
                 signature, frontier) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                size,
                c.root_hash.as_str(),
                c.time_ms,
                c.key_id.as_str(),
                c.signature.as_str(),
                frontier.as_str()
            ],
        )
        .await
        .map_err(|e| error::db("insert checkpoint", e))?;
    if done == 0 {
        return Err(StoreError::Conflict(Conflict::DuplicateId));
    }
    Ok(())
}

pub(crate) async fn insert_identity_proof(
    b: Backend,
    conn: &mut dyn Exec,
    p: &IdentityProofRecord,
) -> Result<(), StoreError> {
    let done = conn
        .execute(
            sql!(
                b,
                "INSERT INTO identity_proofs (id, session_id, user_id, credential_id, jws, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            args![
                p.id.as_str(),
                p.session_id.as_str(),
                p.user_id.as_str(),
                p.credential_id.as_deref(),
                p.jws.as_str(),
                p.created_at
            ],
        )
        .await
        .map_err(|e| error::db("insert identity proof", e))?;
    if done == 0 {
        return Err(StoreError::Conflict(Conflict::DuplicateId));
    }
    Ok(())
}

pub(crate) fn event(row: &Row) -> Result<AuditEvent, StoreError> {
    let text: String = row
        .try_get::<String>("event")
        .map_err(|_| StoreError::Backend("audit_events: unreadable event".into()))?;
    serde_json::from_str(&text)
        .map_err(|_| StoreError::Backend("audit_events: corrupt event".into()))
}

pub(crate) fn hash(row: &Row) -> Result<String, StoreError> {
    row.try_get("hash")
        .map_err(|_| StoreError::Backend("audit_events: unreadable hash".into()))
}

pub(crate) fn checkpoint(row: &Row) -> Result<Checkpoint, StoreError> {
    let bad = |c: &str| StoreError::Backend(format!("audit_checkpoints: unreadable {c}"));
    let size: i64 = row.try_get("tree_size").map_err(|_| bad("tree_size"))?;
    Ok(Checkpoint {
        tree_size: u64::try_from(size).map_err(|_| bad("tree_size"))?,
        root_hash: row.try_get("root_hash").map_err(|_| bad("root_hash"))?,
        time_ms: row.try_get("time_ms").map_err(|_| bad("time_ms"))?,
        key_id: row.try_get("key_id").map_err(|_| bad("key_id"))?,
        signature: row.try_get("signature").map_err(|_| bad("signature"))?,
    })
}

pub(crate) fn checkpoint_with_frontier(row: &Row) -> Result<(Checkpoint, Vec<String>), StoreError> {
    let c = checkpoint(row)?;
    let text: String = row
        .try_get("frontier")
        .map_err(|_| StoreError::Backend("audit_checkpoints: unreadable frontier".into()))?;
    let f: Vec<String> = serde_json::from_str(&text)
        .map_err(|_| StoreError::Backend("audit_checkpoints: corrupt frontier".into()))?;
    Ok((c, f))
}

pub(crate) fn identity_proof(row: &Row) -> Result<IdentityProofRecord, StoreError> {
    let bad = |c: &str| StoreError::Backend(format!("identity_proofs: unreadable {c}"));
    Ok(IdentityProofRecord {
        id: row.try_get("id").map_err(|_| bad("id"))?,
        session_id: row.try_get("session_id").map_err(|_| bad("session_id"))?,
        user_id: row.try_get("user_id").map_err(|_| bad("user_id"))?,
        credential_id: row
            .try_get("credential_id")
            .map_err(|_| bad("credential_id"))?,
        jws: row.try_get("jws").map_err(|_| bad("jws"))?,
        created_at: row.try_get("created_at").map_err(|_| bad("created_at"))?,
    })
}
