//! The data of one guest instance's store: its WASI context, its resources, its limits, and
//! what the host knows about the event it is running.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::guest_log::{GuestLog, LogSource, StreamName};
use crate::config::Limits;
use crate::connections::{Connection, ConnectionTable, Groups};
use crate::state::KeyValueStore;

/// What every instance of a function shares, whatever its version: the function's name, its
/// groups and key-value state, and the host's connection table.
pub struct FunctionEnv {
    pub name: Arc<str>,
    pub connections: Arc<ConnectionTable>,
    pub groups: Arc<Groups>,
    pub kv: Arc<dyn KeyValueStore>,
    pub limits: Limits,
}

/// The store data of one instance.
pub struct InstanceState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) env: Arc<FunctionEnv>,
    log: Arc<LogSource>,
    /// The connection whose event is running; `None` during on-connect.
    pub(crate) connection: Option<Arc<Connection>>,
    /// Whether the running event is on-close, when the connection can no longer be sent to.
    pub(crate) closing_event: bool,
    /// Epoch ticks the running event may still use.
    pub(crate) ticks_left: u64,
}

impl InstanceState {
    pub fn new(env: Arc<FunctionEnv>) -> Self {
        let log = Arc::new(LogSource {
            function: env.name.clone(),
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
        let limits = StoreLimitsBuilder::new()
            .memory_size(env.limits.instance_memory)
            .instances(64)
            .tables(64)
            .memories(4)
            .table_elements(100_000)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            env,
            log,
            connection: None,
            closing_event: false,
            ticks_left: 0,
        }
    }

    /// Prepares for an event on `connection`.
    pub(crate) fn begin_event(
        &mut self,
        connection: Option<Arc<Connection>>,
        closing: bool,
        ticks: u64,
    ) {
        *self.log.connection.lock() = connection.as_ref().map(|c| c.id);
        self.connection = connection;
        self.closing_event = closing;
        self.ticks_left = ticks;
    }

    pub(crate) fn end_event(&mut self) {
        self.connection = None;
        self.closing_event = false;
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
