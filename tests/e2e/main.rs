//! End-to-end tests: each test starts a host with prebuilt functions from `target/functions/`
//! and talks to it over real sockets. A host runs inside the test process unless the test
//! needs the real `wsfn-host` process: its command line, stdout, log, signals, restarts or
//! being killed (see `support/host.rs`).

mod support;

mod admin;
mod admin_cli;
mod admission;
mod browser;
mod chat;
mod cluster;
mod cluster_rolling;
mod cluster_sentinel;
mod cluster_sessions;
mod compile_priority;
mod config_file;
mod conformance;
mod counter;
mod durable_state;
mod echo;
mod error_event;
mod faults;
mod handler_errors;
mod host_command;
mod hot_swap;
mod js_sessions;
mod lifecycle;
mod lifecycle_paths;
mod limits;
mod logs;
mod metrics;
mod notify;
mod openapi;
mod restart;
mod routing;
mod scaffold;
mod session_journal;
mod session_protocol;
mod session_refusals;
mod session_resume;
mod sessions;
mod setup_script;
mod shutdown;
mod signed_urls;
mod slow_consumer;
mod soak;
mod static_files;
mod store_conformance;
