//! A fake Entrust/Onfido API v3.6 on a real socket, speaking the documented contract
//! (the Entrust/Onfido Studio v3.6 protocol): `Authorization: Token token=...` or an OAuth2 bearer
//! token from `POST /oauth/token`, `POST /applicants`, `POST /workflow_runs` (201 with an
//! `sdk_token`), `GET /workflow_runs/{id}`, the error envelope, and signed
//! `workflow_run.completed` webhooks to Passbind. The test decides each run's outcome, and can
//! make the API answer 500 or 429 (with `Retry-After`) on demand.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

pub const API_TOKEN: &str = "onfido_api_token_for_tests";
pub const WEBHOOK_TOKEN: &str = "onfido_webhook_token_for_tests";
pub const CLIENT_ID: &str = "passbind-client";
pub const CLIENT_SECRET: &str = "onfido_client_secret_for_tests";
pub const WF_REGISTRATION: &str = "3f0c5a6e-8d4b-4c3a-9a57-000000000001";
pub const WF_VERIFY: &str = "3f0c5a6e-8d4b-4c3a-9a57-000000000002";

/// How the fake authenticates API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeAuth {
    /// `Authorization: Token token=API_TOKEN` only.
    Token,
    /// Only bearer tokens from `POST /oauth/token` (client credentials), valid `expires_in` s.
    OAuth { expires_in: u64 },
}

/// One API request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: &'static str,
    pub path: String,
    pub authorization: String,
}

struct FakeState {
    auth: FakeAuth,
    next_id: u64,
    applicants: HashMap<String, Value>,
    applicant_bodies: Vec<Value>,
    runs: HashMap<String, Value>,
    run_requests: Vec<Value>,
    seen: Vec<Seen>,
    /// Answers forced on the next API requests (not the token endpoint): status, Retry-After.
    failures: VecDeque<(StatusCode, Option<u64>)>,
    access_tokens: HashSet<String>,
    token_requests: u32,
    webhook_url: Option<String>,
}

#[derive(Clone)]
pub struct FakeOnfido {
    state: Arc<Mutex<FakeState>>,
    /// `http://127.0.0.1:<port>/v3.6`
    pub base_url: String,
    http: reqwest::Client,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

impl FakeOnfido {
    pub async fn start(auth: FakeAuth) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            auth,
            next_id: 0,
            applicants: HashMap::new(),
            applicant_bodies: Vec::new(),
            runs: HashMap::new(),
            run_requests: Vec::new(),
            seen: Vec::new(),
            failures: VecDeque::new(),
            access_tokens: HashSet::new(),
            token_requests: 0,
            webhook_url: None,
        }));
        let router = Router::new()
            .route("/v3.6/oauth/token", post(token))
            .route("/v3.6/applicants", post(create_applicant))
            .route("/v3.6/workflow_runs", post(create_run))
            .route("/v3.6/workflow_runs/{id}", get(read_run))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            state,
            base_url: format!("http://{addr}/v3.6"),
            http: reqwest::Client::new(),
        }
    }

    /// Where the fake delivers webhooks (Passbind's `/v1/webhooks/idv/onfido`).
    pub fn set_webhook_url(&self, url: String) {
        self.state.lock().unwrap().webhook_url = Some(url);
    }

    /// Ends a run with `status` and `output` (the workflow's outputs), as the provider would
    /// once the applicant finished. Does not send the webhook.
    pub fn finish(&self, run_id: &str, status: &str, output: Option<Value>) {
        let mut s = self.state.lock().unwrap();
        let run = s.runs.get_mut(run_id).expect("no such run at the fake");
        run["status"] = json!(status);
        run["output"] = output.unwrap_or(Value::Null);
        run["updated_at"] = json!("2026-01-01T00:05:00Z");
        if status == "error" {
            run["error"] = json!({"type": "workflow_error", "message": "a task failed"});
        }
        if status == "review" || status == "declined" {
            run["reasons"] = json!(["document.visual_authenticity"]);
        }
    }

    /// The run as the fake holds it.
    pub fn run(&self, run_id: &str) -> Value {
        self.state.lock().unwrap().runs[run_id].clone()
    }

    /// The bodies of every `POST /workflow_runs`, in order.
    pub fn run_requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().run_requests.clone()
    }

    /// The bodies of every `POST /applicants`, in order.
    pub fn applicant_bodies(&self) -> Vec<Value> {
        self.state.lock().unwrap().applicant_bodies.clone()
    }

    /// Every API request (token requests excluded), in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests were made to `method path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }

    /// How many times `GET /workflow_runs/{run_id}` was asked.
    pub fn reads_of(&self, run_id: &str) -> usize {
        self.count("GET", &format!("/workflow_runs/{run_id}"))
    }

    pub fn token_requests(&self) -> u32 {
        self.state.lock().unwrap().token_requests
    }

    /// Invalidates every access token issued so far (the next API call gets a 401).
    pub fn revoke_access_tokens(&self) {
        self.state.lock().unwrap().access_tokens.clear();
    }

    /// The next `n` API requests are answered `status` (with `Retry-After: retry_after`).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let status = StatusCode::from_u16(status).unwrap();
        let mut s = self.state.lock().unwrap();
        s.failures
            .extend(std::iter::repeat_n((status, retry_after), n));
    }

    pub fn clear_failures(&self) {
        self.state.lock().unwrap().failures.clear();
    }

    /// A `workflow_run.completed` delivery body.
    pub fn completed_body(&self, run_id: &str, status: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"payload": {
            "resource_type": "workflow_run",
            "action": "workflow_run.completed",
            "object": {
                "id": run_id,
                "status": status,
                "completed_at_iso8601": "2026-01-01T00:05:00Z",
                "href": format!("{}/workflow_runs/{run_id}", self.base_url),
            }
        }}))
        .unwrap()
    }

    /// `X-SHA2-Signature` of `body` with the webhook token.
    pub fn sign(body: &[u8]) -> String {
        passbind_idv::signature::sign_sha2(WEBHOOK_TOKEN.as_bytes(), body)
    }

    /// Posts a delivery to Passbind with the given signature header (if any).
    pub async fn deliver(&self, body: &[u8], signature: Option<&str>) -> (u16, Value) {
        let url = self
            .state
            .lock()
            .unwrap()
            .webhook_url
            .clone()
            .expect("the webhook URL is not set");
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = signature {
            request = request.header("X-SHA2-Signature", sig);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends the signed `workflow_run.completed` webhook for `run_id` claiming `status`.
    pub async fn send_completed(&self, run_id: &str, status: &str) -> (u16, Value) {
        let body = self.completed_body(run_id, status);
        self.deliver(&body, Some(&Self::sign(&body))).await
    }
}

/// Records the request, applies a forced failure, and checks the credentials: `Some` is the
/// answer that refuses the request.
fn refuse(
    state: &Mutex<FakeState>,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
) -> Option<Response> {
    let mut s = state.lock().unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    s.seen.push(Seen {
        method,
        path,
        authorization: authorization.clone(),
    });
    if let Some((status, retry_after)) = s.failures.pop_front() {
        let mut r = error(status, "fake_failure", "forced by the test");
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return Some(r);
    }
    let ok = match s.auth {
        FakeAuth::Token => authorization == format!("Token token={API_TOKEN}"),
        FakeAuth::OAuth { .. } => authorization
            .strip_prefix("Bearer ")
            .is_some_and(|t| s.access_tokens.contains(t)),
    };
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "authorization_error",
            "Authorization error: please re-check your credentials",
        )
    })
}

async fn token(State(state): State<Arc<Mutex<FakeState>>>, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    s.token_requests += 1;
    let FakeAuth::OAuth { expires_in } = s.auth else {
        return error(StatusCode::NOT_FOUND, "resource_not_found", "no OAuth here");
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let access_token = format!("at-{}", s.token_requests);
    s.access_tokens.insert(access_token.clone());
    Json(json!({"access_token": access_token, "token_type": "bearer", "expires_in": expires_in}))
        .into_response()
}

fn name_ok(v: &Value) -> bool {
    v.as_str().is_some_and(|n| {
        !n.is_empty() && !n.contains(['!', '#', '$', '%', '*', '=', '<', '>', ';', '{', '}', '"'])
    })
}

async fn create_applicant(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refuse(&state, "POST", "/applicants".into(), &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_json", "not JSON");
    };
    if !name_ok(&body["first_name"]) || !name_ok(&body["last_name"]) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "first_name and last_name are required",
        );
    }
    let mut s = state.lock().unwrap();
    s.next_id += 1;
    let id = format!("a0000000-0000-4000-8000-{:012x}", s.next_id);
    let applicant = json!({
        "id": id, "first_name": body["first_name"], "last_name": body["last_name"],
        "created_at": "2026-01-01T00:00:00Z", "href": format!("/v3.6/applicants/{id}"),
    });
    s.applicant_bodies.push(body);
    s.applicants.insert(id, applicant.clone());
    (StatusCode::CREATED, Json(applicant)).into_response()
}

async fn create_run(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refuse(&state, "POST", "/workflow_runs".into(), &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_json", "not JSON");
    };
    let mut s = state.lock().unwrap();
    let workflow_ok = matches!(
        body["workflow_id"].as_str(),
        Some(WF_REGISTRATION | WF_VERIFY)
    );
    let applicant_ok = body["applicant_id"]
        .as_str()
        .is_some_and(|a| s.applicants.contains_key(a));
    if !workflow_ok || !applicant_ok {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "unknown workflow_id or applicant_id",
        );
    }
    s.next_id += 1;
    let id = format!("b0000000-0000-4000-8000-{:012x}", s.next_id);
    let run = json!({
        "id": id,
        "workflow_id": body["workflow_id"],
        "workflow_version_id": 3,
        "applicant_id": body["applicant_id"],
        "status": "awaiting_input",
        "output": null,
        "reasons": [],
        "sdk_token": format!("sdk-token-for-{id}"),
        "dashboard_url": format!("https://dashboard.onfido.invalid/results/{id}"),
        "customer_user_id": body["customer_user_id"],
        "custom_data": body["custom_data"],
        "tags": body["tags"],
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    });
    s.run_requests.push(body);
    s.runs.insert(id, run.clone());
    (StatusCode::CREATED, Json(run)).into_response()
}

async fn read_run(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse(&state, "GET", format!("/workflow_runs/{id}"), &headers) {
        return r;
    }
    match state.lock().unwrap().runs.get(&id) {
        Some(run) => Json(run.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "the workflow run was not found",
        ),
    }
}
