//! Major clues reported up: a clue of a configured level or matter, in a unit that has a
//! parent, is reported to the parent unit, and the handling unit owes it a reply by a
//! deadline (`[org.major]`).
//!
//! Why it rides on supervision notices: "reported up, reply owed by a deadline, yellow then
//! red when late, acknowledged, answered, closed by the unit above" is exactly a notice's life
//! (`clue::supervision`). So the report is an oversight warning of model `major_clue` (its
//! audit entry is the report) made into a notice addressed to the handling unit, with the
//! reply deadline; the parent unit's tokens see it because their scope covers the clue's
//! site, and overdue replies escalate like every notice. The handling unit answers with the
//! notice's `report_fixed` statement; the parent unit closes it.

use super::tree::Org;
use crate::clue::model::Escalation;
use crate::clue::oversight::Finding;
use crate::clue::signal::Level;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The model name of a major clue's warning.
pub(crate) const MODEL: &str = "major_clue";

/// `[org.major]`: which clues are major and how long the parent unit waits for a reply.
/// Nothing is major unless `levels` or `matters` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MajorConfig {
    /// Clues opened at one of these levels are major (`high`, `medium`, `low`).
    pub levels: Vec<String>,
    /// Clues of these matters (ids of `[clues.matters]`) are major whatever their level.
    pub matters: Vec<String>,
    /// The handling unit owes the parent unit a reply within this many seconds (at most
    /// `clues.oversight.notices.max_due_days`).
    pub reply_within_s: u64,
}

impl Default for MajorConfig {
    fn default() -> Self {
        MajorConfig {
            levels: Vec::new(),
            matters: Vec::new(),
            reply_within_s: 24 * 3600,
        }
    }
}

/// Who reports a major clue to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MajorReport {
    /// The unit handling the clue's site (owes the reply).
    pub unit: String,
    /// The unit above it (receives the report).
    pub parent: String,
}

impl Org {
    /// The report of a new clue at `level` of `matter` at `site`, when it is major and its
    /// unit has a parent (a city's own clue is reported to nobody).
    pub(crate) fn major_report(
        &self,
        level: Level,
        matter: Option<&str>,
        site: &str,
    ) -> Option<MajorReport> {
        let m = &self.major;
        let major = m.levels.iter().any(|l| l == level.as_str())
            || matter.is_some_and(|x| m.matters.iter().any(|y| y == x));
        if !major {
            return None;
        }
        let unit = self.unit_of_site(site)?;
        Some(MajorReport {
            unit: unit.id.clone(),
            parent: unit.parent.clone()?,
        })
    }

    /// How long the handling unit has to reply, ms.
    pub(crate) fn major_reply_ms(&self) -> i64 {
        i64::try_from(self.major.reply_within_s)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    }
}

/// The warning that records the report of major clue `clue_id` (one per clue: its key).
pub(crate) fn finding(
    r: &MajorReport,
    clue_id: i64,
    site: &str,
    title: &str,
    reply_by_ms: i64,
) -> Finding {
    Finding {
        model: MODEL.into(),
        key: format!("{MODEL}/{clue_id}"),
        level: Escalation::Yellow,
        site: Some(site.to_string()),
        clue_id: Some(clue_id),
        concerns: Vec::new(),
        message: format!(
            "major clue #{clue_id} ({title}) reported by {} to {}; reply owed by {reply_by_ms} ms",
            r.unit, r.parent
        ),
        detail: json!({"unit": r.unit, "reported_to": r.parent, "reply_by_ms": reply_by_ms}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::org::OrgConfig;
    use crate::clue::org::tree::tests::city;

    fn org(levels: &[&str], matters: &[&str]) -> Org {
        OrgConfig {
            units: city(),
            dispatch: vec![],
            major: MajorConfig {
                levels: levels.iter().map(|s| s.to_string()).collect(),
                matters: matters.iter().map(|s| s.to_string()).collect(),
                reply_within_s: 60,
            },
        }
        .build(&["grease"])
        .expect("valid")
    }

    #[test]
    fn a_major_clue_is_reported_by_its_unit_to_the_unit_above() {
        let o = org(&["high"], &["grease"]);
        let r = o.major_report(Level::High, None, "s1").expect("major");
        assert_eq!((r.unit.as_str(), r.parent.as_str()), ("lingyin", "xihu"));
        assert_eq!(
            o.major_report(Level::Low, Some("grease"), "x0")
                .map(|r| r.parent),
            Some("hangzhou".into())
        );
        assert_eq!(o.major_report(Level::Medium, None, "s1"), None, "not major");
        assert_eq!(
            o.major_report(Level::High, None, "nowhere"),
            None,
            "no unit"
        );
        assert_eq!(o.major_reply_ms(), 60_000);
        assert_eq!(
            org(&[], &[]).major_report(Level::High, None, "s1"),
            None,
            "off by default"
        );
        let f = finding(&r, 7, "s1", "t", 5);
        assert_eq!((f.key.as_str(), f.clue_id), ("major_clue/7", Some(7)));
    }

    #[test]
    fn bad_major_settings_are_refused_naming_the_key() {
        let bad = |major: MajorConfig| {
            OrgConfig {
                units: city(),
                dispatch: vec![],
                major,
            }
            .build(&["grease"])
            .expect_err("refused")
            .to_string()
        };
        let e = bad(MajorConfig {
            levels: vec!["critical".into()],
            ..Default::default()
        });
        assert!(e.contains("org.major.levels[0]"), "{e}");
        let e = bad(MajorConfig {
            matters: vec!["greese".into()],
            ..Default::default()
        });
        assert!(e.contains("org.major.matters[0]"), "{e}");
        let e = bad(MajorConfig {
            reply_within_s: 0,
            ..Default::default()
        });
        assert!(e.contains("org.major.reply_within_s"), "{e}");
    }
}
