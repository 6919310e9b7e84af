//! Settings, from flags or environment variables (every flag has one), validated at start.
//! `Debug` never shows a secret.

use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Zero configuration: SQLite, generated keys, the IDV simulator, loopback. Not for real users.
    Dev,
    /// Refuses the simulator, generated keys and plain-HTTP public origins.
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RpModeSetting {
    /// Passbind issues WebAuthn options and verifies attestations and assertions.
    Builtin,
    /// The integrator's IDP verifies WebAuthn; Passbind gates completion on the IDV verdict.
    External,
}

/// The Entrust/Onfido region whose API Passbind calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnfidoRegion {
    Eu,
    Us,
    Ca,
}

impl OnfidoRegion {
    /// The region's API v3.6 base URL.
    pub fn base_url(self) -> &'static str {
        match self {
            Self::Eu => "https://api.eu.onfido.com/v3.6",
            Self::Us => "https://api.us.onfido.com/v3.6",
            Self::Ca => "https://api.ca.onfido.com/v3.6",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A secret setting: shown as `<redacted>` in Debug output and logs.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("<unset>")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// `passbind serve` settings.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// `dev` (default: zero configuration, never for real users) or `production`.
    #[arg(long, env = "PASSBIND_MODE", value_enum, default_value = "dev")]
    pub mode: Mode,

    /// Address to listen on. Dev mode stays on loopback unless told otherwise.
    #[arg(long, env = "PASSBIND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where the embedded database and the dev keys live.
    #[arg(long, env = "PASSBIND_DATA_DIR", default_value = "./passbind-data")]
    pub data_dir: PathBuf,

    /// `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite in the data directory.
    #[arg(long, env = "PASSBIND_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Maximum database connections of this replica.
    #[arg(long, env = "PASSBIND_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// The URL integrators and devices use to reach this server (deep links, capture URL).
    /// Default: http://<listen>.
    #[arg(long, env = "PASSBIND_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// Who verifies WebAuthn: `builtin` (Passbind) or `external` (the integrator's IDP).
    #[arg(long, env = "PASSBIND_RP_MODE", value_enum, default_value = "builtin")]
    pub rp_mode: RpModeSetting,

    /// WebAuthn relying-party id (a registrable domain; `localhost` in dev).
    #[arg(long, env = "PASSBIND_RP_ID", default_value = "localhost")]
    pub rp_id: String,

    /// WebAuthn relying-party name shown by authenticators.
    #[arg(long, env = "PASSBIND_RP_NAME", default_value = "Passbind")]
    pub rp_name: String,

    /// Allowed WebAuthn origins, comma-separated: `https://app.example.com`,
    /// `android:apk-key-hash:<base64url>`. Default in dev: http://localhost:<listen port>.
    #[arg(long, env = "PASSBIND_RP_ORIGINS", value_delimiter = ',')]
    pub rp_origins: Vec<String>,

    /// Require user verification (biometric or PIN on the device) in every ceremony.
    #[arg(long, env = "PASSBIND_REQUIRE_USER_VERIFICATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_user_verification: bool,

    /// Identity-verification provider: `simulator` (dev only) or `onfido`.
    #[arg(long, env = "PASSBIND_IDV_PROVIDER", default_value = "simulator")]
    pub idv_provider: String,

    /// Studio workflow id for enrolment.
    #[arg(long, env = "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID")]
    pub registration_workflow_id: Option<String>,

    /// Studio workflow id for step-up verification.
    #[arg(long, env = "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID")]
    pub step_up_workflow_id: Option<String>,

    /// Studio workflow id for recovery verification (may equal the step-up id).
    #[arg(long, env = "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID")]
    pub recovery_workflow_id: Option<String>,

    /// Entrust/Onfido: the region of the account (`eu`, `us` or `ca`).
    #[arg(long, env = "PASSBIND_ONFIDO_REGION", value_enum, default_value = "eu")]
    pub onfido_region: OnfidoRegion,

    /// Entrust/Onfido: the API base URL, version path included; overrides the region
    /// (default: `https://api.<region>.onfido.com/v3.6`).
    #[arg(long, env = "PASSBIND_ONFIDO_BASE_URL")]
    pub onfido_base_url: Option<url::Url>,

    /// Entrust/Onfido: the API token (sent as `Authorization: Token token=...`). Alternatively
    /// set the OAuth2 client id and secret.
    #[arg(long, env = "PASSBIND_ONFIDO_API_TOKEN", hide_env_values = true)]
    pub onfido_api_token: Option<Secret>,

    /// Entrust/Onfido: OAuth2 client id (client-credentials grant), instead of the API token.
    #[arg(long, env = "PASSBIND_ONFIDO_CLIENT_ID")]
    pub onfido_client_id: Option<String>,

    /// Entrust/Onfido: OAuth2 client secret, with the client id.
    #[arg(long, env = "PASSBIND_ONFIDO_CLIENT_SECRET", hide_env_values = true)]
    pub onfido_client_secret: Option<Secret>,

    /// Entrust/Onfido: the webhook's token, the key of its `X-SHA2-Signature`.
    #[arg(long, env = "PASSBIND_ONFIDO_WEBHOOK_TOKEN", hide_env_values = true)]
    pub onfido_webhook_token: Option<Secret>,

    /// Inbound IDV webhooks are acknowledged (202-like `accepted`) after this many
    /// milliseconds even if their processing goes on; it completes in the background, or the
    /// reconciler settles the session.
    #[arg(long, env = "PASSBIND_IDV_WEBHOOK_ACK_MS", default_value_t = 8000)]
    pub idv_webhook_ack_ms: u64,

    /// Witness mode (`PASSBIND_IDV_PROVIDER=witness`): the integrator's webhook that receives
    /// the signed identity bundle and answers approve or reject (authoritative).
    #[arg(long, env = "PASSBIND_WITNESS_URL")]
    pub witness_url: Option<url::Url>,

    /// Witness mode: the shared secret that authenticates the webhook's answers
    /// (`X-Passbind-Signature: t=...,v1=...`), at least 16 characters.
    #[arg(long, env = "PASSBIND_WITNESS_SECRET", hide_env_values = true)]
    pub witness_secret: Option<Secret>,

    /// Witness mode: how long to wait for the answer (then: reject), milliseconds.
    #[arg(long, env = "PASSBIND_WITNESS_TIMEOUT_MS", default_value_t = 5000)]
    pub witness_timeout_ms: u64,

    /// Calls to the IDV provider: timeout of one attempt, seconds.
    #[arg(long, env = "PASSBIND_IDV_TIMEOUT_SECONDS", default_value_t = 10)]
    pub idv_timeout_seconds: u64,

    /// Calls to the IDV provider: retries after the first attempt (on 429, 5xx, network errors).
    #[arg(long, env = "PASSBIND_IDV_MAX_RETRIES", default_value_t = 3)]
    pub idv_max_retries: u32,

    /// Calls to the IDV provider: the first wait before a retry, milliseconds (doubled each time).
    #[arg(long, env = "PASSBIND_IDV_RETRY_BACKOFF_MS", default_value_t = 200)]
    pub idv_retry_backoff_ms: u64,

    /// Calls to the IDV provider: the longest single wait, `Retry-After` included, milliseconds.
    #[arg(long, env = "PASSBIND_IDV_MAX_RETRY_DELAY_MS", default_value_t = 5000)]
    pub idv_max_retry_delay_ms: u64,

    /// Reconciler: seconds between passes that poll the provider for runs whose webhook has not
    /// arrived (fractions allowed; 0 turns the reconciler off on this replica).
    #[arg(
        long,
        env = "PASSBIND_IDV_RECONCILE_INTERVAL_SECONDS",
        default_value_t = 30.0
    )]
    pub idv_reconcile_interval_seconds: f64,

    /// Reconciler: how old a pending run must be before it is polled, seconds.
    #[arg(
        long,
        env = "PASSBIND_IDV_RECONCILE_MIN_AGE_SECONDS",
        default_value_t = 60.0
    )]
    pub idv_reconcile_min_age_seconds: f64,

    /// Reconciler: at most this many runs are polled per pass (the next pass continues).
    #[arg(long, env = "PASSBIND_IDV_RECONCILE_BATCH_SIZE", default_value_t = 100)]
    pub idv_reconcile_batch_size: u32,

    /// Key ring for biometric tokens: `VERSION:BASE64KEY[,VERSION:BASE64KEY...]` (32-byte keys;
    /// the highest version seals new data). Required in production; generated in dev.
    #[arg(long, env = "PASSBIND_KEYRING", hide_env_values = true)]
    pub keyring: Option<Secret>,

    /// Key (base64, 32 bytes) for the keyed hash of external user ids. Required in production.
    #[arg(long, env = "PASSBIND_USER_REF_KEY", hide_env_values = true)]
    pub user_ref_key: Option<Secret>,

    /// Ed25519 seed (base64, 32 bytes) that signs audit checkpoints and identity proofs.
    /// Required in production; generated in dev. Its public key is served at
    /// `/v1/audit/public-key`.
    #[arg(long, env = "PASSBIND_AUDIT_SIGNING_KEY", hide_env_values = true)]
    pub audit_signing_key: Option<Secret>,

    /// Sign an audit checkpoint after this many new events...
    #[arg(long, env = "PASSBIND_AUDIT_CHECKPOINT_EVENTS", default_value_t = 1000)]
    pub audit_checkpoint_events: u64,

    /// ...or after this many seconds with new events.
    #[arg(long, env = "PASSBIND_AUDIT_CHECKPOINT_SECONDS", default_value_t = 60)]
    pub audit_checkpoint_seconds: u64,

    /// How often the audit sequencer integrates the events written with their changes into
    /// the log, in milliseconds: the longest an event waits for its sequence number when the
    /// server keeps up (see `passbind_audit_integration_delay_seconds` in /metrics).
    #[arg(long, env = "PASSBIND_AUDIT_INTEGRATE_MS", default_value_t = 200)]
    pub audit_integrate_ms: u64,

    /// How long an API key read from the database is trusted before it is read again, in
    /// milliseconds (0: read it on every request). A key revoked on this replica is refused at
    /// once; on another replica, at the latest this long after the revocation.
    #[arg(long, env = "PASSBIND_API_KEY_CACHE_MS", default_value_t = 1000)]
    pub api_key_cache_ms: u64,

    /// Default session time to live, seconds.
    #[arg(long, env = "PASSBIND_SESSION_TTL_SECONDS", default_value_t = 900)]
    pub session_ttl_seconds: u64,

    /// Smallest session time to live a request may ask for, seconds.
    #[arg(long, env = "PASSBIND_SESSION_TTL_MIN_SECONDS", default_value_t = 30)]
    pub session_ttl_min_seconds: u64,

    /// Largest session time to live a request may ask for, seconds.
    #[arg(long, env = "PASSBIND_SESSION_TTL_MAX_SECONDS", default_value_t = 3600)]
    pub session_ttl_max_seconds: u64,

    /// Step-up: live captures that may fail before the session fails.
    #[arg(long, env = "PASSBIND_STEP_UP_MAX_CAPTURES", default_value_t = 3)]
    pub step_up_max_captures: u32,

    /// Step-up: face mismatches (across sessions) within the window that lock step-up for the
    /// user; 0 disables the lockout.
    #[arg(long, env = "PASSBIND_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub lockout_threshold: u32,

    /// Step-up: the window in which mismatches are counted, seconds.
    #[arg(long, env = "PASSBIND_LOCKOUT_WINDOW_SECONDS", default_value_t = 900)]
    pub lockout_window_seconds: u64,

    /// Step-up: how long the lock lasts after the last counted mismatch, seconds.
    #[arg(long, env = "PASSBIND_LOCKOUT_DURATION_SECONDS", default_value_t = 900)]
    pub lockout_duration_seconds: u64,

    /// Cross-platform: handoff token lifetime, seconds.
    #[arg(long, env = "PASSBIND_HANDOFF_TTL_SECONDS", default_value_t = 180)]
    pub handoff_ttl_seconds: u64,

    /// Cross-platform: the deep link the handoff token is delivered in; `{token}` is replaced
    /// by the token (for example an app link `https://app.example.com/stepup?t={token}`).
    #[arg(
        long,
        env = "PASSBIND_HANDOFF_LINK",
        default_value = "passbind://handoff?token={token}"
    )]
    pub handoff_link: String,

    /// Recovery: continuation context lifetime, seconds.
    #[arg(long, env = "PASSBIND_CONTINUATION_TTL_SECONDS", default_value_t = 300)]
    pub continuation_ttl_seconds: u64,

    /// Recovery: revoke the user's other credentials when a recovery completes.
    #[arg(long, env = "PASSBIND_RECOVERY_REVOKES_OTHER_CREDENTIALS", default_value_t = true, action = clap::ArgAction::Set)]
    pub recovery_revokes_other_credentials: bool,

    /// Refuse an assertion whose signature counter went backwards (default: record and report
    /// it, so that synced and counter-less authenticators keep working).
    #[arg(long, env = "PASSBIND_REJECT_COUNTER_REGRESSION", default_value_t = false, action = clap::ArgAction::Set)]
    pub reject_counter_regression: bool,

    /// Largest request body accepted, bytes.
    #[arg(long, env = "PASSBIND_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Simulator: milliseconds between a capture and its verdict.
    #[arg(
        long,
        env = "PASSBIND_SIMULATOR_DECISION_DELAY_MS",
        default_value_t = 20
    )]
    pub simulator_decision_delay_ms: u64,

    /// Log filter (tracing syntax), e.g. `info` or `passbind=debug,info`.
    #[arg(long, env = "PASSBIND_LOG", default_value = "info")]
    pub log: String,

    /// `pretty` for people, `json` for log pipelines.
    #[arg(
        long,
        env = "PASSBIND_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,

    /// Dashboard: the WebAuthn relying-party id of operator passkeys. Default: the host of
    /// the dashboard's origin (PASSBIND_PUBLIC_URL; `localhost` for a loopback address).
    #[arg(long, env = "PASSBIND_DASHBOARD_RP_ID")]
    pub dashboard_rp_id: Option<String>,

    /// Dashboard: how long an operator stays signed in, seconds.
    #[arg(
        long,
        env = "PASSBIND_OPERATOR_SESSION_TTL_SECONDS",
        default_value_t = 28_800
    )]
    pub operator_session_ttl_seconds: u64,

    /// Dashboard: how long a one-time operator setup link stays valid, seconds.
    #[arg(
        long,
        env = "PASSBIND_OPERATOR_SETUP_TTL_SECONDS",
        default_value_t = 86_400
    )]
    pub operator_setup_ttl_seconds: u64,

    /// Dashboard sign-in with the operator's own OIDC provider: the issuer URL (its
    /// `/.well-known/openid-configuration` is read). Unset: passkey sign-in only.
    #[arg(long, env = "PASSBIND_OIDC_ISSUER")]
    pub oidc_issuer: Option<url::Url>,

    /// OIDC: the client id registered at the provider (redirect URI:
    /// `<dashboard origin>/api/management/v1/auth/oidc/callback`).
    #[arg(long, env = "PASSBIND_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// OIDC: the client secret, for a confidential client (PKCE is used either way).
    #[arg(long, env = "PASSBIND_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<Secret>,

    /// OIDC: the audience the ID token must name in `aud`. Default: the client id.
    #[arg(long, env = "PASSBIND_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// OIDC: the scopes to ask for, space-separated (`openid` is always included).
    #[arg(
        long,
        env = "PASSBIND_OIDC_SCOPES",
        default_value = "openid profile email"
    )]
    pub oidc_scopes: String,
}

impl Settings {
    /// Settings for tests and the demo: dev mode on an ephemeral loopback port.
    pub fn for_tests(data_dir: PathBuf, database_url: Option<String>) -> Self {
        Self {
            mode: Mode::Dev,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url: database_url.map(Secret),
            database_max_connections: 8,
            public_url: None,
            rp_mode: RpModeSetting::Builtin,
            rp_id: "localhost".into(),
            rp_name: "Passbind".into(),
            rp_origins: Vec::new(),
            require_user_verification: true,
            idv_provider: "simulator".into(),
            registration_workflow_id: None,
            step_up_workflow_id: None,
            recovery_workflow_id: None,
            onfido_region: OnfidoRegion::Eu,
            onfido_base_url: None,
            onfido_api_token: None,
            onfido_client_id: None,
            onfido_client_secret: None,
            onfido_webhook_token: None,
            idv_webhook_ack_ms: 8000,
            witness_url: None,
            witness_secret: None,
            witness_timeout_ms: 5000,
            idv_timeout_seconds: 10,
            idv_max_retries: 3,
            idv_retry_backoff_ms: 200,
            idv_max_retry_delay_ms: 5000,
            idv_reconcile_interval_seconds: 30.0,
            idv_reconcile_min_age_seconds: 60.0,
            idv_reconcile_batch_size: 100,
            keyring: None,
            user_ref_key: None,
            audit_signing_key: None,
            audit_checkpoint_events: 1000,
            audit_checkpoint_seconds: 60,
            api_key_cache_ms: 1000,
            audit_integrate_ms: 200,
            session_ttl_seconds: 900,
            session_ttl_min_seconds: 1,
            session_ttl_max_seconds: 3600,
            step_up_max_captures: 3,
            lockout_threshold: 5,
            lockout_window_seconds: 900,
            lockout_duration_seconds: 900,
            handoff_ttl_seconds: 180,
            handoff_link: "passbind://handoff?token={token}".into(),
            continuation_ttl_seconds: 300,
            recovery_revokes_other_credentials: true,
            reject_counter_regression: false,
            max_body_bytes: 64 * 1024,
            simulator_decision_delay_ms: 5,
            log: "warn".into(),
            log_format: LogFormat::Pretty,
            dashboard_rp_id: None,
            operator_session_ttl_seconds: 28_800,
            operator_setup_ttl_seconds: 86_400,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_audience: None,
            oidc_scopes: "openid profile email".into(),
        }
    }
}
