//! The host: what the WebSocket front and the admin API share — the deployed functions, the
//! connection table, the state backend, the limits, and this node's place in a cluster.
//!
//! It holds things and wires them together; the work is done by the parts it holds
//! ([`crate::functions`] changes what serves, [`crate::connections`] keeps the connections,
//! [`crate::reach`] finds them, [`crate::cluster`] talks to the other nodes).

mod cluster_member;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ClusterLink;
use crate::config::Limits;
use crate::connections::{ConnectionTable, NodeId};
use crate::functions::Functions;
use crate::observe::Metrics;
use crate::reach::{Asker, Resolver};
use crate::signing::UrlSigning;
use crate::state::KeyValueStore;

/// Everything the host shares between its tasks.
pub struct Host {
    /// The deployed functions, and deploys, rollbacks and removals.
    pub functions: Functions,
    pub connections: Arc<ConnectionTable>,
    pub kv: Arc<dyn KeyValueStore>,
    pub limits: Limits,
    /// This process; the first bits of every connection id it hands out.
    pub node: NodeId,
    /// The cluster this host is part of (`--redis`), if any.
    pub cluster: Option<Arc<ClusterLink>>,
    /// Cancelled when the host starts shutting down.
    pub shutdown: CancellationToken,
    /// Cancelled when the node stops taking part in its cluster: after its connections have
    /// drained, so sessions handed over on shutdown hear where they went.
    pub cluster_stop: CancellationToken,
    /// Every connection task, so shutdown can wait for their close handshakes and on-close.
    pub tasks: TaskTracker,
    /// The signing key and which functions accept only signed URLs.
    pub signing: Arc<UrlSigning>,
    /// The address the WebSocket listener bound, once it has, for the URLs the admin API
    /// hands out.
    pub listen_address: OnceLock<SocketAddr>,
    /// Prometheus metrics of every function, served at the admin API's `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Host {
    /// A host keeping its deployed functions under `data_dir` and key-value state in `kv`.
    pub fn new(
        limits: Limits,
        data_dir: &Path,
        kv: Arc<dyn KeyValueStore>,
    ) -> anyhow::Result<Self> {
        let connections = Arc::new(ConnectionTable::default());
        let metrics = Arc::new(Metrics::new());
        let functions = Functions::new(
            limits.clone(),
            data_dir,
            connections.clone(),
            kv.clone(),
            metrics.clone(),
        )?;
        Ok(Self {
            functions,
            connections,
            kv,
            limits,
            node: NodeId::random(),
            cluster: None,
            shutdown: CancellationToken::new(),
            cluster_stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            signing: Arc::new(UrlSigning::default()),
            listen_address: OnceLock::new(),
            metrics,
        })
    }

    /// Makes this host a node of the cluster `link` belongs to. Call before deploying.
    pub fn join_cluster(&mut self, link: Arc<ClusterLink>) {
        self.node = link.node;
        self.functions.join_cluster(link.clone());
        self.cluster = Some(link);
    }

    /// Sets the signing policy; called before any function is deployed.
    pub fn with_signing(mut self, signing: UrlSigning) -> Self {
        self.signing = Arc::new(signing);
        self.functions.set_signing(self.signing.clone());
        self
    }

    /// Finds connections for `asker` (see [`crate::reach`]).
    pub fn resolver<'a>(&'a self, asker: Asker<'a>) -> Resolver<'a> {
        Resolver::new(&self.connections, self.cluster.as_deref(), asker)
    }
}
