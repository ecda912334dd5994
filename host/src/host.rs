//! The host: the engine, the deployed functions, the connection table and the state backend,
//! shared by the WebSocket front and the admin API.
//!
//! Deploying is the one path that changes which code serves a function. It compiles off the
//! async workers, checks the component against the world, instantiates it once, stores it
//! under the data directory, and only then swaps it in — so a deploy that fails at any step
//! changes nothing, and one that succeeded survives a restart.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::catalog::{Catalog, VersionInfo};
use crate::cluster::{ClusterError, ClusterLink};
use crate::config::Limits;
use crate::connections::{ConnectionTable, NodeId};
use crate::front::Admission;
use crate::observe::{LogEvent, Metrics};
use crate::runtime::{
    EpochTicker, EventError, Function, FunctionEnv, InstanceState, LoadError, at_compile_priority,
    build_engine, build_linker, compile, load_compiled,
};
use crate::scope::FunctionScope;
use crate::signing::UrlSigning;
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
    #[error("the cluster could not be reached: {0}")]
    Cluster(#[from] ClusterError),
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
    /// This process; the first bits of every connection id it hands out.
    pub node: NodeId,
    /// The cluster this host is part of (`--redis`), if any.
    pub cluster: Option<Arc<ClusterLink>>,
    /// Cancelled when the host starts shutting down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for their close handshakes and on-close.
    pub tasks: TaskTracker,
    /// The signing key and which functions accept only signed URLs.
    pub signing: Arc<UrlSigning>,
    /// The address the WebSocket listener bound, once it has, for the URLs the admin API
    /// hands out.
    pub listen_address: OnceLock<SocketAddr>,
    /// Prometheus metrics of every function, served at the admin API's `/metrics`.
    pub metrics: Arc<Metrics>,
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
            node: NodeId::random(),
            cluster: None,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            signing: Arc::new(UrlSigning::default()),
            listen_address: OnceLock::new(),
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// Makes this host a node of the cluster `link` belongs to. Call before deploying.
    pub fn join_cluster(&mut self, link: Arc<ClusterLink>) {
        self.node = link.node;
        self.cluster = Some(link);
    }

    /// Sets the signing policy; called before any function is deployed.
    pub fn with_signing(mut self, signing: UrlSigning) -> Self {
        self.signing = Arc::new(signing);
        self
    }

    fn env_for(&self, scope: &Arc<FunctionScope>) -> Arc<FunctionEnv> {
        Arc::new(FunctionEnv {
            scope: scope.clone(),
            connections: self.connections.clone(),
            kv: self.kv.clone(),
            limits: self.limits.clone(),
            cluster: self.cluster.clone(),
            signing: self.signing.clone(),
        })
    }

    /// Makes `function` the current version of its name. The function was built with the
    /// scope of the running slot (see [`scope_of`](Self::scope_of)), so its guests publish to
    /// the same groups its connections are in.
    fn install(&self, function: Arc<Function>) {
        let scope = function.scope().clone();
        let mut functions = self.functions.write();
        match functions.get(&scope.name) {
            Some(slot) => slot.current.swap(function).retire_idle(),
            None => {
                let name = scope.name.clone();
                let current = ArcSwap::new(function);
                functions.insert(name, Arc::new(FunctionSlot { scope, current }));
            }
        }
    }

    /// Writes a version's files (with their fsyncs) on a blocking thread, off the async
    /// workers that serve connections; gives the component bytes back.
    async fn store_off_worker(
        &self,
        name: &str,
        info: &VersionInfo,
        bytes: Vec<u8>,
        compiled: Vec<u8>,
    ) -> Result<Vec<u8>, DeployError> {
        let catalog = self.catalog.clone();
        let (name, info) = (name.to_owned(), info.clone());
        tokio::task::spawn_blocking(move || {
            catalog
                .store_version(&name, &info, &bytes, &compiled)
                .map(|()| bytes)
        })
        .await
        .map_err(|e| io::Error::other(format!("storing did not finish: {e}")))?
        .map_err(DeployError::from)
    }

    /// How many warm instances the running version of `name` holds, so a new version can
    /// start with as many (a hot swap then adds no instantiations to the events after it).
    fn warm_instances_of(&self, name: &str) -> usize {
        self.function(name)
            .map_or(1, |slot| slot.current().idle_instances())
    }

    /// The scope a new version of `name` joins: that of the running function, if any.
    fn scope_of(&self, name: &str) -> Arc<FunctionScope> {
        match self.function(name) {
            Some(slot) => slot.scope.clone(),
            None => {
                let name: Arc<str> = name.into();
                let metrics = self.metrics.function(&name);
                Arc::new(FunctionScope::with_metrics(name, metrics))
            }
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
        if let Some(cluster) = &self.cluster
            && let Some(current) = cluster.current(name).await?
            && current.sha256 == sha256
        {
            // Another node deployed these bytes already: serve the cluster's version.
            self.sync_locked(name).await?;
            return Ok(Deployed {
                info: current,
                unchanged: true,
            });
        }
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
            at_compile_priority(move || (compile(&engine, &bytes), bytes)).await?;
        let component = component?;
        let local_next = self.catalog.next_version(name)?;
        let version = match &self.cluster {
            Some(cluster) => cluster.next_version(name, local_next).await?,
            None => local_next,
        };
        let info = VersionInfo {
            version,
            sha256,
            size: bytes.len() as u64,
            deployed_at_ms: now_ms(),
            compile_ms: started.elapsed().as_millis() as u64,
        };
        let scope = self.scope_of(name);
        let function = Function::new(&self.linker, self.env_for(&scope), &component, info.clone())?;
        function.warm_up_to(self.warm_instances_of(name)).await?;

        let compiled = component
            .serialize()
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        let bytes = self.store_off_worker(name, &info, bytes, compiled).await?;
        if let Some(cluster) = &self.cluster {
            cluster.publish_version(name, &info, &bytes).await?;
        }
        self.catalog.set_current(name, info.version)?;
        scope.metrics.deploys.inc();
        let version = info.version;
        scope.logs.publish(|| LogEvent::Deploy { version });
        self.install(Arc::new(function));
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
            at_compile_priority(move || -> Result<(Component, bool), DeployError> {
                // SAFETY: the file was written by `Component::serialize` into the host's own data
                // directory (see `Catalog::store_version`).
                match unsafe { load_compiled(&engine, &compiled_path) } {
                    Ok(component) => Ok((component, false)),
                    // Compiled by another engine version or configuration: compile again.
                    Err(_) => Ok((compile(&engine, &std::fs::read(&component_path)?)?, true)),
                }
            })
            .await??;
        if recompiled {
            let compiled = component
                .serialize()
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
            self.catalog.store_compiled(name, version, &compiled)?;
        }
        let scope = self.scope_of(name);
        let function = Function::new(&self.linker, self.env_for(&scope), &component, info)?;
        function.warm_up_to(self.warm_instances_of(name)).await?;
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
            self.install(Arc::new(function));
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
        let known = match &self.cluster {
            Some(cluster) => cluster.versions(name).await?,
            None => self.catalog.versions(name)?,
        };
        let target = match version {
            Some(version) => version,
            None => known
                .iter()
                .rev()
                .map(|v| v.version)
                .find(|&v| v < current)
                .ok_or_else(|| DeployError::NoEarlierVersion(name.to_owned()))?,
        };
        self.fetch_version(name, target).await?;
        let (function, _) = self.load_version(name, target).await?;
        let info = function.info().clone();
        if let Some(cluster) = &self.cluster {
            cluster.set_current(name, target).await?;
        }
        self.catalog.set_current(name, target)?;
        slot.current.swap(Arc::new(function)).retire_idle();
        slot.scope.metrics.rollbacks.inc();
        slot.scope.logs.publish(|| LogEvent::Rollback {
            version: target,
            from: current,
        });
        tracing::info!(function = %name, from = current, to = target, "rolled back");
        Ok(info)
    }

    /// Removes a function: new handshakes get 404, its connections are closed with 1001 (each
    /// runs on-close on the last version), and its stored versions are deleted.
    pub async fn remove(&self, name: &str) -> Result<usize, DeployError> {
        let _change = self.changes.lock().await;
        if self.function(name).is_none() {
            return Err(DeployError::NoSuchFunction(name.to_owned()));
        }
        if let Some(cluster) = &self.cluster {
            cluster.remove_function(name).await?;
        }
        self.remove_locally(name)
    }

    /// Stops serving a function on this node and deletes its stored versions.
    fn remove_locally(&self, name: &str) -> Result<usize, DeployError> {
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
        slot.scope.logs.publish(|| LogEvent::Removed);
        tracing::info!(function = %name, closed, "removed");
        Ok(closed)
    }

    /// Makes sure a version the cluster knows is stored on this node, fetching and compiling
    /// its component when it is not. Without a cluster there is nothing to fetch.
    async fn fetch_version(&self, name: &str, version: u64) -> Result<(), DeployError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let Some(info) = cluster.version(name, version).await? else {
            return Ok(());
        };
        if self
            .catalog
            .version(name, version)?
            .is_some_and(|local| local.sha256 == info.sha256)
        {
            return Ok(());
        }
        let bytes = cluster.component(name, version).await?.ok_or_else(|| {
            ClusterError::Malformed(format!("`{name}` version {version} has no component"))
        })?;
        let engine = self.engine.clone();
        let (component, bytes) =
            at_compile_priority(move || (compile(&engine, &bytes), bytes)).await?;
        let compiled = component?
            .serialize()
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.store_off_worker(name, &info, bytes, compiled).await?;
        Ok(())
    }

    /// Makes this node serve what the cluster says `name` is: its current version, or nothing
    /// if it was removed. Deploys on other nodes arrive here.
    pub async fn sync_function(&self, name: &str) {
        let _change = self.changes.lock().await;
        if let Err(error) = self.sync_locked(name).await {
            tracing::error!(function = %name, "could not follow the cluster's change: {error}");
        }
    }

    async fn sync_locked(&self, name: &str) -> Result<(), DeployError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let Some(info) = cluster.current(name).await? else {
            if self.function(name).is_some() {
                let closed = self.remove_locally(name)?;
                tracing::info!(function = %name, closed, "removed by another node");
            }
            return Ok(());
        };
        if let Some(slot) = self.function(name)
            && *slot.current().info() == info
        {
            return Ok(());
        }
        self.fetch_version(name, info.version).await?;
        let (function, _) = self.load_version(name, info.version).await?;
        self.catalog.set_current(name, info.version)?;
        self.install(Arc::new(function));
        tracing::info!(function = %name, version = info.version, "now serving the cluster's version");
        Ok(())
    }

    /// Brings every function in line with the cluster. At start (`joining`), functions this
    /// node has but the cluster does not are offered to the cluster; later, they are
    /// functions another node removed.
    pub async fn sync_cluster(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let names = match cluster.function_names().await {
            Ok(names) => names,
            Err(error) => {
                tracing::error!("could not read the cluster's functions: {error}");
                return;
            }
        };
        for name in &names {
            self.sync_function(name).await;
        }
        for slot in self.functions() {
            if !names.iter().any(|n| **n == *slot.scope.name) {
                self.sync_function(&slot.scope.name).await;
            }
        }
    }

    /// Offers the functions this node restored from its data directory to a cluster that does
    /// not have them yet (a node that ran alone before joining keeps serving its functions).
    pub async fn offer_to_cluster(&self) -> Result<(), DeployError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let _change = self.changes.lock().await;
        for slot in self.functions() {
            let name = &slot.scope.name;
            if cluster.current(name).await?.is_some() {
                continue;
            }
            let info = slot.current().info().clone();
            let bytes = std::fs::read(self.catalog.component_path(name, info.version))?;
            cluster.publish_version(name, &info, &bytes).await?;
            tracing::info!(function = %name, version = info.version, "offered to the cluster");
        }
        Ok(())
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
        let component = at_compile_priority(move || compile(&engine, &bytes)).await??;
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
