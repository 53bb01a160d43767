//! DJI SRT telemetry sidecars: one subtitle cue per video frame (or per second) carrying the
//! aircraft's position and camera settings.
//!
//! Hand-written: the registry's SRT crates parse subtitle *timing* but DJI packs its telemetry
//! into the cue text in at least three incompatible layouts, which is the hard part:
//!
//! - **bracketed** (Mavic 2/3, Air 2S, Mini 3, Phantom 4 RTK): `[iso: 100] [shutter: 1/500.0]
//!   [latitude: 22.543210] [longitude: 114.054321] [rel_alt: 50.100 abs_alt: 120.300]`, some
//!   with `[gb_yaw: .. gb_pitch: .. gb_roll: ..]`; Phantom 4 Pro writes `[latitude : ..]`,
//!   `[longtitude : ..]` (sic) and `[altitude: ..]`;
//! - **legacy** (Phantom 3/4, Mavic Pro): `HOME(lon,lat) date`, `GPS(lon,lat,alt) BAROMETER:h`
//!   where the barometer is the height above take-off;
//! - **compact** (Mavic Air, Mini 1/2): `F/2.8, SS 1000, ISO 100, EV 0, GPS (lon, lat, alt),
//!   D 12.3m, H 50.1m, H.S 3.2m/s, V.S 0.0m/s` where `H` is the height above take-off.
//!
//! Real files are often cut short (battery out while recording) or have damaged lines. The
//! parser keeps every cue that has a valid time and position and reports the rest by line
//! number; it never fails on content.

use serde::Serialize;

/// Which layout a cue was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SrtFormat {
    Bracketed,
    Legacy,
    Compact,
}

/// One telemetry cue with a valid time span and position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryRecord {
    pub index: Option<u32>,
    /// Cue span, ms since the start of the video.
    pub start_ms: u64,
    pub end_ms: u64,
    pub format: SrtFormat,
    pub lat: f64,
    pub lon: f64,
    /// Height above the take-off point (barometric), metres.
    pub rel_alt_m: Option<f64>,
    /// Altitude above sea level (or the raw GPS altitude), metres.
    pub abs_alt_m: Option<f64>,
    /// Date and time as written by the aircraft (local time, no zone).
    pub datetime: Option<String>,
    pub iso: Option<f64>,
    pub shutter: Option<String>,
    pub fnum: Option<f64>,
    pub ev: Option<f64>,
    pub focal_len_mm: Option<f64>,
    pub gimbal_yaw_deg: Option<f64>,
    pub gimbal_pitch_deg: Option<f64>,
    pub gimbal_roll_deg: Option<f64>,
    pub h_speed_ms: Option<f64>,
    pub v_speed_ms: Option<f64>,
}

/// A line or cue that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SrtIssue {
    /// 1-based line number in the file.
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SrtTrack {
    pub records: Vec<TelemetryRecord>,
    pub issues: Vec<SrtIssue>,
}

impl SrtTrack {
    /// End of the last cue, ms.
    pub fn duration_ms(&self) -> u64 {
        self.records.iter().map(|r| r.end_ms).max().unwrap_or(0)
    }

    /// The aircraft state at `t_ms`: position and heights interpolated between the cues around
    /// it, other fields from the nearer cue. `None` when `t_ms` is more than `max_gap_ms` from
    /// any cue (no telemetry for that part of the video).
    pub fn at(&self, t_ms: u64, max_gap_ms: u64) -> Option<TelemetryRecord> {
        let r = &self.records;
        // Records are sorted by start (see `parse`).
        let after = r.partition_point(|x| x.start_ms <= t_ms);
        let prev = after.checked_sub(1).map(|i| &r[i]);
        let next = r.get(after);
        match (prev, next) {
            (Some(p), _) if t_ms < p.end_ms.max(p.start_ms + 1) => Some(p.clone()),
            (Some(p), Some(n)) if n.start_ms - p.start_ms <= 2 * max_gap_ms.max(1) => {
                let span = (n.start_ms - p.start_ms) as f64;
                let k = if span > 0.0 {
                    (t_ms - p.start_ms) as f64 / span
                } else {
                    0.0
                };
                let mut out = if k < 0.5 { p.clone() } else { n.clone() };
                out.lat = p.lat + (n.lat - p.lat) * k;
                out.lon = p.lon + (n.lon - p.lon) * k;
                out.rel_alt_m = lerp(p.rel_alt_m, n.rel_alt_m, k);
                out.abs_alt_m = lerp(p.abs_alt_m, n.abs_alt_m, k);
                Some(out)
            }
            (Some(p), _) if t_ms - p.end_ms <= max_gap_ms => Some(p.clone()),
            (None, Some(n)) if n.start_ms - t_ms <= max_gap_ms => Some(n.clone()),
            _ => None,
        }
    }
}

fn lerp(a: Option<f64>, b: Option<f64>, k: f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + (b - a) * k),
        (a, b) => a.or(b),
    }
}

/// `HH:MM:SS,mmm` (a `.` is accepted for the comma) -> ms.
fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    let (hms, ms) = s.split_once([',', '.'])?;
    let mut parts = hms.split(':');
    let h: u64 = parts.next()?.trim().parse().ok()?;
    let m: u64 = parts.next()?.trim().parse().ok()?;
    let sec: u64 = parts.next()?.trim().parse().ok()?;
    // No footage runs for 1,000 hours; the bound also keeps the arithmetic from overflowing
    // on a garbage hour field (found by the `drone_srt` fuzz target).
    if parts.next().is_some() || h >= 1000 || m >= 60 || sec >= 60 || ms.is_empty() || ms.len() > 3
    {
        return None;
    }
    let ms: u64 = format!("{ms:0<3}").parse().ok()?;
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// A timing line `start --> end`; `Err` when it has the arrow but bad times.
fn parse_timing(line: &str) -> Option<Result<(u64, u64), String>> {
    let (a, b) = line.split_once("-->")?;
    Some(match (parse_time(a), parse_time(b)) {
        (Some(s), Some(e)) if e >= s => Ok((s, e)),
        (Some(_), Some(_)) => Err("cue ends before it starts".into()),
        _ => Err(format!("bad timing line `{}`", clip(line))),
    })
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Removes `<font ...>` and similar tags that some models wrap the text in.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// A number at the start of `s` (after spaces, an optional `+`), ignoring a unit after it.
fn number(s: &str) -> Option<f64> {
    let s = s.trim_start().trim_start_matches('+');
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (c == '-' && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    // A unit may follow (`60.2m`, `3.1m/s`), more digits may not (`2x.5` is damage).
    let unit = s[end..].split(|c: char| c.is_whitespace() || ",)]".contains(c));
    if unit
        .take(1)
        .any(|u| u.contains(|c: char| c.is_ascii_digit()))
    {
        return None;
    }
    let v: f64 = s[..end].parse().ok()?;
    v.is_finite().then_some(v)
}

/// `key: value` pairs inside `[...]` groups: `[rel_alt: 50.1 abs_alt: 120.3]` gives two.
fn bracket_pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(len) = rest[open + 1..].find(']') else {
            break; // An unclosed group (cut line): ignore the tail.
        };
        let inner = rest[open + 1..open + 1 + len].replace(" :", ":");
        let tokens: Vec<&str> = inner
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .collect();
        let mut i = 0;
        while i < tokens.len() {
            if let Some((k, v)) = tokens[i].split_once(':') {
                let v = if v.is_empty() {
                    i += 1;
                    tokens.get(i).copied().unwrap_or("")
                } else {
                    v
                };
                out.push((k.to_ascii_lowercase(), v.to_string()));
            }
            i += 1;
        }
        rest = &rest[open + 1 + len + 1..];
    }
    out
}

/// The numbers inside `NAME(...)` or `NAME (...)`.
fn paren_numbers(text: &str, name: &str) -> Option<Vec<Option<f64>>> {
    let at = text.find(name)?;
    let rest = text[at + name.len()..].trim_start();
    let rest = rest.strip_prefix('(')?;
    let inner = &rest[..rest.find(')')?];
    Some(inner.split(',').map(number).collect())
}

/// An empty record for `fill_*` to complete.
fn blank(index: Option<u32>, start_ms: u64, end_ms: u64, format: SrtFormat) -> TelemetryRecord {
    TelemetryRecord {
        index,
        start_ms,
        end_ms,
        format,
        lat: f64::NAN,
        lon: f64::NAN,
        rel_alt_m: None,
        abs_alt_m: None,
        datetime: None,
        iso: None,
        shutter: None,
        fnum: None,
        ev: None,
        focal_len_mm: None,
        gimbal_yaw_deg: None,
        gimbal_pitch_deg: None,
        gimbal_roll_deg: None,
        h_speed_ms: None,
        v_speed_ms: None,
    }
}

/// A `YYYY-MM-DD HH:MM:SS[.fff]` or `YYYY.MM.DD HH:MM:SS` stamp anywhere in `text`.
fn find_datetime(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let b = l.as_bytes();
        (0..b.len().saturating_sub(18)).find_map(|i| {
            let s = l.get(i..i + 19)?;
            let sb = s.as_bytes();
            let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
            let ok = digits.iter().all(|&k| sb[k].is_ascii_digit())
                && matches!(sb[4], b'-' | b'.')
                && sb[7] == sb[4]
                && sb[10] == b' '
                && sb[13] == b':'
                && sb[16] == b':';
            ok.then(|| {
                let frac: String = l[i + 19..]
                    .chars()
                    .take_while(|c| *c == '.' || c.is_ascii_digit())
                    .collect();
                format!("{}{}{frac}", s[..10].replace('.', "-"), &s[10..])
                    .trim_end_matches('.')
                    .to_string()
            })
        })
    })
}

fn fill_bracketed(r: &mut TelemetryRecord, text: &str) {
    for (k, v) in bracket_pairs(text) {
        let n = number(&v);
        match k.as_str() {
            "latitude" => r.lat = n.unwrap_or(f64::NAN),
            "longitude" | "longtitude" => r.lon = n.unwrap_or(f64::NAN),
            "rel_alt" => r.rel_alt_m = n,
            "abs_alt" => r.abs_alt_m = n,
            // Phantom 4 Pro: `[altitude: ..]` is the height above take-off.
            "altitude" => r.rel_alt_m = r.rel_alt_m.or(n),
            "iso" => r.iso = n,
            "shutter" => r.shutter = Some(v),
            "fnum" => r.fnum = n.map(|f| if f > 100.0 { f / 100.0 } else { f }),
            "ev" => r.ev = n,
            "focal_len" => r.focal_len_mm = n,
            "gb_yaw" => r.gimbal_yaw_deg = n,
            "gb_pitch" => r.gimbal_pitch_deg = n,
            "gb_roll" => r.gimbal_roll_deg = n,
            _ => {}
        }
    }
    r.datetime = find_datetime(text);
}

fn fill_legacy(r: &mut TelemetryRecord, text: &str) {
    if let Some(v) = paren_numbers(text, "GPS") {
        r.lon = v.first().copied().flatten().unwrap_or(f64::NAN);
        r.lat = v.get(1).copied().flatten().unwrap_or(f64::NAN);
        r.abs_alt_m = v.get(2).copied().flatten();
    }
    if let Some(at) = text.find("BAROMETER:") {
        r.rel_alt_m = number(&text[at + "BAROMETER:".len()..]);
    }
    for tok in text.split_whitespace() {
        if let Some((k, v)) = tok.split_once(':') {
            match k {
                "ISO" => r.iso = number(v),
                "Shutter" => r.shutter = Some(v.to_string()),
                "EV" => r.ev = number(v),
                "Fnum" => r.fnum = number(v.trim_start_matches('F')),
                _ => {}
            }
        }
    }
    r.datetime = find_datetime(text);
}

fn fill_compact(r: &mut TelemetryRecord, text: &str) {
    if let Some(v) = paren_numbers(text, "GPS") {
        r.lon = v.first().copied().flatten().unwrap_or(f64::NAN);
        r.lat = v.get(1).copied().flatten().unwrap_or(f64::NAN);
        r.abs_alt_m = v.get(2).copied().flatten();
    }
    // Commas inside GPS (...) are not field separators.
    let mut depth = 0;
    let fields = text.split(|c: char| {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        c == ',' && depth == 0
    });
    for f in fields {
        let f = f.trim();
        if let Some(v) = f.strip_prefix("F/") {
            r.fnum = number(v);
            continue;
        }
        let Some((k, v)) = f.split_once(' ') else {
            continue;
        };
        match k {
            "SS" => r.shutter = Some(v.trim().to_string()),
            "ISO" => r.iso = number(v),
            "EV" => r.ev = number(v),
            "H" => r.rel_alt_m = number(v),
            "H.S" => r.h_speed_ms = number(v),
            "V.S" => r.v_speed_ms = number(v),
            _ => {}
        }
    }
    r.datetime = find_datetime(text);
}

fn detect_format(text: &str) -> Option<SrtFormat> {
    if text.contains("[latitude") || text.contains("[longitude") || text.contains("[iso") {
        Some(SrtFormat::Bracketed)
    } else if text.contains("BAROMETER") || text.contains("HOME(") {
        Some(SrtFormat::Legacy)
    } else if text.contains("GPS (") || text.contains("GPS(") {
        Some(SrtFormat::Compact)
    } else {
        None
    }
}

/// A cue being collected: its timing line number, index, span and text lines.
struct Cue {
    line: usize,
    index: Option<u32>,
    span: (u64, u64),
    text: String,
}

fn finish(cue: Cue, out: &mut SrtTrack) {
    let text = strip_tags(&cue.text);
    if text.trim().is_empty() {
        out.issues.push(SrtIssue {
            line: cue.line,
            message: "cue has no telemetry text (file cut short?)".into(),
        });
        return;
    }
    let Some(format) = detect_format(&text) else {
        out.issues.push(SrtIssue {
            line: cue.line,
            message: format!("unrecognised telemetry `{}`", clip(text.trim())),
        });
        return;
    };
    let mut r = blank(cue.index, cue.span.0, cue.span.1, format);
    match format {
        SrtFormat::Bracketed => fill_bracketed(&mut r, &text),
        SrtFormat::Legacy => fill_legacy(&mut r, &text),
        SrtFormat::Compact => fill_compact(&mut r, &text),
    }
    let valid = (-90.0..=90.0).contains(&r.lat) && (-180.0..=180.0).contains(&r.lon);
    if !valid {
        out.issues.push(SrtIssue {
            line: cue.line,
            message: "no valid position in cue".into(),
        });
    } else if r.lat == 0.0 && r.lon == 0.0 {
        out.issues.push(SrtIssue {
            line: cue.line,
            message: "no GPS fix (0, 0)".into(),
        });
    } else {
        out.records.push(r);
    }
}

/// Parses an SRT sidecar (any of the layouts above, mixed is fine). Bytes that are not UTF-8
/// are replaced, so a damaged byte costs one cue at most.
pub fn parse(bytes: &[u8]) -> SrtTrack {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut out = SrtTrack::default();
    let mut cue: Option<Cue> = None;
    let mut pending_index: Option<u32> = None;
    // After a bad timing line, its text is skipped up to the next blank line (reported once).
    let mut skipping = false;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end_matches('\r');
        if let Some(timing) = parse_timing(line) {
            if let Some(c) = cue.take() {
                finish(c, &mut out);
            }
            match timing {
                Ok(span) => {
                    cue = Some(Cue {
                        line: line_no,
                        index: pending_index.take(),
                        span,
                        text: String::new(),
                    })
                }
                Err(message) => {
                    pending_index = None;
                    skipping = true;
                    out.issues.push(SrtIssue {
                        line: line_no,
                        message,
                    });
                }
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            skipping = false;
            if let Some(c) = cue.take() {
                finish(c, &mut out);
            }
            continue;
        }
        match &mut cue {
            Some(c) => {
                c.text.push_str(line);
                c.text.push('\n');
            }
            None if skipping => {}
            None => {
                if let Ok(i) = trimmed.parse::<u32>() {
                    pending_index = Some(i);
                } else {
                    out.issues.push(SrtIssue {
                        line: line_no,
                        message: format!("text outside a cue `{}`", clip(trimmed)),
                    });
                }
            }
        }
    }
    if let Some(c) = cue.take() {
        finish(c, &mut out);
    }
    out.records.sort_by_key(|r| r.start_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/drone")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn a_huge_hour_field_is_a_bad_timing_not_an_overflow() {
        // Found by the `drone_srt` fuzz target: the hour multiplied past u64.
        assert_eq!(parse_time("99999999999999999900:00:03,000"), None);
        assert_eq!(parse_time("999:59:59,999"), Some(3_599_999_999));
        let t =
            parse(b"1\n00:00:00,000 --> 99999999999999999900:00:03,000\nGPS(114.05,22.54,17)\n");
        assert!(t.records.is_empty());
        assert_eq!(t.issues.len(), 1, "{:?}", t.issues);
    }

    #[test]
    fn mavic3_bracketed_cues_are_read() {
        let t = parse(&fixture("mavic3.srt"));
        assert!(t.issues.is_empty(), "{:?}", t.issues);
        assert_eq!(t.records.len(), 4);
        let r = &t.records[0];
        assert_eq!(r.format, SrtFormat::Bracketed);
        assert_eq!((r.start_ms, r.end_ms), (0, 33));
        assert_eq!(r.index, Some(1));
        assert!((r.lat - 22.543210).abs() < 1e-9 && (r.lon - 114.054321).abs() < 1e-9);
        assert_eq!(r.rel_alt_m, Some(50.1));
        assert_eq!(r.abs_alt_m, Some(120.3));
        assert_eq!(r.iso, Some(100.0));
        assert_eq!(r.fnum, Some(2.8));
        assert_eq!(r.focal_len_mm, Some(24.0));
        assert_eq!(r.shutter.as_deref(), Some("1/500.0"));
        assert_eq!(r.datetime.as_deref(), Some("2023-05-12 14:32:10.123"));
        assert_eq!(t.records[3].gimbal_pitch_deg, Some(-90.0));
        assert_eq!(t.records[3].gimbal_yaw_deg, Some(45.5));
    }

    #[test]
    fn phantom4pro_spaced_keys_and_longtitude_typo() {
        let t = parse(&fixture("phantom4pro.srt"));
        assert!(t.issues.is_empty(), "{:?}", t.issues);
        assert_eq!(t.records.len(), 3);
        let r = &t.records[1];
        assert!((r.lat - 31.230416).abs() < 1e-9 && (r.lon - 121.473701).abs() < 1e-9);
        assert_eq!(r.rel_alt_m, Some(80.5));
        assert_eq!(r.fnum, Some(5.6));
        assert_eq!((r.start_ms, r.end_ms), (1000, 2000));
    }

    #[test]
    fn legacy_gps_barometer_cues_are_read() {
        let t = parse(&fixture("phantom3_legacy.srt"));
        assert!(t.issues.is_empty(), "{:?}", t.issues);
        assert_eq!(t.records.len(), 3);
        let r = &t.records[2];
        assert_eq!(r.format, SrtFormat::Legacy);
        assert!((r.lon - 114.054500).abs() < 1e-9 && (r.lat - 22.543300).abs() < 1e-9);
        assert_eq!(r.rel_alt_m, Some(31.2));
        assert_eq!(r.iso, Some(100.0));
        assert_eq!(r.datetime.as_deref(), Some("2017-08-05 14:11:53"));
    }

    #[test]
    fn compact_mini_air_cues_are_read() {
        let t = parse(&fixture("mini2_compact.srt"));
        assert!(t.issues.is_empty(), "{:?}", t.issues);
        assert_eq!(t.records.len(), 3);
        let r = &t.records[1];
        assert_eq!(r.format, SrtFormat::Compact);
        assert!((r.lon - 2.294481).abs() < 1e-9 && (r.lat - 48.858370).abs() < 1e-9);
        assert_eq!(r.rel_alt_m, Some(60.2));
        assert_eq!(r.h_speed_ms, Some(3.2));
        assert_eq!(r.v_speed_ms, Some(-0.5));
        assert_eq!(r.fnum, Some(2.8));
        assert_eq!(r.shutter.as_deref(), Some("1000"));
    }

    #[test]
    fn truncated_file_keeps_the_valid_cues_and_reports_the_cut_one() {
        let t = parse(&fixture("truncated.srt"));
        assert_eq!(t.records.len(), 2, "{:?}", t.records);
        assert_eq!(t.issues.len(), 1, "{:?}", t.issues);
        assert_eq!(t.issues[0].line, 12);
        assert!(t.issues[0].message.contains("no valid position"));
    }

    #[test]
    fn broken_lines_are_reported_and_the_rest_kept() {
        let t = parse(&fixture("broken.srt"));
        let kept: Vec<Option<u32>> = t.records.iter().map(|r| r.index).collect();
        assert_eq!(kept, vec![Some(1), Some(4), Some(7)], "{:?}", t.issues);
        let lines: Vec<usize> = t.issues.iter().map(|i| i.line).collect();
        // bad timing, garbage text, no fix, unparseable latitude, stray line, empty cue
        assert_eq!(lines, vec![6, 10, 14, 18, 21, 27], "{:?}", t.issues);
    }

    #[test]
    fn binary_garbage_never_panics() {
        let mut junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        junk.extend_from_slice(b"\n00:00:01,000 --> 00:00:0");
        let t = parse(&junk);
        assert!(t.records.is_empty());
        assert!(!t.issues.is_empty());
    }

    #[test]
    fn position_is_interpolated_between_cues() {
        let t = parse(&fixture("phantom3_legacy.srt"));
        // Cues at 0, 1000 and 2000 ms, each 1000 ms long: 1500 ms is inside the second.
        let mid = t.at(1500, 2000).expect("inside");
        assert_eq!(mid.start_ms, 1000);
        assert!(t.at(2999, 2000).is_some());
        assert!(t.at(60_000, 2000).is_none());
        let gappy = parse(
            b"1\n00:00:00,000 --> 00:00:00,100\nGPS(10.0,50.0,5) BAROMETER:10\n\n\
              2\n00:00:01,000 --> 00:00:01,100\nGPS(10.001,50.001,5) BAROMETER:20\n",
        );
        let m = gappy.at(500, 2000).expect("between");
        assert!((m.lat - 50.0005).abs() < 1e-9, "{}", m.lat);
        assert_eq!(m.rel_alt_m, Some(15.0));
    }
}
