//! Routine sign-in: plain WebAuthn, no identity verification.

use crate::both_backends;
use crate::common::{assert_error, register, user_credentials, TestApp};
use passbind_core::model::Write;
use passbind_proto::session::SessionState;
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};

async fn sign_in(app: &TestApp, device: &Device, body: Value) -> (String, Value) {
    let opened = app.post_json("/v1/authentications", &body).await;
    assert_eq!(opened.0, 201, "{}", opened.1);
    let id = opened.1["id"].as_str().unwrap().to_owned();
    let assertion = device
        .authenticator
        .get(&app.origin(), &opened.1["webauthn"])
        .await
        .unwrap();
    (id, assertion)
}

async fn complete(app: &TestApp, id: &str, assertion: &Value) -> (u16, Value) {
    app.post_json(
        &format!("/v1/authentications/{id}/complete"),
        &json!({ "credential": assertion }),
    )
    .await
}

async fn routine_and_usernameless_sign_in(app: TestApp) {
    let phone = Device::new();
    register(&app, "alice", &Person::new(1), &phone).await;
    let before = user_credentials(&app, "alice").await.remove(0);

    let (id, assertion) = sign_in(&app, &phone, json!({"external_user_id": "alice"})).await;
    let path = format!("/v1/authentications/{id}/complete");
    let done = app
        .post_json(&path, &json!({ "credential": assertion }))
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");
    assert_eq!(done.1["external_user_id"], "alice");
    assert_eq!(done.1["credential_id"], before.credential_id.as_str());
    assert_eq!(done.1["assertion"]["user_verified"], true);
    assert_eq!(done.1["assertion"]["counter"], "advanced");
    let after = user_credentials(&app, "alice").await.remove(0);
    assert!(after.sign_count > before.sign_count);
    assert!(after.last_used_at.is_some());

    // Replaying the same assertion: the session is closed, and a new session has another
    // challenge.
    assert_error(
        &app.post_json(&path, &json!({ "credential": assertion }))
            .await,
        409,
        "invalid_state",
    );
    let other = app
        .post_json("/v1/authentications", &json!({"external_user_id": "alice"}))
        .await;
    let r = app
        .post_json(
            &format!(
                "/v1/authentications/{}/complete",
                other.1["id"].as_str().unwrap()
            ),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_error(&r, 422, "webauthn_verification_failed");
    assert_eq!(r.1["error"]["details"]["reason"], "challenge_mismatch");

    // Usernameless: no allow list; the user comes from the credential and its user handle.
    let (id, assertion) = sign_in(&app, &phone, json!({})).await;
    let done = app
        .post_json(
            &format!("/v1/authentications/{id}/complete"),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["external_user_id"], "alice");

    // A credential of another user for a session opened for alice: refused.
    let bob_phone = Device::new();
    register(&app, "bob", &Person::new(2), &bob_phone).await;
    let opened = app
        .post_json("/v1/authentications", &json!({"external_user_id": "alice"}))
        .await;
    let mut bob_options = opened.1["webauthn"].clone();
    bob_options["publicKey"]["allowCredentials"] = json!([]);
    let bob_assertion = bob_phone
        .authenticator
        .get(&app.origin(), &bob_options)
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!(
                "/v1/authentications/{}/complete",
                opened.1["id"].as_str().unwrap()
            ),
            &json!({ "credential": bob_assertion }),
        )
        .await;
    assert_error(&r, 422, "webauthn_verification_failed");
    assert_eq!(r.1["error"]["details"]["reason"], "credential_not_allowed");

    // Unknown users, malformed assertions.
    assert_error(
        &app.post_json(
            "/v1/authentications",
            &json!({"external_user_id": "nobody"}),
        )
        .await,
        404,
        "user_not_found",
    );
    let (id, _) = sign_in(&app, &phone, json!({"external_user_id": "alice"})).await;
    for junk in [
        json!({}),
        json!({"credential": 1}),
        json!({"credential": {"id": "AA", "response": {}}}),
    ] {
        let r = app
            .post_json(&format!("/v1/authentications/{id}/complete"), &junk)
            .await;
        assert!(r.0 == 400 || r.0 == 422, "{r:?}");
    }
    // ...and the session is still usable.
    let (_, good) = sign_in(&app, &phone, json!({"external_user_id": "alice"})).await;
    let _ = good;
}
both_backends!(routine_and_usernameless_sign_in);

async fn revoked_credentials_and_counters(app: TestApp) {
    let phone = Device::new();
    register(&app, "carol", &Person::new(3), &phone).await;
    let cred = user_credentials(&app, "carol").await.remove(0);

    // A counter that goes backwards (a cloned authenticator) is recorded and reported.
    app.server
        .engine
        .store()
        .commit(vec![Write::UpdateCredentialUse {
            credential_id: cred.credential_id.clone(),
            sign_count: 1_000_000,
            backed_up: false,
            last_used_at: 1,
            require_advance: false,
        }])
        .await
        .unwrap();
    let (id, assertion) = sign_in(&app, &phone, json!({"external_user_id": "carol"})).await;
    let done = app
        .post_json(
            &format!("/v1/authentications/{id}/complete"),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["assertion"]["counter"], "regressed");
    assert_eq!(
        user_credentials(&app, "carol").await[0].sign_count,
        1_000_000
    );

    // Revoked: cannot sign in.
    let r = app
        .raw(
            reqwest::Method::DELETE,
            &format!("/v1/users/carol/credentials/{}", cred.credential_id),
            None,
            Some(&format!("Bearer {}", app.api_key)),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let opened = app
        .post_json("/v1/authentications", &json!({"external_user_id": "carol"}))
        .await;
    assert_error(&opened, 409, "invalid_state");
    let (id, assertion) = sign_in(&app, &phone, json!({})).await;
    let r = app
        .post_json(
            &format!("/v1/authentications/{id}/complete"),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_error(&r, 422, "webauthn_verification_failed");
    assert_eq!(r.1["error"]["details"]["reason"], "credential_revoked");
}
both_backends!(revoked_credentials_and_counters);

async fn counter_regression_refused_when_configured(app: TestApp) {
    let phone = Device::new();
    register(&app, "dan", &Person::new(4), &phone).await;
    let cred = user_credentials(&app, "dan").await.remove(0);
    app.server
        .engine
        .store()
        .commit(vec![Write::UpdateCredentialUse {
            credential_id: cred.credential_id.clone(),
            sign_count: 1_000_000,
            backed_up: false,
            last_used_at: 1,
            require_advance: false,
        }])
        .await
        .unwrap();
    let (id, assertion) = sign_in(&app, &phone, json!({"external_user_id": "dan"})).await;
    let r = app
        .post_json(
            &format!("/v1/authentications/{id}/complete"),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_error(&r, 422, "webauthn_verification_failed");
    assert_eq!(r.1["error"]["details"]["reason"], "counter_regressed");
    let s = app.get_json(&format!("/v1/authentications/{id}")).await;
    assert_eq!(s.1["state"], "created");
}
both_backends!(counter_regression_refused_when_configured, |s| s
    .reject_counter_regression =
    true);

async fn concurrent_completion_wins_once(app: TestApp) {
    let phone = Device::new();
    register(&app, "erin", &Person::new(5), &phone).await;
    let (id, assertion) = sign_in(&app, &phone, json!({"external_user_id": "erin"})).await;
    let path = format!("/v1/authentications/{id}/complete");
    let body = json!({ "credential": assertion });
    let results = futures::future::join_all((0..8).map(|_| app.post_json(&path, &body))).await;
    assert_eq!(
        results.iter().filter(|r| r.0 == 200).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 409),
        "{results:?}"
    );
    let s = app.get_json(&format!("/v1/authentications/{id}")).await;
    assert_eq!(s.1["state"], "completed");
    assert_eq!(
        passbind_proto::session::SessionState::Completed,
        serde_json::from_value::<SessionState>(s.1["state"].clone()).unwrap()
    );
}
both_backends!(concurrent_completion_wins_once);

/// Completions of one session racing with the counter policy on (a client retrying after a
/// network error does this): one wins, the others hear the lost race (`409 invalid_state`),
/// never a cloned authenticator (`counter_regressed`), and nothing records one.
async fn duplicate_completion_is_not_a_counter_regression(app: TestApp) {
    let phone = Device::new();
    register(&app, "faye", &Person::new(6), &phone).await;
    for _ in 0..4 {
        let (id, assertion) = sign_in(&app, &phone, json!({"external_user_id": "faye"})).await;
        let path = format!("/v1/authentications/{id}/complete");
        let body = json!({ "credential": assertion });
        let results = futures::future::join_all((0..8).map(|_| app.post_json(&path, &body))).await;
        assert_eq!(
            results.iter().filter(|r| r.0 == 200).count(),
            1,
            "{results:?}"
        );
        for r in results.iter().filter(|r| r.0 != 200) {
            assert_error(r, 409, "invalid_state");
        }
    }
    let r = app
        .get_json("/v1/audit/events?event_type=security.refused&limit=1000")
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let regressions =
        r.1.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["details"]["webauthn_reason"] == "counter_regressed")
            .count();
    assert_eq!(regressions, 0, "{}", r.1);
}
both_backends!(duplicate_completion_is_not_a_counter_regression, |s| s
    .reject_counter_regression =
    true);

/// Two sign-ins of one credential (counters k+1 and k+2, two sessions) completed at the same
/// moment: both succeed and the stored counter ends at k+2, whichever commits last.
async fn concurrent_sign_ins_keep_the_highest_counter(app: TestApp) {
    let phone = Device::new();
    register(&app, "gus", &Person::new(7), &phone).await;
    for _ in 0..6 {
        let (first, older) = sign_in(&app, &phone, json!({"external_user_id": "gus"})).await;
        let (second, newer) = sign_in(&app, &phone, json!({"external_user_id": "gus"})).await;
        let newest = passbind_webauthn_counter(&newer);
        assert_eq!(passbind_webauthn_counter(&older) + 1, newest);
        let (a, b) = futures::future::join(
            app.post_json(
                &format!("/v1/authentications/{second}/complete"),
                &json!({ "credential": newer }),
            ),
            app.post_json(
                &format!("/v1/authentications/{first}/complete"),
                &json!({ "credential": older }),
            ),
        )
        .await;
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(b.0, 200, "{}", b.1);
        let stored = user_credentials(&app, "gus").await.remove(0).sign_count;
        assert_eq!(stored, i64::from(newest));
    }
}
both_backends!(concurrent_sign_ins_keep_the_highest_counter);

/// The signature counter an assertion carries (authenticatorData bytes 33..37).
fn passbind_webauthn_counter(assertion: &Value) -> u32 {
    use base64::Engine as _;
    let data = assertion["response"]["authenticatorData"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data.trim_end_matches('='))
        .unwrap();
    u32::from_be_bytes(raw[33..37].try_into().unwrap())
}

/// The completion reads the credential named by the assertion's `id` together with the
/// session; an `id` naming another user's credential than `rawId` is refused as malformed,
/// and neither credential changes.
async fn an_id_naming_another_credential_is_refused(app: TestApp) {
    let alice_phone = Device::new();
    let bob_phone = Device::new();
    register(&app, "alice", &Person::new(8), &alice_phone).await;
    register(&app, "bob", &Person::new(9), &bob_phone).await;
    let bob = user_credentials(&app, "bob").await.remove(0);
    for body in [json!({"external_user_id": "alice"}), json!({})] {
        let (id, mut assertion) = sign_in(&app, &alice_phone, body).await;
        let before = user_credentials(&app, "alice").await.remove(0);
        assertion["id"] = json!(bob.credential_id);
        let r = complete(&app, &id, &assertion).await;
        assert_error(&r, 422, "webauthn_verification_failed");
        assert_eq!(user_credentials(&app, "alice").await.remove(0), before);
        assert_eq!(user_credentials(&app, "bob").await.remove(0), bob);
        let s = app.get_json(&format!("/v1/authentications/{id}")).await;
        assert_eq!(s.1["state"], "created");
    }
}
both_backends!(an_id_naming_another_credential_is_refused);

/// L3 §7.2 step 6: a returned `userHandle` must be the credential owner's. Alice's assertion
/// carrying Bob's user handle (it is not covered by the signature) is refused, named and
/// usernameless, and changes nothing.
async fn another_users_handle_is_refused(app: TestApp) {
    let alice_phone = Device::new();
    let bob_phone = Device::new();
    register(&app, "alice", &Person::new(10), &alice_phone).await;
    register(&app, "bob", &Person::new(11), &bob_phone).await;
    let (_, bobs) = sign_in(&app, &bob_phone, json!({})).await;
    let bob_handle = bobs["response"]["userHandle"].clone();
    assert!(bob_handle.is_string(), "{bobs}");
    for body in [json!({"external_user_id": "alice"}), json!({})] {
        let (id, mut assertion) = sign_in(&app, &alice_phone, body).await;
        assert_ne!(assertion["response"]["userHandle"], bob_handle);
        assertion["response"]["userHandle"] = bob_handle.clone();
        let before = user_credentials(&app, "alice").await.remove(0);
        let r = complete(&app, &id, &assertion).await;
        assert_error(&r, 422, "webauthn_verification_failed");
        assert_eq!(r.1["error"]["details"]["reason"], "user_handle_mismatch");
        assert_eq!(user_credentials(&app, "alice").await.remove(0), before);
        let s = app.get_json(&format!("/v1/authentications/{id}")).await;
        assert_eq!(s.1["state"], "created");
    }
}
both_backends!(another_users_handle_is_refused);
