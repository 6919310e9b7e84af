//! Round trips between passbind-sdk's software authenticator (passkey-rs) and the relying
//! party, plus negative and robustness tests on real responses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use passbind_sdk::authenticator::{DeviceSettings, SoftwareAttestation, SoftwareAuthenticator};
use passbind_webauthn::{
    AssertionResponse, AttestationConveyance, AttestationPolicy, CounterCheck, PublicKey,
    RelyingParty, RpConfig, StoredCredential, UserVerification, VerifiedCredential, WebauthnError,
};
use serde_json::{json, Value};

const ORIGIN: &str = "https://login.example.com";

fn rp_with(rp_id: &str, origins: &[&str], uv: UserVerification) -> RelyingParty {
    RelyingParty::new(RpConfig {
        rp_id: rp_id.into(),
        rp_name: "Example".into(),
        origins: origins.iter().map(|s| s.to_string()).collect(),
        user_verification: uv,
        attestation: AttestationPolicy {
            conveyance: AttestationConveyance::Direct,
            ..AttestationPolicy::default()
        },
    })
    .unwrap()
}

fn rp() -> RelyingParty {
    rp_with("example.com", &[ORIGIN], UserVerification::Required)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

fn challenge(n: u8) -> [u8; 32] {
    [n; 32]
}

async fn register(
    rp: &RelyingParty,
    device: &SoftwareAuthenticator,
    origin: &str,
    user: &[u8],
) -> (Value, VerifiedCredential) {
    let (options, state) = rp
        .creation_options(user, "alice@example.com", "Alice", challenge(1), &[])
        .unwrap();
    let response = device.create(origin, &options).await.unwrap();
    let cred = rp.verify_registration(&state, &response).unwrap();
    (response, cred)
}

fn stored(cred: &VerifiedCredential) -> StoredCredential {
    StoredCredential {
        id: cred.credential_id.clone(),
        public_key: PublicKey::from_cose(&cred.public_key_cose).unwrap(),
        sign_count: cred.sign_count,
    }
}

async fn sign_in(
    rp: &RelyingParty,
    device: &SoftwareAuthenticator,
    origin: &str,
    chal: [u8; 32],
    allow: &[(Vec<u8>, Vec<String>)],
) -> Value {
    let options = rp.request_options(chal, allow);
    device.get(origin, &options).await.unwrap()
}

#[tokio::test]
async fn register_then_sign_in() {
    let rp = rp();
    let device = SoftwareAuthenticator::with_aaguid([0xab; 16]);
    let (reg_json, cred) = register(&rp, &device, ORIGIN, b"user-1").await;
    assert_eq!(cred.alg, -7);
    assert_eq!(cred.attestation_format, "packed");
    assert_eq!(cred.aaguid, [0xab; 16]);
    assert!(cred.user_verified);
    assert_eq!(cred.sign_count, 0);
    assert_eq!(
        cred.credential_id,
        unb64(reg_json["rawId"].as_str().unwrap())
    );
    assert_eq!(device.credential_count(), 1);

    let mut stored = stored(&cred);
    let allow = vec![(cred.credential_id.clone(), cred.transports.clone())];
    for expected_count in 1..=3u32 {
        let chal = challenge(10 + expected_count as u8);
        let json = sign_in(&rp, &device, ORIGIN, chal, &allow).await;
        let response = AssertionResponse::from_json(&json).unwrap();
        // The JSON body parses the same way from bytes.
        assert_eq!(
            AssertionResponse::from_slice(&serde_json::to_vec(&json).unwrap()).unwrap(),
            response
        );
        let outcome = rp
            .verify_assertion(&chal, &stored, &response, true)
            .unwrap();
        assert_eq!(outcome.new_sign_count, expected_count);
        assert_eq!(outcome.counter, CounterCheck::Advanced);
        assert!(outcome.user_verified);
        assert_eq!(outcome.user_handle.as_deref(), Some(&b"user-1"[..]));
        stored.sign_count = outcome.new_sign_count;
    }

    // Usernameless: empty allow list, the device picks its discoverable credential.
    let chal = challenge(42);
    let json = sign_in(&rp, &device, ORIGIN, chal, &[]).await;
    let response = AssertionResponse::from_json(&json).unwrap();
    assert_eq!(response.raw_id, cred.credential_id);
    let outcome = rp
        .verify_assertion(&chal, &stored, &response, true)
        .unwrap();
    assert_eq!(outcome.user_handle.as_deref(), Some(&b"user-1"[..]));
    assert_eq!(outcome.counter, CounterCheck::Advanced);

    // Replaying an old assertion after the counter moved on is reported as a regression.
    stored.sign_count = outcome.new_sign_count;
    let replayed = rp
        .verify_assertion(&chal, &stored, &response, true)
        .unwrap();
    assert_eq!(
        replayed.counter,
        CounterCheck::Regressed {
            stored: outcome.new_sign_count,
            received: outcome.new_sign_count
        }
    );
}

#[test]
fn software_authenticator_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let device = SoftwareAuthenticator::new();
    let options = json!({});
    send(&device.create(ORIGIN, &options));
    send(&device.get(ORIGIN, &options));
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<SoftwareAuthenticator>();
}

#[tokio::test]
async fn localhost_and_none_attestation() {
    let rp = rp_with(
        "localhost",
        &["http://localhost:8080"],
        UserVerification::Preferred,
    );
    let device = SoftwareAuthenticator::with_settings(DeviceSettings {
        attestation: SoftwareAttestation::None,
        ..DeviceSettings::default()
    });
    let (_, cred) = register(&rp, &device, "http://localhost:8080", b"dev-user").await;
    assert_eq!(cred.attestation_format, "none");
    let chal = challenge(7);
    let json = sign_in(&rp, &device, "http://localhost:8080", chal, &[]).await;
    let response = AssertionResponse::from_json(&json).unwrap();
    rp.verify_assertion(&chal, &stored(&cred), &response, false)
        .unwrap();
}

#[tokio::test]
async fn independent_devices() {
    let rp = rp();
    let a = SoftwareAuthenticator::new();
    let b = a.new_device();
    let (_, cred_a) = register(&rp, &a, ORIGIN, b"user-a").await;
    let (_, cred_b) = register(&rp, &b, ORIGIN, b"user-b").await;
    assert_ne!(cred_a.credential_id, cred_b.credential_id);
    assert_eq!(a.credential_count(), 1);
    assert_eq!(b.credential_count(), 1);
    // A clone is the same device.
    assert_eq!(a.clone().credential_count(), 1);

    // Device B does not hold device A's credential.
    let options = rp.request_options(challenge(3), &[(cred_a.credential_id.clone(), vec![])]);
    assert!(b.get(ORIGIN, &options).await.is_err());

    // An assertion by A checked against B's key (under A's id) fails.
    let chal = challenge(4);
    let json = sign_in(
        &rp,
        &a,
        ORIGIN,
        chal,
        &[(cred_a.credential_id.clone(), vec![])],
    )
    .await;
    let response = AssertionResponse::from_json(&json).unwrap();
    let wrong_key = StoredCredential {
        id: cred_a.credential_id.clone(),
        public_key: PublicKey::from_cose(&cred_b.public_key_cose).unwrap(),
        sign_count: 0,
    };
    assert_eq!(
        rp.verify_assertion(&chal, &wrong_key, &response, true),
        Err(WebauthnError::BadSignature)
    );
    // And against B's record (B's id): the credential id does not match.
    assert_eq!(
        rp.verify_assertion(&chal, &stored(&cred_b), &response, true),
        Err(WebauthnError::CredentialIdMismatch)
    );
}

#[tokio::test]
async fn registration_negative() {
    let rp = rp();
    let device = SoftwareAuthenticator::new();
    let (options, state) = rp
        .creation_options(b"user-1", "alice", "Alice", challenge(1), &[])
        .unwrap();
    let response = device.create(ORIGIN, &options).await.unwrap();

    // Wrong challenge.
    let (_, other_state) = rp
        .creation_options(b"user-1", "alice", "Alice", challenge(2), &[])
        .unwrap();
    assert_eq!(
        rp.verify_registration(&other_state, &response)
            .unwrap_err()
            .code(),
        "challenge_mismatch"
    );
    // Wrong origin: the same response checked by an RP with other origins.
    let other_rp = rp_with(
        "example.com",
        &["https://www.example.com"],
        UserVerification::Required,
    );
    assert_eq!(
        other_rp
            .verify_registration(&state, &response)
            .unwrap_err()
            .code(),
        "origin_not_allowed"
    );
    // Wrong RP ID.
    let other_rp = rp_with("login.example.com", &[ORIGIN], UserVerification::Required);
    let st = other_rp
        .registration_challenge(&challenge(1), true, &[-7], &[])
        .unwrap();
    assert_eq!(
        other_rp
            .verify_registration(&st, &response)
            .unwrap_err()
            .code(),
        "rp_id_mismatch"
    );
    // Algorithm not offered.
    let st = rp
        .registration_challenge(&challenge(1), true, &[-8], &[])
        .unwrap();
    assert_eq!(
        rp.verify_registration(&st, &response).unwrap_err().code(),
        "algorithm_not_allowed"
    );
    // Excluded credential (RP side).
    let cred = rp.verify_registration(&state, &response).unwrap();
    let st = rp
        .registration_challenge(
            &challenge(1),
            true,
            &[-7],
            std::slice::from_ref(&cred.credential_id),
        )
        .unwrap();
    assert_eq!(
        rp.verify_registration(&st, &response).unwrap_err().code(),
        "credential_excluded"
    );
    // Excluded credential (authenticator side): the device refuses to create a second one.
    let (options2, _) = rp
        .creation_options(
            b"user-1",
            "alice",
            "Alice",
            challenge(5),
            std::slice::from_ref(&cred.credential_id),
        )
        .unwrap();
    assert!(device.create(ORIGIN, &options2).await.is_err());

    // Tampered attestation signature (packed self attestation).
    let att = unb64(response["response"]["attestationObject"].as_str().unwrap());
    let mut tampered = att.clone();
    let last = tampered.len() - 40; // inside authData (the signed part), after the key map
    tampered[last] ^= 0x01;
    let mut r = response.clone();
    r["response"]["attestationObject"] = json!(b64(&tampered));
    assert!(rp.verify_registration(&state, &r).is_err());

    // Trust roots configured: self attestation is not trusted.
    let strict = RelyingParty::new(RpConfig {
        attestation: AttestationPolicy {
            trust_roots: vec![passbind_webauthn::TrustRoot::Pem(W3C_TEST_ROOT.into())],
            ..AttestationPolicy::default()
        },
        ..rp.config().clone()
    })
    .unwrap();
    let st = strict
        .registration_challenge(&challenge(1), true, &[-7], &[])
        .unwrap();
    assert_eq!(
        strict
            .verify_registration(&st, &response)
            .unwrap_err()
            .code(),
        "untrusted_attestation"
    );
}

#[tokio::test]
async fn assertion_negative() {
    let rp = rp();
    let device = SoftwareAuthenticator::new();
    let (_, cred) = register(&rp, &device, ORIGIN, b"user-1").await;
    let stored = stored(&cred);
    let allow = vec![(cred.credential_id.clone(), vec![])];
    let chal = challenge(9);
    let json = sign_in(&rp, &device, ORIGIN, chal, &allow).await;
    let good = AssertionResponse::from_json(&json).unwrap();
    rp.verify_assertion(&chal, &stored, &good, true).unwrap();

    // Wrong challenge.
    assert_eq!(
        rp.verify_assertion(&challenge(8), &stored, &good, true),
        Err(WebauthnError::ChallengeMismatch)
    );
    // Wrong origin: a sibling origin under the same RP ID that the RP does not allow.
    let evil = sign_in(&rp, &device, "https://evil.example.com", chal, &allow).await;
    let evil = AssertionResponse::from_json(&evil).unwrap();
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &evil, true)
            .unwrap_err()
            .code(),
        "origin_not_allowed"
    );
    // Tampered signature.
    let mut r = good.clone();
    let n = r.signature.len();
    r.signature[n - 1] ^= 0x01;
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true),
        Err(WebauthnError::BadSignature)
    );
    // Tampered authenticator data: counter byte, then a flag bit, then the RP ID hash.
    let mut r = good.clone();
    r.authenticator_data[36] ^= 0x01;
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true),
        Err(WebauthnError::BadSignature)
    );
    let mut r = good.clone();
    r.authenticator_data[32] ^= 0x02;
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true),
        Err(WebauthnError::BadSignature)
    );
    // authenticatorData whose length its flags do not account for (§6.1), refused before
    // the signature is looked at: trailing bytes; AT set (an assertion has no attested
    // credential data); ED set without extensions.
    for change in [
        (|d: &mut Vec<u8>| d.push(0)) as fn(&mut Vec<u8>),
        |d| d[32] |= 0x40,
        |d| d[32] |= 0x80,
    ] {
        let mut r = good.clone();
        change(&mut r.authenticator_data);
        assert_eq!(
            rp.verify_assertion(&chal, &stored, &r, true)
                .unwrap_err()
                .code(),
            "malformed_response"
        );
    }
    let mut r = good.clone();
    r.authenticator_data[0] ^= 0x01;
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true),
        Err(WebauthnError::RpIdMismatch)
    );
    // UP cleared (checked before the signature).
    let mut r = good.clone();
    r.authenticator_data[32] &= !0x01;
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true),
        Err(WebauthnError::UserNotPresent)
    );
    // Tampered client data (origin kept): signature no longer matches.
    let mut r = good.clone();
    let cd = String::from_utf8(r.client_data_json.clone()).unwrap();
    r.client_data_json = cd.replacen('{', "{\"extra\":1,", 1).into_bytes();
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true),
        Err(WebauthnError::BadSignature)
    );
    // Wrong type.
    let mut r = good.clone();
    r.client_data_json = cd.replace("webauthn.get", "webauthn.create").into_bytes();
    assert_eq!(
        rp.verify_assertion(&chal, &stored, &r, true)
            .unwrap_err()
            .code(),
        "client_data_type_mismatch"
    );
}

#[tokio::test]
async fn user_verification_required_but_missing() {
    // A device without user verification, registered with an RP that only prefers UV.
    let rp_pref = rp_with("example.com", &[ORIGIN], UserVerification::Preferred);
    let device = SoftwareAuthenticator::with_settings(DeviceSettings {
        user_verification: false,
        ..DeviceSettings::default()
    });
    let (options, _) = rp_pref
        .creation_options(b"user-1", "alice", "Alice", challenge(1), &[])
        .unwrap();
    let response = device.create(ORIGIN, &options).await.unwrap();
    // Registration requiring UV rejects it.
    let st = rp_pref
        .registration_challenge(&challenge(1), true, &[-7], &[])
        .unwrap();
    assert_eq!(
        rp_pref.verify_registration(&st, &response),
        Err(WebauthnError::UserVerificationRequired)
    );
    let st = rp_pref
        .registration_challenge(&challenge(1), false, &[-7], &[])
        .unwrap();
    let cred = rp_pref.verify_registration(&st, &response).unwrap();
    assert!(!cred.user_verified);

    let chal = challenge(2);
    let json = sign_in(&rp_pref, &device, ORIGIN, chal, &[]).await;
    let r = AssertionResponse::from_json(&json).unwrap();
    // Accepted when UV is not required, rejected when it is.
    let outcome = rp_pref
        .verify_assertion(&chal, &stored(&cred), &r, false)
        .unwrap();
    assert!(!outcome.user_verified);
    assert_eq!(
        rp_pref.verify_assertion(&chal, &stored(&cred), &r, true),
        Err(WebauthnError::UserVerificationRequired)
    );
    // An RP configured with UV required enforces it regardless of the argument.
    let rp_req = rp();
    assert_eq!(
        rp_req.verify_assertion(&chal, &stored(&cred), &r, false),
        Err(WebauthnError::UserVerificationRequired)
    );
    // And the device cannot satisfy a request that requires UV.
    let options = rp_req.request_options(chal, &[]);
    assert!(device.get(ORIGIN, &options).await.is_err());
}

/// A tiny deterministic PRNG for the robustness tests.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const JUNK: &[&str] = &["", "!!!", "=", "AAAA", "@@@@", "\u{0}", "aGVsbG8", "-_-_"];

fn junk_values(rng: &mut XorShift) -> Vec<Value> {
    let mut v: Vec<Value> = JUNK.iter().map(|s| json!(s)).collect();
    v.extend([
        json!(null),
        json!(1),
        json!(-1.5),
        json!(true),
        json!([]),
        json!({}),
        json!([1, 2, 3]),
    ]);
    for _ in 0..16 {
        v.push(json!(b64(&rng.bytes(300))));
    }
    v
}

#[tokio::test]
async fn garbage_never_panics() {
    let rp = rp();
    let device = SoftwareAuthenticator::new();
    let (options, state) = rp
        .creation_options(b"user-1", "alice", "Alice", challenge(1), &[])
        .unwrap();
    let reg = device.create(ORIGIN, &options).await.unwrap();
    let cred = rp.verify_registration(&state, &reg).unwrap();
    let stored = stored(&cred);
    let chal = challenge(9);
    let asr = sign_in(&rp, &device, ORIGIN, chal, &[]).await;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);

    // Every field of the assertion JSON replaced by garbage (or removed): an error, no panic.
    let assertion_fields = [
        "/id",
        "/rawId",
        "/type",
        "/response",
        "/response/clientDataJSON",
        "/response/authenticatorData",
        "/response/signature",
        "/response/userHandle",
    ];
    for field in assertion_fields {
        for junk in junk_values(&mut rng) {
            let mut v = asr.clone();
            let is_string = junk.is_string();
            let is_null = junk.is_null();
            *v.pointer_mut(field).unwrap() = junk;
            let outcome = AssertionResponse::from_json(&v)
                .and_then(|r| rp.verify_assertion(&chal, &stored, &r, true));
            // userHandle is not signed (any decodable value passes through to the caller);
            // id, rawId and type are optional (null = absent); all other junk must fail.
            let must_fail = match field {
                "/response/userHandle" => false,
                "/id" | "/rawId" | "/type" => !is_null,
                _ => true,
            };
            if must_fail {
                assert!(
                    outcome.is_err(),
                    "{field} = junk (string: {is_string}) accepted"
                );
            }
        }
        let mut v = asr.clone();
        let (parent, key) = field.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        parent.as_object_mut().unwrap().remove(key);
        let _ = AssertionResponse::from_json(&v)
            .and_then(|r| rp.verify_assertion(&chal, &stored, &r, true));
    }
    // Raw bodies.
    for _ in 0..200 {
        let body = rng.bytes(400);
        assert!(AssertionResponse::from_slice(&body).is_err());
    }

    // Byte-level damage to decoded fields: truncations and random bytes.
    let good = AssertionResponse::from_json(&asr).unwrap();
    for len in 0..good.authenticator_data.len() + 2 {
        let mut r = good.clone();
        r.authenticator_data.resize(len, 0);
        if len != good.authenticator_data.len() {
            assert!(rp.verify_assertion(&chal, &stored, &r, true).is_err());
        }
    }
    for len in 0..good.client_data_json.len() {
        let mut r = good.clone();
        r.client_data_json.truncate(len);
        assert!(rp.verify_assertion(&chal, &stored, &r, true).is_err());
    }
    for i in 0..good.client_data_json.len() {
        let mut r = good.clone();
        r.client_data_json[i] ^= 0x20;
        assert!(rp.verify_assertion(&chal, &stored, &r, true).is_err());
    }
    for _ in 0..300 {
        let mut r = good.clone();
        match rng.next() % 3 {
            0 => r.client_data_json = rng.bytes(200),
            1 => r.authenticator_data = rng.bytes(200),
            _ => r.signature = rng.bytes(200),
        }
        assert!(rp.verify_assertion(&chal, &stored, &r, true).is_err());
    }

    // Every field of the registration JSON replaced by garbage: an error, no panic.
    for field in [
        "/id",
        "/rawId",
        "/type",
        "/response",
        "/response/clientDataJSON",
        "/response/attestationObject",
        "/response/transports",
    ] {
        for junk in junk_values(&mut rng) {
            let mut v = reg.clone();
            *v.pointer_mut(field).unwrap() = junk;
            let outcome = rp.verify_registration(&state, &v);
            if matches!(
                field,
                "/response/clientDataJSON" | "/response/attestationObject" | "/response"
            ) {
                assert!(outcome.is_err(), "{field} accepted");
            }
        }
    }
    // Byte-level damage to the attestation object.
    let att = unb64(reg["response"]["attestationObject"].as_str().unwrap());
    for len in 0..att.len() {
        let mut v = reg.clone();
        v["response"]["attestationObject"] = json!(b64(&att[..len]));
        assert!(rp.verify_registration(&state, &v).is_err());
    }
    for i in 0..att.len() {
        let mut bytes = att.clone();
        bytes[i] ^= 0xff;
        let mut v = reg.clone();
        v["response"]["attestationObject"] = json!(b64(&bytes));
        let _ = rp.verify_registration(&state, &v);
    }
    for _ in 0..300 {
        let mut v = reg.clone();
        v["response"]["attestationObject"] = json!(b64(&rng.bytes(400)));
        assert!(rp.verify_registration(&state, &v).is_err());
    }

    // COSE keys: random bytes and truncations of a real key.
    for _ in 0..500 {
        let _ = PublicKey::from_cose(&rng.bytes(200));
    }
    for len in 0..cred.public_key_cose.len() {
        assert!(PublicKey::from_cose(&cred.public_key_cose[..len]).is_err());
    }
    // Persisted registration state that was tampered with.
    let mut st = serde_json::to_value(&state).unwrap();
    st["challenge"] = json!("!!");
    let st: passbind_webauthn::RegistrationChallenge = serde_json::from_value(st).unwrap();
    assert!(rp.verify_registration(&st, &reg).is_err());
}

/// The W3C WebAuthn L3 test-vector attestation CA (used only as an unrelated trust root).
const W3C_TEST_ROOT: &str = "-----BEGIN CERTIFICATE-----
MIICBzCCAa2gAwIBAgIRAO1/kF2L0LQU0XhJExcKkLYwCgYIKoZIzj0EAwIwYjEe
MBwGA1UEAwwVV2ViQXV0aG4gdGVzdCB2ZWN0b3JzMQwwCgYDVQQKDANXM0MxJTAj
BgNVBAsMHEF1dGhlbnRpY2F0b3IgQXR0ZXN0YXRpb24gQ0ExCzAJBgNVBAYTAkFB
MCAXDTI0MDEwMTAwMDAwMFoYDzMwMjQwMTAxMDAwMDAwWjBiMR4wHAYDVQQDDBVX
ZWJBdXRobiB0ZXN0IHZlY3RvcnMxDDAKBgNVBAoMA1czQzElMCMGA1UECwwcQXV0
aGVudGljYXRvciBBdHRlc3RhdGlvbiBDQTELMAkGA1UEBhMCQUEwWTATBgcqhkjO
PQIBBggqhkjOPQMBBwNCAAQyaTAOX/e2mQFfcM+AqHY79wW8LirwwbOc/3GLfDWI
DKMPMZB42RsDOJoAb9/IodzYTt+gfTCqE0dKJIoNq1uqo0IwQDAPBgNVHRMBAf8E
BTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQURa/3FbDdeGdB/umW68Fl
R6OTGx4wCgYIKoZIzj0EAwIDSAAwRQIgSDBjtrsI3Mg9ozoCwR0vQiAxdok1VNE4
xhSjaQhyTMgCIQD17yyRLUUAs+L1tZHQYiSR6fIg39H5c07EhLt+kIh2Yw==
-----END CERTIFICATE-----
";
