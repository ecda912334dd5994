//! The admin client commands (`wsfn-host deploy`, `functions`, `rollback`, `remove`, `send`,
//! `signed-url`) run as processes against a running host.

use std::fs;

use serde_json::{Value, json};

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

#[tokio::test(flavor = "multi_thread")]
async fn deploy_names_the_function_as_run_does_and_the_admin_url_needs_no_scheme() {
    let host = Host::builder().start().await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let without_scheme = url.trim_start_matches("http://").to_owned();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    let echo = function_wasm("echo").display().to_string();

    let after_the_file = run_wsfn_host(
        dir.path(),
        &["deploy", &echo, "--admin-url", &without_scheme],
        &token,
    )
    .await;
    assert!(
        after_the_file
            .expect_success()
            .contains("`echo` now serves version 1"),
        "{after_the_file:?}"
    );
    let name_equals_file = format!("mirror={echo}");
    let named = run_wsfn_host(
        dir.path(),
        &["deploy", &name_equals_file, "--admin-url", &url],
        &token,
    )
    .await;
    assert!(
        named
            .expect_success()
            .contains("`mirror` now serves version 1"),
        "{named:?}"
    );
    for function in ["echo", "mirror"] {
        let mut client = host.connect(function).await;
        assert_eq!(client.ask("hello").await, "hello", "{function}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_takes_a_function_off_the_host_and_closes_its_connections() {
    let host = Host::builder().function("echo").start().await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    let mut client = host.connect("echo").await;
    assert_eq!(client.ask("before").await, "before");

    let removed = run_wsfn_host(dir.path(), &["remove", "echo", "--admin-url", &url], &token).await;
    let stdout = removed.expect_success();
    assert!(stdout.contains("`echo` removed"), "{removed:?}");
    assert!(stdout.contains("1 connections closed"), "{removed:?}");
    assert_eq!(client.expect_close().await.code, 1001);
    host.admin()
        .get("/v1/functions/echo")
        .await
        .expect_error(404);

    let again = run_wsfn_host(dir.path(), &["remove", "echo", "--admin-url", &url], &token).await;
    assert!(
        again.expect_failure().contains("no function named `echo`"),
        "{again:?}"
    );
}

/// The id of the one connection of `function` in `group`.
async fn id_in_group(host: &Host, function: &str, group: &str) -> String {
    let connections = host.admin().connections(function).await;
    let member: Vec<&Value> = connections
        .iter()
        .filter(|connection| connection["groups"] == json!([group]))
        .collect();
    assert_eq!(
        member.len(),
        1,
        "one connection in {group}: {connections:?}"
    );
    member[0]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn send_reaches_a_connection_or_a_group_as_text_or_binary() {
    let host = Host::builder().function("notify").start().await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    let mut bob = host.connect("notify?user=bob").await;
    let mut carol = host.connect("notify?user=carol").await;
    let bob_id = id_in_group(&host, "notify", "user:bob").await;
    let send = async |args: &[&str]| {
        let mut all = vec!["send"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin-url", &url]);
        run_wsfn_host(dir.path(), &all, &token).await
    };

    let text = send(&["--connection", &bob_id, "from the operator ✓"]).await;
    assert!(text.expect_success().contains("delivered to 1"), "{text:?}");
    assert_eq!(bob.receive_text().await, "from the operator ✓");

    send(&["--connection", &bob_id, "--binary", "raw"])
        .await
        .expect_success();
    assert_eq!(bob.receive_binary().await, b"raw".as_slice());

    let blob = dir.path().join("blob");
    fs::write(&blob, [0u8, 1, 0xfe, 0xff]).expect("writing a scratch file");
    let blob = blob.display().to_string();
    send(&["--connection", &bob_id, "--file", &blob])
        .await
        .expect_success();
    assert_eq!(bob.receive_binary().await, [0u8, 1, 0xfe, 0xff].as_slice());

    let group = send(&["--function", "notify", "--group", "user:carol", "for carol"]).await;
    assert!(
        group.expect_success().contains("delivered to 1"),
        "{group:?}"
    );
    assert_eq!(carol.receive_text().await, "for carol");

    let nowhere = send(&["no target"]).await;
    assert!(nowhere.expect_failure().contains("required"), "{nowhere:?}");
    let gone = send(&["--connection", "no-such-connection", "hello?"]).await;
    assert!(gone.expect_failure().contains("404"), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_url_prints_a_url_the_host_accepts() {
    let host = Host::builder()
        .function("lifecycle")
        .signing_key("a signing key for the command line, 32+ bytes")
        .option("--require-signed", "lifecycle")
        .start()
        .await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token = [("WSFN_ADMIN_TOKEN", host.admin_token())];
    assert_eq!(host.refused_handshake_status("lifecycle").await, 401);

    let signed = run_wsfn_host(
        dir.path(),
        &[
            "signed-url",
            "lifecycle",
            "--query",
            "room=a b",
            "--admin-url",
            &url,
        ],
        &token,
    )
    .await;
    let printed = signed.expect_success().trim().to_owned();
    let prefix = format!("ws://{}/lifecycle?", host.addr());
    assert!(printed.starts_with(&prefix), "{signed:?}");

    let path_only = run_wsfn_host(
        dir.path(),
        &[
            "signed-url",
            "lifecycle",
            "--query",
            "room=a b",
            "--ttl-seconds",
            "60",
            "--path-only",
            "--admin-url",
            &url,
        ],
        &token,
    )
    .await;
    let path = path_only.expect_success().trim().to_owned();
    assert!(path.starts_with("/lifecycle?"), "{path_only:?}");
    let printed_path = printed
        .strip_prefix(&format!("ws://{}", host.addr()))
        .expect("the URL is on the host's listener");
    for accepted in [printed_path, path.as_str()] {
        let mut client = host.connect(accepted).await;
        let seen: Value =
            serde_json::from_str(&client.ask("last-connect").await).expect("last-connect is JSON");
        assert_eq!(seen, json!({"signed": true, "query": [["room", "a b"]]}));
    }
}

/// A client command's token, given in one way, and how its refusal must name that way.
struct TokenFrom<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    named: &'a str,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_named_with_the_url_and_where_it_came_from() {
    let host = Host::builder().function("echo").start().await;
    let dir = TestDir::new();
    let url = host.admin_url();
    let token_file = dir.path().join("wrong.token");
    fs::write(&token_file, "wrong\n").expect("writing a scratch file");
    let other_data_dir = dir.path().join("other-data");
    fs::create_dir_all(&other_data_dir).expect("creating a scratch directory");
    fs::write(other_data_dir.join("admin-token"), "also wrong").expect("writing a token");
    let token_file = token_file.display().to_string();
    let other_data_dir = other_data_dir.display().to_string();

    let sources = [
        TokenFrom {
            args: &[],
            env: &[("WSFN_ADMIN_TOKEN", "wrong")],
            named: "WSFN_ADMIN_TOKEN",
        },
        TokenFrom {
            args: &["--admin-token-file", &token_file],
            env: &[],
            named: &token_file,
        },
        TokenFrom {
            args: &["--data-dir", &other_data_dir],
            env: &[],
            named: "other-data/admin-token",
        },
    ];
    for TokenFrom { args, env, named } in sources {
        let mut all = vec!["functions", "--admin-url", &url];
        all.extend_from_slice(args);
        let output = run_wsfn_host(dir.path(), &all, env).await;
        let message = output.expect_failure();
        assert!(message.contains("401"), "{output:?}");
        assert!(message.contains(&url), "names the URL: {output:?}");
        assert!(message.contains(named), "names {named}: {output:?}");
    }
}
