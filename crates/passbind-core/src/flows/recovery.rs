//! Account recovery on a new device (seed 001, "Account recovery"): a live face match against
//! the stored token; on a match a single-use continuation context is issued; exchanging it
//! yields the replacement registration; completing binds the new credential and, by default,
//! revokes the user's other credentials. The token is reused unchanged.

use super::data::SessionData;
use crate::crypto::{b64url, random_bytes, random_id, sha256};
use crate::engine::{Engine, RpMode};
use crate::error::CoreError;
use crate::machine::{self, Event};
use crate::model::*;
use crate::ports::IdvPurpose;
use crate::validate;
use passbind_audit::Actor;
use passbind_proto::flows::{ExchangeContinuation, OpenRecovery};
use passbind_proto::registration::CompleteRegistration;
use passbind_proto::session::{ContinuationView, Flow, SessionState, SessionView};

const CONTINUATION: &str = "continuation";

impl Engine {
    /// Opens a recovery for a user who has a stored biometric token.
    pub async fn open_recovery(
        &self,
        actor: &Actor,
        req: OpenRecovery,
    ) -> Result<SessionView, CoreError> {
        let r = self.open_recovery_inner(actor, req).await;
        self.audited(actor, "open_recovery", None, r).await
    }

    async fn open_recovery_inner(
        &self,
        actor: &Actor,
        req: OpenRecovery,
    ) -> Result<SessionView, CoreError> {
        let custom_data = validate::custom_data(
            req.workflow_input
                .as_ref()
                .and_then(|w| w.custom_data.as_ref()),
        )?;
        let ttl = self.ttl_ms(req.ttl_seconds)?;
        let user = self.active_user(&req.external_user_id).await?;
        if self.provider_uses_biometrics() && self.store.ebt(&user.id).await?.is_none() {
            return Err(CoreError::NoBiometricReference);
        }
        let id = random_id(&*self.rng, "rec");
        let run = self
            .start_match_run(IdvPurpose::Recovery, &id, &user, custom_data)
            .await?;
        let now = self.now();
        let record = SessionRecord {
            id,
            flow: Flow::Recovery,
            state: machine::next(Flow::Recovery, SessionState::Created, Event::IdvStarted)
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
            data: SessionData::default().to_value()?,
        };
        self.commit(actor, vec![Write::InsertSession(record.clone())])
            .await?;
        let record = self.settle_if_synchronous(record).await?;
        Ok(self.view(&record, Some(&run)))
    }

    /// Issues the continuation context once the face matched (once per session).
    pub async fn issue_continuation(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<SessionView, CoreError> {
        let r = self.issue_continuation_inner(actor, id).await;
        self.audited(actor, "issue_continuation", Some(id), r).await
    }

    async fn issue_continuation_inner(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<SessionView, CoreError> {
        let s = self.load_session(id, Flow::Recovery).await?;
        let state = self.completion_gate(&s)?;
        let mut data = SessionData::of(&s)?;
        if data.continuation_issued {
            return Err(CoreError::invalid_state(
                state,
                "the continuation context was already issued",
            ));
        }
        let now = self.now();
        let ttl = i64::try_from(self.config.continuation_ttl_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let expires_at = (now + ttl).min(s.expires_at);
        let token = b64url(&random_bytes::<32>(&*self.rng));
        data.continuation_issued = true;
        let updated = SessionRecord {
            version: s.version + 1,
            updated_at: now,
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
                Write::InsertSecret(SecretRecord {
                    hash: sha256(token.as_bytes()).to_vec(),
                    kind: CONTINUATION.to_owned(),
                    session_id: s.id.clone(),
                    created_at: now,
                    expires_at,
                    consumed_at: None,
                }),
            ],
        )
        .await?;
        let mut view = self.view(&updated, None);
        view.continuation = Some(ContinuationView {
            token,
            expires_at: crate::engine::rfc3339(expires_at),
        });
        Ok(view)
    }

    /// Exchanges a continuation context for the replacement registration (WebAuthn creation
    /// options in built-in mode). Works once, also when callers race.
    pub async fn exchange_continuation(
        &self,
        actor: &Actor,
        req: ExchangeContinuation,
    ) -> Result<SessionView, CoreError> {
        let r = self.exchange_continuation_inner(actor, req).await;
        self.audited(actor, "exchange_continuation", None, r).await
    }

    async fn exchange_continuation_inner(
        &self,
        actor: &Actor,
        req: ExchangeContinuation,
    ) -> Result<SessionView, CoreError> {
        let (hash, s) = self
            .live_secret(CONTINUATION, &req.continuation, Flow::Recovery, || {
                CoreError::ContinuationInvalid
            })
            .await?;
        let now = self.now();
        self.completion_gate(&s)
            .map_err(|_| CoreError::ContinuationInvalid)?;
        let mut data = SessionData::of(&s)?;
        if data.continuation_exchanged {
            return Err(CoreError::ContinuationInvalid);
        }
        let user = self
            .live_user(&s.user_id)
            .await?
            .ok_or(CoreError::ContinuationInvalid)?;
        if let RpMode::BuiltIn(rp) = &self.rp {
            // Keep the user's other credentials out of the new authenticator when they survive.
            let exclude: Vec<Vec<u8>> = if self.config.revoke_on_recovery {
                Vec::new()
            } else {
                self.allow_list(&user)
                    .await?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            };
            let challenge = sha256(&random_bytes::<32>(&*self.rng));
            let creation = rp
                .creation_options(
                    &user.user_handle,
                    &user.external_user_id,
                    &user.external_user_id,
                    challenge,
                    &exclude,
                )
                .map_err(CoreError::Webauthn)?;
            data.webauthn_state = Some(creation.state);
            data.webauthn_options = Some(creation.options);
        }
        data.continuation_exchanged = true;
        let updated = SessionRecord {
            version: s.version + 1,
            updated_at: now,
            data: data.to_value()?,
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
            Ok(()) => Ok(self.view(&updated, None)),
            Err(StoreError::Conflict(_)) => Err(CoreError::ContinuationInvalid),
            Err(e) => Err(e.into()),
        }
    }

    /// Completes a recovery: binds the replacement credential; by default revokes the others.
    pub async fn complete_recovery(
        &self,
        actor: &Actor,
        id: &str,
        req: CompleteRegistration,
    ) -> Result<SessionView, CoreError> {
        let r = self.complete_recovery_inner(actor, id, req).await;
        self.audited(actor, "complete_recovery", Some(id), r).await
    }

    async fn complete_recovery_inner(
        &self,
        actor: &Actor,
        id: &str,
        req: CompleteRegistration,
    ) -> Result<SessionView, CoreError> {
        validate::short_text("device_label", req.device_label.as_deref(), 64)?;
        let s = self.load_session(id, Flow::Recovery).await?;
        let state = self.completion_gate(&s)?;
        let data = SessionData::of(&s)?;
        if !data.continuation_exchanged {
            return Err(CoreError::invalid_state(
                state,
                "exchange the continuation context first",
            ));
        }
        let now = self.now();
        let credential = self.credential_from_attestation(&s, &data, &req, now)?;
        let to = machine::next(s.flow, state, Event::Complete)
            .map_err(|_| CoreError::invalid_state(state, "cannot complete"))?;
        let done = SessionData {
            webauthn_state: None,
            ..data
        };
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            credential_id: Some(credential.credential_id.clone()),
            data: done.to_value()?,
            ..s.clone()
        };
        let mut writes = vec![
            Write::UpdateSession {
                record: updated.clone(),
                expected_version: s.version,
            },
            Write::InsertCredential(credential.clone()),
        ];
        writes.extend(
            self.binding_proof_write(&s, &credential.credential_id)
                .await?,
        );
        if self.config.revoke_on_recovery {
            writes.push(Write::RevokeUserCredentials {
                user_id: s.user_id.clone(),
                keep: Some(credential.credential_id.clone()),
                at: now,
            });
        }
        self.commit_session_change(actor, &s, writes).await?;
        Ok(self.view(&updated, None))
    }
}
