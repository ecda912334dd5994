//! Following the cluster: a deploy, rollback or removal on another node reaches this one as a
//! function name to sync, and a node that starts (or lost its subscription) syncs them all.

use std::sync::Arc;

use super::{DeployError, Functions};

impl Functions {
    /// Makes this node serve what the cluster says `name` is: its current version, or nothing
    /// if it was removed. Deploys on other nodes arrive here.
    pub async fn sync_function(&self, name: &str) {
        let _change = self.changes.lock().await;
        if let Err(error) = self.sync_locked(name).await {
            tracing::error!(function = %name, "could not follow the cluster's change: {error}");
        }
    }

    /// [`sync_function`](Self::sync_function) with the change lock already held.
    pub(super) async fn sync_locked(&self, name: &str) -> Result<(), DeployError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let Some(info) = cluster.current(name).await? else {
            if self.get(name).is_some() {
                let closed = self.remove_locally(name)?;
                tracing::info!(function = %name, closed, "removed by another node");
            }
            return Ok(());
        };
        if let Some(slot) = self.get(name)
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

    /// Brings every function in line with the cluster, including those this node serves but
    /// the cluster no longer has (another node removed them).
    pub async fn sync_all(&self) {
        let Some(cluster) = self.cluster() else {
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
        for slot in self.list() {
            if !names.iter().any(|n| **n == *slot.scope.name) {
                self.sync_function(&slot.scope.name).await;
            }
        }
    }

    /// Offers the functions this node serves to a cluster that does not have them yet (a node
    /// that ran alone before joining keeps serving its functions).
    pub async fn offer_to_cluster(&self) -> Result<(), DeployError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let _change = self.changes.lock().await;
        for slot in self.list() {
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
}
