//! Passbind wire types: the JSON bodies of the Core API and the stable error codes that clients
//! match on. Shared by the server, the SDK client and the CLI; depends on no web framework.

pub mod error;
pub mod flows;
pub mod management;
pub mod registration;
pub mod session;
pub mod users;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
