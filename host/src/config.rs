//! Limits and settings that protect the host, with their defaults.

use std::time::Duration;

/// Limits applied to every function and connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message a client may send, after reassembling fragments; larger closes with 1009.
    pub max_message_size: usize,
    /// Guest time one event may use before it is stopped and the connection closed with 1011.
    pub event_timeout: Duration,
    /// Linear memory one guest instance may grow to.
    pub instance_memory: usize,
    /// Bytes that may wait in one connection's outbound queue; beyond it the client is treated
    /// as a slow consumer and closed with 1008.
    pub outbound_queue_bytes: usize,
    /// How long to wait for the peer's close frame after the host started a close.
    pub close_timeout: Duration,
    /// Warm instances kept per function when idle; 0 makes every event use a fresh instance.
    pub warm_instances: usize,
    /// Events an instance serves before it is replaced, so a slow leak in a guest is bounded.
    pub events_per_instance: u64,
    /// Largest component the admin API accepts.
    pub max_component_size: usize,
    /// How long shutdown waits for connections to finish their close handshakes and on-close.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            event_timeout: Duration::from_secs(1),
            instance_memory: 64 << 20,
            outbound_queue_bytes: 4 << 20,
            close_timeout: Duration::from_secs(5),
            warm_instances: 64,
            events_per_instance: 10_000,
            shutdown_timeout: Duration::from_secs(10),
            max_component_size: 64 << 20,
        }
    }
}

/// How often the engine's epoch advances; event deadlines are counted in these ticks, and a
/// running guest yields to other tasks once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
