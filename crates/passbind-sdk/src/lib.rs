pub mod authenticator;
pub mod client;
pub mod device;
pub mod load_device;
