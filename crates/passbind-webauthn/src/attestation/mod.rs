//! The attestation statement verifiers (WebAuthn L3 §8) and trust-path validation.
//!
//! Every format has a verifier here (`none`, `packed`, `tpm`, `android-key`, `fido-u2f`,
//! `apple`; not `android-safetynet`), each following its L3 §8 verification procedure with
//! signatures on `ring` (P-521 on `p521`), checked against the public vector suite and
//! mutations of its cases (`tests/vectors.rs`). Trust paths are validated by `chain`.
//!
//! An earlier version verified most statements with webauthn-rs-core 0.6.2 and only its gaps
//! here (TPM, EdDSA and most RSA keys, ES512 self attestation, a non-dictionary legacy
//! `tokenBinding`, packed certificates without basicConstraints, android-key without
//! origin/purpose); one path for every format is simpler to reason about and stricter.

mod android_key;
mod chain;
mod der;
mod tpm;

use crate::authdata::AttestedCredential;
use crate::config::AttestationPolicy;
use crate::cose::{alg, PublicKey};
use crate::error::WebauthnError;
use ciborium::value::Value;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::{FromDer as _, X509Certificate};

pub(crate) use android_key::verify_android_key;
pub(crate) use chain::verify_trust_path;
pub(crate) use tpm::verify_tpm;

/// The attestation type and trust path a verifier established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttestationKind {
    /// `none` attestation.
    None,
    /// Self attestation (signed with the credential key).
    SelfAttestation,
    /// Basic attestation with this x5c chain (DER, leaf first).
    Basic(Vec<Vec<u8>>),
    /// Attestation CA (TPM) with this x5c chain.
    AttCa(Vec<Vec<u8>>),
}

/// Inputs of an attestation statement verification procedure (L3 §8.x "Verification procedure").
pub(crate) struct Ctx<'a> {
    pub auth_data: &'a [u8],
    pub client_data_hash: &'a [u8],
    pub att_stmt: &'a Value,
    pub credential: &'a AttestedCredential<'a>,
    pub key: &'a PublicKey,
    pub policy: &'a AttestationPolicy,
}

impl Ctx<'_> {
    /// authenticatorData || clientDataHash.
    pub fn to_be_signed(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.auth_data.len() + self.client_data_hash.len());
        v.extend_from_slice(self.auth_data);
        v.extend_from_slice(self.client_data_hash);
        v
    }
}

/// Looks up a text key of the attestation statement map (duplicates rejected).
pub(crate) fn stmt_get<'a>(stmt: &'a Value, key: &str) -> Result<Option<&'a Value>, WebauthnError> {
    let map = match stmt {
        Value::Map(m) => m,
        _ => return Err(WebauthnError::attestation("attStmt is not a map")),
    };
    let mut found = None;
    for (k, v) in map {
        if matches!(k, Value::Text(t) if t == key) {
            if found.is_some() {
                return Err(WebauthnError::attestation("duplicate attStmt key"));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

pub(crate) fn stmt_alg(stmt: &Value) -> Result<i64, WebauthnError> {
    match stmt_get(stmt, "alg")? {
        Some(Value::Integer(i)) => {
            i64::try_from(i128::from(*i)).map_err(|_| WebauthnError::attestation("bad alg"))
        }
        _ => Err(WebauthnError::attestation(
            "attStmt.alg missing or not an integer",
        )),
    }
}

pub(crate) fn stmt_bytes<'a>(stmt: &'a Value, key: &str) -> Result<&'a [u8], WebauthnError> {
    match stmt_get(stmt, key)? {
        Some(Value::Bytes(b)) => Ok(b),
        _ => Err(WebauthnError::attestation(format!(
            "attStmt.{key} missing or not bytes"
        ))),
    }
}

/// `x5c`, if present: a non-empty array of DER certificates.
pub(crate) fn stmt_x5c(stmt: &Value) -> Result<Option<Vec<Vec<u8>>>, WebauthnError> {
    match stmt_get(stmt, "x5c")? {
        None => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err(WebauthnError::attestation("x5c entry is not bytes")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(WebauthnError::attestation("x5c is not a non-empty array")),
    }
}

pub(crate) fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, WebauthnError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(WebauthnError::attestation(
            "x5c certificate is not valid DER X.509",
        )),
    }
}

const OID_FIDO_GEN_CE_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

/// If the certificate has id-fido-gen-ce-aaguid, it must equal the AAGUID in authData
/// (and, when `must_not_be_critical`, must not be marked critical, as §8.2.1 requires).
pub(crate) fn check_aaguid_extension(
    cert: &X509Certificate<'_>,
    aaguid: &[u8; 16],
    must_not_be_critical: bool,
) -> Result<(), WebauthnError> {
    for ext in cert.extensions() {
        if ext.oid.to_id_string() != OID_FIDO_GEN_CE_AAGUID {
            continue;
        }
        if must_not_be_critical && ext.critical {
            return Err(WebauthnError::attestation(
                "id-fido-gen-ce-aaguid must not be critical",
            ));
        }
        // extnValue contains an OCTET STRING holding the 16-byte AAGUID.
        let inner = der::read_tlv(ext.value)
            .filter(|(t, rest)| t.class == 0 && t.tag == 4 && rest.is_empty())
            .map(|(t, _)| t.value);
        if inner != Some(aaguid.as_slice()) {
            return Err(WebauthnError::attestation(
                "id-fido-gen-ce-aaguid does not match the AAGUID in authenticator data",
            ));
        }
    }
    Ok(())
}

/// §8.2.1 packed attestation statement certificate requirements.
///
/// §8.2.1 packed attestation statement certificate requirements. An absent
/// basicConstraints extension is accepted: RFC 5280 defines its absence as "not a CA", which
/// is what the requirement ("CA component set to false") asks for.
fn check_packed_cert(cert: &X509Certificate<'_>) -> Result<(), WebauthnError> {
    let fail = |m: &str| WebauthnError::attestation(format!("packed attestation certificate: {m}"));
    if cert.version().0 != 2 {
        return Err(fail("version is not 3"));
    }
    let subject = cert.subject();
    if subject.iter_country().next().is_none()
        || subject.iter_organization().next().is_none()
        || subject.iter_common_name().next().is_none()
    {
        return Err(fail("subject lacks C, O or CN"));
    }
    let mut ou = subject.iter_organizational_unit().peekable();
    if ou.peek().is_none() {
        return Err(fail("subject lacks OU"));
    }
    if !ou.all(|a| a.as_str().ok() == Some("Authenticator Attestation")) {
        return Err(fail("subject OU is not \"Authenticator Attestation\""));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Err(fail("basicConstraints CA is true")),
        Ok(_) => Ok(()),
        Err(_) => Err(fail("invalid basicConstraints")),
    }
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_ED25519: &str = "1.3.101.112";

/// Verifies `sig` over `data` with the subject public key of `cert`, using COSE `alg`
/// (the `alg` of the attestation statement). SHA-1 (RS1) only when the policy allows it.
pub(crate) fn verify_with_cert(
    cert: &X509Certificate<'_>,
    alg_id: i64,
    data: &[u8],
    sig: &[u8],
    policy: &AttestationPolicy,
) -> Result<(), WebauthnError> {
    let spki = cert.public_key();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let key_bytes: &[u8] = &spki.subject_public_key.data;
    let unsupported = || {
        WebauthnError::UnsupportedAlgorithm(format!(
            "attestation alg {alg_id} with certificate key {key_oid}"
        ))
    };
    let ring_alg: &'static dyn VerificationAlgorithm = match key_oid.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match (curve.as_str(), alg_id) {
                (OID_P256, alg::ES256) => &signature::ECDSA_P256_SHA256_ASN1,
                (OID_P256, alg::ES384) => &signature::ECDSA_P256_SHA384_ASN1,
                (OID_P384, alg::ES256) => &signature::ECDSA_P384_SHA256_ASN1,
                (OID_P384, alg::ES384) => &signature::ECDSA_P384_SHA384_ASN1,
                (OID_P521, alg::ES512) => {
                    use p521::ecdsa::signature::Verifier as _;
                    let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                        .map_err(|_| WebauthnError::attestation("bad P-521 certificate key"))?;
                    let s = p521::ecdsa::Signature::from_der(sig)
                        .map_err(|_| WebauthnError::attestation("attestation signature invalid"))?;
                    return vk
                        .verify(data, &s)
                        .map_err(|_| WebauthnError::attestation("attestation signature invalid"));
                }
                _ => return Err(unsupported()),
            }
        }
        OID_RSA | OID_RSA_PSS => match alg_id {
            alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            alg::RS1 if policy.allow_sha1_attestation => {
                &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            alg::RS1 => {
                return Err(WebauthnError::attestation(
                    "SHA-1 attestation signatures are not allowed by policy",
                ))
            }
            _ => return Err(unsupported()),
        },
        OID_ED25519 if alg_id == alg::EDDSA || alg_id == alg::ED25519 => &signature::ED25519,
        _ => return Err(unsupported()),
    };
    UnparsedPublicKey::new(ring_alg, key_bytes)
        .verify(data, sig)
        .map_err(|_| WebauthnError::attestation("attestation signature invalid"))
}

/// `none` (L3 §8.7): attStmt must be an empty map.
pub(crate) fn verify_none(ctx: &Ctx<'_>) -> Result<AttestationKind, WebauthnError> {
    match ctx.att_stmt {
        Value::Map(m) if m.is_empty() => Ok(AttestationKind::None),
        _ => Err(WebauthnError::attestation(
            "none attestation with a non-empty attStmt",
        )),
    }
}

/// `packed` (L3 §8.2.2 verification procedure).
pub(crate) fn verify_packed(ctx: &Ctx<'_>) -> Result<AttestationKind, WebauthnError> {
    // 1. attStmt is valid CBOR with the expected syntax.
    let alg_id = stmt_alg(ctx.att_stmt)?;
    let sig = stmt_bytes(ctx.att_stmt, "sig")?;
    if stmt_get(ctx.att_stmt, "ecdaaKeyId")?.is_some() {
        return Err(WebauthnError::UnsupportedAttestationFormat(
            "packed ECDAA".into(),
        ));
    }
    let data = ctx.to_be_signed();
    match stmt_x5c(ctx.att_stmt)? {
        Some(x5c) => {
            // 2. x5c present: verify sig with attestnCert's key and alg.
            let leaf_der = x5c
                .first()
                .ok_or_else(|| WebauthnError::attestation("empty x5c"))?;
            let leaf = parse_x509(leaf_der)?;
            verify_with_cert(&leaf, alg_id, &data, sig, ctx.policy)?;
            // attestnCert meets §8.2.1.
            check_packed_cert(&leaf)?;
            // id-fido-gen-ce-aaguid, if present, equals the AAGUID in authData.
            check_aaguid_extension(&leaf, &ctx.credential.aaguid, true)?;
            // Every other x5c entry must at least parse.
            for der in x5c.iter().skip(1) {
                parse_x509(der)?;
            }
            Ok(AttestationKind::Basic(x5c))
        }
        None => {
            // 3. Self attestation: alg matches the credential key, sig verifies with it.
            if alg_id != ctx.key.alg() {
                return Err(WebauthnError::attestation(
                    "self attestation alg differs from the credential key alg",
                ));
            }
            ctx.key
                .verify(&data, sig)
                .map_err(|_| WebauthnError::attestation("self attestation signature invalid"))?;
            Ok(AttestationKind::SelfAttestation)
        }
    }
}

/// Does the certificate's subject public key equal the credential public key (EC2 or RSA)?
pub(crate) fn cert_key_matches(cert: &X509Certificate<'_>, key: &PublicKey) -> bool {
    let spki_bits: &[u8] = &cert.public_key().subject_public_key.data;
    if let Some(point) = key.sec1_point() {
        return spki_bits == point.as_slice();
    }
    if let Some((n, e)) = key.rsa_components() {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let parsed = der::read_tlv(spki_bits).and_then(|(seq, _)| {
            let (m, rest) = der::read_tlv(seq.value)?;
            let (x, _) = der::read_tlv(rest)?;
            Some((m.value, x.value))
        });
        let strip = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
        return matches!(parsed, Some((m, x)) if strip(m) == n && strip(x) == e);
    }
    false
}

/// `fido-u2f` (L3 §8.6 verification procedure).
pub(crate) fn verify_fido_u2f(ctx: &Ctx<'_>) -> Result<AttestationKind, WebauthnError> {
    // Check that x5c has exactly one element and let attCert be that element.
    let x5c = stmt_x5c(ctx.att_stmt)?.unwrap_or_default();
    let [cert_der] = x5c.as_slice() else {
        return Err(WebauthnError::attestation(
            "fido-u2f: x5c must hold exactly one certificate",
        ));
    };
    let sig = stmt_bytes(ctx.att_stmt, "sig")?;
    let cert = parse_x509(cert_der)?;
    // If the certificate public key is not an EC public key over P-256, fail.
    let spki = cert.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    if spki.algorithm.algorithm.to_id_string() != OID_EC_PUBLIC_KEY
        || curve.as_deref() != Some(OID_P256)
    {
        return Err(WebauthnError::attestation(
            "fido-u2f: certificate key is not P-256",
        ));
    }
    // publicKeyU2F = 0x04 || x || y of the (ES256) credential public key.
    if ctx.key.alg() != alg::ES256 {
        return Err(WebauthnError::attestation(
            "fido-u2f attestation requires an ES256 credential key",
        ));
    }
    let public_key_u2f = ctx
        .key
        .sec1_point()
        .ok_or_else(|| WebauthnError::attestation("fido-u2f: credential key is not EC2"))?;
    // verificationData = 0x00 || rpIdHash || clientDataHash || credentialId || publicKeyU2F
    let rp_id_hash = ctx.auth_data.get(..32).unwrap_or(&[]);
    let mut data = vec![0u8];
    data.extend_from_slice(rp_id_hash);
    data.extend_from_slice(ctx.client_data_hash);
    data.extend_from_slice(ctx.credential.credential_id);
    data.extend_from_slice(&public_key_u2f);
    verify_with_cert(&cert, alg::ES256, &data, sig, ctx.policy)?;
    Ok(AttestationKind::Basic(x5c))
}

const OID_APPLE_NONCE: &str = "1.2.840.113635.100.8.2";

/// `apple` anonymous attestation (L3 §8.8 verification procedure).
pub(crate) fn verify_apple(ctx: &Ctx<'_>) -> Result<AttestationKind, WebauthnError> {
    let x5c =
        stmt_x5c(ctx.att_stmt)?.ok_or_else(|| WebauthnError::attestation("apple: x5c missing"))?;
    let cred_cert_der = x5c
        .first()
        .ok_or_else(|| WebauthnError::attestation("apple: x5c empty"))?;
    let cred_cert = parse_x509(cred_cert_der)?;
    // nonce = SHA-256(authenticatorData || clientDataHash)
    let nonce = ring::digest::digest(&ring::digest::SHA256, &ctx.to_be_signed());
    // The nonce must equal the value of extension 1.2.840.113635.100.8.2:
    // SEQUENCE { [1] EXPLICIT OCTET STRING nonce }.
    let ext = cred_cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_APPLE_NONCE)
        .ok_or_else(|| WebauthnError::attestation("apple: nonce extension missing"))?;
    let value = der::read_tlv(ext.value)
        .filter(|(t, _)| t.class == 0 && t.tag == 16)
        .and_then(|(seq, _)| der::read_tlv(seq.value))
        .filter(|(t, _)| t.class == 2 && t.tag == 1)
        .and_then(|(tagged, _)| der::read_tlv(tagged.value))
        .filter(|(t, _)| t.class == 0 && t.tag == 4)
        .map(|(t, _)| t.value);
    if value != Some(nonce.as_ref()) {
        return Err(WebauthnError::attestation(
            "apple: nonce extension mismatch",
        ));
    }
    // The credential public key must equal the subject public key of credCert.
    if !cert_key_matches(&cred_cert, ctx.key) {
        return Err(WebauthnError::attestation(
            "apple: certificate key differs from the credential public key",
        ));
    }
    for der in x5c.iter().skip(1) {
        parse_x509(der)?;
    }
    Ok(AttestationKind::Basic(x5c))
}
