//! In-app step-up: a live face match gates an assertion bound to the transaction.

use crate::both_backends;
use crate::common::{assert_error, open_req, register, TestApp};
use passbind_proto::session::SessionState;
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};

async fn open_step_up(app: &TestApp, user: &str, tx: Value) -> Value {
    let r = app
        .post_json(
            "/v1/step-ups",
            &json!({"external_user_id": user, "transaction_context": tx}),
        )
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    r.1
}

async fn capture(
    app: &TestApp,
    device: &Device,
    session: &Value,
    person: &Person,
    seed: u64,
) -> Value {
    let idv: passbind_proto::session::IdvView =
        serde_json::from_value(session["idv"].clone()).unwrap();
    device
        .submit_capture(&idv, &person.face_capture(seed))
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap();
    serde_json::to_value(app.wait_verdict_at("step-ups", id).await).unwrap()
}

async fn complete(app: &TestApp, id: &str, assertion: &Value) -> (u16, Value) {
    app.post_json(
        &format!("/v1/step-ups/{id}/complete"),
        &json!({ "credential": assertion }),
    )
    .await
}

async fn step_up_binds_the_transaction(app: TestApp) {
    let alice = Person::new(11);
    let phone = Device::new();
    register(&app, "alice", &alice, &phone).await;

    let tx = json!({"amount": "10.00", "currency": "EUR", "payee": "NL91ABNA0417164300"});
    let s = open_step_up(&app, "alice", tx.clone()).await;
    assert_eq!(s["state"], "idv_pending");
    assert_eq!(s["idv"]["face_only"], true);
    let expected_hash = {
        let canon = passbind_core::flows::common::canonical_json(&tx);
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            canon.as_bytes(),
        ))
    };
    assert_eq!(s["transaction_context_hash"], expected_hash);
    let after = capture(&app, &phone, &s, &alice, 1).await;
    assert_eq!(after["state"], "idv_passed");
    let assertion = phone
        .authenticator
        .get(&app.origin(), &s["webauthn"])
        .await
        .unwrap();

    // A second step-up for a bigger amount: its challenge differs, so the first assertion
    // cannot complete it.
    let big = open_step_up(
        &app,
        "alice",
        json!({"amount": "10000.00", "currency": "EUR"}),
    )
    .await;
    assert_ne!(
        big["webauthn"]["publicKey"]["challenge"],
        s["webauthn"]["publicKey"]["challenge"]
    );
    capture(&app, &phone, &big, &alice, 2).await;
    let r = complete(&app, big["id"].as_str().unwrap(), &assertion).await;
    assert_error(&r, 422, "webauthn_verification_failed");
    assert_eq!(r.1["error"]["details"]["reason"], "challenge_mismatch");

    let done = complete(&app, s["id"].as_str().unwrap(), &assertion).await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");
    assert_eq!(done.1["assertion"]["user_verified"], true);
    // Once only.
    assert_error(
        &complete(&app, s["id"].as_str().unwrap(), &assertion).await,
        409,
        "invalid_state",
    );
}
both_backends!(step_up_binds_the_transaction);

async fn a_mismatch_is_refused_then_retried_then_ends_the_session(app: TestApp) {
    let alice = Person::new(12);
    let mallory = Person::new(13);
    let phone = Device::new();
    register(&app, "alice", &alice, &phone).await;

    let s = open_step_up(&app, "alice", json!({"action": "change-email"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let assertion = phone
        .authenticator
        .get(&app.origin(), &s["webauthn"])
        .await
        .unwrap();
    // Completing before any verdict.
    assert_error(&complete(&app, &id, &assertion).await, 409, "invalid_state");
    // Someone else's face: the session waits for a new capture, completion is refused.
    let after = capture(&app, &phone, &s, &mallory, 1).await;
    assert_eq!(after["state"], "capture_failed");
    assert_eq!(after["captures"]["failed"], 1);
    assert_error(
        &complete(&app, &id, &assertion).await,
        422,
        "biometric_mismatch",
    );
    // A retry issues a new run; the right face then passes and completion works.
    let retried = app
        .post_json(&format!("/v1/step-ups/{id}/retry"), &json!({}))
        .await;
    assert_eq!(retried.0, 200, "{}", retried.1);
    assert_ne!(retried.1["idv"]["run_id"], s["idv"]["run_id"]);
    assert!(retried.1["idv"]["sdk_token"].is_string());
    // Retrying while the capture is pending is refused.
    assert_error(
        &app.post_json(&format!("/v1/step-ups/{id}/retry"), &json!({}))
            .await,
        409,
        "invalid_state",
    );
    let after = capture(&app, &phone, &retried.1, &alice, 2).await;
    assert_eq!(after["state"], "idv_passed");
    let done = complete(&app, &id, &assertion).await;
    assert_eq!(done.0, 200, "{}", done.1);

    // Three mismatches (the default limit) end the session.
    let s = open_step_up(&app, "alice", json!({"n": 2})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let mut current = s.clone();
    for attempt in 1..=3u64 {
        let after = capture(&app, &phone, &current, &mallory, attempt).await;
        if attempt < 3 {
            assert_eq!(after["state"], "capture_failed");
            current = app
                .post_json(&format!("/v1/step-ups/{id}/retry"), &json!({}))
                .await
                .1;
        } else {
            assert_eq!(after["state"], "idv_failed");
            assert_eq!(after["idv"]["failure_reason"], "declined");
        }
    }
    let assertion = phone
        .authenticator
        .get(&app.origin(), &s["webauthn"])
        .await
        .unwrap();
    assert_error(
        &complete(&app, &id, &assertion).await,
        422,
        "biometric_mismatch",
    );
    assert_error(
        &app.post_json(&format!("/v1/step-ups/{id}/retry"), &json!({}))
            .await,
        409,
        "invalid_state",
    );
}
both_backends!(a_mismatch_is_refused_then_retried_then_ends_the_session);

async fn repeated_failures_lock_step_up(app: TestApp) {
    let alice = Person::new(14);
    let mallory = Person::new(15);
    let phone = Device::new();
    register(&app, "alice", &alice, &phone).await;
    for i in 0..2u64 {
        let s = open_step_up(&app, "alice", json!({"i": i})).await;
        let after = capture(&app, &phone, &s, &mallory, i).await;
        assert_eq!(after["captures"]["failed"], 1);
    }
    let r = app
        .post_json("/v1/step-ups", &json!({"external_user_id": "alice"}))
        .await;
    assert_error(&r, 429, "rate_limited");
    assert!(
        r.1["error"]["details"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    let r = app
        .post_json(
            "/v1/cross-platform-sessions",
            &json!({"external_user_id": "alice"}),
        )
        .await;
    assert_error(&r, 429, "rate_limited");
}
both_backends!(repeated_failures_lock_step_up, |s| s.lockout_threshold = 2);

async fn step_up_needs_a_user_with_a_biometric_token(app: TestApp) {
    assert_error(
        &app.post_json("/v1/step-ups", &json!({"external_user_id": "ghost"}))
            .await,
        404,
        "user_not_found",
    );
    // A user whose registration never passed has no token.
    app.client
        .open_registration(&open_req("halfway"))
        .await
        .unwrap();
    assert_error(
        &app.post_json("/v1/step-ups", &json!({"external_user_id": "halfway"}))
            .await,
        422,
        "no_biometric_reference",
    );
    assert_error(
        &app.post_json("/v1/recoveries", &json!({"external_user_id": "halfway"}))
            .await,
        422,
        "no_biometric_reference",
    );
    assert_error(
        &app.post_json(
            "/v1/step-ups",
            &json!({"external_user_id": "halfway",
                    "workflow_input": {"custom_data": {"encrypted_biometric_token": "x"}}}),
        )
        .await,
        400,
        "reserved_key",
    );
    assert_error(
        &app.post_json("/v1/step-ups", &json!({"external_user_id": "a b"}))
            .await,
        400,
        "validation_failed",
    );
}
both_backends!(step_up_needs_a_user_with_a_biometric_token);

async fn an_expired_step_up_cannot_complete(app: TestApp) {
    let alice = Person::new(16);
    let phone = Device::new();
    register(&app, "alice", &alice, &phone).await;
    let r = app
        .post_json(
            "/v1/step-ups",
            &json!({"external_user_id": "alice", "ttl_seconds": 1}),
        )
        .await;
    let s = r.1;
    capture(&app, &phone, &s, &alice, 1).await;
    let assertion = phone
        .authenticator
        .get(&app.origin(), &s["webauthn"])
        .await
        .unwrap();
    app.clock.advance(std::time::Duration::from_millis(1100));
    let id = s["id"].as_str().unwrap();
    assert_error(
        &complete(&app, id, &assertion).await,
        410,
        "session_expired",
    );
    let read = app.get_json(&format!("/v1/step-ups/{id}")).await;
    assert_eq!(
        read.1["state"],
        serde_json::to_value(SessionState::Expired).unwrap()
    );
}
both_backends!(an_expired_step_up_cannot_complete);

/// The transaction hash is over RFC 8785 canonical JSON: two spellings of one number, in any
/// key order, are one context, over HTTP as in the core.
async fn number_spellings_are_one_transaction(app: TestApp) {
    register(&app, "ann", &Person::new(12), &Device::new()).await;
    let mut hashes = Vec::new();
    for body in [
        r#"{"external_user_id":"ann","transaction_context":{"amount":250.0,"currency":"EUR"}}"#,
        r#"{"transaction_context":{"currency":"EUR","amount":2.5e2},"external_user_id":"ann"}"#,
        r#"{"external_user_id":"ann","transaction_context":{"amount":250,"currency":"EUR"}}"#,
    ] {
        let auth = format!("Bearer {}", app.api_key);
        let r = app
            .raw(
                reqwest::Method::POST,
                "/v1/step-ups",
                Some(("application/json", body.as_bytes().to_vec())),
                Some(&auth),
            )
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
        hashes.push(r.1["transaction_context_hash"].as_str().unwrap().to_owned());
    }
    // `printf '%s' '{"amount":250,"currency":"EUR"}' | sha256sum`
    let expected = "48f3d566a902815df4326eca26f5696c6b20ffac2c56715f0dcacf6eecae330a";
    assert_eq!(hashes, vec![expected; 3]);
}
both_backends!(number_spellings_are_one_transaction);
