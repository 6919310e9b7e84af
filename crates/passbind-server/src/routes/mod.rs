//! One file per resource.

pub mod audit;
pub mod authentications;
pub mod cross_platform;
pub mod health;
pub mod management;
pub mod recoveries;
pub mod registrations;
pub mod step_ups;
pub mod users;
pub mod webhooks;
