//! Error types.

/// Why a WebAuthn ceremony (or a stored key) was rejected.
///
/// Every variant has a stable snake_case [`code`](WebauthnError::code) that callers may put
/// in API responses, logs and metrics; the `Display` text is for humans and may change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebauthnError {
    /// The response JSON, a base64 field, the CBOR, the client data or the authenticator
    /// data could not be parsed, or is structurally invalid.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// `clientDataJSON.type` is not the one this ceremony expects.
    #[error("client data type is {found:?}, expected {expected:?}")]
    ClientDataTypeMismatch {
        /// The expected type (`webauthn.create` or `webauthn.get`).
        expected: &'static str,
        /// What the client sent.
        found: String,
    },
    /// `clientDataJSON.challenge` is not the challenge the server issued.
    #[error("challenge mismatch")]
    ChallengeMismatch,
    /// `clientDataJSON.origin` is not one of the configured origins.
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    /// The client reported a cross-origin (iframe) ceremony, which Passbind does not accept.
    #[error("cross-origin ceremonies are not allowed")]
    CrossOriginNotAllowed,
    /// The rpIdHash in the authenticator data is not SHA-256 of the configured RP ID.
    #[error("rpIdHash does not match the RP ID")]
    RpIdMismatch,
    /// The User Present flag is not set.
    #[error("user presence flag not set")]
    UserNotPresent,
    /// User verification was required and the User Verified flag is not set.
    #[error("user verification required but not performed")]
    UserVerificationRequired,
    /// The Backup State flag is set without the Backup Eligible flag.
    #[error("backup state set without backup eligibility")]
    InvalidBackupFlags,
    /// The asserted credential ID is not the stored credential's ID.
    #[error("credential id mismatch")]
    CredentialIdMismatch,
    /// The signature does not verify under the credential public key.
    #[error("signature verification failed")]
    BadSignature,
    /// The COSE key or algorithm is not one this crate can verify.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The COSE public key is malformed or inconsistent (wrong sizes, curve/alg mismatch...).
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The new credential uses an algorithm that was not offered in pubKeyCredParams.
    #[error("credential algorithm {0} was not requested")]
    AlgorithmNotAllowed(i64),
    /// The new credential is in the exclude list of the registration.
    #[error("credential is excluded")]
    CredentialExcluded,
    /// The attestation statement format is unknown or unsupported.
    #[error("unsupported attestation format {0:?}")]
    UnsupportedAttestationFormat(String),
    /// The attestation statement does not verify (bad signature, certificate requirements,
    /// AAGUID extension mismatch, nonce mismatch, policy violation...).
    #[error("attestation invalid: {0}")]
    AttestationInvalid(String),
    /// Trust roots are configured and the attestation does not chain to one of them
    /// (or is self/none attestation, which cannot).
    #[error("untrusted attestation: {0}")]
    UntrustedAttestation(String),
    /// The persisted registration state could not be used.
    #[error("invalid registration state: {0}")]
    InvalidState(String),
    /// The caller passed an invalid argument (e.g. an empty or over-long user handle).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl WebauthnError {
    /// Stable machine-readable code (snake_case) for this error.
    pub fn code(&self) -> &'static str {
        match self {
            WebauthnError::MalformedResponse(_) => "malformed_response",
            WebauthnError::ClientDataTypeMismatch { .. } => "client_data_type_mismatch",
            WebauthnError::ChallengeMismatch => "challenge_mismatch",
            WebauthnError::OriginNotAllowed(_) => "origin_not_allowed",
            WebauthnError::CrossOriginNotAllowed => "cross_origin_not_allowed",
            WebauthnError::RpIdMismatch => "rp_id_mismatch",
            WebauthnError::UserNotPresent => "user_not_present",
            WebauthnError::UserVerificationRequired => "user_verification_required",
            WebauthnError::InvalidBackupFlags => "invalid_backup_flags",
            WebauthnError::CredentialIdMismatch => "credential_id_mismatch",
            WebauthnError::BadSignature => "bad_signature",
            WebauthnError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            WebauthnError::InvalidPublicKey(_) => "invalid_public_key",
            WebauthnError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            WebauthnError::CredentialExcluded => "credential_excluded",
            WebauthnError::UnsupportedAttestationFormat(_) => "unsupported_attestation_format",
            WebauthnError::AttestationInvalid(_) => "attestation_invalid",
            WebauthnError::UntrustedAttestation(_) => "untrusted_attestation",
            WebauthnError::InvalidState(_) => "invalid_state",
            WebauthnError::InvalidInput(_) => "invalid_input",
        }
    }

    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        WebauthnError::MalformedResponse(msg.into())
    }

    pub(crate) fn attestation(msg: impl Into<String>) -> Self {
        WebauthnError::AttestationInvalid(msg.into())
    }
}

/// Why an [`RpConfig`](crate::RpConfig) was rejected by [`RelyingParty::new`](crate::RelyingParty::new).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The RP ID is empty or not a valid domain / IP address in canonical (lower-case) form.
    #[error("invalid rp_id {0:?}: must be a lower-case domain name or IP address")]
    InvalidRpId(String),
    /// The RP name is empty.
    #[error("rp_name must not be empty")]
    EmptyRpName,
    /// No origin is configured.
    #[error("at least one origin is required")]
    NoOrigins,
    /// An origin is not `https://host[:port]`, `http://localhost[:port]` (or another loopback
    /// host) or `android:apk-key-hash:<base64url>`.
    #[error("invalid origin {origin:?}: {reason}")]
    InvalidOrigin {
        /// The configured value.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A trust root could not be parsed as an X.509 certificate.
    #[error("trust root #{index} is not a valid X.509 certificate: {reason}")]
    InvalidTrustRoot {
        /// Index in [`AttestationPolicy::trust_roots`](crate::AttestationPolicy::trust_roots).
        index: usize,
        /// Parser message.
        reason: String,
    },
}
