//! What belongs to a function name rather than to one deployed version: its groups and its
//! counters. Every version, instance and connection of the function shares one scope, so a
//! hot swap keeps groups intact, and a connection can be told apart from another function's
//! by comparing scopes.

use std::sync::Arc;

use super::Groups;
use crate::observe::{FunctionMetrics, LogBus};

#[derive(Debug)]
pub struct FunctionScope {
    pub name: Arc<str>,
    pub groups: Groups,
    /// The function's Prometheus series.
    pub metrics: FunctionMetrics,
    /// The function's live log.
    pub logs: LogBus,
}

impl FunctionScope {
    /// A scope whose metrics belong to no registry (for checks and tests).
    pub fn new(name: Arc<str>) -> Self {
        let metrics = FunctionMetrics::detached(&name);
        Self::with_metrics(name, metrics)
    }

    /// A scope reporting to the host's metrics.
    pub fn with_metrics(name: Arc<str>, metrics: FunctionMetrics) -> Self {
        Self {
            name,
            groups: Groups::default(),
            metrics,
            logs: LogBus::default(),
        }
    }
}
