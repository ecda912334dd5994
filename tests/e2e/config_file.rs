//! The config file of `wsfn-host run`: a host started with only `--config` serves what the
//! file says, flags override it, and a mistake in it stops the host with a message naming it.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Host, JSON, TestDir, function_wasm, raw_upgrade, run_wsfn_host};

/// The close code for a message too big to process (RFC 6455).
const MESSAGE_TOO_BIG: u16 = 1009;

/// Writes `site/wsfn.toml` with the components in `fns/` beside it, so the file's relative
/// paths only resolve against the file's own directory (the host runs elsewhere).
fn write_config(extra: &str) -> (Arc<TestDir>, PathBuf) {
    let dir = TestDir::new();
    let site = dir.path().join("site");
    let fns = dir.path().join("fns");
    fs::create_dir_all(&site).unwrap();
    fs::create_dir_all(&fns).unwrap();
    for name in ["echo", "lifecycle"] {
        fs::copy(function_wasm(name), fns.join(format!("{name}.wasm"))).unwrap();
    }
    fs::write(
        site.join("signing.key"),
        "a signing key from the config file, 32+ bytes\n",
    )
    .unwrap();
    let file = site.join("wsfn.toml");
    let text = format!(
        r#"listen = "127.0.0.1:0"
signing-key-file = "signing.key"
{extra}
[functions.echo]
path = "../fns/echo.wasm"

[functions.lifecycle]
path = "../fns/lifecycle.wasm"
require-signed-url = true

[limits]
max-message-size = "1KiB"
"#
    );
    fs::write(&file, text).unwrap();
    (dir, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_started_with_only_a_config_file_serves_its_functions_and_limits() {
    let (_dir, file) = write_config("");
    let host = Host::builder().config(&file).start().await;

    let mut client = host.connect("echo").await;
    assert_eq!(client.ask("from the file").await, "from the file");
    let close = client
        .send_expecting_close(vec![Message::binary(vec![7u8; 2048])])
        .await;
    assert_eq!(
        close.code, MESSAGE_TOO_BIG,
        "the file's 1 KiB limit: {close:?}"
    );

    // require-signed-url, with the key from the file's signing-key-file.
    let unsigned = raw_upgrade(host.addr(), "lifecycle", &[]).await;
    assert_eq!(unsigned.status, 401);
    let minted = host
        .admin()
        .post(
            "/v1/functions/lifecycle/signed-url",
            JSON,
            json!({}).to_string(),
        )
        .await
        .expect_json(200);
    host.connect(minted["path"].as_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flag_overrides_the_file() {
    let (_dir, file) = write_config("");
    let host = Host::builder()
        .config(&file)
        .max_message_size("4KiB")
        .start()
        .await;
    let mut client = host.connect("echo").await;
    let payload = vec![7u8; 2048];
    client.send_binary(payload.clone()).await;
    assert!(
        client.receive_binary().await == payload,
        "the 2 KiB echo differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wsfn_variable_overrides_the_file() {
    let (_dir, file) = write_config("data-dir = \"data-from-the-file\"\n");
    // The process gets its data directory from WSFN_DATA_DIR, where the harness then finds
    // the generated admin token: the start only succeeds if the variable won.
    let host = Host::builder().config(&file).start_process().await;
    let mut client = host.connect("echo").await;
    assert_eq!(client.ask("from the file").await, "from the file");
    let site = file.parent().expect("the file's directory");
    assert!(
        !site.join("data-from-the-file").exists(),
        "the file's data directory was not used"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_key_stops_the_host_with_a_message_naming_it() {
    let (dir, file) = write_config("[limts]\nmax-connections = 5\n");
    let data_dir = dir.data_dir().display().to_string();
    let env = [
        ("WSFN_DATA_DIR", data_dir.as_str()),
        ("WSFN_ADMIN_LISTEN", "127.0.0.1:0"),
    ];
    let file_arg = file.display().to_string();
    let output = run_wsfn_host(dir.path(), &["run", "--config", &file_arg], &env).await;
    let message = output.expect_failure();
    assert!(message.contains(&file_arg), "names the file: {output:?}");
    assert!(message.contains("line 3"), "names the line: {output:?}");
    assert!(
        output.stderr.contains("unknown field `limts`"),
        "names the key: {output:?}"
    );

    // ./wsfn.toml is read without --config.
    fs::copy(&file, dir.path().join("wsfn.toml")).unwrap();
    let output = run_wsfn_host(dir.path(), &["run"], &env).await;
    assert!(output.expect_failure().contains("wsfn.toml"), "{output:?}");
}
