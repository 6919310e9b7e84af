//! Account recovery on a new phone by a live face match.

use crate::both_backends;
use crate::common::{assert_error, register, user_credentials, TestApp};
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};

async fn matched_recovery(app: &TestApp, user: &str, person: &Person, phone: &Device) -> Value {
    let r = app
        .post_json("/v1/recoveries", &json!({ "external_user_id": user }))
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let idv = serde_json::from_value(r.1["idv"].clone()).unwrap();
    phone
        .submit_capture(&idv, &person.face_capture(5))
        .await
        .unwrap();
    let id = r.1["id"].as_str().unwrap();
    serde_json::to_value(app.wait_verdict_at("recoveries", id).await).unwrap()
}

async fn recovery_on_a_new_phone(app: TestApp) {
    let alice = Person::new(31);
    let old_phone = Device::new();
    register(&app, "alice", &alice, &old_phone).await;
    let store = app.server.engine.store();
    let user = store.user_by_external_id("alice").await.unwrap().unwrap();
    let token_before = store.ebt(&user.id).await.unwrap().unwrap();

    let new_phone = Device::new();
    let s = matched_recovery(&app, "alice", &alice, &new_phone).await;
    assert_eq!(s["state"], "idv_passed");
    let id = s["id"].as_str().unwrap().to_owned();
    // Completing before the exchange is refused.
    assert_error(
        &app.post_json(
            &format!("/v1/recoveries/{id}/complete"),
            &json!({"credential": {}}),
        )
        .await,
        409,
        "invalid_state",
    );
    let c = app
        .post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
        .await;
    assert_eq!(c.0, 200, "{}", c.1);
    let continuation = c.1["continuation"]["token"].as_str().unwrap().to_owned();
    // Issued once.
    assert_error(
        &app.post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
            .await,
        409,
        "invalid_state",
    );
    let ex = app
        .post_json(
            "/v1/recoveries/exchange",
            &json!({ "continuation": continuation }),
        )
        .await;
    assert_eq!(ex.0, 200, "{}", ex.1);
    assert_error(
        &app.post_json(
            "/v1/recoveries/exchange",
            &json!({ "continuation": continuation }),
        )
        .await,
        410,
        "continuation_invalid",
    );
    let cred = new_phone
        .authenticator
        .create(&app.origin(), &ex.1["webauthn"])
        .await
        .unwrap();
    let done = app
        .post_json(
            &format!("/v1/recoveries/{id}/complete"),
            &json!({ "credential": cred }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");

    // The old phone's credential is revoked, the new one works, the token is unchanged.
    let creds = user_credentials(&app, "alice").await;
    assert_eq!(creds.len(), 2);
    assert!(creds[0].revoked_at.is_some());
    assert!(creds[1].revoked_at.is_none());
    assert_eq!(store.ebt(&user.id).await.unwrap().unwrap(), token_before);
    let opened = app
        .post_json("/v1/authentications", &json!({"external_user_id": "alice"}))
        .await;
    let assertion = new_phone
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
            &json!({ "credential": assertion }),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
}
both_backends!(recovery_on_a_new_phone);

async fn a_stranger_cannot_recover(app: TestApp) {
    let alice = Person::new(32);
    register(&app, "alice", &alice, &Device::new()).await;
    let thief_phone = Device::new();
    let s = matched_recovery(&app, "alice", &Person::new(666), &thief_phone).await;
    assert_eq!(s["state"], "idv_failed");
    assert_eq!(s["idv"]["failure_reason"], "declined");
    let id = s["id"].as_str().unwrap();
    assert_error(
        &app.post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
            .await,
        422,
        "recovery_biometric_mismatch",
    );
    assert_error(
        &app.post_json(
            &format!("/v1/recoveries/{id}/complete"),
            &json!({"credential": {}}),
        )
        .await,
        422,
        "recovery_biometric_mismatch",
    );
    let creds = user_credentials(&app, "alice").await;
    assert_eq!(creds.len(), 1);
    assert!(creds[0].revoked_at.is_none());
}
both_backends!(a_stranger_cannot_recover);

async fn continuation_races_and_expiry(app: TestApp) {
    let alice = Person::new(33);
    register(&app, "alice", &alice, &Device::new()).await;
    let s = matched_recovery(&app, "alice", &alice, &Device::new()).await;
    let id = s["id"].as_str().unwrap();
    let c = app
        .post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
        .await;
    let token = c.1["continuation"]["token"].as_str().unwrap().to_owned();
    let body = json!({ "continuation": token });
    let results =
        futures::future::join_all((0..8).map(|_| app.post_json("/v1/recoveries/exchange", &body)))
            .await;
    assert_eq!(
        results.iter().filter(|r| r.0 == 200).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter(|r| r.0 != 200) {
        assert_error(r, 410, "continuation_invalid");
    }

    // Another recovery whose continuation is left to expire.
    let s = matched_recovery(&app, "alice", &alice, &Device::new()).await;
    let id = s["id"].as_str().unwrap();
    let c = app
        .post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
        .await;
    app.clock.advance(std::time::Duration::from_millis(1100));
    assert_error(
        &app.post_json(
            "/v1/recoveries/exchange",
            &json!({ "continuation": c.1["continuation"]["token"] }),
        )
        .await,
        410,
        "continuation_invalid",
    );
}
both_backends!(continuation_races_and_expiry, |s| s
    .continuation_ttl_seconds =
    1);

async fn recovery_can_keep_other_credentials(app: TestApp) {
    let alice = Person::new(34);
    register(&app, "alice", &alice, &Device::new()).await;
    let phone = Device::new();
    let s = matched_recovery(&app, "alice", &alice, &phone).await;
    let id = s["id"].as_str().unwrap();
    let c = app
        .post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
        .await;
    let ex = app
        .post_json(
            "/v1/recoveries/exchange",
            &json!({ "continuation": c.1["continuation"]["token"] }),
        )
        .await;
    let cred = phone
        .authenticator
        .create(&app.origin(), &ex.1["webauthn"])
        .await
        .unwrap();
    let done = app
        .post_json(
            &format!("/v1/recoveries/{id}/complete"),
            &json!({ "credential": cred }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    let creds = user_credentials(&app, "alice").await;
    assert_eq!(creds.iter().filter(|c| c.revoked_at.is_none()).count(), 2);
}
both_backends!(recovery_can_keep_other_credentials, |s| s
    .recovery_revokes_other_credentials =
    false);
