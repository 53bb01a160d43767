//! The dashboard's static files (`web/public` at `/` and `/ui`, uPlot at `/vendor/uplot`), with
//! the headers that keep the page to its own scripts. Which folder, and whether at all, is
//! `[dashboard]` (`crate::dashboard::DashboardConfig`). The static files are public: they hold
//! no data (see `crate::dashboard` on why the page keeps its token out of URLs and cookies).

use crate::dashboard::DashboardConfig;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use std::path::Path;
use tower_http::services::{ServeDir, ServeFile};

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
    use std::path::PathBuf;
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
}
