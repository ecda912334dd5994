//! Deploying a component as a new version (a hot swap when the function runs), checking one
//! without deploying it, and the steps both share: compiling off the async workers, loading
//! stored versions, and writing a version's files.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::{DeployError, Functions, is_valid_function_name, now_ms};
use crate::catalog::VersionInfo;
use crate::cluster::ClusterError;
use crate::connections::FunctionScope;
use crate::observe::LogEvent;
use crate::runtime::{Function, at_compile_priority, compile, load_compiled};

/// The result of a deploy.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub info: VersionInfo,
    /// The bytes were those of the current version, so nothing changed.
    pub unchanged: bool,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn serialize(component: &Component) -> Result<Vec<u8>, DeployError> {
    component
        .serialize()
        .map_err(|e| DeployError::Storage(io::Error::other(format!("{e:#}"))))
}

impl Functions {
    /// Checks, starts and stores a component, then makes it the current version of `name`.
    pub async fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Deployed, DeployError> {
        if !is_valid_function_name(name) {
            return Err(DeployError::InvalidName(name.to_owned()));
        }
        check_header(&bytes, self.limits().max_component_size)?;
        let _change = self.changes.lock().await;
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(unchanged) = self.already_current(name, &sha256).await? {
            return Ok(unchanged);
        }
        let started = Instant::now();
        let (component, bytes) = self.compile_off_workers(bytes).await?;
        let component = component?;
        let local_next = self.catalog.next_version(name)?;
        let version = match self.cluster() {
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
        let function = self.start(name, &component, info.clone()).await?;
        let bytes = self
            .store_off_worker(name, &info, bytes, serialize(&component)?)
            .await?;
        if let Some(cluster) = self.cluster() {
            cluster.publish_version(name, &info, &bytes).await?;
        }
        self.catalog.set_current(name, info.version)?;
        let scope = function.scope().clone();
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

    /// The version `name` already serves when its bytes hash to `sha256`, here or (when the
    /// node was behind) in the cluster: a deploy of the same bytes changes nothing.
    async fn already_current(
        &self,
        name: &str,
        sha256: &str,
    ) -> Result<Option<Deployed>, DeployError> {
        if let Some(cluster) = self.cluster()
            && let Some(current) = cluster.current(name).await?
            && current.sha256 == sha256
        {
            // Another node deployed these bytes already: serve the cluster's version.
            self.sync_locked(name).await?;
            return Ok(Some(Deployed {
                info: current,
                unchanged: true,
            }));
        }
        Ok(self.get(name).and_then(|slot| {
            let current = slot.current();
            (current.info().sha256 == sha256).then(|| Deployed {
                info: current.info().clone(),
                unchanged: true,
            })
        }))
    }

    /// Checks a component without deploying it: compile, world check, one instantiation.
    pub async fn check(&self, bytes: Vec<u8>) -> Result<String, DeployError> {
        check_header(&bytes, self.limits().max_component_size)?;
        let (component, _) = self.compile_off_workers(bytes).await?;
        let info = VersionInfo {
            version: 0,
            sha256: String::new(),
            size: 0,
            deployed_at_ms: 0,
            compile_ms: 0,
        };
        let scope = Arc::new(FunctionScope::new("check".into()));
        let function = Function::new(&self.linker, self.env_for(&scope), &component?, info)?;
        function.warm_up().await?;
        Ok(function.describe_exports())
    }

    /// Compiles at the compile priority, giving the bytes back for storing.
    async fn compile_off_workers(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Result<Component, DeployError>, Vec<u8>), DeployError> {
        let engine = self.engine.clone();
        let (component, bytes) =
            at_compile_priority(move || (compile(&engine, &bytes), bytes)).await?;
        Ok((component.map_err(DeployError::from), bytes))
    }

    /// Prepares a compiled version of `name` to serve, with as many warm instances as the
    /// running version holds.
    async fn start(
        &self,
        name: &str,
        component: &Component,
        info: VersionInfo,
    ) -> Result<Function, DeployError> {
        let scope = self.scope_of(name);
        let function = Function::new(&self.linker, self.env_for(&scope), component, info)?;
        function.warm_up_to(self.warm_instances_of(name)).await?;
        Ok(function)
    }

    /// Writes a version's files (with their fsyncs) on a blocking thread, off the async
    /// workers that serve connections; gives the component bytes back.
    pub(super) async fn store_off_worker(
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

    /// Loads a stored version, from its compiled code when that is still usable; says whether
    /// it had to be compiled again.
    pub(super) async fn load_version(
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
            self.catalog
                .store_compiled(name, version, &serialize(&component)?)?;
        }
        let function = self.start(name, &component, info).await?;
        Ok((function, recompiled))
    }

    /// Makes sure a version the cluster knows is stored on this node, fetching and compiling
    /// its component when it is not. Without a cluster there is nothing to fetch.
    pub(super) async fn fetch_version(&self, name: &str, version: u64) -> Result<(), DeployError> {
        let Some(cluster) = self.cluster() else {
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
        let (component, bytes) = self.compile_off_workers(bytes).await?;
        let compiled = serialize(&component?)?;
        self.store_off_worker(name, &info, bytes, compiled).await?;
        Ok(())
    }
}
