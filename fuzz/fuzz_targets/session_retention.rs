//! Structure-aware: a resumable session's outgoing side (`Outgoing::for_session`) driven by
//! sends (queued or written directly, as a group publish does), flushes, acknowledgements,
//! lost sockets and resumes, over real loopback sockets, against a model of what the client
//! must receive.
//!
//! Asserted (README, "Resumable sessions"): every message the host accepted reaches the
//! client exactly once and in order, across any number of lost sockets and resumes; a resume
//! starts with its own control frame, then replays what the client had not received; the
//! bytes held for the client are exactly those accepted and not acknowledged, and never more
//! than the retention limit (but for a single message); a send that would exceed it is
//! refused, one that fits is taken; acknowledgements and resumes that do not fit what was
//! sent are refused.
#![no_main]

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wsfn_fuzz::take_server_frame;
use wsfn_host::connections::{Outbound, Outgoing, Push, QueueError, ResumeError};

#[derive(Arbitrary, Debug)]
struct Input {
    /// The retention limit, 1 to 4096 bytes.
    retention: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A message of `len` bytes (at least its number), sent directly (a fan-out) or queued.
    Send {
        len: u8,
        binary: bool,
        direct: bool,
    },
    Flush,
    /// The client reads what has arrived.
    Read,
    /// The client acknowledges what it has received.
    Ack,
    /// An acknowledgement of this many messages fewer (stale) or more (beyond) than received.
    AckOff {
        more: bool,
        by: u8,
    },
    /// The socket is lost.
    Detach,
    /// A new socket resumes, saying it has received this many messages fewer or more than
    /// it has.
    Resume {
        off: i8,
    },
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});
static LISTENER: LazyLock<TcpListener> =
    LazyLock::new(|| TcpListener::bind("127.0.0.1:0").expect("a loopback listener"));

/// A loopback connection: the client's end, and the host's halves.
fn socket_pair() -> (TcpStream, OwnedReadHalf, OwnedWriteHalf) {
    let address = LISTENER.local_addr().expect("the listener's address");
    let client = TcpStream::connect(address).expect("connect over loopback");
    let (server, _) = LISTENER.accept().expect("accept over loopback");
    for socket in [client.as_raw_fd(), server.as_raw_fd()] {
        // Closed with a reset: thousands of sockets a second must not sit in TIME_WAIT.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a `linger` of the size given.
        unsafe {
            libc::setsockopt(
                socket,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    client.set_nonblocking(true).expect("non-blocking client");
    server.set_nonblocking(true).expect("non-blocking server");
    let server = tokio::net::TcpStream::from_std(server).expect("a tokio socket");
    // The runtime learns the socket is writable only from its reactor, as it does in the
    // host: until then every write would wait.
    RUNTIME
        .block_on(server.writable())
        .expect("a writable socket");
    let (read, write) = server.into_split();
    (client, read, write)
}

/// The client's side: what it has received, from which socket.
struct Client {
    socket: Option<(TcpStream, OwnedReadHalf)>,
    buffer: Vec<u8>,
    /// Numbers of the messages received, in order.
    received: Vec<u64>,
    /// A resume's control frame is expected first on the current socket.
    awaiting_hello: bool,
}

impl Client {
    fn read(&mut self, accepted: &[usize]) {
        let Some((socket, _)) = &mut self.socket else {
            return;
        };
        let mut chunk = [0u8; 4096];
        loop {
            match socket.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        while let Some(frame) = take_server_frame(&mut self.buffer) {
            assert!(frame.fin && !frame.rsv1);
            if self.awaiting_hello {
                assert_eq!(frame.opcode, 0x1, "a resume starts with its control frame");
                assert_eq!(frame.payload, b"r0", "the resume's own frame first");
                self.awaiting_hello = false;
                continue;
            }
            assert!(
                frame.opcode == 0x1 || frame.opcode == 0x2,
                "opcode {}",
                frame.opcode
            );
            let (&kind, body) = frame.payload.split_first().expect("a type byte");
            assert_eq!(kind, b'm', "a session message has its type byte");
            let number = message_number(body);
            let expected = self.received.len() as u64 + 1;
            assert_eq!(
                number, expected,
                "message {number} arrived when {expected} was due"
            );
            assert!(
                (number as usize) <= accepted.len(),
                "a message never accepted"
            );
            assert_eq!(
                body.len(),
                accepted[number as usize - 1],
                "message {number}'s length"
            );
            self.received.push(number);
        }
    }
}

/// A message's body: its number in decimal, padded with dots.
fn message(number: u64, len: u8) -> Bytes {
    let mut body = number.to_string().into_bytes();
    while body.len() < usize::from(len) {
        body.push(b'.');
    }
    Bytes::from(body)
}

fn message_number(body: &[u8]) -> u64 {
    let digits: Vec<u8> = body
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .expect("a message starts with its number")
}

fuzz_target!(|input: Input| {
    let _runtime = RUNTIME.enter();
    let retention = 1 + usize::from(input.retention % 4096);
    // The queue's own bound is above the retention limit, so only retention refuses.
    let outgoing = Outgoing::for_session(retention + 1024, retention);
    let (client_socket, read_half, write_half) = socket_pair();
    outgoing.attach(write_half, None);
    let mut client = Client {
        socket: Some((client_socket, read_half)),
        buffer: Vec::new(),
        received: Vec::new(),
        awaiting_hello: false,
    };
    // Lengths of the messages accepted, in order (message n is accepted[n - 1]).
    let mut accepted: Vec<usize> = Vec::new();
    let mut acknowledged: usize = 0;
    let held = |accepted: &[usize], acknowledged: usize| -> usize {
        accepted[acknowledged..].iter().sum()
    };
    for op in input.ops.iter().take(64) {
        match *op {
            Op::Send {
                len,
                binary,
                direct,
            } => {
                let number = accepted.len() as u64 + 1;
                let body = message(number, len);
                let size = body.len();
                let frame = if binary {
                    Outbound::Binary(body)
                } else {
                    Outbound::Text(body)
                };
                let before = held(&accepted, acknowledged);
                let result = outgoing.push(
                    frame,
                    Push {
                        drop_oldest: false,
                        direct,
                    },
                );
                if before > 0 && before + size > retention {
                    assert_eq!(
                        result,
                        Err(QueueError::Full),
                        "a send beyond the retention limit"
                    );
                } else {
                    assert_eq!(result, Ok(0), "a send within the retention limit refused");
                    accepted.push(size);
                }
            }
            Op::Flush => {
                outgoing.flush();
            }
            Op::Read => client.read(&accepted),
            Op::Ack => {
                let received = client.received.len();
                let freed = outgoing.acknowledge(received as u64);
                let expected: usize = accepted[acknowledged.min(received)..received].iter().sum();
                assert_eq!(freed, Ok(expected));
                acknowledged = acknowledged.max(received);
            }
            Op::AckOff { more, by } => {
                let received = client.received.len() as u64;
                if more {
                    let claimed = accepted.len() as u64 + 1 + u64::from(by);
                    assert!(matches!(
                        outgoing.acknowledge(claimed),
                        Err(ResumeError::BeyondSent { .. })
                    ));
                } else {
                    let claimed = received
                        .saturating_sub(u64::from(by))
                        .min(acknowledged as u64);
                    assert_eq!(
                        outgoing.acknowledge(claimed),
                        Ok(0),
                        "a stale acknowledgement"
                    );
                }
            }
            Op::Detach => {
                if outgoing.detach() {
                    client.socket = None;
                    client.buffer.clear();
                    client.awaiting_hello = false;
                }
            }
            Op::Resume { off } => {
                let received = client.received.len() as i64;
                let claimed = received + i64::from(off);
                let Ok(claimed) = u64::try_from(claimed) else {
                    continue;
                };
                // A client claiming messages it never had cannot be told from one that had
                // them, up to what was written: only a claim beyond every message accepted
                // is certainly wrong.
                if claimed > received as u64 && claimed as usize <= accepted.len() {
                    continue;
                }
                let detached = client.socket.is_none();
                let (socket, read_half, write_half) = socket_pair();
                let hello = Outbound::Control(Bytes::from_static(b"r0"));
                match outgoing.resume(write_half, None, claimed, hello) {
                    Ok(_) => {
                        assert!(detached, "a resume of a session that was not detached");
                        assert!(
                            claimed as usize >= acknowledged,
                            "a resume behind what was acknowledged"
                        );
                        assert!(
                            claimed as usize <= accepted.len(),
                            "a resume beyond what was sent"
                        );
                        // The client resumes from what it says it received.
                        client.received.truncate(claimed as usize);
                        acknowledged = acknowledged.max(claimed as usize);
                        client.socket = Some((socket, read_half));
                        client.buffer.clear();
                        client.awaiting_hello = true;
                    }
                    Err((error, _)) => {
                        let fits = detached
                            && claimed as usize >= acknowledged
                            && claimed <= received as u64;
                        assert!(!fits, "a resume that fits refused: {error}");
                    }
                }
            }
        }
        let now_held = outgoing.held_bytes();
        assert_eq!(
            now_held,
            held(&accepted, acknowledged),
            "bytes held for the client"
        );
        let largest = accepted[acknowledged..].iter().copied().max().unwrap_or(0);
        assert!(
            now_held <= retention.max(largest),
            "held {now_held} over the limit {retention}"
        );
    }
    // Attached at the end: everything accepted arrives, in order, exactly once.
    if client.socket.is_some() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.received.len() < accepted.len() && Instant::now() < deadline {
            outgoing.flush();
            // Lets the reactor see the socket writable again after the kernel's buffer filled.
            RUNTIME.block_on(tokio::time::sleep(Duration::from_millis(1)));
            client.read(&accepted);
        }
        assert_eq!(
            client.received.len(),
            accepted.len(),
            "messages never arrived"
        );
    }
    outgoing.end();
});
