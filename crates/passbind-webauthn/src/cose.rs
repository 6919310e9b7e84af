//! COSE public keys, parsed once and verified on `ring` (P-521 on RustCrypto `p521`).

use crate::error::WebauthnError;
use ciborium::value::Value;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// COSE algorithm identifiers (IANA "COSE Algorithms" registry) known to this crate.
pub mod alg {
    /// ECDSA P-256 with SHA-256.
    pub const ES256: i64 = -7;
    /// ECDSA P-384 with SHA-384.
    pub const ES384: i64 = -35;
    /// ECDSA P-521 with SHA-512.
    pub const ES512: i64 = -36;
    /// EdDSA (Ed25519 in WebAuthn; Ed448 is rejected as unsupported).
    pub const EDDSA: i64 = -8;
    /// Ed25519 (fully-specified identifier).
    pub const ED25519: i64 = -19;
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    pub const RS256: i64 = -257;
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    pub const RS384: i64 = -258;
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    pub const RS512: i64 = -259;
    /// RSASSA-PSS with SHA-256.
    pub const PS256: i64 = -37;
    /// RSASSA-PSS with SHA-384.
    pub const PS384: i64 = -38;
    /// RSASSA-PSS with SHA-512.
    pub const PS512: i64 = -39;
    /// RSASSA-PKCS1-v1_5 with SHA-1 (insecure; only ever accepted where a policy allows it).
    pub const RS1: i64 = -65535;
}

/// The COSE algorithms [`PublicKey::from_cose`] parses and verifies, apart from the legacy
/// RS1 (-65535), which it also parses but which is never offered or accepted by default.
pub const SUPPORTED_ALGORITHMS: &[i64] = &[
    alg::ES256,
    alg::EDDSA,
    alg::ES384,
    alg::ES512,
    alg::RS256,
    alg::RS384,
    alg::RS512,
    alg::PS256,
    alg::PS384,
    alg::PS512,
    alg::ED25519,
];

const KTY_OKP: i128 = 1;
const KTY_EC2: i128 = 2;
const KTY_RSA: i128 = 3;

#[derive(Clone)]
enum KeyInner {
    /// A `ring` key: algorithm plus the encoded public key ring expects
    /// (uncompressed SEC1 point, raw Ed25519 key).
    Ring {
        algorithm: &'static dyn VerificationAlgorithm,
        bytes: Vec<u8>,
    },
    /// RSA, verified with ring from (n, e) components (leading zeros stripped).
    Rsa {
        params: &'static signature::RsaParameters,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// P-521, not available in ring.
    P521(Box<p521::ecdsa::VerifyingKey>),
}

/// A credential public key, parsed once from its COSE encoding.
///
/// Parsing validates the structure (key type, curve, coordinate sizes, algorithm); keep the
/// parsed value cached next to the credential so the hot path only verifies.
#[derive(Clone)]
pub struct PublicKey {
    alg: i64,
    inner: KeyInner,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("alg", &self.alg).finish()
    }
}

fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

fn invalid(msg: &str) -> WebauthnError {
    WebauthnError::InvalidPublicKey(msg.to_string())
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or(&[])
}

impl PublicKey {
    /// Parses a COSE_Key (RFC 9052/9053 as used by WebAuthn) holding a public key.
    ///
    /// Supported: ES256, ES384 (ring), ES512 (RustCrypto `p521`), EdDSA/Ed25519 (ring),
    /// RS256/RS384/RS512 and PS256/PS384/PS512 with 2048..=8192-bit moduli (ring), and RS1
    /// (ring, legacy). Anything else, including Ed448, is [`WebauthnError::UnsupportedAlgorithm`].
    /// Trailing bytes after the CBOR map are rejected.
    pub fn from_cose(cose: &[u8]) -> Result<PublicKey, WebauthnError> {
        let mut rdr = cose;
        let value: Value = ciborium::de::from_reader(&mut rdr)
            .map_err(|_| invalid("COSE key is not valid CBOR"))?;
        if !rdr.is_empty() {
            return Err(invalid("trailing bytes after the COSE key"));
        }
        Self::from_cose_value(&value)
    }

    pub(crate) fn from_cose_value(value: &Value) -> Result<PublicKey, WebauthnError> {
        let map = match value {
            Value::Map(m) => m,
            _ => return Err(invalid("COSE key is not a CBOR map")),
        };
        // Integer labels only matter here; reject duplicates of the ones we read.
        let get = |label: i128| -> Result<Option<&Value>, WebauthnError> {
            let mut found = None;
            for (k, v) in map {
                if int_of(k) == Some(label) {
                    if found.is_some() {
                        return Err(invalid("duplicate COSE key parameter"));
                    }
                    found = Some(v);
                }
            }
            Ok(found)
        };
        let int = |label: i128| -> Result<i128, WebauthnError> {
            get(label)?
                .and_then(int_of)
                .ok_or_else(|| invalid("missing or non-integer COSE parameter"))
        };
        let bytes = |label: i128| -> Result<&Vec<u8>, WebauthnError> {
            match get(label)? {
                Some(Value::Bytes(b)) => Ok(b),
                _ => Err(invalid("missing or non-bytes COSE parameter")),
            }
        };

        let kty = int(1)?;
        let alg_id = int(3)?;
        let alg = i64::try_from(alg_id).map_err(|_| invalid("alg out of range"))?;

        match kty {
            KTY_EC2 => {
                let crv = int(-1)?;
                let x = bytes(-2)?;
                let y = bytes(-3)?;
                let (expected_crv, size) = match alg {
                    alg::ES256 => (1, 32),
                    alg::ES384 => (2, 48),
                    alg::ES512 => (3, 66),
                    other => {
                        return Err(WebauthnError::UnsupportedAlgorithm(format!(
                            "EC2 key with alg {other}"
                        )))
                    }
                };
                if crv != expected_crv {
                    return Err(invalid("EC2 curve does not match alg"));
                }
                if x.len() != size || y.len() != size {
                    return Err(invalid("EC2 coordinate length does not match curve"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                let inner = match alg {
                    alg::ES256 => KeyInner::Ring {
                        algorithm: &signature::ECDSA_P256_SHA256_ASN1,
                        bytes: point,
                    },
                    alg::ES384 => KeyInner::Ring {
                        algorithm: &signature::ECDSA_P384_SHA384_ASN1,
                        bytes: point,
                    },
                    _ => {
                        let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                            .map_err(|_| invalid("P-521 point is not on the curve"))?;
                        KeyInner::P521(Box::new(vk))
                    }
                };
                Ok(PublicKey { alg, inner })
            }
            KTY_OKP => {
                if alg != alg::EDDSA && alg != alg::ED25519 {
                    return Err(WebauthnError::UnsupportedAlgorithm(format!(
                        "OKP key with alg {alg}"
                    )));
                }
                let crv = int(-1)?;
                match crv {
                    6 => {}
                    7 => {
                        return Err(WebauthnError::UnsupportedAlgorithm(
                            "Ed448 is not supported".into(),
                        ))
                    }
                    _ => return Err(invalid("OKP curve is not Ed25519")),
                }
                let x = bytes(-2)?;
                if x.len() != 32 {
                    return Err(invalid("Ed25519 key must be 32 bytes"));
                }
                Ok(PublicKey {
                    alg,
                    inner: KeyInner::Ring {
                        algorithm: &signature::ED25519,
                        bytes: x.clone(),
                    },
                })
            }
            KTY_RSA => {
                let params: &'static signature::RsaParameters = match alg {
                    alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    alg::RS1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    other => {
                        return Err(WebauthnError::UnsupportedAlgorithm(format!(
                            "RSA key with alg {other}"
                        )))
                    }
                };
                let n = strip_leading_zeros(bytes(-1)?).to_vec();
                let e = strip_leading_zeros(bytes(-2)?).to_vec();
                let n_bits =
                    n.len() * 8 - n.first().map(|b| b.leading_zeros() as usize).unwrap_or(0);
                if !(2048..=8192).contains(&n_bits) {
                    return Err(WebauthnError::UnsupportedAlgorithm(format!(
                        "RSA modulus of {n_bits} bits (2048..=8192 supported)"
                    )));
                }
                // ring accepts odd exponents 3..=2^33-1.
                if e.is_empty() || e.len() > 4 || e.last().map(|b| b & 1) != Some(1) {
                    return Err(invalid("unsupported RSA public exponent"));
                }
                Ok(PublicKey {
                    alg,
                    inner: KeyInner::Rsa { params, n, e },
                })
            }
            other => Err(WebauthnError::UnsupportedAlgorithm(format!(
                "COSE key type {other}"
            ))),
        }
    }

    /// The COSE algorithm identifier of this key.
    pub fn alg(&self) -> i64 {
        self.alg
    }

    /// Verifies `signature` over `message` (for WebAuthn: authenticatorData || SHA-256(clientDataJSON)).
    ///
    /// ECDSA signatures must be ASN.1 DER encoded, as WebAuthn requires.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), WebauthnError> {
        let ok = match &self.inner {
            KeyInner::Ring { algorithm, bytes } => UnparsedPublicKey::new(*algorithm, bytes)
                .verify(message, sig)
                .is_ok(),
            KeyInner::Rsa { params, n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok(),
            KeyInner::P521(vk) => {
                use p521::ecdsa::signature::Verifier as _;
                match p521::ecdsa::Signature::from_der(sig) {
                    Ok(s) => vk.verify(message, &s).is_ok(),
                    Err(_) => false,
                }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(WebauthnError::BadSignature)
        }
    }

    /// For EC2 keys, the uncompressed SEC1 point `0x04 || x || y`.
    pub(crate) fn sec1_point(&self) -> Option<Vec<u8>> {
        match &self.inner {
            KeyInner::Ring { bytes, .. } if self.alg == alg::ES256 || self.alg == alg::ES384 => {
                Some(bytes.clone())
            }
            KeyInner::P521(vk) => Some(vk.to_sec1_point(false).as_bytes().to_vec()),
            _ => None,
        }
    }

    /// For RSA keys, the modulus and exponent without leading zeros.
    pub(crate) fn rsa_components(&self) -> Option<(&[u8], &[u8])> {
        match &self.inner {
            KeyInner::Rsa { n, e, .. } => Some((n, e)),
            _ => None,
        }
    }
}
