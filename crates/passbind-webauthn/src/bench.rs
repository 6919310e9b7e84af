//! A self-contained throughput measurement of the assertion hot path, for
//! `passbind bench webauthn`.
//!
//! It generates an ES256 credential with `ring`, signs one assertion in memory, and then
//! measures, on the calling thread, the full per-request work of routine sign-in:
//! parsing the `AuthenticationResponseJSON` body ([`AssertionResponse::from_slice`]) and
//! [`RelyingParty::verify_assertion`] (client data, flags, RP ID hash, SHA-256, ECDSA P-256).

use crate::{
    b64, AssertionResponse, AttestationPolicy, PublicKey, RelyingParty, RpConfig, StoredCredential,
    UserVerification, WebauthnError,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use std::time::{Duration, Instant};

/// Result of [`bench_assertions`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Algorithm measured.
    pub algorithm: &'static str,
    /// Assertions verified.
    pub iterations: usize,
    /// Wall time for all iterations (one thread).
    pub elapsed: Duration,
    /// Assertions verified per second.
    pub per_second: f64,
    /// Mean time per assertion, in microseconds.
    pub micros_per_assertion: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} assertions in {:.3} s on one thread = {:.0}/s ({:.1} us each, JSON parsing included)",
            self.algorithm,
            self.iterations,
            self.elapsed.as_secs_f64(),
            self.per_second,
            self.micros_per_assertion
        )
    }
}

fn setup_err(m: &str) -> WebauthnError {
    WebauthnError::InvalidState(format!("bench setup: {m}"))
}

/// Everything one benchmark iteration needs.
pub(crate) struct Fixture {
    pub rp: RelyingParty,
    pub credential: StoredCredential,
    pub challenge: [u8; 32],
    pub body: Vec<u8>,
}

pub(crate) fn es256_fixture() -> Result<Fixture, WebauthnError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| setup_err("key generation"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| setup_err("key parsing"))?;
    let point = key.public_key().as_ref();
    let x = point.get(1..33).ok_or_else(|| setup_err("point"))?.to_vec();
    let y = point
        .get(33..65)
        .ok_or_else(|| setup_err("point"))?
        .to_vec();
    use ciborium::value::Value;
    let cose = Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer(2.into())),
        (Value::Integer(3.into()), Value::Integer((-7).into())),
        (Value::Integer((-1).into()), Value::Integer(1.into())),
        (Value::Integer((-2).into()), Value::Bytes(x)),
        (Value::Integer((-3).into()), Value::Bytes(y)),
    ]);
    let mut cose_bytes = Vec::new();
    ciborium::ser::into_writer(&cose, &mut cose_bytes).map_err(|_| setup_err("cbor"))?;

    let rp_id = "bench.passbind.invalid";
    let origin = "https://bench.passbind.invalid";
    let rp = RelyingParty::new(RpConfig {
        rp_id: rp_id.into(),
        rp_name: "Passbind bench".into(),
        origins: vec![origin.into()],
        user_verification: UserVerification::Required,
        attestation: AttestationPolicy::default(),
    })
    .map_err(|e| setup_err(&e.to_string()))?;

    let challenge = [0x5au8; 32];
    let credential_id = vec![0xc1u8; 32];
    let client_data = format!(
        r#"{{"type":"webauthn.get","challenge":"{}","origin":"{}","crossOrigin":false}}"#,
        b64::encode(&challenge),
        origin
    );
    let mut auth_data = ring::digest::digest(&ring::digest::SHA256, rp_id.as_bytes())
        .as_ref()
        .to_vec();
    auth_data.push(0x05); // UP | UV
    auth_data.extend_from_slice(&42u32.to_be_bytes());
    let cd_hash = ring::digest::digest(&ring::digest::SHA256, client_data.as_bytes());
    let mut signed = auth_data.clone();
    signed.extend_from_slice(cd_hash.as_ref());
    let sig = key.sign(&rng, &signed).map_err(|_| setup_err("signing"))?;
    let body = serde_json::json!({
        "id": b64::encode(&credential_id),
        "rawId": b64::encode(&credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64::encode(client_data.as_bytes()),
            "authenticatorData": b64::encode(&auth_data),
            "signature": b64::encode(sig.as_ref()),
            "userHandle": b64::encode(b"bench-user"),
        },
        "clientExtensionResults": {},
        "authenticatorAttachment": "platform",
    });
    let body = serde_json::to_vec(&body).map_err(|_| setup_err("json"))?;
    let credential = StoredCredential {
        id: credential_id,
        public_key: PublicKey::from_cose(&cose_bytes)?,
        sign_count: 41,
    };
    Ok(Fixture {
        rp,
        credential,
        challenge,
        body,
    })
}

/// Verifies `n` ES256 assertions on the calling thread (JSON parsing included) and reports
/// the throughput. The one assertion is verified once before timing to make sure it is valid.
pub fn bench_assertions(n: usize) -> Result<BenchReport, WebauthnError> {
    let f = es256_fixture()?;
    let once = AssertionResponse::from_slice(&f.body)?;
    f.rp.verify_assertion(&f.challenge, &f.credential, &once, true)?;
    let start = Instant::now();
    for _ in 0..n {
        let body = std::hint::black_box(f.body.as_slice());
        let response = AssertionResponse::from_slice(body)?;
        let outcome =
            f.rp.verify_assertion(&f.challenge, &f.credential, &response, true)?;
        std::hint::black_box(outcome);
    }
    let elapsed = start.elapsed();
    let secs = elapsed.as_secs_f64();
    let per_second = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let micros = if n > 0 { secs * 1e6 / n as f64 } else { 0.0 };
    Ok(BenchReport {
        algorithm: "ES256",
        iterations: n,
        elapsed,
        per_second,
        micros_per_assertion: micros,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn bench_runs() {
        let r = bench_assertions(20).unwrap();
        assert_eq!(r.iterations, 20);
        assert!(r.per_second > 0.0);
    }
}
