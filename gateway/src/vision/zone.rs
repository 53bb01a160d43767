//! No-parking zones (polygons in image pixels of one camera) and daily active hours.

use serde::{Deserialize, Serialize};

/// A polygon in image pixels, e.g. `[[0, 400], [640, 400], [640, 480], [0, 480]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub id: String,
    pub polygon: Vec<[f32; 2]>,
}

impl Zone {
    /// Even-odd rule; a polygon with fewer than three points contains nothing.
    pub(crate) fn contains(&self, x: f32, y: f32) -> bool {
        let p: Vec<[f64; 2]> = self
            .polygon
            .iter()
            .map(|&[x, y]| [f64::from(x), f64::from(y)])
            .collect();
        in_polygon(&p, f64::from(x), f64::from(y))
    }
}

/// Whether `(x, y)` lies inside the ring `p` by the even-odd rule; the one polygon test of the
/// gateway (camera zones in image pixels, drone areas and muck-truck routes in lon/lat, which
/// is planar enough at the size of a city district). Fewer than three points contain nothing;
/// the ring may be closed (last point = first) or not.
pub(crate) fn in_polygon(p: &[[f64; 2]], x: f64, y: f64) -> bool {
    if p.len() < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = p.len() - 1;
    for i in 0..p.len() {
        let ([xi, yi], [xj, yj]) = (p[i], p[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// What a lon/lat polygon of the configuration or the API must be (the caller names the key
/// and adds the index `[i]` of a bad point).
pub(crate) fn check_lon_lat_polygon(
    polygon: &[[f64; 2]],
) -> Result<(), (Option<usize>, &'static str)> {
    if polygon.len() < 3 {
        return Err((None, "needs at least 3 [lon, lat] points"));
    }
    if polygon.len() > 1000 {
        return Err((None, "at most 1000 points"));
    }
    match polygon.iter().position(|p| check_lon_lat(*p).is_err()) {
        Some(i) => Err((
            Some(i),
            "must be [lon, lat] with lon in -180..180, lat in -90..90",
        )),
        None => Ok(()),
    }
}

/// What a `[lon, lat]` position must be (the caller names the key).
pub(crate) fn check_lon_lat([lon, lat]: [f64; 2]) -> Result<(), &'static str> {
    if lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-90.0..=90.0).contains(&lat)
    {
        Ok(())
    } else {
        Err("must be [lon, lat] with lon in -180..180, lat in -90..90")
    }
}

/// A daily window in local time, written `"HH:MM-HH:MM"`; `"22:00-06:00"` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DailyWindow {
    /// Minutes after local midnight.
    pub start: u16,
    pub end: u16,
}

impl DailyWindow {
    pub(crate) fn contains_minute(&self, m: u16) -> bool {
        if self.start <= self.end {
            m >= self.start && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

fn parse_hm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

impl TryFrom<String> for DailyWindow {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("active hours {s:?}: expected \"HH:MM-HH:MM\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        Ok(DailyWindow {
            start: parse_hm(a).ok_or_else(bad)?,
            end: parse_hm(b).ok_or_else(bad)?,
        })
    }
}

impl From<DailyWindow> for String {
    fn from(w: DailyWindow) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            w.start / 60,
            w.start % 60,
            w.end / 60,
            w.end % 60
        )
    }
}

/// Whether `at_ms` (UTC, ms since the epoch) falls in any window, at `utc_offset_minutes`
/// (480 for China). No windows means always active.
/// What a configured zone polygon must be (the caller names the key).
pub(crate) fn check_polygon(polygon: &[[f32; 2]]) -> Result<(), &'static str> {
    if polygon.len() < 3 {
        return Err("needs at least 3 points");
    }
    if polygon.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
        return Err("points must be finite, non-negative image pixels");
    }
    Ok(())
}

/// What a configured UTC offset (minutes) must be (the caller names the key).
pub(crate) fn check_offset(minutes: i32) -> Result<(), &'static str> {
    if (-16 * 60..=16 * 60).contains(&minutes) {
        Ok(())
    } else {
        Err("must be within ±16 h")
    }
}

pub(crate) fn is_active(windows: &[DailyWindow], utc_offset_minutes: i32, at_ms: i64) -> bool {
    if windows.is_empty() {
        return true;
    }
    let local_min = at_ms.div_euclid(60_000) + i64::from(utc_offset_minutes);
    let minute = local_min.rem_euclid(1440) as u16;
    windows.iter().any(|w| w.contains_minute(minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_containment_convex_and_concave() {
        let square = Zone {
            id: "s".into(),
            polygon: vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]],
        };
        assert!(square.contains(5.0, 5.0));
        assert!(!square.contains(15.0, 5.0));
        assert!(!square.contains(-0.1, 5.0));
        // An L shape: the notch at the top right is outside.
        let l = Zone {
            id: "l".into(),
            polygon: vec![
                [0.0, 0.0],
                [4.0, 0.0],
                [4.0, 6.0],
                [10.0, 6.0],
                [10.0, 10.0],
                [0.0, 10.0],
            ],
        };
        assert!(l.contains(2.0, 2.0));
        assert!(l.contains(8.0, 8.0));
        assert!(!l.contains(8.0, 2.0));
        let line = Zone {
            id: "x".into(),
            polygon: vec![[0.0, 0.0], [10.0, 10.0]],
        };
        assert!(!line.contains(5.0, 5.0));
    }

    #[test]
    fn lon_lat_rings_open_or_closed_and_their_checks() {
        let open = [
            [120.60, 31.28],
            [120.65, 31.28],
            [120.65, 31.32],
            [120.60, 31.32],
        ];
        let mut closed = open.to_vec();
        closed.push(open[0]);
        for ring in [&open[..], &closed[..]] {
            assert!(in_polygon(ring, 120.62, 31.30));
            assert!(!in_polygon(ring, 120.70, 31.40));
        }
        assert!(check_lon_lat_polygon(&open).is_ok());
        assert_eq!(check_lon_lat_polygon(&open[..2]).unwrap_err().0, None);
        let mut bad = open;
        bad[2] = [f64::NAN, 31.0];
        assert_eq!(check_lon_lat_polygon(&bad).unwrap_err().0, Some(2));
        assert!(check_lon_lat([181.0, 0.0]).is_err());
        assert!(check_lon_lat([120.6, 31.3]).is_ok());
    }

    #[test]
    fn active_hours_with_offset_and_midnight_wrap() {
        let day = DailyWindow::try_from("07:00-20:00".to_string()).expect("parse");
        let night = DailyWindow::try_from("22:00-06:00".to_string()).expect("parse");
        assert!(DailyWindow::try_from("7-8".to_string()).is_err());
        assert!(DailyWindow::try_from("25:00-26:00".to_string()).is_err());
        // 2026-01-01T00:30Z is 08:30 in China (UTC+8).
        let t = 1_767_227_400_000;
        assert!(is_active(&[day], 480, t));
        assert!(!is_active(&[day], 0, t));
        assert!(is_active(&[night], 0, t));
        assert!(is_active(&[], 0, t));
        assert_eq!(String::from(night), "22:00-06:00");
    }
}
