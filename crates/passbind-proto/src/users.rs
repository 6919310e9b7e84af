//! Users and their credentials.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialView {
    pub credential_id: String,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aaguid: Option<String>,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub transports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_label: Option<String>,
    pub sign_count: i64,
}

/// `GET /v1/users/{external_user_id}`: never the biometric token itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub external_user_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// Whether Passbind holds an encrypted biometric token for this user.
    pub has_biometric_reference: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
    pub credentials: Vec<CredentialView>,
}
