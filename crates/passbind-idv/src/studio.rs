//! The Entrust/Onfido Studio v3.6 client. It serves the real provider and the development
//! simulator alike: both speak the same protocol.
//!
//! Outbound calls have a timeout and a bounded number of retries with exponential backoff on
//! 429, 5xx and transport errors, honouring `Retry-After` (in seconds) up to
//! [`StudioConfig::max_retry_delay`]. Other 4xx answers become [`IdvError::Rejected`]; retries
//! exhausted become [`IdvError::Unavailable`]. Tokens and biometric tokens are never logged.
//!
//! Retrying `POST /applicants` or `POST /workflow_runs` after a timeout can leave an orphan
//! applicant or run at the provider (the API has no idempotency key); Passbind only ever uses
//! the run whose id it received.

use crate::signature::{verify_sha2, SIGNATURE_HEADER};
use crate::wire::{
    Applicant, ApplicantCreate, ErrorEnvelope, WebhookEnvelope, WorkflowRun, WorkflowRunCreate,
    ACTION_WORKFLOW_RUN_COMPLETED, EBT_KEY, RESOURCE_WORKFLOW_RUN,
};
use crate::ConfigError;
pub use crate::WorkflowIds;
use async_trait::async_trait;
use passbind_core::ports::{
    IdvError, IdvProvider, RunOutcome, RunStatus, StartRun, StartedRun, WebhookEvent,
};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;
use url::Url;
use zeroize::Zeroizing;

/// The placeholder applicant names: Passbind never gives the provider personal data.
pub const PLACEHOLDER_FIRST_NAME: &str = "Passbind";
pub const PLACEHOLDER_LAST_NAME: &str = "Applicant";

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default first backoff (doubled on every retry).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Default cap on one wait between attempts, `Retry-After` included.
pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The configuration of a [`StudioClient`].
#[derive(Clone)]
pub struct StudioConfig {
    /// The provider's name in URLs and records: `simulator` or `onfido`.
    pub name: String,
    /// The API base, e.g. `https://api.eu.onfido.com/v3.6` or the simulator's.
    pub base_url: Url,
    /// Sent as `Authorization: Token token=<api_token>`. Secret: redacted in `Debug`.
    pub api_token: String,
    /// The webhook's token: the HMAC key of `X-SHA2-Signature`. Secret: redacted in `Debug`.
    pub webhook_token: String,
    pub workflow_ids: WorkflowIds,
    /// For the simulator: where the device posts its capture (returned in [`StartedRun`]).
    pub capture_url: Option<String>,
    /// Per-request timeout (connect, send and read).
    pub timeout: Duration,
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// The first wait between attempts; doubled on each retry.
    pub retry_backoff: Duration,
    /// The longest single wait between attempts, `Retry-After` included.
    pub max_retry_delay: Duration,
}

impl StudioConfig {
    /// A configuration with the default timeout and retry policy.
    pub fn new(
        name: impl Into<String>,
        base_url: Url,
        api_token: impl Into<String>,
        webhook_token: impl Into<String>,
        workflow_ids: WorkflowIds,
    ) -> Self {
        Self {
            name: name.into(),
            base_url,
            api_token: api_token.into(),
            webhook_token: webhook_token.into(),
            workflow_ids,
            capture_url: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            max_retry_delay: DEFAULT_MAX_RETRY_DELAY,
        }
    }
}

/// The documented default region's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.eu.onfido.com/v3.6";

impl Default for StudioConfig {
    /// Onfido's EU region with the default timeout and retry policy, and no name, tokens or
    /// workflows: [`StudioClient::new`] refuses it until those are set.
    fn default() -> Self {
        #[allow(clippy::expect_used)] // a constant that parses
        let base_url = Url::parse(DEFAULT_BASE_URL).expect("constant URL");
        Self::new(String::new(), base_url, "", "", WorkflowIds::default())
    }
}

impl fmt::Debug for StudioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StudioConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url.as_str())
            .field("api_token", &"<redacted>")
            .field("webhook_token", &"<redacted>")
            .field("workflow_ids", &self.workflow_ids)
            .field("capture_url", &self.capture_url)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("max_retry_delay", &self.max_retry_delay)
            .finish()
    }
}

/// The Studio v3.6 client; an [`IdvProvider`].
pub struct StudioClient {
    name: String,
    base: Url,
    authorization: HeaderValue,
    webhook_token: Zeroizing<String>,
    workflow_ids: WorkflowIds,
    capture_url: Option<String>,
    http: reqwest::Client,
    max_retries: u32,
    retry_backoff: Duration,
    max_retry_delay: Duration,
}

impl fmt::Debug for StudioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StudioClient")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .field("workflow_ids", &self.workflow_ids)
            .field("capture_url", &self.capture_url)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl StudioClient {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: StudioConfig) -> Result<Self, ConfigError> {
        if config.name.trim().is_empty() {
            return Err(ConfigError("the provider name is empty".into()));
        }
        let mut base = config.base_url.clone();
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ConfigError(
                "the provider base URL must be an http(s) URL".into(),
            ));
        }
        base.set_query(None);
        base.set_fragment(None);
        if config.api_token.is_empty() {
            return Err(ConfigError("the provider API token is empty".into()));
        }
        if config.webhook_token.is_empty() {
            return Err(ConfigError("the provider webhook token is empty".into()));
        }
        config.workflow_ids.validate()?;
        let api_token = Zeroizing::new(config.api_token);
        let auth = Zeroizing::new(format!("Token token={}", api_token.as_str()));
        let mut authorization = HeaderValue::from_str(&auth).map_err(|_| {
            ConfigError("the provider API token has characters a header cannot carry".into())
        })?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("passbind-idv/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            name: config.name,
            base,
            authorization,
            webhook_token: Zeroizing::new(config.webhook_token),
            workflow_ids: config.workflow_ids,
            capture_url: config.capture_url,
            http,
            max_retries: config.max_retries,
            retry_backoff: config.retry_backoff,
            max_retry_delay: config.max_retry_delay,
        })
    }

    /// `POST /applicants` with the placeholder names.
    pub async fn create_applicant(&self) -> Result<Applicant, IdvError> {
        let body = ApplicantCreate {
            first_name: PLACEHOLDER_FIRST_NAME.into(),
            last_name: PLACEHOLDER_LAST_NAME.into(),
        };
        let body = Zeroizing::new(
            serde_json::to_vec(&body).map_err(|e| IdvError::Malformed(e.to_string()))?,
        );
        let applicant: Applicant = self
            .call(
                Method::POST,
                self.endpoint(&["applicants"])?,
                Some(&body),
                "create applicant",
            )
            .await?;
        if applicant.id.is_empty() {
            return Err(IdvError::Malformed("applicant without an id".into()));
        }
        Ok(applicant)
    }

    /// `POST /workflow_runs`.
    pub async fn create_workflow_run(
        &self,
        request: &WorkflowRunCreate,
    ) -> Result<WorkflowRun, IdvError> {
        let body = Zeroizing::new(
            serde_json::to_vec(request).map_err(|e| IdvError::Malformed(e.to_string()))?,
        );
        self.call(
            Method::POST,
            self.endpoint(&["workflow_runs"])?,
            Some(&body),
            "create workflow run",
        )
        .await
    }

    /// `GET /workflow_runs/{id}`: the authoritative read.
    pub async fn get_workflow_run(&self, run_id: &str) -> Result<WorkflowRun, IdvError> {
        if !valid_run_id(run_id) {
            return Err(IdvError::Malformed("invalid workflow run id".into()));
        }
        let run: WorkflowRun = self
            .call(
                Method::GET,
                self.endpoint(&["workflow_runs", run_id])?,
                None,
                "get workflow run",
            )
            .await?;
        if run.id != run_id {
            return Err(IdvError::Malformed(
                "the provider answered with another workflow run".into(),
            ));
        }
        Ok(run)
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, IdvError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| IdvError::Malformed("the base URL cannot carry a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The wait before retry number `retry` (0-based): `Retry-After` when the provider sent
    /// one, else exponential backoff; never more than `max_retry_delay`.
    fn retry_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .retry_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(20)));
        retry_after.unwrap_or(exponential).min(self.max_retry_delay)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&[u8]>,
        what: &'static str,
    ) -> Result<T, IdvError> {
        let mut retry = 0u32;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.authorization.clone())
                .header(ACCEPT, "application/json");
            if let Some(body) = body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_vec());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
                    match response.bytes().await {
                        Ok(bytes) if status.is_success() => {
                            return serde_json::from_slice(&bytes).map_err(|e| {
                                IdvError::Malformed(format!("{what}: unreadable answer: {e}"))
                            });
                        }
                        Ok(bytes)
                            if status == StatusCode::TOO_MANY_REQUESTS
                                || status.is_server_error() =>
                        {
                            Failure {
                                message: describe(what, status, &bytes),
                                retry_after,
                            }
                        }
                        Ok(bytes) => {
                            let message = describe(what, status, &bytes);
                            tracing::warn!(provider = %self.name, %message, "IDV provider refused the request");
                            return Err(IdvError::Rejected(message));
                        }
                        Err(e) => Failure {
                            message: format!("{what}: reading the answer failed: {e}"),
                            retry_after: None,
                        },
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(IdvError::Rejected(format!("{what}: {e}")));
                }
                Err(e) => Failure {
                    message: format!("{what}: {}", transport_error(&e)),
                    retry_after: None,
                },
            };
            if retry >= self.max_retries {
                tracing::warn!(provider = %self.name, message = %failure.message, attempts = retry + 1, "IDV provider unavailable");
                return Err(IdvError::Unavailable(failure.message));
            }
            let delay = self.retry_delay(retry, failure.retry_after);
            tracing::info!(provider = %self.name, message = %failure.message, retry = retry + 1, delay_ms = delay.as_millis() as u64, "retrying IDV provider call");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

struct Failure {
    message: String,
    retry_after: Option<Duration>,
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "connection failed".into();
    }
    // The innermost cause, which says what went wrong more plainly than the wrapper.
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    last.unwrap_or_else(|| "transport error".into())
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: exponential backoff applies).
fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// A short description of a non-2xx answer: status and the error envelope's type and message.
fn describe(what: &str, status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => {
            let mut message = envelope.error.message;
            if message.len() > 200 {
                let mut cut = 200;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
            }
            // The names of the offending fields, never their values.
            let fields = match &envelope.error.fields {
                Some(serde_json::Value::Object(map)) if !map.is_empty() => {
                    let names: Vec<&str> = map.keys().take(10).map(String::as_str).collect();
                    format!(" (fields: {})", names.join(", "))
                }
                _ => String::new(),
            };
            format!(
                "{what}: HTTP {} {}: {message}{fields}",
                status.as_u16(),
                envelope.error.kind
            )
        }
        Err(_) => format!("{what}: HTTP {}", status.as_u16()),
    }
}

/// Run ids are UUIDs at Onfido; accept any short id of URL-safe characters.
fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[async_trait]
impl IdvProvider for StudioClient {
    fn name(&self) -> &str {
        &self.name
    }

    async fn start_run(&self, req: StartRun) -> Result<StartedRun, IdvError> {
        let applicant = self.create_applicant().await?;
        let mut custom_data = req.custom_data;
        let token = req
            .biometric_token
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        custom_data.insert(EBT_KEY.into(), serde_json::Value::String(token));
        let request = WorkflowRunCreate {
            workflow_id: self.workflow_ids.for_purpose(req.purpose).to_owned(),
            applicant_id: applicant.id,
            custom_data: Some(custom_data),
            customer_user_id: Some(req.customer_user_ref),
            tags: Some(vec!["passbind".into(), req.purpose.as_str().into()]),
            link: None,
        };
        let run = self.create_workflow_run(&request).await;
        // Best effort: wipe the token copy held in the request before it is dropped.
        if let Some(mut data) = request.custom_data {
            if let Some(serde_json::Value::String(s)) = data.get_mut(EBT_KEY) {
                zeroize::Zeroize::zeroize(s);
            }
        }
        let run = run?;
        let sdk_token = run
            .sdk_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| IdvError::Malformed("workflow run without an sdk_token".into()))?;
        if !valid_run_id(&run.id) {
            return Err(IdvError::Malformed(
                "workflow run with an invalid id".into(),
            ));
        }
        tracing::info!(provider = %self.name, session_id = %req.session_id, run_id = %run.id, purpose = req.purpose.as_str(), "IDV workflow run started");
        Ok(StartedRun {
            run_id: run.id,
            sdk_token,
            capture_url: self.capture_url.clone(),
        })
    }

    fn verify_webhook(
        &self,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &[u8],
    ) -> Result<WebhookEvent, IdvError> {
        let signature = header(SIGNATURE_HEADER).ok_or(IdvError::InvalidSignature)?;
        if !verify_sha2(self.webhook_token.as_bytes(), body, &signature) {
            return Err(IdvError::InvalidSignature);
        }
        let envelope: WebhookEnvelope = serde_json::from_slice(body)
            .map_err(|e| IdvError::Malformed(format!("webhook body: {e}")))?;
        let payload = envelope.payload;
        if payload.resource_type != RESOURCE_WORKFLOW_RUN
            || payload.action != ACTION_WORKFLOW_RUN_COMPLETED
        {
            return Ok(WebhookEvent::Ignored {
                action: payload.action,
            });
        }
        let id = payload
            .object
            .id
            .filter(|id| valid_run_id(id))
            .ok_or_else(|| IdvError::Malformed("webhook without a valid object.id".into()))?;
        let status = payload
            .object
            .status
            .filter(|s| !s.is_empty())
            .ok_or_else(|| IdvError::Malformed("webhook without object.status".into()))?;
        Ok(WebhookEvent::RunCompleted {
            event_key: format!("{id}:{}:{status}", payload.action),
            run_id: id,
        })
    }

    async fn fetch_run(&self, run_id: &str) -> Result<RunOutcome, IdvError> {
        let run = self.get_workflow_run(run_id).await?;
        let biometric_token = run
            .output_biometric_token()
            .map(|t| Zeroizing::new(t.to_owned()));
        let status = RunStatus::parse(&run.status);
        Ok(RunOutcome {
            run_id: run.id.clone(),
            status,
            biometric_token,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn config() -> StudioConfig {
        StudioConfig::new(
            "onfido",
            Url::parse("https://api.eu.onfido.com/v3.6").unwrap(),
            "api_secret_value",
            "hook_secret_value",
            WorkflowIds {
                registration: "wf-reg".into(),
                step_up: "wf-step".into(),
                recovery: "wf-step".into(),
            },
        )
    }

    #[test]
    fn endpoints_keep_the_version_prefix() {
        let client = StudioClient::new(config()).unwrap();
        assert_eq!(
            client.endpoint(&["applicants"]).unwrap().as_str(),
            "https://api.eu.onfido.com/v3.6/applicants"
        );
        let mut c = config();
        c.base_url = Url::parse("http://127.0.0.1:9/simulator/v3.6/").unwrap();
        let client = StudioClient::new(c).unwrap();
        assert_eq!(
            client.endpoint(&["workflow_runs", "abc"]).unwrap().as_str(),
            "http://127.0.0.1:9/simulator/v3.6/workflow_runs/abc"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = config();
        let shown = format!("{c:?}");
        assert!(!shown.contains("api_secret_value"));
        assert!(!shown.contains("hook_secret_value"));
        let client = StudioClient::new(c).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("api_secret_value"));
        assert!(!shown.contains("hook_secret_value"));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut c = config();
        c.api_token = String::new();
        assert!(StudioClient::new(c).is_err());
        let mut c = config();
        c.webhook_token = String::new();
        assert!(StudioClient::new(c).is_err());
        let mut c = config();
        c.base_url = Url::parse("mailto:x@example.com").unwrap();
        assert!(StudioClient::new(c).is_err());
        let mut c = config();
        c.workflow_ids.step_up = " ".into();
        assert!(StudioClient::new(c).is_err());
        let mut c = config();
        c.api_token = "bad\ntoken".into();
        assert!(StudioClient::new(c).is_err());
        assert!(StudioClient::new(StudioConfig::default()).is_err());
    }

    #[test]
    fn retry_delays_double_and_are_capped() {
        let mut c = config();
        c.retry_backoff = Duration::from_millis(100);
        c.max_retry_delay = Duration::from_millis(700);
        let client = StudioClient::new(c).unwrap();
        assert_eq!(client.retry_delay(0, None), Duration::from_millis(100));
        assert_eq!(client.retry_delay(1, None), Duration::from_millis(200));
        assert_eq!(client.retry_delay(2, None), Duration::from_millis(400));
        assert_eq!(client.retry_delay(3, None), Duration::from_millis(700));
        assert_eq!(client.retry_delay(40, None), Duration::from_millis(700));
        assert_eq!(
            client.retry_delay(0, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        assert_eq!(
            client.retry_delay(0, Some(Duration::from_secs(120))),
            Duration::from_millis(700)
        );
    }

    #[test]
    fn retry_after_parsing() {
        let v = HeaderValue::from_static(" 3 ");
        assert_eq!(parse_retry_after(Some(&v)), Some(Duration::from_secs(3)));
        let v = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&v)), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn error_descriptions_name_fields_not_values() {
        let body = br#"{"error":{"type":"validation_error","message":"bad input","fields":{"custom_data":["secret-value is invalid"]}}}"#;
        let d = describe(
            "create workflow run",
            StatusCode::UNPROCESSABLE_ENTITY,
            body,
        );
        assert_eq!(
            d,
            "create workflow run: HTTP 422 validation_error: bad input (fields: custom_data)"
        );
        let d = describe("get workflow run", StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(d, "get workflow run: HTTP 502");
    }

    #[test]
    fn run_ids() {
        assert!(valid_run_id("00000000-0000-0000-0000-000000000001"));
        assert!(!valid_run_id(""));
        assert!(!valid_run_id("../applicants"));
        assert!(!valid_run_id("a/b"));
        assert!(!valid_run_id(&"a".repeat(129)));
    }
}
