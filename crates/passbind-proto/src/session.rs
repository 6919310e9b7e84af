//! The session view shared by every flow.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which of the five flows a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    Registration,
    StepUp,
    CrossPlatform,
    Recovery,
    Authentication,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::StepUp => "step_up",
            Self::CrossPlatform => "cross_platform",
            Self::Recovery => "recovery",
            Self::Authentication => "authentication",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "registration" => Self::Registration,
            "step_up" => Self::StepUp,
            "cross_platform" => Self::CrossPlatform,
            "recovery" => Self::Recovery,
            "authentication" => Self::Authentication,
            _ => return None,
        })
    }
}

/// The states of a session. See `docs/flows.md` for the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Opened; no identity-verification run yet.
    Created,
    /// Waiting for the identity-verification verdict.
    IdvPending,
    /// The identity verification passed: the session may be completed.
    IdvPassed,
    /// The last live capture did not match; a new capture may be started (step-up flows) until
    /// the attempt limit is reached.
    CaptureFailed,
    /// The identity verification failed: the session can only be read.
    IdvFailed,
    /// Completed: the credential is bound (registration) or the action approved.
    Completed,
    /// Cancelled by the integrator.
    Cancelled,
    /// The time to live passed before completion.
    Expired,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::IdvPending => "idv_pending",
            Self::IdvPassed => "idv_passed",
            Self::CaptureFailed => "capture_failed",
            Self::IdvFailed => "idv_failed",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => Self::Created,
            "idv_pending" => Self::IdvPending,
            "idv_passed" => Self::IdvPassed,
            "capture_failed" => Self::CaptureFailed,
            "idv_failed" => Self::IdvFailed,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    /// A terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::IdvFailed | Self::Completed | Self::Cancelled | Self::Expired
        )
    }
}

/// Why an identity verification did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdvFailureReason {
    /// The provider declined: the live face did not match, or the document was refused.
    Declined,
    /// The run ended in manual review, which Passbind treats as a failure.
    Review,
    /// The applicant abandoned the run.
    Abandoned,
    /// The provider reported an error.
    Error,
    /// A registration run for a new user was approved without a biometric token.
    MissingBiometricToken,
    /// The run ended in a status Passbind does not know.
    UnknownStatus,
}

impl IdvFailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declined => "declined",
            Self::Review => "review",
            Self::Abandoned => "abandoned",
            Self::Error => "error",
            Self::MissingBiometricToken => "missing_biometric_token",
            Self::UnknownStatus => "unknown_status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "declined" => Self::Declined,
            "review" => Self::Review,
            "abandoned" => Self::Abandoned,
            "error" => Self::Error,
            "missing_biometric_token" => Self::MissingBiometricToken,
            "unknown_status" => Self::UnknownStatus,
            _ => return None,
        })
    }
}

/// The identity-verification part of a session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdvView {
    /// The provider that runs the verification (`simulator`, `onfido`, ...).
    pub provider: String,
    /// The provider's run id.
    pub run_id: String,
    /// The token the device SDK needs to run the capture. Returned only when the session is
    /// opened; never stored by Passbind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_token: Option<String>,
    /// Where the device sends its capture, for providers whose SDK needs to be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_url: Option<String>,
    /// `pending`, `passed` or `failed`.
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<IdvFailureReason>,
    /// Whether the run was a face-only match against an existing biometric token.
    pub face_only: bool,
}

/// A session of any flow, as the Core API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub flow: Flow,
    pub state: SessionState,
    pub external_user_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idv: Option<IdvView>,
    /// WebAuthn options for the device (built-in relying-party mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub webauthn: Option<serde_json::Value>,
    /// The credential bound by a completed registration, or that signed a completed
    /// authentication or step-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Step-up flows: hex SHA-256 of the transaction context in RFC 8785 canonical JSON (keys
    /// sorted, no whitespace, numbers as JavaScript writes them: `250.0` is `250`). The WebAuthn
    /// challenge is `SHA-256("passbind/step-up/v1" 0x00 nonce transaction_context_hash)`, so
    /// the signed assertion commits to the approved transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_context_hash: Option<String>,
    /// Step-up flows: live captures that did not match so far, and the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captures: Option<CaptureCount>,
    /// Cross-platform sessions: the status the browser side polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CrossPlatformStatus>,
    /// Cross-platform sessions: the handoff token and its delivery forms. Returned only when
    /// the session is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<HandoffView>,
    /// Recovery: the continuation context, returned only when it is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<ContinuationView>,
    /// Completed sign-ins and step-ups: what the assertion showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<AssertionView>,
    /// Incremented by every change; pass it back as `since_version` to long-poll.
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaptureCount {
    pub failed: u32,
    pub max: u32,
}

/// What the browser side of a cross-platform step-up sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CrossPlatformStatus {
    /// The handoff token is waiting to be used on the phone.
    Created,
    /// The phone took the handoff; the live capture is under way.
    HandedOff,
    /// The face matched; waiting for the passkey assertion.
    Verifying,
    Completed,
    Failed,
    Expired,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HandoffView {
    /// Single use, at least 128 bits, stored hashed.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The token as a deep link for the enrolled phone.
    pub deep_link: String,
    /// The deep link as a QR code (SVG document).
    pub qr_svg: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContinuationView {
    /// Single use, at least 128 bits, stored hashed.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssertionView {
    pub user_verified: bool,
    pub backed_up: bool,
    /// `advanced`, `not_supported` (the authenticator keeps no counter) or `regressed`
    /// (possible clone: reported, and refused when the server is set to).
    pub counter: String,
}
