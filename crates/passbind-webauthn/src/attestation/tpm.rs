//! `tpm` attestation (WebAuthn L3 §8.3).

use super::{
    parse_x509, stmt_alg, stmt_bytes, stmt_get, stmt_x5c, verify_with_cert, AttestationKind, Ctx,
};
use crate::cose::alg;
use crate::error::WebauthnError;
use ciborium::value::Value;
use ring::digest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA1: u16 = 0x0004;
const TPM_ALG_SHA256: u16 = 0x000B;
const TPM_ALG_SHA384: u16 = 0x000C;
const TPM_ALG_SHA512: u16 = 0x000D;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ECC_NIST_P256: u16 = 0x0003;
const TPM_ECC_NIST_P384: u16 = 0x0004;
const TPM_ECC_NIST_P521: u16 = 0x0005;

const OID_TCG_KP_AIK_CERTIFICATE: &str = "2.23.133.8.3";
const OID_TCG_AT_TPM_MANUFACTURER: &str = "2.23.133.2.1";
const OID_TCG_AT_TPM_MODEL: &str = "2.23.133.2.2";
const OID_TCG_AT_TPM_VERSION: &str = "2.23.133.2.3";

/// TCG TPM Vendor ID Registry (v1.06 + later additions), as `id:` + 8 hex digits.
const TCG_VENDOR_IDS: &[&str] = &[
    "414D4400", // AMD
    "41544D4C", // Atmel
    "4252434D", // Broadcom
    "4353434F", // Cisco
    "464C5953", // Flyslice
    "524F4343", // Fuzhou Rockchip
    "474F4F47", // Google
    "48504900", // HPI
    "48504500", // HPE
    "48495349", // Huawei
    "49424D00", // IBM
    "49465800", // Infineon
    "494E5443", // Intel
    "4C454E00", // Lenovo
    "4D534654", // Microsoft
    "4E534D20", // National Semiconductor
    "4E545A00", // Nationz
    "4E544300", // Nuvoton
    "51434F4D", // Qualcomm
    "534D5343", // SMSC
    "53544D20", // STMicroelectronics
    "534D534E", // Samsung
    "534E5300", // Sinosun
    "54584E00", // Texas Instruments
    "57454300", // Winbond
];

struct Reader<'a> {
    buf: &'a [u8],
}

fn tpm_err(what: &str) -> WebauthnError {
    WebauthnError::attestation(format!("tpm: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WebauthnError> {
        let head = self
            .buf
            .get(..n)
            .ok_or_else(|| tpm_err("structure truncated"))?;
        self.buf = self.buf.get(n..).unwrap_or(&[]);
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, WebauthnError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            *b.first().unwrap_or(&0),
            *b.get(1).unwrap_or(&0),
        ]))
    }
    fn u32(&mut self) -> Result<u32, WebauthnError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| tpm_err("structure truncated"))?;
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, WebauthnError> {
        let b: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| tpm_err("structure truncated"))?;
        Ok(u64::from_be_bytes(b))
    }
    /// A TPM2B_* sized buffer.
    fn tpm2b(&mut self) -> Result<&'a [u8], WebauthnError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn finish(&self, what: &str) -> Result<(), WebauthnError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(tpm_err(&format!("trailing bytes after {what}")))
        }
    }
}

enum PubUnique<'a> {
    Rsa {
        exponent: u32,
        modulus: &'a [u8],
    },
    Ecc {
        curve: u16,
        x: &'a [u8],
        y: &'a [u8],
    },
}

struct PubArea<'a> {
    name_alg: u16,
    unique: PubUnique<'a>,
}

/// TPMT_SYM_DEF_OBJECT / TPMT_*_SCHEME: an algorithm followed by details unless it is NULL
/// (`with_details == false` reads the algorithm identifier only; see `parse_pub_area`).
fn skip_alg_with_details(
    r: &mut Reader<'_>,
    details: usize,
    with_details: bool,
) -> Result<(), WebauthnError> {
    if r.u16()? != TPM_ALG_NULL && with_details {
        r.take(details)?;
    }
    Ok(())
}

fn parse_pub_area_layout(bytes: &[u8], with_details: bool) -> Result<PubArea<'_>, WebauthnError> {
    let mut r = Reader { buf: bytes };
    let ty = r.u16()?;
    let name_alg = r.u16()?;
    let _object_attributes = r.u32()?;
    let _auth_policy = r.tpm2b()?;
    let unique = match ty {
        TPM_ALG_RSA => {
            skip_alg_with_details(&mut r, 4, with_details)?; // symmetric: keyBits, mode
            skip_alg_with_details(&mut r, 2, with_details)?; // scheme: hashAlg
            let _key_bits = r.u16()?;
            let exponent = r.u32()?;
            let modulus = r.tpm2b()?;
            PubUnique::Rsa { exponent, modulus }
        }
        TPM_ALG_ECC => {
            skip_alg_with_details(&mut r, 4, with_details)?; // symmetric
            skip_alg_with_details(&mut r, 2, with_details)?; // scheme
            let curve = r.u16()?;
            skip_alg_with_details(&mut r, 2, with_details)?; // kdf
            let x = r.tpm2b()?;
            let y = r.tpm2b()?;
            PubUnique::Ecc { curve, x, y }
        }
        _ => return Err(tpm_err("pubArea type is neither RSA nor ECC")),
    };
    r.finish("pubArea")?;
    Ok(PubArea { name_alg, unique })
}

/// TPMT_PUBLIC (TPM 2.0 Part 2 §12.2.4).
///
/// Real TPMs use NULL symmetric and scheme algorithms for WebAuthn keys. Some attestation
/// generators (e.g. java-webauthn-server's test authenticator) write a non-NULL scheme
/// without its details; that layout is accepted as a fallback when the spec layout does not
/// consume the structure exactly. This does not weaken verification: the whole pubArea is
/// bound by its Name in the AIK-signed certInfo, and the key read from it must equal the
/// credential public key.
fn parse_pub_area(bytes: &[u8]) -> Result<PubArea<'_>, WebauthnError> {
    parse_pub_area_layout(bytes, true)
        .or_else(|e| parse_pub_area_layout(bytes, false).map_err(|_| e))
}

struct CertInfo<'a> {
    extra_data: &'a [u8],
    attested_name: &'a [u8],
}

/// TPMS_ATTEST (TPM 2.0 Part 2 §10.12.8) with a TPMS_CERTIFY_INFO.
fn parse_cert_info(bytes: &[u8]) -> Result<CertInfo<'_>, WebauthnError> {
    let mut r = Reader { buf: bytes };
    // Verify that magic is set to TPM_GENERATED_VALUE.
    if r.u32()? != TPM_GENERATED_VALUE {
        return Err(tpm_err("certInfo.magic is not TPM_GENERATED_VALUE"));
    }
    // Verify that type is set to TPM_ST_ATTEST_CERTIFY.
    if r.u16()? != TPM_ST_ATTEST_CERTIFY {
        return Err(tpm_err("certInfo.type is not TPM_ST_ATTEST_CERTIFY"));
    }
    let _qualified_signer = r.tpm2b()?;
    let extra_data = r.tpm2b()?;
    let _clock_info = r.take(17)?; // clock u64, resetCount u32, restartCount u32, safe u8
    let _firmware_version = r.u64()?;
    let attested_name = r.tpm2b()?;
    let _qualified_name = r.tpm2b()?;
    r.finish("certInfo")?;
    Ok(CertInfo {
        extra_data,
        attested_name,
    })
}

fn hash_for_alg(alg_id: i64) -> Result<&'static digest::Algorithm, WebauthnError> {
    Ok(match alg_id {
        alg::RS1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        alg::RS256 | alg::PS256 | alg::ES256 => &digest::SHA256,
        alg::RS384 | alg::PS384 | alg::ES384 => &digest::SHA384,
        alg::RS512 | alg::PS512 | alg::ES512 => &digest::SHA512,
        other => {
            return Err(WebauthnError::UnsupportedAlgorithm(format!(
                "tpm attestation alg {other}"
            )))
        }
    })
}

fn name_hash(name_alg: u16) -> Result<&'static digest::Algorithm, WebauthnError> {
    Ok(match name_alg {
        TPM_ALG_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        TPM_ALG_SHA256 => &digest::SHA256,
        TPM_ALG_SHA384 => &digest::SHA384,
        TPM_ALG_SHA512 => &digest::SHA512,
        _ => return Err(tpm_err("unsupported pubArea.nameAlg")),
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or(&[])
}

/// §8.3.1 TPM attestation statement certificate requirements, plus the manufacturer policy.
fn check_aik_cert(
    cert: &X509Certificate<'_>,
    allow_unknown_vendor: bool,
) -> Result<(), WebauthnError> {
    let fail = |m: &str| tpm_err(&format!("AIK certificate: {m}"));
    // Version MUST be set to 3.
    if cert.version().0 != 2 {
        return Err(fail("version is not 3"));
    }
    // Subject field MUST be set to empty.
    if cert.subject().iter_attributes().next().is_some() {
        return Err(fail("subject is not empty"));
    }
    // The Subject Alternative Name extension MUST be set as defined in [TPMv2-EK-Profile]
    // section 3.2.9 (directoryName with tcg-at-tpmManufacturer, -tpmModel, -tpmVersion).
    let san = cert
        .subject_alternative_name()
        .map_err(|_| fail("invalid subject alternative name"))?
        .ok_or_else(|| fail("missing subject alternative name"))?;
    let (mut manufacturer, mut model, mut version) = (None, false, false);
    for gn in &san.value.general_names {
        if let GeneralName::DirectoryName(name) = gn {
            for attr in name.iter_attributes() {
                match attr.attr_type().to_id_string().as_str() {
                    OID_TCG_AT_TPM_MANUFACTURER => manufacturer = attr.as_str().ok(),
                    OID_TCG_AT_TPM_MODEL => model = true,
                    OID_TCG_AT_TPM_VERSION => version = true,
                    _ => {}
                }
            }
        }
    }
    let manufacturer = manufacturer.ok_or_else(|| fail("SAN lacks tcg-at-tpmManufacturer"))?;
    if !model || !version {
        return Err(fail("SAN lacks tcg-at-tpmModel or tcg-at-tpmVersion"));
    }
    let vendor = manufacturer
        .strip_prefix("id:")
        .ok_or_else(|| fail("tcg-at-tpmManufacturer is not id:XXXXXXXX"))?;
    let known = TCG_VENDOR_IDS
        .iter()
        .any(|v| v.eq_ignore_ascii_case(vendor));
    if !known && !allow_unknown_vendor {
        return Err(fail(&format!(
            "TPM manufacturer {manufacturer} is not in the TCG vendor registry (policy allow_unknown_tpm_manufacturer)"
        )));
    }
    // The Extended Key Usage extension MUST contain the tcg-kp-AIKCertificate OID.
    let eku = cert
        .extended_key_usage()
        .map_err(|_| fail("invalid extended key usage"))?
        .ok_or_else(|| fail("missing extended key usage"))?;
    if !eku
        .value
        .other
        .iter()
        .any(|o| o.to_id_string() == OID_TCG_KP_AIK_CERTIFICATE)
    {
        return Err(fail("extended key usage lacks tcg-kp-AIKCertificate"));
    }
    // The Basic Constraints extension MUST have the CA component set to false (an absent
    // extension means "not a CA" in RFC 5280 and is accepted, as for packed).
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Err(fail("basic constraints CA is true")),
        Ok(_) => Ok(()),
        Err(_) => Err(fail("invalid basic constraints")),
    }
}

/// `tpm` verification procedure (L3 §8.3.2).
pub(crate) fn verify_tpm(ctx: &Ctx<'_>) -> Result<AttestationKind, WebauthnError> {
    // Verify that attStmt is valid CBOR conforming to the syntax and extract the fields.
    match stmt_get(ctx.att_stmt, "ver")? {
        Some(Value::Text(v)) if v == "2.0" => {}
        _ => return Err(tpm_err("ver is not \"2.0\"")),
    }
    let alg_id = stmt_alg(ctx.att_stmt)?;
    let sig = stmt_bytes(ctx.att_stmt, "sig")?;
    let cert_info_bytes = stmt_bytes(ctx.att_stmt, "certInfo")?;
    let pub_area_bytes = stmt_bytes(ctx.att_stmt, "pubArea")?;
    if stmt_get(ctx.att_stmt, "ecdaaKeyId")?.is_some() {
        return Err(WebauthnError::UnsupportedAttestationFormat(
            "tpm ECDAA".into(),
        ));
    }
    let x5c = stmt_x5c(ctx.att_stmt)?.ok_or_else(|| tpm_err("x5c missing"))?;

    // Verify that the public key specified by the parameters and unique fields of pubArea
    // is identical to the credentialPublicKey in the attestedCredentialData.
    let pub_area = parse_pub_area(pub_area_bytes)?;
    match &pub_area.unique {
        PubUnique::Rsa { exponent, modulus } => {
            let (n, e) = ctx
                .key
                .rsa_components()
                .ok_or_else(|| tpm_err("pubArea is RSA but the credential key is not"))?;
            if strip_zeros(modulus) != n {
                return Err(tpm_err("pubArea modulus differs from the credential key"));
            }
            // An exponent of 0 in TPMS_RSA_PARMS means the default 2^16 + 1.
            let exp = if *exponent == 0 { 65537 } else { *exponent };
            if strip_zeros(&exp.to_be_bytes()) != e {
                return Err(tpm_err("pubArea exponent differs from the credential key"));
            }
        }
        PubUnique::Ecc { curve, x, y } => {
            let point = ctx
                .key
                .sec1_point()
                .ok_or_else(|| tpm_err("pubArea is ECC but the credential key is not"))?;
            let (expected_curve, size) = match ctx.key.alg() {
                alg::ES256 => (TPM_ECC_NIST_P256, 32),
                alg::ES384 => (TPM_ECC_NIST_P384, 48),
                alg::ES512 => (TPM_ECC_NIST_P521, 66),
                _ => return Err(tpm_err("unsupported ECC credential key")),
            };
            if *curve != expected_curve {
                return Err(tpm_err("pubArea curve differs from the credential key"));
            }
            let cx = point.get(1..1 + size).unwrap_or(&[]);
            let cy = point.get(1 + size..).unwrap_or(&[]);
            if strip_zeros(x) != strip_zeros(cx) || strip_zeros(y) != strip_zeros(cy) {
                return Err(tpm_err("pubArea point differs from the credential key"));
            }
        }
    }

    // Concatenate authenticatorData and clientDataHash to form attToBeSigned.
    let att_to_be_signed = ctx.to_be_signed();

    // Validate that certInfo is valid: magic, type (checked while parsing), extraData is the
    // hash of attToBeSigned using the hash algorithm employed in "alg".
    let cert_info = parse_cert_info(cert_info_bytes)?;
    if alg_id == alg::RS1 && !ctx.policy.allow_sha1_attestation {
        return Err(tpm_err(
            "SHA-1 attestation signatures are not allowed by policy",
        ));
    }
    let expected_extra = digest::digest(hash_for_alg(alg_id)?, &att_to_be_signed);
    if cert_info.extra_data != expected_extra.as_ref() {
        return Err(tpm_err(
            "certInfo.extraData is not the hash of attToBeSigned",
        ));
    }
    // attested contains a TPMS_CERTIFY_INFO whose name is a valid Name for pubArea
    // (nameAlg || H_nameAlg(pubArea)).
    let name_digest = digest::digest(name_hash(pub_area.name_alg)?, pub_area_bytes);
    let mut expected_name = pub_area.name_alg.to_be_bytes().to_vec();
    expected_name.extend_from_slice(name_digest.as_ref());
    if cert_info.attested_name != expected_name.as_slice() {
        return Err(tpm_err("certInfo.attested.name does not match pubArea"));
    }

    // Verify that x5c is present; verify the sig is a valid signature over certInfo using
    // the attestation public key in aikCert with the algorithm specified in alg.
    let aik_der = x5c.first().ok_or_else(|| tpm_err("x5c is empty"))?;
    let aik = parse_x509(aik_der)?;
    verify_with_cert(&aik, alg_id, cert_info_bytes, sig, ctx.policy)?;

    // Verify that aikCert meets the requirements in §8.3.1.
    check_aik_cert(&aik, ctx.policy.allow_unknown_tpm_manufacturer)?;

    // If aikCert contains id-fido-gen-ce-aaguid, verify it matches the aaguid in authData.
    super::check_aaguid_extension(&aik, &ctx.credential.aaguid, false)?;

    for der in x5c.iter().skip(1) {
        parse_x509(der)?;
    }
    // If successful, return attestation type AttCA and attestation trust path x5c.
    Ok(AttestationKind::AttCa(x5c))
}
