//! Parking stays that got a "please move" notice, and what became of each: the records the
//! persuasion statistics are counted from (issue 22).
//!
//! A stay is recorded when its notice is due, in the same transaction that queues the notice
//! for delivery (`notices/v1/{site}/{camera}` and the notice webhooks): a notice that was sent
//! always has its record, and a record always has its notice queued. Its outcome then moves
//! once, from `pending` to
//!
//! ```text
//!   pending ──vehicle left before the limit──> left_after_notice
//!      └─────limit reached, clue raised──────> clue   (its later departure only sets left_ms)
//! ```
//!
//! A stay whose gateway stopped before either happened is saved at an orderly stop and resumed
//! at the next start under the same key (`camera::parking::state`), so its outcome still moves
//! this record. After a crash, or a stop longer than the camera's `max_hidden_s`, it stays
//! `pending`: counted as such, never guessed.
//!
//! Plain data and pure functions here; the SQLite and PostgreSQL stores implement
//! [`super::store::StayRecords`] with them, so both count and word notices alike.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a warned stay became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Warned, still there (or its gateway stopped before the stay ended).
    Pending,
    /// Warned and gone before the limit: the persuasion worked.
    LeftAfterNotice,
    /// Stayed to the limit: a `parking.overstay` clue was raised.
    Clue,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::LeftAfterNotice => "left_after_notice",
            Outcome::Clue => "clue",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "pending" => Outcome::Pending,
            "left_after_notice" => Outcome::LeftAfterNotice,
            "clue" => Outcome::Clue,
            _ => return None,
        })
    }
}

/// A notice as recorded: the stay it concerns and what the driver is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StayNotice {
    /// Unique per stay across restarts and gateways (`{site}/{camera}/{run}-{stay}`).
    pub key: String,
    pub site: String,
    pub camera: String,
    pub zone: String,
    pub plate: Option<String>,
    /// When the vehicle was first seen in the zone, and when the notice was due (frame times).
    pub first_ms: i64,
    pub notice_ms: i64,
    pub dwell_s: u64,
    /// Seconds left before the clue is raised.
    pub remaining_s: u64,
    /// The shop asked to take its goods inside (shop-front trading); `None`: a parking
    /// notice. It words the notice and is kept on the stay's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
}

/// A stay's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StayRecord {
    /// Also the notice's `event_id` on every channel.
    pub id: i64,
    #[serde(flatten)]
    pub notice: StayNotice,
    pub outcome: Outcome,
    /// When the outcome was decided (frame time).
    pub outcome_ms: Option<i64>,
    /// The dedup key of the clue raised for it.
    pub clue_key: Option<String>,
    /// When the vehicle was last seen before it left (frame time).
    pub left_ms: Option<i64>,
}

/// What happened to a stay after its notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StayUpdate {
    /// The limit was reached: `clue_key` was raised.
    Raised {
        key: String,
        at_ms: i64,
        clue_key: String,
    },
    /// The vehicle left (last seen at `at_ms`).
    Left { key: String, at_ms: i64 },
}

impl StayUpdate {
    pub(crate) fn key(&self) -> &str {
        match self {
            StayUpdate::Raised { key, .. } | StayUpdate::Left { key, .. } => key,
        }
    }
}

/// What parking reports about warned stays, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StayEvent {
    /// A notice is due: record the stay, deliver the notice.
    Notice(StayNotice),
    /// A recorded stay's outcome moves.
    Update(StayUpdate),
}

/// `GET /api/v1/parking/stays` filters plus the caller's site scope.
#[derive(Debug, Clone, Default)]
pub struct StayQuery {
    pub site: Option<String>,
    pub camera: Option<String>,
    pub outcome: Option<Outcome>,
    /// Notices at or after / before (ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// `None`: every site. `Some(list)`: only these.
    pub scope: Option<Vec<String>>,
    pub limit: u32,
}

/// Warned stays of one zone of one camera, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayCount {
    pub site: String,
    pub camera: String,
    pub zone: String,
    pub notices: u64,
    pub left_after_notice: u64,
    pub clue: u64,
    pub pending: u64,
}

impl StayCount {
    fn add(&mut self, outcome: Outcome, n: u64) {
        self.notices += n;
        match outcome {
            Outcome::Pending => self.pending += n,
            Outcome::LeftAfterNotice => self.left_after_notice += n,
            Outcome::Clue => self.clue += n,
        }
    }
}

/// The persuasion figures of the statistics page: totals and one row per camera zone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParkingStats {
    pub notices: u64,
    pub left_after_notice: u64,
    pub clue: u64,
    pub pending: u64,
    /// `left_after_notice / (left_after_notice + clue)`: of the warned stays that ended one
    /// way or the other, how many left. Pending stays are not decided yet and not counted.
    /// `None` before any stay was decided.
    pub persuasion_rate: Option<f64>,
    /// By site, camera and zone.
    pub by_zone: Vec<StayCount>,
}

/// Warned stays of one (site, camera, zone, outcome), as the stores count them.
pub(crate) type StayCountRow = (String, String, String, Outcome, u64);

/// Folds [`StayCountRow`]s (any order) into [`ParkingStats`].
pub(crate) fn parking_stats(rows: impl IntoIterator<Item = StayCountRow>) -> ParkingStats {
    let mut by: std::collections::BTreeMap<(String, String, String), StayCount> =
        Default::default();
    let mut total = StayCount::default();
    for (site, camera, zone, outcome, n) in rows {
        total.add(outcome, n);
        by.entry((site.clone(), camera.clone(), zone.clone()))
            .or_insert_with(|| StayCount {
                site,
                camera,
                zone,
                ..Default::default()
            })
            .add(outcome, n);
    }
    let decided = total.left_after_notice + total.clue;
    ParkingStats {
        notices: total.notices,
        left_after_notice: total.left_after_notice,
        clue: total.clue,
        pending: total.pending,
        persuasion_rate: (decided > 0).then(|| total.left_after_notice as f64 / decided as f64),
        by_zone: by.into_values().collect(),
    }
}

/// The MQTT topic of a camera's notices.
pub(crate) fn notice_topic(site: &str, camera: &str) -> String {
    format!("notices/v1/{site}/{camera}")
}

/// The JSON body every notice channel carries (MQTT and webhooks alike). `event_id` is the
/// stay record's id: unique, so a receiver drops a redelivered notice.
pub(crate) fn notice_payload(id: i64, n: &StayNotice) -> String {
    let minutes = n.remaining_s.div_ceil(60);
    if let Some(shop) = &n.shop {
        return shopfront_payload(id, n, shop, minutes);
    }
    let (zh, en) = match &n.plate {
        Some(p) => (
            format!("{p}，此处禁止停车，请立即驶离。{minutes} 分钟后仍未驶离将记录违停。"),
            format!(
                "{p}: no parking here, please move now. Still here in {minutes} min, the stay is reported."
            ),
        ),
        None => (
            format!("此处禁止停车，请立即驶离。{minutes} 分钟后仍未驶离将记录违停。"),
            format!(
                "No parking here, please move now. Still here in {minutes} min, the stay is reported."
            ),
        ),
    };
    json!({
        "event_id": id,
        "event": "parking_notice",
        "stay": n.key,
        "site": n.site,
        "camera": n.camera,
        "zone": n.zone,
        "plate": n.plate,
        "first_seen_ms": n.first_ms,
        "at_ms": n.notice_ms,
        "dwell_s": n.dwell_s,
        "remaining_s": n.remaining_s,
        // Past this the notice is moot (the clue is raised); a speaker may skip it.
        "valid_until_ms": n.notice_ms.saturating_add((n.remaining_s as i64).saturating_mul(1000)),
        "text": {"zh": zh, "en": en},
    })
    .to_string()
}

/// The shop-front notice: the same fields as a parking notice, with the shop instead of a
/// plate and words for the shopkeeper.
fn shopfront_payload(id: i64, n: &StayNotice, shop: &str, minutes: u64) -> String {
    json!({
        "event_id": id,
        "event": "shopfront_notice",
        "stay": n.key,
        "site": n.site,
        "camera": n.camera,
        "zone": n.zone,
        "shop": shop,
        "first_seen_ms": n.first_ms,
        "at_ms": n.notice_ms,
        "dwell_s": n.dwell_s,
        "remaining_s": n.remaining_s,
        "valid_until_ms": n.notice_ms.saturating_add((n.remaining_s as i64).saturating_mul(1000)),
        "text": {
            "zh": format!("{shop}：请勿出店经营，请将店外物品收回店内。{minutes} 分钟后仍在店外将记录在案。"),
            "en": format!("{shop}: no trading outside the shop front, please take the goods inside. Still outside in {minutes} min, it is reported."),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> StayNotice {
        StayNotice {
            key: "s1/c1/7-1".into(),
            site: "s1".into(),
            camera: "c1".into(),
            zone: "kerb".into(),
            plate: Some("浙A12345".into()),
            first_ms: 1_000,
            notice_ms: 61_000,
            dwell_s: 60,
            remaining_s: 420,
            shop: None,
        }
    }

    #[test]
    fn outcomes_keep_their_stored_spelling() {
        for o in [Outcome::Pending, Outcome::LeftAfterNotice, Outcome::Clue] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(Outcome::parse("left"), None);
    }

    #[test]
    fn a_shop_front_notice_names_the_shop_and_tells_the_shopkeeper() {
        let n = StayNotice {
            plate: None,
            shop: Some("shop-12".into()),
            ..notice()
        };
        let v: serde_json::Value = serde_json::from_str(&notice_payload(6, &n)).unwrap();
        assert_eq!(v["event"], "shopfront_notice");
        assert_eq!(v["shop"], "shop-12");
        assert_eq!(v["event_id"], 6);
        assert!(
            v["text"]["en"]
                .as_str()
                .unwrap()
                .starts_with("shop-12: no trading outside")
        );
        assert!(v["text"]["zh"].as_str().unwrap().contains("出店经营"));
    }

    #[test]
    fn the_notice_payload_names_the_stay_and_tells_the_driver_in_both_languages() {
        let v: serde_json::Value = serde_json::from_str(&notice_payload(5, &notice())).unwrap();
        assert_eq!(v["event_id"], 5);
        assert_eq!(v["event"], "parking_notice");
        assert_eq!(v["stay"], "s1/c1/7-1");
        assert_eq!(v["valid_until_ms"], 61_000 + 420_000);
        assert!(v["text"]["zh"].as_str().unwrap().starts_with("浙A12345，"));
        assert!(v["text"]["en"].as_str().unwrap().contains("in 7 min"));
        let mut n = notice();
        n.plate = None;
        n.remaining_s = 61;
        let v: serde_json::Value = serde_json::from_str(&notice_payload(6, &n)).unwrap();
        assert!(v["text"]["en"].as_str().unwrap().starts_with("No parking"));
        assert!(v["text"]["zh"].as_str().unwrap().contains("2 分钟"));
        assert_eq!(notice_topic("s1", "c1"), "notices/v1/s1/c1");
    }

    #[test]
    fn persuasion_rate_counts_decided_stays_per_zone_and_overall() {
        let row = |cam: &str, zone: &str, o, n| ("s1".to_string(), cam.into(), zone.into(), o, n);
        let s = parking_stats([
            row("c1", "kerb", Outcome::LeftAfterNotice, 3),
            row("c1", "kerb", Outcome::Clue, 1),
            row("c2", "gate", Outcome::Pending, 2),
            row("c1", "bus", Outcome::Clue, 1),
        ]);
        assert_eq!(
            (s.notices, s.left_after_notice, s.clue, s.pending),
            (7, 3, 2, 2)
        );
        assert_eq!(s.persuasion_rate, Some(0.6));
        let zones: Vec<(&str, &str, u64)> = s
            .by_zone
            .iter()
            .map(|c| (c.camera.as_str(), c.zone.as_str(), c.notices))
            .collect();
        assert_eq!(
            zones,
            [("c1", "bus", 1), ("c1", "kerb", 4), ("c2", "gate", 2)]
        );
        assert_eq!(s.by_zone[1].left_after_notice, 3);
        assert_eq!(parking_stats([]).persuasion_rate, None);
        let only_pending = parking_stats([row("c2", "gate", Outcome::Pending, 2)]);
        assert_eq!(only_pending.persuasion_rate, None, "nothing decided yet");
    }
}
