//! Reading, revoking and erasing users.

use crate::both_backends;
use crate::common::{assert_error, open_req, register, TestApp};
use passbind_sdk::device::{Device, Person};
use reqwest::Method;
use serde_json::json;

async fn read_revoke_erase(app: TestApp) {
    let alice = Person::new(41);
    register(&app, "alice", &alice, &Device::new()).await;
    register(&app, "alice", &alice, &Device::new()).await;
    register(&app, "bob", &Person::new(42), &Device::new()).await;
    let u = app.get_json("/v1/users/alice").await;
    assert_eq!(u.0, 200, "{}", u.1);
    assert_eq!(u.1["credentials"][0]["device_label"], "test phone");
    assert_eq!(u.1["has_biometric_reference"], true);
    assert_eq!(u.1["credentials"].as_array().unwrap().len(), 2);
    let text = u.1.to_string();
    assert!(
        !text.contains("encrypted_biometric_token") && !text.contains("ebt"),
        "{text}"
    );

    let auth = format!("Bearer {}", app.api_key);
    let cid = u.1["credentials"][0]["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/users/alice/credentials/{cid}");
    let r = app.raw(Method::DELETE, &path, None, Some(&auth)).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert!(r.1["credentials"][0]["revoked_at"].is_string());
    assert_error(
        &app.raw(Method::DELETE, &path, None, Some(&auth)).await,
        404,
        "credential_not_found",
    );
    assert_error(
        &app.raw(
            Method::DELETE,
            "/v1/users/alice/credentials/%00",
            None,
            Some(&auth),
        )
        .await,
        404,
        "credential_not_found",
    );

    // Erase: token shredded, credentials revoked, live sessions cancelled.
    let live = app
        .client
        .open_registration(&open_req("alice"))
        .await
        .unwrap();
    let r = app
        .raw(Method::DELETE, "/v1/users/alice", None, Some(&auth))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["has_biometric_reference"], false);
    assert!(r.1["erased_at"].is_string());
    assert!(r.1["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["revoked_at"].is_string()));
    // Nothing the user gave stays: the device labels (phone names carry owners' names) are
    // gone from the view and from the stored rows; another user's stay.
    assert!(r.1["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["device_label"].is_null()));
    let store = app.server.engine.store();
    let user = store.user_by_external_id("alice").await.unwrap().unwrap();
    assert!(store.ebt(&user.id).await.unwrap().is_none());
    let rows = store.credentials_of_user(&user.id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|c| c.device_label.is_none()), "{rows:?}");
    let bob = store.user_by_external_id("bob").await.unwrap().unwrap();
    let bobs = store.credentials_of_user(&bob.id).await.unwrap();
    assert_eq!(bobs[0].device_label.as_deref(), Some("test phone"));
    assert_eq!(
        app.get_json(&format!("/v1/registrations/{}", live.id))
            .await
            .1["state"],
        "cancelled"
    );
    assert_error(
        &app.post_json("/v1/step-ups", &json!({"external_user_id": "alice"}))
            .await,
        404,
        "user_not_found",
    );
    assert_error(
        &app.post_json("/v1/registrations", &json!({"external_user_id": "alice"}))
            .await,
        409,
        "invalid_state",
    );
    assert_error(
        &app.raw(Method::DELETE, "/v1/users/alice", None, Some(&auth))
            .await,
        404,
        "user_not_found",
    );
    assert_error(
        &app.get_json("/v1/users/nobody").await,
        404,
        "user_not_found",
    );

    // The users scope is required.
    let flows_only = app
        .server
        .engine
        .create_api_key(&passbind_core::Actor::system(), "flows", &["flows".into()])
        .await
        .unwrap();
    let r = app
        .raw(
            Method::GET,
            "/v1/users/alice",
            None,
            Some(&format!("Bearer {}", flows_only.token)),
        )
        .await;
    assert_error(&r, 403, "forbidden");
}
both_backends!(read_revoke_erase);
