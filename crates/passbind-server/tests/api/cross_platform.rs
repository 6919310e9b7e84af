//! Cross-platform step-up: opened from the browser, finished on the enrolled phone.

use crate::both_backends;
use crate::common::{assert_error, register, TestApp};
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};

async fn open(app: &TestApp, user: &str) -> Value {
    let r = app
        .post_json(
            "/v1/cross-platform-sessions",
            &json!({"external_user_id": user, "transaction_context": {"login": "desktop"}}),
        )
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    r.1
}

async fn consume(app: &TestApp, token: &str) -> (u16, Value) {
    app.post_json(
        "/v1/cross-platform-sessions/handoff",
        &json!({ "handoff_token": token }),
    )
    .await
}

async fn browser_to_phone_end_to_end(app: TestApp) {
    let alice = Person::new(21);
    let phone = Device::new();
    register(&app, "alice", &alice, &phone).await;

    let s = open(&app, "alice").await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["status"], "created");
    let token = s["handoff"]["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "at least 256 bits, base64url");
    assert_eq!(
        s["handoff"]["deep_link"].as_str().unwrap(),
        format!("passbind://handoff?token={token}")
    );
    assert!(s["handoff"]["qr_svg"]
        .as_str()
        .unwrap()
        .starts_with("<?xml"));
    assert!(
        s["webauthn"].is_null(),
        "the browser side gets no WebAuthn options"
    );
    // The token is never readable again.
    let read = app
        .get_json(&format!("/v1/cross-platform-sessions/{id}"))
        .await;
    assert!(read.1["handoff"].is_null());
    let version = read.1["version"].as_i64().unwrap();

    // The browser long-polls while the phone takes the handoff.
    let poller = {
        let http = app.http.clone();
        let url = format!(
            "{}/v1/cross-platform-sessions/{id}?since_version={version}&wait_seconds=20",
            app.base
        );
        let key = app.api_key.clone();
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let mobile = consume(&app, &token).await;
    assert_eq!(mobile.0, 200, "{}", mobile.1);
    assert_eq!(mobile.1["id"], id.as_str());
    assert!(mobile.1["idv"]["sdk_token"].is_string());
    assert!(mobile.1["webauthn"]["publicKey"]["challenge"].is_string());
    let polled = poller.await.unwrap();
    assert!(polled["version"].as_i64().unwrap() > version, "{polled}");
    assert_eq!(polled["status"], "handed_off");

    // The phone captures, signs and completes; the browser sees the outcome.
    let idv = serde_json::from_value(mobile.1["idv"].clone()).unwrap();
    phone
        .submit_capture(&idv, &alice.face_capture(1))
        .await
        .unwrap();
    let after = app.wait_verdict_at("cross-platform-sessions", &id).await;
    assert_eq!(serde_json::to_value(after.status).unwrap(), "verifying");
    let assertion = phone
        .authenticator
        .get(&app.origin(), &mobile.1["webauthn"])
        .await
        .unwrap();
    let done = app
        .post_json(
            &format!("/v1/cross-platform-sessions/{id}/complete"),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    let read = app
        .get_json(&format!("/v1/cross-platform-sessions/{id}"))
        .await;
    assert_eq!(read.1["status"], "completed");

    // The token worked once.
    assert_error(&consume(&app, &token).await, 410, "handoff_token_invalid");
    assert_error(
        &consume(&app, "not-a-token").await,
        410,
        "handoff_token_invalid",
    );
    assert_error(&consume(&app, "").await, 410, "handoff_token_invalid");
}
both_backends!(browser_to_phone_end_to_end);

async fn racing_consumers_and_cancel(app: TestApp) {
    let alice = Person::new(22);
    let phone = Device::new();
    register(&app, "alice", &alice, &phone).await;

    // Eight phones race for one token: exactly one wins.
    let s = open(&app, "alice").await;
    let token = s["handoff"]["token"].as_str().unwrap().to_owned();
    let results = futures::future::join_all((0..8).map(|_| consume(&app, &token))).await;
    assert_eq!(
        results.iter().filter(|r| r.0 == 200).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter(|r| r.0 != 200) {
        assert_error(r, 410, "handoff_token_invalid");
    }

    // Cancelled from the browser before the handoff: the token stops working.
    let s = open(&app, "alice").await;
    let id = s["id"].as_str().unwrap();
    let c = app
        .post_json(
            &format!("/v1/cross-platform-sessions/{id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(c.1["status"], "cancelled");
    assert_error(
        &consume(&app, s["handoff"]["token"].as_str().unwrap()).await,
        410,
        "handoff_token_invalid",
    );

    // Cancelled after the face matched: the phone cannot complete.
    let s = open(&app, "alice").await;
    let id = s["id"].as_str().unwrap().to_owned();
    let mobile = consume(&app, s["handoff"]["token"].as_str().unwrap())
        .await
        .1;
    let idv = serde_json::from_value(mobile["idv"].clone()).unwrap();
    phone
        .submit_capture(&idv, &alice.face_capture(3))
        .await
        .unwrap();
    app.wait_verdict_at("cross-platform-sessions", &id).await;
    let assertion = phone
        .authenticator
        .get(&app.origin(), &mobile["webauthn"])
        .await
        .unwrap();
    app.post_json(
        &format!("/v1/cross-platform-sessions/{id}/cancel"),
        &json!({}),
    )
    .await;
    let r = app
        .post_json(
            &format!("/v1/cross-platform-sessions/{id}/complete"),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_error(&r, 409, "invalid_state");
    let read = app
        .get_json(&format!("/v1/cross-platform-sessions/{id}"))
        .await;
    assert_eq!(read.1["status"], "cancelled");

    // A mismatch on the phone: the browser sees the failure after the last attempt.
    let s = open(&app, "alice").await;
    let id = s["id"].as_str().unwrap().to_owned();
    let mobile = consume(&app, s["handoff"]["token"].as_str().unwrap())
        .await
        .1;
    let idv = serde_json::from_value(mobile["idv"].clone()).unwrap();
    phone
        .submit_capture(&idv, &Person::new(99).face_capture(1))
        .await
        .unwrap();
    let after = app.wait_verdict_at("cross-platform-sessions", &id).await;
    assert_eq!(serde_json::to_value(after.status).unwrap(), "handed_off");
    assert_eq!(after.captures.unwrap().failed, 1);
}
both_backends!(racing_consumers_and_cancel);

async fn the_handoff_token_expires(app: TestApp) {
    let alice = Person::new(23);
    register(&app, "alice", &alice, &Device::new()).await;
    let s = open(&app, "alice").await;
    app.clock.advance(std::time::Duration::from_millis(1100));
    assert_error(
        &consume(&app, s["handoff"]["token"].as_str().unwrap()).await,
        410,
        "handoff_token_invalid",
    );
    let read = app
        .get_json(&format!(
            "/v1/cross-platform-sessions/{}",
            s["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(read.1["status"], "created");
}
both_backends!(the_handoff_token_expires, |s| s.handoff_ttl_seconds = 1);
