//! Local time for rules: night, business hours and per-site calendars.
//!
//! Device times are UTC ms; a site's local time is a fixed offset (no daylight saving in the
//! cities this serves; a site that needs another offset sets its own).

use super::config::{HourWindow, RulesSettings, TimeWindow};
use std::collections::HashMap;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, Clone)]
struct SiteCalendar {
    offset_ms: i64,
    night: HourWindow,
    business: HourWindow,
    /// 0 = Monday .. 6 = Sunday: no business hours on these days.
    closed_weekdays: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    default: SiteCalendar,
    sites: HashMap<String, SiteCalendar>,
}

impl Calendar {
    pub(crate) fn new(s: &RulesSettings) -> Self {
        let default = SiteCalendar {
            offset_ms: i64::from(s.offset_minutes()) * 60_000,
            night: s.night,
            business: s.business_hours,
            closed_weekdays: Vec::new(),
        };
        let sites = s
            .sites
            .iter()
            .map(|site| {
                let cal = SiteCalendar {
                    offset_ms: site
                        .offset_minutes()
                        .map_or(default.offset_ms, |m| i64::from(m) * 60_000),
                    night: site.night.unwrap_or(default.night),
                    business: site.business_hours.unwrap_or(default.business),
                    closed_weekdays: site.closed_weekdays.clone(),
                };
                (site.site.clone(), cal)
            })
            .collect();
        Calendar { default, sites }
    }

    fn site(&self, site: &str) -> &SiteCalendar {
        self.sites.get(site).unwrap_or(&self.default)
    }

    /// Local hour of day (fractional) at `t_ms`.
    pub(crate) fn local_hour(&self, site: &str, t_ms: i64) -> f64 {
        let local = t_ms.saturating_add(self.site(site).offset_ms);
        local.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64
    }

    /// 0 = Monday .. 6 = Sunday, local time.
    pub(crate) fn weekday(&self, site: &str, t_ms: i64) -> u8 {
        let local = t_ms.saturating_add(self.site(site).offset_ms);
        // 1970-01-01 was a Thursday.
        (local.div_euclid(DAY_MS) + 3).rem_euclid(7) as u8
    }

    /// Start of the local day containing `t_ms`, as UTC ms.
    pub(crate) fn local_day_start_ms(&self, site: &str, t_ms: i64) -> i64 {
        let off = self.site(site).offset_ms;
        t_ms.saturating_add(off).div_euclid(DAY_MS) * DAY_MS - off
    }

    pub(crate) fn is_night(&self, site: &str, t_ms: i64) -> bool {
        self.site(site).night.contains(self.local_hour(site, t_ms))
    }

    pub(crate) fn is_business_hours(&self, site: &str, t_ms: i64) -> bool {
        let cal = self.site(site);
        !cal.closed_weekdays.contains(&self.weekday(site, t_ms))
            && cal.business.contains(self.local_hour(site, t_ms))
    }

    /// How much of `[from_ms, to_ms)` falls inside `window` at `site` (ms). Flat-line and
    /// silence rules count only the hours in which the site is expected to be active, so a
    /// kitchen closed for the night (or a closed day) is not a stuck or silent sensor.
    /// Exact per local day; bounded to the last 400 days of the span.
    pub(crate) fn time_in(&self, window: TimeWindow, site: &str, from_ms: i64, to_ms: i64) -> i64 {
        if to_ms <= from_ms {
            return 0;
        }
        if window == TimeWindow::Always {
            return to_ms - from_ms;
        }
        let from_ms = from_ms.max(to_ms.saturating_sub(400 * DAY_MS));
        let cal = self.site(site);
        let mut total = 0;
        let mut day = self.local_day_start_ms(site, from_ms);
        while day < to_ms {
            let weekday = self.weekday(site, day + HOUR_MS);
            let w = match window {
                TimeWindow::Night => Some(cal.night),
                _ => Some(cal.business).filter(|_| !cal.closed_weekdays.contains(&weekday)),
            };
            // The window's intervals within this local day, as hours.
            let mut spans: Vec<(f64, f64)> = Vec::with_capacity(2);
            if let Some(w) = w {
                if w.start_hour <= w.end_hour {
                    spans.push((w.start_hour, w.end_hour));
                } else {
                    spans.push((0.0, w.end_hour));
                    spans.push((w.start_hour, 24.0));
                }
            }
            let mut inside = 0;
            for (a, b) in spans {
                let s = (day + (a * HOUR_MS as f64) as i64).max(from_ms);
                let e = (day + (b * HOUR_MS as f64) as i64).min(to_ms);
                inside += (e - s).max(0);
            }
            total += match window {
                TimeWindow::OffHours => {
                    let s = day.max(from_ms);
                    let e = (day + DAY_MS).min(to_ms);
                    (e - s).max(0) - inside
                }
                _ => inside,
            };
            day += DAY_MS;
        }
        total
    }

    pub(crate) fn matches(&self, window: TimeWindow, site: &str, t_ms: i64) -> bool {
        match window {
            TimeWindow::Always => true,
            TimeWindow::Night => self.is_night(site, t_ms),
            TimeWindow::BusinessHours => self.is_business_hours(site, t_ms),
            TimeWindow::OffHours => !self.is_business_hours(site, t_ms),
        }
    }
}

impl HourWindow {
    /// Whether a local hour falls inside; a window may wrap midnight (22 -> 6).
    pub(crate) fn contains(&self, h: f64) -> bool {
        if self.start_hour <= self.end_hour {
            h >= self.start_hour && h < self.end_hour
        } else {
            h >= self.start_hour || h < self.end_hour
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::config::SiteCalendarConfig;

    // 2024-11-25 00:00 UTC, a Monday.
    const MONDAY_UTC: i64 = 1_732_492_800_000;

    #[test]
    fn rules_calendar_night_wraps_midnight_in_local_time() {
        let cal = Calendar::new(&RulesSettings::default());
        // 18:00 UTC = 02:00 local (+8).
        assert!(cal.is_night("r-1", MONDAY_UTC + 18 * HOUR_MS));
        // 04:00 UTC = 12:00 local.
        assert!(!cal.is_night("r-1", MONDAY_UTC + 4 * HOUR_MS));
        assert!(cal.is_business_hours("r-1", MONDAY_UTC + 4 * HOUR_MS));
        assert_eq!(cal.weekday("r-1", MONDAY_UTC + HOUR_MS), 0);
        assert_eq!(
            cal.local_day_start_ms("r-1", MONDAY_UTC + HOUR_MS),
            MONDAY_UTC - 8 * HOUR_MS
        );
    }

    #[test]
    fn rules_calendar_site_closed_days_have_no_business_hours() {
        let settings = RulesSettings {
            sites: vec![SiteCalendarConfig {
                site: "r-2".into(),
                utc_offset_minutes: Some(0),
                utc_offset_hours: None,
                night: None,
                business_hours: None,
                closed_weekdays: vec![0],
            }],
            ..Default::default()
        };
        let cal = Calendar::new(&settings);
        assert!(!cal.is_business_hours("r-2", MONDAY_UTC + 12 * HOUR_MS));
        assert!(cal.is_business_hours("r-2", MONDAY_UTC + DAY_MS + 12 * HOUR_MS));
    }

    #[test]
    fn rules_calendar_counts_open_time_across_nights_and_closed_days() {
        let settings = RulesSettings {
            sites: vec![SiteCalendarConfig {
                site: "r-2".into(),
                utc_offset_minutes: None,
                utc_offset_hours: None,
                night: None,
                business_hours: None,
                closed_weekdays: vec![1],
            }],
            ..Default::default()
        };
        let cal = Calendar::new(&settings);
        // Monday 08:00 local to Wednesday 08:00 local; open 10-22.
        let from = MONDAY_UTC; // 08:00 local Monday
        let to = from + 2 * DAY_MS;
        let open = cal.time_in(TimeWindow::BusinessHours, "r-1", from, to);
        assert_eq!(open, 24 * HOUR_MS);
        // r-2 is closed on Tuesdays: only Monday's 12 hours count.
        let open = cal.time_in(TimeWindow::BusinessHours, "r-2", from, to);
        assert_eq!(open, 12 * HOUR_MS);
        let night = cal.time_in(TimeWindow::Night, "r-1", from, to);
        assert_eq!(night, 16 * HOUR_MS);
        let off = cal.time_in(TimeWindow::OffHours, "r-1", from, to);
        assert_eq!(off, 24 * HOUR_MS);
        assert_eq!(cal.time_in(TimeWindow::Always, "r-1", from, to), 2 * DAY_MS);
        // Part of an evening: 20:00-23:00 local has two open hours.
        let evening = MONDAY_UTC + 12 * HOUR_MS;
        assert_eq!(
            cal.time_in(
                TimeWindow::BusinessHours,
                "r-1",
                evening,
                evening + 3 * HOUR_MS
            ),
            2 * HOUR_MS
        );
    }
}
