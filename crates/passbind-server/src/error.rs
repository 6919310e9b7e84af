//! The one place where errors become HTTP: every failure, including extractor rejections,
//! unknown routes and oversized bodies, leaves as the JSON error envelope with a stable code.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use passbind_core::CoreError;
use passbind_proto::{ErrorBody, ErrorCode, ErrorDetail};
use serde::de::DeserializeOwned;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let code = e.code();
        if code.http_status() >= 500 {
            tracing::error!(error = %e, code = code.as_str(), "request failed");
        }
        Self {
            code,
            message: e.public_message(),
            details: e.details(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self
            .details
            .as_ref()
            .and_then(|d| d.get("retry_after_seconds"))
            .and_then(serde_json::Value::as_u64);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A JSON body, parsed with the envelope on every failure: wrong media type (415), oversized
/// (413), not JSON (`malformed_json`), or JSON of the wrong shape, including unknown fields
/// (`validation_failed`, with serde's explanation).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The body of an operation that takes none: nothing, or the empty JSON object `{}`. Anything
/// else is refused as [`ApiJson`] refuses it (`415`, `413`, `malformed_json`, or
/// `validation_failed` for members), instead of being ignored.
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Empty {}
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let (parts, body) = req.into_parts();
        let bytes = bytes::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(body_rejection)?;
        if bytes.is_empty() && !has_type {
            return Ok(NoBody);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        ApiJson::<Empty>::from_request(req, state)
            .await
            .map(|_| NoBody)
    }
}

/// The query of an operation that takes no parameters: an empty one. A parameter is refused
/// (`400 validation_failed`, naming it) rather than ignored, so that a caller who believes it
/// filters or pages (`?limit=5`, `?since=...`) learns that it does not.
pub struct NoQuery;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.uri.query().filter(|q| !q.is_empty()) {
            None => Ok(NoQuery),
            Some(q) => {
                let name: String = q
                    .split(['&', '='])
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(64)
                    .collect();
                Err(ApiError::new(
                    ErrorCode::ValidationFailed,
                    "this operation takes no query parameters",
                )
                .with_details(serde_json::json!({ "field": "query", "parameter": name })))
            }
        }
    }
}

/// Parses JSON into `T` with the envelope's codes: `malformed_json` when the bytes are not JSON
/// at all, `validation_failed` when they are JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let syntactically_valid = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        if syntactically_valid {
            ApiError::new(
                ErrorCode::ValidationFailed,
                format!("the body does not match the schema: {e}"),
            )
        } else {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {e}"),
            )
        }
    })
}

/// A path parameter, with the envelope when it cannot be decoded (for example invalid UTF-8).
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::ValidationFailed,
                    format!("bad path parameter: {e}"),
                )
                .with_details(serde_json::json!({ "field": "path" }))
            })
    }
}

/// Maps a failure to read the body.
pub fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large")
    } else {
        ApiError::new(ErrorCode::ValidationFailed, "the body could not be read")
    }
}

/// The fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// The fallback for a known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// Turns a panic (a bug) into the envelope instead of a dropped connection.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}
