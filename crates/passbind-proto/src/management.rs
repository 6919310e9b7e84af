//! The management API (`/api/management/v1/...`) that the dashboard uses: operator sign-in,
//! overview statistics, users, sessions, API keys, settings and the audit log.

use crate::session::{Flow, SessionState};
use crate::users::UserView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

// ---- operator sign-in ------------------------------------------------------------------------

/// The signed-in operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// `local:<name>` for a passkey operator, `oidc:<sub>` for one from the OIDC provider.
    /// Audit events of the operator's actions carry it as `actor.id`.
    pub subject: String,
    pub display_name: String,
    /// `passkey` or `oidc`.
    pub method: String,
    /// RFC 3339: when the session ends.
    pub expires_at: String,
}

/// `GET /api/management/v1/auth/status`: what the sign-in page needs. Needs no session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthStatus {
    pub signed_in: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorView>,
    /// Echo it in the `X-CSRF-Token` header of every state-changing request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// Passkey sign-in is available.
    pub passkey: bool,
    /// Sign-in with the operator's OIDC provider is available.
    pub oidc: bool,
    /// No operator has enrolled yet: open the setup link printed at start.
    pub setup_pending: bool,
}

/// A WebAuthn ceremony: pass `options` to `navigator.credentials.create/get` and send the
/// result back with `challenge_id`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CeremonyView {
    pub challenge_id: String,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginEnrolment {
    /// The token of the one-time setup link (`pbs_...`).
    pub setup_token: String,
    /// The operator's name: 1 to 64 characters from `A-Z a-z 0-9 . _ - @`.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishCeremony {
    pub challenge_id: String,
    /// The `PublicKeyCredential` as JSON (`toJSON()`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A signed-in session: the cookie is set HttpOnly; the CSRF token is for the header.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedIn {
    pub operator: OperatorView,
    pub csrf_token: String,
}

/// A one-time setup link for another operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationView {
    pub setup_url: String,
    pub expires_at: String,
}

// ---- overview --------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// Users not erased.
    pub users: u64,
    pub erased_users: u64,
    /// Credentials not revoked (of users not erased).
    pub active_credentials: u64,
    pub revoked_credentials: u64,
    pub active_api_keys: u64,
    pub operators: u64,
}

/// Sessions of one flow opened in the period, by outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FlowSummary {
    pub flow: Option<Flow>,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub expired: u64,
    pub cancelled: u64,
    /// Still live.
    pub pending: u64,
    /// Failed sessions by identity-verification failure reason (`declined` is a biometric or
    /// document mismatch).
    pub failed_by_reason: BTreeMap<String, u64>,
}

/// Sessions opened in one time bucket, of one flow, with one outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoint {
    /// RFC 3339 start of the bucket.
    pub bucket_start: String,
    pub bucket_start_ms: i64,
    pub flow: Flow,
    /// `completed`, `failed`, `expired`, `cancelled` or `pending`.
    pub outcome: String,
    /// The failure reason, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub count: u64,
}

/// Identity verification over the sessions of the period that have a verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct IdvRates {
    /// Sessions with a verdict: passed (completed or awaiting completion) or failed.
    pub decided: u64,
    pub passed: u64,
    /// Failed with `declined`: the live face (or document) did not match.
    pub mismatched: u64,
    /// `passed / decided` (0 when nothing was decided).
    pub pass_rate: f64,
    /// `mismatched / decided`.
    pub mismatch_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OverviewView {
    /// RFC 3339 bounds of the period (sessions by creation time).
    pub since: String,
    pub until: String,
    pub bucket_seconds: u64,
    pub totals: Totals,
    /// All flows together (`flow` is null), then one entry per flow.
    pub flows: Vec<FlowSummary>,
    pub series: Vec<SeriesPoint>,
    pub idv: IdvRates,
}

// ---- users and sessions ----------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserSummaryView {
    pub external_user_id: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
    pub active_credentials: u64,
    /// Whether an encrypted biometric token is held (never the token).
    pub has_biometric_reference: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserListView {
    pub users: Vec<UserSummaryView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionSummaryView {
    pub id: String,
    pub flow: Flow,
    /// The effective state (a live session past its expiry is `expired`).
    pub state: SessionState,
    pub external_user_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idv_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idv_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserDetailView {
    pub user: UserView,
    /// The user's newest sessions (at most 100).
    pub sessions: Vec<SessionSummaryView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionListView {
    pub sessions: Vec<SessionSummaryView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// One audit event as the dashboard shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    pub seq: u64,
    pub time: String,
    pub time_ms: i64,
    pub event_type: String,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    pub actor_kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// Keyed hash of the external user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionDetailView {
    pub session: SessionSummaryView,
    /// The session's audit events, oldest first.
    pub timeline: Vec<AuditEventView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseUser {
    /// Must repeat the external user id: erasure cannot be undone.
    pub confirm_external_user_id: String,
}

// ---- API keys --------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// `flows`, `users`, `audit`.
    pub scopes: Vec<String>,
}

/// A new key: `token` is shown this once and never stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewApiKeyView {
    pub key: ApiKeyView,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyListView {
    pub keys: Vec<ApiKeyView>,
    /// Every scope a key can carry, with what it allows.
    pub scopes: BTreeMap<String, String>,
}

// ---- audit -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventListView {
    pub events: Vec<AuditEventView>,
    /// Pass as `before_seq` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_seq: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreakView {
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub kind: String,
    pub message: String,
}

/// The result of verifying the whole audit chain and its signed checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyReportView {
    pub ok: bool,
    pub verified_at: String,
    pub events_verified: u64,
    pub checkpoints_verified: u64,
    /// The largest tree size a verified signed checkpoint commits to.
    pub anchored_size: u64,
    /// Chained events after the last checkpoint (nothing signed commits to them yet).
    pub unanchored_tail: u64,
    /// Events accepted but not yet integrated into the log when it was read (pending, not
    /// missing).
    #[serde(default)]
    pub pending_events: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_break: Option<BreakView>,
}

// ---- settings --------------------------------------------------------------------------------

/// One setting as in effect; secrets are never shown, only whether they are set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingView {
    /// The environment variable.
    pub name: String,
    /// The value, `<redacted>` for a secret that is set, or absent when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub secret: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingsGroup {
    pub title: String,
    pub settings: Vec<SettingView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    pub groups: Vec<SettingsGroup>,
}
