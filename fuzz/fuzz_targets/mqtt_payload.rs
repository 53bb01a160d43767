//! MQTT intake: topic + payload through the gateway's `Decoder` (native topics and the
//! third-party JSON / number mappings of the example config). Input: topic, `\0`, payload.
//! Must never panic; every reading it returns must carry the topic's site and device.
#![no_main]

use gateway::config::Config;
use gateway::decode::Decoder;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CONFIG: &str = r#"
[[mappings]]
name = "json"
topic = "milesight/{site}/{device}/uplink"
format = "json"
stream = "grease_trap"
time_field = "time"
time_unit = "s"
[[mappings.fields]]
path = "object.distance"
metric = "distance"
unit = "mm"
[[mappings.fields]]
path = "items.0.v"
metric = "battery"
unit = "%"
optional = true

[[mappings]]
name = "number"
topic = "plain/{site}/{device}"
format = "number"
stream = "level"
[[mappings.fields]]
path = ""
metric = "level"
"#;

fn decoder() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| Config::from_toml(CONFIG).expect("fuzz config is valid").decoder())
}

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"v1/s/d/telemetry"[..], data),
    };
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    if let Ok(readings) = decoder().decode(topic, payload, 1_700_000_000_000) {
        for r in &readings {
            assert!(!r.site.is_empty() && !r.device.is_empty(), "{r:?}");
            assert!(
                topic.contains(r.site.as_str()),
                "site not from the topic: {r:?}"
            );
            assert!(
                topic.contains(r.device.as_str()),
                "device not from the topic: {r:?}"
            );
        }
    }
});
