//! One module per benchmark mode; each prints one JSON line on stdout for scripts and a
//! summary on stderr.

pub mod broadcast;
pub mod bytes;
pub mod connect;
pub mod echo;
pub mod idle;
pub mod relay;
pub mod storm;
