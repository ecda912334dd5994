//! One compiled function version: its component, its warm instances, and how an event runs.
//!
//! Compiling happens once when the function is loaded. Each event borrows a warm instance from
//! the pool (or instantiates one, ~20 µs with the pooling allocator), runs one export under a
//! deadline, and gives the instance back. An instance that faulted is dropped, never reused:
//! its memory may be in any state. The caller may then tell the function with `on-error`,
//! which runs on another instance like any event.

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
use crate::protocol::truncate_utf8;

pub use websocket_connection::{ConnectRequest, Decision};

/// Why an event did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event ran past its deadline")]
    Deadline,
    #[error("the guest ran out of memory (limit reached): {}", .0.cause)]
    OutOfMemory(FaultDetail),
    #[error("the guest overflowed its stack")]
    StackOverflow,
    #[error("the guest trapped: {}", .0.cause)]
    Trap(FaultDetail),
    #[error("the guest could not be instantiated: {0}")]
    Instantiate(String),
}

/// What went wrong inside the guest, twice: the bare cause (no backtrace, bounded) for the
/// log line and the function's own `on-error`, and in full, with the guest's backtrace, for
/// the debug log.
#[derive(Debug)]
pub struct FaultDetail {
    /// The error with its wasm backtrace.
    pub full: String,
    /// The trap or host error alone, for example "wasm `unreachable` instruction executed".
    pub cause: String,
}

/// `on-error` is told the cause, not a backtrace: enough to tell faults apart, short enough
/// to store or forward.
const MAX_CAUSE: usize = 200;

impl FaultDetail {
    fn of(error: &wasmtime::Error) -> Self {
        let cause = match error.downcast_ref::<Trap>() {
            // wasmtime's text says "wasm trap: " before every trap; the handler's name and
            // the word "trapped" already say so.
            Some(trap) => {
                let text = trap.to_string();
                text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned()
            }
            None => error.root_cause().to_string(),
        };
        Self {
            full: format!("{error:#}"),
            cause: truncate_utf8(cause.trim(), MAX_CAUSE).to_owned(),
        }
    }
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
}

/// Why a component could not be loaded as a function.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("the component needs an import the host does not provide: {0}")]
    UnknownImport(String),
    /// The host could not compile it (no thread to compile on, a compile that did not
    /// finish): the host's failure, not the component's.
    #[error("the host could not compile the component: {0}")]
    Compiler(String),
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

/// The events a function handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Connect,
    Message,
    Close,
    Error,
}

impl Event {
    /// The handler's name, in logs and in what on-error is told.
    fn name(self) -> &'static str {
        match self {
            Event::Connect => "on-connect",
            Event::Message => "on-message",
            Event::Close => "on-close",
            Event::Error => "on-error",
        }
    }

    /// Which latency histogram the event counts in (on-error has none).
    fn timed_as(self) -> Option<EventKind> {
        match self {
            Event::Connect => Some(EventKind::Connect),
            Event::Message => Some(EventKind::Message),
            Event::Close => Some(EventKind::Close),
            Event::Error => None,
        }
    }
}

/// A ready-to-run instance with its store.
struct WarmInstance {
    store: Store<InstanceState>,
    connect: Option<websocket_connection::Guest>,
    message: Option<message::Guest>,
    close: Option<close::Guest>,
    error: Option<error::Guest>,
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
    pub fn scope(&self) -> &Arc<crate::connections::FunctionScope> {
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
        self.warm_up_to(1).await
    }

    /// Fills the warm pool with `count` instances (at least one, at most the warm-instance
    /// limit) before this version is swapped in, so the events that follow a hot swap find
    /// instances ready instead of each instantiating its own at once.
    pub async fn warm_up_to(&self, count: usize) -> Result<(), EventError> {
        let count = count.clamp(1, self.env.limits.warm_instances.max(1));
        for _ in 0..count {
            let instance = self.instantiate().await?;
            self.check_in(instance);
        }
        Ok(())
    }

    /// Drops the idle instances of a version that is no longer current, on a blocking
    /// thread: releasing an instance returns its memory to the pool allocator, system calls
    /// an event should not wait behind. Its in-flight events finish and drop the rest.
    pub fn retire_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock());
        if idle.is_empty() {
            return;
        }
        self.env
            .scope
            .metrics
            .idle_instances
            .dec_by(idle.len() as i64);
        tokio::task::spawn_blocking(move || drop(idle));
    }

    /// How many warm instances are waiting for an event.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().len()
    }

    /// Runs on-connect. Without the export every connection is accepted as it is.
    pub async fn on_connect(
        &self,
        request: ConnectRequest<'_>,
    ) -> Result<Option<Decision>, EventError> {
        if self.exports.connect.is_none() {
            return Ok(None);
        }
        self.run(None, Event::Connect, async |instance| {
            match &instance.connect {
                Some(guest) => guest
                    .call_on_connect(&mut instance.store, request)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        })
        .await
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
        let id = connection.id_str();
        self.run(
            Some(connection.clone()),
            Event::Message,
            async |instance| match &instance.message {
                Some(guest) => {
                    guest
                        .call_on_message(&mut instance.store, id, message)
                        .await
                }
                None => Ok(()),
            },
        )
        .await
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
        let id = connection.id_str();
        self.run(
            Some(connection.clone()),
            Event::Close,
            async |instance| match &instance.close {
                Some(guest) => {
                    guest
                        .call_on_close(&mut instance.store, id, code, reason)
                        .await
                }
                None => Ok(()),
            },
        )
        .await
    }

    /// Runs on-error after `handler` of connection `id` failed; does nothing if the component
    /// does not export it.
    ///
    /// It runs on a healthy instance: the one that failed was dropped. A failure of on-error
    /// itself is logged and counted like any fault and goes no further, so it can never
    /// trigger another on-error. `connection` is `None` when on-connect failed, since the
    /// connection was never accepted; otherwise it is closing, so it cannot be sent to.
    pub async fn on_error(
        &self,
        id: &str,
        connection: Option<Arc<Connection>>,
        message: &str,
    ) -> Result<(), EventError> {
        if self.exports.error.is_none() {
            return Ok(());
        }
        self.run(connection, Event::Error, async |instance| {
            match &instance.error {
                Some(guest) => guest.call_on_error(&mut instance.store, id, message).await,
                None => Ok(()),
            }
        })
        .await
    }

    /// What on-error is told when `handler` (`on-connect`, `on-message`, `on-close`) failed
    /// with `error`: the handler, the kind of fault and its cause, without a backtrace.
    ///
    /// `None` for an instance that could not be created: that is not a fault of the handler,
    /// and on-error would need an instance just the same.
    pub fn error_message(&self, handler: &str, error: &EventError) -> Option<String> {
        Some(match error {
            EventError::Trap(detail) => format!("{handler} trapped: {}", detail.cause),
            EventError::Deadline => format!(
                "{handler} ran past its deadline of {} ms",
                self.env.limits.event_timeout.as_millis()
            ),
            EventError::OutOfMemory(detail) => {
                format!("{handler} ran out of memory: {}", detail.cause)
            }
            EventError::StackOverflow => format!("{handler} overflowed its stack"),
            EventError::Instantiate(_) => return None,
        })
    }

    fn deadline_ticks(&self) -> u64 {
        let ticks = self.env.limits.event_timeout.as_millis() / EPOCH_TICK.as_millis().max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }

    /// Runs one event: takes a warm instance (or instantiates one), makes `call` on it under
    /// the event's deadline, gives it back — or drops it after a fault, which is logged and
    /// counted here — and records how long the event took.
    async fn run<R>(
        &self,
        connection: Option<Arc<Connection>>,
        event: Event,
        call: impl AsyncFnOnce(&mut WarmInstance) -> wasmtime::Result<R>,
    ) -> Result<R, EventError> {
        let started = Instant::now();
        let mut instance = self.check_out(connection, event).await?;
        let result = call(&mut instance).await;
        let result = self.finish(instance, result, event);
        if let Some(kind) = event.timed_as() {
            self.env.scope.metrics.event_took(kind, started.elapsed());
        }
        result
    }

    async fn check_out(
        &self,
        connection: Option<Arc<Connection>>,
        event: Event,
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
        instance.store.data_mut().begin_event(connection, ticks);
        instance.store.set_epoch_deadline(1);
        Ok(instance)
    }

    fn finish<R>(
        &self,
        mut instance: WarmInstance,
        result: wasmtime::Result<R>,
        event: Event,
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

    /// Logs and counts a fault, naming function, version and connection. The log line gives
    /// the cause; the guest's backtrace follows at debug level.
    fn report(&self, error: &EventError, connection: Option<&Connection>, event: Event) {
        let scope = &self.env.scope;
        let event = event.name();
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
        if let EventError::Trap(detail) | EventError::OutOfMemory(detail) = error {
            tracing::debug!(function = %self.env.scope.name, %connection, event, "guest fault in full: {}", detail.full);
        }
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
                self.exports
                    .error
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
            ))
        })();
        let (connect, message, close, error) =
            loaded.map_err(|e| EventError::Instantiate(format!("{e:#}")))?;
        Ok(WarmInstance {
            store,
            connect,
            message,
            close,
            error,
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
        _ if hit_limit => EventError::OutOfMemory(FaultDetail::of(&error)),
        _ => EventError::Trap(FaultDetail::of(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trap_s_cause_is_what_the_readme_shows() {
        let error = wasmtime::Error::from(Trap::UnreachableCodeReached);
        let detail = FaultDetail::of(&error);
        assert_eq!(detail.cause, "wasm `unreachable` instruction executed");
    }

    #[test]
    fn a_host_error_s_cause_is_its_root_and_bounded() {
        let error = wasmtime::Error::msg("é".repeat(150)).context("calling the import");
        let detail = FaultDetail::of(&error);
        assert_eq!(detail.cause, "é".repeat(100));
        assert!(
            detail.full.starts_with("calling the import"),
            "{}",
            detail.full
        );
    }
}
