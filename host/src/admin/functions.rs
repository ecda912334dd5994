//! Admin routes for functions: list, inspect, deploy (or hot-swap), remove, versions, rollback.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::Body;
use super::error::{ApiError, ErrorBody};
use crate::catalog::VersionInfo;
use crate::functions::FunctionSlot;
use crate::host::Host;
use crate::stats::StatsSnapshot;

/// A deployed function.
#[derive(Serialize, ToSchema)]
pub struct FunctionSummary {
    pub name: String,
    /// The version being served.
    pub current: VersionInfo,
    /// Open connections to the function on this host.
    pub connections: usize,
}

/// One function in detail: its summary plus bookkeeping and counters.
#[derive(Serialize, ToSchema)]
pub struct FunctionDetail {
    #[serde(flatten)]
    pub summary: FunctionSummary,
    /// Groups with at least one member.
    pub groups: usize,
    /// Keys the function keeps in the key-value store.
    pub kv_keys: usize,
    /// Faults and slow-consumer events since the host started.
    pub stats: StatsSnapshot,
}

/// The answer to a deploy.
#[derive(Serialize, ToSchema)]
pub struct DeployResult {
    pub name: String,
    /// The version now being served.
    pub version: VersionInfo,
    /// True if the uploaded bytes were already the current version, so nothing changed.
    pub unchanged: bool,
}

/// The answer to a removal.
#[derive(Serialize, ToSchema)]
pub struct RemoveResult {
    pub name: String,
    /// Connections that were closed with 1001.
    pub closed_connections: usize,
}

/// The stored versions of a function.
#[derive(Serialize, ToSchema)]
pub struct VersionList {
    pub name: String,
    /// The version being served.
    pub current: u64,
    /// Every stored version, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// Which version to roll back to; without it, the one before the current version.
#[derive(Deserialize, ToSchema, Default)]
pub struct RollbackRequest {
    pub version: Option<u64>,
}

fn summary(host: &Host, slot: &FunctionSlot) -> FunctionSummary {
    FunctionSummary {
        name: slot.scope.name.to_string(),
        current: slot.current().info().clone(),
        connections: host.connections.count_for(&slot.scope),
    }
}

fn find(host: &Host, name: &str) -> Result<Arc<FunctionSlot>, ApiError> {
    host.functions
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no function named `{name}`")))
}

/// Lists the deployed functions.
#[utoipa::path(get, path = "/v1/functions", tag = "functions",
    responses((status = 200, body = [FunctionSummary]), (status = 401, body = ErrorBody)))]
pub async fn list_functions(State(host): State<Arc<Host>>) -> Json<Vec<FunctionSummary>> {
    Json(
        host.functions
            .list()
            .iter()
            .map(|slot| summary(&host, slot))
            .collect(),
    )
}

/// Shows one function: its current version, connections, groups, key count and counters.
#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = FunctionDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_function(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> Result<Json<FunctionDetail>, ApiError> {
    let slot = find(&host, &name)?;
    let kv_keys = host
        .kv
        .key_count(&slot.scope.name)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(FunctionDetail {
        summary: summary(&host, &slot),
        groups: slot.scope.groups.len(),
        kv_keys,
        stats: slot.scope.metrics.stats(),
    }))
}

/// Deploys a component as a new function, or as a new version of an existing one (hot swap).
///
/// The component is compiled, checked against the `wsfn:function/function` world and
/// instantiated once before anything changes; when this returns, every new event runs on the
/// new version while events already running finish on the old one. No connection is closed.
#[utoipa::path(put, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name: 1 to 64 letters, digits, `-` or `_`")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component's bytes"),
    responses(
        (status = 201, description = "A new version is being served", body = DeployResult),
        (status = 200, description = "The bytes were already the current version", body = DeployResult),
        (status = 400, description = "Not a WebAssembly component, or a bad name", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "Larger than the component size limit", body = ErrorBody),
        (status = 422, description = "Does not compile, does not fit the world, or fails to start", body = ErrorBody),
        (status = 500, description = "The host could not compile or store the component", body = ErrorBody)))]
pub async fn put_function(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<DeployResult>), ApiError> {
    let deployed = host.functions.deploy(&name, body.to_vec()).await?;
    let status = if deployed.unchanged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(DeployResult {
            name,
            version: deployed.info,
            unchanged: deployed.unchanged,
        }),
    ))
}

/// Removes a function and all its versions; its connections are closed with 1001.
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = RemoveResult), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_function(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> Result<Json<RemoveResult>, ApiError> {
    let closed_connections = host.functions.remove(&name).await?;
    Ok(Json(RemoveResult {
        name,
        closed_connections,
    }))
}

/// Lists the stored versions of a function.
#[utoipa::path(get, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = VersionList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_versions(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let slot = find(&host, &name)?;
    let versions = host.functions.versions(&name)?;
    Ok(Json(VersionList {
        name,
        current: slot.current().info().version,
        versions,
    }))
}

/// Serves an earlier version again: the one given, or the one before the current version.
#[utoipa::path(post, path = "/v1/functions/{name}/rollback", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = Option<RollbackRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The version now being served", body = VersionInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "There is no earlier version", body = ErrorBody)))]
pub async fn rollback(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Json<VersionInfo>, ApiError> {
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("expected {{\"version\": N}}: {e}")))?
    };
    Ok(Json(host.functions.rollback(&name, request.version).await?))
}
