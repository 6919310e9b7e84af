//! `TestApp`: the real server, in process, on 127.0.0.1:0, with its own database (a temporary
//! SQLite file, or a fresh PostgreSQL schema), talked to over HTTP as an integrator would.

use passbind_sdk::client::CoreClient;
use passbind_server::{RunningServer, Settings};
use serde_json::Value;
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
}

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub api_key: String,
    pub client: CoreClient,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
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
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_tests(dir.path().to_path_buf(), None);
        tweak(&mut settings);
        let store = if postgres {
            Some(passbind_store::testing::fresh_postgres().await)
        } else {
            None
        };
        let server = passbind_server::start(settings, store).await.unwrap();
        let base = server.base_url();
        let key = server
            .engine
            .create_api_key("tests", &["flows".into(), "users".into(), "audit".into()])
            .await
            .unwrap();
        Self {
            client: CoreClient::new(&base, &key.token),
            api_key: key.token,
            base,
            http: reqwest::Client::new(),
            server,
            dir,
        }
    }

    /// The WebAuthn origin the server accepts by default.
    pub fn origin(&self) -> String {
        format!("http://localhost:{}", self.server.addr.port())
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

    pub async fn wait_verdict(&self, session_id: &str) -> passbind_proto::session::SessionView {
        self.client
            .wait_for_verdict(
                &format!("/v1/registrations/{session_id}"),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
    }
}

/// Asserts an error envelope with the given status and code.
pub fn assert_error(resp: &(u16, Value), status: u16, code: &str) {
    assert_eq!(resp.0, status, "body: {}", resp.1);
    assert_eq!(resp.1["error"]["code"], code, "body: {}", resp.1);
    assert!(resp.1["error"]["message"].is_string(), "body: {}", resp.1);
}
