//! The built-in relying party: the core's `RelyingParty` port over `passbind-webauthn`.

use passbind_core::ports::{Creation, NewCredential, RelyingParty, RpError};
use passbind_webauthn::{
    AttestationPolicy, RegistrationChallenge, RelyingParty as Rp, RpConfig, UserVerification,
    WebauthnError,
};

pub struct WebauthnRp {
    rp: Rp,
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
        Ok(Self { rp })
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
}
