//! The host: the engine, the deployed functions, the connection table and the state backend,
//! shared by the WebSocket front and the admin API.
//!
//! Deploying is the one path that changes which code serves a function. It compiles off the
//! async workers, checks the component against the world, instantiates it once, stores it
//! under the data directory, and only then swaps it in — so a deploy that fails at any step
//! changes nothing, and one that succeeded survives a restart.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::catalog::{Catalog, VersionInfo};
use crate::config::Limits;
use crate::connections::ConnectionTable;
use crate::front::Admission;
use crate::runtime::{
    EpochTicker, EventError, Function, FunctionEnv, InstanceState, LoadError, build_engine,
    build_linker, compile, load_compiled,
};
use crate::scope::FunctionScope;
use crate::state::KeyValueStore;

/// Why a deploy, rollback or removal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid function name `{0}`: use 1 to 64 letters, digits, `-` or `_`")]
    InvalidName(String),
    #[error("the component is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly binary (it does not start with `\\0asm`)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap the \
         module with `wasm-tools component new`"
    )]
    NotComponent,
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the component failed to start: {0}")]
    Start(#[from] EventError),
    #[error("no function named `{0}`")]
    NoSuchFunction(String),
    #[error("function `{name}` has no version {version}")]
    NoSuchVersion { name: String, version: u64 },
    #[error("function `{0}` has no earlier version to roll back to")]
    NoEarlierVersion(String),
    #[error("storing the function failed: {0}")]
    Storage(#[from] io::Error),
}

/// The result of a deploy.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub info: VersionInfo,
    /// The bytes were those of the current version, so nothing changed.
    pub unchanged: bool,
}

/// A function name and whatever version of it is current.
///
/// Connections hold the slot, not a version, so every event runs on the version that is
/// current when the event starts.
pub struct FunctionSlot {
    pub scope: Arc<FunctionScope>,
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
    catalog: Catalog,
    pub connections: Arc<ConnectionTable>,
    /// Caps on connections in all and per client address.
    pub admission: Arc<Admission>,
    pub kv: Arc<dyn KeyValueStore>,
    functions: RwLock<HashMap<Arc<str>, Arc<FunctionSlot>>>,
    /// Deploys, rollbacks and removals run one at a time.
    changes: tokio::sync::Mutex<()>,
    pub limits: Limits,
    /// Cancelled when the host starts shutting down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for their close handshakes and on-close.
    pub tasks: TaskTracker,
    _epoch: EpochTicker,
}

/// Function names are URL path segments and directory names, so they are kept plain.
pub fn is_valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Refuses bytes that cannot be a component before spending time compiling them.
fn check_header(bytes: &[u8], limit: usize) -> Result<(), DeployError> {
    if bytes.len() > limit {
        return Err(DeployError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(DeployError::NotComponent),
        _ => Err(DeployError::NotWasm),
    }
}

impl Host {
    /// A host keeping its deployed functions under `data_dir` and key-value state in `kv`.
    pub fn new(
        limits: Limits,
        data_dir: &Path,
        kv: Arc<dyn KeyValueStore>,
    ) -> anyhow::Result<Self> {
        let engine = build_engine(&limits)?;
        let linker = build_linker(&engine)?;
        let catalog = Catalog::open(data_dir)?;
        Ok(Self {
            _epoch: EpochTicker::start(engine.clone()),
            engine,
            linker,
            catalog,
            connections: Arc::new(ConnectionTable::default()),
            admission: Arc::new(Admission::new(
                limits.max_connections,
                limits.max_connections_per_ip,
            )),
            kv,
            functions: RwLock::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            limits,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    fn env_for(&self, scope: &Arc<FunctionScope>) -> Arc<FunctionEnv> {
        Arc::new(FunctionEnv {
            scope: scope.clone(),
            connections: self.connections.clone(),
            kv: self.kv.clone(),
            limits: self.limits.clone(),
        })
    }

    /// Makes `function` the current version of its name.
    fn install(&self, scope: Arc<FunctionScope>, function: Arc<Function>) {
        let mut functions = self.functions.write();
        match functions.get(&scope.name) {
            Some(slot) => slot.current.store(function),
            None => {
                let name = scope.name.clone();
                let current = ArcSwap::new(function);
                functions.insert(name, Arc::new(FunctionSlot { scope, current }));
            }
        }
    }

    /// The scope a new version of `name` joins: that of the running function, if any.
    fn scope_of(&self, name: &str) -> Arc<FunctionScope> {
        match self.function(name) {
            Some(slot) => slot.scope.clone(),
            None => Arc::new(FunctionScope::new(name.into())),
        }
    }

    /// Checks, starts and stores a component, then makes it the current version of `name`.
    pub async fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Deployed, DeployError> {
        if !is_valid_function_name(name) {
            return Err(DeployError::InvalidName(name.to_owned()));
        }
        check_header(&bytes, self.limits.max_component_size)?;
        let _change = self.changes.lock().await;
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(slot) = self.function(name) {
            let current = slot.current();
            if current.info().sha256 == sha256 {
                return Ok(Deployed {
                    info: current.info().clone(),
                    unchanged: true,
                });
            }
        }

        let engine = self.engine.clone();
        let started = Instant::now();
        let (component, bytes) =
            tokio::task::spawn_blocking(move || (compile(&engine, &bytes), bytes))
                .await
                .map_err(|e| LoadError::Invalid(format!("compilation did not finish: {e}")))?;
        let component = component?;
        let info = VersionInfo {
            version: self.catalog.next_version(name)?,
            sha256,
            size: bytes.len() as u64,
            deployed_at_ms: now_ms(),
            compile_ms: started.elapsed().as_millis() as u64,
        };
        let scope = self.scope_of(name);
        let function = Function::new(&self.linker, self.env_for(&scope), &component, info.clone())?;
        function.warm_up().await?;

        let compiled = component
            .serialize()
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.catalog.store_version(name, &info, &bytes, &compiled)?;
        self.catalog.set_current(name, info.version)?;
        self.install(scope, Arc::new(function));
        tracing::info!(function = %name, version = info.version, compile_ms = info.compile_ms, size = info.size, "deployed");
        Ok(Deployed {
            info,
            unchanged: false,
        })
    }

    /// Loads a stored version, from its compiled code when that is still usable.
    async fn load_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<(Function, bool), DeployError> {
        let info =
            self.catalog
                .version(name, version)?
                .ok_or_else(|| DeployError::NoSuchVersion {
                    name: name.to_owned(),
                    version,
                })?;
        let engine = self.engine.clone();
        let compiled_path = self.catalog.compiled_path(name, version);
        let component_path = self.catalog.component_path(name, version);
        let (component, recompiled) =
            tokio::task::spawn_blocking(move || -> Result<(Component, bool), DeployError> {
                // SAFETY: the file was written by `Component::serialize` into the host's own data
                // directory (see `Catalog::store_version`).
                match unsafe { load_compiled(&engine, &compiled_path) } {
                    Ok(component) => Ok((component, false)),
                    // Compiled by another engine version or configuration: compile again.
                    Err(_) => Ok((compile(&engine, &std::fs::read(&component_path)?)?, true)),
                }
            })
            .await
            .map_err(|e| LoadError::Invalid(format!("loading did not finish: {e}")))??;
        if recompiled {
            let compiled = component
                .serialize()
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
            self.catalog.store_compiled(name, version, &compiled)?;
        }
        let scope = self.scope_of(name);
        let function = Function::new(&self.linker, self.env_for(&scope), &component, info)?;
        function.warm_up().await?;
        Ok((function, recompiled))
    }

    /// Serves the current version of every function stored under the data directory.
    pub async fn restore(&self) -> Result<Vec<String>, DeployError> {
        let _change = self.changes.lock().await;
        let mut restored = Vec::new();
        for name in self.catalog.function_names()? {
            let Some(version) = self.catalog.current(&name)? else {
                continue;
            };
            let started = Instant::now();
            let (function, recompiled) = self.load_version(&name, version).await?;
            tracing::info!(
                function = %name,
                version,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "restored from {}",
                if recompiled { "source (compiled code was stale, recompiled)" } else { "compiled code, no recompilation" }
            );
            self.install(self.scope_of(&name), Arc::new(function));
            restored.push(name.to_string());
        }
        Ok(restored)
    }

    /// Serves an earlier version: `version`, or the one before the current one.
    pub async fn rollback(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<VersionInfo, DeployError> {
        let _change = self.changes.lock().await;
        let slot = self
            .function(name)
            .ok_or_else(|| DeployError::NoSuchFunction(name.to_owned()))?;
        let current = slot.current().info().version;
        let target = match version {
            Some(version) => version,
            None => self
                .catalog
                .versions(name)?
                .iter()
                .rev()
                .map(|v| v.version)
                .find(|&v| v < current)
                .ok_or_else(|| DeployError::NoEarlierVersion(name.to_owned()))?,
        };
        let (function, _) = self.load_version(name, target).await?;
        let info = function.info().clone();
        self.catalog.set_current(name, target)?;
        slot.current.store(Arc::new(function));
        tracing::info!(function = %name, from = current, to = target, "rolled back");
        Ok(info)
    }

    /// Removes a function: new handshakes get 404, its connections are closed with 1001 (each
    /// runs on-close on the last version), and its stored versions are deleted.
    pub async fn remove(&self, name: &str) -> Result<usize, DeployError> {
        let _change = self.changes.lock().await;
        let slot = self
            .functions
            .write()
            .remove(name)
            .ok_or_else(|| DeployError::NoSuchFunction(name.to_owned()))?;
        let mut closed = 0;
        for connection in self.connections.of(&slot.scope) {
            if connection.start_close(1001, "function removed") {
                closed += 1;
            }
        }
        self.catalog.remove(name)?;
        tracing::info!(function = %name, closed, "removed");
        Ok(closed)
    }

    /// Stored versions of a function, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, DeployError> {
        if self.function(name).is_none() {
            return Err(DeployError::NoSuchFunction(name.to_owned()));
        }
        Ok(self.catalog.versions(name)?)
    }

    pub fn function(&self, name: &str) -> Option<Arc<FunctionSlot>> {
        self.functions.read().get(name).cloned()
    }

    pub fn functions(&self) -> Vec<Arc<FunctionSlot>> {
        let mut slots: Vec<_> = self.functions.read().values().cloned().collect();
        slots.sort_by(|a, b| a.scope.name.cmp(&b.scope.name));
        slots
    }

    pub fn function_names(&self) -> Vec<Arc<str>> {
        self.functions()
            .into_iter()
            .map(|s| s.scope.name.clone())
            .collect()
    }

    /// Checks a component without deploying it: compile, world check, one instantiation.
    pub async fn check(&self, bytes: Vec<u8>) -> Result<String, DeployError> {
        check_header(&bytes, self.limits.max_component_size)?;
        let engine = self.engine.clone();
        let component = tokio::task::spawn_blocking(move || compile(&engine, &bytes))
            .await
            .map_err(|e| LoadError::Invalid(format!("compilation did not finish: {e}")))??;
        let name: Arc<str> = "check".into();
        let info = VersionInfo {
            version: 0,
            sha256: String::new(),
            size: 0,
            deployed_at_ms: 0,
            compile_ms: 0,
        };
        let function = Function::new(
            &self.linker,
            self.env_for(&Arc::new(FunctionScope::new(name))),
            &component,
            info,
        )?;
        function.warm_up().await?;
        Ok(function.describe_exports())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
