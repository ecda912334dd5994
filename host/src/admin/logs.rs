//! `GET /v1/functions/{name}/logs`: a function's live log as newline-delimited JSON.
//!
//! The response is chunked and stays open: every line the guest prints and every connect,
//! refusal, close, fault, deploy and rollback is sent as it happens, one JSON object per line.
//! A client that reads too slowly is not waited for: it loses lines and is told how many with
//! a `lagged` line. The stream ends when the client goes away, or once a shutting-down host
//! has closed every connection (so the close lines of the shutdown are still delivered).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody};
use crate::host::Host;
use crate::observe::{LogEvent, LogLine, Received, Subscription};

/// The content type of newline-delimited JSON.
const NDJSON: &str = "application/x-ndjson";

/// One follower's stream.
struct Follow {
    subscription: Subscription,
    /// Resolves once the host has shut down and every connection task has finished.
    drained: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

fn ndjson(received: Received) -> String {
    match received {
        Received::Line(line) => line.to_ndjson(),
        Received::Lagged(missed) => LogLine::now(LogEvent::Lagged { missed }).to_ndjson(),
    }
}

/// The next chunk of the stream, or `None` when it is over.
async fn next_chunk(mut follow: Follow) -> Option<(Result<Bytes, Infallible>, Follow)> {
    if follow.ended {
        return None;
    }
    tokio::select! {
        biased;
        received = follow.subscription.next() => {
            let received = received?;
            Some((Ok(Bytes::from(ndjson(received))), follow))
        }
        () = &mut follow.drained => {
            // What was published before the drain completed still goes out, then the end.
            let mut rest = String::new();
            while let Some(received) = follow.subscription.try_next() {
                rest.push_str(&ndjson(received));
            }
            follow.ended = true;
            Some((Ok(Bytes::from(rest)), follow))
        }
    }
}

/// Follows a function's log: guest output and lifecycle events, as they happen.
///
/// Each line is a JSON object with `ts` (UTC, RFC 3339) and `kind` — `stdout`, `stderr`
/// (`connection`, `text`), `connect` (`connection`, `remote`), `reject` (`status`, `remote`,
/// `reason`), `close` (`connection`, `code`, `reason`), `fault` (`fault`, `event`,
/// `connection`, `message`), `deploy` (`version`), `rollback` (`version`, `from`), `removed`,
/// or `lagged` (`missed`: lines this client lost by reading too slowly).
#[utoipa::path(get, path = "/v1/functions/{name}/logs", tag = "observability",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "A stream of log lines that stays open", body = String, content_type = "application/x-ndjson"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn follow_logs(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let slot = host
        .functions
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no function named `{name}`")))?;
    // Subscribed before the answer is sent, so a client that has the headers misses nothing.
    let subscription = slot.scope.logs.subscribe();
    let tasks = host.tasks.clone();
    let follow = Follow {
        subscription,
        drained: Box::pin(async move { tasks.wait().await }),
        ended: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(follow, next_chunk));
    Ok((
        [
            (header::CONTENT_TYPE, NDJSON),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}
