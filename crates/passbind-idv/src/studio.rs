//! The Entrust/Onfido Studio v3.6 client. It serves the real provider and the development
//! simulator alike: both speak the same protocol.
//!
//! Outbound calls have a timeout and a bounded number of retries with exponential backoff on
//! 429, 5xx and transport errors, honouring `Retry-After` (in seconds) up to
//! [`StudioConfig::max_retry_delay`]. Other 4xx answers become [`IdvError::Rejected`]; retries
//! exhausted become [`IdvError::Unavailable`]. Tokens and biometric tokens are never logged.
//!
//! Authentication is either the API token (`Authorization: Token token=...`) or OAuth2 client
//! credentials ([`OAuthClient`]): the client exchanges them at `{base}/oauth/token` for an
//! access token, sends it as `Authorization: Bearer ...`, keeps it until shortly before it
//! expires, and fetches a new one once if the provider answers 401.
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
    run_completed_event_key, IdvError, IdvProvider, RunOutcome, RunStatus, StartRun, StartedRun,
    WebhookEvent,
};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
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
/// How long an OAuth2 access token is kept when the provider does not say (`expires_in`).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The longest margin before an access token's expiry at which a new one is fetched.
pub const MAX_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// OAuth2 client credentials, the alternative to the API token: exchanged at
/// `{base}/oauth/token` (form `grant_type=client_credentials`, `client_id`, `client_secret`)
/// for a bearer access token. The secret is redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// The configuration of a [`StudioClient`].
#[derive(Clone)]
pub struct StudioConfig {
    /// The provider's name in URLs and records: `simulator` or `onfido`.
    pub name: String,
    /// The API base, e.g. `https://api.eu.onfido.com/v3.6` or the simulator's.
    pub base_url: Url,
    /// Sent as `Authorization: Token token=<api_token>`. Secret: redacted in `Debug`.
    /// Leave it empty when [`StudioConfig::oauth`] is set.
    pub api_token: String,
    /// OAuth2 client credentials instead of the API token.
    pub oauth: Option<OAuthClient>,
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
            oauth: None,
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
            .field("oauth", &self.oauth)
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

/// How the client authenticates to the provider.
enum Auth {
    /// `Authorization: Token token=<api token>`.
    Token(HeaderValue),
    /// OAuth2 client credentials, exchanged for a bearer token that is cached.
    OAuth(OAuthState),
}

struct OAuthState {
    token_url: Url,
    /// The form body of the token request (it carries the client secret).
    form: Zeroizing<String>,
    /// The current access token; the lock is held while a new one is fetched, so that
    /// concurrent calls wait for one fetch instead of starting their own.
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    /// `Bearer <access token>`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
}

/// The token endpoint's answer (RFC 6749 §5.1). Not `Debug`: it holds the access token.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Drop for TokenAnswer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.access_token);
    }
}

/// When to fetch a new access token: shortly before it expires (a tenth of its lifetime, at
/// most [`MAX_TOKEN_REFRESH_MARGIN`]). `None` when it should not be cached at all.
fn token_refresh_after(expires_in: Option<u64>) -> Option<Duration> {
    let lifetime = expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    let margin = (lifetime / 10).min(MAX_TOKEN_REFRESH_MARGIN);
    let keep = lifetime.saturating_sub(margin);
    (!keep.is_zero()).then_some(keep)
}

/// Why one logical request failed.
enum SendError {
    /// 401: the credentials were refused (an OAuth2 token may be refreshed once).
    Unauthorized(String),
    Failed(IdvError),
}

/// The Studio v3.6 client; an [`IdvProvider`].
pub struct StudioClient {
    name: String,
    base: Url,
    auth: Auth,
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
            .field(
                "auth",
                &match self.auth {
                    Auth::Token(_) => "api token",
                    Auth::OAuth(_) => "oauth2 client credentials",
                },
            )
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
        if config.webhook_token.is_empty() {
            return Err(ConfigError("the provider webhook token is empty".into()));
        }
        config.workflow_ids.validate()?;
        let api_token = Zeroizing::new(config.api_token);
        let auth = match config.oauth {
            Some(oauth) => {
                if !api_token.is_empty() {
                    return Err(ConfigError(
                        "set either the provider API token or OAuth2 client credentials, not both"
                            .into(),
                    ));
                }
                let client_id = Zeroizing::new(oauth.client_id);
                let client_secret = Zeroizing::new(oauth.client_secret);
                if client_id.trim().is_empty() || client_secret.is_empty() {
                    return Err(ConfigError(
                        "OAuth2 needs both a client id and a client secret".into(),
                    ));
                }
                let mut token_url = base.clone();
                token_url
                    .path_segments_mut()
                    .map_err(|()| ConfigError("the base URL cannot carry a path".into()))?
                    .pop_if_empty()
                    .extend(["oauth", "token"]);
                let form = Zeroizing::new(
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("grant_type", "client_credentials")
                        .append_pair("client_id", &client_id)
                        .append_pair("client_secret", &client_secret)
                        .finish(),
                );
                Auth::OAuth(OAuthState {
                    token_url,
                    form,
                    cached: tokio::sync::Mutex::new(None),
                })
            }
            None => {
                if api_token.is_empty() {
                    return Err(ConfigError("the provider API token is empty".into()));
                }
                let header = Zeroizing::new(format!("Token token={}", api_token.as_str()));
                let mut authorization = HeaderValue::from_str(&header).map_err(|_| {
                    ConfigError(
                        "the provider API token has characters a header cannot carry".into(),
                    )
                })?;
                authorization.set_sensitive(true);
                Auth::Token(authorization)
            }
        };
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
            auth,
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

    /// The `Authorization` header for the next request: the API token, or the cached OAuth2
    /// access token (fetched first when there is none or it is about to expire).
    async fn authorization(&self) -> Result<HeaderValue, IdvError> {
        let oauth = match &self.auth {
            Auth::Token(header) => return Ok(header.clone()),
            Auth::OAuth(oauth) => oauth,
        };
        let mut cached = oauth.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.refresh_at {
                return Ok(token.header.clone());
            }
        }
        let requested_at = Instant::now();
        let bytes = match self
            .send(
                &Method::POST,
                &oauth.token_url,
                None,
                Some(("application/x-www-form-urlencoded", oauth.form.as_bytes())),
                "obtain OAuth2 token",
            )
            .await
        {
            Ok(bytes) => bytes,
            Err(SendError::Failed(e)) => return Err(e),
            Err(SendError::Unauthorized(message)) => {
                tracing::warn!(provider = %self.name, %message, "IDV provider refused the OAuth2 client credentials");
                return Err(IdvError::Rejected(message));
            }
        };
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| IdvError::Malformed("obtain OAuth2 token: unreadable answer".into()))?;
        if let Some(kind) = &answer.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(IdvError::Malformed(format!(
                    "obtain OAuth2 token: token type {kind} is not bearer"
                )));
            }
        }
        if answer.access_token.is_empty() {
            return Err(IdvError::Malformed(
                "obtain OAuth2 token: empty access token".into(),
            ));
        }
        let value = Zeroizing::new(format!("Bearer {}", answer.access_token));
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            IdvError::Malformed(
                "obtain OAuth2 token: the access token cannot be sent in a header".into(),
            )
        })?;
        header.set_sensitive(true);
        *cached = token_refresh_after(answer.expires_in).map(|keep| CachedToken {
            header: header.clone(),
            refresh_at: requested_at + keep,
        });
        tracing::debug!(provider = %self.name, "OAuth2 access token obtained");
        Ok(header)
    }

    /// Drops the cached OAuth2 token if it is still `used` (a concurrent call may already have
    /// replaced it).
    async fn forget_token(&self, used: &HeaderValue) {
        if let Auth::OAuth(oauth) = &self.auth {
            let mut cached = oauth.cached.lock().await;
            if cached.as_ref().is_some_and(|t| t.header == used) {
                *cached = None;
            }
        }
    }

    /// A JSON API call with the retry policy. With OAuth2, a 401 fetches a new access token
    /// and tries once more.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&[u8]>,
        what: &'static str,
    ) -> Result<T, IdvError> {
        let mut refreshed = false;
        loop {
            let authorization = self.authorization().await?;
            let sent = self
                .send(
                    &method,
                    &url,
                    Some(&authorization),
                    body.map(|b| ("application/json", b)),
                    what,
                )
                .await;
            match sent {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        IdvError::Malformed(format!("{what}: unreadable answer: {e}"))
                    });
                }
                Err(SendError::Unauthorized(_))
                    if !refreshed && matches!(self.auth, Auth::OAuth(_)) =>
                {
                    tracing::info!(provider = %self.name, "OAuth2 access token refused; fetching a new one");
                    self.forget_token(&authorization).await;
                    refreshed = true;
                }
                Err(SendError::Unauthorized(message)) => {
                    tracing::warn!(provider = %self.name, %message, "IDV provider refused the credentials");
                    return Err(IdvError::Rejected(message));
                }
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
    }

    /// One logical request: at most `max_retries + 1` attempts, retrying 429, 5xx and
    /// transport errors. Returns the body of a 2xx answer.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        authorization: Option<&HeaderValue>,
        body: Option<(&'static str, &[u8])>,
        what: &'static str,
    ) -> Result<bytes::Bytes, SendError> {
        let mut retry = 0u32;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, "application/json");
            if let Some(authorization) = authorization {
                request = request.header(AUTHORIZATION, authorization.clone());
            }
            if let Some((content_type, body)) = body {
                request = request
                    .header(CONTENT_TYPE, content_type)
                    .body(body.to_vec());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
                    match response.bytes().await {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(bytes)
                            if status == StatusCode::TOO_MANY_REQUESTS
                                || status.is_server_error() =>
                        {
                            Failure {
                                message: describe(what, status, &bytes),
                                retry_after,
                            }
                        }
                        Ok(bytes) if status == StatusCode::UNAUTHORIZED => {
                            return Err(SendError::Unauthorized(describe(what, status, &bytes)));
                        }
                        Ok(bytes) => {
                            let message = describe(what, status, &bytes);
                            tracing::warn!(provider = %self.name, %message, "IDV provider refused the request");
                            return Err(SendError::Failed(IdvError::Rejected(message)));
                        }
                        Err(e) => Failure {
                            message: format!("{what}: reading the answer failed: {e}"),
                            retry_after: None,
                        },
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(SendError::Failed(IdvError::Rejected(format!(
                        "{what}: {e}"
                    ))));
                }
                Err(e) => Failure {
                    message: format!("{what}: {}", transport_error(&e)),
                    retry_after: None,
                },
            };
            if retry >= self.max_retries {
                tracing::warn!(provider = %self.name, message = %failure.message, attempts = retry + 1, "IDV provider unavailable");
                return Err(SendError::Failed(IdvError::Unavailable(failure.message)));
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
            // The reconciler records a polled outcome under the same key.
            event_key: run_completed_event_key(&id, &status),
            run_id: id,
        })
    }

    async fn fetch_run(&self, run_id: &str) -> Result<RunOutcome, IdvError> {
        let run = self.get_workflow_run(run_id).await?;
        let biometric_token = run
            .output_biometric_token()
            .map(|t| Zeroizing::new(t.to_owned()));
        let status = RunStatus::parse(&run.status);
        // The identity result is personal data: carried as text only as far as the identity
        // proof, in memory, and wiped on drop.
        let identity = run
            .output
            .as_ref()
            .and_then(|o| o.get("identity"))
            .filter(|v| v.is_object())
            .map(|v| Zeroizing::new(v.to_string()));
        Ok(RunOutcome {
            run_id: run.id.clone(),
            status,
            biometric_token,
            identity,
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

    fn oauth_config() -> StudioConfig {
        let mut c = config();
        c.api_token = String::new();
        c.oauth = Some(OAuthClient {
            client_id: "client-1".into(),
            client_secret: "oauth_secret_value".into(),
        });
        c
    }

    #[test]
    fn oauth_configurations() {
        let client = StudioClient::new(oauth_config()).unwrap();
        match &client.auth {
            Auth::OAuth(o) => {
                assert_eq!(
                    o.token_url.as_str(),
                    "https://api.eu.onfido.com/v3.6/oauth/token"
                );
                assert_eq!(
                    o.form.as_str(),
                    "grant_type=client_credentials&client_id=client-1&client_secret=oauth_secret_value"
                );
            }
            Auth::Token(_) => panic!("expected OAuth2"),
        }
        let c = oauth_config();
        assert!(!format!("{c:?}").contains("oauth_secret_value"));
        assert!(!format!("{client:?}").contains("oauth_secret_value"));
        // Both an API token and client credentials: refused, as are half credentials.
        let mut c = oauth_config();
        c.api_token = "api_secret_value".into();
        assert!(StudioClient::new(c).is_err());
        let mut c = oauth_config();
        c.oauth.as_mut().unwrap().client_secret = String::new();
        assert!(StudioClient::new(c).is_err());
        let mut c = oauth_config();
        c.oauth.as_mut().unwrap().client_id = " ".into();
        assert!(StudioClient::new(c).is_err());
    }

    #[test]
    fn access_tokens_are_kept_until_shortly_before_they_expire() {
        assert_eq!(
            token_refresh_after(Some(3600)),
            Some(Duration::from_secs(3540))
        );
        assert_eq!(
            token_refresh_after(Some(100)),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            token_refresh_after(None),
            Some(DEFAULT_TOKEN_LIFETIME - DEFAULT_TOKEN_LIFETIME / 10)
        );
        assert_eq!(token_refresh_after(Some(0)), None);
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
