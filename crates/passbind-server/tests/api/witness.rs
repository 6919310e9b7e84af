//! Witness mode: the integrator's webhook receives a signed identity bundle and its
//! authenticated answer decides. Tested against a real HTTP receiver.

use crate::common::{assert_error, open_req, TestApp};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passbind_idv::witness::sign_response;
use passbind_proto::session::SessionState;
use passbind_sdk::device::Device;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "witness-secret-0123456789";

#[derive(Clone, Default)]
struct Receiver {
    /// approve | reject | slow | bad_signature | stale | other_run | error
    mode: Arc<Mutex<String>>,
    bundles: Arc<Mutex<Vec<String>>>,
}

async fn answer(State(r): State<Receiver>, _h: HeaderMap, body: String) -> impl IntoResponse {
    let req: Value = serde_json::from_str(&body).unwrap();
    let jws = req["bundle"].as_str().unwrap().to_owned();
    r.bundles.lock().unwrap().push(jws.clone());
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jws.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let mode = r.mode.lock().unwrap().clone();
    let run_id = if mode == "other_run" {
        "someone-else".to_owned()
    } else {
        payload["run_id"].as_str().unwrap().to_owned()
    };
    let decision = if mode == "reject" {
        "reject"
    } else {
        "approve"
    };
    let out = json!({"run_id": run_id, "decision": decision}).to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig = match mode.as_str() {
        "bad_signature" => sign_response(b"not-the-shared-secret", out.as_bytes(), now),
        "stale" => sign_response(SECRET.as_bytes(), out.as_bytes(), now - 3600),
        _ => sign_response(SECRET.as_bytes(), out.as_bytes(), now),
    };
    if mode == "slow" {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let status = if mode == "error" { 500 } else { 200 };
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [("x-passbind-signature", sig)],
        out,
    )
}

async fn start_receiver() -> (Receiver, String) {
    let r = Receiver::default();
    *r.mode.lock().unwrap() = "approve".into();
    let app = axum::Router::new()
        .route("/decide", axum::routing::post(answer))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/decide", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

async fn witness_app(postgres: bool) -> (TestApp, Receiver) {
    let (r, url) = start_receiver().await;
    let app = TestApp::start(
        move |s| {
            s.idv_provider = "witness".into();
            s.witness_url = Some(url.parse().unwrap());
            s.witness_secret = Some(passbind_server::config::Secret(SECRET.into()));
            s.witness_timeout_ms = 500;
        },
        postgres,
    )
    .await;
    (app, r)
}

async fn decisions(app: TestApp, r: Receiver) {
    // Approve: the session is settled when it opens; no biometric token is involved.
    let device = Device::new();
    let s = app
        .client
        .open_registration(&open_req("wendy"))
        .await
        .unwrap();
    assert_eq!(s.state, SessionState::IdvPassed, "{s:?}");
    assert!(s.idv.as_ref().unwrap().sdk_token.is_none());
    let cred = device
        .authenticator
        .create(&app.origin(), s.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    let done = app
        .post_json(
            &format!("/v1/registrations/{}/complete", s.id),
            &json!({ "credential": cred }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    let store = app.server.engine.store();
    let user = store.user_by_external_id("wendy").await.unwrap().unwrap();
    assert!(store.ebt(&user.id).await.unwrap().is_none());

    // The bundle is signed by Passbind and names the user only by a keyed hash.
    let key = app
        .raw(reqwest::Method::GET, "/v1/audit/public-key", None, None)
        .await
        .1;
    let key = passbind_audit::parse_public_key(key["public_key"].as_str().unwrap()).unwrap();
    let jws = r.bundles.lock().unwrap()[0].clone();
    let (signed, sig) = jws.rsplit_once('.').unwrap();
    assert!(passbind_audit::signing::verify_signature(
        &key,
        signed.as_bytes(),
        &URL_SAFE_NO_PAD.decode(sig).unwrap()
    ));
    assert!(!jws.contains("wendy"));
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["customer_user_ref"],
        app.server.engine.user_ref("wendy")
    );
    assert_eq!(payload["session_id"], s.id.as_str());

    // Step-up in witness mode: the webhook decides again.
    let su = app
        .post_json("/v1/step-ups", &json!({"external_user_id": "wendy"}))
        .await;
    assert_eq!(su.0, 201, "{}", su.1);
    assert_eq!(su.1["state"], "idv_passed");
    let a = device
        .authenticator
        .get(&app.origin(), &su.1["webauthn"])
        .await
        .unwrap();
    let r2 = app
        .post_json(
            &format!("/v1/step-ups/{}/complete", su.1["id"].as_str().unwrap()),
            &json!({"credential": a}),
        )
        .await;
    assert_eq!(r2.0, 200, "{}", r2.1);

    // Reject, and every failure, rejects.
    for (mode, reason) in [
        ("reject", "declined"),
        ("slow", "error"),
        ("bad_signature", "error"),
        ("stale", "error"),
        ("other_run", "error"),
        ("error", "error"),
    ] {
        *r.mode.lock().unwrap() = mode.into();
        let s = app
            .client
            .open_registration(&open_req(&format!("w-{mode}")))
            .await
            .unwrap();
        assert_eq!(s.state, SessionState::IdvFailed, "{mode}: {s:?}");
        assert_eq!(
            serde_json::to_value(s.idv.as_ref().unwrap().failure_reason).unwrap(),
            reason,
            "{mode}"
        );
        let cred = device
            .authenticator
            .create(&app.origin(), s.webauthn.as_ref().unwrap())
            .await
            .unwrap();
        let r = app
            .post_json(
                &format!("/v1/registrations/{}/complete", s.id),
                &json!({ "credential": cred }),
            )
            .await;
        assert!(r.0 == 422, "{mode}: {r:?}");
    }
    // No webhook endpoint for witness mode.
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/webhooks/idv/witness",
            Some(("application/json", b"{}".to_vec())),
            None,
        )
        .await;
    assert_error(&r, 401, "invalid_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_decisions_sqlite() {
    let (app, r) = witness_app(false).await;
    decisions(app, r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_decisions_postgres() {
    let (app, r) = witness_app(true).await;
    decisions(app, r).await;
}
