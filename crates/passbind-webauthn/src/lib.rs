//! # passbind-webauthn
//!
//! Passbind's WebAuthn relying party: WebAuthn L3 §7.1 and §7.2 step by step, and the L3 §8
//! attestation statement formats. Synchronous, no I/O: time (for attestation certificate
//! validity) and challenges come from the caller. The cryptography and the parsers under it
//! are well-kept crates: `ring` (signatures, digests), `x509-parser` (certificates),
//! `ciborium` (CBOR).
//!
//! * **Registration** ([`RelyingParty::creation_options`], [`RelyingParty::verify_registration`])
//!   verifies every step and every attestation format here (module `attestation`), against
//!   the public vector suite and mutations of it (`tests/vectors.rs`). One path for all
//!   formats: an earlier version sent most statements through webauthn-rs-core 0.6, which
//!   accepted a relabelled `none` statement and an `alg` of another key family. The
//!   certificate trust path is validated at a caller-supplied time.
//! * **Authentication** ([`RelyingParty::verify_assertion`]) is the hot path of routine sign-in
//!   and is implemented here, step by step after WebAuthn L3 §7.2, on `ring`, with the
//!   credential key parsed once ([`PublicKey::from_cose`]).
//!
//! Nothing in this crate panics on malformed input: every parser returns a
//! [`WebauthnError`] with a stable [`code`](WebauthnError::code).

mod assertion;
mod attestation;
mod authdata;
mod b64;
pub mod bench;
mod client_data;
mod config;
mod cose;
mod error;
mod registration;

pub use assertion::{AssertionOutcome, AssertionResponse, CounterCheck, StoredCredential};
pub use config::{AttestationConveyance, AttestationPolicy, RpConfig, TrustRoot, UserVerification};
pub use cose::{alg, PublicKey, SUPPORTED_ALGORITHMS};
pub use error::{ConfigError, WebauthnError};
pub use registration::{RegistrationChallenge, VerifiedCredential, OFFERED_ALGORITHMS};

/// Ceremony timeout advertised in the options (milliseconds).
const DEFAULT_TIMEOUT_MS: u32 = 300_000;

/// A configured relying party. Cheap to share (`Arc`) across threads; all methods take `&self`.
pub struct RelyingParty {
    config: RpConfig,
    /// Normalised origins (exactly as browsers serialise them).
    origins: Vec<String>,
    rp_id_hash: [u8; 32],
    /// DER trust anchors (None = no trust-path verification).
    trust_roots: Option<Vec<Vec<u8>>>,
    timeout_ms: u32,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("rp_id", &self.config.rp_id)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

fn pem_blocks(pem: &str) -> Option<Vec<Vec<u8>>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body_and_more = rest.get(start + BEGIN.len()..)?;
        let end = body_and_more.find(END)?;
        let body: String = body_and_more
            .get(..end)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push(b64::decode(&body)?);
        rest = body_and_more.get(end + END.len()..)?;
    }
    Some(out)
}

fn build_trust_roots(roots: &[TrustRoot]) -> Result<Option<Vec<Vec<u8>>>, ConfigError> {
    if roots.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (index, root) in roots.iter().enumerate() {
        let bad = |reason: &str| ConfigError::InvalidTrustRoot {
            index,
            reason: reason.to_string(),
        };
        let ders = match root {
            TrustRoot::Pem(p) => pem_blocks(p).ok_or_else(|| bad("invalid PEM"))?,
            TrustRoot::Der(d) => vec![d.clone()],
        };
        if ders.is_empty() {
            return Err(bad("no PEM CERTIFICATE block"));
        }
        for der in ders {
            attestation::parse_x509(&der).map_err(|_| bad("not a DER X.509 certificate"))?;
            out.push(der);
        }
    }
    Ok(Some(out))
}

impl RelyingParty {
    /// Validates the configuration and builds the relying party.
    pub fn new(config: RpConfig) -> Result<RelyingParty, ConfigError> {
        config::validate_rp_id(&config.rp_id)?;
        if config.rp_name.trim().is_empty() {
            return Err(ConfigError::EmptyRpName);
        }
        if config.origins.is_empty() {
            return Err(ConfigError::NoOrigins);
        }
        let origins = config
            .origins
            .iter()
            .map(|o| config::normalise_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        let trust_roots = build_trust_roots(&config.attestation.trust_roots)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, config.rp_id.as_bytes());
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(digest.as_ref());
        Ok(RelyingParty {
            config,
            origins,
            rp_id_hash,
            trust_roots,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &RpConfig {
        &self.config
    }

    pub(crate) fn uv_required(&self) -> bool {
        self.config.user_verification == UserVerification::Required
    }

    /// §13.4.9: the client's origin must be one of the configured origins. Browsers send the
    /// serialised origin, so an exact match is the fast path; a URL-normalised comparison
    /// catches harmless variants (default port, trailing slash, upper-case host).
    /// L3 §7.1 step 9, §7.2 step 12: `C.origin` is exactly one of the configured origins
    /// (normalised at configuration to the serialisation browsers send, RFC 6454: no path, no
    /// trailing slash, no default port). Nothing is normalised on the way in: an origin with a
    /// path or a trailing slash is not an origin.
    pub(crate) fn check_origin(&self, origin: &str) -> Result<(), WebauthnError> {
        if self.origins.iter().any(|o| o == origin) {
            return Ok(());
        }
        Err(WebauthnError::OriginNotAllowed(origin.to_string()))
    }

    /// Builds `PublicKeyCredentialRequestOptions` as `{"publicKey": {...}}`.
    ///
    /// `allow_credentials` lists (credential ID, transports); an empty list asks for a
    /// discoverable credential (usernameless sign-in).
    pub fn request_options(
        &self,
        challenge: [u8; 32],
        allow_credentials: &[(Vec<u8>, Vec<String>)],
    ) -> serde_json::Value {
        let allow: Vec<serde_json::Value> = allow_credentials
            .iter()
            .map(|(id, transports)| {
                let mut d = serde_json::json!({"type": "public-key", "id": b64::encode(id)});
                if !transports.is_empty() {
                    d["transports"] = serde_json::json!(transports);
                }
                d
            })
            .collect();
        serde_json::json!({
            "publicKey": {
                "challenge": b64::encode(&challenge),
                "timeout": self.timeout_ms,
                "rpId": self.config.rp_id,
                "allowCredentials": allow,
                "userVerification": self.config.user_verification.as_str(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn cfg(origins: &[&str]) -> RpConfig {
        RpConfig {
            rp_id: "example.com".into(),
            rp_name: "Example".into(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            user_verification: UserVerification::Preferred,
            attestation: AttestationPolicy::default(),
        }
    }

    #[test]
    fn thread_safety() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RelyingParty>();
        send_sync::<PublicKey>();
        send_sync::<StoredCredential>();
        send_sync::<RegistrationChallenge>();
        send_sync::<AssertionResponse>();
        send_sync::<WebauthnError>();
    }

    #[test]
    fn config_validation() {
        assert!(RelyingParty::new(cfg(&["https://example.com"])).is_ok());
        assert!(RelyingParty::new(cfg(&["https://login.example.com:8443/"])).is_ok());
        assert!(RelyingParty::new(cfg(&["http://localhost:3000"])).is_ok());
        assert!(RelyingParty::new(cfg(&["http://127.0.0.1:3000"])).is_ok());
        assert!(RelyingParty::new(cfg(&[
            "android:apk-key-hash:gx7sq_pxhxhrIQdLyfG0pxKwiJ7hOk2DJQ4xvKd438Q"
        ]))
        .is_ok());
        assert!(matches!(
            RelyingParty::new(cfg(&["http://example.com"])),
            Err(ConfigError::InvalidOrigin { .. })
        ));
        assert!(matches!(
            RelyingParty::new(cfg(&["https://example.com/path"])),
            Err(ConfigError::InvalidOrigin { .. })
        ));
        assert!(matches!(
            RelyingParty::new(cfg(&["ftp://example.com"])),
            Err(ConfigError::InvalidOrigin { .. })
        ));
        assert!(matches!(
            RelyingParty::new(cfg(&[])),
            Err(ConfigError::NoOrigins)
        ));
        let mut c = cfg(&["https://example.com"]);
        c.rp_id = "Example.com".into();
        assert!(matches!(
            RelyingParty::new(c),
            Err(ConfigError::InvalidRpId(_))
        ));
        let mut c = cfg(&["https://example.com"]);
        c.rp_id = "https://example.com".into();
        assert!(matches!(
            RelyingParty::new(c),
            Err(ConfigError::InvalidRpId(_))
        ));
        let mut c = cfg(&["https://example.com"]);
        c.attestation.trust_roots = vec![TrustRoot::Pem("garbage".into())];
        assert!(matches!(
            RelyingParty::new(c),
            Err(ConfigError::InvalidTrustRoot { .. })
        ));
    }

    #[test]
    fn origin_matching() {
        let rp = RelyingParty::new(cfg(&["https://example.com", "http://localhost:8080"])).unwrap();
        assert!(rp.check_origin("https://example.com").is_ok());
        assert!(rp.check_origin("http://localhost:8080").is_ok());
        // Exactly the serialisation browsers send (RFC 6454): nothing is normalised.
        assert!(rp.check_origin("https://example.com/").is_err());
        assert!(rp.check_origin("https://example.com:443").is_err());
        assert!(rp.check_origin("https://EXAMPLE.com").is_err());
        assert!(rp.check_origin("http://localhost:8080/").is_err());
        assert!(rp.check_origin("https://evil.example.com").is_err());
        assert!(rp.check_origin("https://example.com.evil").is_err());
        assert!(rp.check_origin("http://example.com").is_err());
        assert!(rp.check_origin("https://example.com/x").is_err());
        assert!(rp.check_origin("").is_err());
    }

    #[test]
    fn options_shape() {
        let rp = RelyingParty::new(cfg(&["https://example.com"])).unwrap();
        let (opts, state) = rp
            .creation_options(b"user-1", "alice", "Alice", [7u8; 32], &[vec![1, 2, 3]])
            .unwrap();
        let pk = &opts["publicKey"];
        assert_eq!(pk["rp"]["id"], "example.com");
        assert_eq!(pk["challenge"], b64::encode(&[7u8; 32]));
        assert_eq!(pk["excludeCredentials"][0]["id"], "AQID");
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "preferred");
        let algs: Vec<i64> = pk["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["alg"].as_i64().unwrap())
            .collect();
        assert_eq!(algs, vec![-7, -8, -35, -257]);
        assert_eq!(state.challenge(), vec![7u8; 32]);
        // The state survives a serde round trip.
        let json = serde_json::to_string(&state).unwrap();
        let back: RegistrationChallenge = serde_json::from_str(&json).unwrap();
        assert_eq!(back.challenge(), vec![7u8; 32]);

        assert_eq!(
            rp.creation_options(b"", "a", "A", [0u8; 32], &[])
                .unwrap_err()
                .code(),
            "invalid_input"
        );
        assert_eq!(
            rp.creation_options(&[1u8; 65], "a", "A", [0u8; 32], &[])
                .unwrap_err()
                .code(),
            "invalid_input"
        );
        let req = rp.request_options([9u8; 32], &[]);
        assert_eq!(req["publicKey"]["allowCredentials"], serde_json::json!([]));
        assert_eq!(req["publicKey"]["rpId"], "example.com");
    }
}
