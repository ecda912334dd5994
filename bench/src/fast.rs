//! The fastwebsockets client: plain WebSocket with nothing in the way, for the modes that put
//! wsfn next to the raw and Node servers (whose numbers must stay comparable from run to
//! run), and for publishers and other connections whose cost is not what is measured.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use fastwebsockets::{Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed `ws://host:port/path?query` URL.
#[derive(Clone)]
pub struct Target {
    pub address: SocketAddr,
    pub host: String,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("`{url}` is not a ws:// URL"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = host.parse().with_context(|| {
        format!("`{host}` is not IP:PORT (benchmarks run on loopback addresses)")
    })?;
    Ok(Target {
        address,
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

/// Connects and performs the WebSocket handshake over a plain TCP stream.
pub async fn connect(target: &Target) -> Result<WebSocket<TcpStream>> {
    let mut stream = TcpStream::connect(target.address).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path,
        target.host,
        fastwebsockets::handshake::generate_key()
    );
    stream.write_all(request.as_bytes()).await?;
    // Read the response byte by byte up to its end, so no frame byte is consumed here.
    let mut response = Vec::with_capacity(256);
    while !response.ends_with(b"\r\n\r\n") {
        let byte = stream
            .read_u8()
            .await
            .context("connection closed during the handshake")?;
        response.push(byte);
        if response.len() > 16 * 1024 {
            bail!("handshake response too long");
        }
    }
    if !response.starts_with(b"HTTP/1.1 101") {
        let status = String::from_utf8_lossy(&response);
        bail!(
            "handshake refused: {}",
            status.lines().next().unwrap_or_default()
        );
    }
    let mut ws = WebSocket::after_handshake(stream, Role::Client);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    Ok(ws)
}

/// Opens `count` connections with at most `concurrency` handshakes at once.
pub async fn open_many(
    target: &Target,
    count: usize,
    concurrency: usize,
) -> Result<Vec<WebSocket<TcpStream>>> {
    let target = target.clone();
    crate::opening::open_many(count, concurrency, move |_| {
        let target = target.clone();
        async move { connect(&target).await }
    })
    .await
}
