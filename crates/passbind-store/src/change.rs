//! How a change reaches the database: [`SqlStore::run_change`] on each engine, and the one
//! body that applies it ([`apply_change`]).

use crate::db::postgres::PgExec;
use crate::db::sqlite::{Job, SqliteExec};
use crate::db::Exec;
use crate::{error, Backend, Engine, SqlStore};
use passbind_core::model::{StoreError, Write};
use passbind_core::operators::OperatorWrite;

impl SqlStore {
    /// Runs one change (operator writes first, then the writes in order, then their audit
    /// events), all or nothing.
    ///
    /// SQLite: the change goes to the writer thread, which commits it in a group with the
    /// changes queued beside it, under its own savepoint; the answer comes after the group's
    /// `COMMIT`. PostgreSQL: one transaction on one pooled connection.
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
