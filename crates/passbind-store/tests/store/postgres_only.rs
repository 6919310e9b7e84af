//! PostgreSQL behaviour: schemas, several replicas (pools) on one database, connection errors.

use crate::fixtures::*;
use passbind_core::model::{Conflict, Write};
use passbind_core::ports::store::*;
use passbind_store::testing::{fresh_postgres, fresh_postgres_at, DATABASE_URL_ENV};
use passbind_store::{connect, ConnectOptions, SqlStore};
use std::sync::Arc;
use tokio::sync::Barrier;

fn server_url() -> String {
    std::env::var(DATABASE_URL_ENV)
        .unwrap_or_else(|_| passbind_store::testing::DEFAULT_DATABASE_URL.to_owned())
}

async fn current_schema(s: &SqlStore) -> String {
    s.query_raw("SELECT current_schema()::text").await.unwrap()[0]
        .text(0)
        .unwrap()
}

#[tokio::test]
async fn each_fresh_store_has_its_own_schema() {
    let a = fresh_postgres().await;
    let b = fresh_postgres().await;
    let (sa, sb) = (current_schema(&a).await, current_schema(&b).await);
    assert!(sa.starts_with("pbtest_"), "{sa}");
    assert_ne!(sa, sb);
    let u = user(1);
    a.commit(vec![Write::InsertUser(u.clone())]).await.unwrap();
    assert_eq!(a.user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(b.user(&u.id).await.unwrap(), None);
    // Both migrated independently: the same user can exist in b.
    b.commit(vec![Write::InsertUser(u)]).await.unwrap();
}

/// Two replicas (two pools) on one database: exactly one of the racers wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_race() {
    let a = fresh_postgres().await;
    let b = connect(
        &server_url(),
        ConnectOptions {
            max_connections: Some(8),
            search_path: Some(current_schema(&a).await),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    // A replica starting later runs the migrations again: nothing to do.
    b.migrate().await.unwrap();
    a.commit(vec![Write::InsertSecret(secret(1, "ses_1"))])
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.commit(vec![
                idv_event("simulator", "evt-shared"),
                Write::ConsumeSecret {
                    hash: vec![1; 32],
                    at: T0 + i,
                },
            ])
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            // Whichever guard a loser hit first: the event or the secret.
            Err(passbind_core::model::StoreError::Conflict(
                Conflict::DuplicateIdvEvent | Conflict::NotFound,
            )) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert!(b
        .secret(&[1; 32])
        .await
        .unwrap()
        .unwrap()
        .consumed_at
        .is_some());
}

#[tokio::test]
async fn bad_search_path_is_refused() {
    let msg = assert_backend(
        connect(
            &server_url(),
            ConnectOptions {
                search_path: Some("x\"; DROP SCHEMA public; --".into()),
                ..ConnectOptions::default()
            },
        )
        .await,
    );
    assert!(msg.contains("search_path"), "{msg}");
}

#[tokio::test]
#[should_panic(expected = "PASSBIND_TEST_DATABASE_URL")]
async fn unreachable_server_fails_naming_the_env_var() {
    // Port 1: nothing listens there.
    fresh_postgres_at("postgres://postgres:topsecret@127.0.0.1:1/postgres").await;
}

#[tokio::test]
async fn unreachable_server_message_hides_the_password() {
    let joined = tokio::spawn(fresh_postgres_at(
        "postgres://postgres:topsecret@127.0.0.1:1/postgres",
    ))
    .await;
    let panic = joined.err().unwrap().into_panic();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("topsecret"), "{msg}");
}
