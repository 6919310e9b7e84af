//! The audit log: browse and filter events, verify the chain and its signed checkpoints,
//! download the export (JSON Lines, verifiable offline with `passbind audit verify`).

use super::{audit_action, ApiQuery};
use crate::app::AppState;
use crate::dashboard::session::OperatorSession;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use passbind_core::engine::rfc3339;
use passbind_core::model::AuditQuery;
use passbind_proto::management::{AuditEventListView, AuditEventView, BreakView, VerifyReportView};
use passbind_proto::ErrorBody;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(verify))
        .routes(routes!(export))
}

pub(crate) fn event_view(e: passbind_audit::AuditEvent) -> AuditEventView {
    AuditEventView {
        seq: e.seq,
        time: rfc3339(e.time_ms),
        time_ms: e.time_ms,
        event_type: e.event_type,
        outcome: e.outcome,
        reason: e.reason,
        session_id: e.session_id,
        flow: e.flow,
        actor_kind: e.actor.kind,
        actor_id: e.actor.id,
        user_ref: e.user_ref,
        tx_hash: e.tx_hash,
        details: e.details,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
struct EventsQuery {
    session_id: Option<String>,
    /// Exact event type, e.g. `session.transition`, `credential.revoked`, `operator.signed_in`.
    event_type: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    /// `next_before_seq` of the previous page.
    before_seq: Option<u64>,
    /// Page size (default 100, at most 500).
    limit: Option<u32>,
}

/// Audit events, newest first.
#[utoipa::path(get, path = "/api/management/v1/audit/events", tag = "management",
    params(EventsQuery),
    responses((status = 200, body = AuditEventListView),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn events(
    State(st): State<AppState>,
    _op: OperatorSession,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<AuditEventListView>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let nonempty = |s: Option<String>| s.filter(|v| !v.is_empty());
    let mut rows = st
        .engine
        .audit_events(&AuditQuery {
            session_id: nonempty(q.session_id),
            event_type: nonempty(q.event_type),
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            before_seq: q.before_seq,
            limit: limit + 1,
            ..AuditQuery::default()
        })
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(Json(AuditEventListView {
        next_before_seq: if more {
            rows.last().map(|e| e.seq)
        } else {
            None
        },
        events: rows.into_iter().map(event_view).collect(),
    }))
}

/// Verifies the whole chain and every signed checkpoint, as an auditor would offline; the run
/// is itself audited.
#[utoipa::path(post, path = "/api/management/v1/audit/verify", tag = "management",
    responses((status = 200, body = VerifyReportView),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody)))]
async fn verify(
    State(st): State<AppState>,
    op: OperatorSession,
) -> Result<Json<VerifyReportView>, ApiError> {
    let r = st.engine.verify_audit_log().await?;
    let mut details = serde_json::Map::new();
    details.insert("ok".into(), r.is_ok().into());
    details.insert("events_verified".into(), r.events_verified.into());
    audit_action(&st, &op, "management.audit_verified", details).await?;
    Ok(Json(VerifyReportView {
        ok: r.is_ok(),
        verified_at: rfc3339(st.engine.now()),
        events_verified: r.events_verified,
        checkpoints_verified: r.checkpoints_verified,
        anchored_size: r.anchored_size,
        unanchored_tail: r.unanchored_tail,
        pending_events: r.pending_events,
        first_break: r.first_break.map(|b| BreakView {
            line: b.line,
            seq: b.seq,
            kind: match serde_json::to_value(b.kind) {
                Ok(serde_json::Value::String(s)) => s,
                Ok(serde_json::Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => format!("{:?}", b.kind),
            },
            message: b.message,
        }),
    }))
}

/// The whole log as JSON Lines (header, events, checkpoints), for `passbind audit verify` or
/// any auditor. The download is audited.
#[utoipa::path(get, path = "/api/management/v1/audit/export", tag = "management",
    responses((status = 200, description = "JSON Lines", content_type = "application/x-ndjson", body = String),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn export(State(st): State<AppState>, op: OperatorSession) -> Result<Response, ApiError> {
    let text = st.engine.export_audit_log().await?;
    audit_action(
        &st,
        &op,
        "management.audit_exported",
        serde_json::Map::new(),
    )
    .await?;
    let name = format!(
        "attachment; filename=\"passbind-audit-{}.jsonl\"",
        st.engine.now()
    );
    let mut resp = text.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
