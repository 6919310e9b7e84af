//! Test harness: the simulator, a webhook receiver and fake providers on real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use passbind_core::ports::{IdvPurpose, StartRun, StartedRun};
use passbind_idv::simulator::{Simulator, SimulatorCapture, SimulatorConfig};
use passbind_idv::studio::{StudioClient, StudioConfig};
use passbind_idv::WorkflowIds;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;
use zeroize::Zeroizing;

pub const API_TOKEN: &str = "sim_api_token_for_tests";
pub const WEBHOOK_TOKEN: &str = "sim_webhook_token_for_tests";
pub const WF_REGISTRATION: &str = "11111111-1111-4111-8111-111111111111";
pub const WF_VERIFY: &str = "22222222-2222-4222-8222-222222222222";

pub fn workflow_ids() -> WorkflowIds {
    WorkflowIds {
        registration: WF_REGISTRATION.into(),
        step_up: WF_VERIFY.into(),
        recovery: WF_VERIFY.into(),
    }
}

/// Serves `router` on 127.0.0.1 and returns its address.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// One webhook delivery attempt as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answered: StatusCode,
}

impl Delivery {
    pub fn header(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn run_id(&self) -> String {
        self.json()["payload"]["object"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[derive(Default)]
struct ReceiverState {
    deliveries: Vec<Delivery>,
    fail_remaining: u32,
    fail_status: Option<StatusCode>,
}

/// A webhook receiver that records deliveries and can be told to fail the next N.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<ReceiverState>>,
    pub url: Url,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let router = Router::new()
            .route("/v1/webhooks/idv/simulator", post(receive))
            .with_state(state.clone());
        let addr = serve(router).await;
        let url = Url::parse(&format!("http://{addr}/v1/webhooks/idv/simulator")).unwrap();
        Self { state, url }
    }

    /// The next `n` deliveries are answered with `status`.
    pub fn fail_next(&self, n: u32, status: StatusCode) {
        let mut s = self.state.lock().unwrap();
        s.fail_remaining = n;
        s.fail_status = Some(status);
    }

    /// Every attempt so far for `run_id`.
    pub fn attempts_for(&self, run_id: &str) -> Vec<Delivery> {
        self.state
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .filter(|d| d.run_id() == run_id)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
    }

    /// Waits until `run_id` has a delivery that was answered 2xx.
    pub async fn delivered(&self, run_id: &str) -> Delivery {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(d) = self
                .attempts_for(run_id)
                .into_iter()
                .find(|d| d.answered.is_success())
            {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "no successful webhook for run {run_id}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `run_id` has `n` attempts.
    pub async fn attempts(&self, run_id: &str, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempts = self.attempts_for(run_id);
            if attempts.len() >= n {
                return attempts;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id}: {} attempts, expected {n}",
                attempts.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut s = state.lock().unwrap();
    let answered = if s.fail_remaining > 0 {
        s.fail_remaining -= 1;
        s.fail_status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        StatusCode::OK
    };
    s.deliveries.push(Delivery {
        headers,
        body,
        answered,
    });
    answered
}

/// The simulator (mounted under `/simulator/v3.6`), its receiver and a client for it.
pub struct Env {
    pub receiver: Receiver,
    pub base: Url,
    pub capture_url: String,
    pub client: StudioClient,
    pub http: reqwest::Client,
}

pub fn sim_config(webhook_url: Url) -> SimulatorConfig {
    let mut config = SimulatorConfig::new(
        API_TOKEN,
        webhook_url,
        WEBHOOK_TOKEN,
        [42u8; 32],
        workflow_ids(),
    );
    config.decision_delay = Duration::from_millis(5);
    config.webhook_backoff = Duration::from_millis(20);
    config
}

pub fn client_config(base: &Url) -> StudioConfig {
    let mut config = StudioConfig::new(
        "simulator",
        base.clone(),
        API_TOKEN,
        WEBHOOK_TOKEN,
        workflow_ids(),
    );
    config.timeout = Duration::from_secs(5);
    config.max_retries = 2;
    config.retry_backoff = Duration::from_millis(10);
    config.max_retry_delay = Duration::from_millis(100);
    config
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut SimulatorConfig)) -> Self {
        let receiver = Receiver::start().await;
        let mut config = sim_config(receiver.url.clone());
        tweak(&mut config);
        // The simulator must know its own address for `href`; bind first, then build.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = Url::parse(&format!("http://{addr}/simulator/v3.6")).unwrap();
        config.public_base_url = Some(base.clone());
        let simulator = Simulator::new(config).unwrap();
        let app = Router::new().nest("/simulator/v3.6", simulator.router());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let capture_url = format!("{base}/sdk/captures");
        let mut cc = client_config(&base);
        cc.capture_url = Some(capture_url.clone());
        let client = StudioClient::new(cc).unwrap();
        Self {
            receiver,
            base,
            capture_url,
            client,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a capture as the device would.
    pub async fn post_capture(
        &self,
        run: &StartedRun,
        capture: &SimulatorCapture,
    ) -> (StatusCode, serde_json::Value) {
        self.post_capture_raw(&run.sdk_token, serde_json::to_vec(capture).unwrap())
            .await
    }

    pub async fn post_capture_raw(
        &self,
        sdk_token: &str,
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let response = self
            .http
            .post(&self.capture_url)
            .bearer_auth(sdk_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// `GET /workflow_runs/{id}` with the API token, as raw JSON.
    pub async fn raw_run(&self, run_id: &str) -> serde_json::Value {
        self.http
            .get(self.url(&format!("/workflow_runs/{run_id}")))
            .header("authorization", format!("Token token={API_TOKEN}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub fn start_request(purpose: IdvPurpose, token: Option<&str>) -> StartRun {
    let mut custom_data = serde_json::Map::new();
    custom_data.insert("integrator_ref".into(), "order-17".into());
    StartRun {
        purpose,
        session_id: "ses_test".into(),
        customer_user_ref: "cu_hash_0123".into(),
        biometric_token: token.map(|t| Zeroizing::new(t.to_owned())),
        custom_data,
    }
}
