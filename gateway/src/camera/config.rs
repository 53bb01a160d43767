//! `[cameras]`: health-check thresholds and timings, with per-camera overrides.
//!
//! ```toml
//! [cameras]
//! department = "market"
//! [cameras.defaults]
//! hold_ms = 60000
//! [cameras.defaults.checks]
//! black_p95 = 40.0
//! [cameras.overrides.kitchen-03]      # any key of `defaults`; the rest comes from `defaults`
//! hold_ms = 20000
//! checks = { covered_flat_frac = 0.8 }
//! ```

use super::checks::CheckThresholds;
use super::pull::config::{PullSource, validate_sources};
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraSettings {
    /// A picture condition must hold this long before a clue is raised.
    pub hold_ms: u64,
    /// A raised condition must be absent this long before recovery is recorded.
    pub recover_ms: u64,
    /// No frame and no heartbeat for this long: offline.
    pub offline_after_ms: u64,
    /// A fault still present this long after it began escalates ("fault not repaired").
    pub not_repaired_ms: u64,
    pub checks: CheckThresholds,
}

impl Default for CameraSettings {
    fn default() -> Self {
        CameraSettings {
            hold_ms: 60_000,
            recover_ms: 30_000,
            offline_after_ms: 120_000,
            not_repaired_ms: 24 * 3_600_000,
            checks: CheckThresholds::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CamerasConfig {
    /// Department that handles camera-health clues.
    pub department: String,
    pub defaults: CameraSettings,
    /// Per camera id: any subset of the keys of `defaults` (tables merge key by key).
    pub overrides: BTreeMap<String, toml::Table>,
    /// Cameras the gateway pulls frames from (`[[cameras.sources]]`, see [`super::pull`]).
    pub sources: Vec<PullSource>,
    /// The program that reads RTSP streams (a path, or a name on `PATH`).
    pub ffmpeg: String,
    /// Back-off after a failed snapshot or a lost stream: from this ...
    pub source_retry_min_ms: u64,
    /// ... doubling (with jitter) up to this.
    pub source_retry_max_ms: u64,
    /// Cameras per site the gateway keeps state for: frames and references for a further,
    /// new camera id are refused (403, counted in `camera_frames_refused_total`).
    pub max_per_site: usize,
    /// Frames (and reference enrolments) one camera may upload per minute, after a burst of
    /// `frame_burst`; past it: 429 with `Retry-After`, counted as `rate_limit`. 0: no limit.
    pub max_frames_per_minute: u32,
    /// Frames one camera may upload at once before `max_frames_per_minute` applies.
    pub frame_burst: u32,
    /// Device tokens must be bound to their camera (`token create --device`): a device token
    /// without a binding (a relay's) is refused on the camera routes (403, counted as
    /// `unbound_token`). Platform and admin tokens are not affected.
    pub require_device_binding: bool,
}

impl Default for CamerasConfig {
    fn default() -> Self {
        CamerasConfig {
            department: "market".into(),
            defaults: CameraSettings::default(),
            overrides: BTreeMap::new(),
            sources: Vec::new(),
            ffmpeg: "ffmpeg".into(),
            source_retry_min_ms: 1_000,
            source_retry_max_ms: 60_000,
            max_per_site: 64,
            max_frames_per_minute: 60,
            frame_burst: 20,
            require_device_binding: false,
        }
    }
}

impl CamerasConfig {
    /// The settings of `camera`: `defaults` with its override merged in.
    pub(crate) fn settings_for(&self, camera: &str) -> Result<CameraSettings, ConfigError> {
        let Some(over) = self.overrides.get(camera) else {
            return Ok(self.defaults.clone());
        };
        let key = format!("cameras.overrides.{camera}");
        let mut base = toml::Table::try_from(&self.defaults)
            .map_err(|e| invalid(&key, format!("defaults do not serialize: {e}")))?;
        merge(&mut base, over);
        let s: CameraSettings = toml::Value::Table(base)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(&key, e.message().to_string()))?;
        s.validate(&key)?;
        Ok(s)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.department.trim().is_empty() {
            return Err(invalid("cameras.department", "must not be empty"));
        }
        self.defaults.validate("cameras.defaults")?;
        for id in self.overrides.keys() {
            self.settings_for(id)?;
        }
        if self.ffmpeg.trim().is_empty() {
            return Err(invalid("cameras.ffmpeg", "must not be empty"));
        }
        if self.max_per_site == 0 {
            return Err(invalid("cameras.max_per_site", "must be at least 1"));
        }
        if self.frame_burst == 0 {
            return Err(invalid("cameras.frame_burst", "must be at least 1"));
        }
        if self.source_retry_min_ms == 0 || self.source_retry_max_ms < self.source_retry_min_ms {
            return Err(invalid(
                "cameras.source_retry_max_ms",
                "needs 0 < source_retry_min_ms <= source_retry_max_ms",
            ));
        }
        validate_sources(&self.sources)
    }
}

fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl CameraSettings {
    /// Checks ranges; `prefix` is the key path of this table in the file.
    pub(crate) fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.offline_after_ms == 0 {
            return Err(invalid(format!("{prefix}.offline_after_ms"), "must be > 0"));
        }
        if self.not_repaired_ms <= self.hold_ms {
            return Err(invalid(
                format!("{prefix}.not_repaired_ms"),
                "must be longer than hold_ms",
            ));
        }
        let c = &self.checks;
        let fracs = [
            ("sky_min_frac", c.sky_min_frac),
            ("covered_flat_frac", c.covered_flat_frac),
            ("blur_ratio_to_reference", c.blur_ratio_to_reference),
            ("frozen_max_changed_frac", c.frozen_max_changed_frac),
        ];
        for (k, v) in fracs {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!("{prefix}.checks.{k}"), "must be in 0..=1"));
            }
        }
        let lumas = [
            ("black_p95", c.black_p95),
            ("overexposed_p05", c.overexposed_p05),
            ("overexposed_mean", c.overexposed_mean),
            ("overexposed_p95", c.overexposed_p95),
            ("sky_min_luma", c.sky_min_luma),
            ("ceiling_min_luma", c.ceiling_min_luma),
        ];
        for (k, v) in lumas {
            if !(0.0..=255.0).contains(&v) {
                return Err(invalid(
                    format!("{prefix}.checks.{k}"),
                    "must be in 0..=255",
                ));
            }
        }
        for (k, v) in [
            ("moved_edge_corr", c.moved_edge_corr),
            ("moved_hash_edge_corr", c.moved_hash_edge_corr),
        ] {
            if !(-1.0..=1.0).contains(&v) {
                return Err(invalid(format!("{prefix}.checks.{k}"), "must be in -1..=1"));
            }
        }
        if c.moved_hash_distance > 64 {
            return Err(invalid(
                format!("{prefix}.checks.moved_hash_distance"),
                "must be <= 64",
            ));
        }
        for (k, v) in [
            ("flat_std", c.flat_std),
            ("blur_sharpness", c.blur_sharpness),
            ("covered_flat_margin", c.covered_flat_margin),
            ("frozen_cell_diff", c.frozen_cell_diff),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(format!("{prefix}.checks.{k}"), "must be >= 0"));
            }
        }
        Ok(())
    }
}

/// The checks every street rule's camera entry shares: `site`, `camera` and `rule` not empty,
/// and each (site, camera) listed once in its section (`seen`). The error is the key's last
/// part and what is wrong with it; the caller puts the section's path in front.
pub(crate) fn check_rule_camera<'a>(
    seen: &mut std::collections::HashSet<(&'a str, &'a str)>,
    [site, camera, rule]: [&'a String; 3],
) -> Result<(), (&'static str, String)> {
    for (k, v) in [("site", site), ("camera", camera), ("rule", rule)] {
        if v.trim().is_empty() {
            return Err((k, "must not be empty".into()));
        }
    }
    if !seen.insert((site.as_str(), camera.as_str())) {
        return Err((
            "camera",
            format!("camera `{camera}` of site `{site}` listed twice"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_and_bad_keys_are_named() {
        let c: CamerasConfig = toml::from_str(
            r#"
            [overrides.k3]
            hold_ms = 5000
            checks = { black_p95 = 30.0 }
            "#,
        )
        .expect("parse");
        let s = c.settings_for("k3").expect("settings");
        assert_eq!(s.hold_ms, 5000);
        assert_eq!(s.checks.black_p95, 30.0);
        assert_eq!(s.recover_ms, CameraSettings::default().recover_ms);
        assert_eq!(c.settings_for("other").expect("d"), c.defaults);

        let bad: CamerasConfig =
            toml::from_str("[overrides.k9]\nchecks = { blak_p95 = 3.0 }\n").expect("parse");
        let e = bad.validate().expect_err("typo").to_string();
        assert!(
            e.contains("cameras.overrides.k9") && e.contains("blak_p95"),
            "{e}"
        );

        let bad: CamerasConfig =
            toml::from_str("[defaults.checks]\nsky_min_frac = 3.0\n").expect("parse");
        let e = bad.validate().expect_err("range").to_string();
        assert!(e.contains("cameras.defaults.checks.sky_min_frac"), "{e}");
        assert!(toml::from_str::<CamerasConfig>("[defaults]\nhold = 1\n").is_err());
    }

    #[test]
    fn gateway_config_has_a_cameras_section_naming_bad_keys() {
        use crate::config::Config;
        let c = Config::from_toml("[cameras.defaults]\nhold_ms = 5000\n").expect("load");
        assert_eq!(c.cameras.defaults.hold_ms, 5000);
        let e = Config::from_toml("[cameras.defaults]\nhold_mss = 5000\n")
            .expect_err("typo")
            .to_string();
        assert!(e.contains("hold_mss"), "{e}");
        let e = Config::from_toml("[cameras.overrides.k1.checks]\nmoved_edge_corr = 2.0\n")
            .expect_err("range")
            .to_string();
        assert!(
            e.contains("cameras.overrides.k1.checks.moved_edge_corr"),
            "{e}"
        );
    }
}
