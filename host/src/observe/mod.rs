//! What operators watch: Prometheus metrics and the live log stream of each function.
//!
//! Both are resolved per function once, when its scope is created, so the paths that run for
//! every message touch only pre-made handles: an atomic add for a counter, nothing at all for
//! a log line nobody is following.

mod latency;
mod log_bus;
mod metrics;

pub use log_bus::{LogBus, LogEvent, LogLine, Received, Subscription, rfc3339_millis};
pub use metrics::{ClusterMetrics, EventKind, FunctionMetrics, Metrics};
