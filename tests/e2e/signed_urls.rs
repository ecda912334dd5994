//! Signed connection URLs: minted by the admin API or by a function, checked by the host before
//! on-connect. The `lifecycle` fixture records what on-connect saw (`last-connect`) and counts
//! every on-connect run, so a refusal can be shown to have run no function code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{Client, Host, JSON, poll_until, raw_upgrade};

const KEY: &str = "test signing key, long enough for HMAC-SHA256";

async fn signing_host() -> Host {
    Host::builder()
        .function("lifecycle")
        .function_served_as("other", "lifecycle")
        .signing_key(KEY)
        .start()
        .await
}

/// `POST /v1/functions/{function}/signed-url` with `body`, which must succeed.
async fn mint(host: &Host, function: &str, body: Value) -> Value {
    host.admin()
        .post(
            &format!("/v1/functions/{function}/signed-url"),
            JSON,
            body.to_string(),
        )
        .await
        .expect_json(200)
}

fn path_of(minted: &Value) -> String {
    minted["path"]
        .as_str()
        .unwrap_or_else(|| panic!("a signed URL has a path: {minted}"))
        .to_owned()
}

/// What on-connect of the lifecycle fixture saw last.
async fn last_connect(client: &mut Client) -> Value {
    let text = client.ask("last-connect").await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("last-connect is JSON: {text:?}: {e}"))
}

/// Asserts that the host refuses `path` with 401 and returns the reason it gave.
async fn refused(host: &Host, path: &str) -> String {
    let answer = raw_upgrade(host.addr(), path, &[]).await;
    let reason = String::from_utf8_lossy(&answer.body).into_owned();
    assert_eq!(answer.status, 401, "{path} should be refused: {reason:?}");
    assert!(!reason.trim().is_empty(), "a refusal says why");
    reason
}

/// Replaces the value of the query pair `name` in a path.
fn with_pair(path: &str, name: &str, value: &str) -> String {
    let (route, query) = path.split_once('?').expect("a signed path has a query");
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == name => format!("{key}={value}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{route}?{}", query.join("&"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_from_the_admin_api_connects_and_on_connect_sees_the_signed_query() {
    let host = signing_host().await;
    let minted = mint(
        &host,
        "lifecycle",
        json!({"query": [["room", "a b&c"], ["user", "ann"], ["room", "two"]], "ttl_seconds": 60}),
    )
    .await;
    let path = path_of(&minted);
    assert!(path.starts_with("/lifecycle?"), "{minted}");
    assert_eq!(minted["url"], format!("ws://{}{path}", host.addr()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires_at = minted["expires_at"]
        .as_u64()
        .expect("expires_at in seconds");
    assert!((now + 59..=now + 61).contains(&expires_at), "{minted}");

    let mut client = host.connect(&path).await;
    assert_eq!(
        last_connect(&mut client).await,
        json!({"signed": true, "query": [["room", "a b&c"], ["user", "ann"], ["room", "two"]]})
    );

    // An object keeps its pairs in the order written (sent as text: `json!` would sort them).
    let minted = host
        .admin()
        .post(
            "/v1/functions/lifecycle/signed-url",
            JSON,
            r#"{"query": {"b": "2", "a": "1"}}"#,
        )
        .await
        .expect_json(200);
    let mut client = host.connect(&path_of(&minted)).await;
    assert_eq!(
        last_connect(&mut client).await,
        json!({"signed": true, "query": [["b", "2"], ["a", "1"]]})
    );

    // Without a signature a connection is accepted as before, and not signed.
    let mut client = host.connect("lifecycle?room=a").await;
    assert_eq!(
        last_connect(&mut client).await,
        json!({"signed": false, "query": [["room", "a"]]})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_altered_misdirected_and_malformed_urls_get_401_before_on_connect() {
    let host = signing_host().await;
    let mut observer = host.connect("lifecycle").await;
    let connects_before = observer.stats().await.connects;
    let path = path_of(&mint(&host, "lifecycle", json!({"query": [["room", "a"]]})).await);
    let (_, signature) = path.split_once("wsfn-signature=").unwrap();
    let forged: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    let for_other = path_of(&mint(&host, "other", json!({"query": [["room", "a"]]})).await);

    let attempts = [
        with_pair(&path, "wsfn-signature", &forged),
        with_pair(&path, "room", "b"),
        format!("{path}&admin=1"),
        path.replacen("room=a&", "", 1),
        with_pair(&path, "wsfn-expires", "99999999999"),
        for_other.replacen("/other?", "/lifecycle?", 1),
        with_pair(&path, "wsfn-signature", "not-hex"),
        with_pair(&path, "wsfn-expires", "soon"),
        path.split("&wsfn-signature").next().unwrap().to_owned(),
        format!("{path}&wsfn-expires=1"),
    ];
    for attempt in &attempts {
        refused(&host, attempt).await;
    }
    assert_eq!(
        refused(&host, &with_pair(&path, "room", "b")).await,
        "the signature does not match"
    );

    // The genuine URLs still work, each for its own function.
    host.connect(&path).await;
    host.connect(&for_other).await;
    assert_eq!(
        observer.stats().await.connects,
        connects_before + 1,
        "no refused attempt reached on-connect"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_url_gets_401() {
    let host = signing_host().await;
    let minted = mint(&host, "lifecycle", json!({"ttl_seconds": 1})).await;
    let path = path_of(&minted);
    let expires_at = UNIX_EPOCH + Duration::from_secs(minted["expires_at"].as_u64().unwrap());
    poll_until("the signed URL has expired", async || {
        (SystemTime::now() >= expires_at).then_some(())
    })
    .await;

    let mut observer = host.connect("lifecycle").await;
    let connects_before = observer.stats().await.connects;
    assert_eq!(refused(&host, &path).await, "the signed URL has expired");
    assert_eq!(observer.stats().await.connects, connects_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_requires_signed_urls_refuses_unsigned_ones() {
    let host = Host::builder()
        .function("lifecycle")
        .function("echo")
        .signing_key(KEY)
        .option("--require-signed", "lifecycle")
        .start()
        .await;
    assert_eq!(
        refused(&host, "lifecycle?room=a").await,
        "this function accepts only signed URLs"
    );
    // Other functions are unaffected.
    host.connect("echo").await;

    let path = path_of(&mint(&host, "lifecycle", json!({})).await);
    let mut client = host.connect(&path).await;
    assert_eq!(
        client.stats().await.connects,
        1,
        "the unsigned attempt never reached on-connect"
    );
    assert_eq!(
        last_connect(&mut client).await,
        json!({"signed": true, "query": []})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_mints_urls_for_itself() {
    let host = signing_host().await;
    let mut client = host.connect("other").await;
    let path = client.ask("mint 60000 room=x&user=y").await;
    assert!(
        path.starts_with("/other?room=x&user=y&wsfn-expires="),
        "{path}"
    );

    let mut minted = host.connect(&path).await;
    assert_eq!(
        last_connect(&mut minted).await,
        json!({"signed": true, "query": [["room", "x"], ["user", "y"]]})
    );
    // Signed for the function that minted it, and no other.
    refused(&host, &path.replacen("/other?", "/lifecycle?", 1)).await;

    assert!(client.ask("mint 0 room=x").await.starts_with("error: "));
    assert!(
        client
            .ask("mint 60000 wsfn-signature=x")
            .await
            .starts_with("error: ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_and_a_host_without_a_key_are_refused_clearly() {
    let host = signing_host().await;
    let admin = host.admin();
    let post = |function: &str, body: &str| {
        let admin = admin.clone();
        let path = format!("/v1/functions/{function}/signed-url");
        let body = body.to_owned();
        async move { admin.post(&path, JSON, body).await }
    };
    post("nope", "{}").await.expect_error(404);
    post("lifecycle", r#"{"ttl_seconds": 0}"#)
        .await
        .expect_error(400);
    post("lifecycle", r#"{"ttl_seconds": 86401}"#)
        .await
        .expect_error(400);
    post("lifecycle", r#"{"query": [["wsfn-expires", "1"]]}"#)
        .await
        .expect_error(400);
    post("lifecycle", r#"{"query": "room=a"}"#)
        .await
        .expect_error(400);
    post("lifecycle", r#"{"ttl": 5}"#).await.expect_error(400);
    post("lifecycle", "not json").await.expect_error(400);

    let keyless = Host::builder().function("lifecycle").start().await;
    let message = keyless
        .admin()
        .post("/v1/functions/lifecycle/signed-url", JSON, "{}")
        .await
        .expect_error(409);
    assert!(message.contains("signing key"), "{message}");
    let mut client = keyless.connect("lifecycle").await;
    let answer = client.ask("mint 60000 room=x").await;
    assert!(
        answer.starts_with("error: ") && answer.contains("signing key"),
        "{answer}"
    );
    // A URL signed elsewhere is not taken on trust.
    let path = path_of(&mint(&host, "lifecycle", json!({})).await);
    refused(&keyless, &path).await;
}
