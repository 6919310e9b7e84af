//! The tamper-evident audit trail over HTTP: events written with their changes, checkpoints,
//! proofs, identity proofs, verification of a tampered database, concurrent replicas.

use crate::both_backends;
use crate::common::{assert_error, register, share_keys, user_credentials, TestApp};
use passbind_audit::merkle;
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};

fn hash(hex_str: &str) -> [u8; 32] {
    passbind_audit::event::parse_hash_hex(hex_str).unwrap()
}

pub(crate) async fn public_key(app: &TestApp) -> [u8; 32] {
    let r = app
        .raw(reqwest::Method::GET, "/v1/audit/public-key", None, None)
        .await;
    assert_eq!(r.0, 200);
    passbind_audit::parse_public_key(r.1["public_key"].as_str().unwrap()).unwrap()
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get_json(&format!("/v1/audit/events{query}")).await;
    assert_eq!(r.0, 200, "{}", r.1);
    r.1.as_array().unwrap().clone()
}

pub(crate) async fn checkpoint(app: &TestApp) -> Value {
    let r = app.post_json("/v1/audit/checkpoints", &json!({})).await;
    assert_eq!(r.0, 200, "{}", r.1);
    r.1["checkpoint"].clone()
}

pub(crate) async fn export(app: &TestApp) -> String {
    let resp = app
        .http
        .get(format!("{}/v1/audit/export", app.base))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

async fn flows_are_recorded_and_provable(app: TestApp) {
    let alice = Person::new(51);
    let phone = Device::new();
    let done = register(&app, "alice", &alice, &phone).await;
    let cid = done.credential_id.clone().unwrap();

    // The registration's story, in order, with its change.
    let mut q = format!("?session_id={}&limit=100", done.id);
    let story: Vec<String> = events(&app, &q)
        .await
        .iter()
        .rev()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "session.opened",
        "webhook.received",
        "session.transition",
        "identity_proof.issued",
    ] {
        assert!(
            story.contains(&expected.to_owned()),
            "{expected} missing: {story:?}"
        );
    }
    let all = events(&app, "?limit=1000").await;
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "credential.bound",
        "biometric_reference.stored",
        "api_key.created",
        "user.created",
    ] {
        assert!(types.contains(&expected), "{expected} missing: {types:?}");
    }
    // No personal data: the user is a keyed hash, never "alice".
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("\"alice\""), "{text}");
    let opened = all
        .iter()
        .find(|e| e["event_type"] == "session.opened")
        .unwrap();
    let user_ref = opened["user_ref"].as_str().unwrap();
    assert_eq!(user_ref.len(), 64);
    assert_eq!(user_ref, app.server.engine.user_ref("alice"));
    // The webhook's provider is the actor of the verdict.
    assert!(all
        .iter()
        .any(|e| e["actor"]["kind"] == "idv_provider" && e["event_type"] == "session.transition"));

    // Sign a checkpoint, more activity, another checkpoint.
    let c1 = checkpoint(&app).await;
    let opened = app
        .post_json("/v1/authentications", &json!({"external_user_id": "alice"}))
        .await;
    let a = phone
        .authenticator
        .get(&app.origin(), &opened.1["webauthn"])
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!(
                "/v1/authentications/{}/complete",
                opened.1["id"].as_str().unwrap()
            ),
            &json!({ "credential": a }),
        )
        .await;
    assert_eq!(r.0, 200);
    let c2 = checkpoint(&app).await;
    let (n1, n2) = (
        c1["tree_size"].as_u64().unwrap(),
        c2["tree_size"].as_u64().unwrap(),
    );
    assert!(n2 > n1);
    // Nothing new: no checkpoint.
    assert!(checkpoint(&app).await.is_null());

    // Inclusion of every event, against the newest checkpoint.
    let key = public_key(&app).await;
    let root2 = hash(c2["root_hash"].as_str().unwrap());
    for seq in 1..=n2 {
        let p = app
            .get_json(&format!("/v1/audit/proofs/inclusion?seq={seq}"))
            .await;
        assert_eq!(p.0, 200, "{}", p.1);
        let proof: Vec<[u8; 32]> = p.1["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hash(h.as_str().unwrap()))
            .collect();
        assert!(merkle::verify_inclusion(
            &hash(p.1["leaf_hash"].as_str().unwrap()),
            seq - 1,
            n2,
            &proof,
            &root2
        ));
    }
    // Consistency between the two checkpoints.
    let p = app
        .get_json(&format!("/v1/audit/proofs/consistency?from={n1}&to={n2}"))
        .await;
    assert_eq!(p.0, 200, "{}", p.1);
    let proof: Vec<[u8; 32]> = p.1["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hash(h.as_str().unwrap()))
        .collect();
    assert!(merkle::verify_consistency(
        n1,
        n2,
        &hash(c1["root_hash"].as_str().unwrap()),
        &root2,
        &proof
    ));
    // Bad proof requests are clean 4xx.
    assert_error(
        &app.get_json("/v1/audit/proofs/inclusion?seq=0").await,
        400,
        "validation_failed",
    );
    assert_error(
        &app.get_json("/v1/audit/proofs/inclusion?seq=99999").await,
        400,
        "validation_failed",
    );
    assert_error(
        &app.get_json("/v1/audit/proofs/inclusion?seq=x").await,
        400,
        "validation_failed",
    );
    assert_error(
        &app.get_json("/v1/audit/proofs/consistency?from=1&to=2")
            .await,
        400,
        "validation_failed",
    );
    assert_error(
        &app.get_json("/v1/audit/events?limit=0").await,
        400,
        "validation_failed",
    );
    assert_error(
        &app.get_json("/v1/audit/events?surprise=1").await,
        400,
        "validation_failed",
    );

    // The export verifies offline with the published key.
    let text = export(&app).await;
    let report = passbind_audit::verify_text(&text, &key);
    assert!(report.first_break.is_none(), "{report:?}");
    assert!(report.events_verified >= n2);
    let server_report = app.get_json("/v1/audit/verify").await;
    assert!(
        server_report.1["first_break"].is_null(),
        "{}",
        server_report.1
    );

    // Identity proofs of the credential: the verdict, and the binding to this credential.
    let proofs = app
        .get_json(&format!(
            "/v1/users/alice/credentials/{cid}/identity-proofs"
        ))
        .await;
    assert_eq!(proofs.0, 200, "{}", proofs.1);
    let list = proofs.1.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let claims =
        passbind_audit::verify_identity_proof(list[0]["jws"].as_str().unwrap(), &key).unwrap();
    assert_eq!(claims.credential_id.as_deref(), Some(cid.as_str()));
    assert_eq!(claims.verdict, "passed");
    assert_eq!(claims.session_id, done.id);
    assert_eq!(claims.provider, "simulator");
    assert_eq!(claims.proof_hash.len(), 64);
    assert!(
        !list[0].to_string().contains("Given51"),
        "no identity data in a proof"
    );
    assert_error(
        &app.get_json("/v1/users/alice/credentials/AAAA/identity-proofs")
            .await,
        404,
        "credential_not_found",
    );

    // Scope: the audit endpoints need the audit scope.
    let flows_only = app
        .server
        .engine
        .create_api_key(&passbind_core::Actor::system(), "f", &["flows".into()])
        .await
        .unwrap();
    let r = app
        .raw(
            reqwest::Method::GET,
            "/v1/audit/events",
            None,
            Some(&format!("Bearer {}", flows_only.token)),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let _ = q.split_off(0);
}
both_backends!(flows_are_recorded_and_provable);

async fn refusals_are_recorded(app: TestApp) {
    let opened = app
        .client
        .open_registration(&crate::common::open_req("mallory-target"))
        .await
        .unwrap();
    let run_id = opened.idv.unwrap().run_id;
    let body = serde_json::to_vec(&json!({"payload": {"resource_type": "workflow_run",
        "action": "workflow_run.completed",
        "object": {"id": run_id, "status": "approved", "completed_at_iso8601": "2026-01-01T00:00:00Z",
                   "href": "x"}}}))
    .unwrap();
    let r = app
        .http
        .post(format!("{}/v1/webhooks/idv/simulator", app.base))
        .header("X-SHA2-Signature", "00".repeat(32))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let refused = events(&app, "?event_type=webhook.received").await;
    assert!(
        refused
            .iter()
            .any(|e| e["outcome"] == "refused" && e["reason"] == "invalid_signature"),
        "{refused:?}"
    );
    // A completion before the verdict is an out-of-order request worth recording.
    let r = app
        .post_json(
            &format!("/v1/registrations/{}/complete", opened.id),
            &json!({"credential": {}}),
        )
        .await;
    assert_error(&r, 409, "invalid_state");
    let sec = events(&app, "?event_type=security.refused").await;
    assert!(
        sec.iter()
            .any(|e| e["reason"] == "invalid_state" && e["session_id"] == opened.id.as_str()),
        "{sec:?}"
    );
}
both_backends!(refusals_are_recorded);

async fn a_tampered_database_is_detected(app: TestApp) {
    register(&app, "bob", &Person::new(52), &Device::new()).await;
    checkpoint(&app).await;
    let key = public_key(&app).await;
    assert!(passbind_audit::verify_text(&export(&app).await, &key)
        .first_break
        .is_none());

    // Someone with database access edits an event.
    let n = app
        .sql("UPDATE audit_events SET event = REPLACE(event, '\"outcome\":\"success\"', '\"outcome\":\"failure\"') WHERE seq = 3")
        .await;
    assert_eq!(n, 1);
    let report = app.get_json("/v1/audit/verify").await.1;
    assert_eq!(report["first_break"]["kind"], "edited_event", "{report}");
    assert_eq!(report["first_break"]["seq"], 3);
    let offline = passbind_audit::verify_text(&export(&app).await, &key);
    assert!(matches!(
        offline.first_break.map(|b| b.kind),
        Some(passbind_audit::BreakKind::EditedEvent)
    ));

    // ...or deletes one.
    app.sql("UPDATE audit_events SET event = REPLACE(event, '\"outcome\":\"failure\"', '\"outcome\":\"success\"') WHERE seq = 3").await;
    assert!(app.get_json("/v1/audit/verify").await.1["first_break"].is_null());
    assert_eq!(app.sql("DELETE FROM audit_events WHERE seq = 5").await, 1);
    let report = app.get_json("/v1/audit/verify").await.1;
    assert_eq!(
        report["first_break"]["kind"],
        json!({"broken_chain": "deleted"}),
        "{report}"
    );
    let _ = user_credentials(&app, "bob").await;
}
both_backends!(a_tampered_database_is_detected);

/// Two replicas on one PostgreSQL database, writing concurrently: the log stays gap-free and
/// verifiable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replicas_keep_one_gap_free_log() {
    let store = passbind_store::testing::fresh_postgres().await;
    let a = TestApp::start_with_store(share_keys, Some(store.clone())).await;
    let b = TestApp::start_with_store(share_keys, Some(store)).await;
    let mut work = Vec::new();
    for i in 0..6u64 {
        let app = if i % 2 == 0 { &a } else { &b };
        work.push(async move {
            register(
                app,
                &format!("replica-user-{i}"),
                &Person::new(100 + i),
                &Device::new(),
            )
            .await;
        });
    }
    futures::future::join_all(work).await;
    checkpoint(&a).await;
    let (head, _) = a.server.engine.store().audit_head().await.unwrap();
    let all = events(&a, "?limit=1000").await;
    assert_eq!(
        all.len() as u64,
        head,
        "gap-free: one event per sequence number"
    );
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] == w[1] + 1), "{seqs:?}");
    let report = passbind_audit::verify_text(&export(&b).await, &public_key(&a).await);
    assert!(report.first_break.is_none(), "{report:?}");
    assert_eq!(report.unanchored_tail, 0);
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// Events are written with their change and integrated by the sequencer later: until then
/// they are pending (and counted in /metrics); a read of the log integrates what is pending
/// first, so a caller always finds the events of what it did, in order and verifiable.
async fn pending_events_are_integrated_before_a_read(app: TestApp) {
    register(&app, "pat", &Person::new(31), &Device::new()).await;
    assert!(metric(&app, "passbind_audit_pending_events").await > 0.0);
    let opened = events(&app, "?event_type=session.opened").await;
    assert!(!opened.is_empty());
    assert_eq!(metric(&app, "passbind_audit_pending_events").await, 0.0);
    assert_eq!(
        metric(&app, "passbind_audit_integration_delay_seconds").await,
        0.0
    );
    let all = events(&app, "?limit=1000").await;
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).rev().collect();
    assert_eq!(seqs, expected, "gap-free, newest first");
    let r = app.get_json("/v1/audit/verify").await;
    assert_eq!(r.0, 200, "{}", r.1);
}
both_backends!(pending_events_are_integrated_before_a_read, |s| s
    .audit_integrate_ms =
    10_000);

/// Operations that take no query parameters refuse one instead of ignoring it: a caller who
/// believes it pages or filters (`?limit=-5`, `?since=abc`) learns that it does not.
async fn parameterless_reads_refuse_parameters(app: TestApp) {
    for path in [
        "/v1/audit/checkpoints?limit=-5",
        "/v1/audit/export?since=abc",
        "/v1/audit/export?x",
    ] {
        let r = app.get_json(path).await;
        assert_error(&r, 400, "validation_failed");
        assert_eq!(r.1["error"]["details"]["field"], "query", "{}", r.1);
    }
    assert_eq!(app.get_json("/v1/audit/checkpoints").await.0, 200);
    assert_eq!(app.get_json("/v1/audit/checkpoints?").await.0, 200);
    let r = app.get_json("/v1/audit/checkpoints?limit=5").await;
    assert_eq!(r.1["error"]["details"]["parameter"], "limit", "{}", r.1);
}
both_backends!(parameterless_reads_refuse_parameters);
