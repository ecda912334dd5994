//! Guest stdout and stderr, turned into host log lines tagged with function and connection.
//!
//! Guests print with ordinary `println!`; each complete line becomes one `tracing` event, so an
//! operator sees which function and which connection said what, and goes to the function's
//! live log for those following it. Partial lines are held until
//! their newline, up to a bound, so a guest cannot make the host buffer without limit.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::connections::ConnectionId;
use crate::connections::FunctionScope;
use crate::observe::LogEvent;

/// Longest line kept before it is logged anyway.
const MAX_LINE: usize = 16 * 1024;

/// Who is printing: the function, and the connection whose event is running.
#[derive(Debug)]
pub struct LogSource {
    pub scope: Arc<FunctionScope>,
    pub connection: Mutex<Option<ConnectionId>>,
}

#[derive(Clone, Copy, Debug)]
pub enum StreamName {
    Stdout,
    Stderr,
}

/// A guest output stream (stdout or stderr) that logs lines.
#[derive(Clone)]
pub struct GuestLog {
    source: Arc<LogSource>,
    stream: StreamName,
}

impl GuestLog {
    pub fn new(source: Arc<LogSource>, stream: StreamName) -> Self {
        Self { source, stream }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            pending: Vec::new(),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Splits what a guest writes into lines and logs each one.
struct LineWriter {
    log: GuestLog,
    pending: Vec<u8>,
}

impl LineWriter {
    fn write_bytes(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&bytes[..end]);
            self.emit();
            bytes = &bytes[end + 1..];
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= MAX_LINE {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending);
        let line = line.trim_end_matches('\r');
        let source = &self.log.source;
        let connection = *source.connection.lock();
        let function = &source.scope.name;
        source.scope.logs.publish(|| {
            let connection = connection.map(|c| c.to_string());
            let text = line.to_owned();
            match self.log.stream {
                StreamName::Stdout => LogEvent::Stdout { connection, text },
                StreamName::Stderr => LogEvent::Stderr { connection, text },
            }
        });
        let connection = connection.map(|c| c.to_string()).unwrap_or_default();
        match self.log.stream {
            StreamName::Stdout => {
                tracing::info!(target: "guest", %function, %connection, stream = "stdout", "{line}")
            }
            StreamName::Stderr => {
                tracing::warn!(target: "guest", %function, %connection, stream = "stderr", "{line}")
            }
        }
        self.pending.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
