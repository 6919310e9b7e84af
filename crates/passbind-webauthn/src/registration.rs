//! Registration: creation options, the persisted challenge state, and response
//! verification (WebAuthn L3 §7.1) through webauthn-rs-core's `register_credential`.

use crate::attestation::{self, AttestationKind, Ctx};
use crate::authdata;
use crate::b64;
use crate::client_data;
use crate::cose::{alg, PublicKey};
use crate::error::WebauthnError;
use crate::RelyingParty;
use ciborium::value::Value;
use ring::digest;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::time::SystemTime;
use webauthn_rs_core::proto::{
    COSEAlgorithm, ParsedAttestationData, RegisterPublicKeyCredential, RegistrationState,
};
use x509_parser::prelude::X509Certificate;

/// Algorithms offered in `pubKeyCredParams`, in preference order.
pub const OFFERED_ALGORITHMS: &[i64] = &[alg::ES256, alg::EDDSA, alg::ES384, alg::RS256];

/// Maximum credential ID length (L3 §7.1 step 25).
const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// Server-side state of an open registration, to persist between
/// [`RelyingParty::creation_options`] and [`RelyingParty::verify_registration`].
///
/// Serialise it (serde, e.g. JSON) with the registration session. It embeds
/// webauthn-rs-core's `RegistrationState`. That type has private fields and a constructor
/// that always draws its own random challenge, while Passbind derives challenges itself
/// (and some must commit to a transaction context). The state is therefore built by
/// letting webauthn-rs-core generate a state and replacing the `challenge` field in its
/// serde representation with the caller's challenge, then deserialising it back. The
/// representation is checked by a round trip when the state is built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationChallenge {
    challenge: String,
    user_verification_required: bool,
    algorithms: Vec<i64>,
    exclude_credential_ids: Vec<String>,
    core: RegistrationState,
}

impl RegistrationChallenge {
    /// The challenge bytes this registration expects.
    pub fn challenge(&self) -> Vec<u8> {
        b64::decode(&self.challenge).unwrap_or_default()
    }
}

/// A newly registered credential, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCredential {
    /// Credential ID (from the attested credential data).
    pub credential_id: Vec<u8>,
    /// The credential public key exactly as the authenticator encoded it (COSE_Key CBOR).
    /// Parse it with [`PublicKey::from_cose`] when loading the credential.
    pub public_key_cose: Vec<u8>,
    /// COSE algorithm of the key.
    pub alg: i64,
    /// Initial signature counter.
    pub sign_count: u32,
    /// Authenticator AAGUID.
    pub aaguid: [u8; 16],
    /// Transports reported by the client (`response.transports`), as sent.
    pub transports: Vec<String>,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backed_up: bool,
    /// UV flag at registration.
    pub user_verified: bool,
    /// Attestation statement format (`none`, `packed`, `tpm`, `android-key`, `apple`, `fido-u2f`).
    pub attestation_format: String,
}

#[derive(Deserialize)]
struct RawRegInner<'a> {
    #[serde(rename = "clientDataJSON", borrow)]
    client_data_json: Cow<'a, str>,
    #[serde(rename = "attestationObject", borrow)]
    attestation_object: Cow<'a, str>,
    #[serde(default)]
    transports: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawReg<'a> {
    #[serde(rename = "type", default, borrow)]
    type_: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response: RawRegInner<'a>,
}

const KNOWN_FORMATS: &[&str] = &[
    "none",
    "packed",
    "tpm",
    "android-key",
    "android-safetynet",
    "fido-u2f",
    "apple",
];

fn cose_alg(id: i64) -> Option<COSEAlgorithm> {
    COSEAlgorithm::try_from(i128::from(id)).ok()
}

/// Who verifies the attestation statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// webauthn-rs-core's `register_credential`.
    Core,
    /// Passbind's own verifier (`attestation` module).
    Passbind,
}

/// Routes a registration: webauthn-rs-core verifies it unless it is one of the cases that
/// webauthn-rs-core 0.6.2 can never accept or rejects only because of a rule that Passbind
/// interprets differently or makes a policy (see the `attestation` module docs).
fn route(
    client_data_json: &[u8],
    fmt: &str,
    key: &PublicKey,
    key_value: &Value,
    att_stmt: &Value,
    policy: &crate::AttestationPolicy,
) -> Route {
    let leaf = || -> Option<Vec<u8>> {
        attestation::stmt_x5c(att_stmt)
            .ok()
            .flatten()
            .and_then(|c| c.into_iter().next())
    };
    let leaf_cert = |der: &[u8], f: &dyn Fn(&X509Certificate<'_>) -> bool| -> bool {
        attestation::parse_x509(der).map(|c| f(&c)).unwrap_or(false)
    };
    if fmt == "tpm" {
        // only_hash_from_type() fails for every algorithm: no TPM attestation verifies.
        return Route::Passbind;
    }
    // Its CollectedClientData requires tokenBinding to be a dictionary; old clients sent
    // other values (e.g. "unused"), which L3 clients ignore.
    if serde_json::from_slice::<webauthn_rs_core::proto::CollectedClientData>(client_data_json)
        .is_err()
    {
        return Route::Passbind;
    }
    let key_ok = match key.alg() {
        alg::ES256 | alg::ES384 => true,
        // P-521 signatures always verify false there: only self attestation signs with it.
        alg::ES512 => !(fmt == "packed" && leaf().is_none()),
        alg::RS256 => {
            // Its COSEKey parser requires exactly |n| = 256 and |e| = 3 bytes.
            let len = |label: i128| -> Option<usize> {
                match key_value {
                    Value::Map(m) => m.iter().find_map(|(k, v)| match (k, v) {
                        (Value::Integer(i), Value::Bytes(b)) if i128::from(*i) == label => {
                            Some(b.len())
                        }
                        _ => None,
                    }),
                    _ => None,
                }
            };
            len(-1) == Some(256) && len(-2) == Some(3)
        }
        // EdDSA (validate() fails), RS384/RS512/PS256/PS384/PS512/RS1 (not parsed).
        _ => false,
    };
    if !key_ok {
        return Route::Passbind;
    }
    match (fmt, leaf()) {
        // assert_packed_attest_req() requires a basicConstraints extension on the leaf.
        ("packed", Some(der)) if leaf_cert(&der, &attestation::lacks_basic_constraints) => {
            Route::Passbind
        }
        // Its KeyDescription parser rejects lists without origin/purpose; a policy here.
        ("android-key", Some(der)) if policy.android_key_allow_missing_authorizations => {
            let lacks = |c: &X509Certificate<'_>| {
                attestation::key_description_ext(c)
                    .and_then(|e| attestation::parse_key_description(e).ok())
                    .map(|kd| attestation::lacks_origin_and_purpose(&kd))
                    .unwrap_or(false)
            };
            if leaf_cert(&der, &lacks) {
                Route::Passbind
            } else {
                Route::Core
            }
        }
        _ => Route::Core,
    }
}

fn map_core_error(e: webauthn_rs_core::error::WebauthnError) -> WebauthnError {
    use webauthn_rs_core::error::WebauthnError as C;
    match e {
        C::InvalidClientDataType => WebauthnError::ClientDataTypeMismatch {
            expected: "webauthn.create",
            found: String::new(),
        },
        C::MismatchedChallenge => WebauthnError::ChallengeMismatch,
        C::InvalidRPOrigin => WebauthnError::OriginNotAllowed(String::new()),
        C::CredentialCrossOrigin => WebauthnError::CrossOriginNotAllowed,
        C::InvalidRPIDHash => WebauthnError::RpIdMismatch,
        C::UserNotPresent => WebauthnError::UserNotPresent,
        C::UserNotVerified => WebauthnError::UserVerificationRequired,
        C::AttestationNotSupported => {
            WebauthnError::UnsupportedAttestationFormat("not supported by webauthn-rs-core".into())
        }
        other => WebauthnError::AttestationInvalid(format!("{other:?}")),
    }
}

impl RelyingParty {
    /// Builds `PublicKeyCredentialCreationOptions` (as `{"publicKey": {...}}`, the JSON shape
    /// browsers' `PublicKeyCredential.parseCreationOptionsFromJSON` and passkey-rs accept)
    /// and the state to persist until [`verify_registration`](Self::verify_registration).
    ///
    /// The caller supplies the challenge. Offered algorithms: ES256, EdDSA, ES384, RS256;
    /// `residentKey: "preferred"`; `userVerification` from the config; `attestation` from
    /// [`AttestationPolicy::conveyance`](crate::AttestationPolicy::conveyance).
    pub fn creation_options(
        &self,
        user_handle: &[u8],
        user_name: &str,
        display_name: &str,
        challenge: [u8; 32],
        exclude_credential_ids: &[Vec<u8>],
    ) -> Result<(serde_json::Value, RegistrationChallenge), WebauthnError> {
        if user_handle.is_empty() || user_handle.len() > 64 {
            return Err(WebauthnError::InvalidInput(
                "user handle must be 1 to 64 bytes".into(),
            ));
        }
        if user_name.is_empty() || display_name.is_empty() {
            return Err(WebauthnError::InvalidInput(
                "user name and display name must not be empty".into(),
            ));
        }
        let state = self.registration_challenge(
            &challenge,
            self.uv_required(),
            OFFERED_ALGORITHMS,
            exclude_credential_ids,
        )?;
        let params: Vec<serde_json::Value> = OFFERED_ALGORITHMS
            .iter()
            .map(|a| serde_json::json!({"type": "public-key", "alg": a}))
            .collect();
        let exclude: Vec<serde_json::Value> = exclude_credential_ids
            .iter()
            .map(|id| serde_json::json!({"type": "public-key", "id": b64::encode(id)}))
            .collect();
        let options = serde_json::json!({
            "publicKey": {
                "rp": {"id": self.config.rp_id, "name": self.config.rp_name},
                "user": {
                    "id": b64::encode(user_handle),
                    "name": user_name,
                    "displayName": display_name,
                },
                "challenge": b64::encode(&challenge),
                "pubKeyCredParams": params,
                "timeout": self.timeout_ms,
                "excludeCredentials": exclude,
                "authenticatorSelection": {
                    "residentKey": "preferred",
                    "requireResidentKey": false,
                    "userVerification": self.config.user_verification.as_str(),
                },
                "attestation": match self.config.attestation.conveyance {
                    crate::AttestationConveyance::None => "none",
                    crate::AttestationConveyance::Direct => "direct",
                },
                "extensions": {"credProps": true},
            }
        });
        Ok((options, state))
    }

    /// Builds the registration state for a challenge issued elsewhere (any length), e.g. to
    /// verify stored or third-party responses. `algorithms` are the COSE algorithms that
    /// were offered in `pubKeyCredParams`.
    pub fn registration_challenge(
        &self,
        challenge: &[u8],
        require_user_verification: bool,
        algorithms: &[i64],
        exclude_credential_ids: &[Vec<u8>],
    ) -> Result<RegistrationChallenge, WebauthnError> {
        use webauthn_rs_core::proto::UserVerificationPolicy;
        let bad = |m: &str| WebauthnError::InvalidState(m.to_string());
        if challenge.is_empty() {
            return Err(WebauthnError::InvalidInput("empty challenge".into()));
        }
        let core_algs: Vec<COSEAlgorithm> =
            algorithms.iter().filter_map(|a| cose_alg(*a)).collect();
        let builder = self
            .core
            .new_challenge_register_builder(b"passbind", "passbind", "passbind")
            .map_err(|e| bad(&format!("webauthn-rs-core builder: {e:?}")))?
            .user_verification_policy(if require_user_verification {
                UserVerificationPolicy::Required
            } else {
                UserVerificationPolicy::Preferred
            })
            .credential_algorithms(core_algs)
            .exclude_credentials(Some(exclude_credential_ids.to_vec()));
        let (_, generated) = self
            .core
            .generate_challenge_register(builder)
            .map_err(|e| bad(&format!("webauthn-rs-core state: {e:?}")))?;
        // Replace the random challenge with the caller's through the serde representation.
        let encoded = b64::encode(challenge);
        let mut repr = serde_json::to_value(&generated).map_err(|e| bad(&e.to_string()))?;
        match repr.get_mut("challenge") {
            Some(slot) => *slot = serde_json::Value::String(encoded.clone()),
            None => {
                return Err(bad(
                    "webauthn-rs-core RegistrationState has no challenge field",
                ))
            }
        }
        let core: RegistrationState =
            serde_json::from_value(repr).map_err(|e| bad(&e.to_string()))?;
        let check = serde_json::to_value(&core).map_err(|e| bad(&e.to_string()))?;
        if check.get("challenge").and_then(|c| c.as_str()) != Some(encoded.as_str()) {
            return Err(bad(
                "webauthn-rs-core RegistrationState challenge did not round-trip",
            ));
        }
        Ok(RegistrationChallenge {
            challenge: encoded,
            user_verification_required: require_user_verification,
            algorithms: algorithms.to_vec(),
            exclude_credential_ids: exclude_credential_ids
                .iter()
                .map(|i| b64::encode(i))
                .collect(),
            core,
        })
    }

    /// Verifies a registration response (`RegistrationResponseJSON`) against the state from
    /// [`creation_options`](Self::creation_options), at the current system time.
    pub fn verify_registration(
        &self,
        state: &RegistrationChallenge,
        response: &serde_json::Value,
    ) -> Result<VerifiedCredential, WebauthnError> {
        self.verify_registration_at(state, response, SystemTime::now())
    }

    /// [`verify_registration`](Self::verify_registration) with an explicit verification time
    /// for attestation certificate validity (the core passes its clock; tests pin it).
    ///
    /// webauthn-rs-core's `register_credential` reads `SystemTime::now()` for certificate
    /// chains and exposes no time parameter, so it is called without trust roots (it then
    /// checks no validity period) and the trust path is verified afterwards by Passbind at
    /// `now` (see `attestation::chain` for why not with webauthn-rs-core's chain verifier).
    pub fn verify_registration_at(
        &self,
        state: &RegistrationChallenge,
        response: &serde_json::Value,
        now: SystemTime,
    ) -> Result<VerifiedCredential, WebauthnError> {
        let raw = RawReg::deserialize(response)
            .map_err(|e| WebauthnError::malformed(format!("registration JSON: {e}")))?;
        if let Some(t) = &raw.type_ {
            if t != "public-key" {
                return Err(WebauthnError::malformed(
                    "credential type is not public-key",
                ));
            }
        }
        let client_data_json = b64::decode(&raw.response.client_data_json)
            .ok_or_else(|| WebauthnError::malformed("clientDataJSON is not base64url"))?;
        let attestation_object = b64::decode(&raw.response.attestation_object)
            .ok_or_else(|| WebauthnError::malformed("attestationObject is not base64url"))?;
        let transports: Vec<String> = match &raw.response.transports {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let expected_challenge = b64::decode(&state.challenge)
            .ok_or_else(|| WebauthnError::InvalidState("challenge is not base64url".into()))?;

        // Steps 5-6: UTF-8 decode and parse clientDataJSON.
        let c = client_data::parse(&client_data_json)?;
        // Step 7: C.type is "webauthn.create".
        c.check_type("webauthn.create")?;
        // Step 8: C.challenge.
        c.check_challenge(&expected_challenge)?;
        // Step 9: C.origin.
        self.check_origin(&c.origin)?;
        // Step 10: C.topOrigin / crossOrigin.
        c.check_not_cross_origin()?;
        // Step 11: hash of clientDataJSON.
        let client_data_hash = digest::digest(&digest::SHA256, &client_data_json);

        // Step 12: CBOR-decode the attestationObject into fmt, authData, attStmt.
        let mut rdr = attestation_object.as_slice();
        let att_obj: Value = ciborium::de::from_reader(&mut rdr)
            .map_err(|_| WebauthnError::malformed("attestationObject is not valid CBOR"))?;
        if !rdr.is_empty() {
            return Err(WebauthnError::malformed(
                "trailing bytes after attestationObject",
            ));
        }
        let entries = match &att_obj {
            Value::Map(m) => m.as_slice(),
            _ => return Err(WebauthnError::malformed("attestationObject is not a map")),
        };
        // A key given twice could be read differently by webauthn-rs-core: reject it.
        for key in ["fmt", "authData", "attStmt"] {
            let n = entries
                .iter()
                .filter(|(k, _)| matches!(k, Value::Text(t) if t == key))
                .count();
            if n > 1 {
                return Err(WebauthnError::malformed(format!(
                    "attestationObject.{key} appears {n} times"
                )));
            }
        }
        let get = |key: &str| -> Option<&Value> {
            entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
                .map(|(_, v)| v)
        };
        let fmt = match get("fmt") {
            Some(Value::Text(t)) => t.as_str(),
            _ => return Err(WebauthnError::malformed("attestationObject.fmt missing")),
        };
        let auth_data_bytes = match get("authData") {
            Some(Value::Bytes(b)) => b.as_slice(),
            _ => {
                return Err(WebauthnError::malformed(
                    "attestationObject.authData missing",
                ))
            }
        };
        let att_stmt = match get("attStmt") {
            Some(v @ Value::Map(_)) => v,
            _ => {
                return Err(WebauthnError::malformed(
                    "attestationObject.attStmt missing",
                ))
            }
        };
        let auth_data = authdata::parse_full(auth_data_bytes)?;
        let header = auth_data.header;

        // Step 13: rpIdHash.
        if header.rp_id_hash != self.rp_id_hash.as_ref() {
            return Err(WebauthnError::RpIdMismatch);
        }
        // Step 14: UP.
        if !header.up() {
            return Err(WebauthnError::UserNotPresent);
        }
        // Step 15: UV when required.
        if state.user_verification_required && !header.uv() {
            return Err(WebauthnError::UserVerificationRequired);
        }
        // Step 16: BS requires BE. Steps 17-18 (BE/BS policy) are returned to the caller.
        if !header.be() && header.bs() {
            return Err(WebauthnError::InvalidBackupFlags);
        }
        let attested = auth_data.attested.as_ref().ok_or_else(|| {
            WebauthnError::malformed("authenticator data has no attested credential data")
        })?;
        // Step 19: the credential key's alg is one of pubKeyCredParams. Passbind also requires
        // that it can verify assertions with the key later.
        let key = PublicKey::from_cose_value(&attested.public_key_value)?;
        if !state.algorithms.contains(&key.alg()) {
            return Err(WebauthnError::AlgorithmNotAllowed(key.alg()));
        }
        // Step 20: extensions. Passbind requests only the client extension credProps, which
        // produces no authenticator output to check.

        // Step 25 (checked early): credentialId length. Exclude list (webauthn-rs-core
        // semantics, a UX aid rather than a security control).
        if attested.credential_id.len() > MAX_CREDENTIAL_ID_LEN {
            return Err(WebauthnError::malformed(
                "credential id longer than 1023 bytes",
            ));
        }
        let cred_id_b64 = b64::encode(attested.credential_id);
        if state.exclude_credential_ids.contains(&cred_id_b64) {
            return Err(WebauthnError::CredentialExcluded);
        }

        // Step 21: determine the attestation statement format.
        if !KNOWN_FORMATS.contains(&fmt) {
            return Err(WebauthnError::UnsupportedAttestationFormat(fmt.to_string()));
        }
        if fmt == "android-safetynet" {
            // Not implemented by webauthn-rs-core 0.6.2 nor here (deprecated by Google).
            return Err(WebauthnError::UnsupportedAttestationFormat(fmt.to_string()));
        }
        let policy = &self.config.attestation;
        if fmt == "fido-u2f" && attested.aaguid != [0u8; 16] && !policy.allow_u2f_nonzero_aaguid {
            return Err(WebauthnError::attestation(
                "fido-u2f attestation with a non-zero AAGUID (policy allow_u2f_nonzero_aaguid)",
            ));
        }

        // Step 22: verify the attestation statement; the result is the attestation trust
        // path (x5c) or none (none / self attestation).
        let x5c = attestation::stmt_x5c(att_stmt)?;
        let chosen = if self.passbind_attestation_only {
            Route::Passbind
        } else {
            route(
                &client_data_json,
                fmt,
                &key,
                &attested.public_key_value,
                att_stmt,
                policy,
            )
        };
        let trust_path: Option<Vec<Vec<u8>>> = match chosen {
            Route::Core => {
                let reg_json = serde_json::json!({
                    "id": cred_id_b64,
                    "rawId": cred_id_b64,
                    "type": "public-key",
                    "response": {
                        "attestationObject": b64::encode(&attestation_object),
                        "clientDataJSON": b64::encode(&client_data_json),
                    },
                    "extensions": {},
                });
                let reg: RegisterPublicKeyCredential =
                    serde_json::from_value(reg_json).map_err(|e| {
                        WebauthnError::InvalidState(format!("re-encoding response: {e}"))
                    })?;
                // No trust roots here: they would be checked at SystemTime::now().
                let credential = self
                    .core
                    .register_credential(&reg, &state.core, None)
                    .map_err(map_core_error)?;
                match credential.attestation.data {
                    ParsedAttestationData::None | ParsedAttestationData::Self_ => None,
                    ParsedAttestationData::Basic(_)
                    | ParsedAttestationData::AttCa(_)
                    | ParsedAttestationData::AnonCa(_) => Some(x5c.unwrap_or_default()),
                    ParsedAttestationData::ECDAA | ParsedAttestationData::Uncertain => {
                        return Err(WebauthnError::UnsupportedAttestationFormat(format!(
                            "{fmt} (ECDAA/uncertain)"
                        )))
                    }
                }
            }
            Route::Passbind => {
                let ctx = Ctx {
                    auth_data: auth_data_bytes,
                    client_data_hash: client_data_hash.as_ref(),
                    att_stmt,
                    credential: attested,
                    key: &key,
                    policy,
                };
                let kind = match fmt {
                    "none" => attestation::verify_none(&ctx)?,
                    "packed" => attestation::verify_packed(&ctx)?,
                    "tpm" => attestation::verify_tpm(&ctx)?,
                    "android-key" => attestation::verify_android_key(&ctx)?,
                    "fido-u2f" => attestation::verify_fido_u2f(&ctx)?,
                    "apple" => attestation::verify_apple(&ctx)?,
                    other => {
                        return Err(WebauthnError::UnsupportedAttestationFormat(
                            other.to_string(),
                        ))
                    }
                };
                match kind {
                    AttestationKind::None | AttestationKind::SelfAttestation => None,
                    AttestationKind::Basic(chain) | AttestationKind::AttCa(chain) => Some(chain),
                }
            }
        };

        // Steps 23-24: trust anchors and trustworthiness.
        if let Some(anchors) = &self.trust_roots {
            match &trust_path {
                None => {
                    return Err(WebauthnError::UntrustedAttestation(
                        "trust roots are configured and the attestation has no certificate chain"
                            .into(),
                    ))
                }
                Some(chain) => attestation::verify_trust_path(
                    chain,
                    anchors,
                    now,
                    policy.allow_sha1_attestation,
                )?,
            }
        }

        Ok(VerifiedCredential {
            credential_id: attested.credential_id.to_vec(),
            public_key_cose: attested.public_key_cose.to_vec(),
            alg: key.alg(),
            sign_count: header.sign_count,
            aaguid: attested.aaguid,
            transports,
            backup_eligible: header.be(),
            backed_up: header.bs(),
            user_verified: header.uv(),
            attestation_format: fmt.to_string(),
        })
    }
}
