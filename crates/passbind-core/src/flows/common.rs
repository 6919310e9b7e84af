//! Pieces shared by the flows: users, biometric tokens, lockouts, assertions, completion gates.

use crate::crypto::{b64url_decode, sha256};
use crate::engine::{Engine, RpMode};
use crate::error::CoreError;
use crate::machine::effective_state;
use crate::model::*;
use crate::ports::{
    CounterStatus, IdvPurpose, RelyingParty, StartRun, StartedRun, VerifiedAssertion,
};
use crate::validate;
use passbind_proto::session::{Flow, IdvFailureReason, SessionState};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The failure kind that counts towards the step-up lockout.
pub(crate) const FAILURE_STEP_UP: &str = "step_up_biometric";

/// Canonical JSON of a transaction context: RFC 8785 (JSON Canonicalization Scheme), so that
/// the same context yields the same hash whatever its key order, whitespace or number spelling
/// (`250.0` and `250` are one number), and any RFC 8785 library reproduces it, in JavaScript
/// too (see [`passbind_audit::canonical::to_jcs`]).
pub fn canonical_json(v: &serde_json::Value) -> String {
    // RFC 8785 output is UTF-8 by construction.
    String::from_utf8(passbind_audit::canonical::to_jcs(v)).unwrap_or_default()
}

/// `SHA-256(canonical JSON of the transaction context)`.
pub fn transaction_hash(ctx: &serde_json::Value) -> [u8; 32] {
    sha256(canonical_json(ctx).as_bytes())
}

/// The step-up challenge: `SHA-256("passbind/step-up/v1" 0x00 nonce tx_hash)`, where `tx_hash`
/// is 32 zero bytes when there is no transaction context. The assertion's signature over
/// clientDataJSON (which carries the challenge) thereby commits to the transaction.
pub fn step_up_challenge(nonce: &[u8; 32], tx_hash: Option<&[u8; 32]>) -> [u8; 32] {
    let mut buf = Vec::with_capacity(20 + 1 + 64);
    buf.extend_from_slice(b"passbind/step-up/v1");
    buf.push(0);
    buf.extend_from_slice(nonce);
    buf.extend_from_slice(tx_hash.unwrap_or(&[0u8; 32]));
    sha256(&buf)
}

/// Credentials a sign-in may use: raw ids and transports.
pub(crate) type AllowList = Vec<(Vec<u8>, Vec<String>)>;

/// The live credentials of a user, as an allow list.
fn allowed(credentials: Vec<CredentialRecord>) -> AllowList {
    credentials
        .into_iter()
        .filter(|c| c.revoked_at.is_none() && c.public_key.is_some())
        .filter_map(|c| b64url_decode(&c.credential_id).map(|id| (id, c.transports)))
        .collect()
}

/// What [`Engine::load_session_with_credential`] read beside the session: the credential
/// named `credential_id` (`None` inside: there is none) and its owner. Empty when nothing
/// was read.
#[derive(Debug, Default)]
pub(crate) struct Preloaded {
    pub(crate) credential_id: Option<String>,
    pub(crate) credential: Option<CredentialRecord>,
    pub(crate) owner: Option<UserRecord>,
}

impl Engine {
    /// The built-in relying party, or `not_supported` in external mode.
    pub(crate) fn builtin_rp(&self) -> Result<&Arc<dyn RelyingParty>, CoreError> {
        match &self.rp {
            RpMode::BuiltIn(rp) => Ok(rp),
            RpMode::External => Err(CoreError::NotSupported(
                "WebAuthn is verified by the integrator's IDP in external relying-party mode",
            )),
        }
    }

    /// A user who exists and was not erased.
    pub(crate) async fn active_user(
        &self,
        external_user_id: &str,
    ) -> Result<UserRecord, CoreError> {
        validate::external_user_id(external_user_id)?;
        match self.store.user_by_external_id(external_user_id).await? {
            Some(u) if u.erased_at.is_none() => Ok(u),
            _ => Err(CoreError::UserNotFound),
        }
    }

    /// Like [`Engine::active_user`], with the credentials a sign-in may use
    /// ([`Engine::allow_list`]), read at once.
    pub(crate) async fn active_user_with_allow_list(
        &self,
        external_user_id: &str,
    ) -> Result<(UserRecord, AllowList), CoreError> {
        validate::external_user_id(external_user_id)?;
        match self.store.user_with_credentials(external_user_id).await? {
            Some((u, credentials)) if u.erased_at.is_none() => Ok((u, allowed(credentials))),
            _ => Err(CoreError::UserNotFound),
        }
    }

    /// The live user `user_id`: from `preloaded` when it read that user, else from the store.
    pub(crate) async fn live_user_preloaded(
        &self,
        user_id: &str,
        preloaded: &Preloaded,
    ) -> Result<Option<UserRecord>, CoreError> {
        match &preloaded.owner {
            Some(u) if u.id == user_id => Ok(Some(u.clone()).filter(|u| u.erased_at.is_none())),
            _ => self.live_user(user_id).await,
        }
    }

    /// A user by internal id, if they exist and were not erased.
    pub(crate) async fn live_user(&self, user_id: &str) -> Result<Option<UserRecord>, CoreError> {
        Ok(self
            .store
            .user(user_id)
            .await?
            .filter(|u| u.erased_at.is_none()))
    }

    /// The user's biometric token, decrypted in memory only.
    pub(crate) async fn stored_token(
        &self,
        user: &UserRecord,
    ) -> Result<Zeroizing<String>, CoreError> {
        let rec = self
            .store
            .ebt(&user.id)
            .await?
            .ok_or(CoreError::NoBiometricReference)?;
        Ok(self.keys.ebt.open_ebt(&rec)?)
    }

    /// Looks up a live single-use secret of `kind` presented in clear, and the session of `flow`
    /// it belongs to. Anything else (malformed, unknown, another kind, consumed, expired, a
    /// session of another flow) is `invalid`. The caller consumes it with
    /// `Write::ConsumeSecret` in the commit that uses it, which makes a race lose.
    pub(crate) async fn live_secret(
        &self,
        kind: &str,
        presented: &str,
        flow: Flow,
        invalid: fn() -> CoreError,
    ) -> Result<(Vec<u8>, SessionRecord), CoreError> {
        let token = presented.trim();
        if token.is_empty() || token.len() > 128 {
            return Err(invalid());
        }
        let hash = crate::crypto::sha256(token.as_bytes()).to_vec();
        let now = self.now();
        let secret = match self.store.secret(&hash).await? {
            Some(x) if x.kind == kind && x.consumed_at.is_none() && now < x.expires_at => x,
            _ => return Err(invalid()),
        };
        let session = self
            .load_session(&secret.session_id, flow)
            .await
            .map_err(|_| invalid())?;
        Ok((hash, session))
    }

    /// Whether the configured provider matches faces against a biometric token.
    pub(crate) fn provider_uses_biometrics(&self) -> bool {
        self.provider(&self.config.idv_provider)
            .map(|p| p.uses_biometrics())
            .unwrap_or(true)
    }

    /// With a provider whose verdict is known as soon as the run starts (witness mode), settles
    /// the session at once, through the same path as a webhook. Returns the session as it is
    /// then (or as it was, for other providers).
    pub(crate) async fn settle_if_synchronous(
        &self,
        record: SessionRecord,
    ) -> Result<SessionRecord, CoreError> {
        let (Some(name), Some(run_id)) = (&record.idv_provider, &record.idv_run_id) else {
            return Ok(record);
        };
        let provider = self.provider(name)?;
        if !provider.settles_at_start() {
            return Ok(record);
        }
        let outcome = provider
            .fetch_run(run_id)
            .await
            .map_err(CoreError::provider_call)?;
        let actor = passbind_audit::Actor::new("idv_provider", name.as_str());
        let key = format!("{run_id}:witness:{}", outcome.status.as_str());
        self.apply_run_outcome(&actor, name, &record, &key, &outcome)
            .await?;
        Ok(self.store.session(&record.id).await?.unwrap_or(record))
    }

    /// Starts a run whose input is the user's stored token.
    pub(crate) async fn start_match_run(
        &self,
        purpose: IdvPurpose,
        session_id: &str,
        user: &UserRecord,
        custom_data: serde_json::Map<String, serde_json::Value>,
    ) -> Result<StartedRun, CoreError> {
        let provider = self.provider(&self.config.idv_provider)?;
        let token = if provider.uses_biometrics() {
            Some(self.stored_token(user).await?)
        } else {
            None
        };
        provider
            .start_run(StartRun {
                purpose,
                session_id: session_id.to_owned(),
                customer_user_ref: self.user_ref(&user.external_user_id),
                biometric_token: token,
                custom_data,
            })
            .await
            .map_err(CoreError::provider_call)
    }

    /// Refuses a step-up while the user is locked out after repeated face mismatches.
    pub(crate) async fn check_lockout(&self, user: &UserRecord) -> Result<(), CoreError> {
        let c = &self.config;
        if c.lockout_threshold == 0 {
            return Ok(());
        }
        let now = self.now();
        let window = i64::try_from(c.lockout_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let failures = self
            .store
            .failures_since(&user.id, FAILURE_STEP_UP, now.saturating_sub(window))
            .await?;
        if failures.len() >= c.lockout_threshold as usize {
            let last = failures.last().copied().unwrap_or(now);
            let duration =
                i64::try_from(c.lockout_duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let until = last.saturating_add(duration);
            if until > now {
                let secs = (until - now + 999) / 1000;
                return Err(CoreError::RateLimited {
                    retry_after_seconds: u64::try_from(secs).unwrap_or(1),
                });
            }
        }
        Ok(())
    }

    /// The user's active credentials as a WebAuthn allow list.
    pub(crate) async fn allow_list(&self, user: &UserRecord) -> Result<AllowList, CoreError> {
        Ok(allowed(self.store.credentials_of_user(&user.id).await?))
    }

    /// Verifies an assertion for `expected_user` (or, usernameless, for whoever the credential
    /// belongs to). Returns the user, the credential and the verified assertion.
    /// The credential and its owner come from `preloaded` when it read the credential the
    /// assertion names ([`Engine::load_session_with_credential`]).
    pub(crate) async fn verify_user_assertion(
        &self,
        expected_user: Option<&UserRecord>,
        challenge: &[u8],
        response: &serde_json::Value,
        preloaded: &Preloaded,
    ) -> Result<(UserRecord, CredentialRecord, VerifiedAssertion), CoreError> {
        let rp = self.builtin_rp()?;
        let parts = rp.parse_assertion(response).map_err(CoreError::Webauthn)?;
        let fail = |reason: &'static str, message: &str| {
            CoreError::Webauthn(crate::ports::RpError {
                reason,
                message: message.to_owned(),
            })
        };
        let cid = crate::crypto::b64url(&parts.credential_id);
        let stored = if preloaded.credential_id.as_deref() == Some(cid.as_str()) {
            preloaded.credential.clone()
        } else {
            self.store.credential(&cid).await?
        };
        let cred = match stored {
            Some(c) if c.revoked_at.is_none() => c,
            Some(_) => return Err(fail("credential_revoked", "the credential was revoked")),
            None => return Err(fail("unknown_credential", "no such credential")),
        };
        let user = match expected_user {
            Some(u) if u.id == cred.user_id => u.clone(),
            Some(_) => {
                return Err(fail(
                    "credential_not_allowed",
                    "the credential belongs to another user",
                ))
            }
            None => self
                .live_user_preloaded(&cred.user_id, preloaded)
                .await?
                .ok_or_else(|| fail("unknown_credential", "no such credential"))?,
        };
        // L3 §7.2 step 6: a returned user handle must be the credential's user's; a
        // usernameless sign-in must return one.
        match &parts.user_handle {
            Some(h) if !crate::crypto::ct_eq(h, &user.user_handle) => {
                return Err(fail(
                    "user_handle_mismatch",
                    "the user handle does not match",
                ))
            }
            None if expected_user.is_none() => {
                return Err(fail(
                    "user_handle_missing",
                    "a usernameless sign-in needs the authenticator's user handle",
                ))
            }
            _ => {}
        }
        let key = cred
            .public_key
            .as_deref()
            .ok_or_else(|| fail("unknown_credential", "the credential has no public key"))?;
        let stored = u32::try_from(cred.sign_count).unwrap_or(u32::MAX);
        let verified = rp
            .verify_assertion(challenge, &parts.credential_id.clone(), key, stored, parts)
            .map_err(CoreError::Webauthn)?;
        // A regressed counter is refused (with `reject_counter_regression`) by the store at
        // commit, after the session's version: a duplicate completion of one session is then
        // reported as the lost race it is, not as a cloned authenticator.
        if verified.counter == CounterStatus::Regressed {
            tracing::warn!(credential = %cid, "signature counter did not advance");
        }
        Ok((user, cred, verified))
    }

    /// The write that records a sign-in on the credential. The store keeps the highest
    /// counter seen; with `reject_counter_regression` it refuses a counter that is not above
    /// the stored one at commit time. Put it after the session's `UpdateSession`.
    pub(crate) fn credential_use(
        &self,
        cred: &CredentialRecord,
        v: &VerifiedAssertion,
        now: Millis,
    ) -> Write {
        Write::UpdateCredentialUse {
            credential_id: cred.credential_id.clone(),
            sign_count: i64::from(v.new_sign_count),
            backed_up: v.backed_up,
            last_used_at: now,
            require_advance: self.config.reject_counter_regression,
        }
    }

    /// The completion gate of the flows that verify identity: the session's state must be
    /// `idv_passed`; otherwise the error says why.
    pub(crate) fn completion_gate(&self, s: &SessionRecord) -> Result<SessionState, CoreError> {
        let state = effective_state(s.state, s.expires_at, self.now());
        let mismatch = || {
            if s.flow == Flow::Recovery {
                CoreError::RecoveryBiometricMismatch
            } else {
                CoreError::BiometricMismatch
            }
        };
        match state {
            SessionState::IdvPassed => Ok(state),
            SessionState::Expired => Err(CoreError::SessionExpired),
            SessionState::CaptureFailed => Err(mismatch()),
            SessionState::IdvFailed => Err(match s.idv_failure {
                Some(IdvFailureReason::Declined) | None => mismatch(),
                Some(r) => CoreError::IdvFailed(r.as_str()),
            }),
            SessionState::Created | SessionState::IdvPending => Err(CoreError::invalid_state(
                state,
                "the identity verification has not passed yet",
            )),
            SessionState::Completed | SessionState::Cancelled => {
                Err(CoreError::invalid_state(state, "the session is closed"))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "é\"q"}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "a" : { "x":"é\"q", "y":[1,{"c":3,"d":2}] }, "b":1 }"#)
                .unwrap_or_default();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é\"q","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        assert_ne!(
            transaction_hash(&json!({"amount": 10})),
            transaction_hash(&json!({"amount": 11}))
        );
    }

    /// The transaction hash is over RFC 8785: a number's spelling does not matter (what a
    /// JavaScript integrator's `JSON.parse` + RFC 8785 library produces is what is hashed).
    #[test]
    fn number_spellings_hash_alike() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"amount":250.0,"currency":"EUR","fee":2.50}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"fee":2.5,"currency":"EUR","amount":250}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"amount":250,"currency":"EUR","fee":2.5}"#
        );
        assert_eq!(transaction_hash(&a), transaction_hash(&b));
        // `printf '%s' '{"amount":250,"currency":"EUR","fee":2.5}' | sha256sum`
        assert_eq!(
            hex::encode(transaction_hash(&a)),
            "e66dbe02aa9ba5bfad8937e34f7d2d660156e28dbb5257273cf36302d2d29119"
        );
    }

    #[test]
    fn the_challenge_commits_to_the_transaction() {
        let n = [7u8; 32];
        let t1 = transaction_hash(&json!({"amount": 10}));
        let t2 = transaction_hash(&json!({"amount": 1000}));
        assert_ne!(
            step_up_challenge(&n, Some(&t1)),
            step_up_challenge(&n, Some(&t2))
        );
        assert_ne!(
            step_up_challenge(&n, Some(&t1)),
            step_up_challenge(&n, None)
        );
        assert_ne!(
            step_up_challenge(&n, None),
            step_up_challenge(&[8u8; 32], None)
        );
    }
}
