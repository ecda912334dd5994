//! The `wsfn-host` process itself: its help, the options it refuses and how it says so, what
//! it says when an address is taken, and its log on stderr.

use std::net::TcpListener;

use serde_json::Value;

use crate::support::{Host, TestDir, poll_until, run_wsfn_host};

#[tokio::test(flavor = "multi_thread")]
async fn the_help_leads_to_every_option_of_run() {
    let dir = TestDir::new();
    let top = run_wsfn_host(dir.path(), &["--help"], &[]).await;
    assert!(
        top.expect_success().contains("wsfn-host run --help"),
        "{top:?}"
    );
    let run = run_wsfn_host(dir.path(), &["run", "--help"], &[]).await;
    let help = run.expect_success();
    for expected in [
        "--kv-timeout",
        "--node-timeout-ms",
        "--log-format",
        "--public-metrics",
        "WSFN_LISTEN",
        "Limits:",
        "KiB or MiB",
    ] {
        assert!(
            help.contains(expected),
            "`run --help` names {expected}: {run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn options_that_make_no_sense_are_refused_with_what_to_write() {
    let dir = TestDir::new();
    let data_dir = dir.data_dir().display().to_string();
    let env = [("WSFN_DATA_DIR", data_dir.as_str())];
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--event-timeout-ms", "0"],
            &["--event-timeout-ms", "at least 1"],
        ),
        (&["--max-message-size", "10MB"], &["10MB", "KiB or MiB"]),
        (
            &["--listen", "localhost:0"],
            &["not an IP address", "127.0.0.1:0"],
        ),
        (&["--kv-timeout", "0s"], &["--kv-timeout", "longer than 0"]),
    ];
    for (args, mentions) in cases {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let output = run_wsfn_host(dir.path(), &all, &env).await;
        let message = output.expect_failure();
        for mention in mentions {
            assert!(message.contains(mention), "mentions {mention}: {output:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_address_names_the_option_that_moves_it() {
    let dir = TestDir::new();
    let data_dir = dir.data_dir().display().to_string();
    let taken = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let taken = taken.local_addr().expect("a bound address").to_string();
    let env = [("WSFN_DATA_DIR", data_dir.as_str())];
    let cases = [
        (
            ["--listen", "127.0.0.1:0", "--admin-listen", &taken],
            "--admin-listen",
        ),
        (
            ["--listen", &taken, "--admin-listen", "127.0.0.1:0"],
            "--listen",
        ),
    ];
    for (args, option) in cases {
        let mut all = vec!["run"];
        all.extend_from_slice(&args);
        let output = run_wsfn_host(dir.path(), &all, &env).await;
        let message = output.expect_failure();
        assert!(message.contains(&taken), "names the address: {output:?}");
        assert!(
            message.contains(&format!("with {option}")),
            "names {option}: {output:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_in_a_file_has_no_colour_and_says_how_to_see_connections() {
    let host = Host::builder().function("echo").start_process().await;
    let mut client = host.connect("echo").await;
    assert_eq!(client.ask("hello").await, "hello");

    // The hint follows the announcement on stdout, which the harness waits for: the log may
    // not have it yet.
    let log = poll_until("the log says how to see connections", async || {
        let log = host.log();
        (log.contains("RUST_LOG=wsfn_host=debug") && log.contains("wsfn-host logs NAME"))
            .then_some(log)
    })
    .await;
    assert!(!log.contains('\u{1b}'), "no escape codes in a file:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_log_is_one_object_per_line_with_the_same_fields() {
    let host = Host::builder()
        .function("echo")
        .option("--log-format", "json")
        .start_process()
        .await;
    let log = host.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line:?}: {error}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
    }
    let deployed = lines
        .iter()
        .find(|line| line["message"] == "deployed")
        .unwrap_or_else(|| panic!("a line saying echo was deployed:\n{log}"));
    assert_eq!(deployed["function"], "echo", "{deployed}");
    assert_eq!(deployed["version"], 1, "{deployed}");
}
