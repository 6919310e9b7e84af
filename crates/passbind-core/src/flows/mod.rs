//! The flows. Each file adds the entry points of one flow to [`crate::Engine`].

pub mod authentication;
pub mod common;
pub(crate) mod data;
pub mod idv_verdict;
pub mod reconcile;
pub mod recovery;
pub mod registration;
pub mod step_up;
pub mod users;
