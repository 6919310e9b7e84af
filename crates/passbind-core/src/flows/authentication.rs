//! Routine authentication (seed 001, "Routine passkey authentication"): plain WebAuthn with the
//! built-in relying party, no identity verification. Usernameless (discoverable) sign-in is
//! supported by opening without `external_user_id`.

use super::data::SessionData;
use crate::crypto::{b64url, b64url_decode, random_bytes, random_id};
use crate::engine::Engine;
use crate::error::CoreError;
use crate::machine::{self, effective_state, Event};
use crate::model::*;
use passbind_audit::Actor;
use passbind_proto::flows::{CompleteWithAssertion, OpenAuthentication};
use passbind_proto::session::{AssertionView, Flow, SessionState, SessionView};

impl Engine {
    /// Begins a sign-in: a fresh challenge and the request options.
    pub async fn open_authentication(
        &self,
        actor: &Actor,
        req: OpenAuthentication,
    ) -> Result<SessionView, CoreError> {
        let r = self.open_authentication_inner(actor, req).await;
        self.audited(actor, "open_authentication", None, r).await
    }

    async fn open_authentication_inner(
        &self,
        actor: &Actor,
        req: OpenAuthentication,
    ) -> Result<SessionView, CoreError> {
        let rp = self.builtin_rp()?;
        let ttl = self.ttl_ms(req.ttl_seconds)?;
        let (user, allow) = match &req.external_user_id {
            Some(id) => {
                let (u, allow) = self.active_user_with_allow_list(id).await?;
                (Some(u), allow)
            }
            None => (None, Vec::new()),
        };
        let allow = match &user {
            Some(_) => {
                if allow.is_empty() {
                    return Err(CoreError::invalid_state(
                        SessionState::Created,
                        "the user has no active passkey",
                    ));
                }
                allow
            }
            None => Vec::new(),
        };
        let challenge: [u8; 32] = random_bytes(&*self.rng);
        let now = self.now();
        let data = SessionData {
            webauthn_options: Some(rp.request_options(challenge, &allow)),
            challenge: Some(b64url(&challenge)),
            ..SessionData::default()
        };
        let record = SessionRecord {
            id: random_id(&*self.rng, "aut"),
            flow: Flow::Authentication,
            state: SessionState::Created,
            version: 0,
            user_id: user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
            external_user_id: user
                .as_ref()
                .map(|u| u.external_user_id.clone())
                .unwrap_or_default(),
            created_at: now,
            updated_at: now,
            expires_at: now + ttl,
            idv_provider: None,
            idv_run_id: None,
            idv_failure: None,
            credential_id: None,
            data: data.to_value()?,
        };
        self.commit(actor, vec![Write::InsertSession(record.clone())])
            .await?;
        Ok(self.view(&record, None))
    }

    /// Completes a sign-in with the assertion; succeeds once.
    pub async fn complete_authentication(
        &self,
        actor: &Actor,
        id: &str,
        req: CompleteWithAssertion,
    ) -> Result<SessionView, CoreError> {
        let r = self.complete_authentication_inner(actor, id, req).await;
        self.audited(actor, "complete_authentication", Some(id), r)
            .await
    }

    async fn complete_authentication_inner(
        &self,
        actor: &Actor,
        id: &str,
        req: CompleteWithAssertion,
    ) -> Result<SessionView, CoreError> {
        let (s, preloaded) = self
            .load_session_with_credential(id, Flow::Authentication, req.credential.as_ref())
            .await?;
        let now = self.now();
        let state = effective_state(s.state, s.expires_at, now);
        match state {
            SessionState::Created => {}
            SessionState::Expired => return Err(CoreError::SessionExpired),
            other => return Err(CoreError::invalid_state(other, "the session is closed")),
        }
        let response = req.credential.as_ref().ok_or_else(|| {
            CoreError::validation("credential", "the PublicKeyCredential JSON is required")
        })?;
        let mut data = SessionData::of(&s)?;
        let challenge = data
            .challenge
            .as_deref()
            .and_then(b64url_decode)
            .ok_or_else(|| CoreError::Internal("authentication without a challenge".into()))?;
        let expected_user = if s.user_id.is_empty() {
            None
        } else {
            Some(
                self.live_user_preloaded(&s.user_id, &preloaded)
                    .await?
                    .ok_or(CoreError::UserNotFound)?,
            )
        };
        let (user, cred, verified) = self
            .verify_user_assertion(expected_user.as_ref(), &challenge, response, &preloaded)
            .await?;
        let to = machine::next(s.flow, state, Event::Complete)
            .map_err(|_| CoreError::invalid_state(state, "cannot complete"))?;
        data.assertion = Some(AssertionView {
            user_verified: verified.user_verified,
            backed_up: verified.backed_up,
            counter: verified.counter.as_str().to_owned(),
        });
        data.webauthn_options = None;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            user_id: user.id.clone(),
            external_user_id: user.external_user_id.clone(),
            credential_id: Some(cred.credential_id.clone()),
            data: data.to_value()?,
            ..s.clone()
        };
        self.commit_session_change(
            actor,
            &s,
            vec![
                Write::UpdateSession {
                    record: updated.clone(),
                    expected_version: s.version,
                },
                self.credential_use(&cred, &verified, now),
            ],
        )
        .await?;
        Ok(self.view(&updated, None))
    }
}
