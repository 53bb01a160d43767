//! Personal data in evidence images: roles without the personal-data right get a masked copy.
//!
//! The original file stays on disk untouched (its SHA-256 keeps verifying) and every access to
//! it is audited by the API. The masked copy is made on request from the regions recorded with
//! the evidence (`Evidence::File::regions`):
//! - `plate`: the whole plate box;
//! - `person`: the upper part of the box (`person_head_fraction`). There is no face model: the
//!   head of a standing person is in the top of a COCO person box, so that is what is hidden;
//! - `vehicle` with no plate box inside it: the lower part (`vehicle_plate_fraction`), where
//!   a plate the reader missed would be.
//!
//! With no regions known (nobody analysed the image) the whole image is pixelated coarsely; a
//! file that cannot be decoded, or is not an image, is withheld. Never the raw bytes.

use super::auth::Role;
use super::signal::Region;
use crate::config_error::{ConfigError, invalid};
use image::{GenericImageView, RgbImage};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `[clues.privacy]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Roles that see originals (each access audited); every other role gets masked copies.
    pub original_roles: Vec<Role>,
    /// `pixelate` or `black`.
    pub mask: MaskStyle,
    /// Pixelation cell, in pixels (within a region).
    pub block_px: u32,
    /// Share of a person box, from the top, that is masked (the head).
    pub person_head_fraction: f32,
    /// Share of a vehicle box, from the bottom, masked when no plate box lies inside it.
    pub vehicle_plate_fraction: f32,
    /// Cells across the longer side when the whole image must be masked (no regions known).
    pub whole_image_cells: u32,
    /// JPEG quality of masked copies.
    pub jpeg_quality: u8,
    /// Memory for masked copies already made, in MiB (`clue::masked_cache`; 0: none kept).
    pub masked_cache_mb: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskStyle {
    Pixelate,
    Black,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            original_roles: vec![Role::Supervisor, Role::Admin],
            mask: MaskStyle::Pixelate,
            block_px: 12,
            person_head_fraction: 0.3,
            vehicle_plate_fraction: 0.4,
            whole_image_cells: 12,
            jpeg_quality: 85,
            masked_cache_mb: 64,
        }
    }
}

impl PrivacyConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let p = "clues.privacy";
        if self.block_px < 2 {
            return Err(invalid(format!("{p}.block_px"), "must be at least 2"));
        }
        for (k, v) in [
            ("person_head_fraction", self.person_head_fraction),
            ("vehicle_plate_fraction", self.vehicle_plate_fraction),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(invalid(format!("{p}.{k}"), "must be in (0, 1]"));
            }
        }
        if !(2..=64).contains(&self.whole_image_cells) {
            return Err(invalid(
                format!("{p}.whole_image_cells"),
                "must be between 2 and 64",
            ));
        }
        if !(10..=100).contains(&self.jpeg_quality) {
            return Err(invalid(
                format!("{p}.jpeg_quality"),
                "must be between 10 and 100",
            ));
        }
        if self.masked_cache_mb > 4096 {
            return Err(invalid(
                format!("{p}.masked_cache_mb"),
                "must be at most 4096 (MiB)",
            ));
        }
        Ok(())
    }

    /// Whether `role` has the personal-data right (sees originals).
    pub(crate) fn sees_originals(&self, role: Role) -> bool {
        self.original_roles.contains(&role)
    }
}

#[derive(Debug, Error, PartialEq)]
pub(crate) enum MaskError {
    #[error("{0} evidence is not an image; withheld from this role")]
    NotAnImage(String),
    #[error("evidence image could not be decoded ({0}); withheld from this role")]
    Undecodable(String),
}

/// The rectangles (x0, y0, x1, y1 in pixels, clamped) to mask for `regions` in a `w` x `h`
/// image.
pub(crate) fn mask_rects(regions: &[Region], w: u32, h: u32, cfg: &PrivacyConfig) -> Vec<[u32; 4]> {
    let clamp = |v: f32, max: u32| -> u32 {
        if v.is_finite() {
            v.max(0.0).min(max as f32).round() as u32
        } else {
            0
        }
    };
    let inside = |p: &Region, v: &Region| {
        let (cx, cy) = ((p.x0 + p.x1) / 2.0, (p.y0 + p.y1) / 2.0);
        cx >= v.x0 && cx <= v.x1 && cy >= v.y0 && cy <= v.y1
    };
    let mut out = Vec::new();
    for r in regions {
        let (x0, x1) = (r.x0.min(r.x1), r.x0.max(r.x1));
        let (y0, y1) = (r.y0.min(r.y1), r.y0.max(r.y1));
        let (y0, y1) = match r.kind.as_str() {
            "plate" => (y0, y1),
            "person" => (y0, y0 + (y1 - y0) * cfg.person_head_fraction),
            "vehicle" => {
                if regions.iter().any(|p| p.kind == "plate" && inside(p, r)) {
                    continue;
                }
                (y1 - (y1 - y0) * cfg.vehicle_plate_fraction, y1)
            }
            // Unknown kinds are masked whole: better too much than too little.
            _ => (y0, y1),
        };
        let rect = [clamp(x0, w), clamp(y0, h), clamp(x1, w), clamp(y1, h)];
        if rect[2] > rect[0] && rect[3] > rect[1] {
            out.push(rect);
        }
    }
    out
}

/// Replaces each `block` x `block` cell of `rect` with its mean colour (or black).
fn mask_rect(img: &mut RgbImage, rect: [u32; 4], block: u32, style: MaskStyle) {
    let [x0, y0, x1, y1] = rect;
    let mut by = y0;
    while by < y1 {
        let ey = (by + block).min(y1);
        let mut bx = x0;
        while bx < x1 {
            let ex = (bx + block).min(x1);
            let colour = match style {
                MaskStyle::Black => [0u8; 3],
                MaskStyle::Pixelate => {
                    let mut sum = [0u64; 3];
                    let mut n = 0u64;
                    for y in by..ey {
                        for x in bx..ex {
                            let p = img.get_pixel(x, y).0;
                            for c in 0..3 {
                                sum[c] += p[c] as u64;
                            }
                            n += 1;
                        }
                    }
                    let n = n.max(1);
                    [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]
                }
            };
            for y in by..ey {
                for x in bx..ex {
                    img.put_pixel(x, y, image::Rgb(colour));
                }
            }
            bx = ex;
        }
        by = ey;
    }
}

/// The masked copy of an evidence file for a role without the personal-data right, as JPEG.
pub(crate) fn masked_copy(
    bytes: &[u8],
    content_type: &str,
    regions: Option<&[Region]>,
    cfg: &PrivacyConfig,
) -> Result<Vec<u8>, MaskError> {
    if !content_type.starts_with("image/") {
        return Err(MaskError::NotAnImage(content_type.to_string()));
    }
    let decoded =
        image::load_from_memory(bytes).map_err(|e| MaskError::Undecodable(e.to_string()))?;
    let (w, h) = decoded.dimensions();
    let mut img = decoded.to_rgb8();
    match regions {
        Some(regions) => {
            for rect in mask_rects(regions, w, h, cfg) {
                mask_rect(&mut img, rect, cfg.block_px, cfg.mask);
            }
        }
        None => {
            let block = (w.max(h) / cfg.whole_image_cells).max(cfg.block_px);
            mask_rect(&mut img, [0, 0, w, h], block, cfg.mask);
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, cfg.jpeg_quality)
        .encode_image(&img)
        .map_err(|e| MaskError::Undecodable(e.to_string()))?;
    Ok(out)
}

/// `京A12345` -> `京A*****`: the region prefix stays (it says where the vehicle is from).
pub(crate) fn masked_plate(plate: &str) -> String {
    plate
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 2 { c } else { '*' })
        .collect()
}

/// `Wang Wei 13800138000` -> `Wang Wei 138****8000`: in a registry owner's contact, every
/// run of 7 or more digits (spaces, `-` and `.` inside it allowed) is a phone number and keeps
/// its first 3 and last 4 digits (first 2 only when it is shorter than 11): enough to tell two
/// numbers apart, not enough to call. The name stays: inspectors need to know whom to ask for.
pub(crate) fn masked_contact(contact: &str) -> String {
    let chars: Vec<char> = contact.chars().collect();
    let mut out = String::with_capacity(contact.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits with single separators between them.
        let mut end = i;
        let mut j = i;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                end = j + 1;
                j += 1;
            } else if matches!(chars[j], ' ' | '-' | '.')
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        let run = &chars[i..end];
        let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
        if digits < 7 {
            out.extend(run);
        } else {
            let (head, tail) = if digits >= 11 { (3, 4) } else { (2, 0) };
            let mut seen = 0;
            for &c in run {
                if c.is_ascii_digit() {
                    seen += 1;
                    out.push(if seen <= head || seen > digits - tail {
                        c
                    } else {
                        '*'
                    });
                } else {
                    out.push(c);
                }
            }
        }
        i = end;
    }
    out
}

/// `12 Beijing Road, Unit 3` -> `12 Be…`: a postal address keeps its first 5 characters,
/// enough to tell two addresses apart in a list, not enough to find the door.
pub(crate) fn masked_address(address: &str) -> String {
    let n = address.chars().count();
    let head: String = address.chars().take(5).collect();
    if n <= 5 {
        "*".repeat(n)
    } else {
        format!("{head}…")
    }
}

/// Hides personal data wherever it is written in `value` (a clue, a detail, a change, audit
/// entries, oversight warnings, registry entries): every string under a `plate` key is
/// collected, together with `known`, and so is every string under an `owner`, `owner_phone`
/// or `owner_address` key (the registry's contacts of the owner); each occurrence of those in any string (titles, dedup
/// keys, notes, details, warning keys) is replaced by its masked form ([`masked_plate`],
/// [`masked_contact`]). Working on the serialized form is deliberate: a field added later is
/// masked too, without a list to keep up to date.
pub(crate) fn mask_personal_data(value: &mut serde_json::Value, known: &[String]) {
    fn collect(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if let Some(s) = v.as_str() {
                        match k.as_str() {
                            "plate" => out.push((s.to_string(), masked_plate(s))),
                            "owner" | "owner_phone" => out.push((s.to_string(), masked_contact(s))),
                            "owner_address" => out.push((s.to_string(), masked_address(s))),
                            _ => {}
                        }
                    }
                    collect(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    fn replace(v: &mut serde_json::Value, plates: &[(String, String)]) {
        match v {
            serde_json::Value::String(s) => {
                for (plate, masked) in plates {
                    if s.contains(plate.as_str()) {
                        *s = s.replace(plate.as_str(), masked);
                    }
                }
            }
            serde_json::Value::Object(m) => m.values_mut().for_each(|v| replace(v, plates)),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| replace(v, plates)),
            _ => {}
        }
    }
    let mut pairs: Vec<(String, String)> =
        known.iter().map(|p| (p.clone(), masked_plate(p))).collect();
    collect(value, &mut pairs);
    // Too short to be a plate (and masking it would garble unrelated text); nothing to hide.
    pairs.retain(|(p, m)| p.chars().count() >= 3 && p != m);
    pairs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    pairs.dedup_by(|a, b| a.0 == b.0);
    if !pairs.is_empty() {
        replace(value, &pairs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(kind: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> Region {
        Region {
            kind: kind.into(),
            x0,
            y0,
            x1,
            y1,
        }
    }

    #[test]
    fn an_owners_phone_is_masked_wherever_it_is_written_and_the_name_stays() {
        assert_eq!(
            masked_contact("Wang Wei 13800138000"),
            "Wang Wei 138****8000"
        );
        assert_eq!(
            masked_contact("Li +86 138-0013-8000"),
            "Li +86 1**-****-8000"
        );
        assert_eq!(masked_contact("shop 021 6543 210"), "shop 02* **** ***");
        assert_eq!(masked_contact("Unit 12, Lane 305"), "Unit 12, Lane 305");
        let mut v = serde_json::json!({
            "subject": {"site": "s", "owner": "Wang Wei 13800138000"},
            "notes": ["call Wang Wei 13800138000 first"],
        });
        mask_personal_data(&mut v, &[]);
        assert!(!v.to_string().contains("13800138000"), "{v}");
        assert_eq!(v["notes"][0], "call Wang Wei 138****8000 first");
    }

    #[test]
    fn plates_are_masked_in_every_string_not_only_the_plate_field() {
        let mut v = serde_json::json!({
            "title": "Parked 9 min: 京A12345 at gate",
            "dedup_key": "parking/s/cam1/京A12345",
            "subject": {"site": "s", "plate": "京A12345"},
            "recent_occurrences": [{"detail": {"note": "again 京A12345"}}],
        });
        mask_personal_data(&mut v, &[]);
        let text = v.to_string();
        assert!(!text.contains("12345"), "{text}");
        assert!(text.contains("京A*****"), "{text}");
        let mut entry = serde_json::json!({"detail": {"title": "沪B99999 left"}});
        mask_personal_data(&mut entry, &["沪B99999".to_string()]);
        assert_eq!(entry["detail"]["title"], "沪B***** left");
    }

    /// A noisy image: masking must visibly flatten it.
    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([((x * 37 + y * 11) % 256) as u8, ((x * y) % 256) as u8, 128])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
            .encode_image(&img)
            .expect("encode");
        out
    }

    /// Mean absolute difference between neighbouring pixels inside `rect`.
    fn roughness(img: &RgbImage, rect: [u32; 4]) -> f64 {
        let (mut sum, mut n) = (0f64, 0f64);
        for y in rect[1]..rect[3] {
            for x in rect[0]..rect[2] - 1 {
                let a = img.get_pixel(x, y).0[0] as f64;
                let b = img.get_pixel(x + 1, y).0[0] as f64;
                sum += (a - b).abs();
                n += 1.0;
            }
        }
        sum / n
    }

    #[test]
    fn person_heads_plates_and_plate_bands_are_masked_and_the_rest_is_kept() {
        let cfg = PrivacyConfig::default();
        let regions = [
            region("person", 10.0, 10.0, 30.0, 110.0),
            region("vehicle", 100.0, 50.0, 200.0, 110.0),
            region("vehicle", 210.0, 40.0, 300.0, 110.0),
            region("plate", 240.0, 95.0, 270.0, 105.0),
        ];
        let rects = mask_rects(&regions, 320, 120, &cfg);
        assert_eq!(
            rects,
            vec![[10, 10, 30, 40], [100, 86, 200, 110], [240, 95, 270, 105]],
            "head, plate band of the vehicle without a plate box, the plate box"
        );
        let original = jpeg(320, 120);
        let masked = masked_copy(&original, "image/jpeg", Some(&regions), &cfg).expect("mask");
        let before = image::load_from_memory(&original)
            .expect("decode")
            .to_rgb8();
        let after = image::load_from_memory(&masked).expect("decode").to_rgb8();
        assert!(roughness(&after, [12, 12, 28, 38]) < roughness(&before, [12, 12, 28, 38]) / 4.0);
        // Away from every region, the image is the same (JPEG re-encoding aside).
        assert!(
            (roughness(&after, [40, 10, 90, 40]) - roughness(&before, [40, 10, 90, 40])).abs()
                < 8.0
        );
    }

    #[test]
    fn with_no_regions_known_the_whole_image_is_masked_and_non_images_are_withheld() {
        let cfg = PrivacyConfig::default();
        let original = jpeg(160, 120);
        let masked = masked_copy(&original, "image/jpeg", None, &cfg).expect("mask");
        let before = image::load_from_memory(&original)
            .expect("decode")
            .to_rgb8();
        let after = image::load_from_memory(&masked).expect("decode").to_rgb8();
        let all = [0, 0, 160, 120];
        assert!(roughness(&after, all) < roughness(&before, all) / 4.0);
        assert!(matches!(
            masked_copy(b"%PDF", "application/pdf", None, &cfg),
            Err(MaskError::NotAnImage(_))
        ));
        assert!(matches!(
            masked_copy(b"not a jpeg", "image/jpeg", Some(&[]), &cfg),
            Err(MaskError::Undecodable(_))
        ));
    }

    #[test]
    fn black_masks_are_black() {
        let cfg = PrivacyConfig {
            mask: MaskStyle::Black,
            ..Default::default()
        };
        let masked = masked_copy(
            &jpeg(64, 64),
            "image/jpeg",
            Some(&[region("plate", 8.0, 8.0, 40.0, 40.0)]),
            &cfg,
        )
        .expect("mask");
        let after = image::load_from_memory(&masked).expect("decode").to_rgb8();
        assert!(after.get_pixel(24, 24).0.iter().all(|c| *c < 16));
    }

    /// Benchmark: `cargo test -p gateway --release --lib masking_speed -- --ignored
    /// --nocapture`. A 1920x1080 street frame with 6 regions, and the same frame masked whole.
    #[test]
    #[ignore = "benchmark: cargo test -p gateway --release --lib masking_speed -- --ignored --nocapture"]
    fn masking_speed() {
        let cfg = PrivacyConfig::default();
        let frame = jpeg(1920, 1080);
        let regions: Vec<Region> = (0..3)
            .flat_map(|i| {
                let x = 100.0 + i as f32 * 600.0;
                [
                    region("vehicle", x, 500.0, x + 400.0, 800.0),
                    region("person", x + 420.0, 300.0, x + 520.0, 700.0),
                ]
            })
            .collect();
        for (what, r) in [("6 regions", Some(regions.as_slice())), ("whole", None)] {
            let t = std::time::Instant::now();
            let n = 10;
            for _ in 0..n {
                masked_copy(&frame, "image/jpeg", r, &cfg).expect("mask");
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
            println!("masked copy of a 1920x1080 JPEG ({what}): {ms:.1} ms");
        }
        // Where the time goes: the JPEG decode and encode every masked copy needs anyway.
        let t = std::time::Instant::now();
        let img = image::load_from_memory(&frame).expect("decode").to_rgb8();
        let decode_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = std::time::Instant::now();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, cfg.jpeg_quality)
            .encode_image(&img)
            .expect("encode");
        let encode_ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("  of which decode {decode_ms:.1} ms, encode {encode_ms:.1} ms");
    }
}
