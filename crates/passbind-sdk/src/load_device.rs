//! A lean authenticator for load generation (`passbind bench`): ES256 keys and signatures on
//! ring, `none` attestation, a counter per credential. It produces the same WebAuthn JSON as a
//! browser, but costs the load generator a fraction of what [`crate::authenticator`] (passkey-rs
//! on RustCrypto) does, so that a benchmark measures the server rather than its client.
//! Not a device model for tests of authenticator behaviour: use `SoftwareAuthenticator` there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("load device: {0}")]
pub struct LoadDeviceError(String);

fn err(m: impl Into<String>) -> LoadDeviceError {
    LoadDeviceError(m.into())
}

struct Credential {
    id: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
    key: EcdsaKeyPair,
    counter: AtomicU32,
}

/// One device holding ES256 credentials in memory.
#[derive(Clone, Default)]
pub struct LoadDevice {
    creds: Arc<Mutex<Vec<Arc<Credential>>>>,
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn unb64(v: &Value, what: &str) -> Result<Vec<u8>, LoadDeviceError> {
    v.as_str()
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or_else(|| err(format!("{what} is not base64url")))
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
        .to_string()
        .into_bytes()
}

impl LoadDevice {
    pub fn new() -> Self {
        Self::default()
    }

    /// `navigator.credentials.create()` with `none` attestation.
    pub fn create(&self, origin: &str, options: &Value) -> Result<Value, LoadDeviceError> {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().ok_or_else(|| err("no rp.id"))?;
        let challenge = pk["challenge"]
            .as_str()
            .ok_or_else(|| err("no challenge"))?;
        let user_handle = unb64(&pk["user"]["id"], "user.id")?;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| err("key generation"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| err("key parse"))?;
        let mut id = vec![0u8; 16];
        rng.fill(&mut id).map_err(|_| err("rng"))?;
        let point = key.public_key().as_ref();
        let (x, y) = (point.get(1..33), point.get(33..65));
        let (Some(x), Some(y)) = (x, y) else {
            return Err(err("unexpected public key encoding"));
        };
        use ciborium::value::{Integer, Value as Cbor};
        let int = |i: i64| Cbor::Integer(Integer::from(i));
        let cose = Cbor::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Cbor::Bytes(x.to_vec())),
            (int(-3), Cbor::Bytes(y.to_vec())),
        ]);
        let mut cose_bytes = Vec::new();
        ciborium::into_writer(&cose, &mut cose_bytes).map_err(|e| err(e.to_string()))?;
        let mut auth = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth.push(0x45); // UP | UV | AT
        auth.extend_from_slice(&0u32.to_be_bytes());
        auth.extend_from_slice(&[0u8; 16]);
        let len = u16::try_from(id.len()).map_err(|_| err("id length"))?;
        auth.extend_from_slice(&len.to_be_bytes());
        auth.extend_from_slice(&id);
        auth.extend_from_slice(&cose_bytes);
        let att = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth)),
        ]);
        let mut att_bytes = Vec::new();
        ciborium::into_writer(&att, &mut att_bytes).map_err(|e| err(e.to_string()))?;
        let cd = client_data("webauthn.create", challenge, origin);
        if let Ok(mut creds) = self.creds.lock() {
            creds.push(Arc::new(Credential {
                id: id.clone(),
                rp_id: rp_id.to_owned(),
                user_handle,
                key,
                counter: AtomicU32::new(0),
            }));
        }
        Ok(json!({
            "id": b64(&id), "rawId": b64(&id), "type": "public-key",
            "response": {"clientDataJSON": b64(&cd), "attestationObject": b64(&att_bytes),
                         "transports": ["internal"]},
            "clientExtensionResults": {}
        }))
    }

    /// `navigator.credentials.get()`: signs with the first credential the options allow.
    pub fn get(&self, origin: &str, options: &Value) -> Result<Value, LoadDeviceError> {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().ok_or_else(|| err("no rpId"))?;
        let challenge = pk["challenge"]
            .as_str()
            .ok_or_else(|| err("no challenge"))?;
        let allowed: Vec<Vec<u8>> = pk["allowCredentials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| unb64(&d["id"], "id").ok())
                    .collect()
            })
            .unwrap_or_default();
        let cred = {
            let creds = self.creds.lock().map_err(|_| err("poisoned"))?;
            creds
                .iter()
                .find(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
                .cloned()
                .ok_or_else(|| err("no credential for these options"))?
        };
        let counter = cred.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut auth = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth.push(0x05); // UP | UV
        auth.extend_from_slice(&counter.to_be_bytes());
        let cd = client_data("webauthn.get", challenge, origin);
        let mut signed = auth.clone();
        signed.extend_from_slice(digest(&SHA256, &cd).as_ref());
        let sig = cred
            .key
            .sign(&SystemRandom::new(), &signed)
            .map_err(|_| err("signing"))?;
        Ok(json!({
            "id": b64(&cred.id), "rawId": b64(&cred.id), "type": "public-key",
            "response": {"clientDataJSON": b64(&cd), "authenticatorData": b64(&auth),
                         "signature": b64(sig.as_ref()), "userHandle": b64(&cred.user_handle)},
            "clientExtensionResults": {}
        }))
    }
}

/// Why [`enrol`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Device(#[from] LoadDeviceError),
    #[error("the identity verification did not pass: {0:?}")]
    NotPassed(passbind_proto::session::SessionState),
    #[error("the session has no {0}")]
    Missing(&'static str),
}

/// Enrols `external_user_id` through the whole registration flow against the IDV simulator:
/// opens the registration, sends `person`'s enrolment capture (variant `capture`) from `phone`,
/// waits for the verdict, creates the passkey on `keys` and completes. For load generators and
/// tests that sign with a [`LoadDevice`].
pub async fn enrol(
    client: &crate::client::CoreClient,
    origin: &str,
    external_user_id: &str,
    person: &crate::device::Person,
    capture: u64,
    phone: &crate::device::Device,
    keys: &LoadDevice,
) -> Result<(), EnrolError> {
    use passbind_proto::registration::{CompleteRegistration, OpenRegistration};
    let s = client
        .open_registration(&OpenRegistration {
            external_user_id: external_user_id.to_owned(),
            display_name: None,
            prior_biometric: None,
            workflow_input: None,
            ttl_seconds: None,
        })
        .await?;
    let idv = s.idv.as_ref().ok_or(EnrolError::Missing("idv"))?;
    phone
        .submit_capture(idv, &person.enrolment_capture(capture))
        .await?;
    let v = client
        .wait_for_verdict(
            &format!("/v1/registrations/{}", s.id),
            std::time::Duration::from_secs(10),
        )
        .await?;
    if v.state != passbind_proto::session::SessionState::IdvPassed {
        return Err(EnrolError::NotPassed(v.state));
    }
    let options = s.webauthn.as_ref().ok_or(EnrolError::Missing("webauthn"))?;
    let credential = keys.create(origin, options)?;
    client
        .complete_registration(
            &s.id,
            &CompleteRegistration {
                credential: Some(credential),
                credential_id: None,
                device_label: None,
            },
        )
        .await?;
    Ok(())
}
