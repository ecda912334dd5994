//! The host's Prometheus metrics, exposed on the admin listener at `/metrics`.
//!
//! Every metric is a family labelled at least by function. Each function's scope asks for its
//! handles once ([`Metrics::function`]); a handle shares its value with the registered
//! series, so the hot paths only add to atomics (latency histograms included, see
//! [`Latency`]) and never hash a label set or take a lock. The only lookup by label at event time is a
//! refused handshake, whose status is only known then.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::latency::Latency;
use crate::stats::StatsSnapshot;

/// The fault kinds the runtime tells apart (see `EventError::kind`).
const FAULT_KINDS: [&str; 5] = ["trap", "deadline", "memory", "stack", "instantiate"];

/// Which handler an event ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connect,
    Message,
    Close,
}

impl EventKind {
    const ALL: [EventKind; 3] = [EventKind::Connect, EventKind::Message, EventKind::Close];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Connect => "connect",
            EventKind::Message => "message",
            EventKind::Close => "close",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    function: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    function: Arc<str>,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    function: Arc<str>,
    kind: &'static str,
}

type PerFunction<M> = Family<FunctionLabels, M>;

/// The registry and its families. Built once per host; immutable afterwards, so scrapes and
/// events never contend on it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    open_connections: PerFunction<Gauge>,
    accepted: PerFunction<Counter>,
    rejected: Family<StatusLabels, Counter>,
    messages_in: PerFunction<Counter>,
    bytes_in: PerFunction<Counter>,
    messages_out: PerFunction<Counter>,
    bytes_out: PerFunction<Counter>,
    event_duration: Family<EventLabels, Latency>,
    faults: Family<FaultLabels, Counter>,
    dropped_frames: PerFunction<Counter>,
    slow_consumer_closes: PerFunction<Counter>,
    sends_refused: PerFunction<Counter>,
    deploys: PerFunction<Counter>,
    rollbacks: PerFunction<Counter>,
    idle_instances: PerFunction<Gauge>,
    pool_misses: PerFunction<Counter>,
    sessions_detached: PerFunction<Gauge>,
    sessions_resumed: PerFunction<Counter>,
    sessions_expired: PerFunction<Counter>,
    messages_replayed: PerFunction<Counter>,
    session_bytes_held: PerFunction<Gauge>,
    cluster: ClusterMetrics,
}

/// The node's own series about its link to the cluster's Redis (no `function` label); the
/// cluster module holds clones of the handles.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetrics {
    /// Group publishes heard from other nodes.
    pub publishes_received: Counter,
    /// Redis requests and queued writes that failed or timed out.
    pub redis_failures: Counter,
    /// 1 while the subscription to the cluster's channels works, 0 in a gap.
    pub subscribed: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut this = Self {
            registry: Registry::with_prefix("wsfn"),
            open_connections: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            messages_in: Family::default(),
            bytes_in: Family::default(),
            messages_out: Family::default(),
            bytes_out: Family::default(),
            event_duration: Family::default(),
            faults: Family::default(),
            dropped_frames: Family::default(),
            slow_consumer_closes: Family::default(),
            sends_refused: Family::default(),
            deploys: Family::default(),
            rollbacks: Family::default(),
            idle_instances: Family::default(),
            pool_misses: Family::default(),
            sessions_detached: Family::default(),
            sessions_resumed: Family::default(),
            sessions_expired: Family::default(),
            messages_replayed: Family::default(),
            session_bytes_held: Family::default(),
            cluster: ClusterMetrics::default(),
        };
        let r = &mut this.registry;
        macro_rules! register {
            ($($name:literal, $help:literal => $field:ident;)*) => {
                $(r.register($name, $help, this.$field.clone());)*
            };
        }
        // Counter names get `_total` appended by the encoder.
        register! {
            "connections_open", "Open WebSocket connections" => open_connections;
            "connections_accepted", "Handshakes answered with 101" => accepted;
            "connections_rejected", "Handshakes refused, by HTTP status (by on-connect or by a host limit)" => rejected;
            "messages_in", "Messages received from clients and handed to on-message" => messages_in;
            "message_bytes_in", "Payload bytes of the messages received" => bytes_in;
            "messages_out", "Messages queued to clients (replies, sends, publishes, admin pushes)" => messages_out;
            "message_bytes_out", "Payload bytes of the messages queued to clients" => bytes_out;
            "event_duration_seconds", "Time to run one handler, including getting an instance" => event_duration;
            "guest_faults", "Events that faulted, by kind (trap, deadline, memory, stack, instantiate)" => faults;
            "outbound_dropped_frames", "Frames dropped by the drop-oldest slow-consumer policy" => dropped_frames;
            "slow_consumer_closes", "Connections closed with 1008 because their outbound queue was full" => slow_consumer_closes;
            "sends_refused", "Sends refused because an event used up its sends-per-event allowance" => sends_refused;
            "deploys", "New versions deployed (at start or through the admin API)" => deploys;
            "rollbacks", "Rollbacks to an earlier version" => rollbacks;
            "instances_idle", "Warm instances waiting in the pool" => idle_instances;
            "instance_pool_misses", "Events that found no warm instance and instantiated a new one" => pool_misses;
            "sessions_detached", "Resumable sessions whose socket is lost, waiting for a resume" => sessions_detached;
            "sessions_resumed", "Resumes of a session on a new socket" => sessions_resumed;
            "sessions_expired", "Sessions ended because no resume came within the resume window" => sessions_expired;
            "session_messages_replayed", "Messages written again to a resumed session" => messages_replayed;
            "session_bytes_held", "Payload bytes sessions hold for their clients: queued, or sent and not acknowledged" => session_bytes_held;
        }
        r.register(
            "cluster_group_publishes_received",
            "Group publishes this node heard from other nodes of the cluster (only nodes holding members of the group hear them)",
            this.cluster.publishes_received.clone(),
        );
        r.register(
            "cluster_redis_failures",
            "Redis requests and queued writes of the cluster link that failed or timed out",
            this.cluster.redis_failures.clone(),
        );
        r.register(
            "cluster_subscribed",
            "1 while this node's subscription to the cluster's channels works, 0 while it is being restored",
            this.cluster.subscribed.clone(),
        );
        this
    }

    /// The handles of the node's cluster series.
    pub fn cluster(&self) -> ClusterMetrics {
        self.cluster.clone()
    }

    /// The handles of one function's series, created (at zero) if they do not exist yet.
    /// A function removed and deployed again continues its series.
    pub fn function(self: &Arc<Self>, name: &Arc<str>) -> FunctionMetrics {
        let labels = FunctionLabels {
            function: name.clone(),
        };
        let event = |kind: EventKind| {
            self.event_duration.get_or_create_owned(&EventLabels {
                function: name.clone(),
                event: kind.as_str(),
            })
        };
        let fault = |kind: &'static str| {
            self.faults.get_or_create_owned(&FaultLabels {
                function: name.clone(),
                kind,
            })
        };
        FunctionMetrics {
            name: name.clone(),
            registry: self.clone(),
            open_connections: self.open_connections.get_or_create_owned(&labels),
            accepted: self.accepted.get_or_create_owned(&labels),
            messages_in: self.messages_in.get_or_create_owned(&labels),
            bytes_in: self.bytes_in.get_or_create_owned(&labels),
            messages_out: self.messages_out.get_or_create_owned(&labels),
            bytes_out: self.bytes_out.get_or_create_owned(&labels),
            event_duration: EventKind::ALL.map(event),
            faults: FAULT_KINDS.map(fault),
            dropped_frames: self.dropped_frames.get_or_create_owned(&labels),
            slow_consumer_closes: self.slow_consumer_closes.get_or_create_owned(&labels),
            sends_refused: self.sends_refused.get_or_create_owned(&labels),
            deploys: self.deploys.get_or_create_owned(&labels),
            rollbacks: self.rollbacks.get_or_create_owned(&labels),
            idle_instances: self.idle_instances.get_or_create_owned(&labels),
            pool_misses: self.pool_misses.get_or_create_owned(&labels),
            sessions_detached: self.sessions_detached.get_or_create_owned(&labels),
            sessions_resumed: self.sessions_resumed.get_or_create_owned(&labels),
            sessions_expired: self.sessions_expired.get_or_create_owned(&labels),
            messages_replayed: self.messages_replayed.get_or_create_owned(&labels),
            session_bytes_held: self.session_bytes_held.get_or_create_owned(&labels),
        }
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One function's series, resolved once and kept in its scope.
#[derive(Debug, Clone)]
pub struct FunctionMetrics {
    name: Arc<str>,
    registry: Arc<Metrics>,
    pub open_connections: Gauge,
    pub accepted: Counter,
    pub messages_in: Counter,
    pub bytes_in: Counter,
    pub messages_out: Counter,
    pub bytes_out: Counter,
    event_duration: [Latency; 3],
    faults: [Counter; 5],
    pub dropped_frames: Counter,
    pub slow_consumer_closes: Counter,
    pub sends_refused: Counter,
    pub deploys: Counter,
    pub rollbacks: Counter,
    pub idle_instances: Gauge,
    pub pool_misses: Counter,
    pub sessions_detached: Gauge,
    pub sessions_resumed: Counter,
    pub sessions_expired: Counter,
    pub messages_replayed: Counter,
    pub session_bytes_held: Gauge,
}

impl FunctionMetrics {
    /// Series that belong to no host's registry (for `wsfn-host check` and unit tests).
    pub fn detached(name: &Arc<str>) -> Self {
        Arc::new(Metrics::new()).function(name)
    }

    /// Counts a refused handshake.
    pub fn rejected(&self, status: u16) {
        self.registry
            .rejected
            .get_or_create(&StatusLabels {
                function: self.name.clone(),
                status,
            })
            .inc();
    }

    /// Records how long a handler took.
    pub fn event_took(&self, kind: EventKind, elapsed: Duration) {
        let index = match kind {
            EventKind::Connect => 0,
            EventKind::Message => 1,
            EventKind::Close => 2,
        };
        self.event_duration[index].observe(elapsed);
    }

    /// Counts a fault of `kind` (one of `EventError::kind`).
    pub fn fault(&self, kind: &str) {
        if let Some(counter) = self.fault_counter(kind) {
            counter.inc();
        }
    }

    fn fault_counter(&self, kind: &str) -> Option<&Counter> {
        let index = FAULT_KINDS.iter().position(|k| *k == kind)?;
        self.faults.get(index)
    }

    /// Counts one message received from a client.
    pub fn message_in(&self, bytes: usize) {
        self.messages_in.inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// The counters the admin API reports for the function.
    pub fn stats(&self) -> StatsSnapshot {
        let fault = |kind: &str| self.fault_counter(kind).map_or(0, Counter::get);
        StatsSnapshot {
            faults_trap: fault("trap"),
            faults_deadline: fault("deadline"),
            faults_memory: fault("memory"),
            faults_stack: fault("stack"),
            faults_instantiate: fault("instantiate"),
            slow_consumer_closes: self.slow_consumer_closes.get(),
            dropped_frames: self.dropped_frames.get(),
            sends_refused: self.sends_refused.get(),
        }
    }

    /// Counts one message queued to a client.
    pub fn message_out(&self, bytes: usize) {
        self.messages_out.inc();
        self.bytes_out.inc_by(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_move_the_registered_series() {
        let metrics = Arc::new(Metrics::new());
        let name: Arc<str> = "echo".into();
        let function = metrics.function(&name);
        function.message_in(5);
        function.rejected(403);
        function.fault("trap");
        function.event_took(EventKind::Message, Duration::from_micros(70));
        function.event_took(EventKind::Message, Duration::from_secs(9));
        // A second resolution (a redeploy after removal) shares the same series.
        metrics.function(&name).message_in(2);
        let text = metrics.encode();
        for line in [
            "wsfn_messages_in_total{function=\"echo\"} 2",
            "wsfn_message_bytes_in_total{function=\"echo\"} 7",
            "wsfn_connections_rejected_total{function=\"echo\",status=\"403\"} 1",
            "wsfn_guest_faults_total{function=\"echo\",kind=\"trap\"} 1",
            "wsfn_guest_faults_total{function=\"echo\",kind=\"stack\"} 0",
            "wsfn_event_duration_seconds_count{function=\"echo\",event=\"message\"} 2",
            "wsfn_event_duration_seconds_sum{function=\"echo\",event=\"message\"} 9.00007",
            "wsfn_event_duration_seconds_bucket{le=\"0.00005\",function=\"echo\",event=\"message\"} 0",
            "wsfn_event_duration_seconds_bucket{le=\"0.0001\",function=\"echo\",event=\"message\"} 1",
            "wsfn_event_duration_seconds_bucket{le=\"5.0\",function=\"echo\",event=\"message\"} 1",
            "wsfn_event_duration_seconds_bucket{le=\"+Inf\",function=\"echo\",event=\"message\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
