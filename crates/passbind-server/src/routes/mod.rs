//! One file per resource.

pub mod health;
pub mod registrations;
pub mod webhooks;
