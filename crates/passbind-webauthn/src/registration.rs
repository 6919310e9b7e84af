//! Registration: creation options, the persisted challenge state, and response
//! verification (WebAuthn L3 §7.1), every step and every attestation statement format (L3 §8)
//! verified here.

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

/// Algorithms offered in `pubKeyCredParams`, in preference order.
pub const OFFERED_ALGORITHMS: &[i64] = &[alg::ES256, alg::EDDSA, alg::ES384, alg::RS256];

/// Maximum credential ID length (L3 §7.1 step 25).
const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// Server-side state of an open registration, to persist between
/// [`RelyingParty::creation_options`] and [`RelyingParty::verify_registration`].
///
/// Serialise it (serde, e.g. JSON) with the registration session. States written by earlier
/// versions carry one more member (`core`), which is ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationChallenge {
    challenge: String,
    user_verification_required: bool,
    algorithms: Vec<i64>,
    exclude_credential_ids: Vec<String>,
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
        if challenge.is_empty() {
            return Err(WebauthnError::InvalidInput("empty challenge".into()));
        }
        let encoded = b64::encode(challenge);
        Ok(RegistrationChallenge {
            challenge: encoded,
            user_verification_required: require_user_verification,
            algorithms: algorithms.to_vec(),
            exclude_credential_ids: exclude_credential_ids
                .iter()
                .map(|i| b64::encode(i))
                .collect(),
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
        // A key given twice could be read differently by another decoder: reject it.
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

        // Step 25 (checked early): credentialId length. Exclude list (a UX aid rather than a
        // security control).
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
            // Not implemented (deprecated by Google).
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
        let trust_path: Option<Vec<Vec<u8>>> = {
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
