//! `android-key` attestation (WebAuthn L3 §8.4); a KeyDescription without origin and purpose
//! is accepted only with `AttestationPolicy::android_key_allow_missing_authorizations`.

use super::der::{read_tlv, Tlv};
use super::{parse_x509, stmt_alg, stmt_bytes, stmt_x5c, verify_with_cert, AttestationKind, Ctx};
use crate::error::WebauthnError;
use x509_parser::prelude::X509Certificate;

const OID_ANDROID_KEY_DESCRIPTION: &str = "1.3.6.1.4.1.11129.2.1.17";
const KM_ORIGIN_GENERATED: u64 = 0;
const KM_PURPOSE_SIGN: u64 = 2;
const TAG_UNIVERSAL_INTEGER: u32 = 2;
const TAG_UNIVERSAL_ENUMERATED: u32 = 10;
const TAG_UNIVERSAL_OCTET_STRING: u32 = 4;
const TAG_UNIVERSAL_SEQUENCE: u32 = 16;
const TAG_UNIVERSAL_SET: u32 = 17;

fn ak_err(m: &str) -> WebauthnError {
    WebauthnError::attestation(format!("android-key: {m}"))
}

#[derive(Default, Debug)]
pub(crate) struct Authorizations {
    pub all_applications: bool,
    pub origin: Option<u64>,
    pub purposes: Vec<u64>,
}

pub(crate) struct KeyDescription<'a> {
    pub attestation_challenge: &'a [u8],
    pub software: Authorizations,
    pub tee: Authorizations,
}

fn small_uint(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 9 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let mut v: u64 = 0;
    for b in bytes {
        v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
    }
    Some(v)
}

fn expect<'a>(input: &'a [u8], tag: u32, what: &str) -> Result<(Tlv<'a>, &'a [u8]), WebauthnError> {
    let (tlv, rest) = read_tlv(input).ok_or_else(|| ak_err(&format!("{what}: bad DER")))?;
    if tlv.class != 0 || tlv.tag != tag {
        return Err(ak_err(&format!("{what}: unexpected tag")));
    }
    Ok((tlv, rest))
}

fn parse_authorizations(list: &[u8]) -> Result<Authorizations, WebauthnError> {
    let mut out = Authorizations::default();
    let mut rest = list;
    while !rest.is_empty() {
        let (field, next) = read_tlv(rest).ok_or_else(|| ak_err("AuthorizationList: bad DER"))?;
        rest = next;
        if field.class != 2 {
            continue; // only context-specific [n] EXPLICIT fields are defined
        }
        match field.tag {
            1 => {
                // purpose [1] EXPLICIT SET OF INTEGER
                let (set, _) = expect(field.value, TAG_UNIVERSAL_SET, "purpose")?;
                let mut items = set.value;
                while !items.is_empty() {
                    let (i, n) = expect(items, TAG_UNIVERSAL_INTEGER, "purpose")?;
                    items = n;
                    out.purposes
                        .push(small_uint(i.value).ok_or_else(|| ak_err("purpose: bad integer"))?);
                }
            }
            600 => out.all_applications = true,
            702 => {
                let (i, _) = expect(field.value, TAG_UNIVERSAL_INTEGER, "origin")?;
                out.origin =
                    Some(small_uint(i.value).ok_or_else(|| ak_err("origin: bad integer"))?);
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(crate) fn parse_key_description(ext: &[u8]) -> Result<KeyDescription<'_>, WebauthnError> {
    let (seq, _) = expect(ext, TAG_UNIVERSAL_SEQUENCE, "KeyDescription")?;
    let r = seq.value;
    let (_, r) = expect(r, TAG_UNIVERSAL_INTEGER, "attestationVersion")?;
    let (_, r) = expect(r, TAG_UNIVERSAL_ENUMERATED, "attestationSecurityLevel")?;
    let (_, r) = expect(r, TAG_UNIVERSAL_INTEGER, "keymasterVersion")?;
    let (_, r) = expect(r, TAG_UNIVERSAL_ENUMERATED, "keymasterSecurityLevel")?;
    let (challenge, r) = expect(r, TAG_UNIVERSAL_OCTET_STRING, "attestationChallenge")?;
    let (_, r) = expect(r, TAG_UNIVERSAL_OCTET_STRING, "uniqueId")?;
    let (sw, r) = expect(r, TAG_UNIVERSAL_SEQUENCE, "softwareEnforced")?;
    let (tee, _) = expect(r, TAG_UNIVERSAL_SEQUENCE, "teeEnforced")?;
    Ok(KeyDescription {
        attestation_challenge: challenge.value,
        software: parse_authorizations(sw.value)?,
        tee: parse_authorizations(tee.value)?,
    })
}

/// The KeyDescription extension of the attestation certificate, if present.
pub(crate) fn key_description_ext<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_ANDROID_KEY_DESCRIPTION)
        .map(|e| e.value)
}

/// True when neither authorization list carries `origin` or `purpose`: accepted only if the
/// policy says so.
pub(crate) fn lacks_origin_and_purpose(kd: &KeyDescription<'_>) -> bool {
    kd.software.origin.is_none()
        && kd.software.purposes.is_empty()
        && kd.tee.origin.is_none()
        && kd.tee.purposes.is_empty()
}

/// `android-key` verification procedure (L3 §8.4.2).
pub(crate) fn verify_android_key(ctx: &Ctx<'_>) -> Result<AttestationKind, WebauthnError> {
    // Verify that attStmt is valid CBOR conforming to the syntax defined above.
    let alg_id = stmt_alg(ctx.att_stmt)?;
    let sig = stmt_bytes(ctx.att_stmt, "sig")?;
    let x5c = stmt_x5c(ctx.att_stmt)?.ok_or_else(|| ak_err("x5c missing"))?;
    let leaf_der = x5c.first().ok_or_else(|| ak_err("x5c empty"))?;
    let leaf = parse_x509(leaf_der)?;
    // Verify that sig is a valid signature over authenticatorData || clientDataHash using
    // the public key in the first certificate in x5c with the algorithm specified in alg.
    verify_with_cert(&leaf, alg_id, &ctx.to_be_signed(), sig, ctx.policy)?;
    // Verify that the public key in the first certificate in x5c matches the
    // credentialPublicKey in the attestedCredentialData in authenticatorData.
    if !super::cert_key_matches(&leaf, ctx.key) || alg_id != ctx.key.alg() {
        return Err(ak_err(
            "certificate key differs from the credential public key",
        ));
    }
    // Verify that the attestationChallenge field in the attestation certificate extension
    // data is identical to clientDataHash.
    let ext =
        key_description_ext(&leaf).ok_or_else(|| ak_err("KeyDescription extension missing"))?;
    let kd = parse_key_description(ext)?;
    if kd.attestation_challenge != ctx.client_data_hash {
        return Err(ak_err("attestationChallenge is not the clientDataHash"));
    }
    // The AuthorizationList.allApplications field is not present on either list.
    if kd.software.all_applications || kd.tee.all_applications {
        return Err(ak_err("allApplications is set"));
    }
    // Using the union of teeEnforced and softwareEnforced: origin is KM_ORIGIN_GENERATED and
    // purpose is KM_PURPOSE_SIGN. Absent fields are accepted only by policy.
    if lacks_origin_and_purpose(&kd) {
        if !ctx.policy.android_key_allow_missing_authorizations {
            return Err(ak_err(
                "KeyDescription has no origin/purpose (policy android_key_allow_missing_authorizations)",
            ));
        }
    } else {
        let origins = [kd.software.origin, kd.tee.origin];
        if origins.iter().flatten().any(|o| *o != KM_ORIGIN_GENERATED)
            || origins.iter().flatten().next().is_none()
        {
            return Err(ak_err("origin is not KM_ORIGIN_GENERATED"));
        }
        let purposes: Vec<u64> = kd
            .software
            .purposes
            .iter()
            .chain(kd.tee.purposes.iter())
            .copied()
            .collect();
        if !purposes.contains(&KM_PURPOSE_SIGN) {
            return Err(ak_err("purpose is not KM_PURPOSE_SIGN"));
        }
    }
    for der in x5c.iter().skip(1) {
        parse_x509(der)?;
    }
    Ok(AttestationKind::Basic(x5c))
}
