//! The admin client commands, `wsfn-host deploy`, `functions` and `rollback`, against a
//! running host.

use std::fs;

use crate::support::{Host, TestDir, function_wasm, run_wsfn_host};

/// The whitespace-separated fields of the line of `stdout` that starts with `name`.
fn row_of<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .unwrap_or_else(|| panic!("a row for {name} in {stdout:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_functions_and_rollback_work_against_a_running_host() {
    let host = Host::builder()
        .function_served_as("swap", "swap-a")
        .start()
        .await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    let swap_b = function_wasm("swap-b").display().to_string();
    let echo = function_wasm("echo").display().to_string();
    let mut client = host.connect("swap").await;

    let deployed = run_wsfn_host(
        dir.path(),
        &["deploy", "swap", &swap_b, "--admin-url", &url],
        &token,
    )
    .await;
    let stdout = deployed.expect_success();
    assert!(stdout.contains("version 2"), "{deployed:?}");
    assert_eq!(client.ask("deployed").await, "b:deployed");

    let again = run_wsfn_host(
        dir.path(),
        &["deploy", "swap", &swap_b, "--admin-url", &url],
        &token,
    )
    .await;
    let stdout = again.expect_success();
    assert!(stdout.contains("version 2"), "{again:?}");
    assert!(stdout.contains("nothing changed"), "{again:?}");

    run_wsfn_host(
        dir.path(),
        &["deploy", "mirror", &echo, "--admin-url", &url],
        &token,
    )
    .await
    .expect_success();
    let listed = run_wsfn_host(dir.path(), &["functions", "--admin-url", &url], &token).await;
    let stdout = listed.expect_success();
    assert_eq!(row_of(stdout, "swap")[1], "2", "{listed:?}");
    assert_eq!(row_of(stdout, "mirror")[1], "1", "{listed:?}");

    let rolled_back = run_wsfn_host(
        dir.path(),
        &["rollback", "swap", "--admin-url", &url],
        &token,
    )
    .await;
    assert!(
        rolled_back.expect_success().contains("version 1"),
        "{rolled_back:?}"
    );
    assert_eq!(client.ask("rolled back").await, "a:rolled back");

    let chosen = run_wsfn_host(
        dir.path(),
        &["rollback", "swap", "--version", "2", "--admin-url", &url],
        &token,
    )
    .await;
    assert!(chosen.expect_success().contains("version 2"), "{chosen:?}");
    assert_eq!(client.ask("chosen").await, "b:chosen");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_finds_the_token_a_host_generated_in_its_data_directory() {
    let host = Host::builder().function("echo").start().await;
    let dir = TestDir::new();
    let data_dir = host.data_dir().display().to_string();

    let listed = run_wsfn_host(
        dir.path(),
        &[
            "functions",
            "--admin-url",
            &host.admin_url(),
            "--data-dir",
            &data_dir,
        ],
        &[],
    )
    .await;

    assert_eq!(
        row_of(listed.expect_success(), "echo")[1],
        "1",
        "{listed:?}"
    );
}

/// A client command that must fail, and what its error message must mention.
struct FailingCall<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    mentions: &'a str,
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_client_commands_exit_non_zero_and_say_why() {
    let host = Host::builder()
        .function_served_as("swap", "swap-a")
        .start()
        .await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    let not_wasm = dir.path().join("not-a-component.wasm");
    fs::write(&not_wasm, "not a component").expect("writing a scratch file");
    let not_wasm = not_wasm.display().to_string();
    let missing = dir.path().join("missing.wasm").display().to_string();
    let swap_b = function_wasm("swap-b").display().to_string();
    // A loopback port nobody listens on: bound, then released.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    let unreachable = format!("http://127.0.0.1:{closed_port}");

    let wrong_token = [("WSFN_ADMIN_TOKEN", "wrong")];
    let failures = [
        FailingCall {
            args: &["rollback", "no-such-function", "--admin-url", &url],
            env: &token,
            mentions: "no-such-function",
        },
        FailingCall {
            args: &["rollback", "swap", "--admin-url", &url],
            env: &token,
            mentions: "409",
        },
        FailingCall {
            args: &["rollback", "swap", "--version", "99", "--admin-url", &url],
            env: &token,
            mentions: "99",
        },
        FailingCall {
            args: &["deploy", "swap", &not_wasm, "--admin-url", &url],
            env: &token,
            mentions: "400",
        },
        FailingCall {
            args: &["deploy", "swap", &missing, "--admin-url", &url],
            env: &token,
            mentions: "missing.wasm",
        },
        FailingCall {
            args: &["deploy", "swap", &swap_b, "--admin-url", &url],
            env: &wrong_token,
            mentions: "401",
        },
        FailingCall {
            args: &["functions", "--admin-url", &unreachable],
            env: &token,
            mentions: &unreachable,
        },
    ];
    for call in failures {
        let output = run_wsfn_host(dir.path(), call.args, call.env).await;
        let message = output.expect_failure();
        assert!(
            message.contains(call.mentions),
            "should mention {:?}: {output:?}",
            call.mentions
        );
        assert_eq!(output.stdout, "", "{output:?}");
    }

    let mut client = host.connect("swap").await;
    assert_eq!(
        client.ask("untouched").await,
        "a:untouched",
        "none of the failed commands changed the function"
    );
    assert_eq!(host.admin().current_version("swap").await, 1);
}
