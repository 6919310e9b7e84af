//! SQLite through rusqlite: one writer thread that commits changes in groups, and a few
//! read-only connections used in place.
//!
//! # The writer
//! SQLite allows one writer at a time, so every change of this process goes to one thread that
//! owns the write connection (with its prepared statements cached). It takes the first change
//! waiting, then every other change already queued (up to [`MAX_GROUP`]), and commits them in
//! one transaction, each under its own savepoint: a change whose precondition fails is rolled
//! back to its savepoint and undoes nothing of the others. Every caller hears its result only
//! after the group's `COMMIT` returned, so success is never reported for a change that was not
//! committed; if the `COMMIT` fails, every change of the group fails. With WAL and
//! `synchronous = NORMAL` a commit does not wait for the disk (it survives a killed process;
//! a power cut can lose the last commits), which is what makes a group cheap.
//!
//! # Readers
//! Reads are point lookups of microseconds: they run on the calling task's thread on one of a
//! few connections (WAL readers see the last committed state and never wait for the writer),
//! without a hop to another thread. Long reads (exports, dashboard lists) are sent to the
//! blocking pool instead.

use super::{DbError, DbErrorKind, Exec, Kind, Row, Value};
use async_trait::async_trait;
use passbind_core::model::StoreError;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The most changes committed in one transaction.
pub(crate) const MAX_GROUP: usize = 256;

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null(_) => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn db_error(e: rusqlite::Error) -> DbError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let kind = match f.extended_code {
                2067 | 1555 => DbErrorKind::Unique,
                787 => DbErrorKind::ForeignKey,
                c if matches!(c & 0xff, 5 | 6) => DbErrorKind::Busy,
                _ => DbErrorKind::Other,
            };
            let message = match kind {
                DbErrorKind::Busy => format!(
                    "the database is busy or locked (SQLite code {}); the busy timeout passed",
                    f.extended_code
                ),
                _ => format!(
                    "database error {}: {}",
                    f.extended_code,
                    msg.as_deref().unwrap_or("")
                ),
            };
            DbError { kind, message }
        }
        // Conversion errors may quote a value: leave the detail out.
        rusqlite::Error::FromSqlConversionFailure(i, _, _) => {
            DbError::other(format!("cannot decode column {i}"))
        }
        other => DbError::other(other.to_string()),
    }
}

/// Statements on one connection. Used by the writer (inside its transaction) and the readers.
pub(crate) struct SqliteExec<'c> {
    // `&mut`: a connection may be sent to another thread, never shared between two.
    conn: &'c mut Connection,
}

impl<'c> SqliteExec<'c> {
    pub(crate) fn new(conn: &'c mut Connection) -> Self {
        Self { conn }
    }

    pub(crate) fn execute_now(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_error)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(args.iter()))
            .map_err(db_error)?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    pub(crate) fn query_now(&self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_error)?;
        let columns: Arc<[Box<str>]> = stmt
            .column_names()
            .into_iter()
            .map(Box::from)
            .collect::<Vec<_>>()
            .into();
        let n = columns.len();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db_error)? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(match r.get_ref(i).map_err(db_error)? {
                    ValueRef::Null => Value::Null(Kind::Int),
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Text(t) => Value::Text(Cow::Owned(
                        String::from_utf8(t.to_vec())
                            .map_err(|_| DbError::other(format!("column {i}: not UTF-8")))?,
                    )),
                    ValueRef::Blob(b) => Value::Blob(Cow::Owned(b.to_vec())),
                    ValueRef::Real(_) => {
                        return Err(DbError::other(format!("column {i}: unexpected REAL")))
                    }
                });
            }
            out.push(Row::new(Arc::clone(&columns), values));
        }
        Ok(out)
    }
}

#[async_trait]
impl Exec for SqliteExec<'_> {
    async fn execute(&mut self, sql: &str, args: Vec<Value<'_>>) -> Result<u64, DbError> {
        self.execute_now(sql, &args)
    }

    async fn query(&mut self, sql: &str, args: Vec<Value<'_>>) -> Result<Vec<Row>, DbError> {
        self.query_now(sql, &args)
    }
}

/// A change as the writer runs it: applies its statements inside the group's transaction.
pub(crate) type ApplyFn = Box<dyn FnOnce(&mut Connection) -> Result<(), StoreError> + Send>;
/// Where the writer answers a change, after the group's `COMMIT`.
pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Work for the writer thread.
pub(crate) enum Job {
    /// A change, committed in a group: `apply` runs it inside the group's transaction under a
    /// savepoint, `reply` hears its result after the `COMMIT`.
    Change { apply: ApplyFn, reply: Reply },
    /// Anything else that must run on the write connection (migrations, tooling), alone.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Connection settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `None`: a private in-memory database.
    pub(crate) path: Option<PathBuf>,
    pub(crate) readers: usize,
    pub(crate) busy_timeout: Duration,
}

/// The SQLite engine: the writer's queue and the read connections.
pub(crate) struct SqliteDb {
    jobs: Mutex<mpsc::Sender<Job>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    /// Dropped with the engine: stops the WAL checkpointer.
    _stop_checkpointer: Option<mpsc::Sender<()>>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("readers", &self.readers.len())
            .finish()
    }
}

fn open(path: Option<&Path>, busy: Duration) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = match path {
        Some(p) => Connection::open_with_flags(p, flags),
        None => Connection::open_in_memory_with_flags(flags),
    }
    .map_err(db_error)?;
    conn.busy_timeout(busy).map_err(db_error)?;
    conn.set_prepared_statement_cache_capacity(128);
    let mut pragmas = String::from("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;");
    if path.is_some() {
        pragmas.push_str(" PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = 67108864;");
    }
    conn.execute_batch(&pragmas).map_err(db_error)?;
    Ok(conn)
}

impl SqliteDb {
    /// Opens the database (creating the file), starts the writer thread.
    pub(crate) fn open(s: &Settings) -> Result<Self, DbError> {
        // The writer's connection is opened first: it switches a new file to WAL before any
        // other connection exists.
        let writer = Arc::new(Mutex::new(open(s.path.as_deref(), s.busy_timeout)?));
        let readers = match &s.path {
            // A private in-memory database lives in one connection: readers share it.
            None => vec![Arc::clone(&writer)],
            Some(p) => (0..s.readers.max(1))
                .map(|_| {
                    let c = open(Some(p), s.busy_timeout)?;
                    // A reader's page cache is emptied at every commit of the writer, so a large
                    // one only costs memory: 256 KiB each.
                    c.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -256")
                        .map_err(db_error)?;
                    Ok(Arc::new(Mutex::new(c)))
                })
                .collect::<Result<Vec<_>, DbError>>()?,
        };
        let stop_checkpointer = match &s.path {
            None => None,
            Some(p) => {
                // The writer never checkpoints the WAL itself (a checkpoint writes pages back
                // and syncs the file: milliseconds in which no change commits); a thread of its
                // own does, without blocking readers or the writer.
                writer
                    .lock()
                    .map_err(|_| DbError::other("the write connection was poisoned"))?
                    .execute_batch("PRAGMA wal_autocheckpoint = 0")
                    .map_err(db_error)?;
                let conn = open(Some(p), s.busy_timeout)?;
                let (stop, stopped) = mpsc::channel::<()>();
                std::thread::Builder::new()
                    .name("passbind-sqlite-checkpoint".into())
                    .spawn(move || checkpoint_loop(&conn, &stopped))
                    .map_err(|e| {
                        DbError::other(format!("cannot start the SQLite checkpointer: {e}"))
                    })?;
                Some(stop)
            }
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("passbind-sqlite-writer".into())
            .spawn(move || writer_loop(&writer, &rx))
            .map_err(|e| DbError::other(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(tx),
            readers,
            next_reader: AtomicUsize::new(0),
            _stop_checkpointer: stop_checkpointer,
        })
    }

    pub(crate) fn send(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| StoreError::Backend("the SQLite writer is gone".into()))?;
        jobs.send(job)
            .map_err(|_| StoreError::Backend("the SQLite writer is gone".into()))
    }

    /// A read connection: a free one if there is one, else waits for one.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>, DbError> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(c) = self.readers[(start + i) % n].try_lock() {
                return Ok(c);
            }
        }
        self.readers[start % n]
            .lock()
            .map_err(|_| DbError::other("a read connection was poisoned"))
    }

    /// Runs a query on a read connection, on this thread.
    pub(crate) fn query(&self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let mut conn = self.reader()?;
        SqliteExec::new(&mut conn).query_now(sql, args)
    }
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies committed WAL frames into the database file every [`CHECKPOINT_EVERY`] (a passive
/// checkpoint: it waits for nobody and nobody waits for it), until the engine is dropped.
fn checkpoint_loop(conn: &Connection, stop: &mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %db_error(e).message, "SQLite WAL checkpoint failed");
        }
    }
}

/// The writer thread: runs until every sender is gone.
fn writer_loop(conn: &Mutex<Connection>, rx: &mpsc::Receiver<Job>) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let Ok(mut conn) = conn.lock() else { return };
        match job {
            Job::Run(f) => f(&mut conn),
            Job::Change { apply, reply } => {
                let mut group = vec![(apply, reply)];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Job::Change { apply, reply }) => group.push((apply, reply)),
                        Ok(run) => {
                            next = Some(run);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, group);
            }
        }
    }
}

type Pending = (ApplyFn, Reply);

fn fail_all(replies: Vec<Reply>, message: &str) {
    for r in replies {
        let _ = r.send(Err(StoreError::Backend(message.to_owned())));
    }
}

/// One transaction for the whole group, a savepoint for each change.
fn commit_group(conn: &mut Connection, group: Vec<Pending>) {
    let mut replies = Vec::with_capacity(group.len());
    let mut results = Vec::with_capacity(group.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = format!("begin transaction: {}", db_error(e).message);
        fail_all(group.into_iter().map(|(_, r)| r).collect(), &message);
        return;
    }
    let mut broken = None;
    for (apply, reply) in group {
        replies.push(reply);
        if broken.is_some() {
            continue;
        }
        let result = conn
            .execute_batch("SAVEPOINT change")
            .map_err(|e| StoreError::Backend(format!("savepoint: {}", db_error(e).message)))
            .and_then(|()| apply(conn));
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk).
            broken = Some(match &result {
                Err(StoreError::Backend(m)) => m.clone(),
                _ => "the transaction was rolled back".to_owned(),
            });
            continue;
        }
        let undo = if result.is_err() {
            conn.execute_batch("ROLLBACK TO change; RELEASE change")
        } else {
            conn.execute_batch("RELEASE change")
        };
        if let Err(e) = undo {
            broken = Some(format!("savepoint: {}", db_error(e).message));
        }
        results.push(result);
    }
    if let Some(message) = broken {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        fail_all(replies, &message);
        return;
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let message = format!("commit transaction: {}", db_error(e).message);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        fail_all(replies, &message);
        return;
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}
