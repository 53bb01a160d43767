//! Clue text in the reader's language: a title rendered from the clue's kind and figures, in
//! Chinese (the default for readers) and English.
//!
//! The pool renders both when it records an occurrence and keeps them in the clue's detail as
//! `text: {"zh": {"title": ...}, "en": {"title": ...}}`, next to the kind and the figures. So
//! everything that carries the clue carries both renderings (REST, SSE, exports, and the MQTT
//! and webhook payloads for the central platform), and a reader picks one: the dashboard shows
//! the one of its language toggle. The producer's own `title` stays as written (English, for
//! logs and for kinds without a template here).

use super::signal::ClueEvent;
use serde_json::{Value, json};

/// A figure of the detail as people read it (`320`, `61.8`); `?` when absent.
fn fig(detail: &Value, key: &str) -> String {
    match detail.get(key) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
            Some(x) => format!("{x:.1}"),
            None => n.to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "?".into(),
    }
}

fn unit_zh(u: &str) -> &str {
    match u {
        "mm" => "毫米",
        "L" | "" => "升",
        "m3" => "立方米",
        "%" => "%",
        "deg" => "度",
        other => other,
    }
}

/// `{"zh": {"title": ...}, "en": {"title": ...}}` for `ev`.
pub(crate) fn render(ev: &ClueEvent) -> Value {
    let d = &ev.detail;
    let site = &ev.subject.site;
    let dev = ev.subject.device.as_deref().unwrap_or("-");
    let unit = d.get("unit").and_then(Value::as_str).unwrap_or("");
    let (zh, en) = match ev.kind.as_str() {
        "grease_trap.illegal_discharge" => {
            let drop = fig(d, "drop");
            let (uz, ue) = match unit {
                "" | "m3" => ("升", "L"),
                u => (unit_zh(u), u),
            };
            let pct = if unit == "%" {
                "（占有效深度）"
            } else {
                ""
            };
            (
                format!("{site} 隔油池 {dev} 液位骤降 {drop} {uz}{pct}，无清掏记录，疑似违规排放"),
                format!(
                    "Grease trap {dev} at {site} fell {drop} {ue} with no pump-out on record: suspected illegal discharge"
                ),
            )
        }
        "grease_trap.pumpout_due" => (
            format!("{site} 隔油池 {dev} 已满 {}%，应及时清掏", fig(d, "value")),
            format!(
                "Grease trap {dev} at {site} is {}% full: pump-out due",
                fig(d, "value")
            ),
        ),
        "grease_trap.pumpout_overdue" => (
            format!("{site} 隔油池 {dev} 已满 {}%，清掏逾期", fig(d, "value")),
            format!(
                "Grease trap {dev} at {site} is {}% full: pump-out overdue",
                fig(d, "value")
            ),
        ),
        "grease_trap.fast_fill" => (
            format!(
                "{site} 隔油池 {dev} 液位快速上升（当前 {} 毫米）",
                fig(d, "value")
            ),
            format!(
                "Grease trap {dev} at {site} rose fast (now {} mm)",
                fig(d, "value")
            ),
        ),
        "sensor.stuck" => (
            format!("{site} 液位传感器 {dev} 营业时间内长时间读数不变，疑似故障"),
            format!("Level sensor {dev} at {site} has not moved for hours of business: stuck?"),
        ),
        "device.offline" => (
            format!("{site} 设备 {dev} 已 {} 秒无上报", fig(d, "silent_s")),
            format!("Device {dev} at {site} silent for {} s", fig(d, "silent_s")),
        ),
        "device.sensor_fault" => (
            format!("{site} 设备 {dev} 报告传感器故障"),
            format!("Device {dev} at {site} reported a sensor fault"),
        ),
        "device.low_battery" => (
            format!("{site} 设备 {dev} 电量低"),
            format!("Device {dev} at {site} reports a low battery"),
        ),
        "manhole.cover_open" => (
            format!("{site} 井盖 {dev} 被打开"),
            format!("Manhole cover {dev} at {site} opened"),
        ),
        "manhole.cover_open_too_long" => (
            format!("{site} 井盖 {dev} 打开超过 15 分钟"),
            format!("Manhole cover {dev} at {site} open for more than 15 minutes"),
        ),
        "manhole.cover_tilted" => (
            format!("{site} 井盖 {dev} 倾斜 {} 度", fig(d, "value")),
            format!(
                "Manhole cover {dev} at {site} tilted {} degrees",
                fig(d, "value")
            ),
        ),
        "camera.offline" => (
            format!("{site} 明厨亮灶摄像头 {dev} 离线"),
            format!("Kitchen camera {dev} at {site} is offline"),
        ),
        "camera.image_bad" | "camera.black" | "camera.covered" | "camera.sky" | "camera.frozen"
        | "camera.overexposed" | "camera.moved" => {
            let (z, e) = match ev.kind.as_str() {
                "camera.black" => ("画面全黑", "shows a black picture"),
                "camera.covered" => ("被遮挡或失焦", "is covered or out of focus"),
                "camera.sky" => ("朝向天空或天花板", "is pointed at the sky or ceiling"),
                "camera.frozen" => ("画面冻结", "sends a frozen picture"),
                "camera.overexposed" => ("画面过曝", "shows an over-exposed picture"),
                "camera.moved" => ("被移动或改变朝向", "has been moved or re-aimed"),
                _ => ("画面不可用", "reports a bad picture"),
            };
            (
                format!("{site} 明厨亮灶摄像头 {dev} {z}"),
                format!("Kitchen camera {dev} at {site} {e}"),
            )
        }
        "camera.not_repaired" => (
            format!("{site} 摄像头 {dev} 故障超过 24 小时未修复"),
            format!("Camera {dev} at {site}: fault not repaired for over 24 hours"),
        ),
        "collision.camera_dark_trap_drop" => (
            format!("{site} 摄像头离线后 30 分钟内隔油池液位骤降"),
            format!("Camera offline and trap drop at {site} within 30 minutes"),
        ),
        "collision.night_drop_open_cover" => (
            format!("夜间隔油池液位骤降且附近井盖被打开（{site}）"),
            format!("Trap drop and open manhole at night near {site}"),
        ),
        "parking.overstay" => (
            format!("{site} 禁停区域车辆超时停放"),
            format!("Vehicle overstaying in a no-parking zone at {site}"),
        ),
        "shopfront.trading" => (
            format!("{site} 出店经营（店外占道）"),
            format!("Trading outside a shop front at {site}"),
        ),
        "muck_truck.no_permit" => (
            format!("{site} 渣土车无准运证"),
            format!("Muck truck without a permit at {site}"),
        ),
        "muck_truck.outside_hours" => (
            format!("{site} 渣土车超时段运输"),
            format!("Muck truck outside its permitted hours at {site}"),
        ),
        "muck_truck.off_route" => (
            format!("{site} 渣土车未按规定路线行驶"),
            format!("Muck truck off its permitted route at {site}"),
        ),
        // No template: the producer's title in both (kinds from outside, drone findings).
        _ => (ev.title.clone(), ev.title.clone()),
    };
    json!({ "zh": { "title": zh }, "en": { "title": en } })
}

/// Adds the renderings to `ev.detail` (an object; other details are wrapped).
pub(crate) fn attach(ev: &mut ClueEvent) {
    let text = render(ev);
    match &mut ev.detail {
        Value::Object(m) => {
            m.insert("text".into(), text);
        }
        other => {
            let figures = std::mem::take(other);
            *other = json!({ "figures": figures, "text": text });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::signal::{Level, Subject};

    fn ev(kind: &str, detail: Value) -> ClueEvent {
        ClueEvent {
            rule: "r".into(),
            kind: kind.into(),
            level: Level::High,
            subject: Subject {
                site: "r-001".into(),
                device: Some("trap-1".into()),
                ..Default::default()
            },
            dedup_key: "k".into(),
            at_ms: 0,
            title: "producer title".into(),
            detail,
            evidence: Vec::new(),
            department: None,
            assisting: Vec::new(),
        }
    }

    #[test]
    fn titles_come_from_the_kind_and_figures_in_both_languages() {
        let mut e = ev(
            "grease_trap.illegal_discharge",
            json!({"drop": 144.0, "unit": "L", "night": true}),
        );
        attach(&mut e);
        let t = &e.detail["text"];
        assert_eq!(
            t["zh"]["title"],
            "r-001 隔油池 trap-1 液位骤降 144 升，无清掏记录，疑似违规排放"
        );
        assert!(
            t["en"]["title"]
                .as_str()
                .unwrap_or("")
                .contains("fell 144 L")
        );
        assert_eq!(e.detail["drop"], 144.0, "figures stay");
        let t = render(&ev("grease_trap.pumpout_overdue", json!({"value": 61.8})));
        assert_eq!(t["zh"]["title"], "r-001 隔油池 trap-1 已满 61.8%，清掏逾期");
        let t = render(&ev("drone.finding", Value::Null));
        assert_eq!(t["zh"]["title"], "producer title");
        let mut e = ev("x.y", Value::Null);
        attach(&mut e);
        assert!(e.detail["text"]["en"]["title"].is_string());
    }
}
