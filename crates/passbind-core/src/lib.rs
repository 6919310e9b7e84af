//! The heart of Passbind: the five flows as explicit state machines, and the policies around
//! them. This crate does no I/O. Time ([`ports::Clock`]), randomness ([`ports::Rng`]), storage
//! ([`ports::Store`]), identity verification ([`ports::IdvProvider`]) and WebAuthn verification
//! ([`ports::RelyingParty`]) come in through traits, so every flow is testable without a network
//! and every adapter can be tested against the real thing.

pub mod audit;
pub mod auth;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod flows;
pub mod machine;
pub mod management;
pub mod model;
pub mod operators;
pub mod ports;
pub mod validate;

pub use engine::{Engine, EngineConfig, Keys, RpMode};
pub use error::CoreError;
pub use passbind_audit::Actor;
