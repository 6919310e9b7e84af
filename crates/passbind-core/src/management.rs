//! What the management dashboard reads: overview statistics, user search, session lists. The
//! actions (revoke, erase, API keys) are the engine's own entry points, called with the
//! operator as the audit actor.

use crate::engine::{rfc3339, Engine};
use crate::error::CoreError;
use crate::machine::effective_state;
use crate::model::{Millis, SessionRecord};
use passbind_proto::management::{
    FlowSummary, IdvRates, OverviewView, SeriesPoint, SessionListView, SessionSummaryView,
    UserListView, UserSummaryView,
};
use passbind_proto::session::{Flow, SessionState};
use std::collections::BTreeMap;

/// A filter over sessions, newest first (by `created_at`, then `id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub flow: Option<Flow>,
    /// The *effective* state: `expired` also matches live sessions past their expiry, and a
    /// live state matches only sessions not yet expired at `now`.
    pub state: Option<SessionState>,
    /// `created_at >= since`.
    pub since: Option<Millis>,
    /// `created_at < until`.
    pub until: Option<Millis>,
    /// Keyset pagination: only sessions that sort after this one (older).
    pub before: Option<(Millis, String)>,
    /// The time against which expiry is judged.
    pub now: Millis,
    pub limit: u32,
}

/// Sessions created in one bucket, of one flow, with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCount {
    /// `created_at - created_at % bucket_ms`.
    pub bucket_start: Millis,
    pub flow: Flow,
    /// `completed`, `failed`, `expired`, `cancelled` or `pending`.
    pub outcome: String,
    /// For `failed`: the identity-verification failure reason.
    pub reason: Option<String>,
    pub count: u64,
}

/// A user as listed by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub external_user_id: String,
    pub created_at: Millis,
    pub erased_at: Option<Millis>,
    pub active_credentials: u64,
    pub has_ebt: bool,
}

/// Largest page of a list.
pub const MAX_PAGE: u32 = 200;

/// Longest overview period, and the most buckets it may have.
const MAX_PERIOD_MS: i64 = 366 * 86_400_000;
const MAX_BUCKETS: i64 = 1000;

pub fn session_summary(s: &SessionRecord, now: Millis) -> SessionSummaryView {
    SessionSummaryView {
        id: s.id.clone(),
        flow: s.flow,
        state: effective_state(s.state, s.expires_at, now),
        external_user_id: s.external_user_id.clone(),
        created_at: rfc3339(s.created_at),
        updated_at: rfc3339(s.updated_at),
        expires_at: rfc3339(s.expires_at),
        idv_provider: s.idv_provider.clone(),
        idv_failure: s.idv_failure.map(|f| f.as_str().to_owned()),
        credential_id: s.credential_id.clone(),
    }
}

/// `<created_at ms>.<id>`: the cursor of [`Engine::list_sessions`].
fn session_cursor(s: &SessionRecord) -> String {
    format!("{}.{}", s.created_at, s.id)
}

fn parse_session_cursor(c: &str) -> Result<(Millis, String), CoreError> {
    let bad = || CoreError::validation("before", "not a cursor from next_before");
    let (ms, id) = c.split_once('.').ok_or_else(bad)?;
    let ms: Millis = ms.parse().map_err(|_| bad())?;
    if !crate::validate::is_record_id(id) {
        return Err(bad());
    }
    Ok((ms, id.to_owned()))
}

fn rate(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        // Counts stay far below 2^52: exact as f64.
        n as f64 / d as f64
    }
}

impl Engine {
    /// Overview of the sessions created in `[since, until)`, in buckets of `bucket_ms`.
    pub async fn overview(
        &self,
        since: Millis,
        until: Millis,
        bucket_ms: i64,
    ) -> Result<OverviewView, CoreError> {
        if until <= since || until - since > MAX_PERIOD_MS {
            return Err(CoreError::validation(
                "since",
                "the period must be non-empty and at most 366 days",
            ));
        }
        if bucket_ms < 60_000 || (until - since) / bucket_ms > MAX_BUCKETS {
            return Err(CoreError::validation(
                "bucket_seconds",
                "at least 60 seconds and at most 1000 buckets per period",
            ));
        }
        let now = self.now();
        let totals = self.store.management_totals().await?;
        let counts = self
            .store
            .session_counts(since, until, bucket_ms, now)
            .await?;
        let mut all = FlowSummary::default();
        let mut per_flow: BTreeMap<&'static str, FlowSummary> = BTreeMap::new();
        let mut idv = IdvRates::default();
        let mut series = Vec::with_capacity(counts.len());
        for c in &counts {
            for f in [
                &mut all,
                per_flow
                    .entry(c.flow.as_str())
                    .or_insert_with(|| FlowSummary {
                        flow: Some(c.flow),
                        ..FlowSummary::default()
                    }),
            ] {
                f.total += c.count;
                match c.outcome.as_str() {
                    "completed" => f.completed += c.count,
                    "failed" => {
                        f.failed += c.count;
                        *f.failed_by_reason
                            .entry(c.reason.clone().unwrap_or_else(|| "unknown".into()))
                            .or_insert(0) += c.count;
                    }
                    "expired" => f.expired += c.count,
                    "cancelled" => f.cancelled += c.count,
                    _ => f.pending += c.count,
                }
            }
            if crate::machine::has_idv(c.flow) {
                match c.outcome.as_str() {
                    "completed" | "passed" => {
                        idv.decided += c.count;
                        idv.passed += c.count;
                    }
                    "failed" => {
                        idv.decided += c.count;
                        if c.reason.as_deref() == Some("declined") {
                            idv.mismatched += c.count;
                        }
                    }
                    _ => {}
                }
            }
            series.push(SeriesPoint {
                bucket_start: rfc3339(c.bucket_start),
                bucket_start_ms: c.bucket_start,
                flow: c.flow,
                outcome: if c.outcome == "passed" {
                    "pending".to_owned()
                } else {
                    c.outcome.clone()
                },
                reason: c.reason.clone(),
                count: c.count,
            });
        }
        // `passed` (awaiting completion) is reported as pending in the flow summaries.
        idv.pass_rate = rate(idv.passed, idv.decided);
        idv.mismatch_rate = rate(idv.mismatched, idv.decided);
        let mut flows = vec![all];
        flows.extend(per_flow.into_values());
        Ok(OverviewView {
            since: rfc3339(since),
            until: rfc3339(until),
            bucket_seconds: u64::try_from(bucket_ms / 1000).unwrap_or(0),
            totals,
            flows,
            series,
            idv,
        })
    }

    /// Users whose external id starts with `prefix`, in id order, after `after`.
    pub async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UserListView, CoreError> {
        if !prefix.is_empty() {
            crate::validate::external_user_id(prefix)?;
        }
        if let Some(a) = after {
            crate::validate::external_user_id(a)?;
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let mut rows = self.store.search_users(prefix, after, limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_after = if more {
            rows.last().map(|u| u.external_user_id.clone())
        } else {
            None
        };
        Ok(UserListView {
            users: rows
                .into_iter()
                .map(|u| UserSummaryView {
                    external_user_id: u.external_user_id,
                    created_at: rfc3339(u.created_at),
                    erased_at: u.erased_at.map(rfc3339),
                    active_credentials: u.active_credentials,
                    has_biometric_reference: u.has_ebt,
                })
                .collect(),
            next_after,
        })
    }

    /// A user's newest sessions (any state).
    pub async fn user_sessions(
        &self,
        external_user_id: &str,
        limit: u32,
    ) -> Result<Vec<SessionSummaryView>, CoreError> {
        crate::validate::external_user_id(external_user_id)?;
        let user = self
            .store
            .user_by_external_id(external_user_id)
            .await?
            .ok_or(CoreError::UserNotFound)?;
        let now = self.now();
        Ok(self
            .store
            .sessions_of_user(&user.id, limit.clamp(1, MAX_PAGE))
            .await?
            .iter()
            .map(|s| session_summary(s, now))
            .collect())
    }

    /// Sessions by flow, effective state and creation time, newest first.
    pub async fn list_sessions(
        &self,
        flow: Option<Flow>,
        state: Option<SessionState>,
        since: Option<Millis>,
        until: Option<Millis>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<SessionListView, CoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let now = self.now();
        let filter = SessionFilter {
            flow,
            state,
            since,
            until,
            before: before.map(parse_session_cursor).transpose()?,
            now,
            limit: limit + 1,
        };
        let mut rows = self.store.list_sessions(&filter).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(SessionListView {
            next_before: if more {
                rows.last().map(session_cursor)
            } else {
                None
            },
            sessions: rows.iter().map(|s| session_summary(s, now)).collect(),
        })
    }

    /// One session of any flow.
    pub async fn session_summary(&self, id: &str) -> Result<SessionSummaryView, CoreError> {
        if !crate::validate::is_record_id(id) {
            return Err(CoreError::SessionNotFound);
        }
        let s = self
            .store
            .session(id)
            .await?
            .ok_or(CoreError::SessionNotFound)?;
        Ok(session_summary(&s, self.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cursors_round_trip_and_refuse_garbage() {
        assert_eq!(
            parse_session_cursor("1700.reg_abc").ok(),
            Some((1700, "reg_abc".to_owned()))
        );
        for bad in ["", "x.reg_a", "1700", "1700.REG", "1700.a/b"] {
            assert!(parse_session_cursor(bad).is_err(), "{bad}");
        }
    }
}
