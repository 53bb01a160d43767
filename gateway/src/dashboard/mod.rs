//! The web dashboard: its `[dashboard]` section and where its `web/` folder is. The files are
//! served at `/` by the HTTP layer (`crate::http::web`), and the read-only API routes its pages
//! need beyond the clue API are served there too (`http::auth` whoami, `http::devices`
//! readings and events, `http::cameras`).
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

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Upper bound of `dashboard.history_points` (a day at one reading a minute).
pub(crate) const MAX_HISTORY_POINTS: usize = 1440;

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
    pub(crate) fn validate(&self) -> Result<(), crate::config_error::ConfigError> {
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
    pub(crate) fn resolve_dir(&self) -> Option<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn web_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let web = t.path().join("web");
        std::fs::create_dir_all(web.join("public/js")).expect("mkdir");
        std::fs::write(web.join("public/index.html"), "<h1>hi</h1>").expect("write");
        std::fs::write(web.join("public/js/app.js"), "export {}").expect("write");
        std::fs::write(t.path().join("secret.txt"), "no").expect("write");
        (t, web)
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
