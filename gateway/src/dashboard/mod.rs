//! The web dashboard: static files from the `web/` folder served at `/`. The few read-only
//! API routes its pages need beyond the clue API are served at the HTTP layer
//! (`crate::http::dashboard`).
//!
//! The front-end is plain ES modules (no build step); its one library, uPlot for charts, comes
//! from npm into `web/node_modules` (`npm ci` in set-up) and is served under `/vendor/uplot/`.
//! Nothing is fetched from the internet at run time.
//!
//! Authentication stays the API's: the page keeps the bearer token in `sessionStorage` and
//! sends it as `Authorization` on every call, including the SSE stream, which it reads with
//! `fetch` rather than `EventSource` (that cannot send headers). So no token ever appears in a
//! URL (server logs, browser history, `Referer`) and there is no cookie to be sent by other
//! sites' forms: no CSRF surface. Images that need a token are fetched the same way and shown
//! from `blob:` URLs. The static files themselves are public: they hold no data.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tower_http::services::{ServeDir, ServeFile};

/// Upper bound of `dashboard.history_points` (a day at one reading a minute).
pub const MAX_HISTORY_POINTS: usize = 1440;

/// `[dashboard]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve the dashboard at `/` (the API is served either way).
    pub enabled: bool,
    /// The `web/` folder (holding `public/` and `node_modules/`). Default: a `web/` in the
    /// working folder or one of its two parents, else beside the executable or one of its
    /// parent folders (a source checkout).
    pub dir: Option<PathBuf>,
    /// Recent values kept in memory per device metric for the charts (16 bytes each; 0: none).
    pub history_points: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            dir: None,
            history_points: crate::history::DEFAULT_POINTS_PER_METRIC,
        }
    }
}

impl DashboardConfig {
    /// A configured `dir` must hold `public/index.html`; the history stays modest.
    pub fn validate(&self) -> Result<(), crate::config_error::ConfigError> {
        if self.history_points > MAX_HISTORY_POINTS {
            return Err(crate::config_error::invalid(
                "dashboard.history_points",
                format!("at most {MAX_HISTORY_POINTS} (the database keeps the full history)"),
            ));
        }
        if let Some(dir) = &self.dir
            && self.enabled
            && !dir.join("public/index.html").is_file()
        {
            return Err(crate::config_error::invalid(
                "dashboard.dir",
                format!("{} has no public/index.html", dir.display()),
            ));
        }
        Ok(())
    }

    /// The `web/` folder to serve, if any is found.
    pub fn resolve_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.dir {
            return Some(d.clone());
        }
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            candidates.extend(cwd.ancestors().take(3).map(|p| p.join("web")));
        }
        if let Ok(exe) = std::env::current_exe() {
            candidates.extend(exe.ancestors().skip(1).take(5).map(|p| p.join("web")));
        }
        candidates
            .into_iter()
            .find(|d| d.join("public/index.html").is_file())
    }
}

/// Routes for the static front-end; empty when disabled or when no `web/` folder is found
/// (logged once, with the key to set).
pub fn static_routes<S: Clone + Send + Sync + 'static>(cfg: &DashboardConfig) -> Router<S> {
    if !cfg.enabled {
        return Router::new();
    }
    let Some(dir) = cfg.resolve_dir() else {
        tracing::warn!(
            "dashboard not served: no web/public/index.html found (set dashboard.dir or \
             GATEWAY_DASHBOARD__DIR to the repository's web/ folder)"
        );
        return Router::new();
    };
    files(&dir)
}

fn files<S: Clone + Send + Sync + 'static>(dir: &Path) -> Router<S> {
    let public = dir.join("public");
    let uplot = dir.join("node_modules/uplot/dist");
    if !uplot.join("uPlot.esm.js").is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "dashboard charts unavailable: web/node_modules/uplot missing (run `npm ci` in web/)"
        );
    }
    tracing::info!(dir = %public.display(), "dashboard served at /");
    // ServeDir refuses `..` and absolute segments, so nothing outside these folders is served.
    Router::new()
        .route_service("/", ServeFile::new(public.join("index.html")))
        .nest_service("/ui", ServeDir::new(public))
        .nest_service("/vendor/uplot", ServeDir::new(uplot))
        .layer(axum::middleware::map_response(security_headers))
}

/// The page loads only its own scripts; images may come from `blob:` (fetched evidence).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; \
             connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn web_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let web = t.path().join("web");
        std::fs::create_dir_all(web.join("public/js")).expect("mkdir");
        std::fs::write(web.join("public/index.html"), "<h1>hi</h1>").expect("write");
        std::fs::write(web.join("public/js/app.js"), "export {}").expect("write");
        std::fs::write(t.path().join("secret.txt"), "no").expect("write");
        (t, web)
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let res = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_index_and_assets_but_nothing_outside() {
        let (_t, web) = web_dir();
        let app: Router = files(&web);
        assert_eq!(
            get(app.clone(), "/").await,
            (StatusCode::OK, "<h1>hi</h1>".into())
        );
        assert_eq!(get(app.clone(), "/ui/js/app.js").await.0, StatusCode::OK);
        for bad in [
            "/ui/../../secret.txt",
            "/ui/%2e%2e/%2e%2e/secret.txt",
            "/ui/..%2f..%2fsecret.txt",
        ] {
            let (status, body) = get(app.clone(), bad).await;
            assert_ne!(body, "no", "{bad} escaped the folder");
            assert!(status.is_client_error(), "{bad}: {status}");
        }
    }

    #[test]
    fn a_configured_dir_must_hold_the_page() {
        let (_t, web) = web_dir();
        let ok = DashboardConfig {
            dir: Some(web.clone()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.resolve_dir(), Some(web.clone()));
        let bad = DashboardConfig {
            dir: Some(web.join("public")),
            ..Default::default()
        };
        let e = bad.validate().expect_err("no public/ inside");
        assert!(e.to_string().contains("dashboard.dir"), "{e}");
        let big = DashboardConfig {
            history_points: MAX_HISTORY_POINTS + 1,
            ..Default::default()
        };
        let e = big.validate().expect_err("too many points");
        assert!(e.to_string().contains("dashboard.history_points"), "{e}");
    }
}
