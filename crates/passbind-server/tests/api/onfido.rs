//! The Entrust/Onfido Studio provider end to end: the real server configured with
//! `PASSBIND_IDV_PROVIDER=onfido` against a fake Onfido API on a real socket (see
//! `fake_onfido.rs`). The test plays the provider: it decides each run's outcome and sends the
//! signed webhooks (or loses them, for the reconciler).

use crate::common::{assert_error, user_credentials, TestApp};
use crate::fake_onfido::{
    FakeAuth, FakeOnfido, API_TOKEN, CLIENT_ID, CLIENT_SECRET, WEBHOOK_TOKEN, WF_REGISTRATION,
    WF_VERIFY,
};
use passbind_sdk::device::Device;
use passbind_server::config::{Mode, Secret};
use passbind_server::Settings;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The server (with its database) and the fake provider it talks to.
pub struct Env {
    pub app: TestApp,
    pub fake: FakeOnfido,
}

/// Points `s` at the fake, with short retry waits and the reconciler off (tests that need it
/// turn it on).
fn onfido_settings(s: &mut Settings, base_url: &str, auth: FakeAuth) {
    s.idv_provider = "onfido".into();
    s.onfido_base_url = Some(url::Url::parse(base_url).unwrap());
    match auth {
        FakeAuth::Token => s.onfido_api_token = Some(Secret(API_TOKEN.into())),
        FakeAuth::OAuth { .. } => {
            s.onfido_client_id = Some(CLIENT_ID.into());
            s.onfido_client_secret = Some(Secret(CLIENT_SECRET.into()));
        }
    }
    s.onfido_webhook_token = Some(Secret(WEBHOOK_TOKEN.into()));
    s.registration_workflow_id = Some(WF_REGISTRATION.into());
    s.step_up_workflow_id = Some(WF_VERIFY.into());
    s.recovery_workflow_id = Some(WF_VERIFY.into());
    s.idv_timeout_seconds = 5;
    s.idv_max_retries = 2;
    s.idv_retry_backoff_ms = 10;
    s.idv_max_retry_delay_ms = 1500;
    s.idv_reconcile_interval_seconds = 0.0;
}

impl Env {
    pub async fn start(
        postgres: bool,
        auth: FakeAuth,
        tweak: impl FnOnce(&mut Settings) + Send + 'static,
    ) -> Self {
        // The fake first (the server needs its URL), the webhook target once the server runs.
        let fake = FakeOnfido::start(auth).await;
        let base_url = fake.base_url.clone();
        let app = TestApp::start(
            move |s| {
                onfido_settings(s, &base_url, auth);
                tweak(s);
            },
            postgres,
        )
        .await;
        fake.set_webhook_url(format!("{}/v1/webhooks/idv/onfido", app.base));
        Self { app, fake }
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL, against a fresh fake.
macro_rules! onfido_test {
    ($name:ident) => {
        onfido_test!($name, FakeAuth::Token, |_| {});
    };
    ($name:ident, $auth:expr, $tweak:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Env::start(false, $auth, $tweak).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Env::start(true, $auth, $tweak).await).await
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// helpers

fn id(s: &Value) -> String {
    s["id"].as_str().unwrap().to_owned()
}

fn run_id(s: &Value) -> String {
    s["idv"]["run_id"].as_str().unwrap().to_owned()
}

async fn open(env: &Env, resource: &str, user: &str) -> Value {
    let r = env
        .app
        .post_json(
            &format!("/v1/{resource}"),
            &json!({ "external_user_id": user }),
        )
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["state"], "idv_pending", "{}", r.1);
    r.1
}

async fn read(env: &Env, resource: &str, s: &Value) -> Value {
    let r = env.app.get_json(&format!("/v1/{resource}/{}", id(s))).await;
    assert_eq!(r.0, 200, "{}", r.1);
    r.1
}

async fn version(env: &Env, s: &Value) -> i64 {
    env.app
        .server
        .engine
        .store()
        .session(&id(s))
        .await
        .unwrap()
        .unwrap()
        .version
}

fn ebt_output(token: &str) -> Option<Value> {
    Some(json!({ "encrypted_biometric_token": token }))
}

/// Ends the session's run at the fake and delivers the signed webhook; returns the session.
async fn settle(
    env: &Env,
    resource: &str,
    s: &Value,
    status: &str,
    output: Option<Value>,
) -> Value {
    let run = run_id(s);
    env.fake.finish(&run, status, output);
    let r = env.fake.send_completed(&run, status).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["status"], "applied", "{}", r.1);
    read(env, resource, s).await
}

/// The workflow-run request the fake received for this session's run.
fn run_request(env: &Env, s: &Value) -> Value {
    let run = env.fake.run(&run_id(s));
    env.fake
        .run_requests()
        .into_iter()
        .find(|r| r["applicant_id"] == run["applicant_id"])
        .unwrap()
}

/// Registers `user` on `device` with an approved run whose output is `ebt`; returns the
/// completed session.
async fn register(env: &Env, user: &str, device: &Device, ebt: &str) -> Value {
    let s = open(env, "registrations", user).await;
    let after = settle(env, "registrations", &s, "approved", ebt_output(ebt)).await;
    assert_eq!(after["state"], "idv_passed", "{after}");
    let cred = device
        .authenticator
        .create(&env.app.origin(), &s["webauthn"])
        .await
        .unwrap();
    let done = env
        .app
        .post_json(
            &format!("/v1/registrations/{}/complete", id(&s)),
            &json!({ "credential": cred }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");
    done.1
}

async fn has_ebt(env: &Env, user: &str) -> bool {
    let store = env.app.server.engine.store();
    let u = store.user_by_external_id(user).await.unwrap().unwrap();
    store.ebt(&u.id).await.unwrap().is_some()
}

/// Waits until the session has left `idv_pending`.
async fn wait_settled(env: &Env, resource: &str, s: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = read(env, resource, s).await;
        if now["state"] != "idv_pending" {
            return now;
        }
        assert!(Instant::now() < deadline, "still pending: {now}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// the flows, approved

async fn registration_approved(env: Env) {
    let phone = Device::new();
    let s = open(&env, "registrations", "alice").await;
    assert_eq!(s["idv"]["provider"], "onfido");
    assert_eq!(s["idv"]["face_only"], false);
    let run = run_id(&s);
    // The device gets the run's sdk_token; no capture URL (the Onfido SDK knows its host).
    assert_eq!(s["idv"]["sdk_token"], env.fake.run(&run)["sdk_token"]);
    assert!(s["idv"]["capture_url"].is_null());
    // Placeholder names only; the enrolment workflow; an empty token as the workflow input; a
    // keyed hash of the user id, never the id.
    assert_eq!(
        env.fake.applicant_bodies(),
        vec![json!({"first_name": "Passbind", "last_name": "Applicant"})]
    );
    let req = run_request(&env, &s);
    assert_eq!(req["workflow_id"], WF_REGISTRATION);
    assert_eq!(req["custom_data"]["encrypted_biometric_token"], "");
    let user_ref = env.app.server.engine.user_ref("alice");
    assert_eq!(req["customer_user_id"], user_ref.as_str());
    assert!(!req.to_string().contains("alice"), "{req}");
    for seen in env.fake.seen() {
        assert_eq!(seen.authorization, format!("Token token={API_TOKEN}"));
    }

    let after = settle(
        &env,
        "registrations",
        &s,
        "approved",
        ebt_output("ebt-alice"),
    )
    .await;
    assert_eq!(after["state"], "idv_passed");
    assert_eq!(after["idv"]["verdict"], "passed");
    assert!(after["idv"]["sdk_token"].is_null(), "shown once only");
    assert_eq!(env.fake.reads_of(&run), 1, "the run is read back once");
    assert!(has_ebt(&env, "alice").await);
    let cred = phone
        .authenticator
        .create(&env.app.origin(), &s["webauthn"])
        .await
        .unwrap();
    let done = env
        .app
        .post_json(
            &format!("/v1/registrations/{}/complete", id(&s)),
            &json!({ "credential": cred }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");

    // A second phone: face-only, the stored token (decrypted in memory) is the workflow input;
    // the approved run needs no output token because the user has one.
    let s2 = open(&env, "registrations", "alice").await;
    assert_eq!(s2["idv"]["face_only"], true);
    let req = run_request(&env, &s2);
    assert_eq!(req["workflow_id"], WF_REGISTRATION);
    assert_eq!(req["custom_data"]["encrypted_biometric_token"], "ebt-alice");
    let after = settle(&env, "registrations", &s2, "approved", None).await;
    assert_eq!(after["state"], "idv_passed");
}
onfido_test!(registration_approved);

async fn step_up_approved_and_declined(env: Env) {
    let phone = Device::new();
    register(&env, "bob", &phone, "ebt-bob").await;

    let s = open(&env, "step-ups", "bob").await;
    let req = run_request(&env, &s);
    assert_eq!(req["workflow_id"], WF_VERIFY);
    assert_eq!(req["custom_data"]["encrypted_biometric_token"], "ebt-bob");
    let after = settle(&env, "step-ups", &s, "approved", None).await;
    assert_eq!(after["state"], "idv_passed");
    let assertion = phone
        .authenticator
        .get(&env.app.origin(), &s["webauthn"])
        .await
        .unwrap();
    let done = env
        .app
        .post_json(
            &format!("/v1/step-ups/{}/complete", id(&s)),
            &json!({ "credential": assertion }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");

    // Declined: the capture did not match; completion is refused, the mismatch counts towards
    // the lockout, and a new capture (a new run) may follow.
    let s = open(&env, "step-ups", "bob").await;
    let after = settle(&env, "step-ups", &s, "declined", None).await;
    assert_eq!(after["state"], "capture_failed");
    assert_eq!(after["captures"]["failed"], 1);
    let assertion = phone
        .authenticator
        .get(&env.app.origin(), &s["webauthn"])
        .await
        .unwrap();
    let path = format!("/v1/step-ups/{}/complete", id(&s));
    assert_error(
        &env.app
            .post_json(&path, &json!({ "credential": assertion }))
            .await,
        422,
        "biometric_mismatch",
    );
    let store = env.app.server.engine.store();
    let user = store.user_by_external_id("bob").await.unwrap().unwrap();
    assert_eq!(
        store
            .failures_since(&user.id, "step_up_biometric", 0)
            .await
            .unwrap()
            .len(),
        1
    );
    let retried = env
        .app
        .post_json(&format!("/v1/step-ups/{}/retry", id(&s)), &json!({}))
        .await;
    assert_eq!(retried.0, 200, "{}", retried.1);
    assert_ne!(run_id(&retried.1), run_id(&s), "a retry is a new run");
    let after = settle(&env, "step-ups", &retried.1, "approved", None).await;
    assert_eq!(after["state"], "idv_passed");
    let r = env
        .app
        .post_json(&path, &json!({ "credential": assertion }))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
}
onfido_test!(step_up_approved_and_declined);

async fn recovery_approved_and_declined(env: Env) {
    register(&env, "carol", &Device::new(), "ebt-carol").await;

    let new_phone = Device::new();
    let s = open(&env, "recoveries", "carol").await;
    let req = run_request(&env, &s);
    assert_eq!(req["workflow_id"], WF_VERIFY);
    assert_eq!(req["custom_data"]["encrypted_biometric_token"], "ebt-carol");
    let after = settle(&env, "recoveries", &s, "approved", None).await;
    assert_eq!(after["state"], "idv_passed");
    let c = env
        .app
        .post_json(
            &format!("/v1/recoveries/{}/continuation", id(&s)),
            &json!({}),
        )
        .await;
    assert_eq!(c.0, 200, "{}", c.1);
    let ex = env
        .app
        .post_json(
            "/v1/recoveries/exchange",
            &json!({ "continuation": c.1["continuation"]["token"] }),
        )
        .await;
    assert_eq!(ex.0, 200, "{}", ex.1);
    let cred = new_phone
        .authenticator
        .create(&env.app.origin(), &ex.1["webauthn"])
        .await
        .unwrap();
    let done = env
        .app
        .post_json(
            &format!("/v1/recoveries/{}/complete", id(&s)),
            &json!({ "credential": cred }),
        )
        .await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(done.1["state"], "completed");
    let creds = user_credentials(&env.app, "carol").await;
    assert_eq!(creds.iter().filter(|c| c.revoked_at.is_none()).count(), 1);

    // Declined: the dedicated recovery mismatch code.
    let s = open(&env, "recoveries", "carol").await;
    let after = settle(&env, "recoveries", &s, "declined", None).await;
    assert_eq!(after["state"], "idv_failed");
    assert_eq!(after["idv"]["failure_reason"], "declined");
    assert_error(
        &env.app
            .post_json(
                &format!("/v1/recoveries/{}/continuation", id(&s)),
                &json!({}),
            )
            .await,
        422,
        "recovery_biometric_mismatch",
    );
}
onfido_test!(recovery_approved_and_declined);

// ---------------------------------------------------------------------------------------------
// the failures

async fn every_failure_status(env: Env) {
    register(&env, "dave", &Device::new(), "ebt-dave").await;

    // A declined registration: the clean failure.
    let s = open(&env, "registrations", "dave-declined").await;
    let after = settle(&env, "registrations", &s, "declined", None).await;
    assert_eq!(after["state"], "idv_failed");
    assert_eq!(after["idv"]["failure_reason"], "declined");
    let r = env
        .app
        .post_json(
            &format!("/v1/registrations/{}/complete", id(&s)),
            &json!({ "credential": {} }),
        )
        .await;
    assert_error(&r, 422, "biometric_mismatch");

    // review, abandoned, error (and a status Passbind does not know): failures with their own
    // reason, in every flow; completion says which.
    for status in ["review", "abandoned", "error", "on_hold"] {
        let reason = if status == "on_hold" {
            "unknown_status"
        } else {
            status
        };
        let reg = open(&env, "registrations", &format!("dave-{status}")).await;
        let after = settle(&env, "registrations", &reg, status, ebt_output("x")).await;
        assert_eq!(after["state"], "idv_failed", "{status}: {after}");
        assert_eq!(after["idv"]["failure_reason"], reason);
        let r = env
            .app
            .post_json(
                &format!("/v1/registrations/{}/complete", id(&reg)),
                &json!({ "credential": {} }),
            )
            .await;
        assert_error(&r, 422, "idv_failed");
        assert_eq!(r.1["error"]["details"]["reason"], reason);
        let u = env
            .app
            .server
            .engine
            .store()
            .user_by_external_id(&format!("dave-{status}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            env.app
                .server
                .engine
                .store()
                .ebt(&u.id)
                .await
                .unwrap()
                .is_none(),
            "a failed registration stores no token"
        );

        let step = open(&env, "step-ups", "dave").await;
        let after = settle(&env, "step-ups", &step, status, None).await;
        assert_eq!(after["state"], "idv_failed", "{status}: {after}");
        assert_eq!(after["idv"]["failure_reason"], reason);
        let r = env
            .app
            .post_json(
                &format!("/v1/step-ups/{}/complete", id(&step)),
                &json!({ "credential": {} }),
            )
            .await;
        assert_error(&r, 422, "idv_failed");
        assert_eq!(r.1["error"]["details"]["reason"], reason);

        let rec = open(&env, "recoveries", "dave").await;
        let after = settle(&env, "recoveries", &rec, status, None).await;
        assert_eq!(after["state"], "idv_failed", "{status}: {after}");
        assert_eq!(after["idv"]["failure_reason"], reason);
        let r = env
            .app
            .post_json(
                &format!("/v1/recoveries/{}/continuation", id(&rec)),
                &json!({}),
            )
            .await;
        assert_error(&r, 422, "idv_failed");
        assert_eq!(r.1["error"]["details"]["reason"], reason);
    }
    // Only declined step-ups count towards the lockout.
    let store = env.app.server.engine.store();
    let user = store.user_by_external_id("dave").await.unwrap().unwrap();
    assert!(store
        .failures_since(&user.id, "step_up_biometric", 0)
        .await
        .unwrap()
        .is_empty());
}
onfido_test!(every_failure_status);

async fn approved_registration_without_a_token_fails(env: Env) {
    for (user, output) in [
        ("erin", None),
        ("erin-empty", ebt_output("")),
        ("erin-other", Some(json!({"some_other_output": "x"}))),
    ] {
        let s = open(&env, "registrations", user).await;
        let after = settle(&env, "registrations", &s, "approved", output).await;
        assert_eq!(after["state"], "idv_failed", "{after}");
        assert_eq!(after["idv"]["failure_reason"], "missing_biometric_token");
        let r = env
            .app
            .post_json(
                &format!("/v1/registrations/{}/complete", id(&s)),
                &json!({ "credential": {} }),
            )
            .await;
        assert_error(&r, 422, "idv_failed");
        assert_eq!(r.1["error"]["details"]["reason"], "missing_biometric_token");
        assert!(!has_ebt(&env, user).await);
        assert!(user_credentials(&env.app, user).await.is_empty());
    }
}
onfido_test!(approved_registration_without_a_token_fails);

// ---------------------------------------------------------------------------------------------
// webhooks

async fn forged_webhooks_change_nothing(env: Env) {
    let s = open(&env, "registrations", "frank").await;
    let run = run_id(&s);
    // The run is approved at the provider: a webhook that got through would settle it.
    env.fake.finish(&run, "approved", ebt_output("ebt-frank"));
    let body = env.fake.completed_body(&run, "approved");
    let v0 = version(&env, &s).await;

    let forged = passbind_idv::signature::sign_sha2(b"not-the-webhook-token", &body);
    let tampered_sig = FakeOnfido::sign(&env.fake.completed_body(&run, "declined"));
    for signature in [
        None,
        Some(forged.as_str()),
        Some(tampered_sig.as_str()),
        Some("not hex at all"),
        Some(""),
    ] {
        let r = env.fake.deliver(&body, signature).await;
        assert_error(&r, 401, "invalid_signature");
    }
    // A valid signature over other bytes (one trailing newline).
    let mut longer = body.clone();
    longer.push(b'\n');
    assert_error(
        &env.fake
            .deliver(&longer, Some(&FakeOnfido::sign(&body)))
            .await,
        401,
        "invalid_signature",
    );
    // Nothing changed, and the provider was never asked: the signature is checked first.
    assert_eq!(version(&env, &s).await, v0);
    assert_eq!(
        read(&env, "registrations", &s).await["state"],
        "idv_pending"
    );
    assert_eq!(env.fake.reads_of(&run), 0);

    // Signed, but not an event Passbind acts on: acknowledged and ignored.
    for (resource_type, action) in [
        ("workflow_task", "workflow_task.completed"),
        ("workflow_run", "workflow_run.started"),
        ("check", "check.completed"),
    ] {
        let other = serde_json::to_vec(&json!({"payload": {
            "resource_type": resource_type, "action": action,
            "object": {"id": run, "status": "approved"}
        }}))
        .unwrap();
        let r = env
            .fake
            .deliver(&other, Some(&FakeOnfido::sign(&other)))
            .await;
        assert_eq!(r.0, 200, "{}", r.1);
        assert_eq!(r.1["status"], "ignored");
    }
    // Signed, for a run Passbind does not know.
    let r = env
        .fake
        .send_completed("b0000000-0000-4000-8000-0000000fffff", "approved")
        .await;
    assert_error(&r, 404, "unknown_idv_run");
    assert_eq!(version(&env, &s).await, v0);
    assert_eq!(env.fake.reads_of(&run), 0);

    // The genuine delivery.
    let r = env
        .fake
        .deliver(&body, Some(&FakeOnfido::sign(&body)))
        .await;
    assert_eq!(r.1["status"], "applied", "{}", r.1);
    assert_eq!(read(&env, "registrations", &s).await["state"], "idv_passed");
}
onfido_test!(forged_webhooks_change_nothing);

async fn a_replayed_webhook_is_applied_once(env: Env) {
    let s = open(&env, "registrations", "grace").await;
    let run = run_id(&s);
    env.fake.finish(&run, "approved", ebt_output("ebt-grace"));
    let v0 = version(&env, &s).await;

    // Six copies at once, then three more one after another.
    let concurrent =
        futures::future::join_all((0..6).map(|_| env.fake.send_completed(&run, "approved"))).await;
    for r in &concurrent {
        assert_eq!(r.0, 200, "{}", r.1);
    }
    let applied = concurrent
        .iter()
        .filter(|r| r.1["status"] == "applied")
        .count();
    assert_eq!(applied, 1, "{concurrent:?}");
    for r in concurrent.iter().filter(|r| r.1["status"] != "applied") {
        assert!(
            r.1["status"] == "duplicate" || r.1["status"] == "already_settled",
            "{r:?}"
        );
    }
    let reads = env.fake.reads_of(&run);
    for _ in 0..3 {
        let r = env.fake.send_completed(&run, "approved").await;
        assert_eq!(r.1["status"], "duplicate", "{}", r.1);
    }
    // A replay of a settled run costs no call to the provider.
    assert_eq!(env.fake.reads_of(&run), reads);
    assert_eq!(version(&env, &s).await, v0 + 1);
    assert_eq!(read(&env, "registrations", &s).await["state"], "idv_passed");
    assert!(has_ebt(&env, "grace").await);
}
onfido_test!(a_replayed_webhook_is_applied_once);

async fn the_refetched_run_wins_over_the_payload(env: Env) {
    register(&env, "heidi", &Device::new(), "ebt-heidi").await;

    // The payload says approved; the provider's record says declined.
    let s = open(&env, "registrations", "heidi-2").await;
    env.fake
        .finish(&run_id(&s), "declined", ebt_output("ebt-x"));
    let r = env.fake.send_completed(&run_id(&s), "approved").await;
    assert_eq!(r.1["status"], "applied", "{}", r.1);
    let after = read(&env, "registrations", &s).await;
    assert_eq!(after["state"], "idv_failed");
    assert_eq!(after["idv"]["failure_reason"], "declined");
    assert!(!has_ebt(&env, "heidi-2").await);

    // The payload says declined; the provider's record says approved.
    let step = open(&env, "step-ups", "heidi").await;
    env.fake.finish(&run_id(&step), "approved", None);
    let r = env.fake.send_completed(&run_id(&step), "declined").await;
    assert_eq!(r.1["status"], "applied", "{}", r.1);
    assert_eq!(read(&env, "step-ups", &step).await["state"], "idv_passed");

    // A token in the payload's `resource` is never taken: only the run's output counts.
    let s = open(&env, "registrations", "heidi-3").await;
    let run = run_id(&s);
    env.fake.finish(&run, "approved", None);
    let body = serde_json::to_vec(&json!({"payload": {
        "resource_type": "workflow_run", "action": "workflow_run.completed",
        "object": {"id": run, "status": "approved", "completed_at_iso8601": "2026-01-01T00:05:00Z"},
        "resource": {"workflow_run_id": run, "output": {"encrypted_biometric_token": "forged"}}
    }}))
    .unwrap();
    let r = env
        .fake
        .deliver(&body, Some(&FakeOnfido::sign(&body)))
        .await;
    assert_eq!(r.1["status"], "applied", "{}", r.1);
    let after = read(&env, "registrations", &s).await;
    assert_eq!(after["idv"]["failure_reason"], "missing_biometric_token");
    assert!(!has_ebt(&env, "heidi-3").await);
}
onfido_test!(the_refetched_run_wins_over_the_payload);

async fn a_failed_refetch_records_nothing(env: Env) {
    let s = open(&env, "registrations", "ivan").await;
    let run = run_id(&s);
    env.fake.finish(&run, "approved", ebt_output("ebt-ivan"));
    // The provider cannot be read: the delivery fails (the provider will retry it) ...
    env.fake.fail_next(100, 500, None);
    let r = env.fake.send_completed(&run, "approved").await;
    assert_error(&r, 502, "idv_unavailable");
    assert_eq!(
        env.fake.reads_of(&run),
        3,
        "bounded: one try and two retries"
    );
    env.fake.clear_failures();
    assert_eq!(
        read(&env, "registrations", &s).await["state"],
        "idv_pending"
    );
    // ... and nothing was recorded: the retry is applied, not taken for a replay.
    let r = env.fake.send_completed(&run, "approved").await;
    assert_eq!(r.1["status"], "applied", "{}", r.1);
    assert_eq!(read(&env, "registrations", &s).await["state"], "idv_passed");

    // A run still in progress: acknowledged, nothing recorded, the final delivery applies.
    let s = open(&env, "registrations", "ivan-2").await;
    let run = run_id(&s);
    let r = env.fake.send_completed(&run, "approved").await;
    assert_eq!(r.1["status"], "not_terminal", "{}", r.1);
    env.fake.finish(&run, "approved", ebt_output("ebt-ivan-2"));
    let r = env.fake.send_completed(&run, "approved").await;
    assert_eq!(r.1["status"], "applied", "{}", r.1);
}
onfido_test!(a_failed_refetch_records_nothing);

// ---------------------------------------------------------------------------------------------
// an unavailable provider

async fn provider_errors_when_opening(env: Env) {
    let r = |user: &str| json!({ "external_user_id": user });
    let applicants = || env.fake.count("POST", "/applicants");

    // Two 500s, then success: retried within the bound.
    env.fake.fail_next(2, 500, None);
    let before = applicants();
    let ok = env.app.post_json("/v1/registrations", &r("judy")).await;
    assert_eq!(ok.0, 201, "{}", ok.1);
    assert_eq!(applicants() - before, 3);

    // Always 500: three attempts, then 502 idv_unavailable, and nothing is stored.
    env.fake.fail_next(100, 500, None);
    let before = applicants();
    let failed = env.app.post_json("/v1/registrations", &r("judy-2")).await;
    assert_error(&failed, 502, "idv_unavailable");
    assert!(
        !failed.1.to_string().contains("fake_failure"),
        "{}",
        failed.1
    );
    assert_eq!(applicants() - before, 3);
    env.fake.clear_failures();
    let store = env.app.server.engine.store();
    assert!(store.user_by_external_id("judy-2").await.unwrap().is_none());

    // A 429 with Retry-After: 1 is waited out, then the call succeeds.
    env.fake.fail_next(1, 429, Some(1));
    let started = Instant::now();
    let ok = env.app.post_json("/v1/registrations", &r("judy-3")).await;
    assert_eq!(ok.0, 201, "{}", ok.1);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );

    // Rate limited throughout: 502 idv_unavailable.
    env.fake.fail_next(100, 429, None);
    let failed = env.app.post_json("/v1/registrations", &r("judy-4")).await;
    assert_error(&failed, 502, "idv_unavailable");
    env.fake.clear_failures();

    // The step-up and recovery open paths say the same.
    register(&env, "judy", &Device::new(), "ebt-judy").await;
    for resource in ["step-ups", "recoveries"] {
        env.fake.fail_next(100, 503, None);
        let failed = env
            .app
            .post_json(&format!("/v1/{resource}"), &r("judy"))
            .await;
        assert_error(&failed, 502, "idv_unavailable");
        env.fake.clear_failures();
    }
    // And it recovers.
    open(&env, "step-ups", "judy").await;
}
onfido_test!(provider_errors_when_opening);

// ---------------------------------------------------------------------------------------------
// the reconciler

async fn a_lost_webhook_is_settled_by_the_reconciler(env: Env) {
    register(&env, "kim", &Device::new(), "ebt-kim").await;
    let approved = open(&env, "registrations", "kim-2").await;
    let declined = open(&env, "step-ups", "kim").await;
    let running = open(&env, "recoveries", "kim").await;
    env.fake
        .finish(&run_id(&approved), "approved", ebt_output("ebt-kim-2"));
    env.fake.finish(&run_id(&declined), "review", None);
    // No webhook is ever sent for these.

    let after = wait_settled(&env, "registrations", &approved).await;
    assert_eq!(after["state"], "idv_passed");
    assert!(has_ebt(&env, "kim-2").await);
    let after = wait_settled(&env, "step-ups", &declined).await;
    assert_eq!(after["state"], "idv_failed");
    assert_eq!(after["idv"]["failure_reason"], "review");
    // A run that is not finished stays pending, though the reconciler keeps asking.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.fake.reads_of(&run_id(&running)) < 2 {
        assert!(Instant::now() < deadline, "the running run is not polled");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        read(&env, "recoveries", &running).await["state"],
        "idv_pending"
    );
    // Once it ends, it is settled too.
    env.fake.finish(&run_id(&running), "approved", None);
    let after = wait_settled(&env, "recoveries", &running).await;
    assert_eq!(after["state"], "idv_passed");

    // The webhooks arrive late: duplicates, nothing changes.
    let v = version(&env, &approved).await;
    let r = env
        .fake
        .send_completed(&run_id(&approved), "approved")
        .await;
    assert_eq!(r.1["status"], "duplicate", "{}", r.1);
    let r = env.fake.send_completed(&run_id(&declined), "review").await;
    assert_eq!(r.1["status"], "duplicate", "{}", r.1);
    assert_eq!(version(&env, &approved).await, v);
    // Settled sessions are no longer polled.
    let reads = env.fake.reads_of(&run_id(&approved));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(env.fake.reads_of(&run_id(&approved)), reads);
}
onfido_test!(
    a_lost_webhook_is_settled_by_the_reconciler,
    FakeAuth::Token,
    |s| {
        s.idv_reconcile_interval_seconds = 0.1;
        s.idv_reconcile_min_age_seconds = 0.2;
    }
);

/// A delivery whose re-fetch is slow is acknowledged at the deadline; when the processing then
/// fails, nothing was recorded and the reconciler settles the session.
async fn a_slow_refetch_is_acknowledged_then_settled(env: Env) {
    let s = open(&env, "registrations", "slow").await;
    env.fake
        .finish(&run_id(&s), "approved", ebt_output("ebt-slow"));
    // Every read fails for a while, with backoffs longer than the acknowledgement deadline.
    env.fake.fail_next(3, 500, None);
    let r = env.fake.send_completed(&run_id(&s), "approved").await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["status"], "accepted", "{}", r.1);
    let after = wait_settled(&env, "registrations", &s).await;
    assert_eq!(after["state"], "idv_passed");
    assert!(has_ebt(&env, "slow").await);
}
onfido_test!(
    a_slow_refetch_is_acknowledged_then_settled,
    FakeAuth::Token,
    |s: &mut Settings| {
        s.idv_webhook_ack_ms = 100;
        s.idv_retry_backoff_ms = 400;
        s.idv_max_retry_delay_ms = 400;
        s.idv_reconcile_interval_seconds = 0.3;
        s.idv_reconcile_min_age_seconds = 0.0;
    }
);

async fn the_reconciler_stops_with_the_server(env: Env) {
    let s = open(&env, "registrations", "olga").await;
    let run = run_id(&s);
    // The run never ends: the reconciler keeps polling it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.fake.reads_of(&run) < 2 {
        assert!(Instant::now() < deadline, "the reconciler does not poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Env { app, fake } = env;
    let started = Instant::now();
    app.server.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let reads = fake.reads_of(&run);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(fake.reads_of(&run), reads, "polling goes on after the stop");
}
onfido_test!(the_reconciler_stops_with_the_server, FakeAuth::Token, |s| {
    s.idv_reconcile_interval_seconds = 0.05;
    s.idv_reconcile_min_age_seconds = 0.0;
});

async fn reconcilers_on_two_replicas_apply_each_outcome_once(env: Env) {
    // A second replica on the same database and keys, reconciler off on both: the test drives
    // both replicas' passes at once.
    let base_url = env.fake.base_url.clone();
    let sqlite_file = format!(
        "sqlite://{}",
        env.app.dir.path().join("passbind.db").display()
    );
    let shared = env.app.shared_store.clone();
    let sqlite = shared.is_none();
    let replica2 = TestApp::start_with_store(
        move |s| {
            onfido_settings(s, &base_url, FakeAuth::Token);
            s.keyring = Some(Secret(shared_keyring()));
            s.user_ref_key = Some(Secret(shared_user_ref()));
            if sqlite {
                s.database_url = Some(Secret(sqlite_file));
            }
        },
        shared,
    )
    .await;
    let engines = [
        env.app.server.engine.clone(),
        replica2.server.engine.clone(),
    ];
    let probe = open(&env, "registrations", "liam-probe").await;
    assert!(
        replica2
            .server
            .engine
            .store()
            .session(&id(&probe))
            .await
            .unwrap()
            .is_some(),
        "the replicas share one database"
    );
    env.fake.finish(&run_id(&probe), "abandoned", None);
    assert_eq!(
        env.fake
            .send_completed(&run_id(&probe), "abandoned")
            .await
            .1["status"],
        "applied"
    );

    register(&env, "liam", &Device::new(), "ebt-liam").await;
    let declined = open(&env, "step-ups", "liam").await;
    let approved = open(&env, "step-ups", "liam").await;
    let new_user = open(&env, "registrations", "liam-2").await;
    let review = open(&env, "recoveries", "liam").await;
    let running = open(&env, "registrations", "liam-3").await;
    env.fake.finish(&run_id(&declined), "declined", None);
    env.fake.finish(&run_id(&approved), "approved", None);
    env.fake
        .finish(&run_id(&new_user), "approved", ebt_output("ebt-liam-2"));
    env.fake.finish(&run_id(&review), "review", None);
    let settled = [&declined, &approved, &new_user, &review];
    let mut versions = Vec::new();
    for s in settled {
        versions.push(version(&env, s).await);
    }

    // Too young for the minimum age: nothing is looked at.
    let first_opened = engines[0].now() - 60_000;
    let report = engines[0]
        .reconcile_pending(first_opened, None, 100)
        .await
        .unwrap();
    assert_eq!(report.examined, 0);

    // Eight passes at once, four per replica.
    let now = engines[0].now() + 1;
    let passes =
        futures::future::join_all((0..8).map(|i| engines[i % 2].reconcile_pending(now, None, 100)))
            .await;
    let reports: Vec<_> = passes.into_iter().map(Result::unwrap).collect();
    let applied: u32 = reports.iter().map(|r| r.applied).sum();
    assert_eq!(applied, 4, "{reports:?}");
    for r in &reports {
        assert_eq!(r.failed, 0, "{r:?}");
        assert!(r.next.is_none(), "{r:?}");
    }
    // Each settled session moved exactly once.
    for (s, v) in settled.iter().zip(&versions) {
        assert_eq!(version(&env, s).await, v + 1);
    }
    assert_eq!(
        read(&env, "step-ups", &declined).await["state"],
        "capture_failed"
    );
    assert_eq!(
        read(&env, "step-ups", &approved).await["state"],
        "idv_passed"
    );
    assert_eq!(
        read(&env, "registrations", &new_user).await["state"],
        "idv_passed"
    );
    assert_eq!(
        read(&env, "recoveries", &review).await["state"],
        "idv_failed"
    );
    assert_eq!(
        read(&env, "registrations", &running).await["state"],
        "idv_pending"
    );
    assert!(has_ebt(&env, "liam-2").await);
    let store = env.app.server.engine.store();
    let user = store.user_by_external_id("liam").await.unwrap().unwrap();
    assert_eq!(
        store
            .failures_since(&user.id, "step_up_biometric", 0)
            .await
            .unwrap()
            .len(),
        1,
        "the declined capture is counted once"
    );
    // The provider's webhooks for these outcomes now arrive, at either replica: duplicates.
    for (s, status) in [
        (&declined, "declined"),
        (&approved, "approved"),
        (&new_user, "approved"),
        (&review, "review"),
    ] {
        let r = env.fake.send_completed(&run_id(s), status).await;
        assert_eq!(r.1["status"], "duplicate", "{}", r.1);
    }
    // Another pass finds only the running one.
    let report = engines[1].reconcile_pending(now, None, 100).await.unwrap();
    assert_eq!(report.examined, 1);
    assert_eq!(report.still_running, 1);
    assert_eq!(report.applied, 0);

    // Paging: a pass of one continues where the last stopped.
    let more = open(&env, "registrations", "liam-4").await;
    env.fake
        .finish(&run_id(&more), "approved", ebt_output("ebt-liam-4"));
    let now = engines[0].now() + 1;
    let first = engines[0].reconcile_pending(now, None, 1).await.unwrap();
    assert_eq!(first.examined, 1);
    assert!(first.next.is_some());
    let second = engines[0]
        .reconcile_pending(now, first.next.clone(), 1)
        .await
        .unwrap();
    assert_eq!(second.examined, 1);
    assert_eq!(first.applied + second.applied, 1);
    assert_eq!(
        read(&env, "registrations", &more).await["state"],
        "idv_passed"
    );

    // The provider is down: the pass stops at the first unavailable read and reports it.
    open(&env, "registrations", "liam-5").await;
    env.fake.fail_next(100, 500, None);
    let now = engines[0].now() + 1;
    let report = engines[0].reconcile_pending(now, None, 100).await.unwrap();
    env.fake.clear_failures();
    assert!(report.provider_unavailable, "{report:?}");
    assert_eq!(report.examined, 1);
    assert_eq!(report.failed, 1);
}
onfido_test!(
    reconcilers_on_two_replicas_apply_each_outcome_once,
    FakeAuth::Token,
    |s| {
        s.keyring = Some(Secret(shared_keyring()));
        s.user_ref_key = Some(Secret(shared_user_ref()));
    }
);

fn shared_keyring() -> String {
    use base64::Engine as _;
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    )
}

fn shared_user_ref() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([9u8; 32])
}

// ---------------------------------------------------------------------------------------------
// OAuth2 client credentials

async fn oauth_client_credentials(env: Env) {
    let phone = Device::new();
    register(&env, "mia", &phone, "ebt-mia").await;
    let s = open(&env, "step-ups", "mia").await;
    settle(&env, "step-ups", &s, "approved", None).await;
    // One token for every call (applicants, runs, reads).
    assert_eq!(env.fake.token_requests(), 1);
    let seen = env.fake.seen();
    assert!(seen.len() >= 6, "{seen:?}");
    for call in &seen {
        assert_eq!(call.authorization, "Bearer at-1", "{call:?}");
    }

    // The provider revokes the token: one 401, a new token, the call goes through.
    env.fake.revoke_access_tokens();
    open(&env, "step-ups", "mia").await;
    assert_eq!(env.fake.token_requests(), 2);
    assert_eq!(env.fake.seen().last().unwrap().authorization, "Bearer at-2");

    // Wrong client credentials: the integrator sees idv_unavailable, and nothing is stored.
    let base_url = env.fake.base_url.clone();
    let wrong = TestApp::start(
        move |s| {
            onfido_settings(s, &base_url, FakeAuth::OAuth { expires_in: 3600 });
            s.onfido_client_secret = Some(Secret("wrong".into()));
        },
        false,
    )
    .await;
    let r = wrong
        .post_json("/v1/registrations", &json!({"external_user_id": "nobody"}))
        .await;
    assert_error(&r, 502, "idv_unavailable");
    assert!(wrong
        .server
        .engine
        .store()
        .user_by_external_id("nobody")
        .await
        .unwrap()
        .is_none());
}
onfido_test!(
    oauth_client_credentials,
    FakeAuth::OAuth { expires_in: 3600 },
    |_| {}
);

async fn oauth_tokens_are_renewed_before_they_expire(env: Env) {
    // expires_in = 2 s: kept for 1.8 s, then a new one is fetched before use.
    open(&env, "registrations", "noah").await;
    open(&env, "registrations", "noah-2").await;
    assert_eq!(env.fake.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1900)).await;
    open(&env, "registrations", "noah-3").await;
    assert_eq!(env.fake.token_requests(), 2);
    // No call was refused on the way.
    assert!(env
        .fake
        .seen()
        .iter()
        .all(|c| c.authorization.starts_with("Bearer at-")));
}
onfido_test!(
    oauth_tokens_are_renewed_before_they_expire,
    FakeAuth::OAuth { expires_in: 2 },
    |_| {}
);

// ---------------------------------------------------------------------------------------------
// settings

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
    use clap::Parser;
    let mut all = vec!["passbind"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).map(|c| c.settings)
}

fn problems(s: &Settings) -> String {
    match passbind_server::serve::check_settings(s) {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn onfido_settings_are_checked_at_start() {
    let dir = std::path::PathBuf::from("/nonexistent");
    // Nothing configured: every missing setting is listed at once.
    let mut s = Settings::for_tests(dir.clone(), None);
    s.idv_provider = "onfido".into();
    let msg = problems(&s);
    for expected in [
        "PASSBIND_ONFIDO_API_TOKEN (or PASSBIND_ONFIDO_CLIENT_ID with PASSBIND_ONFIDO_CLIENT_SECRET) is required",
        "PASSBIND_ONFIDO_WEBHOOK_TOKEN",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID is required",
        "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID is required",
        "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID is required",
    ] {
        assert!(msg.contains(expected), "{expected} not in:\n{msg}");
    }

    // Complete: no problem; step-up and recovery may share a workflow.
    let mut ok = Settings::for_tests(dir.clone(), None);
    onfido_settings(&mut ok, "https://api.us.onfido.com/v3.6", FakeAuth::Token);
    assert_eq!(problems(&ok), "");

    // Both kinds of credentials, half OAuth2, a bad workflow id, a bad URL, bad reconciler
    // settings: all reported together.
    let mut bad = ok.clone();
    bad.onfido_client_id = Some(CLIENT_ID.into());
    bad.registration_workflow_id = Some("my-workflow".into());
    bad.onfido_base_url = Some(url::Url::parse("ftp://example.com/v3.6").unwrap());
    bad.idv_reconcile_interval_seconds = -1.0;
    bad.idv_reconcile_batch_size = 0;
    let msg = problems(&bad);
    for expected in [
        "not both",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID must be a Studio workflow id",
        "PASSBIND_ONFIDO_BASE_URL must be an http(s) URL",
        "PASSBIND_IDV_RECONCILE_INTERVAL_SECONDS",
        "PASSBIND_IDV_RECONCILE_BATCH_SIZE",
    ] {
        assert!(msg.contains(expected), "{expected} not in:\n{msg}");
    }
    let mut half = ok.clone();
    half.onfido_api_token = None;
    half.onfido_client_secret = Some(Secret(CLIENT_SECRET.into()));
    assert!(
        problems(&half).contains("PASSBIND_ONFIDO_CLIENT_SECRET needs PASSBIND_ONFIDO_CLIENT_ID")
    );
    let mut unknown = ok.clone();
    unknown.idv_provider = "acme".into();
    assert!(problems(&unknown).contains("must be `simulator`, `onfido` or `witness`"));

    // Production accepts onfido (it refuses the simulator), with an https provider URL.
    let mut prod = ok.clone();
    prod.mode = Mode::Production;
    prod.public_url = Some(url::Url::parse("https://passbind.example.com").unwrap());
    prod.rp_id = "example.com".into();
    prod.rp_origins = vec!["https://app.example.com".into()];
    prod.database_url = Some(Secret("postgres://db.example.com/passbind".into()));
    assert_eq!(problems(&prod), "");
    prod.onfido_base_url = Some(url::Url::parse("http://127.0.0.1:9/v3.6").unwrap());
    assert!(problems(&prod).contains("must be https in production"));
    prod.onfido_base_url = None;
    prod.idv_provider = "simulator".into();
    assert!(problems(&prod).contains("PASSBIND_IDV_PROVIDER=simulator is for development only"));

    // Secrets never show in Debug output, nor in the problem list.
    let shown = format!("{bad:?}");
    for secret in [API_TOKEN, WEBHOOK_TOKEN] {
        assert!(!shown.contains(secret));
        assert!(!msg.contains(secret));
    }
}

#[test]
fn onfido_flags_parse() {
    let s = parse(&[
        "--idv-provider",
        "onfido",
        "--onfido-region",
        "ca",
        "--onfido-api-token",
        API_TOKEN,
        "--onfido-webhook-token",
        WEBHOOK_TOKEN,
        "--registration-workflow-id",
        WF_REGISTRATION,
        "--step-up-workflow-id",
        WF_VERIFY,
        "--recovery-workflow-id",
        WF_VERIFY,
        "--idv-reconcile-interval-seconds",
        "0.25",
    ])
    .unwrap();
    assert_eq!(s.onfido_region.base_url(), "https://api.ca.onfido.com/v3.6");
    assert_eq!(s.idv_reconcile_interval_seconds, 0.25);
    assert_eq!(s.idv_reconcile_min_age_seconds, 60.0);
    assert_eq!(problems(&s), "");
    assert!(!format!("{s:?}").contains(API_TOKEN));
    // Defaults: the EU region, the reconciler every 30 s.
    let d = parse(&[]).unwrap();
    assert_eq!(d.onfido_region.base_url(), "https://api.eu.onfido.com/v3.6");
    assert_eq!(d.idv_reconcile_interval_seconds, 30.0);
    assert!(parse(&["--onfido-region", "mars"]).is_err());
}
