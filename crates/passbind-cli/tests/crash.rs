//! `kill -9` under load: the real `passbind serve` process on SQLite is killed with SIGKILL 20
//! times while clients sign in; afterwards every acknowledged completion is stored, every
//! credential's counter is at least the highest acknowledged one, and the audit log verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use passbind_proto::session::SessionState;
use passbind_sdk::client::CoreClient;
use passbind_sdk::device::{Device, Person};
use passbind_sdk::load_device::LoadDevice;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 8;
const KILLS: usize = 20;

/// The server process; killed when dropped, also when an assertion fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn passbind(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passbind"));
    c.env("PASSBIND_DATA_DIR", dir.join("data"))
        .env("PASSBIND_LOG", "error")
        .env("PASSBIND_LOCKOUT_THRESHOLD", "0")
        .env("PASSBIND_SIMULATOR_DECISION_DELAY_MS", "0")
        .env_remove("PASSBIND_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

async fn start(dir: &std::path::Path, port: u16) -> Server {
    let child = passbind(dir)
        .arg("serve")
        .env("PASSBIND_LISTEN", format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            return server;
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("the server exited at start ({status}); is port {port} taken?");
        }
        assert!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The signature counter an assertion carries (authenticatorData bytes 33..37).
fn counter(assertion: &Value) -> u32 {
    let data = assertion["response"]["authenticatorData"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data.trim_end_matches('='))
        .unwrap();
    u32::from_be_bytes(raw[33..37].try_into().unwrap())
}

struct User {
    id: String,
    keys: LoadDevice,
}

/// What the server acknowledged: completed session ids, and per user the highest counter.
#[derive(Default)]
struct Acked {
    sessions: Vec<String>,
    counters: HashMap<String, u32>,
}

async fn enrol(client: &CoreClient, origin: &str) -> Vec<User> {
    let mut users = Vec::new();
    for i in 0..USERS {
        let id = format!("crash-{i}");
        let person = Person::new(500 + i as u64);
        let phone = Device::new();
        let keys = LoadDevice::new();
        passbind_sdk::load_device::enrol(client, origin, &id, &person, i as u64, &phone, &keys)
            .await
            .unwrap();
        users.push(User { id, keys });
    }
    users
}

/// Signs `user` in again and again until the server goes away; records what it acknowledged.
async fn sign_in_loop(
    client: CoreClient,
    origin: String,
    user: Arc<User>,
    acked: Arc<Mutex<Acked>>,
) {
    loop {
        let Ok(s) = client
            .open("authentications", &json!({ "external_user_id": user.id }))
            .await
        else {
            return;
        };
        let assertion = user
            .keys
            .get(&origin, s.webauthn.as_ref().unwrap())
            .unwrap();
        let n = counter(&assertion);
        let Ok(done) = client
            .act(
                "authentications",
                &s.id,
                "complete",
                &json!({ "credential": assertion }),
            )
            .await
        else {
            return;
        };
        assert_eq!(done.state, SessionState::Completed);
        let mut a = acked.lock().unwrap();
        a.sessions.push(s.id);
        let best = a.counters.entry(user.id.clone()).or_default();
        *best = (*best).max(n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let created = passbind(dir.path())
        .args(["api-key", "create", "--name", "crash", "--scope", "flows"])
        .args(["--scope", "users", "--scope", "audit", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(created.status.success());
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let origin = format!("http://localhost:{port}");
    let client = CoreClient::new(&base, &token);

    let server = start(dir.path(), port).await;
    let users: Vec<Arc<User>> = enrol(&client, &origin)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    drop(server);

    let acked = Arc::new(Mutex::new(Acked::default()));
    for kill in 0..KILLS {
        let server = start(dir.path(), port).await;
        let tasks: Vec<_> = users
            .iter()
            .map(|u| {
                tokio::spawn(sign_in_loop(
                    CoreClient::new(&base, &token),
                    origin.clone(),
                    Arc::clone(u),
                    Arc::clone(&acked),
                ))
            })
            .collect();
        // A different moment in each round: 100 to 385 ms of load.
        tokio::time::sleep(Duration::from_millis(100 + (kill as u64 * 97) % 300)).await;
        drop(server); // SIGKILL, then reaped
        for t in tasks {
            t.await.unwrap();
        }
    }

    let _server = start(dir.path(), port).await;
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!(
        "{} completions acknowledged over {KILLS} kills",
        acked.sessions.len()
    );
    assert!(
        acked.sessions.len() > 50,
        "too little load to mean anything"
    );
    for id in &acked.sessions {
        let s: Value = client
            .get(&format!("/v1/authentications/{id}"))
            .await
            .unwrap();
        assert_eq!(s["state"], "completed", "acknowledged {id} was lost");
    }
    for (user, best) in &acked.counters {
        let u: Value = client.get(&format!("/v1/users/{user}")).await.unwrap();
        let stored = u["credentials"][0]["sign_count"].as_i64().unwrap();
        assert!(
            stored >= i64::from(*best),
            "{user}: stored counter {stored} below the acknowledged {best}"
        );
    }
    let report: Value = client.get("/v1/audit/verify").await.unwrap();
    assert!(report["first_break"].is_null(), "{report}");
    assert!(report["events_verified"].as_u64().unwrap() > acked.sessions.len() as u64);
}
