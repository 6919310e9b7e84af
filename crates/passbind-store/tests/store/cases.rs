//! The test bodies, each written once for any backend (see `on_both_backends!`).

use crate::fixtures::*;
use passbind_core::model::{Conflict, SessionRecord, StoreError, Write};
use passbind_core::ports::store::*;
use passbind_proto::session::{Flow, IdvFailureReason, SessionState};
use passbind_store::SqlStore;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Barrier;

async fn commit(s: &SqlStore, writes: Vec<Write>) {
    s.commit(writes).await.expect("commit");
}

async fn with_user(s: &SqlStore, n: u32) -> passbind_core::model::UserRecord {
    let u = user(n);
    commit(s, vec![Write::InsertUser(u.clone())]).await;
    u
}

/// Raw SQL without parameters (the same text runs on both backends).
async fn raw(s: &SqlStore, sql: &str) {
    s.execute_raw(sql).await.expect(sql);
}

// ---------------------------------------------------------------------------------------------
// basics

pub async fn ping_answers(s: SqlStore) {
    s.ping().await.unwrap();
}

pub async fn empty_commit_is_a_no_op(s: SqlStore) {
    s.commit(Vec::new()).await.unwrap();
}

/// A migrated store lacks none; one whose record of a migration is gone lacks exactly that one.
pub async fn pending_migrations_are_reported(s: SqlStore) {
    assert_eq!(s.pending_migrations().await.unwrap(), Vec::<i64>::new());
    raw(&s, "DELETE FROM _sqlx_migrations WHERE version = 6").await;
    assert_eq!(s.pending_migrations().await.unwrap(), vec![6]);
}

pub async fn migrations_are_idempotent(s: SqlStore) {
    let u = with_user(&s, 1).await;
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    assert_eq!(s.user(&u.id).await.unwrap(), Some(u));
}

// ---------------------------------------------------------------------------------------------
// users

pub async fn user_insert_and_lookups(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let other = with_user(&s, 2).await;
    assert_eq!(s.user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        s.user_by_external_id(&u.external_user_id).await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(s.user_by_handle(&u.user_handle).await.unwrap(), Some(u));
    assert_eq!(s.user(&other.id).await.unwrap(), Some(other));
    assert_eq!(s.user("usr_absent").await.unwrap(), None);
    assert_eq!(s.user_by_external_id("ext-absent").await.unwrap(), None);
    assert_eq!(s.user_by_handle(&handle(99)).await.unwrap(), None);
}

pub async fn insert_user_duplicate_external_id(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let mut again = user(2);
    again.external_user_id = u.external_user_id.clone();
    assert_conflict(
        s.commit(vec![Write::InsertUser(again.clone())]).await,
        Conflict::DuplicateUser,
    );
    assert_eq!(s.user(&again.id).await.unwrap(), None);
    assert_eq!(
        s.user_by_external_id(&u.external_user_id).await.unwrap(),
        Some(u)
    );
}

pub async fn insert_user_duplicate_id_or_handle(s: SqlStore) {
    let u = with_user(&s, 1).await;
    // Same id, new external id and handle.
    let mut same_id = user(2);
    same_id.id = u.id.clone();
    assert_conflict(
        s.commit(vec![Write::InsertUser(same_id)]).await,
        Conflict::DuplicateId,
    );
    // Same handle, new id and external id.
    let mut same_handle = user(3);
    same_handle.user_handle = u.user_handle.clone();
    assert_conflict(
        s.commit(vec![Write::InsertUser(same_handle.clone())]).await,
        Conflict::DuplicateId,
    );
    assert_eq!(s.user(&same_handle.id).await.unwrap(), None);
    assert_eq!(s.user(&u.id).await.unwrap(), Some(u));
}

pub async fn mark_user_erased(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![Write::MarkUserErased {
            user_id: u.id.clone(),
            at: T0 + 5,
        }],
    )
    .await;
    assert_eq!(
        s.user(&u.id).await.unwrap().unwrap().erased_at,
        Some(T0 + 5)
    );
    // Erasing again is no conflict and keeps the first time.
    commit(
        &s,
        vec![Write::MarkUserErased {
            user_id: u.id.clone(),
            at: T0 + 9,
        }],
    )
    .await;
    assert_eq!(
        s.user(&u.id).await.unwrap().unwrap().erased_at,
        Some(T0 + 5)
    );
}

pub async fn mark_absent_user_erased(s: SqlStore) {
    assert_conflict(
        s.commit(vec![Write::MarkUserErased {
            user_id: "usr_absent".into(),
            at: T0,
        }])
        .await,
        Conflict::NotFound,
    );
}

// ---------------------------------------------------------------------------------------------
// sessions

pub async fn session_insert_and_lookups(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let plain = session("ses_plain", &u, T0);
    let full = SessionRecord {
        flow: Flow::StepUp,
        state: SessionState::IdvFailed,
        version: 7,
        idv_failure: Some(IdvFailureReason::MissingBiometricToken),
        credential_id: Some("cred-x".into()),
        data: json!({ "amount": 12.5, "ok": true, "none": null, "s": "ünïcødé \"q\"" }),
        ..session_with_run("ses_full", &u, "simulator", "run-1")
    };
    commit(
        &s,
        vec![
            Write::InsertSession(plain.clone()),
            Write::InsertSession(full.clone()),
        ],
    )
    .await;
    assert_eq!(s.session("ses_plain").await.unwrap(), Some(plain));
    assert_eq!(s.session("ses_full").await.unwrap(), Some(full.clone()));
    assert_eq!(
        s.session_by_idv_run("simulator", "run-1").await.unwrap(),
        Some(full)
    );
    assert_eq!(s.session_by_idv_run("onfido", "run-1").await.unwrap(), None);
    assert_eq!(
        s.session_by_idv_run("simulator", "run-2").await.unwrap(),
        None
    );
    assert_eq!(s.session("ses_absent").await.unwrap(), None);
}

pub async fn insert_session_duplicate_id(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let first = session("ses_1", &u, T0);
    commit(&s, vec![Write::InsertSession(first.clone())]).await;
    let mut again = session("ses_1", &u, T0 + 1);
    again.state = SessionState::Completed;
    assert_conflict(
        s.commit(vec![Write::InsertSession(again)]).await,
        Conflict::DuplicateId,
    );
    assert_eq!(s.session("ses_1").await.unwrap(), Some(first));
}

pub async fn insert_session_duplicate_idv_run(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![Write::InsertSession(session_with_run(
            "ses_1",
            &u,
            "simulator",
            "run-1",
        ))],
    )
    .await;
    // Same run of another provider, and sessions without a run, are fine.
    commit(
        &s,
        vec![
            Write::InsertSession(session_with_run("ses_2", &u, "onfido", "run-1")),
            Write::InsertSession(session("ses_3", &u, T0)),
            Write::InsertSession(session("ses_4", &u, T0)),
        ],
    )
    .await;
    assert_conflict(
        s.commit(vec![Write::InsertSession(session_with_run(
            "ses_5",
            &u,
            "simulator",
            "run-1",
        ))])
        .await,
        Conflict::DuplicateId,
    );
    assert_eq!(s.session("ses_5").await.unwrap(), None);
}

pub async fn update_session(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v1 = session("ses_1", &u, T0);
    commit(&s, vec![Write::InsertSession(v1.clone())]).await;
    let v2 = SessionRecord {
        version: 2,
        state: SessionState::IdvPending,
        updated_at: T0 + 10,
        idv_provider: Some("simulator".into()),
        idv_run_id: Some("run-9".into()),
        data: json!({ "step": 2 }),
        ..v1.clone()
    };
    commit(
        &s,
        vec![Write::UpdateSession {
            record: v2.clone(),
            expected_version: 1,
        }],
    )
    .await;
    assert_eq!(s.session("ses_1").await.unwrap(), Some(v2.clone()));
    assert_eq!(
        s.session_by_idv_run("simulator", "run-9").await.unwrap(),
        Some(v2.clone())
    );
    let v3 = SessionRecord {
        version: 3,
        state: SessionState::IdvFailed,
        idv_failure: Some(IdvFailureReason::Declined),
        credential_id: Some("cred-1".into()),
        updated_at: T0 + 20,
        ..v2
    };
    commit(
        &s,
        vec![Write::UpdateSession {
            record: v3.clone(),
            expected_version: 2,
        }],
    )
    .await;
    assert_eq!(s.session("ses_1").await.unwrap(), Some(v3));
}

pub async fn update_session_stale_version(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v1 = session("ses_1", &u, T0);
    commit(&s, vec![Write::InsertSession(v1.clone())]).await;
    let v2 = SessionRecord {
        version: 2,
        state: SessionState::Cancelled,
        ..v1.clone()
    };
    commit(
        &s,
        vec![Write::UpdateSession {
            record: v2.clone(),
            expected_version: 1,
        }],
    )
    .await;
    // A second writer that also read version 1.
    let other = SessionRecord {
        version: 2,
        state: SessionState::Completed,
        ..v1
    };
    assert_conflict(
        s.commit(vec![Write::UpdateSession {
            record: other,
            expected_version: 1,
        }])
        .await,
        Conflict::SessionVersion,
    );
    assert_eq!(s.session("ses_1").await.unwrap(), Some(v2));
}

pub async fn update_absent_session(s: SqlStore) {
    let u = user(1);
    let mut rec = session("ses_absent", &u, T0);
    rec.version = 2;
    assert_conflict(
        s.commit(vec![Write::UpdateSession {
            record: rec,
            expected_version: 1,
        }])
        .await,
        Conflict::SessionVersion,
    );
    assert_eq!(s.session("ses_absent").await.unwrap(), None);
}

pub async fn update_session_bad_version_step(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v1 = session("ses_1", &u, T0);
    commit(&s, vec![Write::InsertSession(v1.clone())]).await;
    let skip = SessionRecord {
        version: 3,
        state: SessionState::Completed,
        ..v1.clone()
    };
    let msg = assert_backend(
        s.commit(vec![Write::UpdateSession {
            record: skip,
            expected_version: 1,
        }])
        .await,
    );
    assert!(msg.contains("expected_version + 1"), "{msg}");
    assert_eq!(s.session("ses_1").await.unwrap(), Some(v1));
}

pub async fn update_session_duplicate_idv_run(s: SqlStore) {
    // Not a documented precondition, but the unique (provider, run) index must hold, and its
    // violation (detected by SQLSTATE / SQLite extended code) is a conflict, not an error.
    let u = with_user(&s, 1).await;
    let taken = session_with_run("ses_1", &u, "simulator", "run-1");
    let v1 = session("ses_2", &u, T0);
    commit(
        &s,
        vec![
            Write::InsertSession(taken.clone()),
            Write::InsertSession(v1.clone()),
        ],
    )
    .await;
    let v2 = SessionRecord {
        version: 2,
        idv_provider: Some("simulator".into()),
        idv_run_id: Some("run-1".into()),
        ..v1.clone()
    };
    assert_conflict(
        s.commit(vec![Write::UpdateSession {
            record: v2,
            expected_version: 1,
        }])
        .await,
        Conflict::DuplicateId,
    );
    assert_eq!(s.session("ses_2").await.unwrap(), Some(v1));
    assert_eq!(
        s.session_by_idv_run("simulator", "run-1").await.unwrap(),
        Some(taken)
    );
}

pub async fn sessions_of_user_newest_first_limited(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let other = with_user(&s, 2).await;
    let mut writes = Vec::new();
    for i in 0..5 {
        writes.push(Write::InsertSession(session(
            &format!("ses_{i}"),
            &u,
            T0 + i64::from(i) * 1000,
        )));
    }
    writes.push(Write::InsertSession(session(
        "ses_other",
        &other,
        T0 + 99_000,
    )));
    commit(&s, writes).await;

    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.sessions_of_user(&u.id, 10).await.unwrap()),
        ["ses_4", "ses_3", "ses_2", "ses_1", "ses_0"]
    );
    assert_eq!(
        ids(s.sessions_of_user(&u.id, 2).await.unwrap()),
        ["ses_4", "ses_3"]
    );
    assert!(s.sessions_of_user(&u.id, 0).await.unwrap().is_empty());
    assert_eq!(
        ids(s.sessions_of_user(&other.id, 10).await.unwrap()),
        ["ses_other"]
    );
    assert!(s
        .sessions_of_user("usr_absent", 10)
        .await
        .unwrap()
        .is_empty());
    // Full records come back.
    assert_eq!(
        s.sessions_of_user(&u.id, 1).await.unwrap(),
        vec![session("ses_4", &u, T0 + 4000)]
    );
}

/// A session waiting for a verdict on `run`, last changed at `updated_at`.
fn pending(
    id: &str,
    u: &passbind_core::model::UserRecord,
    run: &str,
    updated_at: i64,
) -> SessionRecord {
    SessionRecord {
        updated_at,
        expires_at: updated_at + 600_000,
        ..session_with_run(id, u, "onfido", run)
    }
}

pub async fn sessions_awaiting_idv_filters_and_orders(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let now = T0 + 10_000;
    let before = T0 + 2_000;
    let mut writes = vec![
        Write::InsertSession(pending("ses_b", &u, "run-b", T0 + 1_000)),
        Write::InsertSession(pending("ses_a", &u, "run-a", T0 + 1_000)),
        Write::InsertSession(pending("ses_c", &u, "run-c", T0 + 500)),
        // Exactly at the age limit: included.
        Write::InsertSession(pending("ses_edge", &u, "run-edge", before)),
        // Too recent.
        Write::InsertSession(pending("ses_new", &u, "run-new", before + 1)),
        // Expired (expires_at == now counts as expired), and long expired.
        Write::InsertSession(SessionRecord {
            expires_at: now,
            ..pending("ses_expired_now", &u, "run-x1", T0)
        }),
        Write::InsertSession(SessionRecord {
            expires_at: T0 + 1,
            ..pending("ses_expired", &u, "run-x2", T0)
        }),
        // Waiting, but without a run (cannot happen through the flows; still not returned).
        Write::InsertSession(SessionRecord {
            idv_provider: None,
            idv_run_id: None,
            ..pending("ses_no_run", &u, "unused", T0)
        }),
    ];
    for (i, state) in [
        SessionState::Created,
        SessionState::CaptureFailed,
        SessionState::IdvPassed,
        SessionState::IdvFailed,
        SessionState::Completed,
        SessionState::Cancelled,
        SessionState::Expired,
    ]
    .into_iter()
    .enumerate()
    {
        writes.push(Write::InsertSession(SessionRecord {
            state,
            ..pending(&format!("ses_state_{i}"), &u, &format!("run-s{i}"), T0)
        }));
    }
    commit(&s, writes).await;

    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .sessions_awaiting_idv(now, before, None, 100)
            .await
            .unwrap()),
        ["ses_c", "ses_a", "ses_b", "ses_edge"]
    );
    assert_eq!(
        ids(s.sessions_awaiting_idv(now, before, None, 2).await.unwrap()),
        ["ses_c", "ses_a"]
    );
    assert!(s
        .sessions_awaiting_idv(now, before, None, 0)
        .await
        .unwrap()
        .is_empty());
    // Nothing is old enough before the oldest run started.
    assert!(s
        .sessions_awaiting_idv(now, T0 + 499, None, 100)
        .await
        .unwrap()
        .is_empty());
    // Full records come back.
    assert_eq!(
        s.sessions_awaiting_idv(now, before, None, 1).await.unwrap(),
        vec![pending("ses_c", &u, "run-c", T0 + 500)]
    );
    // A verdict takes the session off the list.
    let settled = SessionRecord {
        state: SessionState::IdvPassed,
        version: 2,
        ..pending("ses_a", &u, "run-a", T0 + 1_000)
    };
    commit(
        &s,
        vec![Write::UpdateSession {
            record: settled,
            expected_version: 1,
        }],
    )
    .await;
    assert_eq!(
        ids(s
            .sessions_awaiting_idv(now, before, None, 100)
            .await
            .unwrap()),
        ["ses_c", "ses_b", "ses_edge"]
    );
}

pub async fn sessions_awaiting_idv_pages_with_a_cursor(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let now = T0 + 10_000;
    // Ties on updated_at are broken by id.
    let layout = [
        ("ses_1", T0 + 100),
        ("ses_3", T0 + 200),
        ("ses_2", T0 + 200),
        ("ses_4", T0 + 200),
        ("ses_0", T0 + 300),
    ];
    commit(
        &s,
        layout
            .iter()
            .map(|(id, at)| Write::InsertSession(pending(id, &u, &format!("run-{id}"), *at)))
            .collect(),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<passbind_core::ports::SessionCursor> = None;
    let mut pages = 0;
    loop {
        let page = s
            .sessions_awaiting_idv(now, now, cursor.as_ref(), 2)
            .await
            .unwrap();
        pages += 1;
        let Some(last) = page.last() else { break };
        cursor = Some(passbind_core::ports::SessionCursor::of(last));
        seen.extend(page.iter().map(|r| r.id.clone()));
        if page.len() < 2 {
            break;
        }
    }
    assert_eq!(seen, ["ses_1", "ses_2", "ses_3", "ses_4", "ses_0"]);
    assert_eq!(pages, 3);
    // After the last one: nothing.
    let end = passbind_core::ports::SessionCursor {
        updated_at: T0 + 300,
        id: "ses_0".into(),
    };
    assert!(s
        .sessions_awaiting_idv(now, now, Some(&end), 10)
        .await
        .unwrap()
        .is_empty());
    // A cursor in the middle of a tie continues within it.
    let mid = passbind_core::ports::SessionCursor {
        updated_at: T0 + 200,
        id: "ses_2".into(),
    };
    assert_eq!(
        s.sessions_awaiting_idv(now, now, Some(&mid), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        ["ses_3", "ses_4", "ses_0"]
    );
}

// ---------------------------------------------------------------------------------------------
// biometric tokens

pub async fn ebt_insert_and_read(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let e = ebt(&u, u32::MAX);
    commit(&s, vec![Write::InsertEbt(e.clone())]).await;
    assert_eq!(s.ebt(&u.id).await.unwrap(), Some(e));
    assert_eq!(s.ebt("usr_absent").await.unwrap(), None);
}

pub async fn insert_ebt_duplicate(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let e = ebt(&u, 1);
    commit(&s, vec![Write::InsertEbt(e.clone())]).await;
    let mut again = ebt(&u, 2);
    again.ciphertext = vec![7; 10];
    assert_conflict(
        s.commit(vec![Write::InsertEbt(again)]).await,
        Conflict::DuplicateEbt,
    );
    assert_eq!(s.ebt(&u.id).await.unwrap(), Some(e));
}

pub async fn insert_ebt_for_absent_user(s: SqlStore) {
    // The foreign key to users refuses it (SQLSTATE 23503 / SQLite 787): NotFound.
    assert_conflict(
        s.commit(vec![Write::InsertEbt(ebt(&user(5), 1))]).await,
        Conflict::NotFound,
    );
    assert_eq!(s.ebt(&user(5).id).await.unwrap(), None);
}

pub async fn replace_ebt_key(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let e = ebt(&u, 1);
    commit(&s, vec![Write::InsertEbt(e.clone())]).await;
    commit(
        &s,
        vec![Write::ReplaceEbtKey {
            user_id: u.id.clone(),
            key_version: 2,
            wrapped_dek: vec![3; 60],
        }],
    )
    .await;
    let got = s.ebt(&u.id).await.unwrap().unwrap();
    assert_eq!(got.key_version, 2);
    assert_eq!(got.wrapped_dek, vec![3; 60]);
    assert_eq!(got.ciphertext, e.ciphertext);
    assert_eq!(got.created_at, e.created_at);
}

pub async fn replace_absent_ebt_key(s: SqlStore) {
    let u = with_user(&s, 1).await;
    assert_conflict(
        s.commit(vec![Write::ReplaceEbtKey {
            user_id: u.id.clone(),
            key_version: 2,
            wrapped_dek: vec![3; 60],
        }])
        .await,
        Conflict::NotFound,
    );
    assert_eq!(s.ebt(&u.id).await.unwrap(), None);
}

pub async fn delete_ebt(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(&s, vec![Write::InsertEbt(ebt(&u, 1))]).await;
    commit(
        &s,
        vec![Write::DeleteEbt {
            user_id: u.id.clone(),
        }],
    )
    .await;
    assert_eq!(s.ebt(&u.id).await.unwrap(), None);
    // Deleting what is not there is no conflict.
    commit(
        &s,
        vec![
            Write::DeleteEbt {
                user_id: u.id.clone(),
            },
            Write::DeleteEbt {
                user_id: "usr_absent".into(),
            },
        ],
    )
    .await;
    // And a new token can be stored after the shredding.
    commit(&s, vec![Write::InsertEbt(ebt(&u, 3))]).await;
    assert_eq!(s.ebt(&u.id).await.unwrap().unwrap().key_version, 3);
}

pub async fn ebts_not_under_key(s: SqlStore) {
    let mut writes = Vec::new();
    let mut expected = Vec::new();
    for (n, version) in [(3, 1), (1, 2), (2, 1), (4, 2), (5, 0)] {
        let u = user(n);
        writes.push(Write::InsertUser(u.clone()));
        let e = ebt(&u, version);
        if version != 2 {
            expected.push(e.clone());
        }
        writes.push(Write::InsertEbt(e));
    }
    commit(&s, writes).await;
    expected.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(s.ebts_not_under_key(2).await.unwrap(), expected);
    assert_eq!(s.ebts_not_under_key(0).await.unwrap().len(), 4);
    assert_eq!(s.ebts_not_under_key(7).await.unwrap().len(), 5);
}

// ---------------------------------------------------------------------------------------------
// credentials

pub async fn credential_insert_and_read(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let full = credential("cred-full", &u, T0);
    let bare = bare_credential("cred-bare", &u, T0 + 1);
    commit(
        &s,
        vec![
            Write::InsertCredential(full.clone()),
            Write::InsertCredential(bare.clone()),
        ],
    )
    .await;
    assert_eq!(s.credential("cred-full").await.unwrap(), Some(full));
    assert_eq!(s.credential("cred-bare").await.unwrap(), Some(bare));
    assert_eq!(s.credential("cred-absent").await.unwrap(), None);
}

pub async fn insert_credential_duplicate(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let other = with_user(&s, 2).await;
    let c = credential("cred-1", &u, T0);
    commit(&s, vec![Write::InsertCredential(c.clone())]).await;
    // The same id for another user.
    assert_conflict(
        s.commit(vec![Write::InsertCredential(credential(
            "cred-1", &other, T0,
        ))])
        .await,
        Conflict::DuplicateCredential,
    );
    assert_eq!(s.credential("cred-1").await.unwrap(), Some(c));
    assert!(s.credentials_of_user(&other.id).await.unwrap().is_empty());
}

pub async fn insert_credential_for_absent_user(s: SqlStore) {
    assert_conflict(
        s.commit(vec![Write::InsertCredential(credential(
            "cred-1",
            &user(9),
            T0,
        ))])
        .await,
        Conflict::NotFound,
    );
    assert_eq!(s.credential("cred-1").await.unwrap(), None);
}

pub async fn credentials_of_user_oldest_first(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let other = with_user(&s, 2).await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-c", &u, T0 + 30)),
            Write::InsertCredential(credential("cred-a", &u, T0 + 10)),
            Write::InsertCredential(credential("cred-b", &u, T0 + 20)),
            Write::InsertCredential(credential("cred-o", &other, T0 + 5)),
            Write::RevokeCredential {
                credential_id: "cred-a".into(),
                at: T0 + 40,
            },
        ],
    )
    .await;
    let got = s.credentials_of_user(&u.id).await.unwrap();
    let ids: Vec<_> = got.iter().map(|c| c.credential_id.as_str()).collect();
    // Revoked ones included, oldest first.
    assert_eq!(ids, ["cred-a", "cred-b", "cred-c"]);
    assert_eq!(got[0].revoked_at, Some(T0 + 40));
    assert_eq!(got[1], credential("cred-b", &u, T0 + 20));
    assert!(s
        .credentials_of_user("usr_absent")
        .await
        .unwrap()
        .is_empty());
}

pub async fn update_credential_use(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let c = credential("cred-1", &u, T0);
    commit(&s, vec![Write::InsertCredential(c.clone())]).await;
    commit(
        &s,
        vec![Write::UpdateCredentialUse {
            credential_id: "cred-1".into(),
            sign_count: 42,
            backed_up: true,
            last_used_at: T0 + 77,
            require_advance: false,
        }],
    )
    .await;
    let got = s.credential("cred-1").await.unwrap().unwrap();
    assert_eq!(
        got,
        passbind_core::model::CredentialRecord {
            sign_count: 42,
            backed_up: true,
            last_used_at: Some(T0 + 77),
            ..c
        }
    );
}

pub async fn update_credential_use_absent_or_revoked(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::RevokeCredential {
                credential_id: "cred-1".into(),
                at: T0 + 1,
            },
        ],
    )
    .await;
    for id in ["cred-1", "cred-absent"] {
        assert_conflict(
            s.commit(vec![Write::UpdateCredentialUse {
                credential_id: id.into(),
                sign_count: 5,
                backed_up: true,
                last_used_at: T0 + 2,
                require_advance: false,
            }])
            .await,
            Conflict::NotFound,
        );
    }
    let got = s.credential("cred-1").await.unwrap().unwrap();
    assert_eq!(got.sign_count, 0);
    assert_eq!(got.last_used_at, None);
}

pub async fn revoke_credential(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::InsertCredential(credential("cred-2", &u, T0)),
        ],
    )
    .await;
    commit(
        &s,
        vec![Write::RevokeCredential {
            credential_id: "cred-1".into(),
            at: T0 + 3,
        }],
    )
    .await;
    assert_eq!(
        s.credential("cred-1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 3)
    );
    assert_eq!(
        s.credential("cred-2").await.unwrap().unwrap().revoked_at,
        None
    );
}

pub async fn revoke_credential_absent_or_revoked(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::RevokeCredential {
                credential_id: "cred-1".into(),
                at: T0 + 3,
            },
        ],
    )
    .await;
    for id in ["cred-1", "cred-absent"] {
        assert_conflict(
            s.commit(vec![Write::RevokeCredential {
                credential_id: id.into(),
                at: T0 + 9,
            }])
            .await,
            Conflict::NotFound,
        );
    }
    // The first revocation time stays.
    assert_eq!(
        s.credential("cred-1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 3)
    );
}

pub async fn revoke_user_credentials_keep(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let other = with_user(&s, 2).await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::InsertCredential(credential("cred-2", &u, T0 + 1)),
            Write::InsertCredential(credential("cred-3", &u, T0 + 2)),
            Write::InsertCredential(credential("cred-o", &other, T0)),
            Write::RevokeCredential {
                credential_id: "cred-3".into(),
                at: T0 + 5,
            },
        ],
    )
    .await;
    commit(
        &s,
        vec![Write::RevokeUserCredentials {
            user_id: u.id.clone(),
            keep: Some("cred-2".into()),
            at: T0 + 10,
        }],
    )
    .await;
    let revoked = |id: &'static str| {
        let s = s.clone();
        async move { s.credential(id).await.unwrap().unwrap().revoked_at }
    };
    assert_eq!(revoked("cred-1").await, Some(T0 + 10));
    assert_eq!(revoked("cred-2").await, None);
    // Already revoked: keeps its time.
    assert_eq!(revoked("cred-3").await, Some(T0 + 5));
    assert_eq!(revoked("cred-o").await, None);
}

pub async fn revoke_user_credentials_all(s: SqlStore) {
    let u = with_user(&s, 1).await;
    // No credential at all: no conflict.
    commit(
        &s,
        vec![Write::RevokeUserCredentials {
            user_id: u.id.clone(),
            keep: None,
            at: T0,
        }],
    )
    .await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::InsertCredential(credential("cred-2", &u, T0 + 1)),
        ],
    )
    .await;
    commit(
        &s,
        vec![Write::RevokeUserCredentials {
            user_id: u.id.clone(),
            keep: None,
            at: T0 + 10,
        }],
    )
    .await;
    let all = s.credentials_of_user(&u.id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|c| c.revoked_at == Some(T0 + 10)));
    // Again: nothing active left, still no conflict.
    commit(
        &s,
        vec![Write::RevokeUserCredentials {
            user_id: u.id.clone(),
            keep: Some("cred-1".into()),
            at: T0 + 20,
        }],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// identity-verification events

pub async fn record_idv_event(s: SqlStore) {
    commit(&s, vec![idv_event("simulator", "evt-1")]).await;
    // The same key from another provider, and another key, are new events.
    commit(
        &s,
        vec![
            idv_event("onfido", "evt-1"),
            idv_event("simulator", "evt-2"),
        ],
    )
    .await;
}

pub async fn record_idv_event_duplicate(s: SqlStore) {
    commit(&s, vec![idv_event("simulator", "evt-1")]).await;
    assert_conflict(
        s.commit(vec![idv_event("simulator", "evt-1")]).await,
        Conflict::DuplicateIdvEvent,
    );
    // Twice in one change: the second one conflicts, and the first is rolled back with it.
    assert_conflict(
        s.commit(vec![
            idv_event("simulator", "evt-3"),
            idv_event("simulator", "evt-3"),
        ])
        .await,
        Conflict::DuplicateIdvEvent,
    );
    commit(&s, vec![idv_event("simulator", "evt-3")]).await;
}

// ---------------------------------------------------------------------------------------------
// API keys

pub async fn api_key_insert_read_list(s: SqlStore) {
    assert!(s.api_keys().await.unwrap().is_empty());
    let b = api_key("key_b", T0 + 2);
    let a = api_key("key_a", T0 + 2);
    let c = passbind_core::model::ApiKeyRecord {
        scopes: Vec::new(),
        ..api_key("key_c", T0 + 1)
    };
    commit(
        &s,
        vec![
            Write::InsertApiKey(b.clone()),
            Write::InsertApiKey(a.clone()),
            Write::InsertApiKey(c.clone()),
        ],
    )
    .await;
    assert_eq!(s.api_key("key_a").await.unwrap(), Some(a.clone()));
    assert_eq!(s.api_key("key_c").await.unwrap(), Some(c.clone()));
    assert_eq!(s.api_key("key_absent").await.unwrap(), None);
    // Oldest first, then by id.
    assert_eq!(s.api_keys().await.unwrap(), vec![c, a, b]);
}

pub async fn insert_api_key_duplicate(s: SqlStore) {
    let k = api_key("key_1", T0);
    commit(&s, vec![Write::InsertApiKey(k.clone())]).await;
    let mut again = api_key("key_1", T0 + 1);
    again.name = "other".into();
    assert_conflict(
        s.commit(vec![Write::InsertApiKey(again)]).await,
        Conflict::DuplicateId,
    );
    assert_eq!(s.api_keys().await.unwrap(), vec![k]);
}

pub async fn revoke_api_key(s: SqlStore) {
    commit(&s, vec![Write::InsertApiKey(api_key("key_1", T0))]).await;
    commit(
        &s,
        vec![Write::RevokeApiKey {
            id: "key_1".into(),
            at: T0 + 4,
        }],
    )
    .await;
    assert_eq!(
        s.api_key("key_1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 4)
    );
}

pub async fn revoke_api_key_absent_or_revoked(s: SqlStore) {
    commit(
        &s,
        vec![
            Write::InsertApiKey(api_key("key_1", T0)),
            Write::RevokeApiKey {
                id: "key_1".into(),
                at: T0 + 4,
            },
        ],
    )
    .await;
    for id in ["key_1", "key_absent"] {
        assert_conflict(
            s.commit(vec![Write::RevokeApiKey {
                id: id.into(),
                at: T0 + 8,
            }])
            .await,
            Conflict::NotFound,
        );
    }
    assert_eq!(
        s.api_key("key_1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 4)
    );
}

// ---------------------------------------------------------------------------------------------
// secrets

pub async fn secret_insert_and_read(s: SqlStore) {
    let a = secret(1, "ses_1");
    let b = passbind_core::model::SecretRecord {
        kind: "continuation".into(),
        ..secret(2, "ses_1")
    };
    commit(
        &s,
        vec![
            Write::InsertSecret(a.clone()),
            Write::InsertSecret(b.clone()),
        ],
    )
    .await;
    assert_eq!(s.secret(&a.hash).await.unwrap(), Some(a));
    assert_eq!(s.secret(&b.hash).await.unwrap(), Some(b));
    assert_eq!(s.secret(&[3; 32]).await.unwrap(), None);
}

pub async fn insert_secret_duplicate(s: SqlStore) {
    let a = secret(1, "ses_1");
    commit(&s, vec![Write::InsertSecret(a.clone())]).await;
    assert_conflict(
        s.commit(vec![Write::InsertSecret(secret(1, "ses_2"))])
            .await,
        Conflict::DuplicateId,
    );
    assert_eq!(s.secret(&a.hash).await.unwrap(), Some(a));
}

pub async fn consume_secret(s: SqlStore) {
    let a = secret(1, "ses_1");
    commit(&s, vec![Write::InsertSecret(a.clone())]).await;
    commit(
        &s,
        vec![Write::ConsumeSecret {
            hash: a.hash.clone(),
            at: T0 + 6,
        }],
    )
    .await;
    assert_eq!(
        s.secret(&a.hash).await.unwrap().unwrap().consumed_at,
        Some(T0 + 6)
    );
}

pub async fn consume_secret_absent_or_consumed(s: SqlStore) {
    let a = secret(1, "ses_1");
    commit(
        &s,
        vec![
            Write::InsertSecret(a.clone()),
            Write::ConsumeSecret {
                hash: a.hash.clone(),
                at: T0 + 6,
            },
        ],
    )
    .await;
    for hash in [a.hash.clone(), vec![2; 32]] {
        assert_conflict(
            s.commit(vec![Write::ConsumeSecret { hash, at: T0 + 9 }])
                .await,
            Conflict::NotFound,
        );
    }
    assert_eq!(
        s.secret(&a.hash).await.unwrap().unwrap().consumed_at,
        Some(T0 + 6)
    );
}

// ---------------------------------------------------------------------------------------------
// atomicity: a change whose last write conflicts leaves nothing behind

/// Writes touching every table, applied before the conflicting one.
fn everything(n: u32) -> Vec<Write> {
    let u = user(n);
    vec![
        Write::InsertUser(u.clone()),
        Write::InsertSession(session_with_run("ses_new", &u, "simulator", "run-new")),
        Write::InsertEbt(ebt(&u, 1)),
        Write::InsertCredential(credential("cred-new", &u, T0)),
        idv_event("simulator", "evt-new"),
        Write::InsertApiKey(api_key("key_new", T0)),
        Write::InsertSecret(secret(0xEE, "ses_new")),
    ]
}

async fn assert_nothing_of_everything(s: &SqlStore, n: u32) {
    let u = user(n);
    assert_eq!(s.user(&u.id).await.unwrap(), None);
    assert_eq!(s.session("ses_new").await.unwrap(), None);
    assert_eq!(s.ebt(&u.id).await.unwrap(), None);
    assert_eq!(s.credential("cred-new").await.unwrap(), None);
    assert_eq!(s.api_key("key_new").await.unwrap(), None);
    assert_eq!(s.secret(&[0xEE; 32]).await.unwrap(), None);
    // The event was not recorded either: recording it now succeeds.
    commit(s, vec![idv_event("simulator", "evt-new")]).await;
}

pub async fn rollback_on_last_write_not_found(s: SqlStore) {
    let existing = with_user(&s, 1).await;
    let mut writes = everything(2);
    writes.push(Write::MarkUserErased {
        user_id: existing.id.clone(),
        at: T0,
    });
    writes.push(Write::ConsumeSecret {
        hash: vec![0x11; 32],
        at: T0,
    });
    assert_conflict(s.commit(writes).await, Conflict::NotFound);
    assert_nothing_of_everything(&s, 2).await;
    assert_eq!(s.user(&existing.id).await.unwrap(), Some(existing));
}

pub async fn rollback_on_last_write_duplicate(s: SqlStore) {
    let existing = with_user(&s, 1).await;
    let mut writes = everything(2);
    let mut dup = user(3);
    dup.external_user_id = existing.external_user_id.clone();
    writes.push(Write::InsertUser(dup));
    assert_conflict(s.commit(writes).await, Conflict::DuplicateUser);
    assert_nothing_of_everything(&s, 2).await;
}

pub async fn rollback_on_stale_session_version(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v1 = session("ses_1", &u, T0);
    let other = session("ses_2", &u, T0);
    commit(
        &s,
        vec![
            Write::InsertSession(v1.clone()),
            Write::InsertSession(other.clone()),
            Write::InsertSecret(secret(5, "ses_1")),
        ],
    )
    .await;
    let mut writes = everything(2);
    writes.extend([
        // Applied, then undone:
        Write::UpdateSession {
            record: SessionRecord {
                version: 2,
                state: SessionState::Completed,
                ..other.clone()
            },
            expected_version: 1,
        },
        Write::ConsumeSecret {
            hash: vec![5; 32],
            at: T0,
        },
        // Stale:
        Write::UpdateSession {
            record: SessionRecord {
                version: 5,
                ..v1.clone()
            },
            expected_version: 4,
        },
    ]);
    assert_conflict(s.commit(writes).await, Conflict::SessionVersion);
    assert_nothing_of_everything(&s, 2).await;
    assert_eq!(s.session("ses_2").await.unwrap(), Some(other));
    assert_eq!(s.session("ses_1").await.unwrap(), Some(v1));
    assert_eq!(s.secret(&[5; 32]).await.unwrap().unwrap().consumed_at, None);
}

pub async fn rollback_on_constraint_error(s: SqlStore) {
    // The last write fails inside the database (a foreign-key violation), not on a guard: on
    // PostgreSQL this aborts the transaction, which must still be rolled back cleanly.
    let mut writes = everything(2);
    writes.push(Write::InsertEbt(ebt(&user(77), 1)));
    assert_conflict(s.commit(writes).await, Conflict::NotFound);
    assert_nothing_of_everything(&s, 2).await;
}

pub async fn store_usable_after_conflict(s: SqlStore) {
    // Many failed changes in a row must not leak connections stuck in a transaction.
    let u = with_user(&s, 1).await;
    for i in 0..40 {
        assert_conflict(
            s.commit(vec![
                Write::InsertSecret(secret(100, &format!("ses_{i}"))),
                Write::InsertUser(u.clone()),
            ])
            .await,
            Conflict::DuplicateUser,
        );
        assert_conflict(
            s.commit(vec![
                Write::InsertSecret(secret(101, "ses_x")),
                Write::InsertEbt(ebt(&user(50), 1)),
            ])
            .await,
            Conflict::NotFound,
        );
    }
    commit(&s, vec![Write::InsertSecret(secret(100, "ses_ok"))]).await;
    assert_eq!(
        s.secret(&[100; 32]).await.unwrap().unwrap().session_id,
        "ses_ok"
    );
    assert_eq!(s.secret(&[101; 32]).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// races: many concurrent writers, exactly one wins

const RACERS: usize = 16;

/// Runs `RACERS` commits at once (released together by a barrier); returns the index of each
/// winner and the conflicts of the losers.
async fn race(
    s: &SqlStore,
    change: impl Fn(usize) -> Vec<Write>,
) -> (Vec<usize>, Vec<Result<(), StoreError>>) {
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let s = s.clone();
        let barrier = Arc::clone(&barrier);
        let writes = change(i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (i, s.commit(writes).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(()) => winners.push(i),
            Err(e) => losers.push(Err(e)),
        }
    }
    (winners, losers)
}

fn assert_all(losers: Vec<Result<(), StoreError>>, expected: Conflict) {
    assert_eq!(losers.len(), RACERS - 1);
    for l in losers {
        assert_conflict(l, expected);
    }
}

pub async fn race_update_session(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v1 = session("ses_1", &u, T0);
    commit(&s, vec![Write::InsertSession(v1.clone())]).await;
    let (winners, losers) = race(&s, |i| {
        vec![
            // Each racer also writes something of its own, which must vanish if it loses.
            Write::InsertSecret(secret(u8::try_from(i).unwrap(), "ses_1")),
            Write::UpdateSession {
                record: SessionRecord {
                    version: 2,
                    updated_at: T0 + i64::try_from(i).unwrap(),
                    data: json!({ "winner": i }),
                    ..v1.clone()
                },
                expected_version: 1,
            },
        ]
    })
    .await;
    assert_eq!(winners.len(), 1, "exactly one update wins");
    assert_all(losers, Conflict::SessionVersion);
    let w = winners[0];
    let stored = s.session("ses_1").await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.data, json!({ "winner": w }));
    for i in 0..RACERS {
        let present = s
            .secret(&[u8::try_from(i).unwrap(); 32])
            .await
            .unwrap()
            .is_some();
        assert_eq!(present, i == w, "secret of racer {i}");
    }
}

pub async fn race_record_idv_event(s: SqlStore) {
    let (winners, losers) = race(&s, |_| vec![idv_event("simulator", "evt-race")]).await;
    assert_eq!(winners.len(), 1, "exactly one delivery is recorded");
    assert_all(losers, Conflict::DuplicateIdvEvent);
}

pub async fn race_consume_secret(s: SqlStore) {
    let a = secret(1, "ses_1");
    commit(&s, vec![Write::InsertSecret(a.clone())]).await;
    let (winners, losers) = race(&s, |i| {
        vec![Write::ConsumeSecret {
            hash: a.hash.clone(),
            at: T0 + i64::try_from(i).unwrap(),
        }]
    })
    .await;
    assert_eq!(winners.len(), 1, "a secret works once");
    assert_all(losers, Conflict::NotFound);
    assert_eq!(
        s.secret(&a.hash).await.unwrap().unwrap().consumed_at,
        Some(T0 + i64::try_from(winners[0]).unwrap())
    );
}

pub async fn race_insert_user(s: SqlStore) {
    // Sixteen first registrations of one new user: one creates it.
    let (winners, losers) = race(&s, |i| {
        let n = u32::try_from(i).unwrap() + 100;
        let u = passbind_core::model::UserRecord {
            external_user_id: "ext-shared".into(),
            ..user(n)
        };
        vec![
            Write::InsertUser(u.clone()),
            Write::InsertSession(session(&format!("ses_{n}"), &u, T0)),
        ]
    })
    .await;
    assert_eq!(winners.len(), 1);
    assert_all(losers, Conflict::DuplicateUser);
    let stored = s.user_by_external_id("ext-shared").await.unwrap().unwrap();
    let w = u32::try_from(winners[0]).unwrap() + 100;
    assert_eq!(stored.id, user(w).id);
    assert_eq!(s.sessions_of_user(&stored.id, 100).await.unwrap().len(), 1);
}

pub async fn race_revoke_credential(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![Write::InsertCredential(credential("cred-1", &u, T0))],
    )
    .await;
    let (winners, losers) = race(&s, |i| {
        vec![Write::RevokeCredential {
            credential_id: "cred-1".into(),
            at: T0 + i64::try_from(i).unwrap(),
        }]
    })
    .await;
    assert_eq!(winners.len(), 1);
    assert_all(losers, Conflict::NotFound);
}

// ---------------------------------------------------------------------------------------------
// corrupt rows become backend errors, never panics, and the message quotes no value

async fn corrupt_session(s: &SqlStore, set: &str, bad_value: &str) {
    let u = with_user(s, 1).await;
    commit(
        s,
        vec![Write::InsertSession(session_with_run(
            "ses_1",
            &u,
            "simulator",
            "run-1",
        ))],
    )
    .await;
    raw(s, &format!("UPDATE sessions SET {set} WHERE id = 'ses_1'")).await;
    for msg in [
        assert_backend(s.session("ses_1").await),
        assert_backend(s.session_by_idv_run("simulator", "run-1").await),
        assert_backend(s.sessions_of_user(&u.id, 10).await),
    ] {
        assert!(msg.contains("sessions."), "{msg}");
        assert!(
            !msg.contains(bad_value),
            "the message quotes the value: {msg}"
        );
    }
}

pub async fn corrupt_session_state(s: SqlStore) {
    corrupt_session(&s, "state = 'bogus_state'", "bogus_state").await;
}

pub async fn corrupt_session_flow(s: SqlStore) {
    corrupt_session(&s, "flow = 'bogus_flow'", "bogus_flow").await;
}

pub async fn corrupt_session_idv_failure(s: SqlStore) {
    corrupt_session(&s, "idv_failure = 'bogus_reason'", "bogus_reason").await;
}

pub async fn corrupt_session_data(s: SqlStore) {
    corrupt_session(&s, "data = '{not json secretvalue'", "secretvalue").await;
}

pub async fn corrupt_credential_transports(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![Write::InsertCredential(credential("cred-1", &u, T0))],
    )
    .await;
    raw(
        &s,
        "UPDATE credentials SET transports = '[1, 2]' WHERE credential_id = 'cred-1'",
    )
    .await;
    let msg = assert_backend(s.credential("cred-1").await);
    assert!(msg.contains("credentials.transports"), "{msg}");
    assert_backend(s.credentials_of_user(&u.id).await);
}

pub async fn corrupt_api_key_scopes(s: SqlStore) {
    commit(&s, vec![Write::InsertApiKey(api_key("key_1", T0))]).await;
    raw(&s, "UPDATE api_keys SET scopes = 'nope' WHERE id = 'key_1'").await;
    let msg = assert_backend(s.api_key("key_1").await);
    assert!(msg.contains("api_keys.scopes"), "{msg}");
    assert_backend(s.api_keys().await);
}

pub async fn failures_recorded_and_counted_since(s: SqlStore) {
    let f = |user: &str, kind: &str, at: i64| Write::RecordFailure {
        user_id: user.into(),
        kind: kind.into(),
        at,
    };
    commit(
        &s,
        vec![
            f("usr_a", "step_up_biometric", 300),
            f("usr_a", "step_up_biometric", 100),
            f("usr_a", "step_up_biometric", 100),
            f("usr_a", "other", 200),
            f("usr_b", "step_up_biometric", 250),
        ],
    )
    .await;
    assert_eq!(
        s.failures_since("usr_a", "step_up_biometric", 0)
            .await
            .unwrap(),
        vec![100, 100, 300]
    );
    assert_eq!(
        s.failures_since("usr_a", "step_up_biometric", 101)
            .await
            .unwrap(),
        vec![300]
    );
    assert_eq!(
        s.failures_since("usr_a", "step_up_biometric", 100)
            .await
            .unwrap(),
        vec![100, 100, 300]
    );
    assert_eq!(
        s.failures_since("usr_a", "other", 0).await.unwrap(),
        vec![200]
    );
    assert!(s
        .failures_since("usr_c", "step_up_biometric", 0)
        .await
        .unwrap()
        .is_empty());
}

pub async fn failures_roll_back_with_the_change(s: SqlStore) {
    let a = secret(1, "ses_1");
    commit(&s, vec![Write::InsertSecret(a.clone())]).await;
    assert_conflict(
        s.commit(vec![
            Write::RecordFailure {
                user_id: "usr_a".into(),
                kind: "step_up_biometric".into(),
                at: 5,
            },
            Write::InsertSecret(a),
        ])
        .await,
        Conflict::DuplicateId,
    );
    assert!(s
        .failures_since("usr_a", "step_up_biometric", 0)
        .await
        .unwrap()
        .is_empty());
}

// ---- audit log ---------------------------------------------------------------------------

fn audit(n: i64, session: Option<&str>, event_type: &str) -> Write {
    Write::AppendAudit(passbind_core::model::AuditDraft {
        time_ms: 1_000 + n,
        event_type: event_type.into(),
        outcome: "success".into(),
        session_id: session.map(str::to_owned),
        actor_kind: "system".into(),
        ..Default::default()
    })
}

pub async fn audit_appends_chain_and_read_back(s: SqlStore) {
    assert_eq!(s.audit_head().await.unwrap(), (0, "0".repeat(64)));
    // Several events in one change, and events riding on a change that conflicts.
    commit(
        &s,
        vec![
            audit(1, Some("ses_a"), "a.one"),
            audit(2, Some("ses_a"), "a.two"),
        ],
    )
    .await;
    commit(&s, vec![audit(3, Some("ses_b"), "b.one")]).await;
    let dup = secret(1, "ses_1");
    commit(&s, vec![Write::InsertSecret(dup.clone())]).await;
    assert_conflict(
        s.commit(vec![audit(4, None, "lost"), Write::InsertSecret(dup)])
            .await,
        Conflict::DuplicateId,
    );
    // Written with their changes, not yet in the log: pending, and the head has not moved.
    let (pending, oldest) = s.audit_pending().await.unwrap();
    assert_eq!(
        pending, 3,
        "the conflicting change's event was rolled back with it"
    );
    assert_eq!(oldest, Some(1_001));
    assert_eq!(s.audit_head().await.unwrap().0, 0);
    assert_eq!(s.integrate_audit(true).await.unwrap(), 3);
    assert_eq!(s.audit_pending().await.unwrap(), (0, None));
    assert_eq!(s.integrate_audit(false).await.unwrap(), 0);
    let (head, head_hash) = s.audit_head().await.unwrap();
    assert_eq!(head, 3);
    let q = passbind_core::model::AuditQuery {
        ascending: true,
        limit: 100,
        ..Default::default()
    };
    let all = s.audit_events(&q).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[2].hash, head_hash);
    assert_eq!(all[1].prev_hash, all[0].hash);
    assert!(all.iter().all(|e| e.hash_is_valid()));
    // Filters and keyset pagination.
    let by_session = s
        .audit_events(&passbind_core::model::AuditQuery {
            session_id: Some("ses_a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_session.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let by_type = s
        .audit_events(&passbind_core::model::AuditQuery {
            event_type: Some("b.one".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_type.len(), 1);
    let page = s
        .audit_events(&passbind_core::model::AuditQuery {
            before_seq: Some(3),
            since_ms: Some(1_002),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    let after = s
        .audit_events(&passbind_core::model::AuditQuery {
            after_seq: Some(1),
            until_ms: Some(1_002),
            ascending: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    let hashes = s.audit_hashes(2).await.unwrap();
    assert_eq!(hashes, vec![all[0].hash.clone(), all[1].hash.clone()]);
}

pub async fn audit_appends_race_without_gaps(s: SqlStore) {
    let s = Arc::new(s);
    let barrier = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let (s, barrier) = (s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.commit(vec![audit(i, None, "race"), audit(i, None, "race")])
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    s.integrate_audit(true).await.unwrap();
    let all = s
        .audit_events(&passbind_core::model::AuditQuery {
            ascending: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 32);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        if i > 0 {
            assert_eq!(e.prev_hash, all[i - 1].hash, "one chain, no fork");
        }
    }
}

pub async fn checkpoints_and_identity_proofs(s: SqlStore) {
    let signer = passbind_audit::CheckpointSigner::from_seed([9; 32]).unwrap();
    assert!(s.latest_audit_checkpoint().await.unwrap().is_none());
    let c1 = signer.sign(1, &[1; 32], 10);
    let c2 = signer.sign(3, &[2; 32], 20);
    commit(
        &s,
        vec![Write::InsertCheckpoint {
            checkpoint: c1.clone(),
            frontier: vec!["ef".repeat(32)],
            previous_tree_size: 0,
        }],
    )
    .await;
    commit(
        &s,
        vec![Write::InsertCheckpoint {
            checkpoint: c2.clone(),
            frontier: vec!["ab".repeat(32), "cd".repeat(32)],
            previous_tree_size: 1,
        }],
    )
    .await;
    // Signed from a stale read (the newest is 3 now, not 1), of a tree no larger, or earlier
    // than the newest: refused, nothing stored.
    for (checkpoint, previous) in [
        (signer.sign(5, &[7; 32], 30), 1),
        (signer.sign(3, &[7; 32], 30), 3),
        (signer.sign(2, &[7; 32], 30), 3),
        (signer.sign(5, &[7; 32], 19), 3),
    ] {
        assert_conflict(
            s.commit(vec![Write::InsertCheckpoint {
                checkpoint,
                frontier: vec![],
                previous_tree_size: previous,
            }])
            .await,
            Conflict::StaleCheckpoint,
        );
    }
    assert_eq!(s.audit_checkpoints().await.unwrap(), vec![c1, c2.clone()]);
    assert_eq!(
        s.latest_audit_checkpoint().await.unwrap(),
        Some((c2, vec!["ab".repeat(32), "cd".repeat(32)]))
    );

    let proof =
        |id: &str, session: &str, cred: Option<&str>| passbind_core::model::IdentityProofRecord {
            id: id.into(),
            session_id: session.into(),
            user_id: "usr_a".into(),
            credential_id: cred.map(str::to_owned),
            jws: format!("jws-{id}"),
            created_at: 5,
        };
    let (p1, p2, p3) = (
        proof("idp_1", "ses_a", None),
        proof("idp_2", "ses_a", Some("cred_a")),
        proof("idp_3", "ses_b", Some("cred_a")),
    );
    commit(
        &s,
        vec![
            Write::InsertIdentityProof(p1.clone()),
            Write::InsertIdentityProof(p2.clone()),
            Write::InsertIdentityProof(p3.clone()),
        ],
    )
    .await;
    assert_conflict(
        s.commit(vec![Write::InsertIdentityProof(p1.clone())]).await,
        Conflict::DuplicateId,
    );
    assert_eq!(
        s.identity_proofs_of_session("ses_a").await.unwrap(),
        vec![p1, p2.clone()]
    );
    assert_eq!(
        s.identity_proofs_of_credential("cred_a").await.unwrap(),
        vec![p2, p3]
    );
    assert!(s
        .identity_proofs_of_credential("none")
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// counters and checkpoints under concurrency

fn credential_use(id: &str, count: i64, require_advance: bool) -> Write {
    Write::UpdateCredentialUse {
        credential_id: id.into(),
        sign_count: count,
        backed_up: false,
        last_used_at: T0 + count,
        require_advance,
    }
}

/// The stored counter is the maximum, decided against the committed row: an older counter
/// committed after a newer one does not move it back, whatever order the racers commit in.
pub async fn counter_kept_at_maximum(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![Write::InsertCredential(credential("cred-1", &u, T0))],
    )
    .await;
    commit(&s, vec![credential_use("cred-1", 10, false)]).await;
    commit(&s, vec![credential_use("cred-1", 7, false)]).await;
    assert_eq!(
        s.credential("cred-1").await.unwrap().unwrap().sign_count,
        10
    );
    // Racers with counters 11..=26 at once: the stored counter ends at the largest.
    let (winners, losers) = race(&s, |i| {
        vec![credential_use(
            "cred-1",
            11 + i64::try_from(i).unwrap(),
            false,
        )]
    })
    .await;
    assert_eq!(winners.len(), RACERS, "{losers:?}");
    assert_eq!(
        s.credential("cred-1").await.unwrap().unwrap().sign_count,
        10 + i64::try_from(RACERS).unwrap()
    );
}

/// With `require_advance`, a counter not above the stored one is `CounterRegressed`, and the
/// change it belongs to is undone; a counterless authenticator (both zero) passes.
pub async fn counter_regression_refused_at_commit(s: SqlStore) {
    let u = with_user(&s, 1).await;
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::InsertCredential(credential("cred-0", &u, T0)),
        ],
    )
    .await;
    commit(&s, vec![credential_use("cred-0", 0, true)]).await;
    commit(&s, vec![credential_use("cred-1", 5, true)]).await;
    for count in [5, 4, 0] {
        assert_conflict(
            s.commit(vec![
                Write::InsertSecret(secret(1, "ses_x")),
                credential_use("cred-1", count, true),
            ])
            .await,
            Conflict::CounterRegressed,
        );
    }
    assert_eq!(s.secret(&[1; 32]).await.unwrap(), None, "rolled back");
    assert_eq!(s.credential("cred-1").await.unwrap().unwrap().sign_count, 5);
    // Racers with the same counter: exactly one wins, the others see the regression.
    let (winners, losers) = race(&s, |_| vec![credential_use("cred-1", 6, true)]).await;
    assert_eq!(winners.len(), 1);
    assert_all(losers, Conflict::CounterRegressed);
    // A revoked credential is `NotFound`, not a regression.
    commit(
        &s,
        vec![Write::RevokeCredential {
            credential_id: "cred-1".into(),
            at: T0 + 9,
        }],
    )
    .await;
    assert_conflict(
        s.commit(vec![credential_use("cred-1", 99, true)]).await,
        Conflict::NotFound,
    );
}

/// Preconditions are checked in write order: two completions of one session that carry the
/// same counter are a lost race on the session (`SessionVersion`), never a regression.
pub async fn duplicate_completion_is_a_session_conflict(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v0 = session("ses_1", &u, T0);
    commit(
        &s,
        vec![
            Write::InsertCredential(credential("cred-1", &u, T0)),
            Write::InsertSession(v0.clone()),
        ],
    )
    .await;
    let (winners, losers) = race(&s, |_| {
        vec![
            Write::UpdateSession {
                record: passbind_core::model::SessionRecord {
                    version: v0.version + 1,
                    ..v0.clone()
                },
                expected_version: v0.version,
            },
            credential_use("cred-1", 3, true),
        ]
    })
    .await;
    assert_eq!(winners.len(), 1);
    assert_all(losers, Conflict::SessionVersion);
    assert_eq!(s.credential("cred-1").await.unwrap().unwrap().sign_count, 3);
}

/// Signers racing from the same newest checkpoint: one wins, the others are stale, and the
/// stored checkpoints increase in size and time.
pub async fn checkpoint_signers_race(s: SqlStore) {
    let signer = passbind_audit::CheckpointSigner::from_seed([9; 32]).unwrap();
    let (winners, losers) = race(&s, |i| {
        let n = u64::try_from(i).unwrap();
        // The larger tree carries the earlier time: the order that once broke the log.
        vec![Write::InsertCheckpoint {
            checkpoint: signer.sign(10 + n, &[1; 32], 1000 - i64::try_from(i).unwrap()),
            frontier: vec![],
            previous_tree_size: 0,
        }]
    })
    .await;
    assert_eq!(winners.len(), 1);
    assert_all(losers, Conflict::StaleCheckpoint);
    let all = s.audit_checkpoints().await.unwrap();
    assert_eq!(all.len(), 1);
}

/// Many changes at once (on SQLite the writer commits them in groups): the ones whose
/// precondition fails are undone alone, every other one is committed and heard as such.
pub async fn group_commit_isolates_failed_changes(s: SqlStore) {
    let u = with_user(&s, 1).await;
    let v1 = session("ses_1", &u, T0);
    commit(&s, vec![Write::InsertSession(v1.clone())]).await;
    let (winners, losers) = race(&s, |i| {
        let mut writes = vec![Write::InsertSecret(secret(
            u8::try_from(i).unwrap(),
            "ses_1",
        ))];
        if i % 2 == 1 {
            // A stale session version: this change fails, and only this one.
            writes.push(Write::UpdateSession {
                record: SessionRecord {
                    version: v1.version + 100,
                    ..v1.clone()
                },
                expected_version: v1.version + 99,
            });
        }
        writes
    })
    .await;
    assert_eq!(winners.len(), RACERS / 2, "{losers:?}");
    assert!(winners.iter().all(|i| i % 2 == 0));
    for l in losers {
        assert_conflict(l, Conflict::SessionVersion);
    }
    for i in 0..RACERS {
        let stored = s.secret(&[u8::try_from(i).unwrap(); 32]).await.unwrap();
        assert_eq!(stored.is_some(), i % 2 == 0, "secret {i}");
    }
}

/// Sequencers racing with each other and with the changes that write events (as replicas
/// do): every event is integrated exactly once, the sequence is gap-free, the chain one.
pub async fn audit_sequencers_race_with_writers(s: SqlStore) {
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..20i64 {
                s.commit(vec![audit(i * 100 + j, None, "race")])
                    .await
                    .unwrap();
            }
            0u64
        }));
    }
    for k in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..30 {
                n += s.integrate_audit(k % 2 == 0).await.unwrap();
                tokio::task::yield_now().await;
            }
            n
        }));
    }
    let mut integrated = 0;
    for t in tasks {
        integrated += t.await.unwrap();
    }
    integrated += s.integrate_audit(true).await.unwrap();
    assert_eq!(integrated, 160, "each event integrated exactly once");
    assert_eq!(s.audit_pending().await.unwrap().0, 0);
    let all = s
        .audit_events(&passbind_core::model::AuditQuery {
            ascending: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 160);
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert!(e.hash_is_valid());
        if i > 0 {
            assert_eq!(e.prev_hash, all[i - 1].hash, "one chain, no fork");
        }
        assert!(seen.insert(e.time_ms), "no event twice");
    }
}

/// A session read with the credential an assertion names and its owner, in one read: the
/// same records as the three separate reads, and absences as `None`.
pub async fn session_read_with_its_credential(s: SqlStore) {
    let alice = with_user(&s, 1).await;
    let bob = with_user(&s, 2).await;
    let cred = credential("cred-bob", &bob, T0);
    commit(&s, vec![Write::InsertCredential(cred.clone())]).await;
    let ses = session("ses_1", &alice, T0);
    commit(&s, vec![Write::InsertSession(ses.clone())]).await;

    assert!(s
        .session_with_credential("ses_absent", "cred-bob")
        .await
        .unwrap()
        .is_none());
    let read = s
        .session_with_credential("ses_1", "cred-bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.session, s.session("ses_1").await.unwrap().unwrap());
    assert_eq!(read.session, ses);
    assert_eq!(read.credential, Some(cred));
    // The owner is the credential's user, not the session's.
    assert_eq!(read.owner, Some(bob));
    let read = s
        .session_with_credential("ses_1", "cred-absent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.session, ses);
    assert_eq!((read.credential, read.owner), (None, None));
}

/// A user read with all their credentials, oldest first, revoked ones included.
pub async fn user_read_with_credentials(s: SqlStore) {
    let alice = with_user(&s, 1).await;
    let bob = with_user(&s, 2).await;
    assert!(s
        .user_with_credentials("ext-absent")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.user_with_credentials("ext-2").await.unwrap(),
        Some((bob.clone(), Vec::new()))
    );
    let newer = credential("cred-b", &alice, T0 + 10);
    let older = credential("cred-a", &alice, T0 + 5);
    commit(
        &s,
        vec![
            Write::InsertCredential(newer.clone()),
            Write::InsertCredential(older.clone()),
            Write::InsertCredential(credential("cred-bob", &bob, T0)),
            Write::RevokeCredential {
                credential_id: "cred-b".into(),
                at: T0 + 20,
            },
        ],
    )
    .await;
    let (user, credentials) = s.user_with_credentials("ext-1").await.unwrap().unwrap();
    assert_eq!(user, alice);
    assert_eq!(credentials, s.credentials_of_user(&alice.id).await.unwrap());
    let ids: Vec<&str> = credentials
        .iter()
        .map(|c| c.credential_id.as_str())
        .collect();
    assert_eq!(ids, ["cred-a", "cred-b"]);
    assert!(credentials[1].revoked_at.is_some());
}
