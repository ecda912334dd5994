//! A real Redis Sentinel setup for one test: a primary, one replica of it, and three
//! Sentinels that watch the primary under the name `wsfn` and promote the replica when the
//! primary dies. Every process is on a free loopback port with its files in a directory of
//! its own. Killed when dropped.

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::redis::{cli, create_dir, free_ports, kill, spawn_redis_server, start_server, try_cli};
use super::{POLL_INTERVAL, TestDir, WAIT};

/// The name the Sentinels know the primary by.
const SERVICE: &str = "wsfn";

const SENTINELS: usize = 3;

/// How long a failover may take before a test gives up on it. The Sentinels notice a dead
/// primary after `down-after-milliseconds` (1 s) and usually promote the replica a second or
/// two later, but a vote that fails is only retried after the failover timeout (5 s, twice
/// that between attempts): generous, so only a failover that never happens fails a test.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);

/// A `redis-server` holding data, the primary or the replica.
struct Server {
    child: Child,
    port: u16,
}

pub struct RedisSentinel {
    /// The primary it started with, then the replica.
    servers: Vec<Server>,
    sentinels: Vec<Server>,
    _dir: Arc<TestDir>,
}

/// The port of the server a Sentinel names as the current primary, `None` if it does not
/// answer.
fn primary_named_by(sentinel: u16) -> Option<u16> {
    let answer = try_cli(sentinel, &["SENTINEL", "get-master-addr-by-name", SERVICE])?;
    answer.lines().nth(1)?.trim().parse().ok()
}

/// Whether a flat `redis-cli` listing of field/value lines (as `SENTINEL replicas` and
/// `SENTINEL sentinels` print) has an entry whose `port` is `port`.
fn lists_port(listing: &str, port: u16) -> bool {
    let lines: Vec<&str> = listing.lines().map(str::trim).collect();
    let port = port.to_string();
    lines
        .windows(2)
        .any(|pair| pair[0] == "port" && pair[1] == port)
}

/// Writes the configuration of one Sentinel. A Sentinel rewrites its file with what it
/// learns, so each has a file of its own that it can write.
fn write_sentinel_config(path: &Path, port: u16, primary: u16, dir: &Path) {
    let config = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {SERVICE} 1000\n\
         sentinel failover-timeout {SERVICE} 5000\n\
         dir {:?}\n",
        dir.display().to_string()
    );
    std::fs::write(path, config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

impl RedisSentinel {
    /// Starts the primary, its replica and three Sentinels, and returns once the replica is
    /// in sync and every Sentinel knows the replica and the two other Sentinels (without
    /// which no failover could be voted).
    pub fn start(dir: &Arc<TestDir>) -> Self {
        let ports = free_ports(2 + SENTINELS);
        let (primary, replica) = (ports[0], ports[1]);
        let mut setup = Self {
            servers: Vec::new(),
            sentinels: Vec::new(),
            _dir: dir.clone(),
        };
        // Pushed one by one, so a process that fails to start still has the others killed.
        let data = dir.path().join(format!("redis-primary-{primary}"));
        create_dir(&data);
        setup.servers.push(Server {
            child: start_server(primary, &data, [] as [&str; 0]),
            port: primary,
        });
        let data = dir.path().join(format!("redis-replica-{replica}"));
        create_dir(&data);
        let primary_text = primary.to_string();
        setup.servers.push(Server {
            child: start_server(replica, &data, ["--replicaof", "127.0.0.1", &primary_text]),
            port: replica,
        });
        // A Sentinel finds the replicas in the primary's INFO, which it reads on connecting
        // and then only every 10 s: the replica is in sync first, so the first read lists it.
        setup.await_setup("the replica is in sync with the primary", || {
            try_cli(replica, &["INFO", "replication"])
                .is_some_and(|info| info.contains("master_link_status:up"))
        });

        for &port in &ports[2..] {
            let data = dir.path().join(format!("redis-sentinel-{port}"));
            create_dir(&data);
            let config = data.join("sentinel.conf");
            write_sentinel_config(&config, port, primary, &data);
            let child = spawn_redis_server(
                &format!("the Sentinel on port {port}"),
                &data,
                [config.as_os_str(), "--sentinel".as_ref()],
                // A Sentinel logs no "Ready to accept connections"; it announces what it
                // monitors once it listens.
                &format!("+monitor master {SERVICE}"),
            );
            setup.sentinels.push(Server { child, port });
        }
        let sentinels = &ports[2..];
        setup.await_setup(
            "every Sentinel knows the replica and the other Sentinels",
            || {
                sentinels.iter().all(|&sentinel| {
                    let replicas = try_cli(sentinel, &["SENTINEL", "replicas", SERVICE]);
                    let peers = try_cli(sentinel, &["SENTINEL", "sentinels", SERVICE]);
                    replicas.is_some_and(|r| lists_port(&r, replica))
                        && peers.is_some_and(|p| {
                            sentinels
                                .iter()
                                .filter(|&&other| other != sentinel)
                                .all(|&other| lists_port(&p, other))
                        })
                })
            },
        );
        setup
    }

    /// Polls `ready` for at most [`WAIT`] while the setup starts.
    fn await_setup(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "gave up after {WAIT:?} waiting until {what} (Redis on ports {:?}, Sentinels \
                 on ports {:?}; their logs are in the test's directory)",
                self.servers.iter().map(|s| s.port).collect::<Vec<_>>(),
                self.sentinels.iter().map(|s| s.port).collect::<Vec<_>>(),
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `redis+sentinel://` with every Sentinel, and the service name as the path.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", sentinels.join(","))
    }

    /// The port of the current primary, as the first Sentinel names it.
    pub fn primary_port(&self) -> u16 {
        let sentinel = self.sentinels[0].port;
        primary_named_by(sentinel).unwrap_or_else(|| {
            panic!("the Sentinel on port {sentinel} names no primary for {SERVICE}")
        })
    }

    /// Kills the current primary with SIGKILL, as a crash would, and returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port();
        let server = self
            .servers
            .iter_mut()
            .find(|server| server.port == port)
            .unwrap_or_else(|| panic!("the Sentinels name port {port}, which is no server here"));
        kill(&mut server.child);
        port
    }

    /// Waits until every Sentinel names another server than the one on `old_port` as the
    /// primary and that server has taken the role, and returns its port.
    pub async fn await_failover(&self, old_port: u16) -> u16 {
        let deadline = Instant::now() + FAILOVER_WAIT;
        loop {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|sentinel| primary_named_by(sentinel.port))
                .collect();
            if let Some(Some(new_port)) = named.first().copied()
                && new_port != old_port
                && named.iter().all(|&port| port == Some(new_port))
                && self.servers.iter().any(|server| server.port == new_port)
                && try_cli(new_port, &["INFO", "replication"])
                    .is_some_and(|info| info.contains("role:master"))
            {
                return new_port;
            }
            assert!(
                Instant::now() < deadline,
                "no failover within {FAILOVER_WAIT:?} after the primary on port {old_port} \
                 died: the Sentinels name the ports {named:?} (their logs are in the test's \
                 directory)"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Runs a command with `redis-cli` against the current primary and returns what it
    /// printed.
    pub fn cli_primary(&self, args: &[&str]) -> String {
        cli(self.primary_port(), args)
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        // The Sentinels first, so none of them starts a failover as the servers go.
        for process in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            kill(&mut process.child);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_primary_is_replaced_by_its_replica_with_the_data_it_had() {
    let dir = TestDir::new();
    let mut setup = RedisSentinel::start(&dir);
    assert!(setup.url().starts_with("redis+sentinel://127.0.0.1:"));
    assert!(setup.url().ends_with("/wsfn"));
    assert_eq!(setup.cli_primary(&["SET", "key", "before"]), "OK");
    // WAIT answers how many replicas acknowledged every write so far: the key is on the
    // replica before its primary dies.
    assert_eq!(setup.cli_primary(&["WAIT", "1", "10000"]), "1");

    let old = setup.kill_primary();
    let new = setup.await_failover(old).await;
    assert_ne!(new, old);
    assert_eq!(setup.primary_port(), new);
    assert_eq!(setup.cli_primary(&["GET", "key"]), "before");
    assert_eq!(
        setup.cli_primary(&["SET", "key", "after"]),
        "OK",
        "the promoted replica takes writes"
    );
}
