//! Assertion (authentication) verification: WebAuthn L3 §7.2, implemented here on `ring`.
//!
//! This is the hot path of routine sign-in: the credential public key is parsed once ([`PublicKey::from_cose`]) and cached by the
//! caller, the response is parsed with borrowed strings, and the only heavy operation is
//! the one signature verification.

use crate::authdata;
use crate::b64;
use crate::client_data;
use crate::cose::PublicKey;
use crate::error::WebauthnError;
use crate::RelyingParty;
use ring::digest;
use serde::Deserialize;
use std::borrow::Cow;

/// A stored credential, as the caller keeps it (the public key already parsed).
#[derive(Debug, Clone)]
pub struct StoredCredential {
    /// The credential ID (raw bytes).
    pub id: Vec<u8>,
    /// The credential public key, parsed once with [`PublicKey::from_cose`].
    pub public_key: PublicKey,
    /// The last signature counter value stored for this credential.
    pub sign_count: u32,
}

/// An authentication response (`PublicKeyCredential` with an `AuthenticatorAssertionResponse`),
/// decoded from the JSON a browser sends (`AuthenticationResponseJSON`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionResponse {
    /// The credential ID (from `rawId`, or `id` when `rawId` is absent).
    pub raw_id: Vec<u8>,
    /// `response.clientDataJSON`, decoded.
    pub client_data_json: Vec<u8>,
    /// `response.authenticatorData`, decoded.
    pub authenticator_data: Vec<u8>,
    /// `response.signature`, decoded.
    pub signature: Vec<u8>,
    /// `response.userHandle`, decoded (`None` when absent, null or empty).
    pub user_handle: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct RawInner<'a> {
    #[serde(rename = "clientDataJSON", borrow)]
    client_data_json: Cow<'a, str>,
    #[serde(rename = "authenticatorData", borrow)]
    authenticator_data: Cow<'a, str>,
    #[serde(borrow)]
    signature: Cow<'a, str>,
    #[serde(rename = "userHandle", default, borrow)]
    user_handle: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawAssertion<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "rawId", default, borrow)]
    raw_id: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    type_: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response: RawInner<'a>,
}

fn field(name: &str, value: &str) -> Result<Vec<u8>, WebauthnError> {
    b64::decode(value).ok_or_else(|| WebauthnError::malformed(format!("{name} is not base64url")))
}

impl AssertionResponse {
    /// Parses `AuthenticationResponseJSON` from raw bytes (the HTTP body as received).
    pub fn from_slice(json: &[u8]) -> Result<AssertionResponse, WebauthnError> {
        let raw: RawAssertion<'_> = serde_json::from_slice(json)
            .map_err(|e| WebauthnError::malformed(format!("assertion JSON: {e}")))?;
        Self::from_raw(raw)
    }

    /// Parses `AuthenticationResponseJSON` from an already-parsed JSON value.
    pub fn from_json(json: &serde_json::Value) -> Result<AssertionResponse, WebauthnError> {
        let raw = RawAssertion::deserialize(json)
            .map_err(|e| WebauthnError::malformed(format!("assertion JSON: {e}")))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawAssertion<'_>) -> Result<AssertionResponse, WebauthnError> {
        if let Some(t) = &raw.type_ {
            if t != "public-key" {
                return Err(WebauthnError::malformed(
                    "credential type is not public-key",
                ));
            }
        }
        let raw_id = match (&raw.raw_id, &raw.id) {
            (Some(r), id) => {
                let r = field("rawId", r)?;
                if let Some(id) = id {
                    if field("id", id)? != r {
                        return Err(WebauthnError::malformed("id and rawId differ"));
                    }
                }
                r
            }
            (None, Some(id)) => field("id", id)?,
            (None, None) => return Err(WebauthnError::malformed("missing rawId")),
        };
        let user_handle = match raw.response.user_handle.as_deref() {
            None | Some("") => None,
            Some(u) => Some(field("userHandle", u)?),
        };
        Ok(AssertionResponse {
            raw_id,
            client_data_json: field("clientDataJSON", &raw.response.client_data_json)?,
            authenticator_data: field("authenticatorData", &raw.response.authenticator_data)?,
            signature: field("signature", &raw.response.signature)?,
            user_handle,
        })
    }
}

/// Result of the signature-counter comparison (L3 §7.2 step 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterCheck {
    /// The received counter is greater than the stored one.
    Advanced,
    /// Both the stored and the received counter are zero: the authenticator has no counter.
    NotSupported,
    /// The received counter is not greater than the stored one: a signal (not proof) that the
    /// authenticator may have been cloned. Reported, not rejected; the caller applies policy.
    Regressed {
        /// The stored value.
        stored: u32,
        /// The value in this assertion.
        received: u32,
    },
}

/// What a verified assertion tells the relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionOutcome {
    /// The counter from the authenticator data (store it if `counter` is `Advanced`).
    pub new_sign_count: u32,
    /// The counter comparison.
    pub counter: CounterCheck,
    /// The UV flag.
    pub user_verified: bool,
    /// The BE flag.
    pub backup_eligible: bool,
    /// The BS flag.
    pub backed_up: bool,
    /// `response.userHandle`, if the authenticator returned one (discoverable credentials).
    /// The caller must check it belongs to the credential's user (L3 §7.2 step 6).
    pub user_handle: Option<Vec<u8>>,
}

impl RelyingParty {
    /// Verifies an authentication assertion (WebAuthn L3 §7.2).
    ///
    /// `expected_challenge` is the challenge the server put in the request options;
    /// `credential` is the stored credential the response claims to be (looked up by the
    /// caller from `response.raw_id`). User verification is enforced when
    /// `require_user_verification` is true or the RP is configured with
    /// [`UserVerification::Required`](crate::UserVerification::Required).
    ///
    /// A non-advancing signature counter is reported in [`AssertionOutcome::counter`], not
    /// rejected. Never panics on any input.
    pub fn verify_assertion(
        &self,
        expected_challenge: &[u8],
        credential: &StoredCredential,
        response: &AssertionResponse,
        require_user_verification: bool,
    ) -> Result<AssertionOutcome, WebauthnError> {
        // Steps 1-4 (options, get(), response type, client extension results) happen in the
        // client and in the caller; the response type was checked by AssertionResponse parsing.

        // Step 5: if allowCredentials was not empty, credential.id must be one of them, and
        // step 6: the credential record's id must equal credential.rawId. The caller looked the
        // record up by rawId (and restricted it to the allow list); we re-check equality.
        // The userHandle (step 6, user identified or not) is returned for the caller to check.
        if response.raw_id != credential.id {
            return Err(WebauthnError::CredentialIdMismatch);
        }

        // Step 7: cData, authData, sig.
        let c_data = &response.client_data_json;
        let auth_data = &response.authenticator_data;
        let sig = &response.signature;

        // Steps 8-9: UTF-8 decode and JSON-parse cData into C.
        let c = client_data::parse(c_data)?;

        // Step 10: C.type is "webauthn.get".
        c.check_type("webauthn.get")?;

        // Step 11: C.challenge equals base64url(options.challenge).
        c.check_challenge(expected_challenge)?;

        // Step 12: C.origin is an origin expected by the RP (§13.4.9).
        self.check_origin(&c.origin)?;

        // Step 13: C.topOrigin (cross-origin iframes) is not accepted by Passbind.
        c.check_not_cross_origin()?;

        // Step 14: rpIdHash is SHA-256 of the RP ID. authData is parsed whole (§6.1): its
        // length is fixed by its flags and extensions, and an assertion carries no attested
        // credential data (§6.3.3 step 11), so AT set or bytes after it are malformed.
        let header = authdata::parse_full(auth_data)?.header;
        if header.flags & authdata::FLAG_AT != 0 {
            return Err(WebauthnError::malformed(
                "attested credential data in an assertion",
            ));
        }
        if header.rp_id_hash != self.rp_id_hash.as_ref() {
            return Err(WebauthnError::RpIdMismatch);
        }

        // Step 15: UP is set.
        if !header.up() {
            return Err(WebauthnError::UserNotPresent);
        }

        // Step 16: UV is set if user verification is required.
        if (require_user_verification || self.uv_required()) && !header.uv() {
            return Err(WebauthnError::UserVerificationRequired);
        }

        // Step 17: if BE is not set, BS must not be set.
        if !header.be() && header.bs() {
            return Err(WebauthnError::InvalidBackupFlags);
        }

        // Step 18 (comparing BE/BS with the stored record) is RP business logic: the flags are
        // returned in the outcome. Step 19 (extensions): Passbind requests none in get().

        // Step 20: hash = SHA-256(cData).
        let hash = digest::digest(&digest::SHA256, c_data);

        // Step 21: sig is a valid signature over authData || hash with the credential key.
        let mut signed = Vec::with_capacity(auth_data.len() + 32);
        signed.extend_from_slice(auth_data);
        signed.extend_from_slice(hash.as_ref());
        credential.public_key.verify(&signed, sig)?;

        // Step 22: signature counter.
        let received = header.sign_count;
        let stored = credential.sign_count;
        let counter = if received == 0 && stored == 0 {
            CounterCheck::NotSupported
        } else if received > stored {
            CounterCheck::Advanced
        } else {
            CounterCheck::Regressed { stored, received }
        };

        // Step 23 (attestationObject in assertions) does not apply: Passbind does not request
        // attestation for get(). Step 24 (update the record) is the caller's.
        Ok(AssertionOutcome {
            new_sign_count: received,
            counter,
            user_verified: header.uv(),
            backup_eligible: header.be(),
            backed_up: header.bs(),
            user_handle: response.user_handle.clone(),
        })
    }
}
