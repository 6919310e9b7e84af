//! The reconciler: no session is left waiting forever because a webhook was lost.
//!
//! Sessions in `idv_pending` whose run is older than a minimum age are read back from their
//! provider (`fetch_run`), and terminal outcomes are applied through the same
//! [`Engine::apply_run_outcome`] path as webhooks, under the event key the provider's
//! completion webhook for that outcome carries. A later webhook for the same outcome is
//! therefore a duplicate, and a webhook that came first makes the reconciler's read a no-op.
//!
//! Several replicas may reconcile at once: the session's version check and the event-key
//! dedupe let exactly one of them apply an outcome; the others see `Duplicate` or
//! `AlreadySettled`. Nothing here keeps state between calls except the caller's cursor.

use super::idv_verdict::WebhookOutcome;
use crate::engine::Engine;
use crate::error::CoreError;
use crate::model::Millis;
use crate::ports::{IdvError, SessionCursor};

/// What one reconciliation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Sessions looked at.
    pub examined: u32,
    /// Outcomes applied by this pass.
    pub applied: u32,
    /// Runs the provider reports as not finished yet.
    pub still_running: u32,
    /// Sessions another delivery or replica settled first (nothing changed).
    pub already_settled: u32,
    /// Sessions whose run could not be read or whose outcome could not be applied; they are
    /// tried again by a later pass.
    pub failed: u32,
    /// Sessions of a provider this server does not run (for example after switching from the
    /// simulator to another provider); they expire on their own.
    pub skipped: u32,
    /// Set when the pass stopped early because a provider was unavailable.
    pub provider_unavailable: bool,
    /// Where the next pass continues; `None` starts again from the oldest session.
    pub next: Option<SessionCursor>,
}

impl Engine {
    /// One reconciliation pass over at most `limit` sessions waiting for a verdict whose run
    /// started at or before `updated_before`, after `after` (the previous pass's
    /// [`ReconcileReport::next`]), oldest first.
    ///
    /// A provider that is unavailable ends the pass early (the cursor stays before the session
    /// that could not be read), so that an outage costs one bounded attempt per pass rather
    /// than one per session. Other per-session failures are counted and skipped. Only a failure
    /// to read the store fails the whole pass.
    pub async fn reconcile_pending(
        &self,
        updated_before: Millis,
        after: Option<SessionCursor>,
        limit: u32,
    ) -> Result<ReconcileReport, CoreError> {
        let now = self.now();
        let sessions = self
            .store
            .sessions_awaiting_idv(now, updated_before, after.as_ref(), limit)
            .await?;
        let full_page = u32::try_from(sessions.len()).unwrap_or(u32::MAX) >= limit;
        let mut report = ReconcileReport::default();
        let mut last = after;
        for s in &sessions {
            report.examined += 1;
            let (Some(provider_name), Some(run_id)) = (&s.idv_provider, &s.idv_run_id) else {
                report.skipped += 1;
                last = Some(SessionCursor::of(s));
                continue;
            };
            let Some(provider) = self.idv.get(provider_name) else {
                tracing::debug!(session = %s.id, provider = %provider_name, "reconciler: provider not configured here");
                report.skipped += 1;
                last = Some(SessionCursor::of(s));
                continue;
            };
            let outcome = match provider.fetch_run(run_id).await {
                Ok(o) if &o.run_id == run_id => o,
                Ok(_) => {
                    tracing::warn!(session = %s.id, provider = %provider_name, "reconciler: the provider answered with another run");
                    report.failed += 1;
                    last = Some(SessionCursor::of(s));
                    continue;
                }
                Err(IdvError::Unavailable(message)) => {
                    tracing::warn!(provider = %provider_name, %message, "reconciler: provider unavailable; pass ended early");
                    report.failed += 1;
                    report.provider_unavailable = true;
                    report.next = last;
                    return Ok(report);
                }
                Err(e) => {
                    tracing::warn!(session = %s.id, provider = %provider_name, error = %e, "reconciler: cannot read the run");
                    report.failed += 1;
                    last = Some(SessionCursor::of(s));
                    continue;
                }
            };
            last = Some(SessionCursor::of(s));
            if !outcome.status.is_terminal() {
                report.still_running += 1;
                continue;
            }
            let event_key = provider.completion_event_key(&outcome);
            match self
                .apply_run_outcome(
                    &passbind_audit::Actor::new("system", "reconciler"),
                    provider_name,
                    s,
                    &event_key,
                    &outcome,
                )
                .await
            {
                Ok(WebhookOutcome::Applied { passed, .. }) => {
                    tracing::info!(session = %s.id, flow = s.flow.as_str(), passed, "reconciler settled a session whose webhook had not arrived");
                    report.applied += 1;
                }
                Ok(WebhookOutcome::Duplicate | WebhookOutcome::AlreadySettled) => {
                    report.already_settled += 1;
                }
                Ok(WebhookOutcome::NotTerminal | WebhookOutcome::Ignored) => {
                    report.still_running += 1;
                }
                // Expired or cancelled since it was read: nothing to settle.
                Err(CoreError::SessionExpired | CoreError::InvalidState { .. }) => {
                    report.already_settled += 1;
                }
                Err(e) => {
                    tracing::warn!(session = %s.id, error = %e, "reconciler: cannot apply the outcome");
                    report.failed += 1;
                }
            }
        }
        report.next = if full_page { last } else { None };
        Ok(report)
    }
}
