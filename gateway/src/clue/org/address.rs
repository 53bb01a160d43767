//! The address of a supervision notice: which unit (and department) owes the fix.
//!
//! Notices were addressed in free text before units existed (`county:xihu/urban-management`).
//! With `[[org.units]]` configured an address must name a configured unit, so a notice can be
//! found by the unit's own tokens and statistics; it is stored as `unit` or
//! `unit/department` (ids). The old `level:` prefix is still accepted and checked against the
//! unit's level. Without units, free text is kept as it was.

use super::tree::Org;

impl Org {
    /// `text` as the address a notice stores, or why it names no configured unit.
    pub(crate) fn resolve_address(&self, text: &str) -> Result<String, String> {
        let text = text.trim();
        if self.is_empty() {
            return Ok(text.to_string());
        }
        let (level, rest) = match text.split_once(':') {
            Some((l, r)) => (Some(l), r),
            None => (None, text),
        };
        let (unit_id, dept) = match rest.split_once('/') {
            Some((u, d)) => (u, Some(d)),
            None => (rest, None),
        };
        let unit = self
            .unit(unit_id)
            .ok_or_else(|| format!("no unit `{unit_id}` in [[org.units]]"))?;
        if let Some(l) = level.filter(|l| *l != unit.level.as_str()) {
            return Err(format!(
                "unit `{unit_id}` is a {}, not a {l}",
                unit.level.as_str()
            ));
        }
        match dept {
            None => Ok(unit.id.clone()),
            Some(d) if unit.departments.iter().any(|x| x == d) => Ok(format!("{}/{d}", unit.id)),
            Some(d) => Err(format!("`{d}` is no department of unit `{unit_id}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::{Org, tests::city};

    #[test]
    fn configured_units_are_checked_and_free_text_kept_without_them() {
        let org = Org::from_units(&city()).expect("valid");
        assert_eq!(
            org.resolve_address("county:xihu/urban-management")
                .as_deref(),
            Ok("xihu/urban-management")
        );
        assert_eq!(org.resolve_address(" lingyin ").as_deref(), Ok("lingyin"));
        assert!(org.resolve_address("township:xihu").is_err(), "wrong level");
        assert!(
            org.resolve_address("xihu/water").is_err(),
            "no such department"
        );
        assert!(org.resolve_address("county:xihuu").is_err());
        let none = Org::default();
        assert_eq!(none.resolve_address("区城管局").as_deref(), Ok("区城管局"));
    }
}
