//! The Studio client against the simulator (and against tiny fake providers), over real
//! sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use passbind_core::ports::{IdvError, IdvProvider, IdvPurpose, RunStatus, WebhookEvent};
use passbind_idv::face::FaceTemplate;
use passbind_idv::signature::sign_sha2;
use passbind_idv::simulator::{DocumentCapture, Simulate, SimulatorCapture};
use passbind_idv::studio::StudioClient;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use url::Url;

/// A registration capture of `person` with their own passport.
fn registration_capture(person: u64) -> SimulatorCapture {
    let face = FaceTemplate::of_person(person);
    SimulatorCapture::with_document(
        &face.live_capture(person + 1),
        true,
        DocumentCapture::sample_passport(&face),
    )
}

fn face_capture(person: u64, noise: u64) -> SimulatorCapture {
    SimulatorCapture::face_only(&FaceTemplate::of_person(person).live_capture(noise), true)
}

/// Starts a run, posts the capture, waits for the webhook, verifies it and re-fetches the run.
async fn complete_run(
    env: &Env,
    purpose: IdvPurpose,
    token: Option<&str>,
    capture: &SimulatorCapture,
) -> (String, passbind_core::ports::RunOutcome) {
    let started = env
        .client
        .start_run(start_request(purpose, token))
        .await
        .unwrap();
    let (status, body) = env.post_capture(&started, capture).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "processing");
    let delivery = env.receiver.delivered(&started.run_id).await;
    let event = env
        .client
        .verify_webhook(&delivery.header(), &delivery.body)
        .unwrap();
    let outcome = env.client.fetch_run(&started.run_id).await.unwrap();
    let status_str = delivery.json()["payload"]["object"]["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(RunStatus::parse(&status_str), outcome.status);
    assert_eq!(
        event,
        WebhookEvent::RunCompleted {
            run_id: started.run_id.clone(),
            event_key: format!("{}:workflow_run.completed:{status_str}", started.run_id),
        }
    );
    (started.run_id, outcome)
}

#[tokio::test]
async fn registration_step_up_and_recovery_against_the_simulator() {
    let env = Env::start().await;

    // New-user registration: document + live face, approved, a new EBT in the re-fetched run.
    let (run_id, outcome) = complete_run(
        &env,
        IdvPurpose::Registration,
        None,
        &registration_capture(7),
    )
    .await;
    assert_eq!(outcome.run_id, run_id);
    assert_eq!(outcome.status, RunStatus::Approved);
    let ebt = outcome
        .biometric_token
        .expect("a registration outputs an EBT");
    assert!(!ebt.is_empty());
    let raw = env.raw_run(&run_id).await;
    assert_eq!(raw["status"], "approved");
    assert_eq!(raw["output"]["identity"]["family_name"], "Doe");
    assert_eq!(raw["output"]["identity"]["date_of_birth"], "1990-01-01");
    // What start_run sent: placeholder-free custom data, the empty EBT input, user ref, tags.
    assert_eq!(raw["custom_data"]["encrypted_biometric_token"], "");
    assert_eq!(raw["custom_data"]["integrator_ref"], "order-17");
    assert_eq!(raw["customer_user_id"], "cu_hash_0123");
    assert_eq!(raw["tags"], json!(["passbind", "registration"]));
    assert_eq!(raw["workflow_id"], WF_REGISTRATION);
    // The webhook carries an href to the run and never the output.
    let delivery = env.receiver.delivered(&run_id).await;
    let payload = delivery.json();
    assert_eq!(
        payload["payload"]["object"]["href"],
        format!("{}/workflow_runs/{run_id}", env.base)
    );
    assert!(!String::from_utf8_lossy(&delivery.body).contains(ebt.as_str()));

    // Step-up: face-only match against the issued EBT, approved, no new token.
    let (run_id, outcome) =
        complete_run(&env, IdvPurpose::StepUp, Some(&ebt), &face_capture(7, 99)).await;
    assert_eq!(outcome.status, RunStatus::Approved);
    assert!(outcome.biometric_token.is_none());
    let raw = env.raw_run(&run_id).await;
    assert_eq!(
        raw["custom_data"]["encrypted_biometric_token"],
        ebt.as_str()
    );
    assert_eq!(raw["tags"], json!(["passbind", "step_up"]));
    assert_eq!(raw["workflow_id"], WF_VERIFY);

    // Recovery by a different person: declined.
    let (run_id, outcome) =
        complete_run(&env, IdvPurpose::Recovery, Some(&ebt), &face_capture(8, 1)).await;
    assert_eq!(outcome.status, RunStatus::Declined);
    assert!(outcome.biometric_token.is_none());
    assert_eq!(
        env.raw_run(&run_id).await["reasons"],
        json!(["face_mismatch"])
    );

    // The same person but a failed liveness check: declined.
    let mut spoof = face_capture(7, 5);
    spoof.face.liveness = false;
    let (run_id, outcome) = complete_run(&env, IdvPurpose::StepUp, Some(&ebt), &spoof).await;
    assert_eq!(outcome.status, RunStatus::Declined);
    assert_eq!(
        env.raw_run(&run_id).await["reasons"],
        json!(["liveness_failed"])
    );

    // Prior-biometric registration (token supplied on the registration workflow): face-only.
    let (_, outcome) = complete_run(
        &env,
        IdvPurpose::Registration,
        Some(&ebt),
        &face_capture(7, 6),
    )
    .await;
    assert_eq!(outcome.status, RunStatus::Approved);
    assert!(outcome.biometric_token.is_none());
}

#[tokio::test]
async fn registration_with_another_persons_document_is_declined() {
    let env = Env::start().await;
    let capture = SimulatorCapture::with_document(
        &FaceTemplate::of_person(1).live_capture(1),
        true,
        DocumentCapture::sample_passport(&FaceTemplate::of_person(2)),
    );
    let (_, outcome) = complete_run(&env, IdvPurpose::Registration, None, &capture).await;
    assert_eq!(outcome.status, RunStatus::Declined);
    assert!(outcome.biometric_token.is_none());
}

#[tokio::test]
async fn a_token_that_does_not_open_is_declined() {
    let env = Env::start().await;
    let (run_id, outcome) = complete_run(
        &env,
        IdvPurpose::StepUp,
        Some("not-a-token-of-this-simulator"),
        &face_capture(7, 1),
    )
    .await;
    assert_eq!(outcome.status, RunStatus::Declined);
    assert_eq!(
        env.raw_run(&run_id).await["reasons"],
        json!(["invalid_biometric_token"])
    );
}

#[tokio::test]
async fn every_forced_outcome() {
    let env = Env::start().await;
    let expected = [
        (Simulate::Review, RunStatus::Review),
        (Simulate::Abandoned, RunStatus::Abandoned),
        (Simulate::Error, RunStatus::Error),
        (Simulate::Declined, RunStatus::Declined),
        (Simulate::ApprovedWithoutToken, RunStatus::Approved),
    ];
    for (force, status) in expected {
        // A registration capture without a document is enough when the outcome is forced.
        let capture = face_capture(3, 3).simulating(force);
        let (run_id, outcome) = complete_run(&env, IdvPurpose::Registration, None, &capture).await;
        assert_eq!(outcome.status, status, "{force:?}");
        assert!(outcome.biometric_token.is_none(), "{force:?}");
        let raw = env.raw_run(&run_id).await;
        if force == Simulate::Error {
            assert_eq!(raw["error"]["type"], "simulated_error");
        }
    }
    // approved_without_token on a registration with a document still reports the identity.
    let capture = registration_capture(4).simulating(Simulate::ApprovedWithoutToken);
    let (run_id, outcome) = complete_run(&env, IdvPurpose::Registration, None, &capture).await;
    assert_eq!(outcome.status, RunStatus::Approved);
    assert!(outcome.biometric_token.is_none());
    let raw = env.raw_run(&run_id).await;
    assert!(raw["output"].get("encrypted_biometric_token").is_none());
    assert_eq!(raw["output"]["identity"]["document_type"], "passport");
}

#[tokio::test]
async fn webhook_signatures_and_unrelated_actions() {
    let env = Env::start().await;
    let (run_id, _) = complete_run(
        &env,
        IdvPurpose::Registration,
        None,
        &registration_capture(11),
    )
    .await;
    let delivery = env.receiver.delivered(&run_id).await;
    let body = delivery.body.to_vec();
    let good = delivery.header()("x-sha2-signature").unwrap();
    assert_eq!(good, sign_sha2(WEBHOOK_TOKEN.as_bytes(), &body));

    let with = |sig: Option<String>| {
        move |name: &str| (name == "x-sha2-signature").then(|| sig.clone()).flatten()
    };

    // Missing header, forged signature, a signature by another key, a tampered body.
    let missing = env.client.verify_webhook(&with(None), &body);
    assert!(matches!(missing, Err(IdvError::InvalidSignature)));
    let forged = env
        .client
        .verify_webhook(&with(Some("0".repeat(64))), &body);
    assert!(matches!(forged, Err(IdvError::InvalidSignature)));
    let other_key = sign_sha2(b"someone else's token", &body);
    let r = env.client.verify_webhook(&with(Some(other_key)), &body);
    assert!(matches!(r, Err(IdvError::InvalidSignature)));
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("approved", "declined");
    let r = env
        .client
        .verify_webhook(&with(Some(good.clone())), tampered.as_bytes());
    assert!(matches!(r, Err(IdvError::InvalidSignature)));
    // Upper-case hex is the same signature.
    let r = env
        .client
        .verify_webhook(&with(Some(good.to_uppercase())), &body);
    assert!(matches!(r, Ok(WebhookEvent::RunCompleted { .. })));

    // A validly signed event of another kind is ignored.
    let task =
        json!({"payload": {"resource_type": "workflow_task", "action": "workflow_task.started",
        "object": {"id": "t-1", "task_spec_id": "face_check", "href": "x"}}})
        .to_string();
    let sig = sign_sha2(WEBHOOK_TOKEN.as_bytes(), task.as_bytes());
    assert_eq!(
        env.client
            .verify_webhook(&with(Some(sig)), task.as_bytes())
            .unwrap(),
        WebhookEvent::Ignored {
            action: "workflow_task.started".into()
        }
    );
    // Validly signed garbage is malformed (after, never before, the signature check).
    let garbage = b"{\"payload\": nope".to_vec();
    let sig = sign_sha2(WEBHOOK_TOKEN.as_bytes(), &garbage);
    assert!(matches!(
        env.client.verify_webhook(&with(Some(sig)), &garbage),
        Err(IdvError::Malformed(_))
    ));
    assert!(matches!(
        env.client
            .verify_webhook(&with(Some("ab".into())), &garbage),
        Err(IdvError::InvalidSignature)
    ));
    // A completed event without an id is malformed.
    let no_id =
        json!({"payload": {"resource_type": "workflow_run", "action": "workflow_run.completed",
        "object": {"status": "approved"}}})
        .to_string();
    let sig = sign_sha2(WEBHOOK_TOKEN.as_bytes(), no_id.as_bytes());
    assert!(matches!(
        env.client
            .verify_webhook(&with(Some(sig)), no_id.as_bytes()),
        Err(IdvError::Malformed(_))
    ));
}

#[tokio::test]
async fn webhook_is_retried_after_receiver_errors_and_delivered_once() {
    let env = Env::start().await;
    env.receiver.fail_next(2, StatusCode::INTERNAL_SERVER_ERROR);
    let (run_id, outcome) = complete_run(
        &env,
        IdvPurpose::Registration,
        None,
        &registration_capture(21),
    )
    .await;
    assert_eq!(outcome.status, RunStatus::Approved);
    // Backoff 20 ms then 40 ms: give a later attempt time to (wrongly) happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts = env.receiver.attempts_for(&run_id);
    let answered: Vec<u16> = attempts.iter().map(|d| d.answered.as_u16()).collect();
    assert_eq!(answered, vec![500, 500, 200]);
    // Every attempt carries the same, valid, signed body.
    for attempt in &attempts {
        assert_eq!(attempt.body, attempts[0].body);
        assert!(env
            .client
            .verify_webhook(&attempt.header(), &attempt.body)
            .is_ok());
    }
}

#[tokio::test]
async fn receiver_4xx_stops_the_retries() {
    let env = Env::start().await;
    env.receiver.fail_next(5, StatusCode::BAD_REQUEST);
    let started = env
        .client
        .start_run(start_request(IdvPurpose::Registration, None))
        .await
        .unwrap();
    let (status, _) = env.post_capture(&started, &registration_capture(31)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    env.receiver.attempts(&started.run_id, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.receiver.attempts_for(&started.run_id).len(), 1);
    // The verdict stands at the provider all the same (a reconciler can read it).
    let outcome = env.client.fetch_run(&started.run_id).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Approved);
}

#[tokio::test]
async fn the_verdict_stands_when_the_receiver_is_unreachable() {
    // A port nothing listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let env = Env::start_with(|c| {
        c.webhook_url = dead;
        c.webhook_attempts = 3;
        c.webhook_backoff = Duration::from_millis(5);
    })
    .await;
    let started = env
        .client
        .start_run(start_request(IdvPurpose::Registration, None))
        .await
        .unwrap();
    let (status, _) = env.post_capture(&started, &registration_capture(41)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The verdict is reached regardless of delivery.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let outcome = env.client.fetch_run(&started.run_id).await.unwrap();
        if outcome.status.is_terminal() {
            assert_eq!(outcome.status, RunStatus::Approved);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_wrong_api_token_is_rejected() {
    let env = Env::start().await;
    let mut config = client_config(&env.base);
    config.api_token = "not the token".into();
    let client = StudioClient::new(config).unwrap();
    let r = client
        .start_run(start_request(IdvPurpose::Registration, None))
        .await;
    match r {
        Err(IdvError::Rejected(message)) => {
            assert!(message.contains("401"), "{message}");
            assert!(message.contains("authorization_error"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // No Authorization at all, and a Bearer instead of Token: 401 with the envelope.
    for auth in [None, Some(format!("Bearer {API_TOKEN}"))] {
        let mut request = env.http.get(env.url("/workflow_runs/x"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authorization_error");
    }
}

#[tokio::test]
async fn captures_are_accepted_once_and_validated() {
    let env = Env::start().await;
    let started = env
        .client
        .start_run(start_request(IdvPurpose::Registration, None))
        .await
        .unwrap();
    assert_eq!(
        started.capture_url.as_deref(),
        Some(env.capture_url.as_str())
    );

    // Malformed captures: 422 naming the field, and the run stays open.
    let mut short = registration_capture(51);
    short.face.template.truncate(127);
    let (status, body) = env.post_capture(&started, &short).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["type"], "validation_error");
    assert!(
        body["error"]["fields"]["face.template"].is_array(),
        "{body}"
    );

    let zeros = SimulatorCapture::with_document(
        &FaceTemplate(vec![0.0; 128]),
        true,
        DocumentCapture::sample_passport(&FaceTemplate::of_person(1)),
    );
    let (status, body) = env.post_capture(&started, &zeros).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["fields"]["face.template"].is_array(),
        "{body}"
    );

    // A value too large for f32 becomes infinite: refused.
    let mut json = serde_json::to_value(registration_capture(51)).unwrap();
    json["document"]["face_template"][0] = json!(1e39);
    let (status, body) = env
        .post_capture_raw(&started.sdk_token, serde_json::to_vec(&json).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["fields"]["document.face_template"].is_array(),
        "{body}"
    );

    let mut json = serde_json::to_value(registration_capture(51)).unwrap();
    json["selfie_video"] = json!("base64...");
    let (status, body) = env
        .post_capture_raw(&started.sdk_token, serde_json::to_vec(&json).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["selfie_video"].is_array(), "{body}");

    let mut json = serde_json::to_value(registration_capture(51)).unwrap();
    json["face"]["liveness"] = json!("yes");
    let (status, body) = env
        .post_capture_raw(&started.sdk_token, serde_json::to_vec(&json).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["fields"]["face.liveness"].is_array(),
        "{body}"
    );

    let (status, body) = env
        .post_capture_raw(&started.sdk_token, b"{\"face\": [".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "bad_request");

    let (status, body) = env
        .post_capture_raw(&started.sdk_token, vec![b' '; 300 * 1024])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["type"], "request_too_large");

    // A registration capture without its document.
    let (status, body) = env.post_capture(&started, &face_capture(51, 1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["document"].is_array(), "{body}");

    // A wrong sdk_token.
    let (status, body) = env
        .post_capture_raw(
            "not-a-token",
            serde_json::to_vec(&registration_capture(51)).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["type"], "authorization_error");

    // The first good capture is accepted, the second refused.
    let (status, _) = env.post_capture(&started, &registration_capture(51)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = env.post_capture(&started, &registration_capture(51)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["type"], "conflict");
    env.receiver.delivered(&started.run_id).await;
    let (status, _) = env.post_capture(&started, &registration_capture(51)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(env.receiver.attempts_for(&started.run_id).len(), 1);
}

#[tokio::test]
async fn the_provider_api_validates_its_input() {
    let env = Env::start().await;
    let auth = format!("Token token={API_TOKEN}");
    let post = |path: &str, body: Value| {
        env.http
            .post(env.url(path))
            .header("authorization", auth.clone())
            .json(&body)
            .send()
    };
    // Applicant names: required and free of the forbidden characters.
    let r = post(
        "/applicants",
        json!({"first_name": "A<b>", "last_name": ""}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["fields"]["first_name"].is_array());
    assert!(body["error"]["fields"]["last_name"].is_array());
    let r = post("/applicants", json!({"first_name": "A"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["fields"]["last_name"].is_array(), "{body}");

    let applicant: Value = post(
        "/applicants",
        json!({"first_name": "Passbind", "last_name": "Applicant", "email": "x"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let applicant_id = applicant["id"].as_str().unwrap();

    // Unknown workflow, unknown applicant, missing EBT input on a verification workflow.
    let r = post(
        "/workflow_runs",
        json!({"workflow_id": "nope", "applicant_id": applicant_id}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["fields"]["workflow_id"].is_array());
    let r = post(
        "/workflow_runs",
        json!({"workflow_id": WF_REGISTRATION, "applicant_id": "nope"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["fields"]["applicant_id"].is_array());
    let r = post(
        "/workflow_runs",
        json!({"workflow_id": WF_VERIFY, "applicant_id": applicant_id,
        "custom_data": {"encrypted_biometric_token": ""}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["fields"]["custom_data.encrypted_biometric_token"].is_array());
    let r = post(
        "/workflow_runs",
        json!({"workflow_id": WF_REGISTRATION, "applicant_id": applicant_id,
        "custom_data": {"encrypted_biometric_token": 5}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A good run: 201, awaiting_input, a long random sdk_token.
    let r = post(
        "/workflow_runs",
        json!({"workflow_id": WF_REGISTRATION, "applicant_id": applicant_id}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["status"], "awaiting_input");
    assert!(run["sdk_token"].as_str().unwrap().len() >= 22);

    // Unknown run: 404, and the client maps it to Rejected.
    let r = env
        .client
        .fetch_run("00000000-0000-0000-0000-000000000000")
        .await;
    assert!(
        matches!(r, Err(IdvError::Rejected(ref m)) if m.contains("404")),
        "{r:?}"
    );
    // A run id that could escape the path is refused before any request.
    let r = env.client.fetch_run("../applicants").await;
    assert!(matches!(r, Err(IdvError::Malformed(_))), "{r:?}");
    // Unknown route and wrong method: envelopes too.
    let r = env.http.get(env.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "resource_not_found");
    let r = env
        .http
        .delete(env.url("/workflow_runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "method_not_allowed");
}

// ---------------------------------------------------------------------------------------
// The client's retry policy, against tiny fake providers.

#[derive(Default)]
struct Fake {
    applicant_calls: AtomicU32,
    run_calls: AtomicU32,
    applicant_bodies: Mutex<Vec<Value>>,
    auth_headers: Mutex<Vec<String>>,
}

async fn fake_applicants(
    axum::extract::State(fake): axum::extract::State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let n = fake.applicant_calls.fetch_add(1, Ordering::SeqCst);
    fake.applicant_bodies
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    fake.auth_headers.lock().unwrap().push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    if n < 2 {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(json!({"error": {"type": "rate_limit", "message": "slow down"}})),
        )
            .into_response()
    } else {
        (
            StatusCode::CREATED,
            Json(json!({"id": "a-1", "first_name": "Passbind", "last_name": "Applicant"})),
        )
            .into_response()
    }
}

async fn fake_runs(
    axum::extract::State(fake): axum::extract::State<Arc<Fake>>,
) -> axum::response::Response {
    fake.run_calls.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CREATED,
        Json(
            json!({"id": "run-1", "status": "awaiting_input", "sdk_token": "sdk-1",
            "workflow_version_id": 4, "unknown_new_field": [1, 2]}),
        ),
    )
        .into_response()
}

#[tokio::test]
async fn the_client_honours_retry_after_on_429() {
    let fake = Arc::new(Fake::default());
    let router = Router::new()
        .route("/v3.6/applicants", post(fake_applicants))
        .route("/v3.6/workflow_runs", post(fake_runs))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let base = Url::parse(&format!("http://{addr}/v3.6")).unwrap();
    let mut config = client_config(&base);
    config.name = "onfido".into();
    config.retry_backoff = Duration::from_millis(5);
    config.max_retry_delay = Duration::from_millis(150);
    let client = StudioClient::new(config).unwrap();

    let started_at = Instant::now();
    let started = client
        .start_run(start_request(IdvPurpose::Registration, None))
        .await
        .unwrap();
    let elapsed = started_at.elapsed();
    assert_eq!(started.run_id, "run-1");
    assert_eq!(started.sdk_token, "sdk-1");
    assert_eq!(started.capture_url, None);
    assert_eq!(fake.applicant_calls.load(Ordering::SeqCst), 3);
    assert_eq!(fake.run_calls.load(Ordering::SeqCst), 1);
    // Retry-After (1 s) capped at 150 ms, twice: well above the 5 ms backoff.
    assert!(elapsed >= Duration::from_millis(280), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // Placeholder names only, and the Token scheme.
    for body in fake.applicant_bodies.lock().unwrap().iter() {
        assert_eq!(
            body,
            &json!({"first_name": "Passbind", "last_name": "Applicant"})
        );
    }
    for auth in fake.auth_headers.lock().unwrap().iter() {
        assert_eq!(auth, &format!("Token token={API_TOKEN}"));
    }
}

#[tokio::test]
async fn the_client_gives_up_on_a_provider_that_always_fails() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/v3.6/workflow_runs/{id}",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }
        }),
    );
    let addr = serve(router).await;
    let base = Url::parse(&format!("http://{addr}/v3.6")).unwrap();
    let mut config = client_config(&base);
    config.max_retries = 3;
    config.retry_backoff = Duration::from_millis(5);
    let client = StudioClient::new(config).unwrap();
    let started_at = Instant::now();
    let r = client.fetch_run("run-1").await;
    assert!(
        matches!(r, Err(IdvError::Unavailable(ref m)) if m.contains("500")),
        "{r:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(started_at.elapsed() < Duration::from_secs(2));

    // Nothing listening at all: Unavailable after the same bounded attempts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = Url::parse(&format!("http://{}/v3.6", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let mut config = client_config(&dead);
    config.retry_backoff = Duration::from_millis(5);
    let client = StudioClient::new(config).unwrap();
    let r = client
        .start_run(start_request(IdvPurpose::StepUp, Some("ebt")))
        .await;
    assert!(matches!(r, Err(IdvError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn the_client_refuses_a_run_answered_for_another_id_or_without_sdk_token() {
    let router = Router::new()
        .route(
            "/v3.6/workflow_runs/{id}",
            get(|| async { Json(json!({"id": "someone-else", "status": "approved"})) }),
        )
        .route(
            "/v3.6/applicants",
            post(|| async { (StatusCode::CREATED, Json(json!({"id": "a-1"}))) }),
        )
        .route(
            "/v3.6/workflow_runs",
            post(|| async {
                (
                    StatusCode::CREATED,
                    Json(json!({"id": "run-1", "status": "awaiting_input"})),
                )
            }),
        );
    let addr = serve(router).await;
    let base = Url::parse(&format!("http://{addr}/v3.6")).unwrap();
    let client = StudioClient::new(client_config(&base)).unwrap();
    let r = client.fetch_run("run-1").await;
    assert!(matches!(r, Err(IdvError::Malformed(_))), "{r:?}");
    let r = client
        .start_run(start_request(IdvPurpose::Registration, None))
        .await;
    assert!(matches!(r, Err(IdvError::Malformed(_))), "{r:?}");
}

/// Witness mode reads time only from the injected clock: the bundle's `issued_at` is the
/// clock's, and an answer signed at that time is fresh for it (and stale for a clock an hour
/// later), whatever the system clock says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_time_comes_from_the_clock() {
    use base64::Engine as _;
    use passbind_idv::witness::{sign_response, WitnessConfig, WitnessProvider};
    const SECRET: &str = "witness-secret-0123456789";
    const THEN: i64 = 1_700_000_000; // 2023-11-14, long before the system clock
    struct Fixed(i64);
    impl passbind_core::ports::Clock for Fixed {
        fn now(&self) -> passbind_core::model::Millis {
            self.0 * 1000
        }
    }
    let bundles = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = Arc::clone(&bundles);
    let app = Router::new().route(
        "/",
        post(move |Json(req): Json<Value>| {
            let seen = Arc::clone(&seen);
            async move {
                let jws = req["bundle"].as_str().unwrap().to_owned();
                let payload: Value = serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(jws.split('.').nth(1).unwrap())
                        .unwrap(),
                )
                .unwrap();
                let out = json!({"run_id": payload["run_id"], "decision": "approve"}).to_string();
                seen.lock().unwrap().push(payload);
                let sig = sign_response(SECRET.as_bytes(), out.as_bytes(), THEN);
                (
                    [(passbind_idv::witness::RESPONSE_SIGNATURE_HEADER, sig)],
                    out,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let witness = |now: i64| {
        WitnessProvider::new(WitnessConfig {
            url: url.clone(),
            secret: SECRET.into(),
            timeout: Duration::from_secs(5),
            signing_seed: [9; 32],
            clock: Arc::new(Fixed(now)),
        })
        .unwrap()
    };
    let start = || passbind_core::ports::StartRun {
        purpose: IdvPurpose::StepUp,
        session_id: "stp_1".into(),
        customer_user_ref: "ref".into(),
        biometric_token: None,
        custom_data: Default::default(),
    };
    for (now, expected) in [(THEN, RunStatus::Approved), (THEN + 3600, RunStatus::Error)] {
        let w = witness(now);
        let run = w.start_run(start()).await.unwrap();
        let outcome = w.fetch_run(&run.run_id).await.unwrap();
        assert_eq!(outcome.status, expected, "clock at {now}");
        assert_eq!(bundles.lock().unwrap().last().unwrap()["issued_at"], now);
    }
}
