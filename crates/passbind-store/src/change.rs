//! How a change reaches the database: [`SqlStore::run_change`] on each engine, and the one
//! body that applies it ([`apply_change`]).

use crate::db::postgres::PgExec;
use crate::db::sqlite::{Job, SqliteExec};
use crate::db::{DbErrorKind, Exec, Value};
use crate::writes::{single, OnZero};
use crate::{error, Backend, Engine, SqlStore};
use passbind_core::model::{Conflict, StoreError, Write};
use passbind_core::operators::OperatorWrite;

impl SqlStore {
    /// Runs one change (operator writes first, then the writes in order, then their audit
    /// events), all or nothing.
    ///
    /// SQLite: the change goes to the writer thread, which commits it in a group with the
    /// changes queued beside it, under its own savepoint; the answer comes after the group's
    /// `COMMIT`. PostgreSQL: one statement when the change allows it ([`OneStatement`]), else
    /// one transaction on one pooled connection.
    pub(crate) async fn run_change(
        &self,
        ops: Vec<OperatorWrite>,
        writes: Vec<Write>,
    ) -> Result<(), StoreError> {
        match self.engine() {
            Engine::Sqlite(db) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                db.send(Job::Change {
                    apply: Box::new(move |conn| {
                        let mut exec = SqliteExec::new(conn);
                        // SQLite statements complete at once: the future never waits.
                        futures::executor::block_on(apply_change(
                            &mut exec,
                            Backend::Sqlite,
                            &ops,
                            &writes,
                        ))
                    }),
                    reply,
                })?;
                answer
                    .await
                    .map_err(|_| StoreError::Backend("the SQLite writer is gone".into()))?
            }
            Engine::Postgres(pool) => {
                if ops.is_empty() {
                    if let Some(one) = OneStatement::of(&writes)? {
                        match crate::db::postgres::execute(pool, &one.text, &one.args).await {
                            Ok(_) => return Ok(()),
                            Err(e) => match e.kind {
                                DbErrorKind::Precondition(k) => match one.checked.get(k) {
                                    Some(OnZero::Conflict(c)) => {
                                        return Err(StoreError::Conflict(*c))
                                    }
                                    // Which precondition failed takes a query: the
                                    // transaction below asks it.
                                    Some(_) => {}
                                    None => return Err(error::db("apply change", e)),
                                },
                                // Which write a constraint refused: the transaction below
                                // tells (the statement changed nothing).
                                DbErrorKind::Unique | DbErrorKind::ForeignKey => {}
                                _ => return Err(error::db("apply change", e)),
                            },
                        }
                    }
                }
                let mut tx = pool.begin().await.map_err(|e| {
                    error::db("begin transaction", crate::db::postgres::db_error(&e))
                })?;
                let applied = {
                    let mut exec = PgExec { conn: &mut tx };
                    apply_change(&mut exec, Backend::Postgres, &ops, &writes).await
                };
                if let Err(e) = applied {
                    // Should the rollback itself fail, sqlx rolls back when `tx` drops.
                    let _ = tx.rollback().await;
                    return Err(e);
                }
                tx.commit()
                    .await
                    .map_err(|e| error::db("commit transaction", crate::db::postgres::db_error(&e)))
            }
        }
    }
}

/// A PostgreSQL change as one statement, one round trip instead of `BEGIN`, a statement per
/// write and `COMMIT`: each write a data-modifying `WITH` query (`w0 AS (UPDATE ... RETURNING
/// 1)`), the audit events another, and a final `SELECT passbind_require_rows(...)` that fails
/// the statement, undoing all of it, when a write that must change a row changed none (see
/// migration 0007). The writes run on one snapshot and a row locked by a concurrent change is
/// re-checked once that change commits, as in the transaction. Only for writes that are single
/// statements on distinct tables, none of which needs a row another one inserts (a new user
/// and their credential go through the transaction).
struct OneStatement<'q> {
    text: String,
    args: Vec<Value<'q>>,
    /// Per position in the `passbind_require_rows` array: what its zero rows mean.
    checked: Vec<OnZero>,
}

impl<'q> OneStatement<'q> {
    fn of(writes: &'q [Write]) -> Result<Option<Self>, StoreError> {
        let mut text = String::from("WITH ");
        let mut args = Vec::new();
        let mut checked = Vec::new();
        let mut counts = String::new();
        let mut tables: Vec<&str> = Vec::new();
        let mut audit = Vec::new();
        for w in writes {
            match w {
                Write::AppendAudit(d) => {
                    audit.push(d);
                    continue;
                }
                Write::InsertUser(_) | Write::InsertEbt(_) | Write::InsertCredential(_) => {
                    return Ok(None)
                }
                _ => {}
            }
            let Some(one) = single(w)? else {
                return Ok(None);
            };
            let table = target_table(one.text);
            if tables.contains(&table) {
                return Ok(None);
            }
            let n = tables.len();
            tables.push(table);
            if n > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("w{n} AS ({} RETURNING 1)", one.text));
            args.extend(one.args);
            if !matches!(one.on_zero, OnZero::Fine) {
                if !checked.is_empty() {
                    counts.push_str(", ");
                }
                counts.push_str(&format!("(SELECT count(*) FROM w{n})"));
                checked.push(one.on_zero);
            }
        }
        if !audit.is_empty() {
            let (insert, params) = crate::audit::pending_insert(&audit)?;
            if !tables.is_empty() {
                text.push_str(", ");
            }
            text.push_str(&format!("a AS ({insert} RETURNING 1)"));
            args.extend(params);
        } else if tables.is_empty() {
            return Ok(None);
        }
        text.push_str(&format!(
            " SELECT passbind_require_rows(ARRAY[{counts}]::BIGINT[]) AS ok"
        ));
        Ok(Some(Self {
            text: crate::sql::to_postgres(&text),
            args,
            checked,
        }))
    }
}

/// The table a single-statement write changes: the word after `INSERT INTO`, `UPDATE` or
/// `DELETE FROM`.
fn target_table(statement: &str) -> &str {
    let mut words = statement.split_whitespace();
    let first = words.next().unwrap_or_default();
    if first.eq_ignore_ascii_case("INSERT") || first.eq_ignore_ascii_case("DELETE") {
        words.next();
    }
    words.next().unwrap_or_default()
}

/// Applies one change inside the caller's transaction: every write with its precondition, in
/// order, then the audit events (they take the chain head, which is then held only until the
/// commit). The first failed precondition is the error; the caller undoes the change.
pub(crate) async fn apply_change(
    exec: &mut dyn Exec,
    b: Backend,
    ops: &[OperatorWrite],
    writes: &[Write],
) -> Result<(), StoreError> {
    for op in ops {
        crate::management::apply_operator(b, exec, op).await?;
    }
    let mut audit = Vec::new();
    for w in writes {
        if let Write::AppendAudit(d) = w {
            audit.push(d);
            continue;
        }
        crate::writes::apply(b, exec, w).await?;
    }
    crate::audit::append_all(b, exec, &audit).await
}

/// Events the sequencer takes per transaction: on SQLite fewer, since its writes hold up the
/// one writer.
const SQLITE_INTEGRATE_BATCH: usize = 500;
const PG_INTEGRATE_BATCH: usize = 1000;

impl SqlStore {
    /// One pass of the audit sequencer in its own transaction (see [`crate::audit`]).
    ///
    /// PostgreSQL: one transaction holds the sequencer's advisory lock while it reads, seals
    /// and writes. SQLite: one pass at a time in this process; the pending events and the head
    /// are read on a read connection and sealed off the writer, and only the writes go to the
    /// writer thread, under the precondition that the head has not moved meanwhile.
    async fn integrate_once(&self, wait: bool) -> Result<u64, StoreError> {
        match self.engine() {
            Engine::Sqlite(db) => {
                let _one = if wait {
                    self.sequencer.lock().await
                } else {
                    match self.sequencer.try_lock() {
                        Ok(g) => g,
                        Err(_) => return Ok(0),
                    }
                };
                let pending = self
                    .rows_heavy(
                        "read pending audit events",
                        "SELECT id, draft FROM audit_pending ORDER BY id LIMIT ?",
                        crate::db::args![i64::try_from(SQLITE_INTEGRATE_BATCH).unwrap_or(1)],
                    )
                    .await?;
                if pending.is_empty() {
                    return Ok(0);
                }
                let head = self
                    .rows(
                        "read audit head",
                        "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
                        crate::db::args![],
                    )
                    .await?;
                let bad = || StoreError::Backend("read audit head: no head row".into());
                let row = head.first().ok_or_else(bad)?;
                let last_seq: i64 = row.try_get("last_seq").map_err(|_| bad())?;
                let last_hash: String = row.try_get("last_hash").map_err(|_| bad())?;
                let sealed = tokio::task::spawn_blocking(move || {
                    crate::audit::seal(&pending, last_seq, last_hash)
                })
                .await
                .map_err(|e| StoreError::Backend(format!("audit sequencer: {e}")))??;
                let (reply, answer) = tokio::sync::oneshot::channel();
                db.send(Job::Run(Box::new(move |conn| {
                    let r = (|| {
                        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
                            StoreError::Backend(format!("audit sequencer: begin: {e}"))
                        })?;
                        let mut exec = SqliteExec::new(conn);
                        let done = futures::executor::block_on(crate::audit::write_sealed(
                            Backend::Sqlite,
                            &mut exec,
                            &sealed,
                        ));
                        let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
                        let ended = conn.execute_batch(end);
                        let n = done?;
                        ended.map_err(|e| {
                            StoreError::Backend(format!("audit sequencer: commit: {e}"))
                        })?;
                        Ok(n)
                    })();
                    if r.is_err() && !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    let _ = reply.send(r);
                })))?;
                let written = answer
                    .await
                    .map_err(|_| StoreError::Backend("the SQLite writer is gone".into()))?;
                match written {
                    // Another process sequenced the same events first: the next pass goes on
                    // from its head.
                    Err(StoreError::Conflict(Conflict::StaleCheckpoint)) => Ok(0),
                    other => other,
                }
            }
            Engine::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(|e| {
                    error::db("begin transaction", crate::db::postgres::db_error(&e))
                })?;
                let done = async {
                    let mut exec = PgExec { conn: &mut tx };
                    if !crate::audit::lock_sequencer(Backend::Postgres, &mut exec, wait).await? {
                        return Ok(0);
                    }
                    match crate::audit::read_and_seal(
                        Backend::Postgres,
                        &mut exec,
                        PG_INTEGRATE_BATCH,
                    )
                    .await?
                    {
                        Some(sealed) => {
                            crate::audit::write_sealed(Backend::Postgres, &mut exec, &sealed).await
                        }
                        None => Ok(0),
                    }
                }
                .await;
                match done {
                    Ok(n) => {
                        tx.commit().await.map_err(|e| {
                            error::db("commit transaction", crate::db::postgres::db_error(&e))
                        })?;
                        Ok(n)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The sequencer until nothing is pending (or another replica holds it, without `wait`).
    pub(crate) async fn integrate_all(&self, wait: bool) -> Result<u64, StoreError> {
        let batch = match self.backend {
            Backend::Sqlite => SQLITE_INTEGRATE_BATCH,
            Backend::Postgres => PG_INTEGRATE_BATCH,
        } as u64;
        // Nothing pending (the usual case for a read of the log between the sequencer's
        // runs): no sequencer pass, no lock. A change committed before this read has its
        // events either still pending here or committed into the log by a sequencer.
        let pending = self
            .rows(
                "look for pending audit events",
                "SELECT 1 AS pending FROM audit_pending LIMIT 1",
                Vec::new(),
            )
            .await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let n = self.integrate_once(wait).await?;
            total += n;
            if n < batch {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use passbind_core::model::Conflict;

    fn consume(at: i64) -> Write {
        Write::ConsumeSecret {
            hash: vec![7; 32],
            at,
        }
    }

    fn revoke(id: &str) -> Write {
        Write::RevokeCredential {
            credential_id: id.to_owned(),
            at: 5,
        }
    }

    #[test]
    fn independent_writes_on_distinct_tables_become_one_statement() {
        let writes = vec![
            consume(1),
            Write::DeleteEbt {
                user_id: "usr_1".into(),
            },
            revoke("c1"),
        ];
        let one = OneStatement::of(&writes).unwrap().unwrap();
        assert_eq!(
            one.text,
            "WITH w0 AS (UPDATE secrets SET consumed_at = $1 WHERE hash = $2 AND consumed_at IS \
             NULL RETURNING 1), w1 AS (DELETE FROM ebts WHERE user_id = $3 RETURNING 1), w2 AS \
             (UPDATE credentials SET revoked_at = $4 WHERE credential_id = $5 AND revoked_at IS \
             NULL RETURNING 1) SELECT passbind_require_rows(ARRAY[(SELECT count(*) FROM w0), \
             (SELECT count(*) FROM w2)]::BIGINT[]) AS ok"
        );
        assert_eq!(one.args.len(), 5);
        // Only the guarded writes are counted, in write order: position 1 is the revocation.
        assert!(matches!(
            one.checked.as_slice(),
            [
                OnZero::Conflict(Conflict::NotFound),
                OnZero::Conflict(Conflict::NotFound)
            ]
        ));
    }

    #[test]
    fn two_writes_of_one_table_or_a_new_user_take_the_transaction() {
        assert!(OneStatement::of(&[revoke("c1"), revoke("c2")])
            .unwrap()
            .is_none());
        assert!(OneStatement::of(&[]).unwrap().is_none());
        let user = passbind_core::model::UserRecord {
            id: "usr_1".into(),
            external_user_id: "alice".into(),
            user_handle: vec![1; 16],
            created_at: 1,
            erased_at: None,
        };
        assert!(OneStatement::of(&[Write::InsertUser(user), consume(1)])
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_target_table_is_read_from_the_statement() {
        assert_eq!(
            target_table("INSERT INTO sessions (id) VALUES (?)"),
            "sessions"
        );
        assert_eq!(target_table("UPDATE credentials SET a = ?"), "credentials");
        assert_eq!(target_table("DELETE FROM ebts WHERE user_id = ?"), "ebts");
    }
}
