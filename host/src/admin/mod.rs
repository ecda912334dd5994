//! The admin API: deploy and hot-swap functions, roll back, reach connections and groups,
//! mint signed connection URLs.
//!
//! JSON over HTTP on its own listener (loopback by default). Every route but `/healthz`
//! requires the admin bearer token (`/metrics` too, unless the host runs with
//! `--public-metrics`). The OpenAPI document at `/v1/openapi.json` is generated
//! from the same annotations that register the routes, so it cannot drift from them.

mod auth;
mod body;
mod connections;
mod error;
mod functions;
mod logs;
mod metrics;
mod signing;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::AdminToken;
pub use error::{ApiError, ErrorBody};

use crate::host::Host;

#[derive(OpenApi)]
#[openapi(
    info(title = "wsfn admin API", description = "Deploy, hot-swap and roll back WebSocket functions; reach their connections and groups."),
    modifiers(&BearerToken),
    security(("admin_token" = [])),
    tags(
        (name = "functions", description = "Deployed functions and their versions"),
        (name = "connections", description = "Open connections and groups"),
        (name = "health", description = "Liveness"),
        (name = "observability", description = "Prometheus metrics and live function logs"),
    )
)]
struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Answers `ok` while the host runs; needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The host is running", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// The routes and their OpenAPI document, from the same source.
fn routes() -> (Router<Arc<Host>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(functions::list_functions))
        .routes(routes!(
            functions::get_function,
            functions::put_function,
            functions::delete_function
        ))
        .routes(routes!(functions::list_versions))
        .routes(routes!(functions::rollback))
        .routes(routes!(signing::signed_url))
        .routes(routes!(connections::list_connections))
        .routes(routes!(connections::send_to_connection))
        .routes(routes!(connections::close_connection))
        .routes(routes!(connections::publish_to_group))
        .routes(routes!(metrics::metrics))
        .routes(routes!(logs::follow_logs))
        .split_for_parts()
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{HttpMethod, PathItem, Response, path::OperationBuilder};
    let (_, mut document) = routes();
    let operation = OperationBuilder::new()
        .summary(Some("This document"))
        .tag("health")
        .response("200", Response::new("The OpenAPI 3 document of this API"))
        .response("401", Response::new("Missing or wrong admin token"));
    document.paths.paths.insert(
        "/v1/openapi.json".into(),
        PathItem::new(HttpMethod::Get, operation),
    );
    document
}

/// The router of the admin listener.
pub fn router(host: Arc<Host>, token: AdminToken) -> Router {
    let (router, _) = routes();
    let document = Arc::new(openapi());
    let body_limit = host
        .limits
        .max_component_size
        .max(host.limits.max_message_size)
        + 1;
    router
        .route(
            "/v1/openapi.json",
            get(move || async move { Json(document.as_ref().clone()) }),
        )
        // Every error of the API is JSON, including for routes and methods it does not have.
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::not_found(format!("no admin route {method} {}", uri.path()))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            let message = format!(
                "{method} is not allowed on {}; see /v1/openapi.json",
                uri.path()
            );
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message)
        })
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(host)
}
