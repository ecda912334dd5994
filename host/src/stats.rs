//! Counters kept per function (across its versions), reported by the admin API.
//!
//! Plain relaxed atomics: they are incremented on hot paths and read rarely, and no decision
//! depends on two of them agreeing.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// What happened to a function's events and connections since the host started.
#[derive(Debug, Default)]
pub struct FunctionStats {
    pub faults_trap: AtomicU64,
    pub faults_deadline: AtomicU64,
    pub faults_memory: AtomicU64,
    pub faults_stack: AtomicU64,
    pub faults_instantiate: AtomicU64,
    /// Connections closed with 1008 because they did not read what was sent to them.
    pub slow_consumer_closes: AtomicU64,
    /// Frames dropped by the drop-oldest slow-consumer policy.
    pub dropped_frames: AtomicU64,
    /// Sends refused because an event exceeded its sends-per-event limit.
    pub sends_refused: AtomicU64,
}

/// A copy of the counters, for the admin API.
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

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl FunctionStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            faults_trap: get(&self.faults_trap),
            faults_deadline: get(&self.faults_deadline),
            faults_memory: get(&self.faults_memory),
            faults_stack: get(&self.faults_stack),
            faults_instantiate: get(&self.faults_instantiate),
            slow_consumer_closes: get(&self.slow_consumer_closes),
            dropped_frames: get(&self.dropped_frames),
            sends_refused: get(&self.sends_refused),
        }
    }
}
