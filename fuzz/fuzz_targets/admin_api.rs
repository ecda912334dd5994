//! Raw text as a request to the admin API of a host running in this process (memory store,
//! no functions deployed), through the admin router the host serves: `METHOD PATH` on the
//! first line, `name: value` headers up to an empty line, then the body. The admin token is
//! added unless the input brings its own `authorization` header.
//!
//! Asserted beyond "no panic": the API never answers 5xx to a request of a client; every
//! refusal has the documented JSON body `{"error": "..."}`; without the token nothing but
//! `/healthz` (and the OpenAPI document) is answered with success.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use wsfn_host::admin::{AdminToken, router};
use wsfn_host::launch::{RunningHost, Secret, Settings, start};
use wsfn_host::state::StoreKind;

const TOKEN: &str = "fuzz-admin-token-0123456789abcdef";

struct Running {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _host: RunningHost,
}

static HOST: LazyLock<Running> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = std::env::temp_dir().join(format!("wsfn-fuzz-admin-{}", std::process::id()));
    let mut settings = Settings::new(&dir);
    settings.listen = "127.0.0.1:0".parse().expect("an address");
    settings.admin_listen = "127.0.0.1:0".parse().expect("an address");
    settings.store = StoreKind::Memory;
    settings.admin_token = Some(Secret::Value(TOKEN.to_owned()));
    settings.signing_key = Some(Secret::Value("k".repeat(32)));
    let host = runtime
        .block_on(start(settings))
        .expect("an in-process host starts");
    let router = router(host.host().clone(), AdminToken::new(TOKEN));
    Running {
        runtime,
        router,
        _host: host,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = split_head(data) else {
        return;
    };
    let mut lines = head.lines();
    let Some((method, path)) = lines.next().and_then(|line| line.split_once(' ')) else {
        return;
    };
    let mut builder = http::Request::builder().method(method).uri(path);
    let mut authorized = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return;
        };
        if name.eq_ignore_ascii_case("authorization") {
            authorized = value.trim() == format!("Bearer {TOKEN}");
        }
        builder = builder.header(name.trim(), value.trim());
    }
    if !head.to_ascii_lowercase().contains("\nauthorization:") {
        builder = builder.header("authorization", format!("Bearer {TOKEN}"));
    }
    let Ok(request) = builder.body(Body::from(body.to_vec())) else {
        return;
    };
    let running = &*HOST;
    let path = request.uri().path().to_owned();
    running.runtime.block_on(async {
        let response = running
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        assert!(
            !status.is_server_error() || status == 503,
            "{status} for {method} {path}"
        );
        if !authorized && status.is_success() {
            assert!(
                path == "/healthz" || path == "/v1/openapi.json",
                "{path} answered without the token"
            );
        }
        if status.is_client_error() {
            let body = tokio::time::timeout(
                Duration::from_secs(5),
                axum::body::to_bytes(response.into_body(), 1 << 20),
            )
            .await
            .expect("an error body is sent at once")
            .expect("an error body");
            let json: serde_json::Value =
                serde_json::from_slice(&body).expect("an error body is JSON");
            assert!(
                json.get("error").and_then(|e| e.as_str()).is_some(),
                "{json}"
            );
        }
    });
});

/// The text up to the first empty line, and the bytes after it.
fn split_head(data: &[u8]) -> Option<(&str, &[u8])> {
    let end = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match end {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    Some((std::str::from_utf8(head).ok()?, body))
}
