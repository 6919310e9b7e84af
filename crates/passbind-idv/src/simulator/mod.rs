//! The development simulator: a fake cloud IDV that speaks the Entrust/Onfido Studio v3.6
//! protocol (applicants, workflow runs with an `sdk_token`, signed `workflow_run.completed`
//! webhooks, the authoritative `GET /workflow_runs/{id}`), so that the one
//! [`crate::studio::StudioClient`] serves both the simulator and the real provider.
//!
//! It is a development provider: its state lives in memory (runs are lost on restart, and the
//! oldest are forgotten beyond [`MAX_RUNS`]); production deployments must not use it.
//!
//! Endpoints (relative to wherever the router is mounted, e.g. `/simulator/v3.6`):
//!
//! | endpoint | auth | |
//! |---|---|---|
//! | `POST /applicants` | `Authorization: Token token=<api_token>` | 201 applicant |
//! | `POST /workflow_runs` | same | 201 run, `status: awaiting_input`, `sdk_token` |
//! | `GET /workflow_runs/{id}` | same | 200 run |
//! | `POST /sdk/captures` | `Authorization: Bearer <sdk_token>` | 202; body [`SimulatorCapture`] |
//!
//! A capture is accepted once per run (409 afterwards). The verdict is reached asynchronously
//! after `decision_delay`, then a `workflow_run.completed` webhook signed with
//! `X-SHA2-Signature` is POSTed to `webhook_url`, retried with doubling backoff on transport
//! errors, 5xx, 408 and 429, and given up on any other answer (2xx: delivered; other 4xx:
//! refused). The verdict stays readable with `GET /workflow_runs/{id}` whatever the delivery.
//! Every error is an Onfido-style `{"error": {"type", "message", "fields"}}` (never a 500 on
//! bad input); bodies are limited to [`MAX_BODY_BYTES`].
//!
//! The decision (the seed's workflow contract), on the run's input
//! `custom_data.encrypted_biometric_token`:
//!
//! * empty: new-user registration. The capture needs `document` and `face`; approved iff the
//!   face is live and cosine(face, document photo) >= `match_threshold`. An approved run's
//!   `output` carries `encrypted_biometric_token` (the face template sealed with AES-256-GCM
//!   under `ebt_key`, base64url) and `identity` (the document fields).
//! * present: face-only match against the template sealed in the token. A token that does not
//!   open gives `declined` with reason `invalid_biometric_token`; otherwise approved iff live
//!   and matching, else `declined` (`liveness_failed`, `face_mismatch`). No new token.
//! * [`SimulatorCapture::simulate`] (test control) forces `review`, `abandoned`, `error`,
//!   `declined` or `approved_without_token`.
//!
//! A run of a workflow other than the registration one must be given a non-empty token
//! (422 otherwise), as a verification workflow has nothing to match against.

mod capture;
mod decide;
mod ebt;

pub use capture::{DocumentCapture, FaceCapture, FieldErrors, Simulate, SimulatorCapture};

use crate::signature::sign_sha2;
use crate::wire::{
    Applicant, ApplicantCreate, ErrorBody, ErrorEnvelope, WebhookEnvelope, WebhookObject,
    WebhookPayload, WorkflowRun, WorkflowRunCreate, ACTION_WORKFLOW_RUN_COMPLETED, EBT_KEY,
    RESOURCE_WORKFLOW_RUN,
};
use crate::{ConfigError, WorkflowIds};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ebt::EbtSealer;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subtle::ConstantTimeEq;
use url::Url;
use zeroize::Zeroizing;

/// Default cosine similarity a face must reach to match.
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.80;
/// Default delay between a capture and its verdict.
pub const DEFAULT_DECISION_DELAY: Duration = Duration::from_millis(20);
/// Default number of webhook delivery attempts.
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 6;
/// Default wait before the second delivery attempt (doubled after each failure).
pub const DEFAULT_WEBHOOK_BACKOFF: Duration = Duration::from_millis(200);
/// The largest request body the simulator reads.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The most runs (and applicants) kept; the oldest are forgotten beyond it.
pub const MAX_RUNS: usize = 10_000;
/// How long one webhook delivery may take (Onfido expects an answer within 10 s).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two webhook delivery attempts.
const MAX_WEBHOOK_BACKOFF: Duration = Duration::from_secs(60);
const MAX_EBT_INPUT_CHARS: usize = 8 * 1024;

/// The simulator's configuration.
#[derive(Clone)]
pub struct SimulatorConfig {
    /// What `Authorization: Token token=...` must carry. Secret: redacted in `Debug`.
    pub api_token: String,
    /// Where verdicts are delivered (Passbind's `POST /v1/webhooks/idv/simulator`).
    pub webhook_url: Url,
    /// The HMAC key of `X-SHA2-Signature`. Secret: redacted in `Debug`.
    pub webhook_token: String,
    /// The AES-256-GCM key that seals the simulator's encrypted biometric tokens (not all
    /// zeros). Secret: redacted in `Debug`.
    pub ebt_key: [u8; 32],
    /// The workflows the simulator knows. A run of a workflow other than `registration` must
    /// be given an `encrypted_biometric_token` input.
    pub workflow_ids: WorkflowIds,
    /// Cosine similarity a face must reach to match, in (0, 1].
    pub match_threshold: f32,
    pub decision_delay: Duration,
    /// Delivery attempts per webhook (at least 1).
    pub webhook_attempts: u32,
    /// Wait before the second attempt; doubled after each failure (capped at 60 s).
    pub webhook_backoff: Duration,
    /// The simulator's public API base (e.g. `http://127.0.0.1:8080/simulator/v3.6`), used
    /// for `href` in webhooks; without it `href` is left out.
    pub public_base_url: Option<Url>,
}

impl SimulatorConfig {
    /// A configuration with the default threshold, delay and delivery policy.
    pub fn new(
        api_token: impl Into<String>,
        webhook_url: Url,
        webhook_token: impl Into<String>,
        ebt_key: [u8; 32],
        workflow_ids: WorkflowIds,
    ) -> Self {
        Self {
            api_token: api_token.into(),
            webhook_url,
            webhook_token: webhook_token.into(),
            ebt_key,
            workflow_ids,
            match_threshold: DEFAULT_MATCH_THRESHOLD,
            decision_delay: DEFAULT_DECISION_DELAY,
            webhook_attempts: DEFAULT_WEBHOOK_ATTEMPTS,
            webhook_backoff: DEFAULT_WEBHOOK_BACKOFF,
            public_base_url: None,
        }
    }
}

impl Default for SimulatorConfig {
    /// The default threshold, delay and delivery policy, a webhook URL of a dev server on
    /// `127.0.0.1:8080`, and no tokens, key or workflows: [`Simulator::new`] refuses it until
    /// those are set.
    fn default() -> Self {
        #[allow(clippy::expect_used)] // a constant that parses
        let webhook_url =
            Url::parse("http://127.0.0.1:8080/v1/webhooks/idv/simulator").expect("constant URL");
        Self::new("", webhook_url, "", [0u8; 32], WorkflowIds::default())
    }
}

impl fmt::Debug for SimulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorConfig")
            .field("api_token", &"<redacted>")
            .field("webhook_url", &self.webhook_url.as_str())
            .field("webhook_token", &"<redacted>")
            .field("ebt_key", &"<redacted>")
            .field("workflow_ids", &self.workflow_ids)
            .field("match_threshold", &self.match_threshold)
            .field("decision_delay", &self.decision_delay)
            .field("webhook_attempts", &self.webhook_attempts)
            .field("webhook_backoff", &self.webhook_backoff)
            .field(
                "public_base_url",
                &self.public_base_url.as_ref().map(Url::as_str),
            )
            .finish()
    }
}

/// The simulator. Cheap to clone (shared state); [`Simulator::router`] gives its endpoints.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

struct Inner {
    api_token_digest: [u8; 32],
    webhook_url: Url,
    webhook_token: Zeroizing<String>,
    sealer: EbtSealer,
    workflow_ids: WorkflowIds,
    match_threshold: f32,
    decision_delay: Duration,
    webhook_attempts: u32,
    webhook_backoff: Duration,
    public_base_url: Option<Url>,
    http: reqwest::Client,
    rng: SystemRandom,
    state: Mutex<Runs>,
}

#[derive(Default)]
struct Runs {
    applicants: HashMap<String, ()>,
    applicant_order: VecDeque<String>,
    runs: HashMap<String, RunRecord>,
    run_order: VecDeque<String>,
    /// SHA-256 of an sdk_token -> run id (hashed so that lookups leak nothing of the token).
    by_sdk_token: HashMap<[u8; 32], String>,
}

struct RunRecord {
    run: WorkflowRun,
    input_token: Zeroizing<String>,
    sdk_token_digest: [u8; 32],
    captured: bool,
}

impl Simulator {
    /// Checks the configuration.
    pub fn new(config: SimulatorConfig) -> Result<Self, ConfigError> {
        if config.api_token.is_empty() {
            return Err(ConfigError("the simulator API token is empty".into()));
        }
        if config.webhook_token.is_empty() {
            return Err(ConfigError("the simulator webhook token is empty".into()));
        }
        if !matches!(config.webhook_url.scheme(), "http" | "https") {
            return Err(ConfigError(
                "the simulator webhook URL must be http(s)".into(),
            ));
        }
        config.workflow_ids.validate()?;
        if !(config.match_threshold > 0.0 && config.match_threshold <= 1.0) {
            return Err(ConfigError(
                "the simulator match threshold must be in (0, 1]".into(),
            ));
        }
        if config.webhook_attempts == 0 {
            return Err(ConfigError(
                "the simulator needs at least one webhook attempt".into(),
            ));
        }
        if config.ebt_key.iter().all(|b| *b == 0) {
            return Err(ConfigError("the simulator EBT key is all zeros".into()));
        }
        let sealer = EbtSealer::new(&config.ebt_key)
            .ok_or_else(|| ConfigError("unusable simulator EBT key".into()))?;
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "passbind-idv-simulator/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                api_token_digest: sha256(config.api_token.as_bytes()),
                webhook_url: config.webhook_url,
                webhook_token: Zeroizing::new(config.webhook_token),
                sealer,
                workflow_ids: config.workflow_ids,
                match_threshold: config.match_threshold,
                decision_delay: config.decision_delay,
                webhook_attempts: config.webhook_attempts,
                webhook_backoff: config.webhook_backoff,
                public_base_url: config.public_base_url,
                http,
                rng: SystemRandom::new(),
                state: Mutex::new(Runs::default()),
            }),
        })
    }

    /// The simulator's endpoints, to mount (e.g. under `/simulator/v3.6`) or serve alone.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/applicants", post(create_applicant))
            .route("/workflow_runs", post(create_workflow_run))
            .route("/workflow_runs/{id}", get(get_workflow_run))
            .route("/sdk/captures", post(post_capture))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    fn runs(&self) -> MutexGuard<'_, Runs> {
        // Nothing panics while the lock is held; recover rather than propagate a poison.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_api_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let v = v.trim();
                let (scheme, rest) = v.split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("token") {
                    return None;
                }
                let token = rest.trim().strip_prefix("token=")?;
                Some(token.trim_matches('"').to_owned())
            })
            .map(Zeroizing::new)
            .ok_or_else(ApiError::unauthorized)?;
        let ok: bool = sha256(presented.as_bytes())
            .ct_eq(&self.inner.api_token_digest)
            .into();
        if ok {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    fn random_token(&self) -> Result<String, ApiError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        self.inner.rng.fill(&mut *bytes).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal_error",
                "no randomness",
            )
        })?;
        use base64::Engine as _;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*bytes))
    }

    fn href(&self, run_id: &str) -> Option<String> {
        let mut url = self.inner.public_base_url.clone()?;
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .extend(["workflow_runs", run_id]);
        Some(url.to_string())
    }
}

/// Builds a [`Simulator`] and returns its router: shorthand for
/// `Simulator::new(config)?.router()`.
pub fn router(config: SimulatorConfig) -> Result<Router, ConfigError> {
    Ok(Simulator::new(config)?.router())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Errors

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    fields: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            fields: None,
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authorization_error",
            "Authorization error: please re-check your credentials",
        )
    }

    fn validation(fields: FieldErrors) -> Self {
        Self {
            fields: serde_json::to_value(fields).ok(),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "There was a validation error on this request",
            )
        }
    }

    fn field(field: &str, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_owned(), vec![message.into()]);
        Self::validation(fields)
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "The resource could not be found",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                kind: self.kind.to_owned(),
                message: self.message,
                fields: self.fields,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("The request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read",
            )
        }
    })
}

/// Parses JSON; syntax errors are 400, shape errors 422 naming the field.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match value {
        Ok(value) => value,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "The request body is not valid JSON",
                ));
            }
            let message = strip_position(&inner.to_string());
            return Err(ApiError::field(&field_of(&path, &message), message));
        }
    };
    de.end().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request body is not valid JSON",
        )
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The field a deserialisation error is about: the path, plus the name serde quotes for a
/// missing or unknown field.
fn field_of(path: &str, message: &str) -> String {
    let quoted = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let base = if path == "." { "" } else { path };
    match quoted {
        Some(name) if base.is_empty() => name.to_owned(),
        Some(name) if base == name || base.ends_with(&format!(".{name}")) => base.to_owned(),
        Some(name) => format!("{base}.{name}"),
        None if base.is_empty() => "body".to_owned(),
        None => base.to_owned(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "The method is not allowed on this resource",
    )
}

// ---------------------------------------------------------------------------------------
// Provider API

const FORBIDDEN_NAME_CHARS: &[char] = &['!', '#', '$', '%', '*', '=', '<', '>', ';', '{', '}', '"'];

async fn create_applicant(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Applicant>), ApiError> {
    sim.check_api_token(&headers)?;
    let request: ApplicantCreate = parse_json(&body_bytes(body)?)?;
    let mut errors = FieldErrors::new();
    for (field, value) in [
        ("first_name", &request.first_name),
        ("last_name", &request.last_name),
    ] {
        let message = if value.trim().is_empty() {
            Some("can't be blank")
        } else if value.chars().count() > 255 {
            Some("is too long (maximum is 255 characters)")
        } else if value.contains(FORBIDDEN_NAME_CHARS) || value.chars().any(char::is_control) {
            Some("contains invalid characters")
        } else {
            None
        };
        if let Some(message) = message {
            errors.insert(field.to_owned(), vec![message.to_owned()]);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = uuid::Uuid::new_v4().to_string();
    {
        let mut runs = sim.runs();
        runs.applicants.insert(id.clone(), ());
        runs.applicant_order.push_back(id.clone());
        while runs.applicant_order.len() > MAX_RUNS {
            if let Some(old) = runs.applicant_order.pop_front() {
                runs.applicants.remove(&old);
            }
        }
    }
    let href = sim.inner.public_base_url.clone().and_then(|mut url| {
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .extend(["applicants", &id]);
        Some(url.to_string())
    });
    Ok((
        StatusCode::CREATED,
        Json(Applicant {
            id,
            first_name: Some(request.first_name),
            last_name: Some(request.last_name),
            created_at: Some(now_rfc3339()),
            href,
        }),
    ))
}

async fn create_workflow_run(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WorkflowRun>), ApiError> {
    sim.check_api_token(&headers)?;
    let request: WorkflowRunCreate = parse_json(&body_bytes(body)?)?;
    let ids = &sim.inner.workflow_ids;
    if ![&ids.registration, &ids.step_up, &ids.recovery].contains(&&request.workflow_id) {
        return Err(ApiError::field("workflow_id", "is not a known workflow"));
    }
    let mut errors = FieldErrors::new();
    if let Some(c) = &request.customer_user_id {
        if c.chars().count() > 256 {
            errors.insert(
                "customer_user_id".into(),
                vec!["is too long (maximum is 256 characters)".into()],
            );
        }
    }
    if let Some(tags) = &request.tags {
        if tags.len() > 30 {
            errors.insert("tags".into(), vec!["must have at most 30 tags".into()]);
        } else if tags.iter().any(|t| t.is_empty() || t.chars().count() > 128) {
            errors.insert(
                "tags".into(),
                vec!["each tag must have 1 to 128 characters".into()],
            );
        }
    }
    let ebt_field = format!("custom_data.{EBT_KEY}");
    let input_token = match request.custom_data.as_ref().and_then(|c| c.get(EBT_KEY)) {
        None | Some(Value::Null) => Zeroizing::new(String::new()),
        Some(Value::String(s)) if s.chars().count() <= MAX_EBT_INPUT_CHARS => {
            Zeroizing::new(s.clone())
        }
        Some(Value::String(_)) => {
            errors.insert(ebt_field.clone(), vec!["is too long".into()]);
            Zeroizing::new(String::new())
        }
        Some(_) => {
            errors.insert(ebt_field.clone(), vec!["must be a string".into()]);
            Zeroizing::new(String::new())
        }
    };
    if input_token.is_empty() && request.workflow_id != ids.registration {
        errors
            .entry(ebt_field)
            .or_insert_with(|| vec!["is required by this workflow".into()]);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }

    let sdk_token = sim.random_token()?;
    let sdk_token_digest = sha256(sdk_token.as_bytes());
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_rfc3339();
    let run = WorkflowRun {
        id: id.clone(),
        status: "awaiting_input".into(),
        applicant_id: Some(request.applicant_id.clone()),
        workflow_id: Some(request.workflow_id),
        workflow_version_id: Some(1),
        output: None,
        reasons: Some(Vec::new()),
        error: None,
        sdk_token: Some(sdk_token),
        dashboard_url: None,
        created_at: Some(now.clone()),
        updated_at: Some(now),
        customer_user_id: request.customer_user_id,
        tags: request.tags,
        custom_data: request.custom_data,
        link: request.link,
    };
    let mut runs = sim.runs();
    if !runs.applicants.contains_key(&request.applicant_id) {
        return Err(ApiError::field("applicant_id", "is not a known applicant"));
    }
    runs.by_sdk_token.insert(sdk_token_digest, id.clone());
    runs.runs.insert(
        id.clone(),
        RunRecord {
            run: run.clone(),
            input_token,
            sdk_token_digest,
            captured: false,
        },
    );
    runs.run_order.push_back(id);
    while runs.run_order.len() > MAX_RUNS {
        if let Some(old) = runs.run_order.pop_front() {
            if let Some(record) = runs.runs.remove(&old) {
                runs.by_sdk_token.remove(&record.sdk_token_digest);
            }
        }
    }
    drop(runs);
    Ok((StatusCode::CREATED, Json(run)))
}

async fn get_workflow_run(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WorkflowRun>, ApiError> {
    sim.check_api_token(&headers)?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::not_found());
    };
    let runs = sim.runs();
    let record = runs.runs.get(&id).ok_or_else(ApiError::not_found)?;
    Ok(Json(record.run.clone()))
}

// ---------------------------------------------------------------------------------------
// Device endpoint

async fn post_capture(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty())
        .map(Zeroizing::new)
        .ok_or_else(ApiError::unauthorized)?;
    let token_digest = sha256(presented.as_bytes());
    if !sim.runs().by_sdk_token.contains_key(&token_digest) {
        return Err(ApiError::unauthorized());
    }

    let capture: SimulatorCapture = parse_json(&body_bytes(body)?)?;
    capture.validate().map_err(ApiError::validation)?;

    let (run_id, input_token) = {
        let mut runs = sim.runs();
        let run_id = runs
            .by_sdk_token
            .get(&token_digest)
            .cloned()
            .ok_or_else(ApiError::unauthorized)?;
        let record = runs
            .runs
            .get_mut(&run_id)
            .ok_or_else(ApiError::unauthorized)?;
        if record.captured || record.run.status != "awaiting_input" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "A capture was already received for this workflow run",
            ));
        }
        if record.input_token.is_empty() && capture.document.is_none() && capture.simulate.is_none()
        {
            return Err(ApiError::field(
                "document",
                "is required: this run has no encrypted_biometric_token input (new-user registration)",
            ));
        }
        record.captured = true;
        record.run.status = "processing".into();
        record.run.updated_at = Some(now_rfc3339());
        (run_id, record.input_token.clone())
    };

    tokio::spawn(decide_and_notify(
        sim.clone(),
        run_id.clone(),
        capture,
        input_token,
    ));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": run_id, "status": "processing"})),
    ))
}

async fn decide_and_notify(
    sim: Simulator,
    run_id: String,
    capture: SimulatorCapture,
    input_token: Zeroizing<String>,
) {
    tokio::time::sleep(sim.inner.decision_delay).await;
    let verdict = decide::decide(
        &capture,
        &input_token,
        &sim.inner.sealer,
        sim.inner.match_threshold,
    );
    drop(capture);
    let completed_at = now_rfc3339();
    let resource = {
        let mut runs = sim.runs();
        let Some(record) = runs.runs.get_mut(&run_id) else {
            tracing::warn!(%run_id, "simulator run forgotten before its verdict");
            return;
        };
        record.run.status = verdict.status.to_owned();
        record.run.output = verdict.output;
        record.run.reasons = Some(verdict.reasons);
        record.run.error = verdict.error;
        record.run.updated_at = Some(completed_at.clone());
        json!({
            "workflow_run_id": run_id,
            "workflow_id": record.run.workflow_id,
            "status": verdict.status,
            "customer_user_id": record.run.customer_user_id,
        })
    };
    tracing::info!(%run_id, status = verdict.status, "simulator reached a verdict");
    let envelope = WebhookEnvelope {
        payload: WebhookPayload {
            resource_type: RESOURCE_WORKFLOW_RUN.into(),
            action: ACTION_WORKFLOW_RUN_COMPLETED.into(),
            object: WebhookObject {
                id: Some(run_id.clone()),
                status: Some(verdict.status.to_owned()),
                completed_at_iso8601: Some(completed_at),
                href: sim.href(&run_id),
            },
            resource: Some(resource),
        },
    };
    let body = match serde_json::to_vec(&envelope) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(%run_id, error = %e, "simulator could not encode its webhook");
            return;
        }
    };
    deliver_webhook(&sim, &run_id, body).await;
}

/// POSTs a signed webhook, retrying transport errors, 5xx, 408 and 429 with doubling backoff.
async fn deliver_webhook(sim: &Simulator, run_id: &str, body: Vec<u8>) {
    let inner = &sim.inner;
    let signature = sign_sha2(inner.webhook_token.as_bytes(), &body);
    let mut backoff = inner.webhook_backoff;
    for attempt in 1..=inner.webhook_attempts {
        let result = inner
            .http
            .post(inner.webhook_url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-SHA2-Signature", signature.as_str())
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                tracing::info!(%run_id, attempt, "simulator webhook delivered");
                return;
            }
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == StatusCode::TOO_MANY_REQUESTS
                    || response.status() == StatusCode::REQUEST_TIMEOUT =>
            {
                tracing::warn!(%run_id, attempt, status = response.status().as_u16(), "simulator webhook failed; will retry");
            }
            Ok(response) => {
                tracing::warn!(%run_id, attempt, status = response.status().as_u16(), "simulator webhook refused; giving up");
                return;
            }
            Err(e) => {
                tracing::warn!(%run_id, attempt, timeout = e.is_timeout(), connect = e.is_connect(), "simulator webhook not delivered; will retry");
            }
        }
        if attempt < inner.webhook_attempts {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(MAX_WEBHOOK_BACKOFF);
        }
    }
    tracing::warn!(%run_id, attempts = inner.webhook_attempts, "simulator webhook abandoned");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn good() -> SimulatorConfig {
        SimulatorConfig {
            api_token: "api_secret_value".into(),
            webhook_token: "hook_secret_value".into(),
            ebt_key: [9u8; 32],
            workflow_ids: WorkflowIds {
                registration: "r".into(),
                step_up: "s".into(),
                recovery: "s".into(),
            },
            ..SimulatorConfig::default()
        }
    }

    #[test]
    fn configurations() {
        assert!(Simulator::new(good()).is_ok());
        assert!(router(good()).is_ok());
        assert!(Simulator::new(SimulatorConfig::default()).is_err());
        let shown = format!("{:?}", good());
        assert!(!shown.contains("api_secret_value") && !shown.contains("hook_secret_value"));
        assert!(!shown.contains("9, 9"));
        for broken in [
            SimulatorConfig {
                ebt_key: [0; 32],
                ..good()
            },
            SimulatorConfig {
                api_token: String::new(),
                ..good()
            },
            SimulatorConfig {
                webhook_token: String::new(),
                ..good()
            },
            SimulatorConfig {
                match_threshold: 0.0,
                ..good()
            },
            SimulatorConfig {
                match_threshold: f32::NAN,
                ..good()
            },
            SimulatorConfig {
                webhook_attempts: 0,
                ..good()
            },
        ] {
            assert!(Simulator::new(broken).is_err());
        }
    }

    #[test]
    fn field_names_from_serde_errors() {
        assert_eq!(field_of(".", "missing field `face`"), "face");
        assert_eq!(
            field_of("face", "missing field `liveness`"),
            "face.liveness"
        );
        assert_eq!(
            field_of("extra", "unknown field `extra`, expected"),
            "extra"
        );
        assert_eq!(
            field_of("face.template[3]", "invalid type"),
            "face.template[3]"
        );
        assert_eq!(field_of(".", "invalid type"), "body");
    }
}
