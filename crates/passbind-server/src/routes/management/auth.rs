//! Operator sign-in: the first operator's passkey enrolment with the one-time setup link,
//! passkey sign-in, sign-in with the operator's OIDC provider, sign-out, invitations.

use crate::app::AppState;
use crate::dashboard::session::{check_origin, cookie, OperatorSession};
use crate::error::{ApiError, ApiJson};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use passbind_core::crypto::{b64url, ct_eq, random_bytes, sha256};
use passbind_core::engine::rfc3339;
use passbind_core::operators::{NewOperatorSession, OperatorIdentity};
use passbind_core::ports::Rng;
use passbind_proto::management::{
    AuthStatus, BeginEnrolment, CeremonyView, FinishCeremony, InvitationView, OperatorView,
    SignedIn,
};
use passbind_proto::{ErrorBody, ErrorCode};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(setup_begin))
        .routes(routes!(setup_finish))
        .routes(routes!(passkey_begin))
        .routes(routes!(passkey_finish))
        .routes(routes!(oidc_start))
        .routes(routes!(oidc_callback))
        .routes(routes!(sign_out))
        .routes(routes!(invite))
}

pub(crate) fn operator_view(o: &OperatorIdentity) -> OperatorView {
    OperatorView {
        subject: o.subject.clone(),
        display_name: o.display_name.clone(),
        method: o.method.clone(),
        expires_at: rfc3339(o.expires_at),
    }
}

/// Whether the browser is signed in, its CSRF token, and which sign-in methods exist.
#[utoipa::path(get, path = "/api/management/v1/auth/status", tag = "management",
    responses((status = 200, body = AuthStatus)))]
async fn status(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AuthStatus>, ApiError> {
    let m = &st.options.management;
    let mut out = AuthStatus {
        signed_in: false,
        operator: None,
        csrf_token: None,
        passkey: m.operators.passkeys_enabled(),
        oidc: m.oidc.is_some(),
        setup_pending: !m.operators.any_operator().await?,
    };
    if let Some(value) = cookie(&headers, m.cookie_name()) {
        if let Ok(who) = m.operators.authenticate(&value).await {
            out.signed_in = true;
            out.operator = Some(operator_view(&who));
            out.csrf_token = Some(passbind_core::operators::csrf_token(&value));
        }
    }
    Ok(Json(out))
}

fn signed_in(st: &AppState, s: NewOperatorSession) -> Response {
    let m = &st.options.management;
    let body = Json(SignedIn {
        operator: operator_view(&s.identity),
        csrf_token: s.csrf_token,
    });
    let mut resp = body.into_response();
    if let Some(c) = m.session_cookie(&s.cookie_value) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Enrolment, step 1: the setup link's token and the operator's name; returns the WebAuthn
/// creation options for a passkey on the dashboard's origin.
#[utoipa::path(post, path = "/api/management/v1/auth/setup/begin", tag = "management",
    request_body = BeginEnrolment,
    responses((status = 200, body = CeremonyView),
        (status = 401, description = "unauthorized: the setup link is invalid, used or expired", body = ErrorBody)))]
async fn setup_begin(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<BeginEnrolment>,
) -> Result<Json<CeremonyView>, ApiError> {
    let m = &st.options.management;
    check_origin(m, &headers)?;
    let c = m
        .operators
        .begin_enrolment(&req.setup_token, &req.name)
        .await
        .map_err(setup_error)?;
    Ok(Json(CeremonyView {
        challenge_id: c.challenge_id,
        options: c.options,
    }))
}

fn setup_error(e: passbind_core::CoreError) -> ApiError {
    match e {
        passbind_core::CoreError::Unauthorized => ApiError::new(
            ErrorCode::Unauthorized,
            "this setup link is invalid, already used or expired; ask an operator for a new one \
             (or restart the server while no operator exists)",
        ),
        other => other.into(),
    }
}

/// Enrolment, step 2: the new passkey; creates the operator and signs them in (cookie).
#[utoipa::path(post, path = "/api/management/v1/auth/setup/finish", tag = "management",
    request_body = FinishCeremony,
    responses((status = 200, body = SignedIn),
        (status = 400, description = "webauthn_verification_failed", body = ErrorBody),
        (status = 401, description = "unauthorized: the setup link or ceremony is invalid, used or expired", body = ErrorBody)))]
async fn setup_finish(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<FinishCeremony>,
) -> Result<Response, ApiError> {
    let m = &st.options.management;
    check_origin(m, &headers)?;
    let s = m
        .operators
        .finish_enrolment(&req.challenge_id, &req.credential)
        .await
        .map_err(setup_error)?;
    Ok(signed_in(&st, s))
}

/// Passkey sign-in, step 1: request options for a discoverable credential.
#[utoipa::path(post, path = "/api/management/v1/auth/passkey/begin", tag = "management",
    responses((status = 200, body = CeremonyView)))]
async fn passkey_begin(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<CeremonyView>, ApiError> {
    let m = &st.options.management;
    check_origin(m, &headers)?;
    let c = m.operators.begin_sign_in().await?;
    Ok(Json(CeremonyView {
        challenge_id: c.challenge_id,
        options: c.options,
    }))
}

/// Passkey sign-in, step 2: the assertion; signs the operator in (cookie).
#[utoipa::path(post, path = "/api/management/v1/auth/passkey/finish", tag = "management",
    request_body = FinishCeremony,
    responses((status = 200, body = SignedIn),
        (status = 400, description = "webauthn_verification_failed", body = ErrorBody),
        (status = 401, description = "unauthorized: the ceremony is invalid, used or expired", body = ErrorBody)))]
async fn passkey_finish(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<FinishCeremony>,
) -> Result<Response, ApiError> {
    let m = &st.options.management;
    check_origin(m, &headers)?;
    let s = m
        .operators
        .finish_sign_in(&req.challenge_id, &req.credential)
        .await?;
    Ok(signed_in(&st, s))
}

/// 256 random bits, base64url.
fn random_b64() -> String {
    let rng = crate::adapters::SystemRng::new();
    b64url(&random_bytes::<32>(&rng as &dyn Rng))
}

fn oidc_unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::NotSupported,
        "sign-in with an OIDC provider is not configured (PASSBIND_OIDC_ISSUER)",
    )
}

/// OIDC sign-in: redirects the browser to the operator's provider (Authorization Code with
/// PKCE); the provider sends it back to the callback.
#[utoipa::path(get, path = "/api/management/v1/auth/oidc/start", tag = "management",
    responses((status = 303, description = "to the provider's authorization endpoint"),
        (status = 501, description = "not_supported: no OIDC provider configured", body = ErrorBody)))]
async fn oidc_start(State(st): State<AppState>) -> Result<Response, ApiError> {
    let m = &st.options.management;
    let oidc = m.oidc.as_ref().ok_or_else(oidc_unavailable)?;
    let state = random_b64();
    let nonce = random_b64();
    let verifier = random_b64();
    let challenge = b64url(&sha256(verifier.as_bytes()));
    let url = oidc
        .authorization_url(&state, &nonce, &challenge)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "OIDC sign-in could not start");
            ApiError::new(
                ErrorCode::IdvUnavailable,
                "the OIDC provider is unavailable",
            )
        })?;
    m.operators
        .begin_oidc(
            &state,
            serde_json::json!({ "nonce": nonce, "verifier": verifier }),
        )
        .await?;
    let mut resp = Redirect::to(&url).into_response();
    let ttl = m.operators.config().challenge_ttl_secs;
    if let Some(c) = m.oidc_cookie(&state, ttl) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn back_to_sign_in(reason: &str) -> Response {
    Redirect::to(&format!("/dashboard/sign-in?error={reason}")).into_response()
}

/// OIDC sign-in: the provider's redirect back. Checks the state against the browser's cookie
/// (single use), exchanges the code with the PKCE verifier, verifies the ID token (signature,
/// iss, aud, exp, nonce), signs the operator in and redirects to the dashboard.
#[utoipa::path(get, path = "/api/management/v1/auth/oidc/callback", tag = "management",
    params(Callback),
    responses((status = 303, description = "to the dashboard (signed in) or back to its sign-in page with `error`")))]
async fn oidc_callback(
    State(st): State<AppState>,
    headers: HeaderMap,
    super::ApiQuery(q): super::ApiQuery<Callback>,
) -> Result<Response, ApiError> {
    let m = &st.options.management;
    let oidc = m.oidc.as_ref().ok_or_else(oidc_unavailable)?;
    let clear = m.oidc_cookie("", 0);
    let with_clear = |mut r: Response| {
        if let Some(c) = &clear {
            r.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        r
    };
    if let Some(e) = &q.error {
        tracing::info!(error = %e, "the OIDC provider refused the sign-in");
        return Ok(with_clear(back_to_sign_in("oidc_refused")));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Ok(with_clear(back_to_sign_in("oidc_invalid")));
    };
    let bound = cookie(&headers, m.oidc_cookie_name()).unwrap_or_default();
    if bound.is_empty() || !ct_eq(bound.as_bytes(), state.as_bytes()) {
        return Ok(with_clear(back_to_sign_in("oidc_state")));
    }
    let Ok(kept) = m.operators.take_oidc(&state).await else {
        return Ok(with_clear(back_to_sign_in("oidc_state")));
    };
    let nonce = kept["nonce"].as_str().unwrap_or_default();
    let verifier = kept["verifier"].as_str().unwrap_or_default();
    let who = match oidc.finish(&code, verifier, nonce).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in refused");
            return Ok(with_clear(back_to_sign_in("oidc_token")));
        }
    };
    let s = m
        .operators
        .oidc_sign_in(&who.sub, &who.display_name)
        .await?;
    let mut resp = with_clear(Redirect::to("/dashboard/").into_response());
    if let Some(c) = m.session_cookie(&s.cookie_value) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// Signs the operator out (the session is revoked server-side).
#[utoipa::path(post, path = "/api/management/v1/auth/sign-out", tag = "management",
    responses((status = 204, description = "signed out"),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody)))]
async fn sign_out(State(st): State<AppState>, op: OperatorSession) -> Result<Response, ApiError> {
    let m = &st.options.management;
    m.operators.sign_out(&op.cookie, &op.identity).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = m.clear_session_cookie() {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// A one-time setup link with which another operator enrols a passkey.
#[utoipa::path(post, path = "/api/management/v1/operators/invitations", tag = "management",
    request_body(content = Option<Object>, content_type = "application/json",
        description = "none, or the empty object `{}`"),
    responses((status = 201, body = InvitationView),
        (status = 400, description = "malformed_json, validation_failed: a body other than `{}`", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: a body that is not application/json", body = ErrorBody)))]
async fn invite(
    State(st): State<AppState>,
    op: OperatorSession,
    _: crate::error::NoBody,
) -> Result<Response, ApiError> {
    let m = &st.options.management;
    let t = m.operators.issue_setup_token(Some(&op.identity)).await?;
    let body = InvitationView {
        setup_url: m.setup_url(&t.token),
        expires_at: rfc3339(t.expires_at),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
