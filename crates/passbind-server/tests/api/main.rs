//! The server over real HTTP on a real socket, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_keys;
mod audit;
mod authentication;
mod browser;
mod common;
mod cross_platform;
mod errors;
mod fake_onfido;
mod management;
mod oidc;
mod onfido;
mod privacy;
mod recovery;
mod registration;
mod replicas;
mod step_up;
mod users;
mod witness;
