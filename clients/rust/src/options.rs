//! What a [`Session`](crate::Session) connects to and how it behaves: built with chained
//! methods from [`Options::new`], every setting with a default that suits a program talking to
//! a host over a real network.

use std::time::Duration;

use crate::{Reconnect, Traffic};

/// How to connect, and what to do when a socket is lost.
///
/// ```
/// use std::time::Duration;
/// use wsfn_client::{Options, Reconnect};
///
/// let options = Options::with_urls(["ws://node-a:8080/chat?room=1", "ws://node-b:8080/chat?room=1"])
///     .reconnect(Reconnect::default().initial_delay(Duration::from_millis(50)))
///     .protocol("chat.v1");
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) urls: Vec<String>,
    pub(crate) session: bool,
    pub(crate) reconnect: Reconnect,
    pub(crate) protocols: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) event_buffer: usize,
    pub(crate) deflate: bool,
    pub(crate) deflate_threshold: usize,
    pub(crate) max_message_size: usize,
    pub(crate) traffic: Option<Traffic>,
}

impl Options {
    /// Connect to one WebSocket URL (`ws://host:port/function?query`).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_urls([url])
    }

    /// Connect to several URLs serving the same function (the nodes of a cluster): the first
    /// connection goes to the first URL, and each later attempt to the next one, round.
    pub fn with_urls(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            session: true,
            reconnect: Reconnect::default(),
            protocols: Vec::new(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            ping: Some(Duration::from_secs(20)),
            close_timeout: Duration::from_secs(5),
            event_buffer: 256,
            deflate: true,
            deflate_threshold: 128,
            max_message_size: 64 << 20,
            traffic: None,
        }
    }

    /// A plain WebSocket, without a resumable session: messages go as they are, and a
    /// reconnect is a new connection, reported as [`Event::Reset`](crate::Event::Reset).
    pub fn plain(mut self) -> Self {
        self.session = false;
        self
    }

    /// How to reconnect after a socket is lost (default: [`Reconnect::default`]).
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call again to offer several. Offered
    /// on every connection, so a resume confirms the one the function chose.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds a header to every handshake, such as `Origin` or `Authorization`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The longest a connection attempt may take: the TCP connection, the handshake and the
    /// host's first session frame (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Pings the host every `interval` and counts a socket on which nothing at all arrived
    /// for two intervals as lost (default 20 s); `None` sends no pings.
    pub fn ping(mut self, interval: Option<Duration>) -> Self {
        self.ping = interval;
        self
    }

    /// How long a close may take, including resuming a lost socket to deliver it, before the
    /// client gives up and reports the session closed (default 5 s).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How many events may wait for [`Session::next_event`](crate::Session::next_event)
    /// (default 256). When they are not read, the client stops reading its socket, so the
    /// host holds what follows instead.
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Whether to offer permessage-deflate (default: yes). When the host accepts, messages of
    /// at least [`deflate_threshold`](Self::deflate_threshold) bytes go compressed, and the
    /// host's compressed messages are inflated.
    pub fn deflate(mut self, offer: bool) -> Self {
        self.deflate = offer;
        self
    }

    /// The smallest message compressed when deflate was agreed (default 128 bytes): shorter
    /// ones gain too little to be worth the work.
    pub fn deflate_threshold(mut self, bytes: usize) -> Self {
        self.deflate_threshold = bytes;
        self
    }

    /// The longest message accepted from the host, after inflating (default 64 MiB). A longer
    /// one fails the connection with 1009, and a compressed one is refused as soon as it
    /// inflates past the limit.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Counts the bytes this session's sockets write and read into `traffic`.
    pub fn traffic(mut self, traffic: Traffic) -> Self {
        self.traffic = Some(traffic);
        self
    }
}
