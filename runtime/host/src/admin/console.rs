//! The web console at `/`: one HTML page, its script and its styles, embedded
//! in the binary (no build step, no CDN). The page reads the same endpoints
//! as any scraper (`/metrics`, `/readyz`, `/plugins`); its reload and
//! rollback buttons post to the control endpoint when it is served there.

use axum::http::header;
use axum::response::IntoResponse;

/// What the browser may load: only this origin's own files, no inline
/// scripts, no framing by other sites.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /`: the page.
pub async fn page() -> impl IntoResponse {
    asset(
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    )
}

/// `GET /console.js`.
pub async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    )
}

/// `GET /console.css`.
pub async fn styles() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    )
}
