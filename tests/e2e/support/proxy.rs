//! A loopback TCP proxy in front of the host that a test can cut: every connection through it
//! is forwarded byte for byte until a cut ends it abruptly on both sides (a reset, no close
//! frame, bytes in flight lost), as a network drop or a recycling load balancer would. While
//! refusing, it drops new connections as soon as they arrive.
//!
//! A proxy rather than killing client sockets, so a client under test loses its connection
//! the way it would in the field, in the middle of anything, without knowing in advance.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the accepting task and the forwarding tasks share with the test.
struct Shared {
    /// Where connections go: each new one to the next, in turn.
    targets: std::sync::Mutex<Vec<SocketAddr>>,
    next_target: AtomicUsize,
    /// Bumped by each cut; every forwarding task watches it.
    cuts: watch::Sender<u64>,
    refusing: AtomicBool,
    /// Connections being forwarded now.
    open: AtomicUsize,
    /// Cuts that found at least one connection to end.
    effective_cuts: AtomicU64,
}

/// A running proxy; stops accepting when the last clone is dropped.
#[derive(Clone)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _accepting: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Cuts at random intervals until dropped.
pub struct RandomCuts {
    _cutting: AbortOnDrop,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_alternating(&[target]).await
    }

    /// Listens on a free loopback port and forwards each new connection to the next of
    /// `targets` in turn, as a load balancer spreading reconnects over nodes would.
    pub async fn start_alternating(targets: &[SocketAddr]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy can bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared {
            targets: std::sync::Mutex::new(targets.to_vec()),
            next_target: AtomicUsize::new(0),
            cuts: watch::channel(0).0,
            refusing: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            effective_cuts: AtomicU64::new(0),
        });
        let accepting = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Self {
            addr,
            shared,
            _accepting: Arc::new(AbortOnDrop(accepting)),
        }
    }

    /// The WebSocket URL of `path_and_query` through the proxy.
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "ws://{}/{}",
            self.addr,
            path_and_query.trim_start_matches('/')
        )
    }

    /// Sends new connections to `targets` from now on (nodes that stopped or started).
    pub fn retarget(&self, targets: &[SocketAddr]) {
        assert!(!targets.is_empty(), "a proxy needs somewhere to forward to");
        *self
            .shared
            .targets
            .lock()
            .expect("no test panics holding the targets") = targets.to_vec();
    }

    /// Ends every connection open now, abruptly.
    pub fn cut(&self) {
        if self.shared.open.load(Ordering::SeqCst) > 0 {
            self.shared.effective_cuts.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.cuts.send_modify(|generation| *generation += 1);
    }

    /// While `true`, new connections are dropped as soon as they are accepted.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// How many cuts so far ended at least one connection.
    pub fn effective_cuts(&self) -> u64 {
        self.shared.effective_cuts.load(Ordering::SeqCst)
    }

    /// Cuts every `interval_ms` (drawn anew each time from the range, by a generator seeded
    /// with `seed`) until the returned value is dropped.
    pub fn cut_randomly(&self, seed: u64, interval_ms: RangeInclusive<u64>) -> RandomCuts {
        let proxy = self.clone();
        let cutting = tokio::spawn(async move {
            let mut random = fastrand::Rng::with_seed(seed);
            loop {
                let pause = random.u64(interval_ms.clone());
                tokio::time::sleep(Duration::from_millis(pause)).await;
                proxy.cut();
            }
        });
        RandomCuts {
            _cutting: AbortOnDrop(cutting),
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        if shared.refusing.load(Ordering::SeqCst) {
            abort(&client);
            continue;
        }
        tokio::spawn(forward(client, Arc::clone(&shared)));
    }
}

/// Forwards one connection until either side closes or a cut comes.
async fn forward(mut client: TcpStream, shared: Arc<Shared>) {
    let mut cuts = shared.cuts.subscribe();
    cuts.borrow_and_update();
    let turn = shared.next_target.fetch_add(1, Ordering::SeqCst);
    let target = {
        let targets = shared
            .targets
            .lock()
            .expect("no test panics holding the targets");
        targets[turn % targets.len()]
    };
    let Ok(mut host) = TcpStream::connect(target).await else {
        abort(&client);
        return;
    };
    shared.open.fetch_add(1, Ordering::SeqCst);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut host) => {}
        _ = cuts.changed() => {
            abort(&client);
            abort(&host);
        }
    }
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

/// Makes dropping `stream` reset the connection instead of closing it in order.
fn abort(stream: &TcpStream) {
    // Without it the drop still ends the connection, only politely.
    let _ = stream.set_zero_linger();
}
