//! A scriptable device: a software authenticator (device-bound keys) plus the identity
//! capture a phone's camera would make, sent to the IDV provider with the run's `sdk_token`.

use crate::authenticator::SoftwareAuthenticator;
use crate::client::ClientError;
use passbind_idv::face::FaceTemplate;
use passbind_idv::simulator::{DocumentCapture, FaceCapture, SimulatorCapture};
use passbind_proto::session::IdvView;

/// A person, as the simulator's camera sees them. Different seeds are different people.
#[derive(Debug, Clone)]
pub struct Person {
    pub seed: u64,
    pub face: FaceTemplate,
}

impl Person {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            face: FaceTemplate::of_person(seed),
        }
    }

    /// A document scan plus a live selfie: a new user's enrolment.
    pub fn enrolment_capture(&self, noise_seed: u64) -> SimulatorCapture {
        SimulatorCapture {
            face: self.live_face(noise_seed),
            document: Some(DocumentCapture {
                document_type: "passport".to_owned(),
                issuing_country: "NLD".to_owned(),
                document_number: format!("X{:08}", self.seed % 100_000_000),
                given_names: format!("Given{}", self.seed),
                family_name: format!("Family{}", self.seed),
                date_of_birth: "1990-01-01".to_owned(),
                face_template: self.face.live_capture(noise_seed ^ 0x5eed).0,
            }),
            simulate: None,
        }
    }

    /// A live selfie only: a face-only match (another device, step-up, recovery).
    pub fn face_capture(&self, noise_seed: u64) -> SimulatorCapture {
        SimulatorCapture {
            face: self.live_face(noise_seed),
            document: None,
            simulate: None,
        }
    }

    fn live_face(&self, noise_seed: u64) -> FaceCapture {
        FaceCapture {
            template: self.face.live_capture(noise_seed).0,
            liveness: true,
        }
    }
}

/// A phone: its own authenticator and an HTTP client for the IDV capture.
#[derive(Clone)]
pub struct Device {
    pub authenticator: SoftwareAuthenticator,
    http: reqwest::Client,
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

impl Device {
    pub fn new() -> Self {
        Self {
            authenticator: SoftwareAuthenticator::new(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a capture for the session's identity-verification run.
    pub async fn submit_capture(
        &self,
        idv: &IdvView,
        capture: &SimulatorCapture,
    ) -> Result<(), ClientError> {
        let url = idv
            .capture_url
            .as_deref()
            .ok_or(ClientError::Decode("the session has no capture_url".into()))?;
        let token = idv
            .sdk_token
            .as_deref()
            .ok_or(ClientError::Decode("the session has no sdk_token".into()))?;
        let resp = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(capture)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Decode(format!(
                "capture refused: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )))
        }
    }
}
