//! Serde types for the subset of the Entrust/Onfido API v3.6 that Passbind uses.
//!
//! Reading is lenient: unknown fields are ignored and most fields are optional, so a provider
//! that adds fields (or leaves some null) does not break the client. Types that can carry a
//! biometric token or an SDK token redact them in `Debug`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The action of the webhook Passbind acts on.
pub const ACTION_WORKFLOW_RUN_COMPLETED: &str = "workflow_run.completed";
/// The resource type of workflow-run webhooks.
pub const RESOURCE_WORKFLOW_RUN: &str = "workflow_run";
/// The workflow input and output key of the encrypted biometric token.
pub const EBT_KEY: &str = "encrypted_biometric_token";

/// `POST /applicants`. Passbind only ever sends placeholder names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicantCreate {
    pub first_name: String,
    pub last_name: String,
}

/// An applicant as the provider returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub href: Option<String>,
}

/// `POST /workflow_runs`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRunCreate {
    pub workflow_id: String,
    pub applicant_id: String,
    /// The workflow inputs (`encrypted_biometric_token` among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Value>,
}

impl fmt::Debug for WorkflowRunCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowRunCreate")
            .field("workflow_id", &self.workflow_id)
            .field("applicant_id", &self.applicant_id)
            .field(
                "custom_data",
                &self.custom_data.as_ref().map(|_| "<redacted>"),
            )
            .field("customer_user_id", &self.customer_user_id)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// The `error` object of a run that ended with status `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A workflow run as the provider returns it (`POST /workflow_runs`, `GET /workflow_runs/{id}`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub applicant_id: Option<String>,
    #[serde(default)]
    pub workflow_id: Option<String>,
    #[serde(default)]
    pub workflow_version_id: Option<i64>,
    /// The workflow's configured outputs (`encrypted_biometric_token` for a new registration).
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    #[serde(default)]
    pub error: Option<RunError>,
    /// For the device SDK; bound to this run.
    #[serde(default)]
    pub sdk_token: Option<String>,
    #[serde(default)]
    pub dashboard_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub customer_user_id: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub link: Option<Value>,
}

impl WorkflowRun {
    /// `output.encrypted_biometric_token` when it is a non-empty string.
    pub fn output_biometric_token(&self) -> Option<&str> {
        self.output
            .as_ref()
            .and_then(|o| o.get(EBT_KEY))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for WorkflowRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "<redacted>" } else { "<none>" };
        f.debug_struct("WorkflowRun")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("applicant_id", &self.applicant_id)
            .field("workflow_id", &self.workflow_id)
            .field("workflow_version_id", &self.workflow_version_id)
            .field("output", &redacted(self.output.is_some()))
            .field("reasons", &self.reasons)
            .field("error", &self.error)
            .field("sdk_token", &redacted(self.sdk_token.is_some()))
            .field("dashboard_url", &self.dashboard_url)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("customer_user_id", &self.customer_user_id)
            .field("tags", &self.tags)
            .field("custom_data", &redacted(self.custom_data.is_some()))
            .finish_non_exhaustive()
    }
}

/// A webhook delivery: `{"payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEnvelope {
    pub payload: WebhookPayload,
}

/// The payload of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    pub resource_type: String,
    pub action: String,
    /// The object the event is about. Lenient: events Passbind ignores may shape it otherwise.
    #[serde(default)]
    pub object: WebhookObject,
    /// Optional extra detail. Never trusted: the run is re-fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
}

/// `payload.object`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WebhookObject {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub completed_at_iso8601: Option<String>,
    #[serde(default)]
    pub href: Option<String>,
}

/// The error body of every endpoint: `{"error": {"type", "message", "fields"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// `error` of [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reading_is_lenient() {
        let run: WorkflowRun = serde_json::from_str(
            r#"{"id":"r1","status":"approved","workflow_version_id":3,"reasons":null,
                "output":{"encrypted_biometric_token":"abc","other":1},"new_field":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(run.output_biometric_token(), Some("abc"));
        let empty: WorkflowRun = serde_json::from_str(
            r#"{"id":"r1","status":"approved","output":{"encrypted_biometric_token":""}}"#,
        )
        .unwrap();
        assert_eq!(empty.output_biometric_token(), None);
        let debug = format!("{run:?}");
        assert!(!debug.contains("abc"));
    }

    #[test]
    fn webhook_and_error_envelopes() {
        let hook: WebhookEnvelope = serde_json::from_str(
            r#"{"payload":{"resource_type":"workflow_task","action":"workflow_task.started",
                "object":{"id":"t1","task_spec_id":"x"},"resource":{"a":1}}}"#,
        )
        .unwrap();
        assert_eq!(hook.payload.object.status, None);
        let err: ErrorEnvelope = serde_json::from_str(
            r#"{"error":{"type":"validation_error","message":"bad","fields":{"a":["x"]}}}"#,
        )
        .unwrap();
        assert_eq!(err.error.kind, "validation_error");
    }
}
