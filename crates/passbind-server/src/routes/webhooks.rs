//! `POST /v1/webhooks/idv/{provider}`: inbound identity-verification webhooks, authenticated
//! by their signature over the raw body only (no API key).

use crate::app::AppState;
use crate::error::{body_rejection, ApiError, ApiPath};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use passbind_core::flows::idv_verdict::WebhookOutcome;
use passbind_proto::ErrorBody;
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(idv_webhook))
}

#[derive(Serialize, ToSchema)]
struct WebhookAck {
    /// `applied`, `duplicate`, `already_settled`, `not_terminal`, `ignored`, or `accepted`
    /// (still processing after the acknowledgement deadline; it completes in the background
    /// or through the reconciler).
    status: &'static str,
}

/// Receive an identity-verification webhook. The signature is checked over the raw body
/// before parsing; the run's outcome is then read back from the provider.
#[utoipa::path(post, path = "/v1/webhooks/idv/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "`simulator` or `onfido`")),
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, body = WebhookAck),
        (status = 401, description = "invalid_signature", body = ErrorBody),
        (status = 404, description = "unknown_idv_run, unknown_idv_provider", body = ErrorBody),
        (status = 409, description = "invalid_state", body = ErrorBody),
        (status = 410, description = "session_expired", body = ErrorBody),
        (status = 502, description = "idv_unavailable: the run could not be read back from the provider; nothing was recorded, so the provider's retry (or the reconciler) settles it", body = ErrorBody),
    ))]
async fn idv_webhook(
    State(st): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookAck>, ApiError> {
    let body = body.map_err(body_rejection)?;
    // The work runs in its own task: if it is not done within the acknowledgement deadline
    // (Onfido expects a 2xx within 10 s), the delivery is acknowledged as accepted and the
    // task carries on. Nothing is recorded before the outcome is applied, so should it fail,
    // the reconciler settles the session from the provider's record.
    let engine = st.engine.clone();
    let name = provider.clone();
    let mut work = tokio::spawn(async move {
        let lookup = |h: &str| -> Option<String> {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        engine.handle_idv_webhook(&name, &lookup, &body).await
    });
    let result = match tokio::time::timeout(st.options.webhook_ack_deadline, &mut work).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(passbind_core::CoreError::Internal(
            "webhook processing stopped".into(),
        )),
        Err(_) => {
            tracing::warn!(
                provider,
                "webhook still processing at the deadline: acknowledged"
            );
            return Ok(Json(WebhookAck { status: "accepted" }));
        }
    };
    let m = &st.metrics;
    let status = match result {
        Ok(WebhookOutcome::Applied { .. }) => {
            m.webhooks_applied.fetch_add(1, Ordering::Relaxed);
            "applied"
        }
        Ok(WebhookOutcome::Duplicate) => {
            m.webhooks_duplicate.fetch_add(1, Ordering::Relaxed);
            "duplicate"
        }
        Ok(WebhookOutcome::AlreadySettled) => "already_settled",
        Ok(WebhookOutcome::NotTerminal) => "not_terminal",
        Ok(WebhookOutcome::Ignored) => "ignored",
        Err(e) => {
            m.webhooks_rejected.fetch_add(1, Ordering::Relaxed);
            let code = e.code().as_str();
            if matches!(e, passbind_core::CoreError::UnknownIdvProvider(_)) {
                // The path's text is the caller's, not a configured name: not logged.
                tracing::warn!(code, "webhook refused");
            } else {
                tracing::warn!(provider, code, "webhook refused");
            }
            return Err(e.into());
        }
    };
    Ok(Json(WebhookAck { status }))
}
