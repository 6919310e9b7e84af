//! The audit log in the database: appends under the chain-head row lock, checkpoints, identity
//! proofs, and their reads.
//!
//! An append reads the head `(last_seq, last_hash)` with `SELECT ... FOR UPDATE` (PostgreSQL;
//! SQLite's `BEGIN IMMEDIATE` already serialises writers), seals the event with
//! `passbind_audit::ChainHead`, inserts it and moves the head, all in the transaction of the
//! change the event describes. Appends are applied last in a commit, so the head lock is held
//! only for the end of the transaction. Concurrent replicas therefore get consecutive sequence
//! numbers in commit order: no gap, no fork.

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

/// Appends the events of one change: one head read (locked), one multi-row insert, one head
/// update, whatever the number of events.
pub(crate) async fn append_all(
    b: Backend,
    conn: &mut dyn Exec,
    drafts: &[&AuditDraft],
) -> Result<(), StoreError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let head_sql = match b {
        Backend::Sqlite => "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
        Backend::Postgres => "SELECT last_seq, last_hash FROM audit_head WHERE id = 1 FOR UPDATE",
    };
    let rows = conn
        .query(head_sql, args![])
        .await
        .map_err(|e| error::db("read audit head", e))?;
    let bad = || StoreError::Backend("read audit head: no head row".into());
    let row = rows.first().ok_or_else(bad)?;
    let last_seq: i64 = row.try_get("last_seq").map_err(|_| bad())?;
    let last_hash: String = row.try_get("last_hash").map_err(|_| bad())?;
    let mut head = ChainHead {
        last_seq: u64::try_from(last_seq)
            .map_err(|_| StoreError::Backend("audit head: negative sequence".into()))?,
        last_hash,
    };
    let mut sealed = Vec::with_capacity(drafts.len());
    for d in drafts {
        let event = head
            .append(draft(d))
            .map_err(|e| StoreError::Backend(format!("audit event: {e}")))?;
        let json = serde_json::to_string(&event)
            .map_err(|e| StoreError::Backend(format!("audit event: {e}")))?;
        let seq = i64::try_from(event.seq)
            .map_err(|_| StoreError::Backend("audit sequence overflow".into()))?;
        sealed.push((seq, event, json));
    }
    let mut text = String::from(
        "INSERT INTO audit_events (seq, time_ms, event_type, session_id, user_ref, hash, event) VALUES ",
    );
    for i in 0..sealed.len() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str("(?, ?, ?, ?, ?, ?, ?)");
    }
    let text = match b {
        Backend::Sqlite => text,
        Backend::Postgres => crate::sql::to_postgres(&text),
    };
    let mut params: Vec<Value<'_>> = Vec::with_capacity(sealed.len() * 7);
    for (seq, event, json) in &sealed {
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
    conn.execute(&text, params)
        .await
        .map_err(|e| error::db("insert audit events", e))?;
    let last = i64::try_from(head.last_seq)
        .map_err(|_| StoreError::Backend("audit sequence overflow".into()))?;
    conn.execute(
        sql!(
            b,
            "UPDATE audit_head SET last_seq = ?, last_hash = ? WHERE id = 1"
        ),
        args![last, head.last_hash.as_str()],
    )
    .await
    .map_err(|e| error::db("move audit head", e))?;
    Ok(())
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
