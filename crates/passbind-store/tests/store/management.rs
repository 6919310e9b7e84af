//! The dashboard's reads and the operator tables, on both backends: session lists with filters
//! and keyset pagination, counts by bucket, flow, outcome and reason, user search by prefix,
//! totals, and the operator writes with their preconditions and atomicity.

use crate::fixtures::*;
use passbind_core::management::SessionFilter;
use passbind_core::model::{AuditDraft, Conflict, SessionRecord, Write};
use passbind_core::operators::{
    ChallengeRecord, OperatorCredentialRecord, OperatorRecord, OperatorSessionRecord,
    OperatorWrite, SetupTokenRecord,
};
use passbind_core::ports::store::*;
use passbind_proto::session::{Flow, IdvFailureReason, SessionState};
use passbind_store::SqlStore;
use serde_json::json;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _dir) = passbind_store::testing::fresh_sqlite().await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = passbind_store::testing::fresh_postgres().await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    list_sessions_filters_and_pages,
    session_counts_by_bucket_flow_outcome_reason,
    search_users_by_prefix_with_paging,
    totals_count_what_the_overview_shows,
    operators_and_their_passkeys,
    setup_tokens_and_challenges_work_once,
    operator_sessions_and_revocation,
    commit_operator_is_atomic,
);

const HOUR: i64 = 3_600_000;

async fn commit(s: &SqlStore, writes: Vec<Write>) {
    s.commit(writes).await.expect("commit");
}

fn ses(
    id: &str,
    u: &passbind_core::model::UserRecord,
    flow: Flow,
    state: SessionState,
    at: i64,
) -> SessionRecord {
    SessionRecord {
        flow,
        state,
        idv_failure: (state == SessionState::IdvFailed).then_some(IdvFailureReason::Declined),
        ..session(id, u, at)
    }
}

/// Users 1..=3 and eight sessions over three hours (expiry: created + 10 minutes).
async fn seed(s: &SqlStore) -> Vec<SessionRecord> {
    let users: Vec<_> = (1..=3).map(user).collect();
    let mut w: Vec<Write> = users.iter().cloned().map(Write::InsertUser).collect();
    let list = vec![
        ses(
            "ses_a",
            &users[0],
            Flow::Registration,
            SessionState::Completed,
            T0,
        ),
        ses(
            "ses_b",
            &users[0],
            Flow::Registration,
            SessionState::IdvFailed,
            T0 + 1,
        ),
        ses(
            "ses_c",
            &users[1],
            Flow::StepUp,
            SessionState::Completed,
            T0 + 1,
        ),
        ses(
            "ses_d",
            &users[1],
            Flow::StepUp,
            SessionState::IdvPending,
            T0 + HOUR,
        ),
        ses(
            "ses_e",
            &users[2],
            Flow::Authentication,
            SessionState::Cancelled,
            T0 + HOUR + 5,
        ),
        ses(
            "ses_f",
            &users[2],
            Flow::Registration,
            SessionState::Expired,
            T0 + 2 * HOUR,
        ),
        ses(
            "ses_g",
            &users[2],
            Flow::Registration,
            SessionState::IdvPassed,
            T0 + 2 * HOUR + 1,
        ),
        ses(
            "ses_h",
            &users[0],
            Flow::Recovery,
            SessionState::Created,
            T0 + 2 * HOUR + 2,
        ),
    ];
    w.extend(list.iter().cloned().map(Write::InsertSession));
    commit(s, w).await;
    list
}

fn ids(v: &[SessionRecord]) -> Vec<&str> {
    v.iter().map(|s| s.id.as_str()).collect()
}

pub async fn list_sessions_filters_and_pages(s: SqlStore) {
    seed(&s).await;
    // "now": one minute after the last session; ses_d (T0 + 1 h) has expired by then.
    let now = T0 + 2 * HOUR + 60_000;
    let f = |state, flow| SessionFilter {
        flow,
        state,
        now,
        limit: 100,
        ..SessionFilter::default()
    };
    let all = s.list_sessions(&f(None, None)).await.unwrap();
    assert_eq!(
        ids(&all),
        ["ses_h", "ses_g", "ses_f", "ses_e", "ses_d", "ses_c", "ses_b", "ses_a"]
    );
    let reg = s
        .list_sessions(&f(None, Some(Flow::Registration)))
        .await
        .unwrap();
    assert_eq!(ids(&reg), ["ses_g", "ses_f", "ses_b", "ses_a"]);
    // Effective states: ses_d is stored idv_pending but expired at `now`.
    let expired = s
        .list_sessions(&f(Some(SessionState::Expired), None))
        .await
        .unwrap();
    assert_eq!(ids(&expired), ["ses_f", "ses_d"]);
    let pending = s
        .list_sessions(&f(Some(SessionState::IdvPending), None))
        .await
        .unwrap();
    assert!(pending.is_empty());
    let live = s
        .list_sessions(&f(Some(SessionState::IdvPassed), None))
        .await
        .unwrap();
    assert_eq!(ids(&live), ["ses_g"]);
    let done = s
        .list_sessions(&f(Some(SessionState::Completed), Some(Flow::StepUp)))
        .await
        .unwrap();
    assert_eq!(ids(&done), ["ses_c"]);
    // Time window [since, until).
    let window = SessionFilter {
        since: Some(T0 + 1),
        until: Some(T0 + 2 * HOUR),
        ..f(None, None)
    };
    assert_eq!(
        ids(&s.list_sessions(&window).await.unwrap()),
        ["ses_e", "ses_d", "ses_c", "ses_b"]
    );
    // Keyset pages of 3, with ties on created_at (ses_b and ses_c) broken by id.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_sessions(&SessionFilter {
                before: before.clone(),
                limit: 3,
                ..f(None, None)
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        before = Some((last.created_at, last.id.clone()));
        seen.extend(page.iter().map(|x| x.id.clone()));
    }
    assert_eq!(seen, ids(&all));
}

pub async fn session_counts_by_bucket_flow_outcome_reason(s: SqlStore) {
    seed(&s).await;
    let now = T0 + 2 * HOUR + 60_000;
    let since = T0 - T0 % HOUR;
    let counts = s
        .session_counts(since, since + 3 * HOUR, HOUR, now)
        .await
        .unwrap();
    let got: Vec<(i64, &str, &str, Option<&str>, u64)> = counts
        .iter()
        .map(|c| {
            (
                (c.bucket_start - since) / HOUR,
                c.flow.as_str(),
                c.outcome.as_str(),
                c.reason.as_deref(),
                c.count,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, "registration", "completed", None, 1),
            (0, "registration", "failed", Some("declined"), 1),
            (0, "step_up", "completed", None, 1),
            (1, "authentication", "cancelled", None, 1),
            (1, "step_up", "expired", None, 1),
            (2, "recovery", "pending", None, 1),
            (2, "registration", "expired", None, 1),
            (2, "registration", "passed", None, 1),
        ]
    );
    // The period bounds are by creation time, and an empty period counts nothing.
    let first = s
        .session_counts(since, since + HOUR, HOUR, now)
        .await
        .unwrap();
    assert_eq!(first.iter().map(|c| c.count).sum::<u64>(), 3);
    assert!(s
        .session_counts(0, 1000, HOUR, now)
        .await
        .unwrap()
        .is_empty());
    assert!(s.session_counts(0, 1000, 0, now).await.is_err());
}

pub async fn search_users_by_prefix_with_paging(s: SqlStore) {
    let mut w = Vec::new();
    for (n, ext) in ["ab_1", "ab-2", "aB3", "abc", "b", "a%b", "a_x"]
        .iter()
        .enumerate()
    {
        let mut u = user(n as u32 + 1);
        u.external_user_id = (*ext).to_owned();
        w.push(Write::InsertUser(u));
    }
    commit(&s, w).await;
    let u1 = s.user_by_external_id("ab_1").await.unwrap().unwrap();
    commit(
        &s,
        vec![
            Write::InsertEbt(ebt(&u1, 1)),
            Write::InsertCredential(credential("c1", &u1, T0)),
            Write::InsertCredential(credential("c2", &u1, T0 + 1)),
            Write::RevokeCredential {
                credential_id: "c2".into(),
                at: T0 + 2,
            },
        ],
    )
    .await;
    let names = |v: Vec<passbind_core::management::UserSummary>| {
        v.into_iter()
            .map(|u| u.external_user_id)
            .collect::<Vec<_>>()
    };
    // Case-sensitive, and `_` / `%` are not wildcards.
    let ab = s.search_users("ab", None, 10).await.unwrap();
    assert_eq!(ab.len(), 3);
    let first = ab.iter().find(|u| u.external_user_id == "ab_1").unwrap();
    assert_eq!(first.active_credentials, 1);
    assert!(first.has_ebt);
    let mut got = names(ab);
    got.sort();
    assert_eq!(got, ["ab-2", "ab_1", "abc"]);
    assert_eq!(
        names(s.search_users("a_", None, 10).await.unwrap()),
        ["a_x"]
    );
    assert_eq!(
        names(s.search_users("a%", None, 10).await.unwrap()),
        ["a%b"]
    );
    assert!(s.search_users("zz", None, 10).await.unwrap().is_empty());
    // Every user, in pages, each once.
    let all = names(s.search_users("", None, 100).await.unwrap());
    assert_eq!(all.len(), 7);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = names(s.search_users("", after.as_deref(), 2).await.unwrap());
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, all);
}

pub async fn totals_count_what_the_overview_shows(s: SqlStore) {
    let t = s.management_totals().await.unwrap();
    assert_eq!((t.users, t.active_credentials, t.operators), (0, 0, 0));
    let (u1, u2) = (user(1), user(2));
    commit(
        &s,
        vec![
            Write::InsertUser(u1.clone()),
            Write::InsertUser(u2.clone()),
            Write::InsertCredential(credential("c1", &u1, T0)),
            Write::InsertCredential(credential("c2", &u1, T0)),
            Write::InsertCredential(credential("c3", &u2, T0)),
            Write::RevokeCredential {
                credential_id: "c1".into(),
                at: T0,
            },
            Write::MarkUserErased {
                user_id: u2.id.clone(),
                at: T0,
            },
            Write::InsertApiKey(api_key("k1", T0)),
            Write::InsertApiKey(api_key("k2", T0)),
            Write::RevokeApiKey {
                id: "k2".into(),
                at: T0,
            },
        ],
    )
    .await;
    s.commit_operator(
        vec![OperatorWrite::InsertOperator(operator("o1", "alice"))],
        vec![],
    )
    .await
    .unwrap();
    let t = s.management_totals().await.unwrap();
    assert_eq!(t.users, 1);
    assert_eq!(t.erased_users, 1);
    // c3 belongs to an erased user: not active.
    assert_eq!(t.active_credentials, 1);
    assert_eq!(t.revoked_credentials, 1);
    assert_eq!(t.active_api_keys, 1);
    assert_eq!(t.operators, 1);
    assert_eq!(s.operator_count().await.unwrap(), 1);
}

fn operator(id: &str, name: &str) -> OperatorRecord {
    OperatorRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        user_handle: id.as_bytes().to_vec(),
        created_at: T0,
        disabled_at: None,
    }
}

fn op_credential(id: &str, operator_id: &str) -> OperatorCredentialRecord {
    OperatorCredentialRecord {
        credential_id: id.to_owned(),
        operator_id: operator_id.to_owned(),
        public_key: vec![0xA5, 1, 2, 3],
        sign_count: 0,
        aaguid: Some("00".repeat(16)),
        backup_eligible: true,
        backed_up: false,
        created_at: T0,
        last_used_at: None,
        revoked_at: None,
    }
}

pub async fn operators_and_their_passkeys(s: SqlStore) {
    let o = operator("opr_1", "alice");
    s.commit_operator(
        vec![
            OperatorWrite::InsertOperator(o.clone()),
            OperatorWrite::InsertCredential(op_credential("oc1", "opr_1")),
        ],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(s.operator("opr_1").await.unwrap(), Some(o.clone()));
    assert_eq!(s.operator_by_name("alice").await.unwrap(), Some(o.clone()));
    assert_eq!(s.operator_by_name("Alice").await.unwrap(), None);
    assert_eq!(
        s.operator_credential("oc1").await.unwrap(),
        Some(op_credential("oc1", "opr_1"))
    );
    // The name is unique (DuplicateUser); the id and handle too (DuplicateId).
    assert_conflict(
        s.commit_operator(
            vec![OperatorWrite::InsertOperator(operator("opr_2", "alice"))],
            vec![],
        )
        .await,
        Conflict::DuplicateUser,
    );
    assert_conflict(
        s.commit_operator(
            vec![OperatorWrite::InsertOperator(operator("opr_1", "bob"))],
            vec![],
        )
        .await,
        Conflict::DuplicateId,
    );
    assert_conflict(
        s.commit_operator(
            vec![OperatorWrite::InsertCredential(op_credential(
                "oc1", "opr_1",
            ))],
            vec![],
        )
        .await,
        Conflict::DuplicateCredential,
    );
    assert_conflict(
        s.commit_operator(
            vec![OperatorWrite::InsertCredential(op_credential(
                "oc9", "opr_404",
            ))],
            vec![],
        )
        .await,
        Conflict::NotFound,
    );
    // A sign-in moves the counter and the last use.
    let used = OperatorWrite::UpdateCredentialUse {
        credential_id: "oc1".into(),
        sign_count: 7,
        backed_up: true,
        at: T0 + 5,
    };
    s.commit_operator(vec![used.clone()], vec![]).await.unwrap();
    let c = s.operator_credential("oc1").await.unwrap().unwrap();
    assert_eq!(
        (c.sign_count, c.backed_up, c.last_used_at),
        (7, true, Some(T0 + 5))
    );
    let absent = OperatorWrite::UpdateCredentialUse {
        credential_id: "nope".into(),
        sign_count: 1,
        backed_up: false,
        at: T0,
    };
    assert_conflict(
        s.commit_operator(vec![absent], vec![]).await,
        Conflict::NotFound,
    );
}

pub async fn setup_tokens_and_challenges_work_once(s: SqlStore) {
    let token = SetupTokenRecord {
        hash: vec![7; 32],
        created_by: "system".into(),
        created_at: T0,
        expires_at: T0 + 1000,
        consumed_at: None,
    };
    s.commit_operator(vec![OperatorWrite::InsertSetupToken(token.clone())], vec![])
        .await
        .unwrap();
    assert_eq!(s.setup_token(&[7; 32]).await.unwrap(), Some(token.clone()));
    assert_conflict(
        s.commit_operator(vec![OperatorWrite::InsertSetupToken(token)], vec![])
            .await,
        Conflict::DuplicateId,
    );
    let consume = |at| OperatorWrite::ConsumeSetupToken {
        hash: vec![7; 32],
        at,
    };
    // Expired at `at`: refused; in time: once.
    assert_conflict(
        s.commit_operator(vec![consume(T0 + 1000)], vec![]).await,
        Conflict::NotFound,
    );
    s.commit_operator(vec![consume(T0 + 10)], vec![])
        .await
        .unwrap();
    assert_conflict(
        s.commit_operator(vec![consume(T0 + 11)], vec![]).await,
        Conflict::NotFound,
    );
    assert_eq!(
        s.setup_token(&[7; 32]).await.unwrap().unwrap().consumed_at,
        Some(T0 + 10)
    );

    let ch = ChallengeRecord {
        id: "och_1".into(),
        kind: "passkey".into(),
        state: json!({ "challenge": "abc", "nested": [1, 2] }),
        created_at: T0,
        expires_at: T0 + 300,
        consumed_at: None,
    };
    s.commit_operator(vec![OperatorWrite::InsertChallenge(ch.clone())], vec![])
        .await
        .unwrap();
    assert_eq!(s.operator_challenge("och_1").await.unwrap(), Some(ch));
    let take = |at| OperatorWrite::ConsumeChallenge {
        id: "och_1".into(),
        at,
    };
    assert_conflict(
        s.commit_operator(vec![take(T0 + 300)], vec![]).await,
        Conflict::NotFound,
    );
    s.commit_operator(vec![take(T0 + 1)], vec![]).await.unwrap();
    assert_conflict(
        s.commit_operator(vec![take(T0 + 2)], vec![]).await,
        Conflict::NotFound,
    );
    assert_eq!(s.operator_challenge("och_404").await.unwrap(), None);
    // A new ceremony sweeps those that expired over an hour before it.
    let later = ChallengeRecord {
        id: "och_2".into(),
        kind: "oidc".into(),
        state: json!({}),
        created_at: T0 + 300 + 3_600_001,
        expires_at: T0 + 300 + 3_900_000,
        consumed_at: None,
    };
    s.commit_operator(vec![OperatorWrite::InsertChallenge(later)], vec![])
        .await
        .unwrap();
    assert_eq!(s.operator_challenge("och_1").await.unwrap(), None);
    assert!(s.operator_challenge("och_2").await.unwrap().is_some());
}

pub async fn operator_sessions_and_revocation(s: SqlStore) {
    let sess = OperatorSessionRecord {
        id_hash: vec![3; 32],
        subject: "local:alice".into(),
        display_name: "alice".into(),
        method: "passkey".into(),
        created_at: T0,
        expires_at: T0 + HOUR,
        revoked_at: None,
    };
    s.commit_operator(vec![OperatorWrite::InsertSession(sess.clone())], vec![])
        .await
        .unwrap();
    assert_eq!(
        s.operator_session(&[3; 32]).await.unwrap(),
        Some(sess.clone())
    );
    assert_conflict(
        s.commit_operator(vec![OperatorWrite::InsertSession(sess)], vec![])
            .await,
        Conflict::DuplicateId,
    );
    let revoke = |at| OperatorWrite::RevokeSession {
        id_hash: vec![3; 32],
        at,
    };
    s.commit_operator(vec![revoke(T0 + 5)], vec![])
        .await
        .unwrap();
    // Revoking twice keeps the first time and is no conflict.
    s.commit_operator(vec![revoke(T0 + 9)], vec![])
        .await
        .unwrap();
    assert_eq!(
        s.operator_session(&[3; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(T0 + 5)
    );
    assert_eq!(s.operator_session(&[4; 32]).await.unwrap(), None);
}

pub async fn commit_operator_is_atomic(s: SqlStore) {
    let draft = AuditDraft {
        time_ms: T0,
        event_type: "operator.enrolled".into(),
        outcome: "success".into(),
        actor_kind: "operator".into(),
        actor_id: Some("local:alice".into()),
        ..AuditDraft::default()
    };
    let (head_before, _) = s.audit_head().await.unwrap();
    // The last operator write fails: nothing stays, not even the audit event.
    let r = s
        .commit_operator(
            vec![
                OperatorWrite::InsertOperator(operator("opr_1", "alice")),
                OperatorWrite::ConsumeSetupToken {
                    hash: vec![1; 32],
                    at: T0,
                },
            ],
            vec![Write::AppendAudit(draft.clone())],
        )
        .await;
    assert_conflict(r, Conflict::NotFound);
    assert_eq!(s.operator("opr_1").await.unwrap(), None);
    assert_eq!(s.integrate_audit(true).await.unwrap(), 0);
    assert_eq!(s.audit_head().await.unwrap().0, head_before);
    // A plain write that fails rolls the operator writes back too.
    let u = user(1);
    commit(&s, vec![Write::InsertUser(u.clone())]).await;
    let r = s
        .commit_operator(
            vec![OperatorWrite::InsertOperator(operator("opr_1", "alice"))],
            vec![Write::InsertUser(u)],
        )
        .await;
    assert_conflict(r, Conflict::DuplicateUser);
    assert_eq!(s.operator_count().await.unwrap(), 0);
    // Success: both, with the event appended.
    s.commit_operator(
        vec![OperatorWrite::InsertOperator(operator("opr_1", "alice"))],
        vec![Write::AppendAudit(draft)],
    )
    .await
    .unwrap();
    assert_eq!(s.operator_count().await.unwrap(), 1);
    assert_eq!(s.integrate_audit(true).await.unwrap(), 1);
    assert_eq!(s.audit_head().await.unwrap().0, head_before + 1);
    // Nothing at all is a no-op.
    s.commit_operator(vec![], vec![]).await.unwrap();
}
