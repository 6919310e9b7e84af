//! `kill -9` under load: the real `passbind serve` process is killed with SIGKILL while
//! clients sign in: 20 times on SQLite, and 10 times one of two replicas on one PostgreSQL
//! database (the other keeps serving). Afterwards every acknowledged completion is stored,
//! every credential's counter is at least the highest acknowledged one, and the audit log
//! verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use passbind_proto::session::SessionState;
use passbind_sdk::client::CoreClient;
use passbind_sdk::device::{Device, Person};
use passbind_sdk::load_device::LoadDevice;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 8;
const KILLS: usize = 20;
const REPLICA_KILLS: usize = 10;
/// The origin both PostgreSQL replicas accept (each listens on its own port).
const SHARED_ORIGIN: &str = "http://localhost:8443";

/// The server process; killed when dropped, also when an assertion fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `passbind` with the test's data directory; on `database` (PostgreSQL) if given, else on
/// SQLite in the data directory.
fn passbind(dir: &std::path::Path, database: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passbind"));
    match database {
        Some(url) => c
            .env("PASSBIND_DATABASE_URL", url)
            .env("PASSBIND_RP_ORIGINS", SHARED_ORIGIN),
        None => c.env_remove("PASSBIND_DATABASE_URL"),
    };
    c.env("PASSBIND_DATA_DIR", dir.join("data"))
        .env("PASSBIND_LOG", "error")
        .env("PASSBIND_LOCKOUT_THRESHOLD", "0")
        .env("PASSBIND_SIMULATOR_DECISION_DELAY_MS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

async fn start(dir: &std::path::Path, database: Option<&str>, port: u16) -> Server {
    let child = passbind(dir, database)
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

/// Signs `user` in again and again until the server goes away or `stop` is set; records what
/// it acknowledged.
async fn sign_in_loop(
    client: CoreClient,
    origin: String,
    user: Arc<User>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
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
    let token = api_key(dir.path(), None);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let origin = format!("http://localhost:{port}");
    let client = CoreClient::new(&base, &token);

    let server = start(dir.path(), None, port).await;
    let users: Vec<Arc<User>> = enrol(&client, &origin)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    drop(server);

    let acked = Arc::new(Mutex::new(Acked::default()));
    let never = Arc::new(AtomicBool::new(false));
    for kill in 0..KILLS {
        let server = start(dir.path(), None, port).await;
        let tasks: Vec<_> = users
            .iter()
            .map(|u| {
                tokio::spawn(sign_in_loop(
                    CoreClient::new(&base, &token),
                    origin.clone(),
                    Arc::clone(u),
                    Arc::clone(&acked),
                    Arc::clone(&never),
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

    let _server = start(dir.path(), None, port).await;
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    check(&client, &acked, KILLS).await;
}

/// An API key with the scopes the test needs, made by `passbind api-key create`.
fn api_key(dir: &std::path::Path, database: Option<&str>) -> String {
    let created = passbind(dir, database)
        .args(["api-key", "create", "--name", "crash", "--scope", "flows"])
        .args(["--scope", "users", "--scope", "audit", "--data-dir"])
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(created.status.success());
    String::from_utf8(created.stdout).unwrap().trim().to_owned()
}

/// Every acknowledged completion is stored, every counter at least the acknowledged one, and
/// the audit log verifies.
async fn check(client: &CoreClient, acked: &Acked, kills: usize) {
    println!(
        "{} completions acknowledged over {kills} kills",
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

/// A database of its own on the test PostgreSQL server (`PASSBIND_TEST_DATABASE_URL`), for
/// server processes that take a URL; dropped by [`TestDatabase::drop_now`].
struct TestDatabase {
    admin: passbind_store::SqlStore,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> Self {
        let server = std::env::var(passbind_store::testing::DATABASE_URL_ENV)
            .unwrap_or_else(|_| passbind_store::testing::DEFAULT_DATABASE_URL.to_owned());
        let admin = passbind_store::connect(&server, Default::default())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL for the replica test: {e}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Left behind by runs that failed more than an hour ago: best effort.
        if let Ok(rows) = admin
            .query_raw("SELECT datname::text FROM pg_database WHERE datname LIKE 'pbcrash\\_%'")
            .await
        {
            for name in rows.iter().filter_map(|r| r.text(0)) {
                let created = name.split('_').nth(1).and_then(|t| t.parse::<u64>().ok());
                if created.is_some_and(|t| now.saturating_sub(t) > 3600) {
                    let _ = admin
                        .execute_raw(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            }
        }
        let name = format!("pbcrash_{now}_{}", std::process::id());
        admin
            .execute_raw(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let mut url = reqwest::Url::parse(&server).unwrap();
        url.set_path(&format!("/{name}"));
        Self {
            admin,
            name,
            url: url.to_string(),
        }
    }

    async fn drop_now(self) {
        self.admin
            .execute_raw(&format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_postgres_replicas_killed_under_load_loses_nothing_acknowledged() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let url = Some(db.url.as_str());
    let ports = [free_port(), free_port()];
    // One after the other: the first writes the shared dev keys the second reads.
    let mut servers = [
        Some(start(dir.path(), url, ports[0]).await),
        Some(start(dir.path(), url, ports[1]).await),
    ];
    let token = api_key(dir.path(), url);
    let base = ports.map(|p| format!("http://127.0.0.1:{p}"));
    let users: Vec<Arc<User>> = enrol(&CoreClient::new(&base[0], &token), SHARED_ORIGIN)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut survivor_served = 0;
    for kill in 0..REPLICA_KILLS {
        let victim = kill % 2;
        let stop = Arc::new(AtomicBool::new(false));
        // Half of the users at each replica.
        let tasks: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                tokio::spawn(sign_in_loop(
                    CoreClient::new(&base[i % 2], &token),
                    SHARED_ORIGIN.to_owned(),
                    Arc::clone(u),
                    Arc::clone(&acked),
                    Arc::clone(&stop),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + (kill as u64 * 97) % 300)).await;
        servers[victim] = None; // SIGKILL, then reaped
        let at_kill = acked.lock().unwrap().sessions.len();
        // The other replica goes on serving its users.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if acked.lock().unwrap().sessions.len() > at_kill {
            survivor_served += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        servers[victim] = Some(start(dir.path(), url, ports[victim]).await);
    }
    println!("the surviving replica served on in {survivor_served} of {REPLICA_KILLS} kills");
    assert!(
        survivor_served >= REPLICA_KILLS / 2,
        "with one replica killed, the other one stopped serving"
    );
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    check(&CoreClient::new(&base[1], &token), &acked, REPLICA_KILLS).await;
    drop(servers);
    db.drop_now().await;
}
