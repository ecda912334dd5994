//! One compiled function version: its component, its warm instances, and how an event runs.
//!
//! Compiling happens once when the function is loaded. Each event borrows a warm instance from
//! the pool (or instantiates one, ~20 µs with the pooling allocator), runs one export under a
//! deadline, and gives the instance back. An instance that faulted is dropped, never reused:
//! its memory may be in any state.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::Function as FunctionWorld;
use super::bindings::exports::wsfn::function::{close, error, message, websocket_connection};
use super::bindings::wsfn::function::types::MessageParam;
use super::instance_state::{FunctionEnv, InstanceState};
use crate::catalog::VersionInfo;
use crate::config::EPOCH_TICK;
use crate::connections::Connection;
use crate::observe::{EventKind, LogEvent};
use crate::stats::{FunctionStats, bump};

pub use websocket_connection::{ConnectRequest, Decision};

/// Why an event did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event ran past its deadline")]
    Deadline,
    #[error("the guest ran out of memory (limit reached): {0}")]
    OutOfMemory(String),
    #[error("the guest overflowed its stack")]
    StackOverflow,
    #[error("the guest trapped: {0}")]
    Trap(String),
    #[error("the guest could not be instantiated: {0}")]
    Instantiate(String),
}

impl EventError {
    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::Deadline => "deadline",
            EventError::OutOfMemory(_) => "memory",
            EventError::StackOverflow => "stack",
            EventError::Trap(_) => "trap",
            EventError::Instantiate(_) => "instantiate",
        }
    }

    fn counter<'a>(&self, stats: &'a FunctionStats) -> &'a std::sync::atomic::AtomicU64 {
        match self {
            EventError::Deadline => &stats.faults_deadline,
            EventError::OutOfMemory(_) => &stats.faults_memory,
            EventError::StackOverflow => &stats.faults_stack,
            EventError::Trap(_) => &stats.faults_trap,
            EventError::Instantiate(_) => &stats.faults_instantiate,
        }
    }
}

/// Why a component could not be loaded as a function.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("the component needs an import the host does not provide: {0}")]
    UnknownImport(String),
    #[error(
        "the component exports none of `wsfn:function/websocket-connection`, `wsfn:function/message` \
         or `wsfn:function/close`@0.1.0, so it is not a wsfn function"
    )]
    NoHandlers,
}

/// Which of the three handler interfaces a component exports.
struct Exports {
    connect: Option<websocket_connection::GuestIndices>,
    message: Option<message::GuestIndices>,
    close: Option<close::GuestIndices>,
    /// Optional: called after another handler of a connection failed.
    error: Option<error::GuestIndices>,
}

/// A ready-to-run instance with its store.
struct WarmInstance {
    store: Store<InstanceState>,
    connect: Option<websocket_connection::Guest>,
    message: Option<message::Guest>,
    close: Option<close::Guest>,
    events: u64,
}

/// A loaded function version.
pub struct Function {
    env: Arc<FunctionEnv>,
    info: VersionInfo,
    pre: InstancePre<InstanceState>,
    exports: Exports,
    idle: Mutex<Vec<WarmInstance>>,
}

/// The linker with every import the `function` world may use.
pub fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    FunctionWorld::add_to_linker::<_, wasmtime::component::HasSelf<InstanceState>>(
        &mut linker,
        |state| state,
    )?;
    Ok(linker)
}

/// Compiles component bytes to machine code. Takes milliseconds to seconds: never call it
/// on an event path.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
}

/// Loads code compiled earlier by [`compile`] and saved with `Component::serialize`.
///
/// # Safety
/// `path` must hold bytes produced by `Component::serialize` and not altered since: wasmtime
/// checks that they were made by a compatible engine, but runs the machine code inside as is.
/// The host only reads such files from its own data directory.
pub unsafe fn load_compiled(
    engine: &Engine,
    path: &std::path::Path,
) -> Result<Component, LoadError> {
    // SAFETY: upheld by the caller, see above.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(|e| LoadError::Invalid(format!("{e:#}")))
}

impl Function {
    /// Checks a compiled component against the `function` world and prepares to instantiate it.
    pub fn new(
        linker: &Linker<InstanceState>,
        env: Arc<FunctionEnv>,
        component: &Component,
        info: VersionInfo,
    ) -> Result<Self, LoadError> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::UnknownImport(format!("{e:#}")))?;
        let exports = Exports {
            connect: websocket_connection::GuestIndices::new(&pre).ok(),
            message: message::GuestIndices::new(&pre).ok(),
            close: close::GuestIndices::new(&pre).ok(),
            error: error::GuestIndices::new(&pre).ok(),
        };
        if exports.connect.is_none() && exports.message.is_none() && exports.close.is_none() {
            return Err(LoadError::NoHandlers);
        }
        Ok(Self {
            env,
            info,
            pre,
            exports,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The function name's scope (groups, counters) this version serves.
    pub fn scope(&self) -> &Arc<crate::scope::FunctionScope> {
        &self.env.scope
    }

    /// The deployed version this function is.
    pub fn info(&self) -> &VersionInfo {
        &self.info
    }

    /// Which handlers the component exports, for messages to people.
    pub fn describe_exports(&self) -> String {
        let names: Vec<&str> = [
            self.exports.connect.as_ref().map(|_| "on-connect"),
            self.exports.message.as_ref().map(|_| "on-message"),
            self.exports.close.as_ref().map(|_| "on-close"),
            self.exports.error.as_ref().map(|_| "on-error"),
        ]
        .into_iter()
        .flatten()
        .collect();
        names.join(", ")
    }

    /// Instantiates once, so a component that fails to start is caught at load time rather
    /// than on its first connection.
    pub async fn warm_up(&self) -> Result<(), EventError> {
        let instance = self.instantiate().await?;
        self.check_in(instance);
        Ok(())
    }

    /// Runs on-connect. Without the export every connection is accepted as it is.
    pub async fn on_connect(
        &self,
        request: ConnectRequest<'_>,
    ) -> Result<Option<Decision>, EventError> {
        if self.exports.connect.is_none() {
            return Ok(None);
        }
        let started = Instant::now();
        let mut instance = self.check_out(None, false, "on-connect").await?;
        let result = match &instance.connect {
            Some(guest) => guest
                .call_on_connect(&mut instance.store, request)
                .await
                .map(Some),
            None => Ok(None),
        };
        let result = self.finish(instance, result, "on-connect");
        self.took(EventKind::Connect, started);
        result
    }

    /// Runs on-message; does nothing if the component does not handle messages.
    pub async fn on_message(
        &self,
        connection: &Arc<Connection>,
        message: MessageParam<'_>,
    ) -> Result<(), EventError> {
        if self.exports.message.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let mut instance = self
            .check_out(Some(connection.clone()), false, "on-message")
            .await?;
        let result = match &instance.message {
            Some(guest) => {
                guest
                    .call_on_message(&mut instance.store, connection.id_str(), message)
                    .await
            }
            None => Ok(()),
        };
        let result = self.finish(instance, result, "on-message");
        self.took(EventKind::Message, started);
        result
    }

    /// Runs on-close; does nothing if the component does not export it.
    pub async fn on_close(
        &self,
        connection: &Arc<Connection>,
        code: u16,
        reason: &str,
    ) -> Result<(), EventError> {
        if self.exports.close.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let mut instance = self
            .check_out(Some(connection.clone()), true, "on-close")
            .await?;
        let result = match &instance.close {
            Some(guest) => {
                guest
                    .call_on_close(&mut instance.store, connection.id_str(), code, reason)
                    .await
            }
            None => Ok(()),
        };
        let result = self.finish(instance, result, "on-close");
        self.took(EventKind::Close, started);
        result
    }

    fn took(&self, kind: EventKind, started: Instant) {
        self.env.scope.metrics.event_took(kind, started.elapsed());
    }

    fn deadline_ticks(&self) -> u64 {
        let ticks = self.env.limits.event_timeout.as_millis() / EPOCH_TICK.as_millis().max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }

    async fn check_out(
        &self,
        connection: Option<Arc<Connection>>,
        closing: bool,
        event: &'static str,
    ) -> Result<WarmInstance, EventError> {
        let pooled = self.idle.lock().pop();
        let metrics = &self.env.scope.metrics;
        let mut instance = match pooled {
            Some(instance) => {
                metrics.idle_instances.dec();
                instance
            }
            // Boxed: instantiating is rare, and its large state would otherwise be part of every
            // connection's task, idle or not.
            None => match Box::pin(self.instantiate()).await {
                Ok(instance) => {
                    metrics.pool_misses.inc();
                    instance
                }
                Err(error) => {
                    self.report(&error, connection.as_deref(), event);
                    return Err(error);
                }
            },
        };
        let ticks = self.deadline_ticks();
        instance
            .store
            .data_mut()
            .begin_event(connection, closing, ticks);
        instance.store.set_epoch_deadline(1);
        Ok(instance)
    }

    fn finish<R>(
        &self,
        mut instance: WarmInstance,
        result: wasmtime::Result<R>,
        event: &'static str,
    ) -> Result<R, EventError> {
        let state = instance.store.data_mut();
        let connection = state.connection.take();
        let hit_limit = state.limiter.hit_limit;
        state.end_event();
        match result {
            Ok(value) => {
                instance.events += 1;
                self.check_in(instance);
                Ok(value)
            }
            // The instance is dropped here: after a fault its state cannot be trusted.
            Err(error) => {
                let error = classify(error, hit_limit);
                self.report(&error, connection.as_deref(), event);
                Err(error)
            }
        }
    }

    /// Logs and counts a fault, naming function, version and connection.
    fn report(&self, error: &EventError, connection: Option<&Connection>, event: &'static str) {
        let scope = &self.env.scope;
        bump(error.counter(&scope.stats));
        scope.metrics.fault(error.kind());
        scope.logs.publish(|| LogEvent::Fault {
            fault: error.kind(),
            event,
            connection: connection.map(|c| c.id_str().to_owned()),
            message: error.to_string(),
        });
        let connection = connection.map(|c| c.id.to_string()).unwrap_or_default();
        tracing::warn!(
            function = %self.env.scope.name,
            version = self.info.version,
            %connection,
            event,
            fault = error.kind(),
            "guest fault: {error}"
        );
    }

    fn check_in(&self, instance: WarmInstance) {
        let limits = &self.env.limits;
        if instance.events >= limits.events_per_instance {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < limits.warm_instances {
            idle.push(instance);
            self.env.scope.metrics.idle_instances.inc();
        }
    }

    async fn instantiate(&self) -> Result<WarmInstance, EventError> {
        let mut store = Store::new(self.pre.engine(), InstanceState::new(self.env.clone()));
        store.limiter(|state| &mut state.limiter);
        // A running guest yields to the scheduler every tick, so a busy guest cannot hold a
        // worker thread, and is interrupted once its event has used up its ticks.
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.ticks_left == 0 {
                return Ok(UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        store.data_mut().ticks_left = self.deadline_ticks();
        store.set_epoch_deadline(1);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| EventError::Instantiate(format!("{e:#}")))?;
        let loaded = (|| -> wasmtime::Result<_> {
            Ok((
                self.exports
                    .connect
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
                self.exports
                    .message
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
                self.exports
                    .close
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
            ))
        })();
        let (connect, message, close) =
            loaded.map_err(|e| EventError::Instantiate(format!("{e:#}")))?;
        Ok(WarmInstance {
            store,
            connect,
            message,
            close,
            events: 0,
        })
    }
}

impl Drop for Function {
    /// A replaced or removed version takes its warm instances with it.
    fn drop(&mut self) {
        let idle = self.idle.get_mut().len();
        self.env.scope.metrics.idle_instances.dec_by(idle as i64);
    }
}

fn classify(error: wasmtime::Error, hit_limit: bool) -> EventError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => EventError::Deadline,
        Some(Trap::StackOverflow) => EventError::StackOverflow,
        // A guest whose allocation was refused usually aborts right after.
        _ if hit_limit => EventError::OutOfMemory(format!("{error:#}")),
        _ => EventError::Trap(format!("{error:#}")),
    }
}
