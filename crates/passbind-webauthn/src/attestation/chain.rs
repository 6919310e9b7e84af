//! Attestation trust path verification (L3 §7.1 steps 23-24) at a caller-supplied time.
//!
//! Passbind validates the path itself (a verification time given by the caller, an
//! attestation certificate that is itself the trust anchor allowed as step 24 says, keyUsage
//! checked only where present as RFC 5280 path validation does), with these rules:
//!
//! * the path is x5c (leaf first), completed by one trust anchor; a certificate of the path
//!   that is byte-identical to a trust anchor ends the path successfully;
//! * otherwise each certificate must be signed by the next one (issuer name = subject name
//!   and signature verifies), the last one by a trust anchor;
//! * every issuing certificate other than the anchor must have basicConstraints cA=TRUE,
//!   respect pathLenConstraint, and, if it has keyUsage, keyCertSign;
//! * every certificate on the path, anchor included, must be within its validity period at
//!   the verification time;
//! * signature algorithms: ECDSA with SHA-256/384 (P-256, P-384), ECDSA P-521 with SHA-512,
//!   RSA PKCS#1 v1.5 with SHA-256/384/512 (and SHA-1 when the policy allows SHA-1), Ed25519.

use crate::error::WebauthnError;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use std::time::SystemTime;
use x509_parser::prelude::X509Certificate;

use super::parse_x509;

fn untrusted(m: impl Into<String>) -> WebauthnError {
    WebauthnError::UntrustedAttestation(m.into())
}

fn within_validity(cert: &X509Certificate<'_>, now: i64) -> bool {
    let v = cert.validity();
    v.not_before.timestamp() <= now && now <= v.not_after.timestamp()
}

/// Verifies that `issuer` signed `cert`.
fn signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    allow_sha1: bool,
) -> Result<(), WebauthnError> {
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    let spki = issuer.public_key();
    let key: &[u8] = &spki.subject_public_key.data;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string())
        .unwrap_or_default();
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let sig: &[u8] = &cert.signature_value.data;
    let alg: &'static dyn VerificationAlgorithm = match (sig_oid.as_str(), curve.as_str()) {
        ("1.2.840.10045.4.3.2", "1.2.840.10045.3.1.7") => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", "1.2.840.10045.3.1.7") => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.2", "1.3.132.0.34") => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", "1.3.132.0.34") => &signature::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.10045.4.3.4", "1.3.132.0.35") => {
            use p521::ecdsa::signature::Verifier as _;
            let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|_| untrusted("invalid P-521 issuer key"))?;
            let s = p521::ecdsa::Signature::from_der(sig)
                .map_err(|_| untrusted("invalid certificate signature"))?;
            return vk
                .verify(tbs, &s)
                .map_err(|_| untrusted("certificate signature does not verify"));
        }
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.113549.1.1.5", _) if allow_sha1 => {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        ("1.3.101.112", _) => &signature::ED25519,
        (other, _) => {
            return Err(untrusted(format!(
                "unsupported certificate signature algorithm {other}"
            )))
        }
    };
    UnparsedPublicKey::new(alg, key)
        .verify(tbs, sig)
        .map_err(|_| untrusted("certificate signature does not verify"))
}

fn check_issuing_ca(cert: &X509Certificate<'_>, depth: u32) -> Result<(), WebauthnError> {
    let bc = cert
        .basic_constraints()
        .map_err(|_| untrusted("invalid basicConstraints"))?
        .ok_or_else(|| untrusted("intermediate certificate without basicConstraints"))?;
    if !bc.value.ca {
        return Err(untrusted("intermediate certificate is not a CA"));
    }
    if let Some(max) = bc.value.path_len_constraint {
        if depth > max {
            return Err(untrusted("pathLenConstraint exceeded"));
        }
    }
    if let Some(ku) = cert
        .key_usage()
        .map_err(|_| untrusted("invalid keyUsage"))?
    {
        if !ku.value.key_cert_sign() {
            return Err(untrusted("issuing certificate lacks keyCertSign"));
        }
    }
    Ok(())
}

/// Validates `x5c` (leaf first) against `anchors` at `now`.
pub(crate) fn verify_trust_path(
    x5c: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: SystemTime,
    allow_sha1: bool,
) -> Result<(), WebauthnError> {
    let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => return Err(untrusted("verification time before 1970")),
    };
    let path = x5c
        .iter()
        .map(|d| parse_x509(d).map_err(|_| untrusted("x5c certificate does not parse")))
        .collect::<Result<Vec<_>, _>>()?;
    let roots = anchors
        .iter()
        .filter_map(|d| parse_x509(d).ok().map(|c| (d, c)))
        .collect::<Vec<_>>();
    let mut depth: u32 = 0;
    for (i, cert) in path.iter().enumerate() {
        if !within_validity(cert, now) {
            return Err(untrusted(format!(
                "x5c[{i}] is not valid at the verification time"
            )));
        }
        if i > 0 {
            check_issuing_ca(cert, depth)?;
            depth = depth.saturating_add(1);
        }
        // The certificate is itself a trust anchor.
        if x5c
            .get(i)
            .is_some_and(|der| anchors.iter().any(|a| a == der))
        {
            return Ok(());
        }
        // Signed by a trust anchor?
        let mut anchor_error = None;
        for (_, root) in roots
            .iter()
            .filter(|(_, r)| r.subject().as_raw() == cert.issuer().as_raw())
        {
            match signed_by(cert, root, allow_sha1) {
                Ok(()) if within_validity(root, now) => return Ok(()),
                Ok(()) => {
                    anchor_error = Some(untrusted(
                        "trust anchor is not valid at the verification time",
                    ))
                }
                Err(e) => anchor_error = Some(e),
            }
        }
        // Otherwise the next x5c entry must be its issuer.
        match path.get(i + 1) {
            Some(next) => {
                if next.subject().as_raw() != cert.issuer().as_raw() {
                    return Err(untrusted(format!("x5c[{}] did not issue x5c[{i}]", i + 1)));
                }
                signed_by(cert, next, allow_sha1)?;
            }
            None => {
                return Err(anchor_error.unwrap_or_else(|| {
                    untrusted("attestation chain does not end at a trust root")
                }))
            }
        }
    }
    Err(untrusted("empty attestation chain"))
}
