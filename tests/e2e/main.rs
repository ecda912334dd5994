//! End-to-end tests: each test starts the real `wsfn-host` binary with prebuilt functions
//! from `target/functions/` and talks to it over real sockets.

mod support;

mod admin;
mod admin_cli;
mod admission;
mod chat;
mod conformance;
mod counter;
mod durable_state;
mod echo;
mod faults;
mod hot_swap;
mod lifecycle;
mod lifecycle_paths;
mod limits;
mod notify;
mod openapi;
mod restart;
mod routing;
mod shutdown;
mod slow_consumer;
mod soak;
mod store_conformance;
