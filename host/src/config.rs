//! Limits and settings that protect the host, with their defaults.

use std::time::Duration;

/// What happens when a connection's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1008 and drop what is queued (the default: a client that
    /// cannot keep up would otherwise see a stream with holes in it).
    #[default]
    Close,
    /// Drop the oldest queued messages to make room (for feeds where only the latest matters).
    DropOldest,
}

/// How the threads that compile components share the CPU with the threads serving connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CompilePriority {
    /// The same priority as serving: deploys finish soonest, and on a busy CPU the messages
    /// being served wait while a component compiles.
    Normal,
    /// nice 10 (the default): on a busy CPU compiling gets about a tenth of it, in scheduler
    /// slices of a few milliseconds, so messages served meanwhile see those slices as latency.
    #[default]
    Low,
    /// Only CPU time that serving leaves unused (SCHED_IDLE): serving latency does not move,
    /// and on a CPU kept fully busy a deploy takes seconds instead of milliseconds. A compile
    /// still waiting after [`IDLE_COMPILE_LIMIT`] is raised to `low`, so it always finishes.
    Idle,
}

/// How long a compile at [`CompilePriority::Idle`] may wait for idle CPU before it is raised.
pub const IDLE_COMPILE_LIMIT: Duration = Duration::from_secs(30);

/// Limits applied to every function and connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message a client may send, after reassembling fragments; larger closes with 1009.
    pub max_message_size: usize,
    /// Largest single frame a client may send; larger closes with 1009.
    pub max_frame_size: usize,
    /// Guest time one event may use before it is stopped and the connection closed with 1011.
    pub event_timeout: Duration,
    /// Linear memory one guest instance may grow to.
    pub instance_memory: usize,
    /// Core instances, tables and memories one component instance may create, and table size.
    pub instances_per_component: usize,
    pub tables_per_component: usize,
    pub memories_per_component: usize,
    pub table_elements: usize,
    /// Bytes that may wait in one connection's outbound queue.
    pub outbound_queue_bytes: usize,
    /// What happens when that queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Messages one event may send (`reply`, `send`, each id of `send-many`, each `publish`).
    pub sends_per_event: u32,
    /// Keys one function may keep in the key-value store.
    pub kv_keys_per_function: usize,
    /// How long one key-value call of a guest may wait for the store (guest time does not
    /// run while it waits, so this bounds an event held up by a slow backend).
    pub kv_timeout: Duration,
    /// How long to wait for the peer's close frame after the host started a close.
    pub close_timeout: Duration,
    /// How long a client may take to send its upgrade request after connecting.
    pub handshake_timeout: Duration,
    /// A ping is sent after this long without hearing from the peer.
    pub ping_interval: Duration,
    /// A peer that answers nothing this long after a ping is gone: the connection ends (1006).
    pub pong_timeout: Duration,
    /// A connection that sends no message this long is closed with 1001; zero disables it.
    pub idle_timeout: Duration,
    /// Open connections the host accepts in all; more are refused with 503.
    pub max_connections: usize,
    /// Open connections one client address may have; more are refused with 429.
    pub max_connections_per_ip: usize,
    /// When not empty, browsers (which send `Origin`) must come from one of these origins.
    pub allowed_origins: Vec<String>,
    /// Guest instances that may exist at once on this host, over all functions. Each reserves
    /// address space (not memory) for its linear memory up front.
    pub max_instances: u32,
    /// Warm instances kept per function when idle; 0 makes every event use a fresh instance.
    pub warm_instances: usize,
    /// Events an instance serves before it is replaced, so a slow leak in a guest is bounded.
    pub events_per_instance: u64,
    /// Largest component the admin API accepts.
    pub max_component_size: usize,
    /// How long shutdown waits for connections to finish their close handshakes and on-close.
    pub shutdown_timeout: Duration,
    /// How compiling threads share the CPU with serving.
    pub compile_priority: CompilePriority,
    /// How long a resumable session whose socket was lost is kept for its client to resume.
    pub resume_window: Duration,
    /// Payload bytes a resumable session may hold for its client (queued, or sent and not yet
    /// acknowledged); more ends the connection rather than leave a hole in its stream.
    pub session_retention: usize,
    /// Whether permessage-deflate is offered to clients that ask for it.
    pub deflate: bool,
    /// Messages smaller than this are sent uncompressed even where deflate was negotiated.
    pub deflate_threshold: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_frame_size: 1 << 20,
            event_timeout: Duration::from_secs(1),
            instance_memory: 64 << 20,
            instances_per_component: 64,
            tables_per_component: 64,
            memories_per_component: 4,
            table_elements: 100_000,
            outbound_queue_bytes: 4 << 20,
            slow_consumer: SlowConsumerPolicy::Close,
            sends_per_event: 10_000,
            kv_keys_per_function: 1_000_000,
            kv_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(600),
            max_connections: 100_000,
            max_connections_per_ip: 10_000,
            allowed_origins: Vec::new(),
            max_instances: 1000,
            warm_instances: 64,
            events_per_instance: 10_000,
            max_component_size: 64 << 20,
            shutdown_timeout: Duration::from_secs(10),
            compile_priority: CompilePriority::Low,
            resume_window: Duration::from_secs(120),
            session_retention: 1 << 20,
            deflate: true,
            deflate_threshold: 128,
        }
    }
}

/// How often the engine's epoch advances; event deadlines are counted in these ticks, and a
/// running guest yields to other tasks once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
