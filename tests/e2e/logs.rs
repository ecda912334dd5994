//! `GET /v1/functions/{name}/logs` and `wsfn-host logs`: a function's guest output and
//! lifecycle events, streamed as they happen.

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{
    Host, LogStream, TestDir, function_bytes, run_wsfn_host, spawn_wsfn_host, within,
};

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |line| line["kind"] == kind
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_shows_the_connect_the_guest_output_and_the_close() {
    let host = Host::builder().function("lifecycle").start().await;
    let mut logs = LogStream::open(&host.admin(), "lifecycle").await;

    let mut client = host.connect("lifecycle").await;
    let id = client.ask("id").await;
    client.close(4001, "leaving").await;

    let connect = logs.until("the connect", is("connect")).await;
    assert_eq!(connect["connection"], id.as_str(), "{connect}");
    let remote = connect["remote"].as_str().unwrap_or_default();
    assert!(remote.starts_with("127.0.0.1:"), "{connect}");
    // The close is logged as on-close is told of it, so before what on-close prints.
    let close = logs.until("the close", is("close")).await;
    assert_eq!(close["connection"], id.as_str(), "{close}");
    assert_eq!(close["code"], 4001, "{close}");
    assert_eq!(close["reason"], "leaving", "{close}");
    let printed = logs.until("the line on-close printed", is("stdout")).await;
    assert_eq!(printed["connection"], id.as_str(), "{printed}");
    assert_eq!(
        printed["text"],
        format!("on-close {id} 4001 leaving"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_shows_rejects_faults_and_deploys() {
    let host = Host::builder().function("lifecycle").start().await;
    let admin = host.admin();
    let mut logs = LogStream::open(&admin, "lifecycle").await;

    assert_eq!(
        host.refused_handshake_status("lifecycle?reject=451").await,
        451
    );
    let reject = logs.until("the reject", is("reject")).await;
    assert_eq!(reject["status"], 451, "{reject}");
    assert_eq!(reject["reason"], "rejected by test", "{reject}");

    let mut client = host.connect("lifecycle").await;
    let id = client.ask("id").await;
    client.send_text("trap").await;
    assert_eq!(client.expect_close().await.code, 1011);
    let fault = logs.until("the fault", is("fault")).await;
    assert_eq!(fault["fault"], "trap", "{fault}");
    assert_eq!(fault["event"], "on-message", "{fault}");
    assert_eq!(fault["connection"], id.as_str(), "{fault}");
    let close = logs.until("the close after the fault", is("close")).await;
    assert_eq!(close["code"], 1011, "{close}");

    let version = admin.deploy("lifecycle", function_bytes("echo")).await;
    let deploy = logs.until("the deploy", is("deploy")).await;
    assert_eq!(deploy["version"], version, "{deploy}");
    admin.rollback("lifecycle", "").await.expect_status(200);
    let rollback = logs.until("the rollback", is("rollback")).await;
    assert_eq!(rollback["version"], version - 1, "{rollback}");
    assert_eq!(rollback["from"], version, "{rollback}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_functions_get_404_and_the_stream_needs_the_token() {
    let host = Host::builder().function("lifecycle").start().await;
    let admin = host.admin();
    let message = admin
        .get("/v1/functions/nothing-here/logs")
        .await
        .expect_error(404);
    assert!(message.contains("nothing-here"), "{message}");
    admin
        .without_token()
        .get("/v1/functions/lifecycle/logs")
        .await
        .expect_error(401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_stream_ends_after_shutdown_has_closed_every_connection() {
    let mut host = Host::builder().function("lifecycle").start_process().await;
    let mut logs = LogStream::open(&host.admin(), "lifecycle").await;
    let mut client = host.connect("lifecycle").await;
    let id = client.ask("id").await;

    host.send_sigterm();
    assert_eq!(client.expect_close().await.code, 1001);
    let status = host.wait_for_exit().await;
    assert_eq!(
        status.code(),
        Some(0),
        "the open stream did not hold up shutdown"
    );

    let printed = logs
        .until("the shutdown's on-close line", is("stdout"))
        .await;
    assert_eq!(
        printed["text"],
        format!("on-close {id} 1001 server shutting down")
    );
    while let Some(line) = logs.next().await {
        assert_ne!(
            line["kind"], "connect",
            "nothing new after shutdown: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wsfn_host_logs_prints_the_guest_line_for_a_person() {
    let host = Host::builder().function("lifecycle").start().await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    let mut follower = spawn_wsfn_host(
        dir.path(),
        &["logs", "lifecycle", "--admin-url", &url],
        &token,
    );
    let mut stdout = BufReader::new(follower.stdout.take().expect("piped stdout")).lines();
    let mut stderr = BufReader::new(follower.stderr.take().expect("piped stderr")).lines();
    // Printed once the host has answered, so from here on nothing is missed.
    let started = within("`wsfn-host logs` to start following", stderr.next_line())
        .await
        .expect("readable stderr")
        .unwrap_or_default();
    assert!(
        started.contains("following the log of `lifecycle`"),
        "{started:?}"
    );

    let mut client = host.connect("lifecycle").await;
    let id = client.ask("id").await;
    client.close(4002, "from the cli test").await;

    let wanted = format!("lifecycle stdout [{id}] on-close {id} 4002 from the cli test");
    let mut printed = Vec::new();
    let line = within("`wsfn-host logs` to print the guest's line", async {
        loop {
            let line = stdout
                .next_line()
                .await
                .expect("readable stdout")
                .unwrap_or_else(|| panic!("`wsfn-host logs` ended early: {printed:?}"));
            if line.contains("stdout [") {
                return line;
            }
            printed.push(line);
        }
    })
    .await;
    // `HH:MM:SS.mmm ` then the function, the kind, the connection and the text.
    let (time, rest) = line.split_at(13);
    assert!(
        time.len() == 13 && time.as_bytes()[2] == b':' && time.as_bytes()[8] == b'.',
        "{line:?}"
    );
    assert_eq!(rest, wanted, "{line:?}");
    assert!(
        printed
            .iter()
            .any(|l| l.contains(&format!("lifecycle connect [{id}] from 127.0.0.1:"))),
        "{printed:?}"
    );
    let _ = follower.kill().await;

    let unknown = run_wsfn_host(
        dir.path(),
        &["logs", "no-such-function", "--admin-url", &url],
        &token,
    )
    .await;
    assert!(unknown.expect_failure().contains("404"), "{unknown:?}");
}
