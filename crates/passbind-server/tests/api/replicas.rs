//! Several replicas on one PostgreSQL database under concurrent load of every flow. While
//! sign-ins and checkpoint requests run on all replicas, each kind of single-use secret (a
//! registration's completion, a sign-in's and a step-up's challenge, a handoff token, a recovery
//! continuation) is presented by racers spread across the replicas: exactly one is accepted,
//! the others get the flow's stable error. Afterwards the log the replicas wrote together
//! verifies, with every checkpoint larger and later than the one before it.

use crate::audit::{checkpoint, export, public_key};
use crate::common::{open_req, register, share_keys, verified_session, TestApp};
use passbind_proto::registration::CompleteRegistration;
use passbind_proto::session::SessionState;
use passbind_sdk::device::{Device, Person};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const REPLICAS: usize = 3;
/// Racers per secret, spread round-robin over the replicas.
const RACERS: usize = 6;
const ROUNDS: usize = 10;
/// One origin for all replicas: a credential made for one is presented at another.
const ORIGIN: &str = "http://localhost:8443";

async fn replicas() -> Vec<TestApp> {
    let store = passbind_store::testing::fresh_postgres().await;
    let shared = |s: &mut passbind_server::Settings| {
        share_keys(s);
        s.rp_origins = vec![ORIGIN.to_owned()];
        // Every replica signs checkpoints on its own, often: they must still never go back.
        s.audit_checkpoint_events = 20;
        s.audit_checkpoint_seconds = 1;
    };
    let mut apps = Vec::new();
    for _ in 0..REPLICAS {
        apps.push(TestApp::start_with_store(shared, Some(store.clone())).await);
    }
    apps
}

/// What the races saw, over all rounds and kinds.
#[derive(Default)]
struct Tally {
    races: usize,
    attempts: usize,
}

/// `RACERS` requests of `path` with `body` at once, spread over the replicas. Exactly one is
/// accepted; every other one gets `status` with one of `codes`.
async fn race(
    apps: &[TestApp],
    tally: &mut Tally,
    path: &str,
    body: &Value,
    status: u16,
    codes: &[&str],
) -> Value {
    let results =
        futures::future::join_all((0..RACERS).map(|i| apps[i % apps.len()].post_json(path, body)))
            .await;
    tally.races += 1;
    tally.attempts += results.len();
    let won: Vec<&(u16, Value)> = results.iter().filter(|r| r.0 == 200).collect();
    assert_eq!(won.len(), 1, "{path}: one winner expected: {results:?}");
    for r in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(r.0, status, "{path}: {r:?}");
        let code = r.1["error"]["code"].as_str().unwrap_or_default();
        assert!(codes.contains(&code), "{path}: {r:?}");
    }
    won[0].1.clone()
}

/// Sign-ins of `user` on rotating replicas and checkpoint requests to all of them at once,
/// until `stop`; counts the completed sign-ins.
async fn background_load(
    apps: &[TestApp],
    user: &str,
    phone: &Device,
    stop: &AtomicBool,
    done: &AtomicU64,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let opened = apps[i % apps.len()]
            .post_json("/v1/authentications", &json!({ "external_user_id": user }))
            .await;
        assert_eq!(opened.0, 201, "{}", opened.1);
        let assertion = phone
            .authenticator
            .get(ORIGIN, &opened.1["webauthn"])
            .await
            .unwrap();
        let id = opened.1["id"].as_str().unwrap();
        let r = apps[(i + 1) % apps.len()]
            .post_json(
                &format!("/v1/authentications/{id}/complete"),
                &json!({ "credential": assertion }),
            )
            .await;
        assert_eq!(r.0, 200, "{}", r.1);
        done.fetch_add(1, Ordering::Relaxed);
        if i.is_multiple_of(4) {
            // All at once (`checkpoint` asserts each 200).
            futures::future::join_all(apps.iter().map(checkpoint)).await;
        }
        i += 1;
    }
}

async fn races(apps: &[TestApp], stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let alice = Person::new(301);
    let alice_phone = Device::new();
    register(&apps[1], "race-alice", &alice, &alice_phone).await;
    for round in 0..ROUNDS {
        let home = &apps[round % apps.len()];

        // A registration's completion.
        let device = Device::new();
        let person = Person::new(400 + round as u64);
        let (opened, after) = verified_session(
            home,
            open_req(&format!("race-new-{round}")),
            &device,
            &person.enrolment_capture(1),
        )
        .await;
        assert_eq!(after.state, SessionState::IdvPassed, "{after:?}");
        let credential = device
            .authenticator
            .create(ORIGIN, opened.webauthn.as_ref().unwrap())
            .await
            .unwrap();
        let body = serde_json::to_value(CompleteRegistration {
            credential: Some(credential),
            credential_id: None,
            device_label: None,
        })
        .unwrap();
        race(
            apps,
            &mut tally,
            &format!("/v1/registrations/{}/complete", opened.id),
            &body,
            409,
            &["invalid_state", "conflict"],
        )
        .await;

        // A sign-in's challenge.
        let s = home
            .post_json(
                "/v1/authentications",
                &json!({"external_user_id": "race-alice"}),
            )
            .await;
        assert_eq!(s.0, 201, "{}", s.1);
        let assertion = alice_phone
            .authenticator
            .get(ORIGIN, &s.1["webauthn"])
            .await
            .unwrap();
        race(
            apps,
            &mut tally,
            &format!(
                "/v1/authentications/{}/complete",
                s.1["id"].as_str().unwrap()
            ),
            &json!({ "credential": assertion }),
            409,
            &["invalid_state"],
        )
        .await;

        // A step-up's challenge, after a live face match. Each replica here runs its own
        // simulator, which matches faces only against the biometric tokens it issued: the
        // step-up opens where alice enrolled (with a real provider, any replica would do).
        let enrolled = &apps[1];
        let s = enrolled
            .post_json(
                "/v1/step-ups",
                &json!({"external_user_id": "race-alice",
                        "transaction_context": {"amount": "5.00", "round": round}}),
            )
            .await;
        assert_eq!(s.0, 201, "{}", s.1);
        let id = s.1["id"].as_str().unwrap();
        let idv = serde_json::from_value(s.1["idv"].clone()).unwrap();
        alice_phone
            .submit_capture(&idv, &alice.face_capture(10 + round as u64))
            .await
            .unwrap();
        let after = enrolled.wait_verdict_at("step-ups", id).await;
        assert_eq!(after.state, SessionState::IdvPassed, "{after:?}");
        let assertion = alice_phone
            .authenticator
            .get(ORIGIN, &s.1["webauthn"])
            .await
            .unwrap();
        race(
            apps,
            &mut tally,
            &format!("/v1/step-ups/{id}/complete"),
            &json!({ "credential": assertion }),
            409,
            &["invalid_state"],
        )
        .await;

        // A handoff token, claimed by phones reaching different replicas.
        let s = home
            .post_json(
                "/v1/cross-platform-sessions",
                &json!({"external_user_id": "race-alice", "transaction_context": {"round": round}}),
            )
            .await;
        assert_eq!(s.0, 201, "{}", s.1);
        race(
            apps,
            &mut tally,
            "/v1/cross-platform-sessions/handoff",
            &json!({ "handoff_token": s.1["handoff"]["token"] }),
            410,
            &["handoff_token_invalid"],
        )
        .await;

        // A recovery continuation (of the user registered in this round, so that alice keeps
        // her credential for the races above).
        let r = home
            .post_json(
                "/v1/recoveries",
                &json!({ "external_user_id": format!("race-new-{round}") }),
            )
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
        let id = r.1["id"].as_str().unwrap();
        let idv = serde_json::from_value(r.1["idv"].clone()).unwrap();
        let new_phone = Device::new();
        new_phone
            .submit_capture(&idv, &person.face_capture(5))
            .await
            .unwrap();
        let after = home.wait_verdict_at("recoveries", id).await;
        assert_eq!(after.state, SessionState::IdvPassed, "{after:?}");
        let c = home
            .post_json(&format!("/v1/recoveries/{id}/continuation"), &json!({}))
            .await;
        assert_eq!(c.0, 200, "{}", c.1);
        race(
            apps,
            &mut tally,
            "/v1/recoveries/exchange",
            &json!({ "continuation": c.1["continuation"]["token"] }),
            410,
            &["continuation_invalid"],
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_accept_each_single_use_secret_once_and_keep_one_log() {
    let apps = replicas().await;
    let bob_phone = Device::new();
    register(&apps[0], "load-bob", &Person::new(300), &bob_phone).await;
    let stop = AtomicBool::new(false);
    let sign_ins = AtomicU64::new(0);
    let (_, tally) = tokio::join!(
        background_load(&apps, "load-bob", &bob_phone, &stop, &sign_ins),
        races(&apps, &stop),
    );
    println!(
        "{} races ({} attempts) over {REPLICAS} replicas, no double win; {} sign-ins alongside",
        tally.races,
        tally.attempts,
        sign_ins.load(Ordering::Relaxed)
    );
    assert_eq!(tally.races, ROUNDS * 5);

    // Each replica signs once more; then one export holds everything, in order.
    for app in &apps {
        checkpoint(app).await;
    }
    let report = passbind_audit::verify_text(&export(&apps[2]).await, &public_key(&apps[0]).await);
    println!(
        "{} events and {} checkpoints from {REPLICAS} replicas verified",
        report.events_verified, report.checkpoints_verified
    );
    assert!(report.first_break.is_none(), "{report:?}");
    assert!(report.checkpoints_verified >= 3, "{report:?}");
    assert_eq!(report.unanchored_tail, 0, "{report:?}");
    let (head, _) = apps[1].server.engine.store().audit_head().await.unwrap();
    assert_eq!(report.events_verified, head);
}
