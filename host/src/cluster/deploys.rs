//! Deployed components in Redis: the cluster's record of which code serves each function.
//!
//! The node that takes a deploy (or rollback, or removal) writes the new state here and then
//! announces the function's name; every node, on hearing it, reads the state back and makes
//! its own copy match (see `Host::sync_function`). Announcements carry no state, so a node
//! that missed some (while reconnecting) catches up by syncing everything.

use redis::AsyncCommands;

use super::codec::FunctionChanged;
use super::keys;
use super::{ClusterError, ClusterLink};
use crate::catalog::VersionInfo;

/// Hands out a version number above both the cluster's last one and `at_least`.
const NEXT_VERSION: &str = r"
local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if v < floor then
  redis.call('SET', KEYS[1], floor)
  v = floor
end
return v
";

impl ClusterLink {
    /// The number for a new version of `function`.
    pub async fn next_version(&self, function: &str, at_least: u64) -> Result<u64, ClusterError> {
        let mut redis = self.redis();
        self.bounded(
            redis::Script::new(NEXT_VERSION)
                .key(keys::last_version(function))
                .arg(at_least)
                .invoke_async(&mut redis),
        )
        .await
    }

    /// Stores a version's component and makes it current, then tells every node.
    pub async fn publish_version(
        &self,
        function: &str,
        info: &VersionInfo,
        component: &[u8],
    ) -> Result<(), ClusterError> {
        let meta =
            serde_json::to_string(info).map_err(|e| ClusterError::Malformed(e.to_string()))?;
        let mut redis = self.redis();
        // The name first: a reader that finds it before the version treats the function as
        // not deployed yet, never the reverse. The function's own keys share a slot, so they
        // are written at once.
        let () = self.bounded(redis.sadd(keys::FUNCTIONS, function)).await?;
        let () = self
            .bounded(
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(keys::component(function, info.version))
                    .arg(component)
                    .ignore()
                    .cmd("HSET")
                    .arg(keys::versions(function))
                    .arg(info.version)
                    .arg(meta)
                    .ignore()
                    .cmd("SET")
                    .arg(keys::current_version(function))
                    .arg(info.version)
                    .ignore()
                    .query_async(&mut redis),
            )
            .await?;
        self.announce(function).await
    }

    /// Makes an already stored version current, then tells every node.
    pub async fn set_current(&self, function: &str, version: u64) -> Result<(), ClusterError> {
        let mut redis = self.redis();
        let () = self
            .bounded(redis.set(keys::current_version(function), version))
            .await?;
        self.announce(function).await
    }

    /// Forgets a function and all its versions, then tells every node.
    pub async fn remove_function(&self, function: &str) -> Result<(), ClusterError> {
        let mut redis = self.redis();
        let versions: Vec<u64> = self.bounded(redis.hkeys(keys::versions(function))).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for version in versions {
            pipe.cmd("DEL")
                .arg(keys::component(function, version))
                .ignore();
        }
        pipe.cmd("DEL")
            .arg(keys::versions(function))
            .arg(keys::current_version(function))
            .ignore();
        let () = self.bounded(pipe.query_async(&mut redis)).await?;
        let () = self.bounded(redis.srem(keys::FUNCTIONS, function)).await?;
        self.announce(function).await
    }

    async fn announce(&self, function: &str) -> Result<(), ClusterError> {
        let message = FunctionChanged {
            origin: self.node,
            function: function.to_owned(),
        };
        let mut redis = self.redis();
        self.bounded(
            redis::cmd(self.redis.publish_command())
                .arg(keys::CONTROL_CHANNEL)
                .arg(message.encode())
                .query_async(&mut redis),
        )
        .await
    }

    /// The version a function serves in the cluster, if it is deployed.
    pub async fn current(&self, function: &str) -> Result<Option<VersionInfo>, ClusterError> {
        let mut redis = self.redis();
        let version: Option<u64> = self
            .bounded(redis.get(keys::current_version(function)))
            .await?;
        match version {
            Some(version) => self.version(function, version).await,
            None => Ok(None),
        }
    }

    /// The metadata of one stored version.
    pub async fn version(
        &self,
        function: &str,
        version: u64,
    ) -> Result<Option<VersionInfo>, ClusterError> {
        let mut redis = self.redis();
        let meta: Option<String> = self
            .bounded(redis.hget(keys::versions(function), version))
            .await?;
        meta.map(|m| serde_json::from_str(&m).map_err(|e| ClusterError::Malformed(e.to_string())))
            .transpose()
    }

    /// Every stored version of a function, oldest first.
    pub async fn versions(&self, function: &str) -> Result<Vec<VersionInfo>, ClusterError> {
        let mut redis = self.redis();
        let metas: Vec<String> = self.bounded(redis.hvals(keys::versions(function))).await?;
        let mut versions = metas
            .iter()
            .map(|m| serde_json::from_str(m).map_err(|e| ClusterError::Malformed(e.to_string())))
            .collect::<Result<Vec<VersionInfo>, _>>()?;
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    /// The component bytes of one stored version.
    pub async fn component(
        &self,
        function: &str,
        version: u64,
    ) -> Result<Option<Vec<u8>>, ClusterError> {
        let mut redis = self.redis();
        self.bounded(redis.get(keys::component(function, version)))
            .await
    }

    /// Names of the functions deployed to the cluster.
    pub async fn function_names(&self) -> Result<Vec<String>, ClusterError> {
        let mut redis = self.redis();
        let mut names: Vec<String> = self.bounded(redis.smembers(keys::FUNCTIONS)).await?;
        names.sort();
        Ok(names)
    }
}
