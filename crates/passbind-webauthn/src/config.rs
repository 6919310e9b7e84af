//! Relying-party configuration and its validation.

use crate::b64;
use crate::error::ConfigError;
use serde::{Deserialize, Serialize};

/// The relying party's user-verification requirement (WebAuthn `UserVerificationRequirement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    /// UV must be performed; registrations and assertions without the UV flag are rejected.
    #[default]
    Required,
    /// UV is requested but not enforced.
    Preferred,
    /// UV is not requested (and not enforced).
    Discouraged,
}

impl UserVerification {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
            UserVerification::Discouraged => "discouraged",
        }
    }
}

/// What `attestation` conveyance the creation options ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationConveyance {
    /// `"none"`: the client may strip attestation (default; privacy-preserving).
    #[default]
    None,
    /// `"direct"`: ask for the authenticator's attestation statement as produced.
    Direct,
}

/// A trust root for attestation certificate chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustRoot {
    /// One or more PEM `CERTIFICATE` blocks.
    Pem(String),
    /// A DER-encoded certificate.
    Der(Vec<u8>),
}

/// Attestation policy: what registrations are accepted beyond a valid signature.
///
/// Every switch below exists because real authenticators or the conformance vectors differ
/// on it (see the vector suite in `tests/vectors/`). Defaults are chosen
/// for a production deployment and documented per field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttestationPolicy {
    /// Conveyance requested in the creation options. Default: [`AttestationConveyance::None`].
    pub conveyance: AttestationConveyance,
    /// Attestation trust roots (root or intermediate CA certificates).
    ///
    /// Empty (default): the attestation statement is verified cryptographically (signature,
    /// certificate requirements, AAGUID extension...) but its certificate chain is not
    /// checked against any root, and `none`/self attestation are accepted.
    /// Non-empty: the attestation chain (x5c) must verify to one of these roots at the
    /// verification time; `none` and self attestation are then rejected as
    /// [`untrusted_attestation`](crate::WebauthnError::UntrustedAttestation).
    pub trust_roots: Vec<TrustRoot>,
    /// Accept `fido-u2f` attestation whose authenticator data carries a non-zero AAGUID.
    ///
    /// The spec's fido-u2f procedure does not look at the AAGUID and real devices and
    /// browsers produce such responses; the FIDO conformance tools reject them.
    /// Default: `true` (follow the spec).
    pub allow_u2f_nonzero_aaguid: bool,
    /// Accept TPM attestation whose AIK certificate names a TPM manufacturer that is not in
    /// the TCG vendor ID registry (e.g. the FIDO conformance tools' `id:FFFFF1D0` or the
    /// synthetic `id:00000000`). The TCG EK credential profile requires a registered vendor.
    /// Default: `false`.
    pub allow_unknown_tpm_manufacturer: bool,
    /// Accept attestation statements signed with SHA-1 (COSE `RS1`, -65535). Windows Hello
    /// TPMs sign their attestation this way, so rejecting it rejects most Windows TPM
    /// attestations. This never allows SHA-1 for credential (assertion) keys, which are
    /// limited to the algorithms offered in pubKeyCredParams.
    /// Default: `true`.
    pub allow_sha1_attestation: bool,
    /// Accept `android-key` attestation whose KeyDescription has neither `origin` nor
    /// `purpose` in either authorization list. §8.4.2 asks that origin be
    /// KM_ORIGIN_GENERATED and purpose KM_PURPOSE_SIGN; real Android Keystore attestations
    /// always carry both (and `allApplications` must be absent regardless), synthetic ones
    /// (the W3C test vectors) may carry neither. When both are present they are always checked.
    /// Default: `false`.
    pub android_key_allow_missing_authorizations: bool,
}

impl Default for AttestationPolicy {
    fn default() -> Self {
        AttestationPolicy {
            conveyance: AttestationConveyance::None,
            trust_roots: Vec::new(),
            allow_u2f_nonzero_aaguid: true,
            allow_unknown_tpm_manufacturer: false,
            allow_sha1_attestation: true,
            android_key_allow_missing_authorizations: false,
        }
    }
}

/// Relying-party configuration, validated by [`RelyingParty::new`](crate::RelyingParty::new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpConfig {
    /// The RP ID: a lower-case domain (e.g. `example.com`) or an IP address / `localhost`
    /// for development.
    pub rp_id: String,
    /// Human-readable RP name shown by authenticators.
    pub rp_name: String,
    /// Accepted `clientDataJSON.origin` values. Each is one of
    /// `https://host[:port]`, `http://localhost[:port]` (or `127.0.0.1`, `[::1]`,
    /// `*.localhost`) for development, or `android:apk-key-hash:<base64url SHA-256>`.
    /// Origins are not required to be within the RP ID: WebAuthn L3 "related origins"
    /// allow other sites to use an RP ID.
    pub origins: Vec<String>,
    /// User-verification requirement for both ceremonies.
    pub user_verification: UserVerification,
    /// Attestation policy.
    #[serde(default)]
    pub attestation: AttestationPolicy,
}

fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => *d == "localhost" || d.ends_with(".localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Validates the RP ID: canonical (lower-case, IDNA-mapped) domain or IP literal.
pub(crate) fn validate_rp_id(rp_id: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::InvalidRpId(rp_id.to_string());
    if rp_id.is_empty() {
        return Err(bad());
    }
    let host = url::Host::parse(rp_id).map_err(|_| bad())?;
    let canonical = host.to_string();
    if canonical != rp_id {
        return Err(bad());
    }
    Ok(())
}

/// Validates and normalises one configured origin into the exact string browsers send.
pub(crate) fn normalise_origin(origin: &str) -> Result<String, ConfigError> {
    let err = |reason: &'static str| ConfigError::InvalidOrigin {
        origin: origin.to_string(),
        reason,
    };
    if let Some(hash) = origin.strip_prefix("android:apk-key-hash:") {
        match b64::decode(hash) {
            Some(bytes) if !bytes.is_empty() => return Ok(origin.to_string()),
            _ => return Err(err("the apk-key-hash is not base64url")),
        }
    }
    let url = url::Url::parse(origin).map_err(|_| err("not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("must not contain user info"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(err("must not contain a path"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("must not contain a query or fragment"));
    }
    let host = url.host().ok_or_else(|| err("missing host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => return Err(err("plain http is only allowed for localhost")),
        _ => return Err(err("scheme must be https (or http for localhost)")),
    }
    Ok(url.origin().ascii_serialization())
}
