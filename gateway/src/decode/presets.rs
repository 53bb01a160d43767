//! Ready-made mappings for LoRaWAN network servers and the sensors cities buy.
//!
//! A `[[mappings]]` entry may name a `preset` (the network server's uplink event: where the
//! time, the DevEUI, the frame counter and the codec's decoded object are) and a `codec` (the
//! fields a vendor's payload decoder produces, under the names that decoder gives them). Any
//! key set in the entry itself wins over the preset; `fields` set in the entry replace the
//! codec's. Field paths are relative to the preset's `payload_root`.
//!
//! Formats, from the vendors' published documents:
//! - ChirpStack v4 MQTT integration, event `up` (integration.proto `UplinkEvent`, JSON
//!   mapping): topic `application/{application_id}/device/{dev_eui}/event/up`; `time` RFC 3339
//!   (`2022-07-18T09:34:15.775023242+00:00`), `deviceInfo.devEui` (hex), `fCnt`, `data`
//!   (base64), `object` (the device profile codec's output). Zero values are omitted, so a
//!   frame counter of 0 is absent.
//! - The Things Stack v3 MQTT / webhook uplink: topic `v3/{app}@{tenant}/devices/{id}/up`;
//!   `received_at` RFC 3339, `end_device_ids.dev_eui` (hex), `uplink_message.f_cnt`,
//!   `uplink_message.decoded_payload` (the payload formatter's output); empty fields omitted.
//! - Milesight EM310-UDL decoder (Milesight-IoT/SensorDecoders, `EM310-UDL_Chirpstack_v4.js`
//!   and `_TTN.js`): `battery` (%), `distance` (mm), `position` (`normal` / `tilt`).
//! - Milesight EM320-TILT decoder: `battery` (%), `angle_x`, `angle_y`, `angle_z` (degrees),
//!   `threshold_x`, `threshold_y`, `threshold_z` (`normal` / `trigger`). Each angle is that
//!   axis's angle to the horizontal plane (lying flat: 0, 0, 90). The gateway adds the
//!   cover's tilt from level, `tilt_deg`, which the manhole rules read (see [`Codec::derive`]).

use crate::decode::mapping::{FieldMapping, MappingConfig, TimeFormat};
use crate::reading::{Reading, Value};
use serde::{Deserialize, Serialize};

/// A network server's uplink event format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    #[serde(rename = "chirpstack-v4")]
    ChirpstackV4,
    /// The Things Stack v3 (The Things Network, TTI).
    #[serde(rename = "tts-v3", alias = "ttn-v3")]
    TtsV3,
}

/// A vendor payload decoder's output fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    #[serde(rename = "milesight-em310-udl")]
    MilesightEm310Udl,
    #[serde(rename = "milesight-em320-tilt")]
    MilesightEm320Tilt,
}

struct PresetDefaults {
    topic: &'static str,
    time_field: &'static str,
    dev_eui_field: &'static str,
    seq_field: &'static str,
    payload_root: &'static str,
}

fn defaults(p: Preset) -> PresetDefaults {
    match p {
        Preset::ChirpstackV4 => PresetDefaults {
            topic: "application/+/device/+/event/up",
            time_field: "time",
            dev_eui_field: "deviceInfo.devEui",
            seq_field: "fCnt",
            payload_root: "object",
        },
        Preset::TtsV3 => PresetDefaults {
            topic: "v3/+/devices/+/up",
            time_field: "received_at",
            dev_eui_field: "end_device_ids.dev_eui",
            seq_field: "uplink_message.f_cnt",
            payload_root: "uplink_message.decoded_payload",
        },
    }
}

fn field(path: &str, metric: &str, unit: Option<&str>, optional: bool) -> FieldMapping {
    FieldMapping {
        path: path.into(),
        metric: metric.into(),
        unit: unit.map(Into::into),
        scale: 1.0,
        offset: 0.0,
        optional,
    }
}

/// The stream and fields of a codec; metric names are the vendor's field names.
fn codec_fields(c: Codec) -> (&'static str, Vec<FieldMapping>) {
    match c {
        Codec::MilesightEm310Udl => (
            "grease_trap",
            vec![
                field("distance", "distance", Some("mm"), false),
                field("battery", "battery", Some("%"), true),
                field("position", "position", None, true),
            ],
        ),
        Codec::MilesightEm320Tilt => (
            "manhole_cover",
            vec![
                field("angle_x", "angle_x", Some("deg"), false),
                field("angle_y", "angle_y", Some("deg"), false),
                field("angle_z", "angle_z", Some("deg"), false),
                field("threshold_x", "threshold_x", None, true),
                field("threshold_y", "threshold_y", None, true),
                field("threshold_z", "threshold_z", None, true),
                field("battery", "battery", Some("%"), true),
            ],
        ),
    }
}

impl Codec {
    /// Adds what the rules need and the vendor's decoder does not say outright, to one
    /// message's readings (same site, device and times as the rest). EM320-TILT: `tilt_deg`,
    /// the angle between the cover and level, from `angle_x` and `angle_y` (the sensor's X
    /// and Y axes lie in the cover; the sines of their angles to the horizontal are the
    /// horizontal components of the cover's normal, so the tilt is
    /// asin(sqrt(sin²x + sin²y))), past 90 when `angle_z` says the cover lies upside down.
    /// Nothing is added when the message already has `tilt_deg` or lacks either angle.
    pub(crate) fn derive(self, msg: &mut Vec<Reading>) {
        match self {
            Codec::MilesightEm310Udl => {}
            Codec::MilesightEm320Tilt => {
                let num = |m: &str| {
                    msg.iter()
                        .find(|r| r.metric == m)
                        .and_then(|r| r.value.as_f64().map(|v| (v, r)))
                };
                if num("tilt_deg").is_some() {
                    return;
                }
                let (Some((x, rx)), Some((y, _))) = (num("angle_x"), num("angle_y")) else {
                    return;
                };
                let horizontal = (x.to_radians().sin().powi(2) + y.to_radians().sin().powi(2))
                    .sqrt()
                    .min(1.0);
                let mut tilt = horizontal.asin().to_degrees();
                if num("angle_z").is_some_and(|(z, _)| z < 0.0) {
                    tilt = 180.0 - tilt;
                }
                let reading = Reading {
                    metric: "tilt_deg".into(),
                    value: Value::Float((tilt * 10.0).round() / 10.0),
                    unit: "deg".into(),
                    ..rx.clone()
                };
                msg.push(reading);
            }
        }
    }
}

/// Fills what `m.preset` and `m.codec` provide and `m` leaves unset. Idempotent.
pub(crate) fn apply(m: &mut MappingConfig) {
    if let Some(p) = m.preset {
        let d = defaults(p);
        let fill = |slot: &mut Option<String>, v: &str| {
            slot.get_or_insert_with(|| v.to_string());
        };
        if m.topic.is_empty() {
            m.topic = d.topic.into();
        }
        fill(&mut m.time_field, d.time_field);
        fill(&mut m.dev_eui_field, d.dev_eui_field);
        fill(&mut m.seq_field, d.seq_field);
        fill(&mut m.payload_root, d.payload_root);
        m.time_format.get_or_insert(TimeFormat::Rfc3339);
    }
    if let Some(c) = m.codec {
        let (stream, fields) = codec_fields(c);
        if m.stream.is_empty() {
            m.stream = stream.into();
        }
        if m.fields.is_empty() {
            m.fields = fields;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::decode::{DecodeError, Decoder};
    use crate::reading::Value;
    use crate::registry::{Registry, RegistryConfig};
    use std::sync::Arc;

    const CHIRPSTACK: &str =
        include_str!("../../tests/fixtures/lorawan/chirpstack-v4-up-em310-udl.json");
    const TTS: &str = include_str!("../../tests/fixtures/lorawan/tts-v3-up-em320-tilt.json");
    const CONFIG: &str = r#"
[[mappings]]
name = "chirpstack-em310"
preset = "chirpstack-v4"
codec = "milesight-em310-udl"
[[mappings]]
name = "tts-em320"
preset = "tts-v3"
codec = "milesight-em320-tilt"
"#;

    fn decoder(registry: Registry) -> Decoder {
        Config::from_toml(CONFIG)
            .unwrap()
            .decoder()
            .with_registry(Arc::new(registry))
    }

    fn registered() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reg.toml");
        std::fs::write(
            &path,
            "[[devices]]\nsite='r7'\ndevice='trap-1'\nkind='grease_trap'\ndev_eui='24E124713B123456'\n\
             [[devices]]\nsite='street-4'\ndevice='cover-2'\nkind='manhole_cover'\ndev_eui='24e124710c408089'\n",
        )
        .unwrap();
        let cfg = RegistryConfig {
            file: Some(path),
            ..RegistryConfig::default()
        };
        Registry::open(&cfg, Arc::new(crate::metrics::Metrics::new())).unwrap()
    }

    #[test]
    fn chirpstack_v4_em310_udl_uplink_lands_on_the_registered_device_at_device_time() {
        let d = decoder(registered());
        let topic =
            "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/24e124713b123456/event/up";
        let r = d.decode(topic, CHIRPSTACK.as_bytes(), 1).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].site.as_str(), r[0].device.as_str()), ("r7", "trap-1"));
        assert_eq!(r[0].stream, "grease_trap");
        assert_eq!(
            (r[0].metric.as_str(), &r[0].value),
            ("distance", &Value::Float(2116.0))
        );
        assert_eq!(r[0].unit, "mm");
        assert_eq!(r[2].value, Value::Text("tilt".into()));
        // 2022-07-18T09:34:15.775023242+00:00
        assert_eq!(r[0].device_time_ms, 1_658_136_855_775);
        assert_eq!(r[0].sequence, Some(128));
    }

    #[test]
    fn tts_v3_em320_tilt_uplink_lands_on_the_registered_device_at_device_time() {
        let d = decoder(registered());
        let topic = "v3/manhole-covers@ttn/devices/eui-24e124710c408089/up";
        let r = d.decode(topic, TTS.as_bytes(), 1).unwrap();
        assert_eq!(
            (
                r[0].site.as_str(),
                r[0].device.as_str(),
                r[0].stream.as_str()
            ),
            ("street-4", "cover-2", "manhole_cover")
        );
        let metrics: Vec<&str> = r.iter().map(|x| x.metric.as_str()).collect();
        assert_eq!(
            metrics,
            [
                "angle_x",
                "angle_y",
                "angle_z",
                "threshold_x",
                "threshold_y",
                "threshold_z",
                "battery",
                "tilt_deg"
            ]
        );
        // Lying flat (0, 0, 90): level.
        assert_eq!(r[7].value, Value::Float(0.0));
        assert_eq!(r[7].unit, "deg");
        assert_eq!(r[2].value, Value::Float(90.0));
        assert_eq!(r[4].value, Value::Text("trigger".into()));
        // 2020-02-12T15:15:49.979398312Z
        assert_eq!(r[0].device_time_ms, 1_581_520_549_979);
        assert_eq!(r[0].sequence, Some(1834));
    }

    /// The EM320-TILT payload with these angles (the vendor decoder's field names).
    fn tilted(x: f64, y: f64, z: f64) -> String {
        let mut v: serde_json::Value = serde_json::from_str(TTS).unwrap();
        let p = &mut v["uplink_message"]["decoded_payload"];
        p["angle_x"] = x.into();
        p["angle_y"] = y.into();
        p["angle_z"] = z.into();
        v.to_string()
    }

    fn tilt_of(d: &Decoder, payload: &str) -> f64 {
        let r = d
            .decode("v3/a@ttn/devices/x/up", payload.as_bytes(), 1)
            .unwrap();
        let t = r.iter().find(|r| r.metric == "tilt_deg").expect("tilt_deg");
        t.value.as_f64().unwrap()
    }

    #[test]
    fn em320_tilt_angles_give_the_covers_tilt_from_level() {
        let d = decoder(registered());
        // Tipped 35 degrees about one axis: that axis stays level, the other rises 35.
        assert_eq!(tilt_of(&d, &tilted(0.0, 35.0, 55.0)), 35.0);
        assert_eq!(tilt_of(&d, &tilted(-12.0, 0.0, 78.0)), 12.0);
        // About both: 30 and 30 is a 45-degree tilt (sin² 30 + sin² 30 = sin² 45).
        assert_eq!(tilt_of(&d, &tilted(30.0, 30.0, 45.0)), 45.0);
        // Upside down (Z points down): past 90.
        assert_eq!(tilt_of(&d, &tilted(0.0, 10.0, -80.0)), 170.0);
    }

    #[test]
    fn a_tilted_em320_cover_raises_the_default_tilt_rule() {
        use crate::clue::signal::ClueSignal;
        let d = decoder(registered());
        let mut engine = crate::rules::Engine::new(
            crate::rules::default_rules(),
            &crate::rules::config::RulesSettings::default(),
        )
        .unwrap();
        let topic = "v3/manhole-covers@ttn/devices/eui-24e124710c408089/up";
        let mut signals = Vec::new();
        for (i, (x, y, z)) in [(0.0, 0.0, 90.0), (0.0, 35.0, 55.0), (0.0, 36.0, 54.0)]
            .into_iter()
            .enumerate()
        {
            let mut r = d.decode(topic, tilted(x, y, z).as_bytes(), 1).unwrap();
            for x in &mut r {
                x.device_time_ms = 1_700_000_000_000 + i as i64 * 60_000;
            }
            signals.extend(engine.on_readings(&r));
        }
        let tilted: Vec<_> = signals
            .iter()
            .filter_map(|s| match s {
                ClueSignal::Occurrence(e) if e.rule == "cover-tilted" => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(tilted.len(), 1, "{signals:#?}");
        assert_eq!(tilted[0].subject.site, "street-4");
        assert_eq!(tilted[0].subject.device.as_deref(), Some("cover-2"));
    }

    #[test]
    fn a_zero_frame_counter_omitted_by_the_server_is_no_sequence() {
        let d = decoder(registered());
        let text = TTS.replace("\"f_cnt\": 1834,", "");
        let r = d
            .decode("v3/a@ttn/devices/x/up", text.as_bytes(), 1)
            .unwrap();
        assert_eq!(r[0].sequence, None);
    }

    #[test]
    fn unregistered_dev_eui_is_kept_under_the_placeholder_site_and_listed() {
        let reg = Arc::new(Registry::empty());
        let d = Config::from_toml(CONFIG)
            .unwrap()
            .decoder()
            .with_registry(reg.clone());
        let r = d
            .decode("application/x/device/y/event/up", CHIRPSTACK.as_bytes(), 1)
            .unwrap();
        assert_eq!(
            (r[0].site.as_str(), r[0].device.as_str()),
            ("unregistered", "24e124713b123456")
        );
        assert_eq!(reg.unknown()[0].id, "24e124713b123456");
    }

    #[test]
    fn bad_times_and_dev_euis_are_refused_naming_the_field() {
        let d = decoder(registered());
        let topic = "application/x/device/y/event/up";
        let bad_time = CHIRPSTACK.replace(
            "2022-07-18T09:34:15.775023242+00:00\",\n  \"deviceInfo",
            "yesterday\",\n  \"deviceInfo",
        );
        let e = d.decode(topic, bad_time.as_bytes(), 1).unwrap_err();
        assert!(
            matches!(&e, DecodeError::WrongType { field, .. } if field == "time"),
            "{e}"
        );
        assert!(e.to_string().contains("RFC 3339"), "{e}");
        let numeric = CHIRPSTACK.replace(
            "\"2022-07-18T09:34:15.775023242+00:00\",\n  \"deviceInfo",
            "1658136855775,\n  \"deviceInfo",
        );
        let e = d.decode(topic, numeric.as_bytes(), 1).unwrap_err();
        assert!(e.to_string().contains("time_format"), "{e}");
        let bad_eui =
            CHIRPSTACK.replace("\"devEui\": \"24e124713b123456\"", "\"devEui\": \"garden\"");
        let e = d.decode(topic, bad_eui.as_bytes(), 1).unwrap_err();
        assert!(
            matches!(&e, DecodeError::WrongType { field, .. } if field == "deviceInfo.devEui"),
            "{e}"
        );
    }

    #[test]
    fn auto_time_format_reads_seconds_milliseconds_and_text() {
        let cfg = Config::from_toml(
            r#"
[[mappings]]
name = "auto"
topic = "m/{site}/{device}"
stream = "s"
time_field = "t"
time_format = "auto"
[[mappings.fields]]
path = "v"
metric = "v"
"#,
        )
        .unwrap();
        let d = cfg.decoder();
        for (t, want) in [
            ("1658136855", 1_658_136_855_000),
            ("1658136855775", 1_658_136_855_775),
            ("\"1658136855.5\"", 1_658_136_855_500),
            ("\"2022-07-18T17:34:15.775+08:00\"", 1_658_136_855_775),
        ] {
            let payload = format!(r#"{{"t":{t},"v":1}}"#);
            let r = d.decode("m/a/b", payload.as_bytes(), 0).unwrap();
            assert_eq!(r[0].device_time_ms, want, "{t}");
        }
    }

    #[test]
    fn one_application_with_two_sensor_models_shares_a_topic() {
        // Both codecs on ChirpStack's one topic: each uplink finds the mapping whose fields it has.
        let cfg = Config::from_toml(
            r#"
[[mappings]]
name = "level"
preset = "chirpstack-v4"
codec = "milesight-em310-udl"
[[mappings]]
name = "tilt"
preset = "chirpstack-v4"
codec = "milesight-em320-tilt"
"#,
        )
        .unwrap();
        let d = cfg.decoder().with_registry(Arc::new(registered()));
        let tilt = CHIRPSTACK.replace(
            r#""object": {"battery": 92.0, "distance": 2116.0, "position": "tilt"}"#,
            r#""object": {"battery": 100, "angle_x": 0, "angle_y": 0, "angle_z": 90}"#,
        );
        let r = d
            .decode("application/a/device/b/event/up", tilt.as_bytes(), 1)
            .unwrap();
        assert_eq!(r[0].stream, "manhole_cover");
        let neither = CHIRPSTACK.replace(r#""distance": 2116.0, "#, "");
        let e = d
            .decode("application/a/device/b/event/up", neither.as_bytes(), 1)
            .unwrap_err();
        assert_eq!(e, DecodeError::MissingField("object.distance".into()));
    }
}
