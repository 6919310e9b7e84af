//! Inbound identity-verification verdicts, common to every flow that runs one.
//!
//! The webhook is trusted only for "something happened to run X": its signature is checked
//! over the raw body, the delivery is de-duplicated by its event key, the run must belong to a
//! session of ours that is waiting for it, and the outcome itself is read back from the
//! provider. Nothing in the webhook body decides a verdict.

use super::common::FAILURE_STEP_UP;
use super::data::SessionData;
use crate::engine::Engine;
use crate::error::CoreError;
use crate::machine::{self, effective_state, Event};
use crate::model::*;
use crate::ports::{RunOutcome, RunStatus, WebhookEvent};
use passbind_audit::Actor;
use passbind_proto::session::{Flow, IdvFailureReason, SessionState};

/// What the webhook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The verdict was applied to the session.
    Applied { session_id: String, passed: bool },
    /// This delivery was already applied: nothing changed.
    Duplicate,
    /// The session already has its verdict (from another delivery): nothing changed.
    AlreadySettled,
    /// The run is not finished yet (the provider says so): nothing changed.
    NotTerminal,
    /// A valid event of a kind Passbind does not act on.
    Ignored,
}

/// The verdict rules of seed 001 ("Workflow requirements"): only `approved` passes and only
/// `declined` is a clean failure; anything else terminal is a failure with its own reason.
pub fn classify(status: &RunStatus) -> Option<Result<(), IdvFailureReason>> {
    Some(match status {
        RunStatus::Processing | RunStatus::AwaitingInput => return None,
        RunStatus::Approved => Ok(()),
        RunStatus::Declined => Err(IdvFailureReason::Declined),
        RunStatus::Review => Err(IdvFailureReason::Review),
        RunStatus::Abandoned => Err(IdvFailureReason::Abandoned),
        RunStatus::Error => Err(IdvFailureReason::Error),
        RunStatus::Other(_) => Err(IdvFailureReason::UnknownStatus),
    })
}

/// How often, at most, one reason of unauthenticated webhook refusals is written to the audit
/// log (with the number of refusals it stands for).
pub const REFUSAL_SUMMARY_MS: Millis = 60_000;

/// (provider, reason) -> (start of the current interval, refusals not yet written).
type RefusalCounts = std::collections::HashMap<(String, &'static str), (Millis, u64)>;

/// Unauthenticated webhook refusals per provider and reason.
#[derive(Debug, Default)]
pub(crate) struct RefusalSummary {
    counts: std::sync::Mutex<RefusalCounts>,
}

impl RefusalSummary {
    /// Counts one refusal at `now`; returns the count to write when an event is due (the first
    /// refusal of an interval, carrying those counted since the last event), else `None`.
    fn count(&self, provider: &str, reason: &'static str, now: Millis) -> Option<u64> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let slot = counts
            .entry((provider.to_owned(), reason))
            .or_insert((Millis::MIN, 0));
        slot.1 += 1;
        if now.saturating_sub(slot.0) >= REFUSAL_SUMMARY_MS {
            let n = slot.1;
            *slot = (now, 0);
            Some(n)
        } else {
            None
        }
    }
}

impl Engine {
    /// Handles `POST /v1/webhooks/idv/{provider}`.
    ///
    /// Nothing is recorded before the run's authoritative outcome has been read and applied:
    /// if the provider cannot be read, the delivery fails (`idv_unavailable`), and the
    /// provider's retry or the reconciler ([`Engine::reconcile_pending`]) settles the session
    /// later. A delivery for a session that already has its verdict is settled without asking
    /// the provider again (a replay costs no outbound call).
    ///
    /// What reaches the audit trail: every authenticated delivery, one event each; a delivery
    /// that fails authentication (`invalid_signature`), counted per reason and written as one
    /// event per reason and [`REFUSAL_SUMMARY_MS`] with the count, so that a stranger cannot
    /// grow the log one event per post; and nothing for an unknown provider (`404`): the
    /// actor id of an event is always the name of a configured provider, never the URL's text.
    pub async fn handle_idv_webhook(
        &self,
        provider_name: &str,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &[u8],
    ) -> Result<WebhookOutcome, CoreError> {
        let Some((configured, _)) = self.idv.get_key_value(provider_name) else {
            return Err(CoreError::UnknownIdvProvider(provider_name.to_owned()));
        };
        let provider_name = configured.as_str();
        let actor = Actor::new("idv_provider", provider_name);
        let r = self
            .handle_idv_webhook_inner(&actor, provider_name, header, body)
            .await;
        match &r {
            Ok(WebhookOutcome::Applied { .. }) => {} // recorded with the change
            Ok(other) => {
                let mut d = self.audit_draft(&actor, "webhook.received", "success", None);
                d.details.insert(
                    "result".into(),
                    serde_json::json!(match other {
                        WebhookOutcome::Duplicate => "duplicate",
                        WebhookOutcome::AlreadySettled => "already_settled",
                        WebhookOutcome::NotTerminal => "not_terminal",
                        _ => "ignored",
                    }),
                );
                self.record_event(d).await;
            }
            Err(CoreError::InvalidSignature) => {
                let reason = CoreError::InvalidSignature.code().as_str();
                if let Some(count) = self
                    .webhook_refusals
                    .count(provider_name, reason, self.now())
                {
                    let mut d = self.audit_draft(&actor, "webhook.received", "refused", None);
                    d.reason = Some(reason.to_owned());
                    d.details
                        .insert("unauthenticated".into(), serde_json::json!(true));
                    d.details.insert("count".into(), serde_json::json!(count));
                    self.record_event(d).await;
                }
            }
            Err(e) => {
                let mut d = self.audit_draft(&actor, "webhook.received", "refused", None);
                d.reason = Some(e.code().as_str().to_owned());
                self.record_event(d).await;
            }
        }
        r
    }

    async fn handle_idv_webhook_inner(
        &self,
        actor: &Actor,
        provider_name: &str,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &[u8],
    ) -> Result<WebhookOutcome, CoreError> {
        let provider = self.provider(provider_name)?;
        let (run_id, event_key) = match provider.verify_webhook(header, body)? {
            WebhookEvent::Ignored { action } => {
                tracing::debug!(provider = provider_name, action, "webhook ignored");
                return Ok(WebhookOutcome::Ignored);
            }
            WebhookEvent::RunCompleted { run_id, event_key } => (run_id, event_key),
        };
        let Some(s) = self
            .store
            .session_by_idv_run(provider_name, &run_id)
            .await?
        else {
            tracing::warn!(provider = provider_name, "webhook for an unknown run");
            return Err(CoreError::UnknownIdvRun);
        };
        let state = effective_state(s.state, s.expires_at, self.now());
        if state != SessionState::IdvPending {
            return self
                .settled_delivery(provider_name, state, &event_key)
                .await;
        }
        let outcome = provider
            .fetch_run(&run_id)
            .await
            .map_err(CoreError::provider_call)?;
        if outcome.run_id != run_id {
            return Err(CoreError::IdvUnavailable(
                "provider returned another run".into(),
            ));
        }
        self.apply_run_outcome(actor, provider_name, &s, &event_key, &outcome)
            .await
    }

    /// A delivery for a session that is no longer waiting for a verdict. A settled session
    /// remembers the delivery, so that it stays a duplicate; an expired or cancelled one
    /// refuses it.
    async fn settled_delivery(
        &self,
        provider_name: &str,
        state: SessionState,
        event_key: &str,
    ) -> Result<WebhookOutcome, CoreError> {
        match state {
            SessionState::Expired => Err(CoreError::SessionExpired),
            SessionState::Cancelled => {
                Err(CoreError::invalid_state(state, "the session was cancelled"))
            }
            _ => {
                let record_event = Write::RecordIdvEvent {
                    provider: provider_name.to_owned(),
                    event_key: event_key.to_owned(),
                    received_at: self.now(),
                };
                // Only the dedupe key: the receipt itself is recorded by the caller.
                match self.store.commit(vec![record_event]).await {
                    Ok(()) => Ok(WebhookOutcome::AlreadySettled),
                    Err(StoreError::Conflict(Conflict::DuplicateIdvEvent)) => {
                        Ok(WebhookOutcome::Duplicate)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Applies a run's authoritative outcome to its session, once: the webhook and the
    /// reconciler both come through here, and the event key plus the session's version check
    /// make a second application (another delivery, another replica) impossible.
    pub async fn apply_run_outcome(
        &self,
        actor: &Actor,
        provider_name: &str,
        s: &SessionRecord,
        event_key: &str,
        outcome: &RunOutcome,
    ) -> Result<WebhookOutcome, CoreError> {
        let now = self.now();
        let state = effective_state(s.state, s.expires_at, now);
        if state != SessionState::IdvPending {
            return self.settled_delivery(provider_name, state, event_key).await;
        }
        let record_event = Write::RecordIdvEvent {
            provider: provider_name.to_owned(),
            event_key: event_key.to_owned(),
            received_at: now,
        };
        let Some(verdict) = classify(&outcome.status) else {
            return Ok(WebhookOutcome::NotTerminal);
        };

        let mut extra = Vec::new();
        let mut failure = verdict.err();
        let biometric = self.provider(provider_name)?.uses_biometrics();
        if failure.is_none() && s.flow == Flow::Registration && biometric {
            let has_ebt = self.store.ebt(&s.user_id).await?.is_some();
            let (writes, fail) =
                self.registration_verdict_writes(s, outcome.biometric_token.as_ref(), has_ebt)?;
            extra = writes;
            failure = fail;
        }
        let mut data = SessionData::of(s)?;
        let step_up = matches!(s.flow, Flow::StepUp | Flow::CrossPlatform);
        let event = match failure {
            None => Event::IdvPassed,
            Some(IdvFailureReason::Declined) if step_up => {
                // A face mismatch counts towards the user's lockout, and may be retried.
                extra.push(Write::RecordFailure {
                    user_id: s.user_id.clone(),
                    kind: FAILURE_STEP_UP.to_owned(),
                    at: now,
                });
                data.failed_captures = data.failed_captures.saturating_add(1);
                if data.failed_captures < data.max_captures {
                    Event::CaptureDeclined
                } else {
                    Event::IdvFailed(IdvFailureReason::Declined)
                }
            }
            Some(r) => Event::IdvFailed(r),
        };
        let to = machine::next(s.flow, state, event)
            .map_err(|_| CoreError::invalid_state(state, "no verdict expected"))?;
        let passed = failure.is_none();
        data.idv_verdict = Some(if passed { "passed" } else { "failed" }.to_owned());
        data.prior_token_sealed = None;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            idv_failure: failure,
            data: data.to_value()?,
            ..s.clone()
        };
        let mut writes = vec![
            record_event,
            Write::UpdateSession {
                record: updated,
                expected_version: s.version,
            },
        ];
        writes.extend(extra);
        // The identity result is verified, hashed into a signed proof, and discarded.
        let identity: Option<serde_json::Value> = outcome
            .identity
            .as_ref()
            .and_then(|t| serde_json::from_str(t).ok());
        let (proof, _) = self.identity_proof_write(
            s,
            identity.as_ref(),
            if passed { "passed" } else { "failed" },
            None,
            None,
        )?;
        writes.push(proof);
        match self.commit(actor, writes).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::DuplicateIdvEvent)) => {
                return Ok(WebhookOutcome::Duplicate)
            }
            Err(StoreError::Conflict(Conflict::SessionVersion)) => {
                // Another delivery settled it first.
                return Ok(WebhookOutcome::AlreadySettled);
            }
            Err(StoreError::Conflict(Conflict::DuplicateEbt)) => {
                // Another registration of this user stored its token first: keep that one.
                let fresh = self
                    .store
                    .session(&s.id)
                    .await?
                    .ok_or(CoreError::SessionNotFound)?;
                return Box::pin(self.apply_run_outcome(
                    actor,
                    provider_name,
                    &fresh,
                    event_key,
                    outcome,
                ))
                .await;
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            session = %s.id,
            flow = s.flow.as_str(),
            passed,
            reason = failure.map(IdvFailureReason::as_str),
            "identity verification verdict applied"
        );
        Ok(WebhookOutcome::Applied {
            session_id: s.id.clone(),
            passed,
        })
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn refusals_are_summarised_once_per_interval_with_their_count() {
        let s = RefusalSummary::default();
        let t = 1_700_000_000_000;
        assert_eq!(s.count("simulator", "invalid_signature", t), Some(1));
        for i in 1..250 {
            assert_eq!(s.count("simulator", "invalid_signature", t + i), None);
        }
        // Another provider or reason has an interval of its own.
        assert_eq!(s.count("onfido", "invalid_signature", t + 5), Some(1));
        // The next event, an interval later, carries the 249 counted since and itself.
        assert_eq!(
            s.count("simulator", "invalid_signature", t + REFUSAL_SUMMARY_MS),
            Some(250)
        );
        assert_eq!(
            s.count("simulator", "invalid_signature", t + REFUSAL_SUMMARY_MS + 1),
            None
        );
    }
}
