//! Bad input: every path answers with the envelope and a stable 4xx code, and changes nothing.

use crate::both_backends;
use crate::common::{assert_error, TestApp};
use reqwest::Method;
use serde_json::json;

async fn registration_input_is_validated(app: TestApp) {
    // The reserved key.
    let r = app
        .post_json(
            "/v1/registrations",
            &json!({"external_user_id": "u1",
                    "workflow_input": {"custom_data": {"encrypted_biometric_token": "x"}}}),
        )
        .await;
    assert_error(&r, 400, "reserved_key");
    // Bad external ids.
    for bad in ["", "a b", "a/b", "ünï", "x".repeat(129).as_str()] {
        let r = app
            .post_json("/v1/registrations", &json!({ "external_user_id": bad }))
            .await;
        assert_error(&r, 400, "validation_failed");
        assert_eq!(r.1["error"]["details"]["field"], "external_user_id");
    }
    // Malformed JSON, wrong shapes, unknown fields.
    let auth = format!("Bearer {}", app.api_key);
    for (body, code) in [
        ("{", "malformed_json"),
        ("", "malformed_json"),
        ("[1,2", "malformed_json"),
        ("{\"external_user_id\": \"u\"} trailing", "malformed_json"),
        ("{\"external_user_id\": 5}", "validation_failed"),
        ("{}", "validation_failed"),
        ("{\"external_user_id\": \"u\", \"surprise\": 1}", "validation_failed"),
        ("{\"external_user_id\": \"u\", \"ttl_seconds\": -5}", "validation_failed"),
        ("{\"external_user_id\": \"u\", \"ttl_seconds\": 999999}", "validation_failed"),
        ("{\"external_user_id\": \"u\", \"prior_biometric\": {\"encrypted_biometric_token\": \"\"}}", "validation_failed"),
    ] {
        let r = app
            .raw(
                Method::POST,
                "/v1/registrations",
                Some(("application/json", body.as_bytes().to_vec())),
                Some(&auth),
            )
            .await;
        assert_error(&r, 400, code);
    }
    // Wrong media type and oversized bodies.
    let r = app
        .raw(
            Method::POST,
            "/v1/registrations",
            Some(("text/plain", b"{}".to_vec())),
            Some(&auth),
        )
        .await;
    assert_error(&r, 415, "unsupported_media_type");
    let huge = format!(
        "{{\"external_user_id\": \"u\", \"display_name\": \"{}\"}}",
        "a".repeat(200_000)
    );
    let r = app
        .raw(
            Method::POST,
            "/v1/registrations",
            Some(("application/json", huge.into_bytes())),
            Some(&auth),
        )
        .await;
    assert_error(&r, 413, "payload_too_large");
    // Nothing of the above created a user or a session.
    let store = app.server.engine.store();
    assert!(store.user_by_external_id("u").await.unwrap().is_none());
    assert!(store.user_by_external_id("u1").await.unwrap().is_none());
}
both_backends!(registration_input_is_validated);

async fn api_keys_are_required_and_checked(app: TestApp) {
    let body = Some(("application/json", b"{\"external_user_id\":\"k\"}".to_vec()));
    let r = app
        .raw(Method::POST, "/v1/registrations", body.clone(), None)
        .await;
    assert_error(&r, 401, "unauthorized");
    for auth in [
        "Bearer nope",
        "Basic abc",
        "Bearer pbk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = app
            .raw(Method::POST, "/v1/registrations", body.clone(), Some(auth))
            .await;
        assert_error(&r, 401, "unauthorized");
    }
    // A valid id with a wrong secret.
    let id = app.api_key.split('_').nth(1).unwrap();
    let wrong = format!("Bearer pbk_{id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let r = app
        .raw(
            Method::POST,
            "/v1/registrations",
            body.clone(),
            Some(&wrong),
        )
        .await;
    assert_error(&r, 401, "unauthorized");
    // A key without the scope.
    let audit_only = app
        .server
        .engine
        .create_api_key(
            &passbind_core::Actor::system(),
            "auditor",
            &["audit".into()],
        )
        .await
        .unwrap();
    let r = app
        .raw(
            Method::POST,
            "/v1/registrations",
            body.clone(),
            Some(&format!("Bearer {}", audit_only.token)),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    // A revoked key.
    let k = app
        .server
        .engine
        .create_api_key(&passbind_core::Actor::system(), "temp", &["flows".into()])
        .await
        .unwrap();
    app.server
        .engine
        .revoke_api_key(&passbind_core::Actor::system(), &k.record.id)
        .await
        .unwrap();
    let r = app
        .raw(
            Method::POST,
            "/v1/registrations",
            body,
            Some(&format!("Bearer {}", k.token)),
        )
        .await;
    assert_error(&r, 401, "unauthorized");
    assert!(app
        .server
        .engine
        .store()
        .user_by_external_id("k")
        .await
        .unwrap()
        .is_none());
}
both_backends!(api_keys_are_required_and_checked);

async fn routes_and_sessions_that_do_not_exist(app: TestApp) {
    assert_error(&app.get_json("/v1/nothing").await, 404, "not_found");
    assert_error(
        &app.get_json("/v1/registrations/reg_unknown").await,
        404,
        "session_not_found",
    );
    assert_error(
        &app.post_json("/v1/registrations/reg_unknown/complete", &json!({}))
            .await,
        404,
        "session_not_found",
    );
    assert_error(
        &app.post_json("/v1/registrations/reg_unknown/cancel", &json!({}))
            .await,
        404,
        "session_not_found",
    );
    let auth = format!("Bearer {}", app.api_key);
    let r = app
        .raw(Method::DELETE, "/v1/registrations", None, Some(&auth))
        .await;
    assert_error(&r, 405, "method_not_allowed");
    // Path segments with odd bytes are just unknown sessions; undecodable ones are refused.
    assert_error(
        &app.get_json("/v1/registrations/%00..%2F%20").await,
        404,
        "session_not_found",
    );
    assert_error(
        &app.get_json("/v1/registrations/%ff%fe").await,
        400,
        "validation_failed",
    );
}
both_backends!(routes_and_sessions_that_do_not_exist);

#[tokio::test]
async fn operations_endpoints() {
    let app = TestApp::sqlite().await;
    let r = app.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.0, 200);
    let r = app.raw(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.0, 200);
    let doc = app.raw(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.0, 200);
    let paths = doc.1["paths"].as_object().unwrap();
    for p in [
        "/v1/registrations",
        "/v1/registrations/{id}",
        "/v1/registrations/{id}/complete",
        "/v1/registrations/{id}/cancel",
        "/v1/webhooks/idv/{provider}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    // Every error code is in the document's schema.
    let codes = doc.1["components"]["schemas"]["ErrorCode"].to_string();
    for c in passbind_proto::ErrorCode::ALL {
        assert!(codes.contains(c.as_str()), "{c} missing");
    }
    let _ = app.get_json("/v1/nothing").await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("passbind_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("status=\"404\""), "{metrics}");
}

/// Everything production needs but its keys: public URL, RP id and https origin, a database
/// URL, Onfido with its tokens and workflows.
fn production_settings_but_keys(s: &mut passbind_server::Settings) {
    use passbind_server::config::Secret;
    s.public_url = Some("https://passbind.example.com".parse().unwrap());
    s.rp_id = "example.com".into();
    s.rp_origins = vec!["https://app.example.com".into()];
    s.database_url = Some(Secret("postgres://db.example.invalid/passbind".into()));
    s.idv_provider = "onfido".into();
    s.onfido_api_token = Some(Secret("token-0123456789".into()));
    s.onfido_webhook_token = Some(Secret("webhook-0123456789".into()));
    s.registration_workflow_id = Some("00000000-0000-4000-8000-000000000001".into());
    s.step_up_workflow_id = Some("00000000-0000-4000-8000-000000000002".into());
    s.recovery_workflow_id = Some("00000000-0000-4000-8000-000000000002".into());
}

/// Production mode refuses the development shortcuts, naming every problem.
#[tokio::test]
async fn production_mode_refuses_dev_shortcuts() {
    use passbind_server::config::Mode;
    let dir = tempfile::tempdir().unwrap();
    let mut s = passbind_server::Settings::for_tests(dir.path().to_path_buf(), None);
    s.mode = Mode::Production;
    s.rp_origins = vec!["http://app.example.com".into()];
    let err = format!(
        "{:#}",
        passbind_server::start(s.clone(), None).await.err().unwrap()
    );
    for expected in [
        "PASSBIND_IDV_PROVIDER=simulator is for development only",
        "PASSBIND_PUBLIC_URL is required",
        "origin http://app.example.com is not https",
        "PASSBIND_RP_ID=localhost is for development only",
        "PASSBIND_DATABASE_URL is required",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    // Everything else right, but no configured keys: generated keys are refused.
    production_settings_but_keys(&mut s);
    let err = format!("{:#}", passbind_server::start(s, None).await.err().unwrap());
    assert!(
        err.contains("production mode needs PASSBIND_KEYRING, PASSBIND_USER_REF_KEY and PASSBIND_AUDIT_SIGNING_KEY"),
        "{err}"
    );
    assert!(
        !dir.path().join("dev-keys.json").exists(),
        "no key was generated"
    );
}

/// Production never migrates the database itself, and does not start on a schema older than
/// it needs: the message says what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_an_unmigrated_database() {
    use passbind_server::config::Mode;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("empty.db").display());
    let store = passbind_store::connect(&url, Default::default())
        .await
        .unwrap();
    let mut s = passbind_server::Settings::for_tests(dir.path().to_path_buf(), None);
    s.mode = Mode::Production;
    production_settings_but_keys(&mut s);
    crate::common::share_keys(&mut s);
    let err = format!(
        "{:#}",
        passbind_server::start(s, Some(store.clone()))
            .await
            .err()
            .unwrap()
    );
    assert!(err.contains("run `passbind migrate`"), "{err}");
    assert!(err.contains("[1, 2, 3, 4, 5, 6]"), "{err}");
    // Nothing was created in it.
    assert_eq!(store.pending_migrations().await.unwrap().len(), 6);
}
