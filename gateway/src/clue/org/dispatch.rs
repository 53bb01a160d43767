//! Dispatch: which departments handle a new clue, from `[[org.dispatch]]` rules by matter and
//! area.
//!
//! Why by area as well as matter: the same matter (grease discharge, say) is led by the
//! township's own team where the township has one, and by the county's department elsewhere.
//! So a rule naming the clue's matter wins over a catch-all `"*"` (a specific assignment is a
//! deliberate one), and among those the rule of the lowest unit whose scope covers the clue's
//! site.

use super::tree::Org;
use serde::{Deserialize, Serialize};

/// What dispatch decided for one clue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dispatch {
    /// The unit whose rule matched.
    pub unit: String,
    /// The department that leads the handling.
    pub lead: String,
    /// Departments that assist (they see the clue too).
    pub assisting: Vec<String>,
}

impl Org {
    /// The dispatch of a clue of `matter` (a catalogue matter id, none when its kind belongs
    /// to no matter) at `site`; none when no rule covers it (the producer's department, if
    /// any, then stays the lead).
    pub(crate) fn dispatch(&self, matter: Option<&str>, site: &str) -> Option<Dispatch> {
        let home = self.unit_of_site(site)?;
        // Distance from the site's own unit up to the rule's unit (0: the site's own unit).
        let depth = |unit: &str| self.chain(&home.id).position(|u| u.id == unit);
        self.dispatch
            .iter()
            .filter(|r| r.matter == "*" || Some(r.matter.as_str()) == matter)
            .filter_map(|r| Some(((r.matter == "*", depth(&r.unit)?), r)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, r)| Dispatch {
                unit: r.unit.clone(),
                lead: r.lead.clone(),
                assisting: r.assisting.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{DispatchConfig, OrgConfig};
    use super::super::tree::tests::city;

    fn rule(matter: &str, unit: &str, lead: &str, assisting: &[&str]) -> DispatchConfig {
        DispatchConfig {
            matter: matter.into(),
            unit: unit.into(),
            lead: lead.into(),
            assisting: assisting.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn org(rules: Vec<DispatchConfig>) -> Result<super::Org, String> {
        OrgConfig {
            units: city(),
            dispatch: rules,
            major: Default::default(),
        }
        .build(&["grease", "parking"])
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_named_matter_then_the_lowest_unit_wins() {
        let o = org(vec![
            rule("*", "hangzhou", "urban-management", &[]),
            rule("grease", "xihu", "market", &["urban-management"]),
            rule("*", "lingyin", "urban-management", &[]),
            rule("grease", "lingyin", "market", &[]),
            rule("*", "beishan", "urban-management", &[]),
        ])
        .expect("valid");
        let d = o
            .dispatch(Some("grease"), "s3")
            .expect("named over a lower catch-all");
        assert_eq!((d.unit.as_str(), d.lead.as_str()), ("xihu", "market"));
        assert_eq!(d.assisting, ["urban-management"]);
        let d = o.dispatch(Some("grease"), "s1").expect("township rule");
        assert_eq!((d.unit.as_str(), d.lead.as_str()), ("lingyin", "market"));
        assert_eq!(
            o.dispatch(Some("parking"), "s3").map(|d| d.unit),
            Some("beishan".into())
        );
        let d = o.dispatch(Some("parking"), "s1").expect("catch-all");
        assert_eq!(d.unit, "lingyin");
        assert_eq!(
            o.dispatch(None, "g1").map(|d| d.unit),
            Some("hangzhou".into())
        );
        assert_eq!(o.dispatch(Some("grease"), "elsewhere"), None);
    }

    #[test]
    fn bad_rules_are_refused_naming_the_key() {
        let e = org(vec![rule("grease", "xihuu", "market", &[])]).expect_err("unit");
        assert!(e.contains("org.dispatch[0].unit"), "{e}");
        let e = org(vec![rule("greese", "xihu", "market", &[])]).expect_err("matter");
        assert!(e.contains("org.dispatch[0].matter"), "{e}");
        let e = org(vec![rule("grease", "xihu", "water", &[])]).expect_err("lead");
        assert!(e.contains("org.dispatch[0].lead"), "{e}");
        let e = org(vec![rule("grease", "xihu", "market", &["market"])]).expect_err("twice");
        assert!(e.contains("org.dispatch[0].assisting[0]"), "{e}");
        let e = org(vec![
            rule("grease", "xihu", "market", &[]),
            rule("grease", "xihu", "urban-management", &[]),
        ])
        .expect_err("duplicate");
        assert!(e.contains("org.dispatch[1].matter"), "{e}");
    }
}
