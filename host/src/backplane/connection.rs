//! One connection type for every shape of Redis deployment.
//!
//! Callers send commands and pipelines as to one server. Underneath, a single server gets one
//! multiplexed connection that reconnects by itself; a Redis Cluster gets a connection per
//! shard, each command going to the shard that owns its key (so a pipeline must keep to one
//! slot, see [`super::slots`]); a Sentinel-watched primary is looked up through the Sentinels,
//! asked again every second, and followed to its new address after a failover.

use std::sync::Arc;
use std::sync::Weak;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Client, Cmd, Pipeline, ProtocolVersion, RedisFuture, Value};
use tokio::sync::watch;

use super::address::{Address, AddressError};

/// How long opening one connection to a Redis server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the Sentinels are asked where the primary is.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Least time between two warnings that the Sentinels cannot be asked.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Why no connection to Redis could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("cannot connect to Redis at {address}: {source}")]
    Unreachable {
        address: String,
        source: redis::RedisError,
    },
    #[error("Redis at {0} did not answer within {CONNECT_TIMEOUT:?}")]
    Timeout(String),
}

/// Which shape the deployment turned out to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    One,
    Cluster,
    Sentinel,
}

/// A connection to the deployment; clones share it.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    One {
        connection: ConnectionManager,
        client: Client,
    },
    Cluster {
        connection: ClusterConnection,
        seeds: Arc<[String]>,
    },
    Sentinel(Arc<Followed>),
}

/// The primary a set of Sentinels names, followed across failovers.
struct Followed {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Primary>,
    /// Counts the moves of the primary; subscribers watch it to move with it.
    moves: watch::Sender<u64>,
    /// The Sentinels' own description, for messages.
    described: String,
}

#[derive(Clone)]
struct Primary {
    address: String,
    client: Client,
    connection: ConnectionManager,
}

/// Where a subscriber connects, as the deployment's shape requires.
pub(super) enum SubscribeTarget {
    One(Client),
    Cluster(Arc<[String]>),
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        // Callers bound each request themselves; a hidden shorter bound here would override
        // theirs.
        .set_response_timeout(None)
        .set_number_of_retries(2)
}

/// The same server, spoken to in RESP3 (which carries pub/sub messages as pushes).
pub(super) fn resp3(client: &Client) -> Result<Client, redis::RedisError> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings))
}

async fn bounded<T>(
    address: &str,
    request: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ConnectError> {
    tokio::time::timeout(CONNECT_TIMEOUT, request)
        .await
        .map_err(|_| ConnectError::Timeout(address.to_owned()))?
        .map_err(|source| ConnectError::Unreachable {
            address: address.to_owned(),
            source,
        })
}

impl RedisConnection {
    /// Connects to what `--redis` names (see [`Address::parse`]).
    pub async fn open(text: &str) -> Result<Self, ConnectError> {
        Self::connect(Address::parse(text)?).await
    }

    pub async fn connect(address: Address) -> Result<Self, ConnectError> {
        match address {
            Address::One(url) => {
                let client = Client::open(url.as_str()).map_err(|_| AddressError::NotAUrl)?;
                let described = client.get_connection_info().addr().to_string();
                if is_cluster_node(&client, &described).await? {
                    return Self::connect_cluster(vec![url]).await;
                }
                let connection = bounded(
                    &described,
                    ConnectionManager::new_with_config(client.clone(), manager_config()),
                )
                .await?;
                Ok(Self {
                    inner: Inner::One { connection, client },
                })
            }
            Address::Cluster(seeds) => Self::connect_cluster(seeds).await,
            Address::Sentinel { sentinels, service } => {
                let followed = Followed::connect(sentinels, service).await?;
                tokio::spawn(follow(Arc::downgrade(&followed)));
                Ok(Self {
                    inner: Inner::Sentinel(followed),
                })
            }
        }
    }

    async fn connect_cluster(seeds: Vec<String>) -> Result<Self, ConnectError> {
        let described = seeds
            .iter()
            .filter_map(|seed| Client::open(seed.as_str()).ok())
            .map(|client| client.get_connection_info().addr().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let client = ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(CONNECT_TIMEOUT)
            .retries(2)
            .build()
            .map_err(|source| ConnectError::Unreachable {
                address: described.clone(),
                source,
            })?;
        let connection = bounded(&described, client.get_async_connection()).await?;
        Ok(Self {
            inner: Inner::Cluster {
                connection,
                seeds: seeds.into(),
            },
        })
    }

    pub fn shape(&self) -> Shape {
        match self.inner {
            Inner::One { .. } => Shape::One,
            Inner::Cluster { .. } => Shape::Cluster,
            Inner::Sentinel(_) => Shape::Sentinel,
        }
    }

    /// Whether pipelines must keep to one slot and channels are sharded.
    pub fn is_cluster(&self) -> bool {
        self.shape() == Shape::Cluster
    }

    /// The command that publishes to a channel: sharded on a Redis Cluster, where a plain
    /// PUBLISH would be relayed to every shard.
    pub fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Changes each time a Sentinel failover moved the primary (always 0 otherwise): what the
    /// old primary took but had not replicated is lost, so holders of state write it again.
    pub fn moves(&self) -> Option<watch::Receiver<u64>> {
        match &self.inner {
            Inner::Sentinel(followed) => Some(followed.moves.subscribe()),
            _ => None,
        }
    }

    pub(super) fn subscribe_target(&self) -> SubscribeTarget {
        match &self.inner {
            Inner::One { client, .. } => SubscribeTarget::One(client.clone()),
            Inner::Cluster { seeds, .. } => SubscribeTarget::Cluster(seeds.clone()),
            Inner::Sentinel(followed) => {
                SubscribeTarget::One(followed.current.read().client.clone())
            }
        }
    }
}

/// Asks a server whether it is a node of a Redis Cluster. A server that refuses the question
/// (an ACL user without INFO, which is in the `@dangerous` category production setups often
/// deny) is taken for a single server: only a connection that fails is an error.
async fn is_cluster_node(client: &Client, described: &str) -> Result<bool, ConnectError> {
    let mut probe = bounded(described, client.get_multiplexed_async_connection()).await?;
    let info = tokio::time::timeout(
        CONNECT_TIMEOUT,
        redis::cmd("INFO")
            .arg("cluster")
            .query_async::<String>(&mut probe),
    )
    .await
    .map_err(|_| ConnectError::Timeout(described.to_owned()))?;
    match info {
        Ok(info) => Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1")),
        Err(error) if error.is_io_error() || error.is_connection_dropped() => {
            Err(ConnectError::Unreachable {
                address: described.to_owned(),
                source: error,
            })
        }
        Err(error) => {
            tracing::debug!("INFO refused ({error}); taking {described} for a single server");
            Ok(false)
        }
    }
}

impl Followed {
    async fn connect(sentinels: Vec<String>, service: String) -> Result<Arc<Self>, ConnectError> {
        let hosts: Vec<&str> = sentinels
            .iter()
            .map(|url| url.trim_start_matches("redis://").trim_end_matches('/'))
            .collect();
        let described = format!("{} (Sentinels of `{service}`)", hosts.join(","));
        let mut client =
            SentinelClient::build(sentinels, service, None, SentinelServerType::Master).map_err(
                |source| ConnectError::Unreachable {
                    address: described.clone(),
                    source,
                },
            )?;
        let found = bounded(&described, client.async_get_client()).await?;
        let primary = bounded(&described, open_primary(found)).await?;
        Ok(Arc::new(Self {
            sentinels: tokio::sync::Mutex::new(client),
            current: RwLock::new(primary),
            moves: watch::Sender::new(0),
            described,
        }))
    }

    fn connection(&self) -> ConnectionManager {
        self.current.read().connection.clone()
    }

    /// Asks the Sentinels where the primary is, and moves there if it moved.
    async fn check(&self) -> Result<(), ConnectError> {
        let mut sentinels = self.sentinels.lock().await;
        let client = bounded(&self.described, sentinels.async_get_client()).await?;
        drop(sentinels);
        let address = client.get_connection_info().addr().to_string();
        if address == self.current.read().address {
            return Ok(());
        }
        let primary = bounded(&address, open_primary(client)).await?;
        tracing::warn!(primary = %address, "the Sentinels name a new Redis primary (a failover); following it");
        *self.current.write() = primary;
        self.moves.send_modify(|moves| *moves += 1);
        Ok(())
    }
}

async fn open_primary(client: Client) -> redis::RedisResult<Primary> {
    let address = client.get_connection_info().addr().to_string();
    let connection = ConnectionManager::new_with_config(client.clone(), manager_config()).await?;
    Ok(Primary {
        address,
        client,
        connection,
    })
}

/// Asks the Sentinels every second while anyone holds the connection.
async fn follow(followed: Weak<Followed>) {
    let mut last_warning: Option<Instant> = None;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let Some(followed) = followed.upgrade() else {
            return;
        };
        if let Err(error) = followed.check().await
            && last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY)
        {
            last_warning = Some(Instant::now());
            tracing::warn!("cannot ask the Sentinels where the Redis primary is: {error}");
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::One { connection, .. } => connection.req_packed_command(cmd),
            Inner::Cluster { connection, .. } => connection.req_packed_command(cmd),
            Inner::Sentinel(followed) => {
                let mut connection = followed.connection();
                Box::pin(async move { connection.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::One { connection, .. } => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Inner::Cluster { connection, .. } => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Inner::Sentinel(followed) => {
                let mut connection = followed.connection();
                Box::pin(async move {
                    connection
                        .req_packed_commands(pipeline, offset, count)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::One { connection, .. } => connection.get_db(),
            Inner::Cluster { connection, .. } => connection.get_db(),
            Inner::Sentinel(followed) => followed.connection().get_db(),
        }
    }
}
