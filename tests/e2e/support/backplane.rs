//! The Redis that hosts of one test share: a single `redis-server`, or a Redis Cluster. The
//! tests of what hosts do together run on both, from one body.

use std::sync::Arc;

use super::{RedisCluster, RedisServer, TestDir};

/// Which Redis the hosts of a test share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backplane {
    /// One `redis-server`.
    OneRedis,
    /// A Redis Cluster of three primaries (see [`RedisCluster`]).
    RedisCluster,
}

impl Backplane {
    /// Starts the Redis of this kind, with its files in `dir`.
    pub fn start(self, dir: &Arc<TestDir>) -> SharedRedis {
        match self {
            Self::OneRedis => SharedRedis::One(RedisServer::start(dir)),
            Self::RedisCluster => SharedRedis::Cluster(RedisCluster::start(dir)),
        }
    }
}

/// A running [`Backplane`].
pub enum SharedRedis {
    One(RedisServer),
    Cluster(RedisCluster),
}

impl SharedRedis {
    /// The `--redis` of the `host`-th host of a test (counting from 0). On a cluster, hosts
    /// take turns between the two ways of naming it, so every test has hosts that found the
    /// cluster from one node and hosts that were given every node as seeds.
    pub fn url_for_host(&self, host: usize) -> String {
        match self {
            Self::One(redis) => redis.url(),
            Self::Cluster(cluster) if host.is_multiple_of(2) => cluster.url(),
            Self::Cluster(cluster) => cluster.seeds_url(),
        }
    }

    /// Empties the whole Redis: every primary of a cluster.
    pub fn flushall(&self) {
        match self {
            Self::One(redis) => assert_eq!(redis.cli(&["FLUSHALL"]), "OK"),
            Self::Cluster(cluster) => cluster.flushall(),
        }
    }

    /// Runs a command with `redis-cli` (on a cluster, following redirects to the key's shard)
    /// and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        match self {
            Self::One(redis) => redis.cli(args),
            Self::Cluster(cluster) => cluster.cli(0, args),
        }
    }

    /// The process id of every server holding data, to pause them all (SIGSTOP) as an
    /// outage of the whole Redis would.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Self::One(redis) => vec![redis.pid()],
            Self::Cluster(cluster) => cluster.pids(),
        }
    }
}

/// Generates two modules of `#[tokio::test]`s, `on_one_redis` and `on_a_redis_cluster`, that
/// call the test bodies `async fn NAME(backplane: Backplane)` of the invoking module with that
/// [`Backplane`]. Test names read `cluster::on_a_redis_cluster::NAME`.
macro_rules! on_every_backplane {
    ($($test:ident),+ $(,)?) => {
        $crate::support::on_every_backplane!(
            @backplane on_one_redis, $crate::support::Backplane::OneRedis; $($test),+
        );
        $crate::support::on_every_backplane!(
            @backplane on_a_redis_cluster, $crate::support::Backplane::RedisCluster; $($test),+
        );
    };
    (@backplane $module:ident, $backplane:expr; $($test:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    super::$test($backplane).await
                }
            )+
        }
    };
}

pub(crate) use on_every_backplane;
