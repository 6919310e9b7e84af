//! The server over real HTTP on a real socket, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authentication;
mod common;
mod cross_platform;
mod errors;
mod fake_onfido;
mod onfido;
mod recovery;
mod registration;
mod step_up;
mod users;
