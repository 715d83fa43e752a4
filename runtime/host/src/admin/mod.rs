//! The admin HTTP endpoints: a read-only one (`admin_addr`) that anyone who
//! can reach it may scrape, and a control one (`control_addr`, loopback by
//! default) that changes plugins and needs the admin token when one is set
//! (always, off loopback). Both cap their connections and time out slow peers
//! (`guard`); `control` checks the token and reload paths.
//!
//! Read-only listener:
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the web console (`console`): pipelines, plugins, partitions with lag, failures by kind |
//! | `GET /metrics` | every metric, in the Prometheus text format (see `metrics`) |
//! | `GET /history` | the last ten minutes, sampled every 5 s: per partition lag and committed offset, per pipeline records consumed and failures by kind (for the console's charts) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once every pipeline's plugins are loaded, its consumer joined its group and a broker is reachable; 503 before (the body says which is missing) |
//! | `GET /plugins` | every plugin: current and previous version (hash, path, loaded-at), reload counts |
//! | `GET /plugins/{name}` | one plugin |
//!
//! Control listener (`Authorization: Bearer <admin_token>` when a token is set):
//!
//! | method and path | what |
//! |---|---|
//! | `GET /plugins`, `GET /plugins/{name}` | as above |
//! | `POST /plugins/{name}/reload[?path=FILE]` | load the plugin again (from `FILE` if given: a regular file inside the plugin's directory or a `plugin_dir`); 200 with the version in use, 422 if the new version was refused, 403 for a path outside |
//! | `POST /plugins/{name}/rollback` | put the previous version back; 409 if there is none |
//! | `GET /dead-letters[?kind=K&limit=N]` | the newest dead letters of every pipeline, with key and value previews (`dead_letters`; not on the read-only listener: they carry record contents) |

mod console;
mod control;
mod dead_letters;
mod guard;

use control::{allowed_reload_path, AdminToken};
pub use dead_letters::DeadLetterView;
use guard::GuardedListener;

use crate::reload::{Command, ReloadError, ReloadHandle, Trigger};
use crate::telemetry::history::History;
use crate::telemetry::PipelineHealth;
use crate::telemetry::{self, Metrics};
use crate::wasm::PluginSlot;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a read-only connection may stay open, and a request take there.
const READ_ONLY_LIFETIME: Duration = Duration::from_secs(30);
const READ_ONLY_DEADLINE: Duration = Duration::from_secs(10);
/// The same on the control listener, where a reload may compile a large
/// plugin for a while.
const CONTROL_LIFETIME: Duration = Duration::from_secs(300);
const CONTROL_DEADLINE: Duration = Duration::from_secs(240);
/// Largest request body either listener reads (none of the routes needs one).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Where the admin endpoints listen and who may use the control one.
#[derive(Debug, Clone, Default)]
pub struct AdminSettings {
    /// The read-only endpoint; `None` when off.
    pub addr: Option<SocketAddr>,
    /// The control endpoint; `None` when off.
    pub control_addr: Option<SocketAddr>,
    /// The token control requests must carry, if any.
    pub token: Option<String>,
    /// Directories (besides each plugin's own) a reload may load files from.
    pub plugin_dirs: Vec<PathBuf>,
}

/// A plugin the endpoint manages.
pub struct ManagedPlugin {
    /// Its live version.
    pub slot: Arc<PluginSlot>,
    /// Where reloads go.
    pub reloads: ReloadHandle,
    /// The directory of its configured file, where reloads may load from.
    pub dir: PathBuf,
}

/// An admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Its address cannot be bound.
    #[error("cannot listen for the {what} endpoint on {addr}: {source}; choose another address with --{what}-addr (e.g. 127.0.0.1:0 for any free port) or turn it off with --{what}-addr off")]
    Listen {
        /// `admin` or `control`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The control endpoint would be reachable from other machines without a token.
    #[error("the control endpoint on {addr} would let anyone who reaches it reload plugins; set an admin token (admin_token or WEIR_ADMIN_TOKEN) or keep --control-addr on loopback")]
    TokenNeeded {
        /// The address.
        addr: SocketAddr,
    },
}

/// What the endpoints serve.
struct AdminState {
    metrics: Arc<Metrics>,
    history: Arc<History>,
    /// Where each pipeline's dead letters are (for the control endpoint).
    dead_letters: Vec<DeadLetterView>,
    /// One dead-letter read at a time: each makes Kafka consumers and holds
    /// letters in memory, so requests must not pile them up.
    letters_read: Arc<tokio::sync::Semaphore>,
    pipelines: Vec<Arc<PipelineHealth>>,
    /// Set once the plugins are loaded.
    plugins: OnceLock<Vec<ManagedPlugin>>,
    /// Where reloads may load files from, besides each plugin's own directory.
    plugin_dirs: Vec<PathBuf>,
}

type Shared = Arc<AdminState>;

/// The running endpoints.
pub struct AdminServer {
    state: Shared,
    /// The read-only endpoint's address as bound (useful with port 0).
    pub addr: Option<SocketAddr>,
    /// The control endpoint's address as bound.
    pub control_addr: Option<SocketAddr>,
}

impl AdminServer {
    /// Start serving the plugin routes, for `plugins` (once; later calls are ignored).
    pub fn manage(&self, plugins: Vec<ManagedPlugin>) {
        let _ = self.state.plugins.set(plugins);
    }
}

/// Listen as `settings` say and serve the endpoints in the background:
/// `metrics`, the readiness of `pipelines`, and (once [`AdminServer::manage`]
/// hands them over) the plugins.
pub async fn serve(
    settings: &AdminSettings,
    metrics: Arc<Metrics>,
    pipelines: Vec<Arc<PipelineHealth>>,
    dead_letters: Vec<DeadLetterView>,
) -> Result<AdminServer, AdminError> {
    let history = Arc::new(History::default());
    if settings.addr.is_some() || settings.control_addr.is_some() {
        history.spawn_sampler(Arc::clone(&metrics));
    }
    let state = Arc::new(AdminState {
        metrics,
        history,
        dead_letters,
        letters_read: Arc::new(tokio::sync::Semaphore::new(1)),
        pipelines,
        plugins: OnceLock::new(),
        plugin_dirs: settings.plugin_dirs.clone(),
    });
    let mut server = AdminServer {
        state: Arc::clone(&state),
        addr: None,
        control_addr: None,
    };
    if let Some(addr) = settings.addr {
        let app = read_only_routes().with_state(Arc::clone(&state));
        let limits = (READ_ONLY_LIFETIME, READ_ONLY_DEADLINE);
        let bound = listen(addr, limits, app, "admin").await?;
        server.addr = Some(bound);
    }
    if let Some(addr) = settings.control_addr {
        let token = settings.token.as_deref().map(AdminToken::new);
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(AdminError::TokenNeeded { addr });
        }
        let app = read_only_routes()
            .route("/plugins/{name}/reload", post(reload))
            .route("/plugins/{name}/rollback", post(rollback))
            .route("/dead-letters", get(dead_letters::dead_letters))
            .layer(axum::middleware::from_fn_with_state(
                token,
                control::require_token,
            ))
            .with_state(Arc::clone(&state));
        let limits = (CONTROL_LIFETIME, CONTROL_DEADLINE);
        let bound = listen(addr, limits, app, "control").await?;
        server.control_addr = Some(bound);
    }
    Ok(server)
}

/// The routes that change nothing.
fn read_only_routes() -> Router<Shared> {
    Router::new()
        .route("/", get(console::page))
        .route("/console.js", get(console::script))
        .route("/console.css", get(console::styles))
        .route("/metrics", get(metrics_text))
        .route("/history", get(history))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/plugins", get(list))
        .route("/plugins/{name}", get(show))
}

/// Bind `addr` and serve `app` there in the background, each connection
/// living at most `lifetime` and each request answered within `deadline`,
/// reading no body over [`MAX_BODY_BYTES`]; `what` names the endpoint in logs.
async fn listen(
    addr: SocketAddr,
    (lifetime, deadline): (Duration, Duration),
    app: Router,
    what: &'static str,
) -> Result<SocketAddr, AdminError> {
    let app = app
        .layer(axum::middleware::from_fn(move |request, next| {
            guard::deadline(deadline, request, next)
        }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let fail = |source| AdminError::Listen { what, addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    if !bound.ip().is_loopback() {
        tracing::info!(addr = %bound, "the {what} endpoint is reachable from other machines");
    }
    let listener = GuardedListener::new(listener, lifetime);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "{what} endpoint listening");
    Ok(bound)
}

async fn metrics_text(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, telemetry::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn history(State(state): State<Shared>) -> Response {
    Json(state.history.points()).into_response()
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
    let path = match query.path {
        None => None,
        Some(requested) => {
            let allowed: Vec<PathBuf> = std::iter::once(plugin.dir.clone())
                .chain(state.plugin_dirs.iter().cloned())
                .collect();
            match allowed_reload_path(&requested, &allowed, crate::wasm::MAX_PLUGIN_BYTES) {
                Ok(path) => Some(path),
                Err(refused) => return error(StatusCode::FORBIDDEN, refused.to_string()),
            }
        }
    };
    let command = Command::Reload {
        trigger: Trigger::Admin,
        path,
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
