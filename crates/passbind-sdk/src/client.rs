//! A typed client for the Core API, as an integrator backend uses it.

use passbind_proto::registration::{CompleteRegistration, OpenRegistration};
use passbind_proto::session::SessionView;
use passbind_proto::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with the error envelope.
    #[error("{status} {}: {}", body.error.code, body.error.message)]
    Api { status: u16, body: ErrorBody },
    #[error("transport: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    Decode(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl ClientError {
    /// The stable error code, when the server sent one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Api { body, .. } => Some(body.error.code.as_str()),
            _ => None,
        }
    }
}

/// The Core API client.
#[derive(Clone)]
pub struct CoreClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl CoreClient {
    pub fn new(base_url: &str, api_key: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
        } else {
            let body: ErrorBody = serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Decode(format!("status {status} without the error envelope: {e}"))
            })?;
            Err(ClientError::Api { status, body })
        }
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn open_registration(
        &self,
        req: &OpenRegistration,
    ) -> Result<SessionView, ClientError> {
        self.post("/v1/registrations", req).await
    }

    pub async fn registration(&self, id: &str) -> Result<SessionView, ClientError> {
        self.get(&format!("/v1/registrations/{id}")).await
    }

    pub async fn complete_registration(
        &self,
        id: &str,
        req: &CompleteRegistration,
    ) -> Result<SessionView, ClientError> {
        self.post(&format!("/v1/registrations/{id}/complete"), req)
            .await
    }

    pub async fn cancel_registration(&self, id: &str) -> Result<SessionView, ClientError> {
        self.post(
            &format!("/v1/registrations/{id}/cancel"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Opens a session of any flow: `POST /v1/{resource}` (`authentications`, `step-ups`,
    /// `cross-platform-sessions`, `recoveries`).
    pub async fn open<B: Serialize>(
        &self,
        resource: &str,
        body: &B,
    ) -> Result<SessionView, ClientError> {
        self.post(&format!("/v1/{resource}"), body).await
    }

    /// `POST /v1/{resource}/{id}/{action}` with a JSON body.
    pub async fn act<B: Serialize>(
        &self,
        resource: &str,
        id: &str,
        action: &str,
        body: &B,
    ) -> Result<SessionView, ClientError> {
        self.post(&format!("/v1/{resource}/{id}/{action}"), body)
            .await
    }

    /// Polls a session (`/v1/registrations/{id}` and the like) until its identity
    /// verification has a verdict or the session is closed.
    pub async fn wait_for_verdict(
        &self,
        session_path: &str,
        timeout: Duration,
    ) -> Result<SessionView, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s: SessionView = self.get(session_path).await?;
            let pending = s
                .idv
                .as_ref()
                .map(|i| i.verdict == "pending")
                .unwrap_or(false);
            if !pending || s.state.is_terminal() {
                return Ok(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout("the identity-verification verdict"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
