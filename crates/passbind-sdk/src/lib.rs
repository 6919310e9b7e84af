pub mod authenticator;
pub mod client;
pub mod device;
