//! What the Rust client does when continuity cannot be kept or the host ends the session: a
//! resume after the window or at another function is refused and the client starts a new
//! session, reporting [`Event::Reset`]; a forged resume by someone else leaves the client's
//! session alone; a close by the host is final; a plain socket reconnects with a reset.

use wsfn_client::{Event, Options, Refusal, ResetReason, Session};

use crate::session_resume::fast_options;
use crate::support::{Host, LogStream, Proxy, within};

async fn connect(options: Options) -> Session {
    within(
        "the client to connect",
        Session::connect(fast_options(options)),
    )
    .await
    .unwrap_or_else(|error| panic!("the client could not connect: {error}"))
}

async fn next_event(session: &mut Session) -> Event {
    within("the client's next event", session.next_event())
        .await
        .expect("the session is still open")
}

/// Sends `text` to an echo function and expects it back as the next event.
async fn assert_echoes(session: &mut Session, text: &str) {
    session.send_text(text).expect("the session is open");
    assert_eq!(next_event(session).await, Event::Text(text.to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_after_the_window_is_refused_and_the_client_starts_a_new_session() {
    let host = Host::builder()
        .function("echo")
        .option("--resume-window", "500ms")
        .start()
        .await;
    let mut log = LogStream::open(&host.admin(), "echo").await;
    let proxy = Proxy::start(host.addr()).await;
    let mut session = connect(Options::new(proxy.url("echo"))).await;
    let first = session.id().expect("a session id");
    assert_echoes(&mut session, "before").await;

    // The client keeps trying while the proxy turns it away, until the window has passed.
    proxy.refuse(true);
    proxy.cut();
    let expired = log
        .until("the first session to expire", |line| {
            line["kind"] == "close" && line["connection"] == first.as_str()
        })
        .await;
    assert_eq!(expired["code"], 1006, "{expired}");
    session.send_text("sent while away").expect("still open");
    proxy.refuse(false);

    let Event::Reset { reason, id } = next_event(&mut session).await else {
        panic!("continuity was lost, so the client reports a reset");
    };
    assert_eq!(reason, ResetReason::Refused(Refusal::Unknown));
    let second = id.expect("the new session's id");
    assert_ne!(second, first, "a new session");
    assert_eq!(session.id(), Some(second));
    // Written to no socket before the reset, it goes to the new session.
    assert_eq!(
        next_event(&mut session).await,
        Event::Text("sent while away".to_owned())
    );
    assert_echoes(&mut session, "after").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_resume_is_refused_and_the_session_goes_on_untouched() {
    let host = Host::builder().function("echo").start().await;
    let mut session = connect(Options::new(host.url("echo"))).await;
    let id = session.id().expect("a session id");
    assert_echoes(&mut session, "one").await;

    let mut forger = host
        .connect(&format!("echo?wsfn-session=1&wsfn-resume={id}"))
        .await;
    forger.send_text(&format!("r{} 1", "5".repeat(32))).await;
    assert_eq!(forger.receive_text().await, "xsecret");
    assert_eq!(forger.expect_close().await.code, 1008);

    // Nothing happened to the session: no resume, no reset, the same id, messages flow.
    assert_echoes(&mut session, "two").await;
    assert_eq!(session.id(), Some(id.clone()));
    let listed = host.admin().connections("echo").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["session"]["state"], "attached", "{listed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_at_another_function_is_refused_and_the_client_starts_anew() {
    let host = Host::builder()
        .function("echo")
        .function("lifecycle")
        .start()
        .await;
    let proxy = Proxy::start(host.addr()).await;
    // The first connection goes to echo, the next attempt to lifecycle, then echo again.
    let urls = [proxy.url("echo"), proxy.url("lifecycle")];
    let mut session = connect(Options::with_urls(urls)).await;
    let first = session.id().expect("a session id");
    assert_echoes(&mut session, "at echo").await;

    proxy.cut();
    let Event::Reset { reason, id } = next_event(&mut session).await else {
        panic!("a resume at another function cannot continue the session");
    };
    assert_eq!(reason, ResetReason::Refused(Refusal::Function));
    assert_ne!(id.as_deref(), Some(first.as_str()), "a new session");
    assert_echoes(&mut session, "at echo again").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_by_the_host_ends_the_session_for_good() {
    let host = Host::builder().function("echo").start().await;
    let mut session = connect(Options::new(host.url("echo"))).await;
    let id = session.id().expect("a session id");
    assert_echoes(&mut session, "hello").await;

    host.admin()
        .delete(&format!("/v1/connections/{id}?code=4000&reason=bye"))
        .await
        .expect_status(202);
    assert_eq!(
        next_event(&mut session).await,
        Event::Closed {
            code: 4000,
            reason: "bye".to_owned()
        }
    );
    assert_eq!(
        within("the end of events", session.next_event()).await,
        None
    );
    assert!(
        session.send_text("anyone?").is_err(),
        "a closed session sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_client_reconnects_and_reports_the_lost_continuity() {
    let host = Host::builder().function("echo").start().await;
    let proxy = Proxy::start(host.addr()).await;
    let mut session = connect(Options::new(proxy.url("echo")).plain()).await;
    assert_eq!(session.id(), None, "a plain socket has no session");
    // No type byte on a plain socket: echo returns exactly what was sent.
    assert_echoes(&mut session, "mhello").await;

    proxy.cut();
    assert_eq!(
        next_event(&mut session).await,
        Event::Reset {
            reason: ResetReason::Reconnected,
            id: None
        }
    );
    assert_echoes(&mut session, "again").await;
    let (code, _) = within("the close", session.close()).await;
    assert_eq!(code, 1000);
}
