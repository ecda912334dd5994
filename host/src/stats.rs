//! A function's counters as the admin API reports them (`GET /v1/functions/{name}`).
//!
//! Read from the function's Prometheus series (`FunctionMetrics::stats`), so each event is
//! counted once and the two views always agree.

use serde::Serialize;

/// What happened to a function's events and connections since the host started.
#[derive(Debug, Serialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Guest traps (panics, `unreachable`, out-of-bounds accesses).
    pub faults_trap: u64,
    /// Events stopped at their deadline.
    pub faults_deadline: u64,
    /// Events that failed after the instance hit its memory limit.
    pub faults_memory: u64,
    /// Events that overflowed the guest stack.
    pub faults_stack: u64,
    /// Instances that could not be created.
    pub faults_instantiate: u64,
    pub slow_consumer_closes: u64,
    pub dropped_frames: u64,
    pub sends_refused: u64,
}
