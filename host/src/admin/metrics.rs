//! `GET /metrics`: the host's Prometheus metrics (see `observe::metrics` for what they are).
//!
//! It needs the admin token like every other admin route — a scraper sends it with
//! `authorization.credentials_file` — unless the host runs with `--public-metrics`, for
//! scrapers that cannot hold a secret. The figures say how busy each function is but carry no
//! message content or client data.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::ErrorBody;
use crate::host::Host;

/// The content type of the OpenMetrics text format, which Prometheus negotiates for.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics of every function in the OpenMetrics text format, for Prometheus.
#[utoipa::path(get, path = "/metrics", tag = "observability",
    responses(
        (status = 200, description = "Counters, gauges and latency histograms labelled by function",
            body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401, body = ErrorBody)))]
pub async fn metrics(State(host): State<Arc<Host>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], host.metrics.encode())
}
