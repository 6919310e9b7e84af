//! Registration flow bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Free-form input for the identity-verification workflow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    /// Passed to the provider's workflow as it is. The key `encrypted_biometric_token` is
    /// reserved: a request that sets it is refused with `reserved_key`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A biometric token the integrator already holds for this user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorBiometric {
    pub encrypted_biometric_token: String,
}

/// `POST /v1/registrations`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRegistration {
    /// Opaque, stable, URL-safe (`A-Z a-z 0-9 . _ ~ -`), 1 to 128 characters.
    pub external_user_id: String,
    /// Shown by the authenticator; not stored by Passbind beyond the WebAuthn options.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Run a face-only match against this token instead of a document capture.
    #[serde(default)]
    pub prior_biometric: Option<PriorBiometric>,
    #[serde(default)]
    pub workflow_input: Option<WorkflowInput>,
    /// Session time to live in seconds (default and bounds are server settings).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/registrations/{id}/complete`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRegistration {
    /// Built-in relying-party mode: the `PublicKeyCredential` JSON from
    /// `navigator.credentials.create()` (or the SDK).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
    /// External relying-party mode: the credential id (base64url) that the integrator's
    /// IDP committed.
    #[serde(default)]
    pub credential_id: Option<String>,
    /// A label for the device, shown to operators (no personal data, please).
    #[serde(default)]
    pub device_label: Option<String>,
}
