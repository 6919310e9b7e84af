//! `/v1/audit`: the tamper-evident audit trail, its signed checkpoints and proofs.

use crate::app::{ApiKey, AppState};
use crate::error::ApiError;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use passbind_core::auth::SCOPE_AUDIT;
use passbind_core::model::AuditQuery;
use passbind_proto::{ErrorBody, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(export))
        .routes(routes!(checkpoints, sign_checkpoint))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
        .routes(routes!(verify))
        .routes(routes!(public_key))
}

fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, format!("bad query: {e}"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    session_id: Option<String>,
    event_type: Option<String>,
    /// Epoch milliseconds.
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    /// Newest first: only events older than this sequence number.
    before_seq: Option<u64>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// Audit events, newest first (keyset pagination with `before_seq`). No personal data: users
/// appear as a keyed hash (`user_ref`), transactions as their hash.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(EventsParams),
    security(("api_key" = [])),
    responses((status = 200, description = "events", body = [Object]), (status = 400, body = ErrorBody)))]
async fn events(
    State(st): State<AppState>,
    key: ApiKey,
    q: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<passbind_audit::AuditEvent>>, ApiError> {
    key.require(SCOPE_AUDIT)?;
    let Query(p) = q.map_err(bad_query)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad_query("limit must be 1 to 1000"));
    }
    Ok(Json(
        st.engine
            .audit_events(&AuditQuery {
                session_id: p.session_id,
                event_type: p.event_type,
                since_ms: p.since_ms,
                until_ms: p.until_ms,
                before_seq: p.before_seq,
                after_seq: None,
                ascending: false,
                limit,
            })
            .await?,
    ))
}

/// The whole log and its checkpoints as JSON Lines (`passbind-audit/v1`), for
/// `passbind audit verify` or any independent verifier.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", security(("api_key" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
        (status = 400, description = "validation_failed: a query parameter (it takes none)", body = ErrorBody)))]
async fn export(
    State(st): State<AppState>,
    key: ApiKey,
    _: crate::error::NoQuery,
) -> Result<impl IntoResponse, ApiError> {
    key.require(SCOPE_AUDIT)?;
    let text = st.engine.export_audit_log().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"passbind-audit.jsonl\"",
            ),
        ],
        text,
    ))
}

/// Every signed checkpoint (tree size, Merkle root, time), oldest first.
#[utoipa::path(get, path = "/v1/audit/checkpoints", tag = "audit", security(("api_key" = [])),
    responses((status = 200, body = [Object]),
        (status = 400, description = "validation_failed: a query parameter (it takes none)", body = ErrorBody)))]
async fn checkpoints(
    State(st): State<AppState>,
    key: ApiKey,
    _: crate::error::NoQuery,
) -> Result<Json<Vec<passbind_audit::Checkpoint>>, ApiError> {
    key.require(SCOPE_AUDIT)?;
    Ok(Json(st.engine.audit_checkpoints().await?))
}

#[derive(Serialize, ToSchema)]
struct SignedCheckpoint {
    /// The new checkpoint, or null when no event was written since the last one.
    #[schema(value_type = Option<Object>)]
    checkpoint: Option<passbind_audit::Checkpoint>,
}

/// Sign a checkpoint now over every event written so far (for example before an export that
/// must cover the latest events).
#[utoipa::path(post, path = "/v1/audit/checkpoints", tag = "audit", security(("api_key" = [])),
    responses((status = 200, body = SignedCheckpoint)))]
async fn sign_checkpoint(
    State(st): State<AppState>,
    key: ApiKey,
) -> Result<Json<SignedCheckpoint>, ApiError> {
    key.require(SCOPE_AUDIT)?;
    Ok(Json(SignedCheckpoint {
        checkpoint: st.engine.checkpoint(true).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InclusionParams {
    /// The event's sequence number.
    seq: u64,
    /// The checkpoint's tree size (default: the newest checkpoint).
    tree_size: Option<u64>,
}

/// An RFC 9162 inclusion proof of one event in the tree of a signed checkpoint: check one event
/// without the whole log.
#[utoipa::path(get, path = "/v1/audit/proofs/inclusion", tag = "audit", params(InclusionParams),
    security(("api_key" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
async fn inclusion(
    State(st): State<AppState>,
    key: ApiKey,
    q: Result<Query<InclusionParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<passbind_core::audit::InclusionProof>, ApiError> {
    key.require(SCOPE_AUDIT)?;
    let Query(p) = q.map_err(bad_query)?;
    Ok(Json(st.engine.inclusion_proof(p.seq, p.tree_size).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConsistencyParams {
    /// The older checkpoint's tree size.
    from: u64,
    /// The newer checkpoint's tree size.
    to: u64,
}

/// An RFC 9162 consistency proof between two checkpoints: whoever holds the older one can check
/// that the log only grew.
#[utoipa::path(get, path = "/v1/audit/proofs/consistency", tag = "audit", params(ConsistencyParams),
    security(("api_key" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
async fn consistency(
    State(st): State<AppState>,
    key: ApiKey,
    q: Result<Query<ConsistencyParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<passbind_core::audit::ConsistencyProof>, ApiError> {
    key.require(SCOPE_AUDIT)?;
    let Query(p) = q.map_err(bad_query)?;
    Ok(Json(st.engine.consistency_proof(p.from, p.to).await?))
}

/// Verify the stored log as an auditor would verify an export (hash chain, Merkle roots,
/// checkpoint signatures); reports the first break precisely.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("api_key" = [])),
    responses((status = 200, body = Object)))]
async fn verify(
    State(st): State<AppState>,
    key: ApiKey,
) -> Result<Json<passbind_audit::Report>, ApiError> {
    key.require(SCOPE_AUDIT)?;
    Ok(Json(st.engine.verify_audit_log().await?))
}

#[derive(Serialize, ToSchema)]
struct PublicKey {
    /// `ed25519:<base64url>`: verifies checkpoints and identity proofs.
    public_key: String,
    key_id: String,
}

/// The public key that signs checkpoints and identity proofs (no authentication: publish it).
#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = PublicKey)))]
async fn public_key(State(st): State<AppState>) -> Json<PublicKey> {
    let text = st.engine.audit_public_key();
    let key_id = passbind_audit::parse_public_key(&text)
        .map(|k| passbind_audit::key_id(&k))
        .unwrap_or_default();
    Json(PublicKey {
        public_key: text,
        key_id,
    })
}
