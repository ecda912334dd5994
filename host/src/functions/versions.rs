//! Changing which stored version serves a function: rollback, removal, and restoring every
//! function after a restart.

use std::sync::Arc;
use std::time::Instant;

use super::{DeployError, Functions};
use crate::catalog::VersionInfo;
use crate::observe::LogEvent;

impl Functions {
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
            .get(name)
            .ok_or_else(|| DeployError::NoSuchFunction(name.to_owned()))?;
        let current = slot.current().info().version;
        let known = match self.cluster() {
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
        if let Some(cluster) = self.cluster() {
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
        if self.get(name).is_none() {
            return Err(DeployError::NoSuchFunction(name.to_owned()));
        }
        if let Some(cluster) = self.cluster() {
            cluster.remove_function(name).await?;
        }
        self.remove_locally(name)
    }

    /// Stops serving a function on this node and deletes its stored versions.
    pub(super) fn remove_locally(&self, name: &str) -> Result<usize, DeployError> {
        let slot = self
            .slots
            .write()
            .remove(name)
            .ok_or_else(|| DeployError::NoSuchFunction(name.to_owned()))?;
        let mut closed = 0;
        for connection in self.shared.connections.of(&slot.scope) {
            if connection.start_close(1001, "function removed") {
                closed += 1;
            }
        }
        self.catalog.remove(name)?;
        slot.scope.logs.publish(|| LogEvent::Removed);
        tracing::info!(function = %name, closed, "removed");
        Ok(closed)
    }
}
