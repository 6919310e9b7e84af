//! The core's error type. Every variant maps to exactly one stable [`ErrorCode`]; the HTTP
//! layer only renders it.

use crate::model::{Conflict, StoreError};
use crate::ports::{IdvError, RpError};
use passbind_proto::ErrorCode;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("workflow_input.custom_data must not set the reserved key encrypted_biometric_token")]
    ReservedKey,
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("the API key lacks the scope {0}")]
    Forbidden(&'static str),
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has expired")]
    SessionExpired,
    #[error("not allowed in state {state}: {message}")]
    InvalidState {
        state: &'static str,
        message: String,
    },
    #[error("the session changed concurrently; read it again and retry")]
    Conflict,
    #[error("the identity verification did not match")]
    BiometricMismatch,
    #[error("the live capture did not match the enrolled person")]
    RecoveryBiometricMismatch,
    #[error("the identity verification failed: {0}")]
    IdvFailed(&'static str),
    #[error("WebAuthn verification failed: {0}")]
    Webauthn(RpError),
    #[error("this credential is already registered")]
    CredentialExists,
    #[error("no such user")]
    UserNotFound,
    #[error("no such credential")]
    CredentialNotFound,
    #[error("the user has no biometric reference")]
    NoBiometricReference,
    #[error("webhook signature missing or invalid")]
    InvalidSignature,
    #[error("no open session knows this identity-verification run")]
    UnknownIdvRun,
    #[error("identity-verification provider {0} is not configured")]
    UnknownIdvProvider(String),
    #[error("the identity-verification provider is unavailable")]
    IdvUnavailable(String),
    #[error("the handoff token is invalid, used, expired or cancelled")]
    HandoffTokenInvalid,
    #[error("the continuation context is invalid, used or expired")]
    ContinuationInvalid,
    #[error("too many attempts; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("{0}")]
    NotSupported(&'static str),
    /// A fault inside Passbind (database, key ring). The message goes to logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn validation(field: &str, message: &str) -> Self {
        Self::Validation {
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }

    pub fn invalid_state(state: passbind_proto::session::SessionState, message: &str) -> Self {
        Self::InvalidState {
            state: state.as_str(),
            message: message.to_owned(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation { .. } => ErrorCode::ValidationFailed,
            Self::ReservedKey => ErrorCode::ReservedKey,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::SessionNotFound => ErrorCode::SessionNotFound,
            Self::SessionExpired => ErrorCode::SessionExpired,
            Self::InvalidState { .. } => ErrorCode::InvalidState,
            Self::Conflict => ErrorCode::Conflict,
            Self::BiometricMismatch => ErrorCode::BiometricMismatch,
            Self::RecoveryBiometricMismatch => ErrorCode::RecoveryBiometricMismatch,
            Self::IdvFailed(_) => ErrorCode::IdvFailed,
            Self::Webauthn(_) => ErrorCode::WebauthnVerificationFailed,
            Self::CredentialExists => ErrorCode::CredentialExists,
            Self::UserNotFound => ErrorCode::UserNotFound,
            Self::CredentialNotFound => ErrorCode::CredentialNotFound,
            Self::NoBiometricReference => ErrorCode::NoBiometricReference,
            Self::InvalidSignature => ErrorCode::InvalidSignature,
            Self::UnknownIdvRun => ErrorCode::UnknownIdvRun,
            Self::UnknownIdvProvider(_) => ErrorCode::UnknownIdvProvider,
            Self::IdvUnavailable(_) => ErrorCode::IdvUnavailable,
            Self::HandoffTokenInvalid => ErrorCode::HandoffTokenInvalid,
            Self::ContinuationInvalid => ErrorCode::ContinuationInvalid,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::NotSupported(_) => ErrorCode::NotSupported,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message a client sees: never the internals of a fault.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error; nothing was changed".to_owned(),
            Self::IdvUnavailable(_) => {
                "the identity-verification provider is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// Machine-readable details for the envelope.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::Validation { field, .. } => Some(json!({ "field": field })),
            Self::InvalidState { state, .. } => Some(json!({ "state": state })),
            Self::IdvFailed(reason) => Some(json!({ "reason": reason })),
            Self::Webauthn(e) => Some(json!({ "reason": e.reason })),
            Self::Forbidden(scope) => Some(json!({ "required_scope": scope })),
            Self::RateLimited {
                retry_after_seconds,
            } => Some(json!({ "retry_after_seconds": retry_after_seconds })),
            _ => None,
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Conflict::SessionVersion) => Self::Conflict,
            StoreError::Conflict(Conflict::DuplicateCredential) => Self::CredentialExists,
            StoreError::Conflict(Conflict::CounterRegressed) => {
                Self::Webauthn(crate::ports::RpError {
                    reason: "counter_regressed",
                    message: "the signature counter went backwards (possible cloned authenticator)"
                        .to_owned(),
                })
            }
            StoreError::Conflict(c) => Self::Internal(format!("unexpected store conflict: {c}")),
            StoreError::Backend(m) => Self::Internal(m),
        }
    }
}

impl From<IdvError> for CoreError {
    fn from(e: IdvError) -> Self {
        match e {
            IdvError::InvalidSignature => Self::InvalidSignature,
            IdvError::Malformed(m) => Self::Validation {
                field: "body".to_owned(),
                message: m,
            },
            IdvError::Unavailable(m) | IdvError::Rejected(m) => Self::IdvUnavailable(m),
        }
    }
}

impl CoreError {
    /// The error of an outbound call to the provider (starting or reading a run). Unlike an
    /// inbound message, a malformed *answer* is the provider's fault, not the caller's: the
    /// integrator (or the webhook sender, who will retry) sees `idv_unavailable` (502), never a
    /// 4xx that blames its own request.
    pub fn provider_call(e: IdvError) -> Self {
        match e {
            IdvError::Malformed(m) => Self::IdvUnavailable(m),
            other => other.into(),
        }
    }
}

impl From<crate::crypto::CryptoError> for CoreError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Internal(format!("key ring: {e}"))
    }
}
