//! The muck-truck permits in force: those of `[[muck_trucks.permits]]` plus those written
//! through the API and kept in the clue store (`PermitRecords`), so a permit can be granted or
//! revoked without a restart.
//!
//! **Which wins.** The configuration: a plate listed in `[[muck_trucks.permits]]` is judged by
//! that entry, and the API refuses to write or revoke it (409: change it in the file, where it
//! was reviewed). A stored permit for a plate the configuration gained later is kept but not
//! in force (`in_force: false` in the list) until the configuration drops the plate.
//!
//! **Freshness.** This gateway's own API changes are in force when the answer is sent (the
//! stored list is re-read after each write). Another gateway's changes on a shared PostgreSQL
//! are picked up by the periodic re-read (`[muck_trucks] permits_reload_s`, 30 s).

use super::muck::{MuckSection, Permit};
use crate::clue::store::PermitRow;
use crate::vision::dwell::normalize_plate;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::warn;

/// A permit as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PermitView {
    #[serde(flatten)]
    pub permit: Permit,
    /// `config` or `api`.
    pub source: &'static str,
    /// False for a stored permit whose plate the configuration also lists (the configured one
    /// is judged).
    pub in_force: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// Stored permits as read, and the merged list the judging reads on every frame.
struct Lists {
    stored: Vec<(PermitRow, Permit)>,
    merged: Arc<Vec<Permit>>,
}

/// The permits in force for the muck cameras of one gateway.
pub(crate) struct MuckPermits {
    config: Vec<Permit>,
    config_plates: HashSet<String>,
    /// Camera ids a permit's route may name, with their positions.
    cameras: HashMap<String, Option<[f64; 2]>>,
    /// Sites of the muck cameras: whoever sees one of them reads the permits.
    sites: Vec<String>,
    lists: RwLock<Lists>,
    /// How often [`reload_every`] re-reads the stored permits.
    reload: Duration,
    /// Held from a read of the store to setting what it read: a periodic re-read that
    /// started before a revocation committed cannot put the revoked permit back after the
    /// revoking route's own re-read.
    reloading: tokio::sync::Mutex<()>,
}

impl MuckPermits {
    pub(crate) fn new(section: &MuckSection) -> MuckPermits {
        let mut sites: Vec<String> = section.cameras.iter().map(|c| c.site.clone()).collect();
        sites.sort();
        sites.dedup();
        MuckPermits {
            config_plates: section
                .permits
                .iter()
                .map(|p| normalize_plate(&p.plate))
                .collect(),
            config: section.permits.clone(),
            cameras: section
                .camera_ids()
                .into_iter()
                .map(|(c, p)| (c.to_string(), p))
                .collect(),
            sites,
            lists: RwLock::new(Lists {
                stored: Vec::new(),
                merged: Arc::new(section.permits.clone()),
            }),
            reload: Duration::from_secs(section.permits_reload_s.max(1)),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The permits judged now: the configured ones, then the stored ones of other plates.
    pub(crate) fn current(&self) -> Arc<Vec<Permit>> {
        self.lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .merged
            .clone()
    }

    /// Replaces the stored permits with `rows` (as read from the store). A row that is no
    /// permit any more (written by a newer gateway, or edited by hand) is logged and skipped.
    pub(crate) fn set_stored(&self, rows: Vec<PermitRow>) {
        let stored: Vec<(PermitRow, Permit)> = rows
            .into_iter()
            .filter_map(|r| match serde_json::from_value::<Permit>(r.permit.clone()) {
                Ok(p) => Some((r, p)),
                Err(e) => {
                    warn!(plate = %r.plate, error = %e, "stored muck-truck permit unreadable; not in force");
                    None
                }
            })
            .collect();
        let mut merged = self.config.clone();
        merged.extend(
            stored
                .iter()
                .filter(|(r, _)| !self.config_plates.contains(&r.plate))
                .map(|(_, p)| p.clone()),
        );
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        *lists = Lists {
            stored,
            merged: Arc::new(merged),
        };
    }

    /// Reads the stored permits and puts them in force (see `reloading`).
    pub(crate) async fn reload(
        &self,
        pool: &crate::clue::PoolHandle,
    ) -> Result<(), crate::clue::pool::PoolError> {
        let _one_at_a_time = self.reloading.lock().await;
        self.set_stored(pool.muck_permits().await?);
        Ok(())
    }

    /// Whether the configuration holds `plate` (normalised).
    pub(crate) fn configured(&self, plate: &str) -> bool {
        self.config_plates.contains(plate)
    }

    /// Whether a token seeing `sees` may read the permits: it sees a muck camera's site.
    pub(crate) fn readable_by(&self, sees: impl Fn(&str) -> bool) -> bool {
        self.sites.iter().any(|s| sees(s))
    }

    /// Whether a token seeing `sees` may change them: a permit is judged on every muck camera,
    /// so the writer must see every muck camera's site.
    pub(crate) fn writable_by(&self, sees: impl Fn(&str) -> bool) -> bool {
        self.sites.iter().all(|s| sees(s))
    }

    /// Every permit, configured first, then the stored ones by plate.
    pub(crate) fn list(&self) -> Vec<PermitView> {
        let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<PermitView> = self
            .config
            .iter()
            .map(|p| PermitView {
                permit: p.clone(),
                source: "config",
                in_force: true,
                updated_ms: None,
                updated_by: None,
            })
            .collect();
        out.extend(lists.stored.iter().map(|(r, p)| PermitView {
            permit: p.clone(),
            source: "api",
            in_force: !self.config_plates.contains(&r.plate),
            updated_ms: Some(r.updated_ms),
            updated_by: Some(r.updated_by.clone()),
        }));
        out
    }

    /// The permit of `plate` (normalised) in force, else a stored one.
    pub(crate) fn get(&self, plate: &str) -> Option<PermitView> {
        let all = self.list();
        let of = |v: &&PermitView| normalize_plate(&v.permit.plate) == plate;
        all.iter()
            .find(|v| of(v) && v.in_force)
            .or_else(|| all.iter().find(of))
            .cloned()
    }

    /// A permit written through the API, checked as a configured one is: the error names the
    /// field (`plate`, `cameras[1]`, `hours[0]`).
    pub(crate) fn parse(&self, body: serde_json::Value) -> Result<Permit, String> {
        let permit: Permit =
            serde_json::from_value(body).map_err(|e| format!("bad permit: {e}"))?;
        let cameras: HashMap<&str, Option<[f64; 2]>> =
            self.cameras.iter().map(|(c, p)| (c.as_str(), *p)).collect();
        permit
            .check(&cameras)
            .map_err(|(field, e)| format!("{field}: {e}"))?;
        Ok(permit)
    }
}

/// Re-reads the stored permits every `permits_reload_s` until `cancel`; a failed read keeps
/// the last list (logged).
pub(crate) async fn reload_every(
    permits: Arc<MuckPermits>,
    pool: crate::clue::PoolHandle,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(permits.reload);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match pool.muck_permits().await {
            Ok(rows) => permits.set_stored(rows),
            Err(e) => {
                warn!(error = %e, "stored muck-truck permits not re-read; the last list stays")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn permits() -> MuckPermits {
        let c = Config::from_toml(
            r#"
[[muck_trucks.cameras]]
site = "s1"
camera = "ring-rd"
[[muck_trucks.cameras]]
site = "s2"
camera = "bridge"
[[muck_trucks.permits]]
plate = "苏E5T703"
hours = ["22:00-06:00"]
"#,
        )
        .unwrap();
        MuckPermits::new(&c.muck_trucks)
    }

    fn row(plate: &str, permit: serde_json::Value) -> PermitRow {
        PermitRow {
            plate: plate.into(),
            permit,
            updated_ms: 5,
            updated_by: "root#1".into(),
        }
    }

    #[test]
    fn the_configured_permit_wins_and_stored_ones_come_and_go() {
        let m = permits();
        assert_eq!(m.current().len(), 1);
        m.set_stored(vec![
            row(
                "沪B74992",
                json!({"plate": "沪B74992", "cameras": ["bridge"]}),
            ),
            // The configured plate: kept, listed, not judged.
            row("苏E5T703", json!({"plate": "苏E5T703"})),
            row("浙A12345", json!({"plate": "浙A12345", "colour": "red"})),
        ]);
        let cur = m.current();
        let plates: Vec<&str> = cur.iter().map(|p| p.plate.as_str()).collect();
        assert_eq!(plates, ["苏E5T703", "沪B74992"], "unreadable row skipped");
        assert_eq!(cur[0].hours.len(), 1, "the configured one is judged");
        let got = m.get("苏E5T703").unwrap();
        assert_eq!((got.source, got.in_force), ("config", true));
        let shadowed: Vec<_> = m.list().into_iter().filter(|v| !v.in_force).collect();
        assert_eq!(shadowed.len(), 1);
        assert_eq!(shadowed[0].source, "api");
        // Revoked: gone from what is judged.
        m.set_stored(vec![]);
        assert_eq!(m.current().len(), 1);
        assert!(m.get("沪B74992").is_none());
    }

    #[test]
    fn an_api_permit_is_checked_like_a_configured_one_and_errors_name_the_field() {
        let m = permits();
        let e = |v| m.parse(v).unwrap_err();
        assert!(e(json!({"plate": "E5T"})).starts_with("plate:"));
        assert!(e(json!({"plate": "沪B7/4992"})).starts_with("plate:"));
        assert!(
            e(json!({"plate": "沪B74992", "cameras": ["bridge", "x"]})).starts_with("cameras[1]:")
        );
        assert!(e(json!({"plate": "沪B74992", "hours": ["22:00"]})).contains("hours"));
        assert!(e(json!({"plate": "沪B74992", "route": 1})).contains("route"));
        // A route drawn as areas needs every muck camera placed (none is here).
        let area = json!([[120.6, 31.28], [120.65, 31.28], [120.65, 31.32]]);
        let r = e(json!({"plate": "沪B74992", "route_areas": [area]}));
        assert!(
            r.starts_with("route_areas:") && r.contains("position"),
            "{r}"
        );
        let r = e(
            json!({"plate": "沪B74992", "route_areas": [[[120.6, 31.2], [1e9, 0.0], [0.0, 0.0]]]}),
        );
        assert!(r.starts_with("route_areas[0][1]:"), "{r}");
        let p = m
            .parse(json!({"plate": "沪B·74992", "cameras": ["bridge"], "holder": "Huaxin"}))
            .unwrap();
        assert_eq!(p.cameras, ["bridge"]);
    }

    #[test]
    fn readers_see_one_muck_site_and_writers_all_of_them() {
        let m = permits();
        assert!(m.readable_by(|s| s == "s2"));
        assert!(!m.readable_by(|s| s == "s3"));
        assert!(!m.writable_by(|s| s == "s1"));
        assert!(m.writable_by(|s| s == "s1" || s == "s2"));
    }
}
