//! The data of one guest instance's store: its WASI context, its resources, its limits, and
//! what the host knows about the event it is running.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::guest_log::{GuestLog, LogSource, StreamName};
use super::limiter::GuestLimiter;
use crate::config::Limits;
use crate::connections::FunctionScope;
use crate::connections::{Connection, ConnectionTable};
use crate::signing::UrlSigning;
use crate::state::KeyValueStore;

/// What every instance of one function version shares: the function's scope (name, groups,
/// counters), its key-value state, the host's connection table, the limits and the signing
/// key.
pub struct FunctionEnv {
    pub scope: Arc<FunctionScope>,
    pub connections: Arc<ConnectionTable>,
    pub kv: Arc<dyn KeyValueStore>,
    pub limits: Limits,
    /// The cluster this host is part of, if any: connections on other nodes are reached
    /// through it.
    pub cluster: Option<Arc<crate::cluster::ClusterLink>>,
    /// The host's signing key, for `signing.signed-url`.
    pub signing: Arc<UrlSigning>,
}

/// The store data of one instance.
pub struct InstanceState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) env: Arc<FunctionEnv>,
    log: Arc<LogSource>,
    /// The connection whose event is running; `None` during on-connect.
    pub(crate) connection: Option<Arc<Connection>>,
    /// Epoch ticks the running event may still use.
    pub(crate) ticks_left: u64,
    /// Messages the running event may still send.
    pub(crate) sends_left: u32,
}

impl InstanceState {
    pub fn new(env: Arc<FunctionEnv>) -> Self {
        let log = Arc::new(LogSource {
            scope: env.scope.clone(),
            connection: Default::default(),
        });
        // Clocks and random only: no files, sockets, environment or arguments.
        let wasi = WasiCtxBuilder::new()
            .stdout(GuestLog::new(log.clone(), StreamName::Stdout))
            .stderr(GuestLog::new(log.clone(), StreamName::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limiter = GuestLimiter::new(&env.limits);
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter,
            sends_left: 0,
            env,
            log,
            connection: None,
            ticks_left: 0,
        }
    }

    /// Prepares for an event on `connection`.
    pub(crate) fn begin_event(&mut self, connection: Option<Arc<Connection>>, ticks: u64) {
        *self.log.connection.lock() = connection.as_ref().map(|c| c.id);
        self.connection = connection;
        self.ticks_left = ticks;
        self.sends_left = self.env.limits.sends_per_event;
        self.limiter.hit_limit = false;
    }

    /// Takes `count` sends from the event's allowance; false (and counted) when it is used up.
    pub(crate) fn take_sends(&mut self, count: u32) -> bool {
        match self.sends_left.checked_sub(count) {
            Some(left) => {
                self.sends_left = left;
                true
            }
            None => {
                self.env.scope.metrics.sends_refused.inc();
                false
            }
        }
    }

    pub(crate) fn end_event(&mut self) {
        self.connection = None;
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
