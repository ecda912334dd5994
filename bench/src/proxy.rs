//! A loopback TCP proxy that can cut every connection through it at once, as a network drop
//! does: both of its sockets of each pair are reset (zero linger), so the client and the
//! server each see their connection die without a close handshake. It keeps accepting after a
//! cut, so clients can reconnect through it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::AbortHandle;

/// Connections queued for accept: a resume storm connects thousands at once, and the
/// default backlog would turn part of it into SYN retransmits a second later.
const BACKLOG: u32 = 8192;

/// Bytes each direction of a pair buffers.
const BUFFER: usize = 4096;

pub struct CuttingProxy {
    address: SocketAddr,
    /// The copying tasks of the pairs accepted since the last cut.
    pairs: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl CuttingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind("127.0.0.1:0".parse()?)?;
        let listener = socket.listen(BACKLOG)?;
        let address = listener.local_addr()?;
        let pairs = Arc::new(Mutex::new(Vec::new()));
        let accepted = pairs.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let pair = tokio::spawn(forward(client, upstream));
                let mut pairs = accepted.lock().unwrap_or_else(PoisonError::into_inner);
                pairs.push(pair.abort_handle());
            }
        });
        Ok(Self {
            address,
            pairs,
            accepting: accepting.abort_handle(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every connection through the proxy; returns how many were open.
    pub fn cut(&self) -> usize {
        let pairs = std::mem::take(&mut *self.pairs.lock().unwrap_or_else(PoisonError::into_inner));
        let mut open = 0;
        for pair in pairs {
            if !pair.is_finished() {
                open += 1;
            }
            // Dropping the task drops its two sockets, which reset their connections.
            pair.abort();
        }
        open
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    for socket in [&client, &server] {
        // A drop resets the connection instead of closing it in order.
        let _ = socket.set_zero_linger();
        let _ = socket.set_nodelay(true);
    }
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUFFER, BUFFER).await;
}
