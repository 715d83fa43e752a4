//! The admin HTTP endpoint (localhost by default): plugin versions, reload and
//! rollback.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /plugins` | every plugin: current and previous version (hash, path, loaded-at), reload counts |
//! | `GET /plugins/{name}` | one plugin |
//! | `POST /plugins/{name}/reload[?path=FILE]` | load the plugin again (from `FILE` if given); 200 with the version in use, 422 if the new version was refused |
//! | `POST /plugins/{name}/rollback` | put the previous version back; 409 if there is none |

use crate::reload::{Command, ReloadError, ReloadHandle, Trigger};
use crate::wasm::PluginSlot;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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

type Plugins = Arc<Vec<ManagedPlugin>>;

/// Listen on `addr` and serve the endpoint in the background. Returns the
/// address actually bound (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    plugins: Vec<ManagedPlugin>,
) -> Result<SocketAddr, AdminError> {
    let fail = |source| AdminError { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    if !bound.ip().is_loopback() {
        tracing::warn!(addr = %bound, "the admin endpoint is reachable from other machines; it can reload plugins");
    }
    let app = Router::new()
        .route("/plugins", get(list))
        .route("/plugins/{name}", get(show))
        .route("/plugins/{name}/reload", post(reload))
        .route("/plugins/{name}/rollback", post(rollback))
        .with_state(Arc::new(plugins));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "admin endpoint listening");
    Ok(bound)
}

async fn list(State(plugins): State<Plugins>) -> Response {
    let all: Vec<_> = plugins.iter().map(|p| p.slot.status()).collect();
    Json(all).into_response()
}

async fn show(State(plugins): State<Plugins>, Path(name): Path<String>) -> Response {
    match find(&plugins, &name) {
        Some(plugin) => Json(plugin.slot.status()).into_response(),
        None => not_found(&name),
    }
}

/// Query of a reload request.
#[derive(Debug, Deserialize)]
struct ReloadQuery {
    /// Load this file instead of the current version's.
    path: Option<PathBuf>,
}

async fn reload(
    State(plugins): State<Plugins>,
    Path(name): Path<String>,
    Query(query): Query<ReloadQuery>,
) -> Response {
    let Some(plugin) = find(&plugins, &name) else {
        return not_found(&name);
    };
    let command = Command::Reload {
        trigger: Trigger::Admin,
        path: query.path,
    };
    outcome(plugin.reloads.request(command).await)
}

async fn rollback(State(plugins): State<Plugins>, Path(name): Path<String>) -> Response {
    let Some(plugin) = find(&plugins, &name) else {
        return not_found(&name);
    };
    outcome(plugin.reloads.request(Command::Rollback).await)
}

fn find<'a>(plugins: &'a Plugins, name: &str) -> Option<&'a ManagedPlugin> {
    plugins.iter().find(|p| p.slot.name() == name)
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

fn not_found(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no plugin named `{name}`"))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
