//! Identity-verification providers for Passbind.
//!
//! * [`studio::StudioClient`]: the client for Entrust/Onfido Studio API v3.6 (applicants,
//!   workflow runs, signed `workflow_run.completed` webhooks, the authoritative
//!   `GET /workflow_runs/{id}`). It implements [`passbind_core::ports::IdvProvider`].
//! * [`simulator::Simulator`]: a development stand-in for the cloud provider that speaks the
//!   same wire protocol, so the one client serves both the simulator and the real provider.
//! * [`signature`]: the `X-SHA2-Signature` webhook scheme (HMAC-SHA256, hex).
//! * [`wire`]: the serde types of the v3.6 subset Passbind uses.
//! * [`face`]: synthetic face templates for the simulator and the scriptable device.

pub mod face;
pub mod signature;
pub mod simulator;
pub mod studio;
pub mod wire;
pub mod witness;

pub use simulator::{Simulator, SimulatorConfig};
pub use studio::{StudioClient, StudioConfig};

use passbind_core::ports::IdvPurpose;

/// The three Studio workflows Passbind runs (seed 001: `BIOMETRIC_PASSKEY_IDV_*_WORKFLOW_ID`).
/// Step-up and recovery may share one id.
///
/// The default (all empty) is refused by [`StudioClient::new`] and [`Simulator::new`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkflowIds {
    pub registration: String,
    pub step_up: String,
    pub recovery: String,
}

impl WorkflowIds {
    /// The workflow configured for `purpose`.
    pub fn for_purpose(&self, purpose: IdvPurpose) -> &str {
        match purpose {
            IdvPurpose::Registration => &self.registration,
            IdvPurpose::StepUp => &self.step_up,
            IdvPurpose::Recovery => &self.recovery,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, id) in [
            ("registration", &self.registration),
            ("step_up", &self.step_up),
            ("recovery", &self.recovery),
        ] {
            if id.trim().is_empty() {
                return Err(ConfigError(format!("the {name} workflow id is empty")));
            }
        }
        Ok(())
    }
}

/// A configuration that cannot work (empty secret, unusable URL, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IDV configuration: {0}")]
pub struct ConfigError(pub String);
