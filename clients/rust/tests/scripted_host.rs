//! The client against a host scripted frame by frame over loopback, for what a real wsfn host
//! cannot be made to do on purpose: break the protocol, drop a socket at an exact point, or
//! show exactly which frames the client sends. Everything the real host can show is tested
//! end to end in the repository's `tests/e2e`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsfn_client::{Error, Event, Options, Reconnect, Session};

/// Bounds every wait, so a broken client fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

const ID: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "fedcba9876543210fedcba9876543210";

type Peer = WebSocketStream<TcpStream>;

/// A listener the test accepts client connections from, one at a time.
struct ScriptedHost {
    listener: TcpListener,
}

impl ScriptedHost {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        Self { listener }
    }

    fn options(&self) -> Options {
        let addr = self.listener.local_addr().expect("a bound address");
        Options::new(format!("ws://{addr}/fn"))
            .reconnect(Reconnect::default().initial_delay(Duration::from_millis(1)))
            .ping(None)
    }

    /// Accepts the next connection and returns it with the path and query it asked for.
    // The handshake callback's error type is tungstenite's own, large as it is.
    #[allow(clippy::result_large_err)]
    async fn accept(&self) -> (Peer, String) {
        let (stream, _) = within(self.listener.accept()).await.expect("a connection");
        let mut target = String::new();
        let peer = tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response| {
            target = request.uri().to_string();
            Ok::<Response, _>(response)
        });
        let peer = within(peer).await.expect("a WebSocket handshake");
        (peer, target)
    }

    /// Accepts a new session and starts it.
    async fn accept_session(&self) -> Peer {
        let (mut peer, target) = self.accept().await;
        assert_eq!(target, "/fn?wsfn-session=1", "a client asks for a session");
        send(&mut peer, &format!("s{ID} {SECRET}")).await;
        peer
    }
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("the client acted within the bound")
}

async fn send(peer: &mut Peer, text: &str) {
    within(peer.send(Message::text(text)))
        .await
        .expect("writing to the client");
}

/// The next text frame from the client.
async fn receive(peer: &mut Peer) -> String {
    loop {
        match within(peer.next()).await {
            Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame from the client, got {other:?}"),
        }
    }
}

async fn connect(options: Options) -> Session {
    within(Session::connect(options))
        .await
        .expect("the client connects")
}

async fn next_event(session: &mut Session) -> Event {
    within(session.next_event())
        .await
        .expect("the session is open")
}

#[tokio::test]
async fn acknowledges_at_least_every_32_messages_and_the_rest_soon_after() {
    const SENT: u64 = 70;
    let host = ScriptedHost::start().await;
    let (accepted, mut session) = tokio::join!(host.accept_session(), connect(host.options()));
    let mut peer = accepted;
    for n in 1..=SENT {
        send(&mut peer, &format!("m{n}")).await;
    }
    for n in 1..=SENT {
        assert_eq!(next_event(&mut session).await, Event::Text(n.to_string()));
    }
    let mut acknowledged = 0;
    while acknowledged < SENT {
        let frame = receive(&mut peer).await;
        let count: u64 = frame
            .strip_prefix('a')
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("only acknowledgements were due, got {frame:?}"));
        assert!(
            count > acknowledged && count - acknowledged <= 32,
            "after a{acknowledged} came {frame}: at most 32 messages go unacknowledged"
        );
        acknowledged = count;
    }
    assert_eq!(acknowledged, SENT);
}

#[tokio::test]
async fn a_confirmation_of_more_than_was_sent_ends_the_session_with_1002() {
    let host = ScriptedHost::start().await;
    let (accepted, mut session) = tokio::join!(host.accept_session(), connect(host.options()));
    let mut peer = accepted;
    session.send_text("one").expect("open");
    assert_eq!(receive(&mut peer).await, "mone");
    send(&mut peer, "a2").await;

    match within(peer.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Protocol),
        other => panic!("the client should close with 1002, got {other:?}"),
    }
    let Event::Closed { code, reason } = next_event(&mut session).await else {
        panic!("the session is over");
    };
    assert_eq!(code, 1002, "{reason}");
}

#[tokio::test]
async fn a_resume_sends_again_what_the_host_had_not_handled_and_counts_what_arrived() {
    let host = ScriptedHost::start().await;
    let (accepted, mut session) = tokio::join!(host.accept_session(), connect(host.options()));
    let mut peer = accepted;
    send(&mut peer, "mfirst").await;
    assert_eq!(next_event(&mut session).await, Event::Text("first".into()));
    for text in ["one", "two", "three"] {
        session.send_text(text).expect("open");
        assert_eq!(receive(&mut peer).await, format!("m{text}"));
    }
    // The socket drops without a close; the host had handled only the first message.
    drop(peer);

    let (mut peer, target) = host.accept().await;
    assert_eq!(target, format!("/fn?wsfn-session=1&wsfn-resume={ID}"));
    assert_eq!(receive(&mut peer).await, format!("r{SECRET} 1"));
    send(&mut peer, "r1").await;
    assert_eq!(receive(&mut peer).await, "mtwo");
    assert_eq!(receive(&mut peer).await, "mthree");
    assert_eq!(next_event(&mut session).await, Event::Resumed { resent: 2 });
    send(&mut peer, "msecond").await;
    assert_eq!(next_event(&mut session).await, Event::Text("second".into()));
}

#[tokio::test]
async fn a_host_that_does_not_start_a_session_is_refused() {
    let host = ScriptedHost::start().await;
    let accepting = async {
        let (mut peer, _) = host.accept().await;
        send(&mut peer, "hello").await;
        peer
    };
    let (_peer, connected) = tokio::join!(accepting, Session::connect(host.options()));
    match connected {
        Err(Error::Protocol { detail, .. }) => assert!(detail.contains("unknown type"), "{detail}"),
        Err(other) => panic!("expected a protocol error, got {other}"),
        Ok(_) => panic!("a host that does not start a session cannot be talked to"),
    }
}

#[tokio::test]
async fn a_dropped_socket_ends_without_a_close_and_the_session_resumes_on_a_new_one() {
    let host = ScriptedHost::start().await;
    let (accepted, mut session) = tokio::join!(host.accept_session(), connect(host.options()));
    let mut peer = accepted;
    send(&mut peer, "mbefore").await;
    assert_eq!(next_event(&mut session).await, Event::Text("before".into()));

    session.drop_socket().expect("open");
    loop {
        match within(peer.next()).await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Text(text))) if text.starts_with('a') => {}
            Some(Ok(other)) => panic!("the socket should end without a close, got {other:?}"),
            Some(Err(_)) | None => break,
        }
    }
    let (mut peer, target) = host.accept().await;
    assert_eq!(target, format!("/fn?wsfn-session=1&wsfn-resume={ID}"));
    assert_eq!(receive(&mut peer).await, format!("r{SECRET} 1"));
    send(&mut peer, "r0").await;
    assert_eq!(next_event(&mut session).await, Event::Resumed { resent: 0 });
    send(&mut peer, "mafter").await;
    assert_eq!(next_event(&mut session).await, Event::Text("after".into()));
}
