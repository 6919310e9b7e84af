//! The Passbind server: the Core API for integrator backends, inbound identity-verification
//! webhooks, health, metrics and the OpenAPI document, over the core engine.

pub mod adapters;
pub mod app;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod routes;
pub mod rp;
pub mod serve;

pub use config::Settings;
pub use serve::{start, start_with_clock, RunningServer};
