//! The checked unit tree: who is above whom, which sites each unit's scope covers, which
//! departments it has.
//!
//! A unit's scope is its own sites plus those of every unit below it: a county sees its
//! townships, a township only itself. Scopes are computed from the configuration on every
//! use (never stored with a token), so moving a site between townships in the config moves
//! what their tokens see at the next start.

use super::config::{DispatchConfig, UnitConfig, check_id};
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a unit stands: a child is always a lower level than its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitLevel {
    Township,
    County,
    City,
}

impl UnitLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UnitLevel::Township => "township",
            UnitLevel::County => "county",
            UnitLevel::City => "city",
        }
    }
}

/// One unit, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Unit {
    pub id: String,
    pub name: String,
    pub level: UnitLevel,
    pub parent: Option<String>,
    pub sites: Vec<String>,
    pub departments: Vec<String>,
}

/// The organisation: units by id, the unit of each site, the dispatch rules. Empty when
/// `[org]` lists no unit (then tokens are scoped by sites only, as before units existed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Org {
    units: BTreeMap<String, Unit>,
    site_unit: BTreeMap<String, String>,
    pub(super) dispatch: Vec<DispatchConfig>,
    pub(super) major: super::major::MajorConfig,
}

impl Org {
    /// Checks `units` (ids, duplicate ids, unknown parents, cycles, levels, a site in two
    /// units, departments) and builds the tree; errors name the key.
    pub(crate) fn from_units(units: &[UnitConfig]) -> Result<Org, ConfigError> {
        let mut org = Org::default();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, u) in units.iter().enumerate() {
            let key = format!("org.units[{i}]");
            check_id(&format!("{key}.id"), &u.id)?;
            if let Some(j) = index.insert(&u.id, i) {
                return Err(invalid(
                    format!("{key}.id"),
                    format!("duplicate unit id `{}` (also org.units[{j}])", u.id),
                ));
            }
            if u.name.trim().is_empty() {
                return Err(invalid(format!("{key}.name"), "must not be empty"));
            }
            let mut depts = BTreeSet::new();
            for (j, d) in u.departments.iter().enumerate() {
                check_id(&format!("{key}.departments[{j}]"), d)?;
                if !depts.insert(d) {
                    return Err(invalid(
                        format!("{key}.departments[{j}]"),
                        format!("department `{d}` listed twice"),
                    ));
                }
            }
            for (j, s) in u.sites.iter().enumerate() {
                if s.is_empty() {
                    return Err(invalid(format!("{key}.sites[{j}]"), "must not be empty"));
                }
                if let Some(other) = org.site_unit.insert(s.clone(), u.id.clone()) {
                    return Err(invalid(
                        format!("{key}.sites[{j}]"),
                        format!("site `{s}` is already in unit `{other}`"),
                    ));
                }
            }
        }
        for (i, u) in units.iter().enumerate() {
            let key = format!("org.units[{i}].parent");
            let Some(p) = &u.parent else { continue };
            let Some(&pi) = index.get(p.as_str()) else {
                return Err(invalid(key, format!("no unit `{p}` in [[org.units]]")));
            };
            // Walk up from the unit: coming back to it is a cycle.
            let mut path = vec![u.id.as_str()];
            let mut at = Some(pi);
            while let Some(k) = at {
                path.push(&units[k].id);
                if k == i {
                    return Err(invalid(key, format!("cycle: {}", path.join(" -> "))));
                }
                at = units[k]
                    .parent
                    .as_deref()
                    .and_then(|x| index.get(x).copied());
                if path.len() > units.len() + 1 {
                    break; // a cycle above this unit: reported at that unit
                }
            }
            if units[pi].level <= u.level {
                return Err(invalid(
                    format!("org.units[{i}].level"),
                    format!(
                        "a {} cannot be below the {} `{p}`",
                        u.level.as_str(),
                        units[pi].level.as_str()
                    ),
                ));
            }
        }
        for u in units {
            org.units.insert(
                u.id.clone(),
                Unit {
                    id: u.id.clone(),
                    name: u.name.clone(),
                    level: u.level,
                    parent: u.parent.clone(),
                    sites: u.sites.clone(),
                    departments: u.departments.clone(),
                },
            );
        }
        Ok(org)
    }

    pub(super) fn with_dispatch(mut self, dispatch: Vec<DispatchConfig>) -> Org {
        self.dispatch = dispatch;
        self
    }

    /// No unit configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub(crate) fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.get(id)
    }

    pub(crate) fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The unit that handles `site` itself (the lowest one), if any.
    pub(crate) fn unit_of_site(&self, site: &str) -> Option<&Unit> {
        self.site_unit.get(site).and_then(|u| self.units.get(u))
    }

    /// `unit` and the units above it, lowest first.
    pub(crate) fn chain<'a>(&'a self, unit: &'a str) -> impl Iterator<Item = &'a Unit> + 'a {
        std::iter::successors(self.units.get(unit), |u| {
            u.parent.as_deref().and_then(|p| self.units.get(p))
        })
    }

    /// Whether `unit` is `ancestor` or below it.
    pub(crate) fn within(&self, unit: &str, ancestor: &str) -> bool {
        self.chain(unit).any(|u| u.id == ancestor)
    }

    /// The sites of `unit`'s scope: its own and those of every unit below it (sorted).
    /// Empty for an unknown unit: a token of a unit removed from the config sees nothing.
    pub(crate) fn scope_sites(&self, unit: &str) -> Vec<String> {
        self.site_unit
            .iter()
            .filter(|(_, u)| self.within(u, unit))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Whether some unit has department `dept`.
    pub(crate) fn has_department(&self, dept: &str) -> bool {
        self.units
            .values()
            .any(|u| u.departments.iter().any(|d| d == dept))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unit(
        id: &str,
        parent: Option<&str>,
        level: UnitLevel,
        sites: &[&str],
    ) -> UnitConfig {
        UnitConfig {
            id: id.into(),
            name: id.to_uppercase(),
            parent: parent.map(Into::into),
            level,
            sites: sites.iter().map(|s| s.to_string()).collect(),
            departments: vec!["urban-management".into(), "market".into()],
        }
    }

    pub(crate) fn city() -> Vec<UnitConfig> {
        vec![
            unit("lingyin", Some("xihu"), UnitLevel::Township, &["s1", "s2"]),
            unit("hangzhou", None, UnitLevel::City, &[]),
            unit("xihu", Some("hangzhou"), UnitLevel::County, &["x0"]),
            unit("beishan", Some("xihu"), UnitLevel::Township, &["s3"]),
            unit("gongshu", Some("hangzhou"), UnitLevel::County, &["g1"]),
        ]
    }

    fn err(units: &[UnitConfig]) -> String {
        Org::from_units(units).expect_err("refused").to_string()
    }

    #[test]
    fn a_unit_scope_is_its_own_sites_and_those_below() {
        let org = Org::from_units(&city()).expect("valid");
        assert_eq!(org.scope_sites("lingyin"), ["s1", "s2"]);
        assert_eq!(org.scope_sites("xihu"), ["s1", "s2", "s3", "x0"]);
        assert_eq!(org.scope_sites("hangzhou").len(), 5);
        assert!(org.scope_sites("nowhere").is_empty());
        assert_eq!(
            org.unit_of_site("s3").map(|u| u.id.as_str()),
            Some("beishan")
        );
        assert!(org.within("beishan", "hangzhou") && !org.within("xihu", "beishan"));
        let ids: Vec<_> = org.chain("lingyin").map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["lingyin", "xihu", "hangzhou"]);
    }

    #[test]
    fn bad_trees_are_refused_naming_the_key() {
        let mut u = city();
        u[0].parent = Some("xihuu".into());
        assert!(err(&u).contains("org.units[0].parent"), "{}", err(&u));
        let mut u = city();
        u[3].id = "lingyin".into();
        assert!(err(&u).contains("org.units[3].id") && err(&u).contains("duplicate"));
        let mut u = city();
        u[3].sites.push("s1".into());
        assert!(err(&u).contains("org.units[3].sites[1]"), "{}", err(&u));
        let mut u = city();
        u[1].parent = Some("lingyin".into());
        let e = err(&u);
        assert!(e.contains(".parent") && e.contains("cycle"), "{e}");
        let mut u = city();
        u[0].level = UnitLevel::City;
        assert!(err(&u).contains("org.units[0].level"), "{}", err(&u));
        let mut u = city();
        u[2].departments.push("Urban Management".into());
        assert!(
            err(&u).contains("org.units[2].departments[2]"),
            "{}",
            err(&u)
        );
    }

    #[test]
    fn a_self_parent_is_a_cycle() {
        let mut u = city();
        u[1].parent = Some("hangzhou".into());
        assert!(err(&u).contains("org.units[1].parent"), "{}", err(&u));
    }
}
