//! The functions this host serves: which version of each name is current, and the one path
//! that changes it — deploy, rollback, removal, restore after a restart, and following the
//! cluster's changes.
//!
//! Every change compiles off the async workers, checks the component against the world,
//! instantiates it once, stores it under the data directory, and only then swaps it in, so a
//! change that fails at any step changes nothing, and one that succeeded survives a restart.
//! Changes run one at a time; events never wait for them (a connection reads the current
//! version when each event starts).

mod cluster_sync;
mod deploy;
mod versions;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::catalog::{Catalog, VersionInfo};
use crate::cluster::{ClusterError, ClusterLink};
use crate::config::Limits;
use crate::connections::ConnectionTable;
use crate::connections::FunctionScope;
use crate::observe::Metrics;
use crate::runtime::{
    EpochTicker, EventError, Function, FunctionEnv, InstanceState, LoadError, build_engine,
    build_linker,
};
use crate::signing::UrlSigning;
use crate::state::KeyValueStore;

pub use deploy::Deployed;

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

/// What one function may set for itself (the config file's `[functions.NAME]`); what is not
/// set here is the host's. A new per-function setting is a field here, read by the config
/// file's section of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSettings {
    /// Accept only signed URLs; others get 401.
    pub require_signed_url: bool,
    /// Payload bytes one of its resumable sessions may hold for the client.
    pub session_retention: Option<usize>,
    /// Whether its clients may negotiate permessage-deflate.
    pub deflate: Option<bool>,
    /// Its messages smaller than this go uncompressed.
    pub deflate_threshold: Option<usize>,
}

/// Function names are URL path segments and directory names, so they are kept plain.
pub fn is_valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What every version of every function shares besides its own scope.
struct Shared {
    connections: Arc<ConnectionTable>,
    kv: Arc<dyn KeyValueStore>,
    limits: Limits,
    cluster: Option<Arc<ClusterLink>>,
    signing: Arc<UrlSigning>,
    metrics: Arc<Metrics>,
}

/// The deployed functions of this host, and the changes to them.
pub struct Functions {
    engine: Engine,
    linker: Linker<InstanceState>,
    catalog: Catalog,
    shared: Shared,
    slots: RwLock<HashMap<Arc<str>, Arc<FunctionSlot>>>,
    /// Per-function settings, by name; they hold for every version.
    settings: RwLock<HashMap<String, FunctionSettings>>,
    /// Deploys, rollbacks and removals run one at a time.
    changes: tokio::sync::Mutex<()>,
    _epoch: EpochTicker,
}

impl Functions {
    /// Functions stored under `data_dir`, reaching connections through `connections` and
    /// keeping state in `kv`.
    pub fn new(
        limits: Limits,
        data_dir: &Path,
        connections: Arc<ConnectionTable>,
        kv: Arc<dyn KeyValueStore>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let engine = build_engine(&limits)?;
        let linker = build_linker(&engine)?;
        let catalog = Catalog::open(data_dir)?;
        Ok(Self {
            _epoch: EpochTicker::start(engine.clone()),
            engine,
            linker,
            catalog,
            shared: Shared {
                connections,
                kv,
                limits,
                cluster: None,
                signing: Arc::new(UrlSigning::default()),
                metrics,
            },
            slots: RwLock::new(HashMap::new()),
            settings: RwLock::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Versions deployed from now on follow `cluster` and reach its other nodes.
    pub(crate) fn join_cluster(&mut self, cluster: Arc<ClusterLink>) {
        self.shared.cluster = Some(cluster);
    }

    pub(crate) fn set_signing(&mut self, signing: Arc<UrlSigning>) {
        self.shared.signing = signing;
    }

    /// Sets what differs for the function `name` from the host's limits.
    pub fn configure(&self, name: &str, settings: FunctionSettings) {
        self.settings.write().insert(name.to_owned(), settings);
    }

    /// Payload bytes a resumable session of `name` may hold for its client.
    pub fn session_retention(&self, name: &str) -> usize {
        self.settings
            .read()
            .get(name)
            .and_then(|s| s.session_retention)
            .unwrap_or(self.shared.limits.session_retention)
    }

    /// The smallest message `name` compresses, or `None` when it does not negotiate
    /// permessage-deflate.
    pub fn deflate_threshold(&self, name: &str) -> Option<usize> {
        let settings = self.settings.read();
        let settings = settings.get(name);
        let limits = &self.shared.limits;
        settings
            .and_then(|s| s.deflate)
            .unwrap_or(limits.deflate)
            .then(|| {
                settings
                    .and_then(|s| s.deflate_threshold)
                    .unwrap_or(limits.deflate_threshold)
            })
    }

    pub fn get(&self, name: &str) -> Option<Arc<FunctionSlot>> {
        self.slots.read().get(name).cloned()
    }

    /// Every served function, by name.
    pub fn list(&self) -> Vec<Arc<FunctionSlot>> {
        let mut slots: Vec<_> = self.slots.read().values().cloned().collect();
        slots.sort_by(|a, b| a.scope.name.cmp(&b.scope.name));
        slots
    }

    pub fn names(&self) -> Vec<Arc<str>> {
        self.list()
            .into_iter()
            .map(|s| s.scope.name.clone())
            .collect()
    }

    fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    fn cluster(&self) -> Option<&ClusterLink> {
        self.shared.cluster.as_deref()
    }

    fn env_for(&self, scope: &Arc<FunctionScope>) -> Arc<FunctionEnv> {
        let shared = &self.shared;
        Arc::new(FunctionEnv {
            scope: scope.clone(),
            connections: shared.connections.clone(),
            kv: shared.kv.clone(),
            limits: shared.limits.clone(),
            cluster: shared.cluster.clone(),
            signing: shared.signing.clone(),
        })
    }

    /// The scope a new version of `name` joins: that of the running function, if any, so its
    /// guests publish to the same groups its connections are in.
    fn scope_of(&self, name: &str) -> Arc<FunctionScope> {
        match self.get(name) {
            Some(slot) => slot.scope.clone(),
            None => {
                let name: Arc<str> = name.into();
                let metrics = self.shared.metrics.function(&name);
                Arc::new(FunctionScope::with_metrics(name, metrics))
            }
        }
    }

    /// Makes `function` the current version of its name.
    fn install(&self, function: Arc<Function>) {
        let scope = function.scope().clone();
        let mut slots = self.slots.write();
        match slots.get(&scope.name) {
            Some(slot) => slot.current.swap(function).retire_idle(),
            None => {
                let name = scope.name.clone();
                let current = ArcSwap::new(function);
                slots.insert(name, Arc::new(FunctionSlot { scope, current }));
            }
        }
    }

    /// How many warm instances the running version of `name` holds, so a new version can
    /// start with as many (a hot swap then adds no instantiations to the events after it).
    fn warm_instances_of(&self, name: &str) -> usize {
        self.get(name)
            .map_or(1, |slot| slot.current().idle_instances())
    }

    /// Stored versions of a function, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, DeployError> {
        if self.get(name).is_none() {
            return Err(DeployError::NoSuchFunction(name.to_owned()));
        }
        Ok(self.catalog.versions(name)?)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
