//! The registration flow end to end: real HTTP, a software authenticator producing real
//! attestations, simulated captures, and the simulator's real signed webhooks.

use crate::both_backends;
use crate::common::{
    assert_error, open_req, register, user_credentials, verified_session, TestApp,
};
use passbind_proto::registration::{CompleteRegistration, PriorBiometric};
use passbind_proto::session::SessionState;
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};

async fn full_registration(app: TestApp) {
    let device = Device::new();
    let done = register(&app, "alice", &Person::new(1), &device).await;
    assert_eq!(done.state, SessionState::Completed);
    let cid = done.credential_id.clone().unwrap();
    let creds = user_credentials(&app, "alice").await;
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].credential_id, cid);
    assert!(creds[0].public_key.is_some());
    assert_eq!(creds[0].device_label.as_deref(), Some("test phone"));
    // The biometric token is stored, encrypted, once.
    let store = app.server.engine.store();
    let user = store.user_by_external_id("alice").await.unwrap().unwrap();
    assert!(store.ebt(&user.id).await.unwrap().is_some());
    // Reading the session shows it completed, without the sdk token.
    let read = app.client.registration(&done.id).await.unwrap();
    assert_eq!(read.state, SessionState::Completed);
    assert!(read.idv.unwrap().sdk_token.is_none());
}
both_backends!(full_registration);

async fn second_device_reuses_the_stored_token(app: TestApp) {
    let alice = Person::new(2);
    register(&app, "alice2", &alice, &Device::new()).await;
    let store = app.server.engine.store();
    let user = store.user_by_external_id("alice2").await.unwrap().unwrap();
    let ebt_before = store.ebt(&user.id).await.unwrap().unwrap();

    // A second phone: a face-only match against the stored token, no document.
    let phone2 = Device::new();
    let (opened, after) =
        verified_session(&app, open_req("alice2"), &phone2, &alice.face_capture(7)).await;
    assert!(opened.idv.as_ref().unwrap().face_only);
    assert_eq!(after.state, SessionState::IdvPassed);
    let cred = phone2
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let done = app
        .client
        .complete_registration(
            &opened.id,
            &CompleteRegistration {
                credential: Some(cred),
                credential_id: None,
                device_label: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state, SessionState::Completed);
    assert_eq!(user_credentials(&app, "alice2").await.len(), 2);
    // The token is the same record: stored once per user.
    assert_eq!(store.ebt(&user.id).await.unwrap().unwrap(), ebt_before);

    // Someone else's face on a third phone is refused, and no credential is created.
    let mallory = Person::new(666);
    let (opened, after) = verified_session(
        &app,
        open_req("alice2"),
        &Device::new(),
        &mallory.face_capture(1),
    )
    .await;
    assert_eq!(after.state, SessionState::IdvFailed);
    let cred = Device::new()
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!("/v1/registrations/{}/complete", opened.id),
            &json!({ "credential": cred }),
        )
        .await;
    assert_error(&r, 422, "biometric_mismatch");
    assert_eq!(user_credentials(&app, "alice2").await.len(), 2);
}
both_backends!(second_device_reuses_the_stored_token);

/// Reads a run's output from the simulator, as an integrator with provider access could.
async fn simulator_ebt(app: &TestApp, run_id: &str) -> String {
    let url = format!("{}/simulator/v3.6/workflow_runs/{run_id}", app.base);
    let run: Value = app
        .http
        .get(url)
        .header(
            "authorization",
            format!("Token token={}", app.simulator_api_token()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    run["output"]["encrypted_biometric_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn prior_biometric_mismatch_creates_nothing(app: TestApp) {
    // Bob enrols normally; the integrator holds his token from the provider.
    let bob = Person::new(3);
    let done = register(&app, "bob", &bob, &Device::new()).await;
    let run_id = done.idv.unwrap().run_id;
    let token = simulator_ebt(&app, &run_id).await;

    // A new account presents Bob's token with another person's face: declined.
    let mut req = open_req("bob-migrated");
    req.prior_biometric = Some(PriorBiometric {
        encrypted_biometric_token: token.clone(),
    });
    let device = Device::new();
    let (opened, after) =
        verified_session(&app, req.clone(), &device, &Person::new(4).face_capture(1)).await;
    assert!(opened.idv.as_ref().unwrap().face_only);
    assert_eq!(after.state, SessionState::IdvFailed);
    assert_eq!(after.idv.as_ref().unwrap().verdict, "failed");
    let cred = device
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!("/v1/registrations/{}/complete", opened.id),
            &json!({ "credential": cred }),
        )
        .await;
    assert_error(&r, 422, "biometric_mismatch");
    assert!(user_credentials(&app, "bob-migrated").await.is_empty());
    let store = app.server.engine.store();
    let u = store
        .user_by_external_id("bob-migrated")
        .await
        .unwrap()
        .unwrap();
    assert!(
        store.ebt(&u.id).await.unwrap().is_none(),
        "a failed match stores no token"
    );

    // Bob's own face with his token: passes, and the supplied token becomes the account's.
    let device = Device::new();
    let mut req = open_req("bob-migrated");
    req.prior_biometric = Some(PriorBiometric {
        encrypted_biometric_token: token,
    });
    let (_, after) = verified_session(&app, req, &device, &bob.face_capture(9)).await;
    assert_eq!(after.state, SessionState::IdvPassed);
    assert!(store.ebt(&u.id).await.unwrap().is_some());
}
both_backends!(prior_biometric_mismatch_creates_nothing);

fn webhook_body(run_id: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"payload": {
        "resource_type": "workflow_run",
        "action": "workflow_run.completed",
        "object": {
            "id": run_id,
            "status": status,
            "completed_at_iso8601": "2026-01-01T00:00:00Z",
            "href": format!("https://idv.invalid/v3.6/workflow_runs/{run_id}")
        }
    }}))
    .unwrap()
}

async fn send_webhook(app: &TestApp, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/webhooks/idv/simulator", app.base))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("X-SHA2-Signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn forged_replayed_and_unknown_webhooks(app: TestApp) {
    let opened = app
        .client
        .open_registration(&open_req("carol"))
        .await
        .unwrap();
    let run_id = opened.idv.clone().unwrap().run_id;
    let body = webhook_body(&run_id, "approved");
    let good_sig = passbind_idv::signature::sign_sha2(app.webhook_token().as_bytes(), &body);

    // Unsigned and forged: 401, and the session is untouched.
    assert_error(
        &send_webhook(&app, &body, None).await,
        401,
        "invalid_signature",
    );
    let forged = passbind_idv::signature::sign_sha2(b"not-the-token", &body);
    assert_error(
        &send_webhook(&app, &body, Some(forged)).await,
        401,
        "invalid_signature",
    );
    // A valid signature over a different body (tampered after signing): 401.
    let tampered = webhook_body(&run_id, "declined");
    assert_error(
        &send_webhook(&app, &tampered, Some(good_sig.clone())).await,
        401,
        "invalid_signature",
    );
    // Correctly signed, claims "approved", but the run has no capture yet: the provider's
    // authoritative record says otherwise, so nothing changes.
    let r = send_webhook(&app, &body, Some(good_sig.clone())).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["status"], "not_terminal");
    let s = app.client.registration(&opened.id).await.unwrap();
    assert_eq!(s.state, SessionState::IdvPending);
    assert_eq!(s.idv.unwrap().verdict, "pending");

    // Unknown run: rejected.
    let unknown = webhook_body("00000000-0000-4000-8000-0000000000ff", "approved");
    let sig = passbind_idv::signature::sign_sha2(app.webhook_token().as_bytes(), &unknown);
    assert_error(
        &send_webhook(&app, &unknown, Some(sig)).await,
        404,
        "unknown_idv_run",
    );

    // The real capture: the simulator delivers the verdict once.
    let device = Device::new();
    device
        .submit_capture(
            opened.idv.as_ref().unwrap(),
            &Person::new(5).enrolment_capture(1),
        )
        .await
        .unwrap();
    let after = app.wait_verdict(&opened.id).await;
    assert_eq!(after.state, SessionState::IdvPassed);
    let version_after = app
        .server
        .engine
        .store()
        .session(&opened.id)
        .await
        .unwrap()
        .unwrap()
        .version;
    // The same delivery again: a duplicate, applied once.
    let r = send_webhook(&app, &body, Some(good_sig.clone())).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["status"], "duplicate");
    let again = send_webhook(&app, &body, Some(good_sig)).await;
    assert_eq!(again.1["status"], "duplicate");
    let version_now = app
        .server
        .engine
        .store()
        .session(&opened.id)
        .await
        .unwrap()
        .unwrap()
        .version;
    assert_eq!(
        version_after, version_now,
        "a replay must not change the session"
    );

    // Garbage after a valid signature is a clean 4xx.
    let junk = b"{not json".to_vec();
    let sig = passbind_idv::signature::sign_sha2(app.webhook_token().as_bytes(), &junk);
    let r = send_webhook(&app, &junk, Some(sig)).await;
    assert_error(&r, 400, "validation_failed");
    // An unknown provider in the path.
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/webhooks/idv/nope",
            Some(("application/json", body.clone())),
            None,
        )
        .await;
    assert_error(&r, 404, "unknown_idv_provider");
}
both_backends!(forged_replayed_and_unknown_webhooks);

async fn completion_is_refused_out_of_order(app: TestApp) {
    let device = Device::new();
    let person = Person::new(6);
    // Before the verdict.
    let opened = app
        .client
        .open_registration(&open_req("dave"))
        .await
        .unwrap();
    let cred = device
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let complete = json!({ "credential": cred });
    let path = format!("/v1/registrations/{}/complete", opened.id);
    assert_error(&app.post_json(&path, &complete).await, 409, "invalid_state");

    // After cancel (even once the verdict has passed).
    device
        .submit_capture(opened.idv.as_ref().unwrap(), &person.enrolment_capture(1))
        .await
        .unwrap();
    assert_eq!(
        app.wait_verdict(&opened.id).await.state,
        SessionState::IdvPassed
    );
    let cancelled = app.client.cancel_registration(&opened.id).await.unwrap();
    assert_eq!(cancelled.state, SessionState::Cancelled);
    assert_error(&app.post_json(&path, &complete).await, 409, "invalid_state");
    assert_error(
        &app.post_json(
            &format!("/v1/registrations/{}/cancel", opened.id),
            &json!({}),
        )
        .await,
        409,
        "invalid_state",
    );
    assert!(user_credentials(&app, "dave").await.is_empty());

    // After expiry.
    let mut req = open_req("dave");
    req.ttl_seconds = Some(1);
    let opened = app.client.open_registration(&req).await.unwrap();
    device
        .submit_capture(opened.idv.as_ref().unwrap(), &person.face_capture(2))
        .await
        .unwrap();
    app.clock.advance(std::time::Duration::from_millis(1100));
    let cred = device
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!("/v1/registrations/{}/complete", opened.id),
            &json!({ "credential": cred }),
        )
        .await;
    assert_error(&r, 410, "session_expired");
    let read = app.client.registration(&opened.id).await.unwrap();
    assert_eq!(read.state, SessionState::Expired);
    assert!(user_credentials(&app, "dave").await.is_empty());

    // Twice, concurrently: exactly one wins.
    let (opened, after) =
        verified_session(&app, open_req("dave"), &device, &person.face_capture(3)).await;
    assert_eq!(after.state, SessionState::IdvPassed);
    let cred = device
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let path = format!("/v1/registrations/{}/complete", opened.id);
    let body = json!({ "credential": cred });
    let attempts = futures::future::join_all((0..8).map(|_| app.post_json(&path, &body))).await;
    let ok = attempts.iter().filter(|r| r.0 == 200).count();
    assert_eq!(ok, 1, "{attempts:?}");
    for r in attempts.iter().filter(|r| r.0 != 200) {
        assert_eq!(r.0, 409, "{r:?}");
        assert!(
            r.1["error"]["code"] == "invalid_state" || r.1["error"]["code"] == "conflict",
            "{r:?}"
        );
    }
    assert_eq!(user_credentials(&app, "dave").await.len(), 1);
    // And once more, sequentially: refused.
    assert_error(&app.post_json(&path, &body).await, 409, "invalid_state");
}
both_backends!(completion_is_refused_out_of_order);

async fn a_tampered_attestation_is_refused(app: TestApp) {
    let device = Device::new();
    let (opened, after) = verified_session(
        &app,
        open_req("erin"),
        &device,
        &Person::new(8).enrolment_capture(1),
    )
    .await;
    assert_eq!(after.state, SessionState::IdvPassed);
    let options = opened.webauthn.clone().unwrap();
    // Signed for another origin.
    let wrong_origin = device
        .authenticator
        .create("http://localhost:1", &options)
        .await
        .unwrap();
    let path = format!("/v1/registrations/{}/complete", opened.id);
    let r = app
        .post_json(&path, &json!({ "credential": wrong_origin }))
        .await;
    assert_error(&r, 422, "webauthn_verification_failed");
    assert!(r.1["error"]["details"]["reason"].is_string());
    // Not a credential at all.
    let r = app
        .post_json(&path, &json!({ "credential": {"id": 5} }))
        .await;
    assert_error(&r, 422, "webauthn_verification_failed");
    // Missing.
    let r = app.post_json(&path, &json!({})).await;
    assert_error(&r, 400, "validation_failed");
    // The session is still completable with the genuine response.
    let good = device
        .authenticator
        .create(&app.origin(), &options)
        .await
        .unwrap();
    let r = app.post_json(&path, &json!({ "credential": good })).await;
    assert_eq!(r.0, 200, "{}", r.1);
}
both_backends!(a_tampered_attestation_is_refused);

/// First opens racing for one new external id all succeed and join one user: the losers of
/// the user's insert open again for the winner (nothing of theirs was stored), so every
/// session's WebAuthn options carry the one user's handle.
async fn racing_first_opens_join_one_user(app: TestApp) {
    use base64::Engine as _;
    let body = json!({"external_user_id": "new-user"});
    let opens =
        futures::future::join_all((0..8).map(|_| app.post_json("/v1/registrations", &body))).await;
    for r in &opens {
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let store = app.server.engine.store();
    let user = store
        .user_by_external_id("new-user")
        .await
        .unwrap()
        .unwrap();
    let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&user.user_handle);
    for r in &opens {
        assert_eq!(
            r.1["webauthn"]["publicKey"]["user"]["id"],
            handle.as_str(),
            "{}",
            r.1
        );
        let id = r.1["id"].as_str().unwrap();
        let s = store.session(id).await.unwrap().unwrap();
        assert_eq!(s.user_id, user.id);
    }
    assert_eq!(
        store.sessions_of_user(&user.id, 100).await.unwrap().len(),
        8
    );
}
both_backends!(racing_first_opens_join_one_user);

/// Strangers cannot write the audit log through the webhook route: 250 posts with a bad
/// signature give 250 `401`s and one summarising event (the rest are counted into the next
/// one, at most one per minute), and a post to an unknown provider is a `404` that records
/// nothing, so the path's text (a name, a passport number) never reaches the log.
async fn webhook_strangers_do_not_grow_the_log(app: TestApp) {
    let refused = |events: &Value| -> Vec<Value> {
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == "webhook.received" && e["outcome"] == "refused")
            .cloned()
            .collect()
    };
    let before = app.get_json("/v1/audit/events?limit=1000").await.1;
    let body = webhook_body("00000000-0000-4000-8000-000000000001", "approved");
    let forged = futures::future::join_all(
        (0..250).map(|_| send_webhook(&app, &body, Some("t=1,v1=00".into()))),
    )
    .await;
    for r in &forged {
        assert_error(r, 401, "invalid_signature");
    }
    let planted = "Jane%20Doe%20P1234567";
    let r = app
        .raw(
            reqwest::Method::POST,
            &format!("/v1/webhooks/idv/{planted}"),
            Some(("application/json", body.clone())),
            None,
        )
        .await;
    assert_error(&r, 404, "unknown_idv_provider");
    let after = app.get_json("/v1/audit/events?limit=1000").await.1;
    let new: Vec<Value> = refused(&after)
        .into_iter()
        .filter(|e| !refused(&before).contains(e))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["reason"], "invalid_signature");
    assert_eq!(new[0]["details"]["count"], 1);
    assert_eq!(new[0]["actor"]["id"], "simulator");
    let text = after.to_string();
    assert!(
        !text.contains("Jane") && !text.contains("P1234567"),
        "{text}"
    );
}
both_backends!(webhook_strangers_do_not_grow_the_log);
