//! A real Redis Cluster for one test: three primaries without replicas on free loopback
//! ports, every hash slot assigned, each node with its files in a directory of its own.
//! Killed when dropped.

use std::ffi::OsStr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Instant;

use super::redis::{cli, create_dir, free_ports, kill, start_server, try_cli};
use super::{POLL_INTERVAL, TestDir, WAIT};

/// Three is the fewest primaries `redis-cli --cluster create` accepts.
const PRIMARIES: usize = 3;

/// How long a node may be unreachable before the others flag it as failing: short, so a
/// cluster forms quickly; no node is ever stopped for long enough in these tests.
const NODE_TIMEOUT_MS: &str = "2000";

struct Node {
    child: Child,
    port: u16,
}

pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: Arc<TestDir>,
}

impl RedisCluster {
    /// Starts three primaries, joins them into one cluster that shares the 16384 slots, and
    /// returns once every node says the cluster is `ok`.
    pub fn start(dir: &Arc<TestDir>) -> Self {
        // A client port and a cluster bus port for each node: the bus would otherwise be on the
        // client port plus 10000, which may be taken or past the last port.
        let ports = free_ports(2 * PRIMARIES);
        let mut cluster = Self {
            nodes: Vec::new(),
            _dir: dir.clone(),
        };
        for pair in ports.chunks(2) {
            let (port, bus_port) = (pair[0], pair[1]);
            let data = dir.path().join(format!("redis-cluster-{port}"));
            create_dir(&data);
            let config_file = data.join("nodes.conf");
            let bus_port = bus_port.to_string();
            let child = start_server(
                port,
                &data,
                [
                    OsStr::new("--cluster-enabled"),
                    OsStr::new("yes"),
                    OsStr::new("--cluster-config-file"),
                    config_file.as_os_str(),
                    OsStr::new("--cluster-node-timeout"),
                    OsStr::new(NODE_TIMEOUT_MS),
                    OsStr::new("--cluster-port"),
                    OsStr::new(&bus_port),
                ],
            );
            // Pushed one by one, so a node that fails to start still has the others killed.
            cluster.nodes.push(Node { child, port });
        }
        cluster.create();
        cluster.await_state_ok();
        cluster
    }

    /// Assigns the slots to the nodes and makes them meet, with `redis-cli --cluster create`.
    fn create(&self) {
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("cannot run redis-cli");
        assert!(
            output.status.success(),
            "redis-cli --cluster create {addresses:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits until every node has learnt that every slot is served: `--cluster create`
    /// returns once the nodes agree on the configuration, but a node may not say `ok` yet.
    fn await_state_ok(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let infos: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|node| try_cli(node.port, &["CLUSTER", "INFO"]))
                .collect();
            let ok = |info: &Option<String>| {
                info.as_deref()
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            };
            if infos.iter().all(ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster on ports {:?} did not reach cluster_state:ok on every node \
                 within {WAIT:?}; CLUSTER INFO said: {infos:?}",
                self.ports()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The first node alone: a host told of one node finds the others by itself.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.nodes[0].port)
    }

    /// Every node, comma-separated, as seed nodes.
    pub fn seeds_url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}/", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Empties every primary: FLUSHALL on one node of a cluster only empties that node.
    pub fn flushall(&self) {
        for node in &self.nodes {
            assert_eq!(
                cli(node.port, &["FLUSHALL"]),
                "OK",
                "FLUSHALL on port {}",
                node.port
            );
        }
    }

    /// The process ids of the primaries, to pause and resume them (SIGSTOP, SIGCONT).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.child.id()).collect()
    }

    /// Runs a command with `redis-cli` against node `i` (0, 1 or 2) and returns what it
    /// printed. Redirections are followed (`redis-cli -c`), so a key command may be sent to
    /// any node.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        let node = self.nodes.get(i).unwrap_or_else(|| {
            panic!(
                "the cluster has nodes 0 to {}, not {i}",
                self.nodes.len() - 1
            )
        });
        let args: Vec<&str> = ["-c"].into_iter().chain(args.iter().copied()).collect();
        cli(node.port, &args)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            kill(&mut node.child);
        }
    }
}

#[test]
fn three_primaries_share_the_slots_and_flushall_empties_every_one() {
    let dir = TestDir::new();
    let cluster = RedisCluster::start(&dir);
    for i in 0..PRIMARIES {
        let info = cluster.cli(i, &["CLUSTER", "INFO"]);
        for expected in [
            "cluster_state:ok",
            "cluster_slots_assigned:16384",
            "cluster_known_nodes:3",
            "cluster_size:3",
        ] {
            assert!(info.contains(expected), "node {i} lacks {expected}: {info}");
        }
    }

    const KEYS: usize = 30;
    for k in 0..KEYS {
        assert_eq!(cluster.cli(0, &["SET", &format!("key-{k}"), "v"]), "OK");
    }
    let sizes = |cluster: &RedisCluster| -> Vec<usize> {
        (0..PRIMARIES)
            .map(|i| {
                let size = cluster.cli(i, &["DBSIZE"]);
                size.parse()
                    .unwrap_or_else(|error| panic!("DBSIZE said {size:?}: {error}"))
            })
            .collect()
    };
    let before = sizes(&cluster);
    assert_eq!(
        before.iter().sum::<usize>(),
        KEYS,
        "each key is on one node: {before:?}"
    );
    assert!(
        before.iter().all(|&size| size > 0),
        "the keys are spread over every primary, so a flush of one would not empty the rest: \
         {before:?}"
    );

    cluster.flushall();
    assert_eq!(sizes(&cluster), vec![0; PRIMARIES]);
    assert_eq!(cluster.pids().len(), PRIMARIES);
    assert_eq!(cluster.seeds_url().split(',').count(), PRIMARIES);
    assert!(cluster.seeds_url().starts_with(&cluster.url()));
}
