//! Who may change a running Weir, and what a reload may open: the admin
//! token, checked in constant time on every mutating request, and the files a
//! reload with `?path=` may load (a regular file inside the plugin's directory
//! or a configured `plugin_dir`, no larger than the plugin size cap).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The token mutating requests must carry as `Authorization: Bearer TOKEN`.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// The expected token.
    pub fn new(token: &str) -> Self {
        Self(Arc::from(token))
    }

    /// Whether `given` is the token. The time taken depends on neither the
    /// tokens' contents nor their lengths (both are hashed first), so it
    /// tells an attacker nothing about how close a guess was.
    pub fn accepts(&self, given: &str) -> bool {
        let (a, b) = (
            Sha256::digest(given.as_bytes()),
            Sha256::digest(self.0.as_bytes()),
        );
        let difference = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(difference) == 0
    }
}

/// Refuse requests without the right token (401), when a token is set.
pub async fn require_token(
    State(token): State<Option<AdminToken>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.accepts(given) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "error": "missing or wrong admin token; send `Authorization: Bearer <admin_token>`"
        })),
    )
        .into_response()
}

/// Why a reload path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathRefused {
    /// Outside every allowed directory, or missing (which is not said apart,
    /// so a refusal does not tell which files exist elsewhere).
    #[error("a reload path must be an existing file inside {allowed}; other paths are not opened")]
    Outside {
        /// The allowed directories, for the operator.
        allowed: String,
    },
    /// Inside, but not a regular file (a FIFO, a device, a directory).
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// Inside, but larger than the cap.
    #[error("{path} is {size} bytes, over the plugin size cap of {cap} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
}

/// Check that `requested` may be loaded: resolved (symbolic links and `..`
/// followed), it lies inside one of `allowed`, and is a regular file of at
/// most `cap` bytes. Returns the resolved path, which is what gets loaded.
pub fn allowed_reload_path(
    requested: &Path,
    allowed: &[PathBuf],
    cap: u64,
) -> Result<PathBuf, PathRefused> {
    let outside = || PathRefused::Outside {
        allowed: allowed
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    };
    let resolved = requested.canonicalize().map_err(|_| outside())?;
    let inside = allowed
        .iter()
        .filter_map(|dir| dir.canonicalize().ok())
        .any(|dir| resolved.starts_with(dir));
    if !inside {
        return Err(outside());
    }
    let meta = std::fs::metadata(&resolved).map_err(|_| outside())?;
    if !meta.is_file() {
        return Err(PathRefused::NotAFile(resolved));
    }
    if meta.len() > cap {
        return Err(PathRefused::TooLarge {
            path: resolved,
            size: meta.len(),
            cap,
        });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_compared_whole() {
        let token = AdminToken::new("s3cret-token-0123456789");
        assert!(token.accepts("s3cret-token-0123456789"));
        assert!(!token.accepts("s3cret-token-012345678"));
        assert!(!token.accepts("s3cret-token-01234567890"));
        assert!(!token.accepts(""));
    }

    #[test]
    fn only_regular_files_inside_the_allowed_directories_of_bounded_size_load() {
        let root = std::env::temp_dir().join(format!("weir-reload-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let plugins = root.join("plugins");
        let elsewhere = root.join("elsewhere");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(plugins.join("good.wasm"), b"0123456789").unwrap();
        std::fs::write(elsewhere.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("secret"), plugins.join("link.wasm")).unwrap();
        let fifo = plugins.join("fifo.wasm");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let allowed = [plugins.clone()];

        let good = allowed_reload_path(&plugins.join("good.wasm"), &allowed, 100).unwrap();
        assert_eq!(good, plugins.canonicalize().unwrap().join("good.wasm"));
        for outside in [
            elsewhere.join("secret"),
            plugins.join("link.wasm"),
            plugins.join("../elsewhere/secret"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/dev/zero"),
            plugins.join("missing.wasm"),
        ] {
            let refused = allowed_reload_path(&outside, &allowed, 100).unwrap_err();
            assert!(
                matches!(refused, PathRefused::Outside { .. }),
                "{outside:?}: {refused}"
            );
        }
        assert!(matches!(
            allowed_reload_path(&fifo, &allowed, 100),
            Err(PathRefused::NotAFile(_))
        ));
        assert!(matches!(
            allowed_reload_path(&plugins.join("good.wasm"), &allowed, 5),
            Err(PathRefused::TooLarge { .. })
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
