//! What a session keeps between its requests (its `data` column), for every flow. Only
//! derived values and state are kept: never a biometric token in clear, never a transaction
//! context (only its hash), never personal data.

use crate::error::CoreError;
use crate::model::SessionRecord;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct SessionData {
    /// `passed` or `failed` once the verdict is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idv_verdict: Option<String>,
    /// Registration: a face-only match against an existing token.
    #[serde(default)]
    pub face_only: bool,
    /// Registration: a supplied prior token, sealed, stored on a pass if the user has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_token_sealed: Option<String>,
    /// The options handed to the device (creation or request options).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn_options: Option<serde_json::Value>,
    /// Registration and recovery: relying-party state between options and attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn_state: Option<serde_json::Value>,
    /// Assertion flows: the challenge (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// Step-up flows: hex SHA-256 of the canonical transaction context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// Step-up flows: captures that did not match, and the limit.
    #[serde(default)]
    pub failed_captures: u32,
    #[serde(default)]
    pub max_captures: u32,
    /// Cross-platform: when the handoff token expires (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_expires_at: Option<i64>,
    /// Recovery: the continuation context was issued / exchanged.
    #[serde(default)]
    pub continuation_issued: bool,
    #[serde(default)]
    pub continuation_exchanged: bool,
    /// Completed assertion flows: what the assertion showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<passbind_proto::session::AssertionView>,
}

impl SessionData {
    pub fn of(s: &SessionRecord) -> Result<Self, CoreError> {
        serde_json::from_value(s.data.clone())
            .map_err(|e| CoreError::Internal(format!("session data: {e}")))
    }

    pub fn to_value(&self) -> Result<serde_json::Value, CoreError> {
        serde_json::to_value(self).map_err(|e| CoreError::Internal(format!("session data: {e}")))
    }
}
