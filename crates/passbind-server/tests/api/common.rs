//! `TestApp`: the real server, in process, on 127.0.0.1:0, with its own database (a temporary
//! SQLite file, or a fresh PostgreSQL schema), talked to over HTTP as an integrator would.

use passbind_proto::registration::{CompleteRegistration, OpenRegistration};
use passbind_proto::session::{SessionState, SessionView};
use passbind_sdk::client::CoreClient;
use passbind_sdk::device::{Device, Person};
use passbind_server::{RunningServer, Settings};
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestApp::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::TestApp::postgres().await).await
            }
        }
    };
    ($name:ident, $tweak:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestApp::start($tweak, false).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::TestApp::start($tweak, true).await).await
            }
        }
    };
}

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub api_key: String,
    pub client: CoreClient,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The store handed to the server (PostgreSQL), for a second replica on the same schema.
    pub shared_store: Option<passbind_store::SqlStore>,
    /// The first configured WebAuthn origin, if the test configured any.
    configured_origin: Option<String>,
    /// The server's clock: the system's, moved forward by [`TestClock::advance`].
    pub clock: Arc<TestClock>,
}

/// The system clock plus an offset a test moves forward: expiry is tested without sleeping.
#[derive(Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    /// Moves the server's time forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap();
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl passbind_core::ports::Clock for TestClock {
    fn now(&self) -> passbind_core::model::Millis {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        i64::try_from(system).unwrap() + self.offset_ms.load(Ordering::SeqCst)
    }
}

#[derive(serde::Deserialize)]
struct DevKeys {
    simulator: SimKeys,
}

#[derive(serde::Deserialize)]
struct SimKeys {
    api_token: String,
    webhook_token: String,
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::start(|_| {}, false).await
    }

    pub async fn postgres() -> Self {
        Self::start(|_| {}, true).await
    }

    pub async fn start(tweak: impl FnOnce(&mut Settings), postgres: bool) -> Self {
        let store = if postgres {
            Some(passbind_store::testing::fresh_postgres().await)
        } else {
            None
        };
        Self::start_with_store(tweak, store).await
    }

    /// Like [`TestApp::start`] on the given store (`None`: the settings' database, SQLite in
    /// the data directory by default); a second replica shares the first one's store.
    pub async fn start_with_store(
        tweak: impl FnOnce(&mut Settings),
        store: Option<passbind_store::SqlStore>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_tests(dir.path().to_path_buf(), None);
        tweak(&mut settings);
        let configured_origin = settings.rp_origins.first().cloned();
        let shared_store = store.clone();
        let clock = Arc::new(TestClock::default());
        let server = passbind_server::start_with_clock(settings, store, clock.clone())
            .await
            .unwrap();
        let base = server.base_url();
        let key = server
            .engine
            .create_api_key(
                &passbind_core::Actor::system(),
                "tests",
                &["flows".into(), "users".into(), "audit".into()],
            )
            .await
            .unwrap();
        Self {
            client: CoreClient::new(&base, &key.token),
            api_key: key.token,
            base,
            http: reqwest::Client::new(),
            server,
            dir,
            shared_store,
            configured_origin,
            clock,
        }
    }

    /// Runs raw SQL on this test's database, as a tamperer with database access would.
    pub async fn sql(&self, statement: &str) -> u64 {
        let owned;
        let store = match &self.shared_store {
            Some(s) => s,
            None => {
                let url = format!("sqlite://{}", self.dir.path().join("passbind.db").display());
                owned = passbind_store::connect(&url, Default::default())
                    .await
                    .unwrap();
                &owned
            }
        };
        store.execute_raw(statement).await.unwrap()
    }

    /// The WebAuthn origin the server accepts: the first configured one, else the default
    /// (the server's own address).
    pub fn origin(&self) -> String {
        self.configured_origin
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{}", self.server.addr.port()))
    }

    fn dev_keys(&self) -> DevKeys {
        let text = std::fs::read_to_string(self.dir.path().join("dev-keys.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The simulator's webhook signing token (the test plays the provider).
    pub fn webhook_token(&self) -> String {
        self.dev_keys().simulator.webhook_token
    }

    /// The simulator's API token (the test plays an integrator with provider access).
    pub fn simulator_api_token(&self) -> String {
        self.dev_keys().simulator.api_token
    }

    /// A raw request; returns status and JSON body (Null if not JSON).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        auth: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let auth = format!("Bearer {}", self.api_key);
        self.raw(
            reqwest::Method::POST,
            path,
            Some(("application/json", serde_json::to_vec(body).unwrap())),
            Some(&auth),
        )
        .await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.api_key);
        self.raw(reqwest::Method::GET, path, None, Some(&auth))
            .await
    }

    pub async fn wait_verdict(&self, session_id: &str) -> SessionView {
        self.wait_verdict_at("registrations", session_id).await
    }

    /// Polls `/v1/{resource}/{id}` until the identity verification has a verdict.
    pub async fn wait_verdict_at(&self, resource: &str, session_id: &str) -> SessionView {
        self.client
            .wait_for_verdict(
                &format!("/v1/{resource}/{session_id}"),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
    }
}

/// Fixed keys for replicas of one database (each test replica has its own data directory, so
/// it would otherwise generate keys of its own).
pub fn share_keys(s: &mut Settings) {
    use base64::Engine as _;
    let k = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    s.keyring = Some(passbind_server::config::Secret(format!("1:{}", k(1))));
    s.user_ref_key = Some(passbind_server::config::Secret(k(2)));
    s.audit_signing_key = Some(passbind_server::config::Secret(k(3)));
}

/// Asserts an error envelope with the given status and code.
pub fn assert_error(resp: &(u16, Value), status: u16, code: &str) {
    assert_eq!(resp.0, status, "body: {}", resp.1);
    assert_eq!(resp.1["error"]["code"], code, "body: {}", resp.1);
    assert!(resp.1["error"]["message"].is_string(), "body: {}", resp.1);
}

pub fn open_req(user: &str) -> OpenRegistration {
    OpenRegistration {
        external_user_id: user.to_owned(),
        display_name: Some("Test User".into()),
        prior_biometric: None,
        workflow_input: None,
        ttl_seconds: None,
    }
}

/// Opens, captures and waits for the verdict; returns the session after the verdict.
pub async fn verified_session(
    app: &TestApp,
    req: OpenRegistration,
    device: &Device,
    capture: &passbind_idv::simulator::SimulatorCapture,
) -> (SessionView, SessionView) {
    let opened = app.client.open_registration(&req).await.unwrap();
    assert_eq!(opened.state, SessionState::IdvPending);
    let idv = opened.idv.clone().unwrap();
    assert!(idv.sdk_token.is_some(), "the device needs the sdk token");
    device.submit_capture(&idv, capture).await.unwrap();
    let after = app.wait_verdict(&opened.id).await;
    (opened, after)
}

pub async fn register(app: &TestApp, user: &str, person: &Person, device: &Device) -> SessionView {
    let (opened, after) =
        verified_session(app, open_req(user), device, &person.enrolment_capture(1)).await;
    assert_eq!(after.state, SessionState::IdvPassed, "{after:?}");
    let options = opened.webauthn.clone().unwrap();
    let credential = device
        .authenticator
        .create(&app.origin(), &options)
        .await
        .unwrap();
    app.client
        .complete_registration(
            &opened.id,
            &CompleteRegistration {
                credential: Some(credential),
                credential_id: None,
                device_label: Some("test phone".into()),
            },
        )
        .await
        .unwrap()
}

pub async fn user_credentials(
    app: &TestApp,
    user: &str,
) -> Vec<passbind_core::model::CredentialRecord> {
    let store = app.server.engine.store();
    match store.user_by_external_id(user).await.unwrap() {
        Some(u) => store.credentials_of_user(&u.id).await.unwrap(),
        None => Vec::new(),
    }
}
