//! The server over real HTTP on a real socket, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod errors;
mod registration;
