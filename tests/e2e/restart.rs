//! Restarting on the same data directory: what was deployed is served again from its
//! compiled code, and the version history (so rollback) survives.

use crate::support::{Host, function_bytes};

const RESTORED_WITHOUT_COMPILING: &str = "restored from compiled code, no recompilation";

/// Asserts that the host logged restoring `function` at `version` from compiled code.
fn assert_restored_without_compiling(host: &Host, function: &str, version: u64) {
    let log = host.log();
    let restored = log.lines().any(|line| {
        line.contains(RESTORED_WITHOUT_COMPILING)
            && line
                .split_whitespace()
                .any(|field| field == format!("function={function}"))
            && line
                .split_whitespace()
                .any(|field| field == format!("version={version}"))
    });
    assert!(
        restored,
        "the log should say `{RESTORED_WITHOUT_COMPILING}` for {function} version {version}:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_host_serves_the_last_deployed_versions_without_recompiling() {
    let first = Host::builder()
        .function_served_as("swap", "swap-a")
        .start_process()
        .await;
    let admin = first.admin();
    assert_eq!(admin.deploy("swap", function_bytes("swap-b")).await, 2);
    // A function that only ever came through the admin API.
    assert_eq!(admin.deploy("mirror", function_bytes("echo")).await, 1);
    let versions_before = admin
        .get("/v1/functions/swap/versions")
        .await
        .expect_json(200);
    let functions_before = admin.get("/v1/functions").await.expect_json(200);
    let token = first.admin_token().to_owned();

    // No functions on the command line: everything served comes from the data directory.
    let second = Host::builder()
        .data_dir_of(first.stop().await)
        .start_process()
        .await;
    let admin = second.admin();

    assert_restored_without_compiling(&second, "swap", 2);
    assert_restored_without_compiling(&second, "mirror", 1);
    assert!(
        !second.log().contains("recompiled"),
        "nothing was compiled again:\n{}",
        second.log()
    );
    assert_eq!(
        second.admin_token(),
        token,
        "the generated admin token is kept in the data directory"
    );
    assert_eq!(
        admin.get("/v1/functions").await.expect_json(200),
        functions_before,
        "the same versions are current, with the same metadata"
    );
    assert_eq!(
        admin
            .get("/v1/functions/swap/versions")
            .await
            .expect_json(200),
        versions_before,
        "the version history survives"
    );
    let mut client = second.connect("swap").await;
    assert_eq!(client.ask("after restart").await, "b:after restart");
    assert_eq!(
        second.connect("mirror").await.ask("mirrored").await,
        "mirrored"
    );

    let rolled_back = admin.rollback("swap", "").await.expect_json(200);
    assert_eq!(rolled_back, versions_before["versions"][0]);
    assert_eq!(client.ask("rolled back").await, "a:rolled back");
    assert_eq!(
        second.connect("swap").await.ask("new").await,
        "a:new",
        "a new connection gets the version rolled back to"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_is_still_in_effect_after_a_restart_and_can_be_undone() {
    let first = Host::builder()
        .function_served_as("swap", "swap-a")
        .start_process()
        .await;
    assert_eq!(
        first.admin().deploy("swap", function_bytes("swap-b")).await,
        2
    );
    first.admin().rollback("swap", "").await.expect_json(200);

    let second = Host::builder()
        .data_dir_of(first.stop().await)
        .start_process()
        .await;

    assert_restored_without_compiling(&second, "swap", 1);
    assert_eq!(second.admin().current_version("swap").await, 1);
    let mut client = second.connect("swap").await;
    assert_eq!(client.ask("rolled back").await, "a:rolled back");
    let forward = second
        .admin()
        .rollback("swap", r#"{"version": 2}"#)
        .await
        .expect_json(200);
    assert_eq!(forward["version"], 2);
    assert_eq!(client.ask("forward").await, "b:forward");
    // Version numbers continue after the stored history rather than starting again.
    assert_eq!(
        second.admin().deploy("swap", function_bytes("echo")).await,
        3
    );
    assert_eq!(client.ask("echoed").await, "echoed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_function_publishes_to_the_groups_its_connections_join() {
    // Only restored, never deployed by this process: the restored version and the
    // connections must share one set of groups.
    let first = Host::builder().function("chat").start_process().await;
    let second = Host::builder()
        .data_dir_of(first.stop().await)
        .start_process()
        .await;
    let mut ann = second.connect("chat?room=r&user=ann").await;
    let mut bob = second.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        serde_json::json!({"type": "join", "user": "bob"})
    );
    bob.send_text("hi").await;
    let message = serde_json::json!({"type": "message", "user": "bob", "text": "hi"});
    assert_eq!(bob.receive_json().await, message);
    assert_eq!(ann.receive_json().await, message);
}
