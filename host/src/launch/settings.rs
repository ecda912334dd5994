//! What a host is started with: plain values, already checked, with no parsing left to do.
//!
//! `wsfn-host run` fills them from its options (see `options`); a program embedding a host
//! may build them directly, starting from [`Settings::new`] and its defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cluster::ClusterSettings;
use crate::config::Limits;
pub use crate::functions::FunctionSettings;
use crate::state::StoreKind;

/// Everything [`super::start`] needs.
#[derive(Clone)]
pub struct Settings {
    /// Address of the WebSocket listener; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Address of the admin API.
    pub admin_listen: SocketAddr,
    /// Where deployed versions, compiled code, a generated admin token and durable state live.
    pub data_dir: PathBuf,
    /// A directory whose files are served over plain HTTP beside the functions.
    pub static_dir: Option<PathBuf>,
    /// The admin bearer token; without one, a token is generated into the data directory
    /// (and the admin API must listen on loopback).
    pub admin_token: Option<Secret>,
    /// The key signed connection URLs are made with; without one none can be minted.
    pub signing_key: Option<Secret>,
    /// Serve the admin API's `/metrics` without the token.
    pub public_metrics: bool,
    /// Where key-value state is kept when there is no Redis.
    pub store: StoreKind,
    /// Redis to keep state in and to cluster through.
    pub redis: Option<String>,
    /// How this node takes part in a cluster (only with `redis`).
    pub cluster: ClusterSettings,
    pub limits: Limits,
    /// Components to deploy at start (a no-op for bytes that are already current).
    pub functions: Vec<ComponentFile>,
    /// Settings of single functions, by name, whether deployed at start or later.
    pub function_settings: BTreeMap<String, FunctionSettings>,
}

impl Settings {
    /// Defaults for everything but where the host keeps its data.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            data_dir: data_dir.into(),
            static_dir: None,
            admin_token: None,
            signing_key: None,
            public_metrics: false,
            store: StoreKind::default(),
            redis: None,
            cluster: ClusterSettings::default(),
            limits: Limits::default(),
            functions: Vec::new(),
            function_settings: BTreeMap::new(),
        }
    }

    /// The functions that accept only signed URLs.
    pub fn signed_only(&self) -> impl Iterator<Item = &str> {
        self.function_settings
            .iter()
            .filter(|(_, settings)| settings.require_signed_url)
            .map(|(name, _)| name.as_str())
    }
}

/// A secret given as its value or as a file holding it (surrounding whitespace ignored).
#[derive(Clone)]
pub enum Secret {
    Value(String),
    File(PathBuf),
}

/// A component file to serve as the function `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentFile {
    pub name: String,
    pub path: PathBuf,
}
