//! The host: the engine, the deployed functions, the connection table and the state backend,
//! shared by the WebSocket front and (later) the admin API.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::config::Limits;
use crate::connections::{ConnectionTable, Groups};
use crate::runtime::{
    EpochTicker, EventError, Function, FunctionEnv, InstanceState, LoadError, build_engine,
    build_linker,
};
use crate::state::{KeyValueStore, MemoryStore};

/// Why a function could not be deployed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid function name `{0}`: use 1 to 64 letters, digits, `-` or `_`")]
    InvalidName(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the component failed to start: {0}")]
    Start(#[from] EventError),
}

/// A function name and whatever version of it is current.
///
/// Connections hold the slot, not a version, so every event runs on the version that is
/// current when the event starts.
pub struct FunctionSlot {
    pub name: Arc<str>,
    pub groups: Arc<Groups>,
    current: ArcSwap<Function>,
}

impl FunctionSlot {
    pub fn current(&self) -> Arc<Function> {
        self.current.load_full()
    }
}

/// Everything the host shares between its tasks.
pub struct Host {
    engine: Engine,
    linker: Linker<InstanceState>,
    pub connections: Arc<ConnectionTable>,
    pub kv: Arc<dyn KeyValueStore>,
    functions: RwLock<HashMap<Arc<str>, Arc<FunctionSlot>>>,
    pub limits: Limits,
    /// Cancelled when the host starts shutting down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for their close handshakes and on-close.
    pub tasks: TaskTracker,
    _epoch: EpochTicker,
}

/// Function names are URL path segments and metric labels, so they are kept plain.
pub fn is_valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Host {
    pub fn new(limits: Limits) -> wasmtime::Result<Self> {
        let engine = build_engine(&limits)?;
        let linker = build_linker(&engine)?;
        Ok(Self {
            _epoch: EpochTicker::start(engine.clone()),
            engine,
            linker,
            connections: Arc::new(ConnectionTable::default()),
            kv: Arc::new(MemoryStore::new()),
            functions: RwLock::new(HashMap::new()),
            limits,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// Compiles, checks and starts a component, then makes it the current version of `name`.
    /// Nothing changes if any step fails.
    pub async fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Arc<Function>, DeployError> {
        if !is_valid_function_name(name) {
            return Err(DeployError::InvalidName(name.to_owned()));
        }
        let existing = self.function(name);
        let name: Arc<str> = existing
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| name.into());
        let groups = existing
            .as_ref()
            .map(|s| s.groups.clone())
            .unwrap_or_default();
        let env = Arc::new(FunctionEnv {
            name: name.clone(),
            connections: self.connections.clone(),
            groups: groups.clone(),
            kv: self.kv.clone(),
            limits: self.limits.clone(),
        });
        // Compiling takes milliseconds to seconds: keep it off the async workers.
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let function =
            tokio::task::spawn_blocking(move || Function::load(&engine, &linker, env, &bytes))
                .await
                .map_err(|e| LoadError::Invalid(format!("compilation did not finish: {e}")))??;
        function.warm_up().await?;
        let function = Arc::new(function);
        match existing {
            Some(slot) => slot.current.store(function.clone()),
            None => {
                let slot = Arc::new(FunctionSlot {
                    name: name.clone(),
                    groups,
                    current: ArcSwap::new(function.clone()),
                });
                self.functions.write().insert(name, slot);
            }
        }
        Ok(function)
    }

    pub fn function(&self, name: &str) -> Option<Arc<FunctionSlot>> {
        self.functions.read().get(name).cloned()
    }

    pub fn function_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.functions.read().keys().cloned().collect();
        names.sort();
        names
    }
}
