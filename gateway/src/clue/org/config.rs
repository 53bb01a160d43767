//! `[org]`: the units (city -> county -> township) with their sites and departments, and the
//! dispatch rules that give a new clue its lead and assisting departments.
//!
//! The section is plain data; [`OrgConfig::build`] checks it and turns it into the [`Org`]
//! the gateway consults. Every error names the key that is wrong (`org.units[2].parent`),
//! because an organisation chart is edited by hand and a typo must not silently widen or
//! narrow what a token sees.

use super::tree::{Org, UnitLevel};
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};

/// `[org]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrgConfig {
    /// The units, in any order (a parent may come after its children).
    pub units: Vec<UnitConfig>,
    /// Which departments handle which matter in which area (`[[org.dispatch]]`).
    pub dispatch: Vec<DispatchConfig>,
    /// Major clues reported up to the parent unit with a reply deadline (`[org.major]`).
    pub major: super::major::MajorConfig,
}

/// `[[org.units]]`: one unit of the enforcement organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// Stable identifier (`xihu`): what tokens, dispatch rules and notices name. Lower-case
    /// letters, digits, `-` and `_` only, so `unit/department` stays unambiguous.
    pub id: String,
    /// Display name (`西湖区`).
    pub name: String,
    /// The unit above it (none: a top unit, usually the city).
    #[serde(default)]
    pub parent: Option<String>,
    pub level: UnitLevel,
    /// Sites this unit handles itself; its scope adds every site of the units below it.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Its departments (`urban-management`, `market`...), same spelling rules as `id`.
    #[serde(default)]
    pub departments: Vec<String>,
}

/// `[[org.dispatch]]`: clues of `matter` in `unit`'s scope are led by `lead` (a department of
/// `unit`), helped by `assisting`. Where several rules cover a clue, a rule naming its matter
/// wins over `"*"`, and among those the one of the lowest unit (a township's own rule over
/// its county's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// A matter id of `[clues.matters]`, or `"*"` for any clue (with or without a matter).
    pub matter: String,
    pub unit: String,
    pub lead: String,
    #[serde(default)]
    pub assisting: Vec<String>,
}

/// An identifier of a unit or department: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub(crate) fn check_id(key: &str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{v}`: 1 to 64 of a-z, 0-9, `-` and `_`"),
        ))
    }
}

impl OrgConfig {
    /// Checks the section (ids, parents, cycles, sites in one unit only, departments of
    /// dispatch rules) and builds the tree. `matters` are the catalogue's matter ids a
    /// dispatch rule or `major.matters` may name.
    pub(crate) fn build(&self, matters: &[&str]) -> Result<Org, ConfigError> {
        let org = Org::from_units(&self.units)?;
        if org.is_empty() && !self.dispatch.is_empty() {
            return Err(invalid("org.dispatch", "dispatch rules need [[org.units]]"));
        }
        let mut seen = std::collections::BTreeMap::new();
        for (i, d) in self.dispatch.iter().enumerate() {
            let key = format!("org.dispatch[{i}]");
            if d.matter != "*" && !matters.contains(&d.matter.as_str()) {
                return Err(invalid(
                    format!("{key}.matter"),
                    format!(
                        "`{}` is no matter id of [clues.matters] (or \"*\")",
                        d.matter
                    ),
                ));
            }
            let Some(unit) = org.unit(&d.unit) else {
                return Err(invalid(
                    format!("{key}.unit"),
                    format!("no unit `{}` in [[org.units]]", d.unit),
                ));
            };
            let own = |k: String, dept: &str| {
                if unit.departments.iter().any(|x| x == dept) {
                    Ok(())
                } else {
                    Err(invalid(
                        k,
                        format!("`{dept}` is no department of unit `{}`", unit.id),
                    ))
                }
            };
            own(format!("{key}.lead"), &d.lead)?;
            for (j, a) in d.assisting.iter().enumerate() {
                own(format!("{key}.assisting[{j}]"), a)?;
                if *a == d.lead || d.assisting[..j].contains(a) {
                    return Err(invalid(
                        format!("{key}.assisting[{j}]"),
                        format!("`{a}` is already the lead or listed"),
                    ));
                }
            }
            if let Some(other) = seen.insert((d.matter.as_str(), d.unit.as_str()), i) {
                return Err(invalid(
                    format!("{key}.matter"),
                    format!(
                        "org.dispatch[{other}] already dispatches `{}` in unit `{}`",
                        d.matter, d.unit
                    ),
                ));
            }
        }
        for (i, l) in self.major.levels.iter().enumerate() {
            if crate::clue::model::parse_level(l).is_none() {
                return Err(invalid(
                    format!("org.major.levels[{i}]"),
                    format!("`{l}`: low, medium or high"),
                ));
            }
        }
        for (i, m) in self.major.matters.iter().enumerate() {
            if !matters.contains(&m.as_str()) {
                return Err(invalid(
                    format!("org.major.matters[{i}]"),
                    format!("`{m}` is no matter id of [clues.matters]"),
                ));
            }
        }
        if self.major.reply_within_s == 0 {
            return Err(invalid("org.major.reply_within_s", "must be at least 1"));
        }
        let mut org = org.with_dispatch(self.dispatch.clone());
        org.major = self.major.clone();
        Ok(org)
    }
}
