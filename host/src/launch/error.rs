//! Why a host did not start, one variant per step, each saying what to change.
//!
//! Each message includes its cause, which is therefore not also given as the error's
//! `source`: a chain of causes printed in full would say it twice.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cluster::ClusterError;
use crate::front::static_files::StaticDirError;
use crate::functions::DeployError;
use crate::signing::KeyError;
use crate::state::OpenStoreError;

/// Why [`super::start`] failed. Nothing is left running when it does.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    StaticDir(#[from] StaticDirError),
    #[error("cannot create the data directory {path}: {cause}")]
    DataDir { path: PathBuf, cause: io::Error },
    #[error("cannot read the admin token from {path}: {cause}")]
    ReadAdminToken { path: PathBuf, cause: io::Error },
    #[error("the admin token file {0} is empty")]
    EmptyAdminToken(PathBuf),
    #[error(
        "refusing to serve the admin API on {0} without a token: set WSFN_ADMIN_TOKEN or pass \
         --admin-token-file (or keep --admin-listen on a loopback address)"
    )]
    AdminTokenRequired(SocketAddr),
    #[error("cannot write the admin token to {path}: {cause}")]
    WriteAdminToken { path: PathBuf, cause: io::Error },
    #[error("cannot read the signing key from {path}: {cause}")]
    ReadSigningKey { path: PathBuf, cause: io::Error },
    #[error(
        "`{0}` accepts only signed URLs, which needs a signing key: set WSFN_SIGNING_KEY or pass \
         --signing-key-file"
    )]
    SigningKeyRequired(String),
    #[error(transparent)]
    SigningKey(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] OpenStoreError),
    #[error("cannot set up the function engine: {0:#}")]
    Engine(anyhow::Error),
    #[error("cannot reach Redis at {url}: {cause}")]
    Redis { url: String, cause: ClusterError },
    #[error("cannot join the cluster: {0}")]
    JoinCluster(ClusterError),
    #[error("cannot subscribe to the cluster's channels: {0}")]
    Subscribe(ClusterError),
    #[error("cannot offer this node's functions to the cluster: {0}")]
    OfferToCluster(DeployError),
    #[error("cannot restore the functions stored in {path}: {cause}")]
    Restore { path: PathBuf, cause: DeployError },
    #[error("cannot read function `{name}` from {path}: {cause}")]
    ReadFunction {
        name: String,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("cannot load function `{name}` from {path}: {cause}")]
    Deploy {
        name: String,
        path: PathBuf,
        cause: DeployError,
    },
    #[error("cannot listen {what} on {address}: {cause}{hint}")]
    Bind {
        /// `for WebSockets` or `for the admin API`.
        what: &'static str,
        address: SocketAddr,
        cause: io::Error,
        /// Which option to change, when that is the remedy.
        hint: String,
    },
}

impl StartError {
    /// A failed bind, with the option that sets the address when another address would help.
    pub(super) fn bind(
        what: &'static str,
        option: &'static str,
        address: SocketAddr,
        cause: io::Error,
    ) -> Self {
        let hint = match cause.kind() {
            io::ErrorKind::AddrInUse => format!(
                " (another program, perhaps another wsfn-host, listens there: stop it or choose \
                 another address with {option})"
            ),
            io::ErrorKind::AddrNotAvailable => {
                format!(" (no interface of this machine has that address: change {option})")
            }
            io::ErrorKind::PermissionDenied => {
                format!(" (ports below 1024 need privileges: choose a higher port with {option})")
            }
            _ => String::new(),
        };
        Self::Bind {
            what,
            address,
            cause,
            hint,
        }
    }
}
