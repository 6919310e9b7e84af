//! SQLite behaviour: the file, its pragmas, the busy timeout, the in-memory database, several
//! pools on one file.

use crate::fixtures::*;
use passbind_core::model::{Conflict, StoreError, Write};
use passbind_core::ports::store::*;
use passbind_store::testing::fresh_sqlite;
use passbind_store::{connect, ConnectOptions, SqlStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

fn url_of(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("passbind.db").display())
}

async fn pragma_text(s: &SqlStore, pragma: &str) -> String {
    s.query_raw(pragma).await.unwrap()[0].text(0).unwrap()
}

async fn pragma_int(s: &SqlStore, pragma: &str) -> i64 {
    s.query_raw(pragma).await.unwrap()[0].int(0).unwrap()
}

/// Another process's writer: a connection of its own that holds the write lock.
fn hold_write_lock(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.path().join("passbind.db")).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}

#[tokio::test]
async fn reopened_file_keeps_the_data() {
    let (s, dir) = fresh_sqlite().await;
    let u = user(1);
    s.commit(vec![
        Write::InsertUser(u.clone()),
        Write::InsertSession(session("ses_1", &u, T0)),
        Write::InsertSecret(secret(1, "ses_1")),
    ])
    .await
    .unwrap();
    s.close().await;
    drop(s);

    let reopened = connect(&url_of(&dir), ConnectOptions::default())
        .await
        .unwrap();
    reopened.migrate().await.unwrap();
    assert_eq!(reopened.user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        reopened.session("ses_1").await.unwrap(),
        Some(session("ses_1", &u, T0))
    );
    assert_eq!(
        reopened.secret(&[1; 32]).await.unwrap(),
        Some(secret(1, "ses_1"))
    );
}

#[tokio::test]
async fn creates_a_missing_file_with_the_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    assert!(!path.exists());
    // The `sqlite:PATH` form works as well as `sqlite://PATH`.
    let s = connect(
        &format!("sqlite:{}", path.display()),
        ConnectOptions {
            busy_timeout: Duration::from_millis(1234),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(path.exists());
    assert_eq!(s.backend(), "sqlite");
    // Nothing applied yet: every migration is pending.
    assert_eq!(
        s.pending_migrations().await.unwrap(),
        vec![1, 2, 3, 4, 5, 6]
    );
    s.migrate().await.unwrap();
    assert!(s.pending_migrations().await.unwrap().is_empty());
    assert_eq!(pragma_text(&s, "PRAGMA journal_mode").await, "wal");
    assert_eq!(pragma_int(&s, "PRAGMA foreign_keys").await, 1);
    assert_eq!(pragma_int(&s, "PRAGMA synchronous").await, 1); // NORMAL
    assert_eq!(pragma_int(&s, "PRAGMA busy_timeout").await, 1234);
}

#[tokio::test]
async fn a_writer_waits_for_the_lock_then_fails_as_backend_error() {
    let (s, dir) = fresh_sqlite().await;
    let impatient = connect(
        &url_of(&dir),
        ConnectOptions {
            busy_timeout: Duration::from_millis(300),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();

    // Another writer holds the write lock.
    let held = hold_write_lock(&dir);
    let started = Instant::now();
    let result = impatient
        .commit(vec![Write::InsertApiKey(api_key("key_1", T0))])
        .await;
    let msg = assert_backend(result);
    assert!(msg.contains("busy"), "{msg}");
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");

    // Once the lock is released, the same change goes through.
    held.execute_batch("ROLLBACK").unwrap();
    impatient
        .commit(vec![Write::InsertApiKey(api_key("key_1", T0))])
        .await
        .unwrap();
    assert!(s.api_key("key_1").await.unwrap().is_some());
}

#[tokio::test]
async fn a_writer_waits_for_a_short_lock_and_succeeds() {
    let (s, dir) = fresh_sqlite().await;
    let held = hold_write_lock(&dir);
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            s.commit(vec![Write::InsertApiKey(api_key("key_1", T0))])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.execute_batch("COMMIT").unwrap();
    writer.await.unwrap().unwrap();
    assert!(s.api_key("key_1").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_database() {
    let s = connect("sqlite::memory:", ConnectOptions::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    let u = user(1);
    s.commit(vec![Write::InsertUser(u.clone())]).await.unwrap();
    assert_eq!(s.user(&u.id).await.unwrap(), Some(u));
    // Concurrent writers share the single connection; one consumes the secret.
    s.commit(vec![Write::InsertSecret(secret(1, "ses_1"))])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.commit(vec![Write::ConsumeSecret {
                hash: vec![1; 32],
                at: T0 + i,
            }])
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(Conflict::NotFound)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// Two pools on one file, as two processes would have: exactly one of the racers wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_on_one_file_race() {
    let (a, dir) = fresh_sqlite().await;
    let b = connect(&url_of(&dir), ConnectOptions::default())
        .await
        .unwrap();
    let u = user(1);
    let v1 = session("ses_1", &u, T0);
    a.commit(vec![
        Write::InsertUser(u.clone()),
        Write::InsertSession(v1.clone()),
    ])
    .await
    .unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = Arc::clone(&barrier);
        let record = passbind_core::model::SessionRecord {
            version: 2,
            updated_at: T0 + i,
            ..v1.clone()
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.commit(vec![
                idv_event("simulator", &format!("evt-{i}")),
                Write::UpdateSession {
                    record,
                    expected_version: 1,
                },
            ])
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            other => assert_conflict(other, Conflict::SessionVersion),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(b.session("ses_1").await.unwrap().unwrap().version, 2);
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_quoting_them() {
    for url in ["mysql://root:hunter2@localhost/db", "hunter2", ""] {
        let msg = assert_backend(connect(url, ConnectOptions::default()).await);
        assert!(!msg.contains("hunter2"), "{msg}");
    }
    assert_backend(connect("sqlite://", ConnectOptions::default()).await);
}

/// When a group cannot commit (here another process holds the lock past the busy timeout),
/// every change of it fails, and none is stored: no caller hears success for a change that
/// was not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_cannot_commit_fails_every_change() {
    let (s, dir) = fresh_sqlite().await;
    let impatient = connect(
        &url_of(&dir),
        ConnectOptions {
            busy_timeout: Duration::from_millis(200),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let held = hold_write_lock(&dir);
    let results = futures::future::join_all((0..16u8).map(|i| {
        let impatient = impatient.clone();
        async move {
            impatient
                .commit(vec![Write::InsertSecret(secret(i, "ses_1"))])
                .await
        }
    }))
    .await;
    for r in results {
        assert_backend(r);
    }
    held.execute_batch("ROLLBACK").unwrap();
    for i in 0..16u8 {
        assert_eq!(s.secret(&[i; 32]).await.unwrap(), None);
    }
}

/// The writer never checkpoints the WAL itself; the background checkpointer copies committed
/// pages into the database file soon after (else the file would never grow and the WAL would
/// grow without end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_in_the_background() {
    let (s, dir) = fresh_sqlite().await;
    let file = dir.path().join("passbind.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    // Let the checkpointer copy the migrations first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = size();
    for i in 0..200u32 {
        let mut key = api_key(&format!("key_{i}"), T0);
        key.name = "x".repeat(500);
        s.commit(vec![Write::InsertApiKey(key)]).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while size() <= before {
        assert!(
            Instant::now() < deadline,
            "nothing was checkpointed into the file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
