//! The flows. Each file adds the entry points of one flow to [`crate::Engine`].

pub mod idv_verdict;
pub mod registration;
