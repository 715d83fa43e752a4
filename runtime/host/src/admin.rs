//! The admin HTTP endpoint (localhost by default): metrics, health, plugin
//! versions, reload and rollback.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /metrics` | every metric, in the Prometheus text format (see `metrics`) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once every pipeline's plugins are loaded, its consumer joined its group and a broker is reachable; 503 before (the body says which is missing) |
//! | `GET /plugins` | every plugin: current and previous version (hash, path, loaded-at), reload counts |
//! | `GET /plugins/{name}` | one plugin |
//! | `POST /plugins/{name}/reload[?path=FILE]` | load the plugin again (from `FILE` if given); 200 with the version in use, 422 if the new version was refused |
//! | `POST /plugins/{name}/rollback` | put the previous version back; 409 if there is none |

use crate::reload::{Command, ReloadError, ReloadHandle, Trigger};
use crate::telemetry::PipelineHealth;
use crate::telemetry::{self, Metrics};
use crate::wasm::PluginSlot;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A plugin the endpoint manages.
pub struct ManagedPlugin {
    /// Its live version.
    pub slot: Arc<PluginSlot>,
    /// Where reloads go.
    pub reloads: ReloadHandle,
}

/// The admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for the admin endpoint on {addr}: {source}; choose another address with --admin-addr (e.g. 127.0.0.1:0 for any free port) or turn it off with --admin-addr off")]
pub struct AdminError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// What the endpoint serves.
struct AdminState {
    metrics: Arc<Metrics>,
    pipelines: Vec<Arc<PipelineHealth>>,
    /// Set once the plugins are loaded.
    plugins: OnceLock<Vec<ManagedPlugin>>,
}

type Shared = Arc<AdminState>;

/// The running endpoint.
pub struct AdminServer {
    state: Shared,
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
}

impl AdminServer {
    /// Start serving the plugin routes, for `plugins` (once; later calls are ignored).
    pub fn manage(&self, plugins: Vec<ManagedPlugin>) {
        let _ = self.state.plugins.set(plugins);
    }
}

/// Listen on `addr` and serve the endpoint in the background: `metrics`, the
/// readiness of `pipelines`, and (once [`AdminServer::manage`] hands them over)
/// the plugins.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    pipelines: Vec<Arc<PipelineHealth>>,
) -> Result<AdminServer, AdminError> {
    let fail = |source| AdminError { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    if !bound.ip().is_loopback() {
        tracing::warn!(addr = %bound, "the admin endpoint is reachable from other machines; it can reload plugins");
    }
    let state = Arc::new(AdminState {
        metrics,
        pipelines,
        plugins: OnceLock::new(),
    });
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/plugins", get(list))
        .route("/plugins/{name}", get(show))
        .route("/plugins/{name}/reload", post(reload))
        .route("/plugins/{name}/rollback", post(rollback))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "admin endpoint listening");
    Ok(AdminServer { state, addr: bound })
}

async fn metrics_text(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, telemetry::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "alive": true })).into_response()
}

async fn readyz(State(state): State<Shared>) -> Response {
    let pipelines: Vec<_> = state.pipelines.iter().map(|p| p.readiness()).collect();
    let ready = pipelines.iter().all(|p| p.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": ready, "pipelines": pipelines });
    (status, Json(body)).into_response()
}

/// Why a plugin route has no plugin to act on.
enum Refusal {
    /// The plugins are still loading.
    Loading,
    /// No plugin has this name.
    NotFound(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Loading => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugins are still loading; try again shortly".to_string(),
            ),
            Refusal::NotFound(name) => {
                error(StatusCode::NOT_FOUND, format!("no plugin named `{name}`"))
            }
        }
    }
}

/// The managed plugins, once loaded.
fn plugins(state: &AdminState) -> Result<&[ManagedPlugin], Refusal> {
    state
        .plugins
        .get()
        .map(Vec::as_slice)
        .ok_or(Refusal::Loading)
}

async fn list(State(state): State<Shared>) -> Response {
    match plugins(&state) {
        Ok(all) => Json(all.iter().map(|p| p.slot.status()).collect::<Vec<_>>()).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn show(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Ok(plugin) => Json(plugin.slot.status()).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Query of a reload request.
#[derive(Debug, Deserialize)]
struct ReloadQuery {
    /// Load this file instead of the current version's.
    path: Option<PathBuf>,
}

async fn reload(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(query): Query<ReloadQuery>,
) -> Response {
    let plugin = match find(&state, &name) {
        Ok(plugin) => plugin,
        Err(refusal) => return refusal.into_response(),
    };
    let command = Command::Reload {
        trigger: Trigger::Admin,
        path: query.path,
    };
    outcome(plugin.reloads.request(command).await)
}

async fn rollback(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let plugin = match find(&state, &name) {
        Ok(plugin) => plugin,
        Err(refusal) => return refusal.into_response(),
    };
    outcome(plugin.reloads.request(Command::Rollback).await)
}

/// The plugin named `name`, or the response saying why there is none.
fn find<'a>(state: &'a AdminState, name: &str) -> Result<&'a ManagedPlugin, Refusal> {
    plugins(state)?
        .iter()
        .find(|p| p.slot.name() == name)
        .ok_or_else(|| Refusal::NotFound(name.to_string()))
}

fn outcome(result: Result<crate::wasm::VersionInfo, ReloadError>) -> Response {
    match result {
        Ok(info) => Json(info).into_response(),
        Err(e) => {
            let status = match e {
                ReloadError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ReloadError::NoPrevious => StatusCode::CONFLICT,
                ReloadError::Closed => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, e.to_string())
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
