//! A plain fastwebsockets echo server with no WebAssembly: the ceiling wsfn is compared with.
//!
//! Same runtime, same HTTP stack and same WebSocket library as `wsfn-host`, minus the function
//! runtime, so the gap between the two is what running a sandboxed function per message costs.
//!
//! It also does the least a group broadcast can do, for the same comparison: connections to
//! `/group` are members; every data frame sent on `/publish` is written to every member at
//! once, encoded once, one non-blocking write per member from the publisher's own task (no
//! queue, no task woken per member).

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use anyhow::Result;
use fastwebsockets::{FragmentCollector, Frame, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The sockets of the `/group` connections (nothing is read from them).
static MEMBERS: LazyLock<Mutex<Vec<Arc<TcpStream>>>> = LazyLock::new(|| Mutex::new(Vec::new()));

async fn join_group(socket: upgrade::UpgradeFut) -> Result<()> {
    let upgraded = socket.await?.into_inner();
    let stream = match upgraded.into_inner().downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => parts.io.into_inner(),
        Err(_) => anyhow::bail!("the upgraded connection is not a TCP stream"),
    };
    let stream = Arc::new(stream);
    MEMBERS.lock().await.push(stream.clone());
    // Reads only to notice the member leaving, then forgets its socket.
    let mut discard = [0u8; 256];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut discard) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    MEMBERS
        .lock()
        .await
        .retain(|member| !Arc::ptr_eq(member, &stream));
    Ok(())
}

/// Writes without waiting while the socket takes it, which for a small frame is always.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes each data frame received to every member.
async fn publish(socket: upgrade::UpgradeFut) -> Result<()> {
    let mut ws = FragmentCollector::new(socket.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => {
                // Encoded once, by the library, as any of its servers would send it.
                let mut buffer = Vec::new();
                let encoded =
                    Frame::new(true, frame.opcode, None, frame.payload).write(&mut buffer);
                for member in MEMBERS.lock().await.iter() {
                    write_all(member, encoded).await?;
                }
            }
            _ => {}
        }
    }
}

async fn echo(socket: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(socket.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn handle(mut request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let path = request.uri().path().to_owned();
    let (response, socket) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        let _ = match path.as_str() {
            "/group" => join_group(socket).await,
            "/publish" => publish(socket).await,
            _ => echo(socket).await.map_err(Into::into),
        };
    });
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<()> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into())
        .parse()?;
    let listener = TcpListener::bind(address).await?;
    println!("raw-echo listening on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .with_upgrades();
            let _ = connection.await;
        });
    }
}
