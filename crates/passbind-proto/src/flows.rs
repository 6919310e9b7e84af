//! Bodies of the authentication, step-up, cross-platform and recovery flows.

use crate::registration::WorkflowInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/authentications`: routine sign-in (built-in relying party).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAuthentication {
    /// Omit for usernameless sign-in with a discoverable credential.
    #[serde(default)]
    pub external_user_id: Option<String>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// Completion with a WebAuthn assertion (built-in relying party) or, for step-ups in external
/// relying-party mode, the integrator's statement that its IDP verified one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteWithAssertion {
    /// The `PublicKeyCredential` JSON from `navigator.credentials.get()` (or the SDK).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
    /// External relying-party mode: the credential id the IDP verified.
    #[serde(default)]
    pub credential_id: Option<String>,
    /// External relying-party mode: must be `true`.
    #[serde(default)]
    pub idp_verified: Option<bool>,
}

/// `POST /v1/step-ups` and `POST /v1/cross-platform-sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenStepUp {
    pub external_user_id: String,
    /// Free JSON describing the action (amount, payee...). Passbind keeps only its hash, and
    /// hashes it into the WebAuthn challenge.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub transaction_context: Option<serde_json::Value>,
    #[serde(default)]
    pub workflow_input: Option<WorkflowInput>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/cross-platform-sessions/handoff`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeHandoff {
    pub handoff_token: String,
}

/// `POST /v1/recoveries`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRecovery {
    pub external_user_id: String,
    #[serde(default)]
    pub workflow_input: Option<WorkflowInput>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/recoveries/exchange`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeContinuation {
    pub continuation: String,
}
