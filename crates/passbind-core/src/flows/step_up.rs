//! In-app step-up and cross-platform step-up (seed 001): a live face match against the user's
//! stored biometric token gates a WebAuthn assertion whose challenge commits to the
//! transaction. Cross-platform sessions start in a browser with a single-use handoff token and
//! continue on the enrolled phone.

use super::common::{step_up_challenge, transaction_hash};
use super::data::SessionData;
use crate::crypto::{b64url, b64url_decode, random_bytes, random_id, sha256};
use crate::engine::{Engine, RpMode};
use crate::error::CoreError;
use crate::machine::{self, effective_state, Event};
use crate::model::*;
use crate::ports::IdvPurpose;
use crate::validate;
use passbind_audit::Actor;
use passbind_proto::flows::{CompleteWithAssertion, ConsumeHandoff, OpenStepUp};
use passbind_proto::session::{AssertionView, Flow, SessionState, SessionView};

/// A cross-platform session just opened, with its handoff token in clear (shown once).
pub struct OpenedCrossPlatform {
    pub view: SessionView,
    pub handoff_token: String,
    pub handoff_expires_at: Millis,
}

/// Kind of the handoff secret.
const HANDOFF: &str = "handoff";

impl Engine {
    fn step_up_data(
        &self,
        user: &UserRecord,
        req: &OpenStepUp,
        allow: &[(Vec<u8>, Vec<String>)],
    ) -> Result<SessionData, CoreError> {
        let tx = match &req.transaction_context {
            Some(ctx) => {
                if serde_json::to_vec(ctx)
                    .map(|v| v.len())
                    .unwrap_or(usize::MAX)
                    > 16 * 1024
                {
                    return Err(CoreError::validation(
                        "transaction_context",
                        "at most 16 KiB of JSON",
                    ));
                }
                Some(transaction_hash(ctx))
            }
            None => None,
        };
        let nonce: [u8; 32] = random_bytes(&*self.rng);
        let challenge = step_up_challenge(&nonce, tx.as_ref());
        let options = match &self.rp {
            RpMode::BuiltIn(rp) => Some(rp.request_options(challenge, allow)),
            RpMode::External => None,
        };
        let _ = user;
        Ok(SessionData {
            webauthn_options: options,
            challenge: Some(b64url(&challenge)),
            tx_hash: tx.map(hex::encode),
            max_captures: self.config.step_up_max_captures.max(1),
            ..SessionData::default()
        })
    }

    /// Checks what every step-up needs before it opens: a live user with a biometric token,
    /// an active credential (built-in relying party), and no lockout.
    async fn step_up_preconditions(
        &self,
        req: &OpenStepUp,
    ) -> Result<(UserRecord, Vec<(Vec<u8>, Vec<String>)>), CoreError> {
        let user = self.active_user(&req.external_user_id).await?;
        if self.provider_uses_biometrics() && self.store.ebt(&user.id).await?.is_none() {
            return Err(CoreError::NoBiometricReference);
        }
        self.check_lockout(&user).await?;
        let allow = match &self.rp {
            RpMode::BuiltIn(_) => {
                let allow = self.allow_list(&user).await?;
                if allow.is_empty() {
                    return Err(CoreError::invalid_state(
                        SessionState::Created,
                        "the user has no active passkey",
                    ));
                }
                allow
            }
            RpMode::External => Vec::new(),
        };
        Ok((user, allow))
    }

    /// Opens an in-app step-up: the live capture runs against the stored token.
    pub async fn open_step_up(
        &self,
        actor: &Actor,
        req: OpenStepUp,
    ) -> Result<SessionView, CoreError> {
        let r = self.open_step_up_inner(actor, req).await;
        self.audited(actor, "open_step_up", None, r).await
    }

    async fn open_step_up_inner(
        &self,
        actor: &Actor,
        req: OpenStepUp,
    ) -> Result<SessionView, CoreError> {
        let custom_data = validate::custom_data(
            req.workflow_input
                .as_ref()
                .and_then(|w| w.custom_data.as_ref()),
        )?;
        let ttl = self.ttl_ms(req.ttl_seconds)?;
        let (user, allow) = self.step_up_preconditions(&req).await?;
        let data = self.step_up_data(&user, &req, &allow)?;
        let id = random_id(&*self.rng, "stp");
        let run = self
            .start_match_run(IdvPurpose::StepUp, &id, &user, custom_data)
            .await?;
        let now = self.now();
        let record = SessionRecord {
            id,
            flow: Flow::StepUp,
            state: machine::next(Flow::StepUp, SessionState::Created, Event::IdvStarted)
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            version: 0,
            user_id: user.id.clone(),
            external_user_id: user.external_user_id.clone(),
            created_at: now,
            updated_at: now,
            expires_at: now + ttl,
            idv_provider: Some(self.config.idv_provider.clone()),
            idv_run_id: Some(run.run_id.clone()),
            idv_failure: None,
            credential_id: None,
            data: data.to_value()?,
        };
        self.commit(actor, vec![Write::InsertSession(record.clone())])
            .await?;
        let record = self.settle_if_synchronous(record).await?;
        Ok(self.view(&record, Some(&run)))
    }

    /// Starts a new live capture after a mismatch, while attempts remain (step-up flows).
    pub async fn retry_capture(
        &self,
        actor: &Actor,
        id: &str,
        flow: Flow,
    ) -> Result<SessionView, CoreError> {
        let r = self.retry_capture_inner(actor, id, flow).await;
        self.audited(actor, "retry_capture", Some(id), r).await
    }

    async fn retry_capture_inner(
        &self,
        actor: &Actor,
        id: &str,
        flow: Flow,
    ) -> Result<SessionView, CoreError> {
        if !matches!(flow, Flow::StepUp | Flow::CrossPlatform) {
            return Err(CoreError::SessionNotFound);
        }
        let s = self.load_session(id, flow).await?;
        let state = effective_state(s.state, s.expires_at, self.now());
        match state {
            SessionState::CaptureFailed => {}
            SessionState::Expired => return Err(CoreError::SessionExpired),
            other => {
                return Err(CoreError::invalid_state(
                    other,
                    "a new capture is possible only after a capture that did not match",
                ))
            }
        }
        let user = self
            .live_user(&s.user_id)
            .await?
            .ok_or(CoreError::UserNotFound)?;
        self.check_lockout(&user).await?;
        let run = self
            .start_match_run(IdvPurpose::StepUp, &s.id, &user, serde_json::Map::new())
            .await?;
        let to = machine::next(flow, state, Event::IdvStarted)
            .map_err(|_| CoreError::invalid_state(state, "cannot retry"))?;
        let mut data = SessionData::of(&s)?;
        data.idv_verdict = None;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: self.now(),
            idv_run_id: Some(run.run_id.clone()),
            idv_failure: None,
            data: data.to_value()?,
            ..s.clone()
        };
        self.commit_session_change(
            actor,
            &s,
            vec![Write::UpdateSession {
                record: updated.clone(),
                expected_version: s.version,
            }],
        )
        .await?;
        let updated = self.settle_if_synchronous(updated).await?;
        Ok(self.view(&updated, Some(&run)))
    }

    /// Completes a step-up (in-app or cross-platform): refused unless this session's live
    /// capture matched; the assertion must answer this session's challenge, which commits to
    /// the transaction context.
    pub async fn complete_step_up(
        &self,
        actor: &Actor,
        id: &str,
        flow: Flow,
        req: CompleteWithAssertion,
    ) -> Result<SessionView, CoreError> {
        let r = self.complete_step_up_inner(actor, id, flow, req).await;
        self.audited(actor, "complete_step_up", Some(id), r).await
    }

    async fn complete_step_up_inner(
        &self,
        actor: &Actor,
        id: &str,
        flow: Flow,
        req: CompleteWithAssertion,
    ) -> Result<SessionView, CoreError> {
        if !matches!(flow, Flow::StepUp | Flow::CrossPlatform) {
            return Err(CoreError::SessionNotFound);
        }
        let (s, preloaded) = self
            .load_session_with_credential(id, flow, req.credential.as_ref())
            .await?;
        let state = self.completion_gate(&s)?;
        let now = self.now();
        let mut data = SessionData::of(&s)?;
        let user = self
            .live_user_preloaded(&s.user_id, &preloaded)
            .await?
            .ok_or(CoreError::UserNotFound)?;
        let mut writes = Vec::with_capacity(2);
        let credential_id = match &self.rp {
            RpMode::BuiltIn(_) => {
                let response = req.credential.as_ref().ok_or_else(|| {
                    CoreError::validation("credential", "the PublicKeyCredential JSON is required")
                })?;
                let challenge = data
                    .challenge
                    .as_deref()
                    .and_then(b64url_decode)
                    .ok_or_else(|| CoreError::Internal("step-up without a challenge".into()))?;
                let (_, cred, verified) = self
                    .verify_user_assertion(Some(&user), &challenge, response, &preloaded)
                    .await?;
                data.assertion = Some(AssertionView {
                    user_verified: verified.user_verified,
                    backed_up: verified.backed_up,
                    counter: verified.counter.as_str().to_owned(),
                });
                writes.push(self.credential_use(&cred, &verified, now));
                cred.credential_id
            }
            RpMode::External => {
                if req.idp_verified != Some(true) {
                    return Err(CoreError::validation(
                        "idp_verified",
                        "must be true: the IDP verified the assertion",
                    ));
                }
                let cid = req.credential_id.clone().unwrap_or_default();
                match self.store.credential(&cid).await? {
                    Some(c) if c.user_id == user.id && c.revoked_at.is_none() => cid,
                    _ => return Err(CoreError::CredentialNotFound),
                }
            }
        };
        let to = machine::next(flow, state, Event::Complete)
            .map_err(|_| CoreError::invalid_state(state, "cannot complete"))?;
        data.webauthn_options = None;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            credential_id: Some(credential_id),
            data: data.to_value()?,
            ..s.clone()
        };
        writes.insert(
            0,
            Write::UpdateSession {
                record: updated.clone(),
                expected_version: s.version,
            },
        );
        if let Some(cid) = &updated.credential_id {
            writes.extend(self.binding_proof_write(&s, cid).await?);
        }
        self.commit_session_change(actor, &s, writes).await?;
        Ok(self.view(&updated, None))
    }

    // ---- cross-platform -------------------------------------------------------------------

    /// Opens a cross-platform step-up from the browser side: a single-use handoff token for
    /// the enrolled phone. No identity verification runs until the token is consumed.
    pub async fn open_cross_platform(
        &self,
        actor: &Actor,
        req: OpenStepUp,
    ) -> Result<OpenedCrossPlatform, CoreError> {
        let r = self.open_cross_platform_inner(actor, req).await;
        self.audited(actor, "open_cross_platform", None, r).await
    }

    async fn open_cross_platform_inner(
        &self,
        actor: &Actor,
        req: OpenStepUp,
    ) -> Result<OpenedCrossPlatform, CoreError> {
        validate::custom_data(
            req.workflow_input
                .as_ref()
                .and_then(|w| w.custom_data.as_ref()),
        )?;
        let ttl = self.ttl_ms(req.ttl_seconds)?;
        let (user, allow) = self.step_up_preconditions(&req).await?;
        let mut data = self.step_up_data(&user, &req, &allow)?;
        let now = self.now();
        let handoff_ttl =
            i64::try_from(self.config.handoff_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_at = now + ttl;
        let handoff_expires_at = (now + handoff_ttl).min(expires_at);
        data.handoff_expires_at = Some(handoff_expires_at);
        let token_bytes: [u8; 32] = random_bytes(&*self.rng);
        let token = b64url(&token_bytes);
        let id = random_id(&*self.rng, "xps");
        let record = SessionRecord {
            id: id.clone(),
            flow: Flow::CrossPlatform,
            state: SessionState::Created,
            version: 0,
            user_id: user.id.clone(),
            external_user_id: user.external_user_id.clone(),
            created_at: now,
            updated_at: now,
            expires_at,
            idv_provider: None,
            idv_run_id: None,
            idv_failure: None,
            credential_id: None,
            data: data.to_value()?,
        };
        self.commit(
            actor,
            vec![
                Write::InsertSession(record.clone()),
                Write::InsertSecret(SecretRecord {
                    hash: sha256(token.as_bytes()).to_vec(),
                    kind: HANDOFF.to_owned(),
                    session_id: id,
                    created_at: now,
                    expires_at: handoff_expires_at,
                    consumed_at: None,
                }),
            ],
        )
        .await?;
        let mut view = self.view(&record, None);
        // The browser side needs no WebAuthn options: the phone gets them at handoff.
        view.webauthn = None;
        Ok(OpenedCrossPlatform {
            view,
            handoff_token: token,
            handoff_expires_at,
        })
    }

    /// Consumes a handoff token (the phone, through the integrator's backend): starts the live
    /// capture and returns the mobile context (sdk token, WebAuthn request options). A token
    /// works once, also when consumers race.
    pub async fn consume_handoff(
        &self,
        actor: &Actor,
        req: ConsumeHandoff,
    ) -> Result<SessionView, CoreError> {
        let r = self.consume_handoff_inner(actor, req).await;
        self.audited(actor, "consume_handoff", None, r).await
    }

    async fn consume_handoff_inner(
        &self,
        actor: &Actor,
        req: ConsumeHandoff,
    ) -> Result<SessionView, CoreError> {
        let (hash, s) = self
            .live_secret(HANDOFF, &req.handoff_token, Flow::CrossPlatform, || {
                CoreError::HandoffTokenInvalid
            })
            .await?;
        let now = self.now();
        let state = effective_state(s.state, s.expires_at, now);
        if state != SessionState::Created {
            return Err(CoreError::HandoffTokenInvalid);
        }
        let user = self
            .live_user(&s.user_id)
            .await?
            .ok_or(CoreError::HandoffTokenInvalid)?;
        self.check_lockout(&user).await?;
        let run = self
            .start_match_run(IdvPurpose::StepUp, &s.id, &user, serde_json::Map::new())
            .await?;
        let to = machine::next(Flow::CrossPlatform, state, Event::IdvStarted)
            .map_err(|_| CoreError::HandoffTokenInvalid)?;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            idv_provider: Some(self.config.idv_provider.clone()),
            idv_run_id: Some(run.run_id.clone()),
            ..s.clone()
        };
        match self
            .commit(
                actor,
                vec![
                    Write::ConsumeSecret { hash, at: now },
                    Write::UpdateSession {
                        record: updated.clone(),
                        expected_version: s.version,
                    },
                ],
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(CoreError::HandoffTokenInvalid),
            Err(e) => return Err(e.into()),
        }
        let updated = self.settle_if_synchronous(updated).await?;
        Ok(self.view(&updated, Some(&run)))
    }
}
