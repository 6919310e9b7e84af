//! The built-in relying party: the core's `RelyingParty` port over `passbind-webauthn`.

use passbind_core::ports::{
    AssertionParts, CounterStatus, Creation, NewCredential, RelyingParty, RpError,
    VerifiedAssertion,
};
use passbind_webauthn::{
    AssertionResponse, AttestationPolicy, CounterCheck, PublicKey, RegistrationChallenge,
    RelyingParty as Rp, RpConfig, StoredCredential, UserVerification, WebauthnError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Parsed public keys kept at most (then the cache starts over).
const KEY_CACHE_LIMIT: usize = 100_000;

pub struct WebauthnRp {
    rp: Rp,
    require_user_verification: bool,
    /// COSE bytes -> parsed key: the sign-in hot path verifies without re-parsing.
    keys: Mutex<HashMap<Vec<u8>, Arc<PublicKey>>>,
}

impl WebauthnRp {
    pub fn new(
        rp_id: &str,
        rp_name: &str,
        origins: &[String],
        require_user_verification: bool,
    ) -> anyhow::Result<Self> {
        let rp = Rp::new(RpConfig {
            rp_id: rp_id.to_owned(),
            rp_name: rp_name.to_owned(),
            origins: origins.to_vec(),
            user_verification: if require_user_verification {
                UserVerification::Required
            } else {
                UserVerification::Preferred
            },
            attestation: AttestationPolicy::default(),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            rp,
            require_user_verification,
            keys: Mutex::new(HashMap::new()),
        })
    }

    fn parsed_key(&self, cose: &[u8]) -> Result<Arc<PublicKey>, RpError> {
        if let Ok(cache) = self.keys.lock() {
            if let Some(k) = cache.get(cose) {
                return Ok(k.clone());
            }
        }
        let key = Arc::new(PublicKey::from_cose(cose).map_err(rp_error)?);
        if let Ok(mut cache) = self.keys.lock() {
            if cache.len() >= KEY_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(cose.to_vec(), key.clone());
        }
        Ok(key)
    }

    /// The adapter's library object, for the assertion fast path.
    pub fn inner(&self) -> &Rp {
        &self.rp
    }
}

fn rp_error(e: WebauthnError) -> RpError {
    RpError {
        reason: e.code(),
        message: e.to_string(),
    }
}

impl RelyingParty for WebauthnRp {
    fn creation_options(
        &self,
        user_handle: &[u8],
        user_name: &str,
        display_name: &str,
        challenge: [u8; 32],
        exclude_credential_ids: &[Vec<u8>],
    ) -> Result<Creation, RpError> {
        let (options, state) = self
            .rp
            .creation_options(
                user_handle,
                user_name,
                display_name,
                challenge,
                exclude_credential_ids,
            )
            .map_err(rp_error)?;
        let state = serde_json::to_value(&state).map_err(|e| RpError {
            reason: "internal",
            message: e.to_string(),
        })?;
        Ok(Creation { options, state })
    }

    fn verify_registration(
        &self,
        state: &serde_json::Value,
        response: &serde_json::Value,
    ) -> Result<NewCredential, RpError> {
        let state: RegistrationChallenge =
            serde_json::from_value(state.clone()).map_err(|e| RpError {
                reason: "internal",
                message: format!("stored registration state: {e}"),
            })?;
        let c = self
            .rp
            .verify_registration(&state, response)
            .map_err(rp_error)?;
        Ok(NewCredential {
            credential_id: c.credential_id,
            public_key_cose: c.public_key_cose,
            alg: c.alg,
            sign_count: c.sign_count,
            aaguid: c.aaguid,
            transports: c.transports,
            backup_eligible: c.backup_eligible,
            backed_up: c.backed_up,
            user_verified: c.user_verified,
            attestation_format: c.attestation_format,
        })
    }

    fn request_options(
        &self,
        challenge: [u8; 32],
        allow_credentials: &[(Vec<u8>, Vec<String>)],
    ) -> serde_json::Value {
        self.rp.request_options(challenge, allow_credentials)
    }

    fn parse_assertion(&self, response: &serde_json::Value) -> Result<AssertionParts, RpError> {
        let r = AssertionResponse::from_json(response).map_err(rp_error)?;
        Ok(AssertionParts {
            credential_id: r.raw_id,
            client_data_json: r.client_data_json,
            authenticator_data: r.authenticator_data,
            signature: r.signature,
            user_handle: r.user_handle,
        })
    }

    fn verify_assertion(
        &self,
        challenge: &[u8],
        credential_id: &[u8],
        public_key_cose: &[u8],
        stored_sign_count: u32,
        assertion: AssertionParts,
    ) -> Result<VerifiedAssertion, RpError> {
        let key = self.parsed_key(public_key_cose)?;
        let stored = StoredCredential {
            id: credential_id.to_vec(),
            public_key: (*key).clone(),
            sign_count: stored_sign_count,
        };
        let response = AssertionResponse {
            raw_id: assertion.credential_id,
            client_data_json: assertion.client_data_json,
            authenticator_data: assertion.authenticator_data,
            signature: assertion.signature,
            user_handle: assertion.user_handle,
        };
        let out = self
            .rp
            .verify_assertion(
                challenge,
                &stored,
                &response,
                self.require_user_verification,
            )
            .map_err(rp_error)?;
        Ok(VerifiedAssertion {
            new_sign_count: out.new_sign_count,
            counter: match out.counter {
                CounterCheck::Advanced => CounterStatus::Advanced,
                CounterCheck::NotSupported => CounterStatus::NotSupported,
                CounterCheck::Regressed { .. } => CounterStatus::Regressed,
            },
            user_verified: out.user_verified,
            backup_eligible: out.backup_eligible,
            backed_up: out.backed_up,
        })
    }
}
