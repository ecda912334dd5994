//! Raw bytes as an HTTP request to a function's path, read by the handshake's steps that
//! look at nothing but the request: the upgrade checks, the session parameters, the
//! WebSocket key, the permessage-deflate offers, the signed-URL parameters and the query and
//! subprotocols on-connect is given. The host's signing key is fixed; `signed` requires a
//! signature, `echo` does not.
//!
//! Asserted beyond "no panic": a refusal is a client error (4xx); an accepted request's
//! query never shows on-connect the session parameters, nor, once verified, the signature;
//! a signed function is never reached without a valid signature; subprotocols are trimmed,
//! non-empty names; compression uses a window of 9 to 15 bits.
#![no_main]

use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use wsfn_host::fuzzing::read_request;
use wsfn_host::signing::{SigningKey, UrlSigning, is_reserved};

static SIGNING: LazyLock<UrlSigning> = LazyLock::new(|| {
    let key = SigningKey::new(vec![7; 32]).expect("a 32-byte key");
    UrlSigning::new(Some(key), ["signed".to_owned()])
});

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else {
        return;
    };
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
        return;
    };
    let mut builder = http::Request::builder().method(method).uri(path);
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let Ok(request) = builder.body(Body::empty()) else {
        return;
    };
    // The function is the path's first segment, as the router gives it.
    let function = if request.uri().path().starts_with("/signed") {
        "signed"
    } else {
        "echo"
    };
    let remote = SocketAddr::from(([127, 0, 0, 1], 40000));
    match read_request(&SIGNING, function, remote, request) {
        Err(status) => assert!(status.is_client_error(), "refused with {status}"),
        Ok(read) => {
            for (name, _) in &read.query {
                assert!(
                    name != "wsfn-session" && name != "wsfn-resume",
                    "{name} shown"
                );
                if read.signed {
                    assert!(!is_reserved(name), "{name} shown after verifying");
                }
            }
            if function == "signed" {
                assert!(
                    read.signed,
                    "a signed-only function reached without a signature"
                );
            }
            for protocol in &read.subprotocols {
                assert!(!protocol.is_empty() && protocol.trim() == protocol);
                assert!(!protocol.contains(','));
            }
            if let Some((_, compression)) = &read.compression {
                assert!((9..=15).contains(&compression.window_bits));
            }
        }
    }
});
