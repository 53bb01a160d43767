//! What a token scoped to a unit and/or a department may see.
//!
//! A token stores its unit and department by id, never the unit's sites: the sites are taken
//! from the configured tree at every request, so a site moved between townships in the config
//! moves with it. A token that lists sites as well is narrowed to those of them inside its
//! unit. A department token sees, within its sites, the clues its department leads or
//! assists; a county's department thus also follows the clues of the same department in its
//! townships (the line of supervision of one trade).

use super::tree::Org;

impl Org {
    /// The sites a token of `unit` (if any) listing `sites` covers: the unit's scope, narrowed
    /// to `sites` when the token lists some; `sites` alone without a unit.
    pub(crate) fn token_sites(&self, unit: Option<&str>, sites: &[String]) -> Vec<String> {
        match unit {
            None => sites.to_vec(),
            Some(u) => self
                .scope_sites(u)
                .into_iter()
                .filter(|s| sites.is_empty() || sites.contains(s))
                .collect(),
        }
    }

    /// Why a token may not be scoped to `unit` / `department`, if it may not: the unit must
    /// be configured, the department one of its departments (of some unit without one).
    pub fn check_grant(&self, unit: Option<&str>, department: Option<&str>) -> Result<(), String> {
        if (unit.is_some() || department.is_some()) && self.is_empty() {
            return Err("no [[org.units]] are configured".into());
        }
        match (unit, department) {
            (Some(u), dept) => {
                let unit = self
                    .unit(u)
                    .ok_or_else(|| format!("no unit `{u}` in [[org.units]]"))?;
                match dept {
                    Some(d) if !unit.departments.iter().any(|x| x == d) => {
                        Err(format!("`{d}` is no department of unit `{u}`"))
                    }
                    _ => Ok(()),
                }
            }
            (None, Some(d)) if !self.has_department(d) => {
                Err(format!("no unit has a department `{d}`"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::{Org, tests::city};

    #[test]
    fn a_unit_token_covers_its_scope_narrowed_by_its_sites() {
        let org = Org::from_units(&city()).expect("valid");
        assert_eq!(org.token_sites(Some("lingyin"), &[]), ["s1", "s2"]);
        assert_eq!(
            org.token_sites(Some("xihu"), &["s3".into(), "g1".into()]),
            ["s3"]
        );
        assert_eq!(org.token_sites(None, &["g1".into()]), ["g1"]);
        assert!(org.token_sites(Some("gone"), &[]).is_empty());
    }

    #[test]
    fn grants_name_configured_units_and_their_departments() {
        let org = Org::from_units(&city()).expect("valid");
        assert!(org.check_grant(Some("xihu"), Some("market")).is_ok());
        assert!(org.check_grant(Some("xihu"), Some("water")).is_err());
        assert!(org.check_grant(Some("xihuu"), None).is_err());
        assert!(org.check_grant(None, Some("market")).is_ok());
        assert!(org.check_grant(None, None).is_ok());
        assert!(Org::default().check_grant(Some("xihu"), None).is_err());
        assert!(Org::default().check_grant(None, None).is_ok());
    }
}
