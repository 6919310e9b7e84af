//! One error envelope for every endpoint: `{"error": {"code", "message", "details"}}`.
//!
//! Codes are stable: clients match on them, so a code is never renamed or reused. Each code has
//! one HTTP status, fixed here so that the server and the SDK agree.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The stable error codes of the Passbind APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a parameter failed validation (`details` names the field).
    ValidationFailed,
    /// The body is not valid JSON, or has the wrong shape or an unknown field.
    MalformedJson,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is larger than the endpoint accepts.
    PayloadTooLarge,
    /// `workflow_input.custom_data` sets the reserved key `encrypted_biometric_token`.
    ReservedKey,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// Missing, malformed, unknown or revoked API key.
    Unauthorized,
    /// The API key is valid but lacks the scope this endpoint needs.
    Forbidden,
    /// No session with this id (or it belongs to another flow).
    SessionNotFound,
    /// The session's time to live has passed.
    SessionExpired,
    /// The request is not allowed in the session's current state (for example completing
    /// before the identity verification passed, or after cancel).
    InvalidState,
    /// Another request changed the session at the same time; retry after reading it again.
    Conflict,
    /// The identity verification did not pass (registration or step-up).
    BiometricMismatch,
    /// The live capture did not match during account recovery.
    RecoveryBiometricMismatch,
    /// The identity verification ended without a clean pass or fail (review, abandoned, error,
    /// or a registration run without a biometric token).
    IdvFailed,
    /// The WebAuthn attestation or assertion did not verify (`details.reason` says why).
    WebauthnVerificationFailed,
    /// This credential id is already registered.
    CredentialExists,
    /// No such user.
    UserNotFound,
    /// No such credential.
    CredentialNotFound,
    /// The user has no stored biometric token, so a biometric match is impossible.
    NoBiometricReference,
    /// An inbound webhook's signature is missing or wrong.
    InvalidSignature,
    /// An inbound webhook names an identity-verification run that no open session knows.
    UnknownIdvRun,
    /// The identity-verification provider named in the path is not configured.
    UnknownIdvProvider,
    /// The identity-verification provider could not be reached or refused the request.
    IdvUnavailable,
    /// The handoff token is unknown, used, expired or cancelled.
    HandoffTokenInvalid,
    /// The continuation context is unknown, used or expired.
    ContinuationInvalid,
    /// Too many requests or failed attempts; `details.retry_after_seconds` says when to retry.
    RateLimited,
    /// This deployment does not offer the requested operation (for example WebAuthn
    /// verification in external relying-party mode).
    NotSupported,
    /// An unexpected fault inside the server; nothing was changed. Retry later.
    Internal,
    /// The server is not ready (for example the database is unreachable).
    Unavailable,
}

impl ErrorCode {
    /// The snake_case wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ReservedKey => "reserved_key",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::SessionNotFound => "session_not_found",
            Self::SessionExpired => "session_expired",
            Self::InvalidState => "invalid_state",
            Self::Conflict => "conflict",
            Self::BiometricMismatch => "biometric_mismatch",
            Self::RecoveryBiometricMismatch => "recovery_biometric_mismatch",
            Self::IdvFailed => "idv_failed",
            Self::WebauthnVerificationFailed => "webauthn_verification_failed",
            Self::CredentialExists => "credential_exists",
            Self::UserNotFound => "user_not_found",
            Self::CredentialNotFound => "credential_not_found",
            Self::NoBiometricReference => "no_biometric_reference",
            Self::InvalidSignature => "invalid_signature",
            Self::UnknownIdvRun => "unknown_idv_run",
            Self::UnknownIdvProvider => "unknown_idv_provider",
            Self::IdvUnavailable => "idv_unavailable",
            Self::HandoffTokenInvalid => "handoff_token_invalid",
            Self::ContinuationInvalid => "continuation_invalid",
            Self::RateLimited => "rate_limited",
            Self::NotSupported => "not_supported",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }

    /// The HTTP status that always accompanies the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::ValidationFailed | Self::MalformedJson | Self::ReservedKey => 400,
            Self::Unauthorized | Self::InvalidSignature => 401,
            Self::Forbidden => 403,
            Self::NotFound
            | Self::SessionNotFound
            | Self::UserNotFound
            | Self::CredentialNotFound
            | Self::UnknownIdvRun
            | Self::UnknownIdvProvider => 404,
            Self::MethodNotAllowed => 405,
            Self::InvalidState | Self::Conflict | Self::CredentialExists => 409,
            Self::SessionExpired | Self::HandoffTokenInvalid | Self::ContinuationInvalid => 410,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::BiometricMismatch
            | Self::RecoveryBiometricMismatch
            | Self::IdvFailed
            | Self::WebauthnVerificationFailed
            | Self::NoBiometricReference => 422,
            Self::RateLimited => 429,
            Self::NotSupported => 501,
            Self::Internal => 500,
            Self::IdvUnavailable => 502,
            Self::Unavailable => 503,
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: &'static [ErrorCode] = &[
        Self::ValidationFailed,
        Self::MalformedJson,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::ReservedKey,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::Forbidden,
        Self::SessionNotFound,
        Self::SessionExpired,
        Self::InvalidState,
        Self::Conflict,
        Self::BiometricMismatch,
        Self::RecoveryBiometricMismatch,
        Self::IdvFailed,
        Self::WebauthnVerificationFailed,
        Self::CredentialExists,
        Self::UserNotFound,
        Self::CredentialNotFound,
        Self::NoBiometricReference,
        Self::InvalidSignature,
        Self::UnknownIdvRun,
        Self::UnknownIdvProvider,
        Self::IdvUnavailable,
        Self::HandoffTokenInvalid,
        Self::ContinuationInvalid,
        Self::RateLimited,
        Self::NotSupported,
        Self::Internal,
        Self::Unavailable,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of the error envelope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// A human-readable sentence; may change between releases, unlike `code`.
    pub message: String,
    /// Machine-readable context (for example the failing field); never secrets or personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wire_names_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            let status = code.http_status();
            assert!((400..600).contains(&status));
        }
    }

    #[test]
    fn only_internal_faults_are_5xx_except_upstream_and_readiness() {
        for code in ErrorCode::ALL {
            if code.http_status() >= 500 {
                assert!(matches!(
                    code,
                    ErrorCode::Internal
                        | ErrorCode::IdvUnavailable
                        | ErrorCode::Unavailable
                        | ErrorCode::NotSupported
                ));
            }
        }
    }
}
