//! Starting a whole host from its [`Settings`]: what `wsfn-host run` does between reading its
//! options and waiting for a signal, as one library call, so that another program (the
//! end-to-end tests among them) can run a host inside its own process.
//!
//! [`start`] goes through the steps in the order a failure is cheapest to report: settings
//! that can be checked without work first (the static directory, the secrets), then the
//! store and the cluster, then restoring and deploying functions, which compiles them, and
//! binding the listeners last, so an address is only taken by a host that can serve it. It
//! returns once both listeners are bound and served on the current tokio runtime; the
//! [`RunningHost`] it returns says where, and stops the host.

mod error;
mod secrets;
mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminToken};
use crate::cluster::ClusterLink;
use crate::front::StaticFiles;
use crate::host::Host;
use crate::state::open_store;

pub use error::StartError;
pub use secrets::GENERATED_TOKEN_FILE;
pub use settings::{ComponentFile, FunctionSettings, Secret, Settings};

/// How long the admin API may take to finish its answers once the WebSocket side has shut
/// down: open log streams end on their own once the drain is over and get this long to send
/// their last lines.
const ADMIN_GRACE: Duration = Duration::from_secs(1);

/// Starts a host: see the module comment for the steps. Must be called on a tokio runtime,
/// which then runs the host until it is shut down.
pub async fn start(settings: Settings) -> Result<RunningHost, StartError> {
    // Checked first: a wrong directory should not wait for every function to compile.
    let static_files = match &settings.static_dir {
        Some(dir) => {
            let files = StaticFiles::new(dir)?;
            tracing::info!("serving the files of {}", files.root().display());
            Some(Arc::new(files))
        }
        None => None,
    };
    std::fs::create_dir_all(&settings.data_dir).map_err(|cause| StartError::DataDir {
        path: settings.data_dir.clone(),
        cause,
    })?;
    let signing = secrets::url_signing(&settings)?;
    let admin_token = secrets::admin_token(&settings)?;
    let (host, cluster) = build_host(&settings, signing).await?;
    let listeners = match prepare(&host, cluster.as_ref(), &settings).await {
        Ok(listeners) => listeners,
        Err(error) => {
            abandon(&host, cluster.as_deref()).await;
            return Err(error);
        }
    };
    let token = AdminToken::new(&admin_token).with_public_metrics(settings.public_metrics);
    Ok(RunningHost::serve(
        host,
        cluster,
        listeners,
        static_files,
        token,
        admin_token,
    ))
}

/// Restores and deploys the functions, takes part in the cluster, and binds the listeners.
async fn prepare(
    host: &Arc<Host>,
    cluster: Option<&Arc<ClusterLink>>,
    settings: &Settings,
) -> Result<Listeners, StartError> {
    host.functions
        .restore()
        .await
        .map_err(|cause| StartError::Restore {
            path: settings.data_dir.clone(),
            cause,
        })?;
    if let Some(link) = cluster {
        take_part_in_cluster(host, link).await?;
    }
    deploy_functions(host, &settings.functions).await?;
    warn_about_what_is_missing(host, settings);
    Listeners::bind(settings).await
}

/// Undoes a start that failed half-way, so nothing of it keeps running: the cluster's tasks
/// end with the host's shutdown, and the node leaves the cluster.
async fn abandon(host: &Host, cluster: Option<&ClusterLink>) {
    host.shutdown.cancel();
    host.cluster_stop.cancel();
    if let Some(link) = cluster
        && let Err(error) = link.leave().await
    {
        tracing::warn!("could not leave the cluster cleanly: {error}");
    }
}

/// The host with its store, and its link to the cluster when there is one.
async fn build_host(
    settings: &Settings,
    signing: crate::signing::UrlSigning,
) -> Result<(Arc<Host>, Option<Arc<ClusterLink>>), StartError> {
    let limits = settings.limits.clone();
    let kv = open_store(
        settings.store,
        settings.redis.as_deref(),
        &settings.data_dir,
        limits.kv_keys_per_function,
    )
    .await?;
    let mut host = Host::new(limits, &settings.data_dir, kv)
        .map_err(StartError::Engine)?
        .with_signing(signing);
    for (name, function) in &settings.function_settings {
        host.functions.configure(name, function.clone());
    }
    let Some(url) = &settings.redis else {
        return Ok((Arc::new(host), None));
    };
    let cluster_settings = crate::cluster::ClusterSettings {
        session_window: settings.limits.resume_window,
        ..settings.cluster.clone()
    };
    let link = ClusterLink::connect(url, host.node, cluster_settings, host.metrics.cluster())
        .await
        .map_err(|cause| StartError::Redis {
            url: url.clone(),
            cause,
        })?;
    link.register().await.map_err(StartError::JoinCluster)?;
    let link = Arc::new(link);
    host.join_cluster(link.clone());
    Ok((Arc::new(host), Some(link)))
}

/// Listens to the cluster, takes its functions and offers this node's own.
async fn take_part_in_cluster(host: &Arc<Host>, link: &Arc<ClusterLink>) -> Result<(), StartError> {
    // Subscribe first so no change made while syncing is missed.
    let subscription = crate::cluster::subscribe(link)
        .await
        .map_err(StartError::Subscribe)?;
    let member: Arc<dyn crate::cluster::Member> = host.clone();
    tokio::spawn(crate::cluster::run_inbox(
        member.clone(),
        link.clone(),
        subscription,
    ));
    tokio::spawn(crate::cluster::run_liveness(member, link.clone()));
    host.functions.sync_all().await;
    host.functions
        .offer_to_cluster()
        .await
        .map_err(StartError::OfferToCluster)?;
    tracing::info!(node = %link.node, "joined the cluster");
    Ok(())
}

async fn deploy_functions(host: &Host, functions: &[ComponentFile]) -> Result<(), StartError> {
    for function in functions {
        let bytes = std::fs::read(&function.path).map_err(|cause| StartError::ReadFunction {
            name: function.name.clone(),
            path: function.path.clone(),
            cause,
        })?;
        let deployed = host
            .functions
            .deploy(&function.name, bytes)
            .await
            .map_err(|cause| StartError::Deploy {
                name: function.name.clone(),
                path: function.path.clone(),
                cause,
            })?;
        if deployed.unchanged {
            tracing::info!(function = %function.name, version = deployed.info.version, "already the current version");
        }
    }
    Ok(())
}

fn warn_about_what_is_missing(host: &Host, settings: &Settings) {
    for name in settings.signed_only() {
        if host.functions.get(name).is_none() {
            tracing::warn!("--require-signed names `{name}`, which is not deployed (yet)");
        }
    }
    if host.functions.names().is_empty() {
        tracing::warn!("no functions yet: deploy one with `wsfn-host deploy NAME FILE.wasm`");
    }
}

/// Both listeners, bound, with the addresses they bound (the port picked for port 0).
struct Listeners {
    websocket: TcpListener,
    websocket_address: SocketAddr,
    admin: TcpListener,
    admin_address: SocketAddr,
}

impl Listeners {
    async fn bind(settings: &Settings) -> Result<Self, StartError> {
        let (websocket, websocket_address) =
            bind("for WebSockets", "--listen", settings.listen).await?;
        let (admin, admin_address) =
            bind("for the admin API", "--admin-listen", settings.admin_listen).await?;
        Ok(Self {
            websocket,
            websocket_address,
            admin,
            admin_address,
        })
    }
}

/// Connections the kernel queues for a listener before they are accepted. The default (128)
/// drops handshakes when thousands of clients come at once, as after a network blip all
/// sessions resume together; the kernel caps it at `net.core.somaxconn`.
const ACCEPT_BACKLOG: u32 = 8192;

async fn bind(
    what: &'static str,
    option: &'static str,
    address: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let failed = |error| StartError::bind(what, option, address, error);
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(failed)?;
    // As the standard library's bind does, so a restarted host can bind at once.
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(address).map_err(failed)?;
    let listener = socket.listen(ACCEPT_BACKLOG).map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

/// A host that [`start`] started: where it listens, its admin token, and its shutdown.
///
/// Dropping it leaves the host running on its runtime; [`RunningHost::shutdown`] stops it.
pub struct RunningHost {
    host: Arc<Host>,
    address: SocketAddr,
    admin_address: SocketAddr,
    admin_token: String,
    served: JoinHandle<Result<Stopped, std::io::Error>>,
}

/// How a host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Connections that had not finished closing (and running on-close) when the shutdown
    /// timeout ran out.
    pub connections_left_open: usize,
}

/// Starts a host's graceful shutdown from anywhere, for example a signal handler.
#[derive(Clone)]
pub struct ShutdownTrigger(CancellationToken);

impl ShutdownTrigger {
    /// New handshakes get 503, every connection is closed with 1001 and runs its on-close.
    pub fn shut_down(&self) {
        self.0.cancel();
    }
}

impl RunningHost {
    fn serve(
        host: Arc<Host>,
        cluster: Option<Arc<ClusterLink>>,
        listeners: Listeners,
        static_files: Option<Arc<StaticFiles>>,
        token: AdminToken,
        admin_token: String,
    ) -> Self {
        let (address, admin_address) = (listeners.websocket_address, listeners.admin_address);
        let _ = host.listen_address.set(address);
        for name in host.functions.names() {
            tracing::info!("serving function `{name}` at ws://{address}/{name}");
        }
        let served = tokio::spawn(serve_until_shutdown(
            host.clone(),
            cluster,
            listeners,
            static_files,
            token,
        ));
        Self {
            host,
            address,
            admin_address,
            admin_token,
            served,
        }
    }

    /// The address the WebSocket listener bound (with the port picked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address the admin API bound.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_address
    }

    /// The token the admin API requires.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The host itself: its functions, connections and limits.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Starts a graceful shutdown; [`RunningHost::stopped`] waits for its end.
    pub fn shutdown(&self) {
        self.host.shutdown.cancel();
    }

    /// A handle that starts the shutdown, to hand to whatever decides when to stop.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.host.shutdown.clone())
    }

    /// Whether the host has stopped serving (after a shutdown, or because it failed).
    pub fn has_stopped(&self) -> bool {
        self.served.is_finished()
    }

    /// Waits until the host has stopped, which it does once shut down.
    pub async fn stopped(self) -> std::io::Result<Stopped> {
        match self.served.await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(format!(
                "the host stopped abnormally: {error}"
            ))),
        }
    }
}

/// Serves both listeners until the host's shutdown, then drains and leaves the cluster.
async fn serve_until_shutdown(
    host: Arc<Host>,
    cluster: Option<Arc<ClusterLink>>,
    listeners: Listeners,
    static_files: Option<Arc<StaticFiles>>,
    token: AdminToken,
) -> std::io::Result<Stopped> {
    let admin_app = admin::router(host.clone(), token);
    let admin_shutdown = host.shutdown.clone();
    let mut admin = tokio::spawn(async move {
        axum::serve(listeners.admin, admin_app)
            .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
            .await
    });
    let still_open = crate::front::serve(host.clone(), listeners.websocket, static_files).await?;
    if tokio::time::timeout(ADMIN_GRACE, &mut admin).await.is_err() {
        admin.abort();
    }
    // The node took part in the cluster while it drained (sessions handed over hear of their
    // resume elsewhere; heartbeats go on, so no one takes it for dead): it stops now.
    host.cluster_stop.cancel();
    if let Some(link) = &cluster
        && let Err(error) = link.leave().await
    {
        tracing::warn!("could not leave the cluster cleanly: {error}");
    }
    if still_open > 0 {
        tracing::warn!(
            "{still_open} connections did not finish closing before the shutdown timeout"
        );
    }
    tracing::info!("stopped");
    Ok(Stopped {
        connections_left_open: still_open,
    })
}
