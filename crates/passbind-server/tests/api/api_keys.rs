//! API keys are read from the store at most once per `PASSBIND_API_KEY_CACHE_MS`: a key
//! revoked through this replica is refused at once, one revoked through another replica within
//! that bound.

use crate::both_backends;
use crate::common::{assert_error, TestApp};
use passbind_core::Actor;
use std::time::Duration;

async fn status_with(app: &TestApp, token: &str) -> (u16, serde_json::Value) {
    app.raw(
        reqwest::Method::GET,
        "/v1/users/nobody",
        None,
        Some(&format!("Bearer {token}")),
    )
    .await
}

async fn revoked_here_is_refused_at_once(app: TestApp) {
    let key = app
        .server
        .engine
        .create_api_key(&Actor::system(), "short-lived", &["users".into()])
        .await
        .unwrap();
    // Known and cached: the user is unknown, the key is not.
    assert_error(&status_with(&app, &key.token).await, 404, "user_not_found");
    app.server
        .engine
        .revoke_api_key(&Actor::system(), &key.record.id)
        .await
        .unwrap();
    assert_error(&status_with(&app, &key.token).await, 401, "unauthorized");
    // A wrong secret for a cached id is refused too.
    let forged = format!("pbk_{}_{}", key.record.id, "A".repeat(43));
    assert_error(&status_with(&app, &forged).await, 401, "unauthorized");
}
both_backends!(revoked_here_is_refused_at_once, |s| s.api_key_cache_ms =
    60_000);

/// Two replicas on one PostgreSQL: B has the key cached when A revokes it; B refuses it once
/// the cache bound has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_on_another_replica_is_refused_within_the_bound() {
    let a = TestApp::start(|s| s.api_key_cache_ms = 300, true).await;
    let b = TestApp::start_with_store(|s| s.api_key_cache_ms = 300, a.shared_store.clone()).await;
    let key = a
        .server
        .engine
        .create_api_key(&Actor::system(), "shared", &["users".into()])
        .await
        .unwrap();
    assert_error(&status_with(&b, &key.token).await, 404, "user_not_found");
    a.server
        .engine
        .revoke_api_key(&Actor::system(), &key.record.id)
        .await
        .unwrap();
    assert_error(&status_with(&a, &key.token).await, 401, "unauthorized");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_error(&status_with(&b, &key.token).await, 401, "unauthorized");
}
