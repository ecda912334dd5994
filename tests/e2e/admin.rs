//! The admin API: authentication, deploying and removing functions, versions and rollback,
//! pushes to connections and groups, operator closes, and refusals of bad uploads.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::support::{
    CloseInfo, Host, OCTET_STREAM, TEXT, TestDir, function_bytes, function_wasm, poll_until,
    run_wsfn_host,
};

/// An empty component: valid, but it exports none of the handlers.
const COMPONENT_WITHOUT_HANDLERS: &[u8] = b"\0asm\x0d\0\x01\0";

/// A component that imports the interface `foo:bar/baz` with one function `f: func()`, which
/// the host does not provide. Encoded by hand (component binary format): a type section with
/// that instance type, and an import section importing it.
const COMPONENT_WITH_UNKNOWN_IMPORT: &[u8] = b"\0asm\x0d\0\x01\0\
    \x07\x0e\x01\x42\x02\x01\x40\x00\x01\x00\x04\x00\x01f\x01\x00\
    \x0a\x10\x01\x00\x0bfoo:bar/baz\x05\x00";

/// A core WebAssembly module header: a module, not a component.
const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// Asserts that `info` describes version `version` made of `component`, deployed between
/// `earliest_ms` and now.
fn assert_version_info(info: &Value, version: u64, component: &[u8], earliest_ms: u64) {
    assert_eq!(info["version"], version, "{info}");
    assert_eq!(info["sha256"], sha256_hex(component), "{info}");
    assert_eq!(info["size"], component.len(), "{info}");
    let deployed_at = info["deployed_at_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("deployed_at_ms is a number: {info}"));
    assert!(
        (earliest_ms..=now_ms()).contains(&deployed_at),
        "deployed_at_ms {deployed_at} should be between {earliest_ms} and now: {info}"
    );
    assert!(
        info["compile_ms"].is_u64(),
        "compile_ms is a number: {info}"
    );
}

fn version_numbers(list: &Value) -> Vec<u64> {
    list["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("versions are listed as an array: {list}"))
        .iter()
        .map(|info| info["version"].as_u64().expect("a version number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_needs_no_token_but_every_other_route_needs_the_right_one() {
    let host = Host::builder().function("lifecycle").start().await;
    let admin = host.admin();
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    let health = admin
        .without_token()
        .get("/healthz")
        .await
        .expect_status(200);
    assert_eq!(health.text().trim(), "ok");

    // Real names and ids, so a route that looked them up before checking the token would
    // answer something other than 401.
    let routes = [
        (Method::GET, "/v1/functions".to_owned()),
        (Method::GET, "/v1/functions/lifecycle".to_owned()),
        (Method::PUT, "/v1/functions/lifecycle".to_owned()),
        (Method::DELETE, "/v1/functions/lifecycle".to_owned()),
        (Method::GET, "/v1/functions/lifecycle/versions".to_owned()),
        (Method::POST, "/v1/functions/lifecycle/rollback".to_owned()),
        (
            Method::GET,
            "/v1/functions/lifecycle/connections".to_owned(),
        ),
        (
            Method::POST,
            "/v1/functions/lifecycle/groups/any/send".to_owned(),
        ),
        (Method::POST, format!("/v1/connections/{id}/send")),
        (Method::DELETE, format!("/v1/connections/{id}")),
        (Method::GET, "/v1/openapi.json".to_owned()),
    ];
    let right_token = host.admin_token();
    let wrong_tokens = [
        "wrong".to_owned(),
        String::new(),
        format!("{right_token}x"),
        right_token[..right_token.len() - 1].to_owned(),
    ];
    for (method, path) in &routes {
        // Small, so the refusal cannot race with the host still receiving the body.
        let body = b"probe".to_vec();
        admin
            .without_token()
            .request(method.clone(), path, Some(OCTET_STREAM), body.clone())
            .await
            .expect_error(401);
        for token in &wrong_tokens {
            admin
                .with_token(token)
                .request(method.clone(), path, Some(OCTET_STREAM), body.clone())
                .await
                .expect_error(401);
        }
    }

    // None of the refused requests did anything.
    assert_eq!(client.ask("still here").await, "still here");
    assert_eq!(admin.current_version("lifecycle").await, 1);
    let versions = admin
        .get("/v1/functions/lifecycle/versions")
        .await
        .expect_json(200);
    assert_eq!(version_numbers(&versions), [1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_token_is_the_one_required() {
    let host = Host::builder()
        .function("echo")
        .admin_token("a configured token")
        .start()
        .await;

    assert_eq!(host.admin_token(), "a configured token");
    host.admin().get("/v1/functions").await.expect_status(200);
    host.admin()
        .with_token("another token")
        .get("/v1/functions")
        .await
        .expect_error(401);
    assert!(
        !host.data_dir().join("admin-token").exists(),
        "no token is generated when one is configured"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_are_listed_and_shown_with_their_current_version_and_connections() {
    let started_ms = now_ms();
    let host = Host::builder()
        .function("echo")
        .function_served_as("swap", "swap-a")
        .start()
        .await;
    let admin = host.admin();
    let _first = host.connect("swap").await;
    let mut second = host.connect("swap").await;
    // Once a connection has been served, the host has it in its table.
    second.ask("served").await;

    let list = admin.get("/v1/functions").await.expect_json(200);
    let list = list.as_array().expect("functions are listed as an array");
    let names: Vec<&str> = list.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "swap"]);
    assert_version_info(&list[0]["current"], 1, &function_bytes("echo"), started_ms);
    assert_version_info(
        &list[1]["current"],
        1,
        &function_bytes("swap-a"),
        started_ms,
    );
    assert_eq!(list[0]["connections"], 0, "{}", list[0]);
    assert_eq!(list[1]["connections"], 2, "{}", list[1]);

    // One function may be shown in more detail than the list gives, but not differently.
    let swap = admin.function("swap").await;
    for field in ["name", "current", "connections"] {
        assert_eq!(swap[field], list[1][field], "{field} of {swap}");
    }

    let missing = admin.get("/v1/functions/no-such-function").await;
    assert!(missing.expect_error(404).contains("no-such-function"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_deploys_a_new_function_and_hot_swaps_an_existing_one() {
    let host = Host::builder().function("echo").start().await;
    let admin = host.admin();
    let (version_a, version_b) = (function_bytes("swap-a"), function_bytes("swap-b"));

    let before_first_deploy = now_ms();
    let deployed = admin
        .put_function("swap", version_a.clone())
        .await
        .expect_json(201);
    assert_eq!(deployed["name"], "swap");
    assert_eq!(deployed["unchanged"], false);
    assert_version_info(&deployed["version"], 1, &version_a, before_first_deploy);
    let mut existing = host.connect("swap").await;
    assert_eq!(existing.ask("one").await, "a:one");

    let again = admin
        .put_function("swap", version_a.clone())
        .await
        .expect_json(200);
    assert_eq!(
        again["unchanged"], true,
        "the same bytes change nothing: {again}"
    );
    assert_eq!(again["version"], deployed["version"], "{again}");

    let before_swap = now_ms();
    let swapped = admin
        .put_function("swap", version_b.clone())
        .await
        .expect_json(201);
    assert_eq!(swapped["unchanged"], false);
    assert_version_info(&swapped["version"], 2, &version_b, before_swap);
    assert_eq!(
        existing.ask("two").await,
        "b:two",
        "an open connection is served by the new version once the deploy returned"
    );
    let mut new = host.connect("swap").await;
    assert_eq!(new.ask("three").await, "b:three");

    let versions = admin
        .get("/v1/functions/swap/versions")
        .await
        .expect_json(200);
    assert_eq!(versions["name"], "swap");
    assert_eq!(versions["current"], 2);
    assert_eq!(versions["versions"][0], deployed["version"]);
    assert_eq!(versions["versions"][1], swapped["version"]);
    assert_eq!(version_numbers(&versions), [1, 2]);

    let list = admin.get("/v1/functions").await.expect_json(200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "swap"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_serves_the_previous_version_or_a_chosen_one() {
    let host = Host::builder()
        .function_served_as("swap", "swap-a")
        .start()
        .await;
    let admin = host.admin();
    assert_eq!(admin.deploy("swap", function_bytes("swap-b")).await, 2);
    let mut client = host.connect("swap").await;
    assert_eq!(client.ask("start").await, "b:start");

    let previous = admin.rollback("swap", "").await.expect_json(200);
    assert_eq!(previous["version"], 1, "{previous}");
    assert_eq!(previous["sha256"], sha256_hex(&function_bytes("swap-a")));
    assert_eq!(client.ask("back").await, "a:back");
    assert_eq!(host.connect("swap").await.ask("new").await, "a:new");

    let chosen = admin
        .rollback("swap", r#"{"version": 2}"#)
        .await
        .expect_json(200);
    assert_eq!(chosen["version"], 2, "{chosen}");
    assert_eq!(client.ask("forth").await, "b:forth");

    let versions = admin
        .get("/v1/functions/swap/versions")
        .await
        .expect_json(200);
    assert_eq!(versions["current"], 2);
    assert_eq!(
        version_numbers(&versions),
        [1, 2],
        "a rollback makes no new version"
    );

    let unknown = admin.rollback("swap", r#"{"version": 99}"#).await;
    assert!(unknown.expect_error(404).contains("99"));
    admin.rollback("swap", "not json").await.expect_error(400);
    admin
        .rollback("no-such-function", "")
        .await
        .expect_error(404);
    assert_eq!(client.ask("unchanged").await, "b:unchanged");

    admin
        .rollback("swap", r#"{"version": 1}"#)
        .await
        .expect_json(200);
    admin.rollback("swap", "").await.expect_error(409);
    assert_eq!(
        client.ask("first").await,
        "a:first",
        "a refused rollback changes nothing"
    );
    admin
        .get("/v1/functions/no-such-function/versions")
        .await
        .expect_error(404);
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_function_closes_its_connections_with_1001_and_runs_their_on_close() {
    let host = Host::builder()
        .function("echo")
        .function_served_as("doomed", "lifecycle")
        .start()
        .await;
    let admin = host.admin();
    let mut first = host.connect("doomed").await;
    let mut second = host.connect("doomed").await;
    let first_id = first.connection_id().await;
    let second_id = second.connection_id().await;
    let mut bystander = host.connect("echo").await;

    let removed = admin.delete("/v1/functions/doomed").await.expect_json(200);
    assert_eq!(removed, json!({"name": "doomed", "closed_connections": 2}));

    let function_removed = CloseInfo::new(1001, "function removed");
    assert_eq!(first.expect_close().await, function_removed);
    assert_eq!(second.expect_close().await, function_removed);
    assert_eq!(
        host.refused_handshake_status("doomed").await,
        StatusCode::NOT_FOUND
    );
    admin.get("/v1/functions/doomed").await.expect_error(404);
    admin
        .get("/v1/functions/doomed/versions")
        .await
        .expect_error(404);
    admin.delete("/v1/functions/doomed").await.expect_error(404);
    let list = admin.get("/v1/functions").await.expect_json(200);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only echo is left: {list}"
    );
    assert_eq!(bystander.ask("unaffected").await, "unaffected");

    // The embedded key-value store belongs to the function's name, so the same fixture
    // deployed again under the name reads what on-close recorded for the removed one.
    let redeployed = admin
        .put_function("doomed", function_bytes("lifecycle"))
        .await
        .expect_json(201);
    assert_eq!(
        redeployed["version"]["version"], 1,
        "removal deleted the version history: {redeployed}"
    );
    let mut observer = host.connect("doomed").await;
    for id in [&first_id, &second_id] {
        assert_eq!(observer.on_close_of(id).await, function_removed);
        assert_eq!(
            observer.closes_of(id).await,
            1,
            "on-close ran once for {id}"
        );
    }
}

/// The admin API's record of the only connection of `function` in `group`.
async fn connection_in_group(host: &Host, function: &str, group: &str) -> Value {
    let connections = host.admin().connections(function).await;
    let mut members = connections
        .into_iter()
        .filter(|connection| connection["groups"] == json!([group]));
    let member = members
        .next()
        .unwrap_or_else(|| panic!("a connection of {function} in {group}"));
    assert!(members.next().is_none(), "one connection is in {group}");
    member
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_listed_and_reachable_by_id_with_text_and_binary() {
    let connected_after = now_ms();
    let host = Host::builder().function("notify").start().await;
    let admin = host.admin();
    let mut bob = host.connect("notify?user=bob").await;
    let mut carol = host.connect("notify?user=carol").await;

    let listed = admin.connections("notify").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let bob_record = connection_in_group(&host, "notify", "user:bob").await;
    let connected_at = bob_record["connected_at_ms"].as_u64().unwrap();
    assert!(
        (connected_after..=now_ms()).contains(&connected_at),
        "{bob_record}"
    );
    let remote = bob_record["remote"].as_str().unwrap();
    assert!(remote.starts_with("127.0.0.1:"), "{bob_record}");
    let bob_id = bob_record["id"].as_str().unwrap().to_owned();
    let carol_id = connection_in_group(&host, "notify", "user:carol").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(bob_id, carol_id);
    admin
        .get("/v1/functions/no-such-function/connections")
        .await
        .expect_error(404);

    let text = "pushed by the operator ✓";
    let pushed = admin
        .post(&format!("/v1/connections/{bob_id}/send"), TEXT, text)
        .await
        .expect_json(200);
    assert_eq!(pushed, json!({"delivered": 1}));
    assert_eq!(bob.receive_text().await, text);

    let bytes = vec![0u8, 1, 2, 0xfe, 0xff];
    admin
        .post(
            &format!("/v1/connections/{bob_id}/send"),
            OCTET_STREAM,
            bytes.clone(),
        )
        .await
        .expect_json(200);
    assert_eq!(bob.receive_binary().await, bytes);

    admin
        .post(
            &format!("/v1/connections/{bob_id}/send"),
            TEXT,
            vec![0xffu8, 0xfe],
        )
        .await
        .expect_error(400);
    admin
        .post("/v1/connections/no-such-connection/send", TEXT, "hello?")
        .await
        .expect_error(404);

    // Sends to one connection arrive in order, so carol's next message being her own push
    // shows that nothing sent to bob reached her.
    admin
        .post(&format!("/v1/connections/{carol_id}/send"), TEXT, "carol")
        .await
        .expect_json(200);
    assert_eq!(carol.receive_text().await, "carol");

    // A closed connection is forgotten shortly after its close handshake; from then on it
    // cannot be reached.
    carol.close(1000, "").await;
    poll_until("pushes to a closed connection are refused", async || {
        let answer = admin
            .post(&format!("/v1/connections/{carol_id}/send"), TEXT, "gone?")
            .await;
        match answer.status {
            404 => Some(answer.expect_error(404)),
            200 => None,
            _ => panic!("a push to a closing connection is delivered or refused: {answer}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_push_reaches_every_member_and_no_one_else() {
    let host = Host::builder()
        .function("notify")
        .function("chat")
        .start()
        .await;
    let admin = host.admin();
    let mut bob_phone = host.connect("notify?user=bob").await;
    let mut bob_laptop = host.connect("notify?user=bob").await;
    let mut carol = host.connect("notify?user=carol").await;

    let pushed = admin
        .post("/v1/functions/notify/groups/user:bob/send", TEXT, "for bob")
        .await
        .expect_json(200);
    assert_eq!(pushed, json!({"delivered": 2}));
    assert_eq!(bob_phone.receive_text().await, "for bob");
    assert_eq!(bob_laptop.receive_text().await, "for bob");

    let bytes = vec![7u8, 0, 7];
    let pushed = admin
        .post(
            "/v1/functions/notify/groups/user:bob/send",
            OCTET_STREAM,
            bytes.clone(),
        )
        .await
        .expect_json(200);
    assert_eq!(pushed, json!({"delivered": 2}));
    assert_eq!(bob_phone.receive_binary().await, bytes);
    assert_eq!(bob_laptop.receive_binary().await, bytes);

    let pushed = admin
        .post(
            "/v1/functions/notify/groups/user:carol/send",
            TEXT,
            "for carol",
        )
        .await
        .expect_json(200);
    assert_eq!(pushed, json!({"delivered": 1}));
    assert_eq!(
        carol.receive_text().await,
        "for carol",
        "nothing meant for bob reached carol first"
    );

    let nobody = admin
        .post(
            "/v1/functions/notify/groups/user:nobody/send",
            TEXT,
            "hello?",
        )
        .await
        .expect_json(200);
    assert_eq!(nobody, json!({"delivered": 0}));
    admin
        .post(
            "/v1/functions/no-such-function/groups/user:bob/send",
            TEXT,
            "x",
        )
        .await
        .expect_error(404);

    // Groups belong to their function: chat's room `user:bob` is not notify's group.
    let mut ann = host.connect("chat?room=lobby&user=ann").await;
    let mut dan = host.connect("chat?room=lobby&user=dan").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "dan"})
    );
    let pushed = admin
        .post("/v1/functions/chat/groups/lobby/send", TEXT, "room notice")
        .await
        .expect_json(200);
    assert_eq!(pushed, json!({"delivered": 2}));
    assert_eq!(ann.receive_text().await, "room notice");
    assert_eq!(dan.receive_text().await, "room notice");
    let pushed = admin
        .post(
            "/v1/functions/chat/groups/user:bob/send",
            TEXT,
            "wrong function",
        )
        .await
        .expect_json(200);
    assert_eq!(pushed, json!({"delivered": 0}));
    admin
        .post("/v1/functions/notify/groups/user:bob/send", TEXT, "last")
        .await
        .expect_json(200);
    assert_eq!(bob_phone.receive_text().await, "last");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_close_sends_its_code_and_reason_and_runs_on_close() {
    let host = Host::builder().function("lifecycle").start().await;
    let admin = host.admin();
    let mut observer = host.connect("lifecycle").await;
    let mut target = host.connect("lifecycle").await;
    let target_id = target.connection_id().await;

    let closing = admin
        .delete(&format!("/v1/connections/{target_id}?code=4000&reason=bye"))
        .await
        .expect_json(202);
    assert_eq!(closing["id"], target_id.as_str(), "{closing}");
    assert_eq!(closing["code"], 4000, "{closing}");
    assert_eq!(target.expect_close().await, CloseInfo::new(4000, "bye"));
    assert_eq!(
        observer.on_close_of(&target_id).await,
        CloseInfo::new(4000, "bye")
    );
    assert_eq!(observer.closes_of(&target_id).await, 1);

    let mut defaulted = host.connect("lifecycle").await;
    let defaulted_id = defaulted.connection_id().await;
    admin
        .delete(&format!("/v1/connections/{defaulted_id}"))
        .await
        .expect_json(202);
    let expected = CloseInfo::new(1000, "closed by the operator");
    assert_eq!(defaulted.expect_close().await, expected);
    assert_eq!(observer.on_close_of(&defaulted_id).await, expected);

    let mut kept = host.connect("lifecycle").await;
    let kept_id = kept.connection_id().await;
    let too_long = "x".repeat(124);
    for query in [
        "code=1006".to_owned(),
        "code=2000".to_owned(),
        format!("reason={too_long}"),
        // Not a number: refused as a JSON error like the rest (the admin_api fuzz target
        // found these answered in plain text).
        "code=4/00&reassn=~ye".to_owned(),
        "code=70000".to_owned(),
    ] {
        admin
            .delete(&format!("/v1/connections/{kept_id}?{query}"))
            .await
            .expect_error(400);
    }
    admin
        .delete("/v1/connections/no-such-connection")
        .await
        .expect_error(404);
    // A path that is not UTF-8 once decoded is refused by the router before any handler: as
    // JSON too (found by the admin_api fuzz target).
    admin
        .delete("/v1/connections/9ab%89")
        .await
        .expect_error(400);
    admin.get("/v1/functions/%FF").await.expect_error(400);
    assert_eq!(
        kept.ask("still open").await,
        "still open",
        "refused closes leave the connection open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_refused_with_a_reason_and_the_running_version_keeps_serving() {
    let host = Host::builder()
        .function_served_as("swap", "swap-a")
        // Below the size of the chat sample, above that of swap-a and swap-b.
        .max_component_size("64KiB")
        .start()
        .await;
    let admin = host.admin();
    let mut existing = host.connect("swap").await;
    let too_large = function_bytes("chat");
    assert!(too_large.len() > 64 * 1024 && function_bytes("swap-b").len() < 64 * 1024);
    let long_name = "n".repeat(65);
    let mut garbage_component = b"\0asm\x0d\0\x01\0".to_vec();
    garbage_component.extend_from_slice(b"this is no section");

    let bad_uploads: [(&str, &str, Vec<u8>, u16); 9] = [
        ("not wasm", "swap", b"#!/bin/sh\necho hello\n".to_vec(), 400),
        ("an empty body", "swap", Vec::new(), 400),
        ("a core module", "swap", CORE_MODULE.to_vec(), 400),
        ("a bad name", "bad.name", function_bytes("swap-b"), 400),
        ("a name too long", &long_name, function_bytes("swap-b"), 400),
        ("too large", "swap", too_large, 413),
        (
            "garbage after a component header",
            "swap",
            garbage_component,
            422,
        ),
        (
            "a component without handlers",
            "swap",
            COMPONENT_WITHOUT_HANDLERS.to_vec(),
            422,
        ),
        (
            "a component needing an unknown import",
            "swap",
            COMPONENT_WITH_UNKNOWN_IMPORT.to_vec(),
            422,
        ),
    ];
    for (what, name, bytes, status) in bad_uploads {
        let answer = admin.put_function(name, bytes).await;
        assert_eq!(answer.status, status, "{what}: {answer}");
        let message = answer.expect_error(status);
        eprintln!("{what}: refused with {status}: {message}");

        assert_eq!(
            existing.ask(what).await,
            format!("a:{what}"),
            "after {what}, an open connection is still served by the running version"
        );
        assert_eq!(
            host.connect("swap").await.ask(what).await,
            format!("a:{what}"),
            "after {what}, a new connection is served by the running version"
        );
        if name != "swap" {
            admin
                .get(&format!("/v1/functions/{name}"))
                .await
                .expect_error(404);
        }
    }

    let versions = admin
        .get("/v1/functions/swap/versions")
        .await
        .expect_json(200);
    assert_eq!(version_numbers(&versions), [1], "nothing was stored");
    assert_eq!(
        admin.deploy("swap", function_bytes("swap-b")).await,
        2,
        "refused uploads use up no version number"
    );
    assert_eq!(existing.ask("after").await, "b:after");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_far_over_the_size_limit_is_refused_with_413_and_a_json_error() {
    let host = Host::builder()
        .function_served_as("swap", "swap-a")
        .max_component_size("64KiB")
        .start()
        .await;
    let admin = host.admin();
    // Far over both limits a body may be measured against (the component size and the
    // message size), so the host may stop reading it early; the answer is still the API's.
    let mut huge = b"\0asm\x0d\0\x01\0".to_vec();
    huge.resize(4 << 20, 0);

    admin
        .request_reading_early(Method::PUT, "/v1/functions/swap", "application/wasm", huge)
        .await
        .expect_error(413);
    assert_eq!(host.connect("swap").await.ask("still").await, "a:still");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_refuses_a_non_loopback_address_without_a_token() {
    let dir = TestDir::new();
    let data_dir = dir.data_dir().display().to_string();
    let echo = function_wasm("echo").display().to_string();

    // The host must refuse before serving anything, so no traffic ever goes to the address.
    let output = run_wsfn_host(
        dir.path(),
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
            "--data-dir",
            &data_dir,
            &echo,
        ],
        &[],
    )
    .await;

    let message = output.expect_failure();
    assert!(message.contains("token"), "{output:?}");
    assert!(
        !output.stdout.contains("listening"),
        "nothing was served: {output:?}"
    );
    assert!(
        !dir.data_dir().join("admin-token").exists(),
        "no token is generated for a non-loopback address"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_and_methods_are_answered_with_json_errors() {
    let host = Host::builder().function("echo").start().await;
    let admin = host.admin();

    admin.get("/v1/no-such-route").await.expect_error(404);
    admin
        .request(Method::PATCH, "/v1/functions/echo", None, Vec::new())
        .await
        .expect_error(405);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_for_a_missing_token_names_the_bearer_scheme() {
    let host = Host::builder().function("echo").start().await;

    // RFC 9110 (15.5.2): a 401 must say which authentication scheme would be accepted.
    let refused = host.admin().without_token().get("/v1/functions").await;

    let challenge = refused
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("a 401 carries WWW-Authenticate: {refused}"));
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    refused.expect_error(401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_name_a_function_could_not_use_is_refused_with_400() {
    let host = Host::builder().function("notify").start().await;
    let too_long = "g".repeat(129);
    let refused = host
        .admin()
        .post(
            &format!("/v1/functions/notify/groups/{too_long}/send"),
            TEXT,
            "x",
        )
        .await
        .expect_error(400);
    assert!(refused.contains("1 to 128 bytes"), "{refused}");
}
