//! Third-party payloads mapped by config: a topic pattern with named segments plus field paths,
//! like Telegraf's `topic_parsing`. A new sensor model is a config change, not a code change.

/// One level of a topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Site,
    Device,
    /// `+` or `{anything_else}`: matches one level, value ignored.
    Any,
}

/// A compiled topic pattern such as `milesight/{site}/{device}/uplink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    levels: Vec<Level>,
}

impl TopicPattern {
    /// Compiles `pattern`; `{site}` / `{device}` are required unless fixed by the mapping.
    pub fn parse(pattern: &str, site_fixed: bool, device_fixed: bool) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty topic pattern".into());
        }
        let mut levels = Vec::new();
        for l in pattern.split('/') {
            let level = match l {
                "{site}" => Level::Site,
                "{device}" => Level::Device,
                "+" => Level::Any,
                "#" => {
                    return Err("`#` is not allowed in a mapping pattern; use `+` per level".into());
                }
                _ if l.starts_with('{') && l.ends_with('}') && l.len() > 2 => Level::Any,
                _ if l.contains(['{', '}', '+', '#']) => {
                    return Err(format!("level `{l}` mixes a placeholder with text"));
                }
                _ => Level::Literal(l.to_string()),
            };
            levels.push(level);
        }
        let count = |want: &Level| levels.iter().filter(|l| *l == want).count();
        for (name, lvl, fixed) in [
            ("site", Level::Site, site_fixed),
            ("device", Level::Device, device_fixed),
        ] {
            match count(&lvl) {
                0 if !fixed => {
                    return Err(format!("pattern has no `{{{name}}}` and no fixed `{name}`"));
                }
                n if n > 1 => return Err(format!("`{{{name}}}` appears {n} times")),
                _ => {}
            }
        }
        Ok(TopicPattern { levels })
    }

    /// Matches a concrete topic, returning the (site, device) segments found in it.
    pub fn matches<'t>(&self, topic: &'t str) -> Option<(Option<&'t str>, Option<&'t str>)> {
        let mut site = None;
        let mut device = None;
        let mut parts = topic.split('/');
        for level in &self.levels {
            let part = parts.next()?;
            match level {
                Level::Literal(l) if l != part => return None,
                Level::Literal(_) | Level::Any => {}
                Level::Site => site = Some(part),
                Level::Device => device = Some(part),
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some((site, device))
    }
}
