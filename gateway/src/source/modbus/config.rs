//! `[modbus]` configuration: devices, their endpoints and register maps, plus validation that
//! names the offending key path (`modbus.devices[2].registers[0].type`).

use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModbusConfig {
    pub devices: Vec<DeviceConfig>,
}

/// One Modbus slave (one unit id at one endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device id in readings; unique among Modbus devices.
    pub name: String,
    pub site: String,
    /// `tcp://host:port` (port defaults to 502) or
    /// `rtu:///dev/ttyX?baud=9600&parity=N&data_bits=8&stop_bits=1`.
    pub url: String,
    /// Unit (slave) id: 1..=247 on a serial bus, 0..=255 behind a TCP address.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Time-series measurement for this device's readings, e.g. `grease_trap`.
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Per request (and per connection attempt).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Upper bound of the exponential back-off while the device does not answer.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Consecutive failed polls before the device is reported offline.
    #[serde(default = "default_offline_after")]
    pub offline_after_failures: u32,
    /// Merge registers of the same kind into as few requests as possible.
    #[serde(default = "default_true")]
    pub merge: bool,
    /// Unused registers a merged request may read to bridge two wanted ones.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// Registers per request (the protocol allows 125; some devices accept fewer).
    #[serde(default = "default_max_registers")]
    pub max_registers: u16,
    /// Coils / discrete inputs per request (protocol limit 2000).
    #[serde(default = "default_max_bits")]
    pub max_bits: u16,
    pub registers: Vec<RegisterConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    pub metric: String,
    pub kind: RegisterKind,
    /// Zero-based protocol address (what goes on the wire).
    pub address: u16,
    #[serde(rename = "type", default)]
    pub data_type: DataType,
    #[serde(default)]
    pub order: WordOrder,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Unit of `raw * scale + offset`; converted to the canonical unit (see `units`).
    #[serde(default)]
    pub unit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterKind {
    Holding,
    Input,
    Coil,
    Discrete,
}

impl RegisterKind {
    pub(crate) fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }

    /// The read function, for logs: `read_holding_registers (0x03)`.
    pub(crate) fn function(self) -> &'static str {
        match self {
            RegisterKind::Coil => "read_coils (0x01)",
            RegisterKind::Discrete => "read_discrete_inputs (0x02)",
            RegisterKind::Holding => "read_holding_registers (0x03)",
            RegisterKind::Input => "read_input_registers (0x04)",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    #[default]
    U16,
    I16,
    U32,
    I32,
    F32,
}

impl DataType {
    /// Registers occupied.
    pub(crate) fn words(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
        }
    }
}

/// Byte order of a value whose big-endian bytes are A B C D (A most significant).
/// 16-bit values use the first half: `ABCD`/`CDAB` read AB, `BADC`/`DCBA` read BA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WordOrder {
    /// Big-endian, the Modbus convention.
    #[default]
    ABCD,
    /// Word swap (common in PLCs and meters).
    CDAB,
    /// Byte swap within each word.
    BADC,
    /// Little-endian.
    DCBA,
}

fn default_unit() -> u8 {
    1
}
fn default_stream() -> String {
    "modbus".into()
}
fn default_interval_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    1_000
}
fn default_backoff_max_ms() -> u64 {
    60_000
}
fn default_offline_after() -> u32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_max_gap() -> u16 {
    8
}
fn default_max_registers() -> u16 {
    125
}
fn default_max_bits() -> u16 {
    2000
}
fn one() -> f64 {
    1.0
}

/// Serial line parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Serial settings of an RTU bus; devices on one port must agree on them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialSettings {
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

/// Where a device is reached, parsed from `url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Host name or address and port; resolved at each connection attempt.
    Tcp {
        host: String,
        port: u16,
    },
    Rtu(SerialSettings),
}

impl Endpoint {
    pub(crate) fn parse(s: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(s).map_err(|e| e.to_string())?;
        match url.scheme() {
            "tcp" => {
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or("no host")?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                if url.path().len() > 1 || url.query().is_some() {
                    return Err("tcp:// takes only host and port".into());
                }
                Ok(Endpoint::Tcp {
                    host,
                    port: url.port().unwrap_or(502),
                })
            }
            "rtu" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err("use rtu:///dev/ttyX (three slashes, no host)".into());
                }
                let path = url.path().to_string();
                if path.len() < 2 {
                    return Err("no serial device path".into());
                }
                let mut st = SerialSettings {
                    path,
                    baud: 9600,
                    parity: Parity::None,
                    data_bits: 8,
                    stop_bits: 1,
                };
                for (k, v) in url.query_pairs() {
                    let bad = |what: &str| format!("`{k}={v}`: {what}");
                    match &*k {
                        "baud" => {
                            st.baud = v
                                .parse()
                                .ok()
                                .filter(|b| *b > 0)
                                .ok_or_else(|| bad("not a baud rate"))?
                        }
                        "parity" => {
                            st.parity = match &*v.to_ascii_lowercase() {
                                "n" | "none" => Parity::None,
                                "e" | "even" => Parity::Even,
                                "o" | "odd" => Parity::Odd,
                                _ => return Err(bad("parity is N, E or O")),
                            }
                        }
                        "data_bits" => {
                            st.data_bits = v
                                .parse()
                                .ok()
                                .filter(|d| (5..=8).contains(d))
                                .ok_or_else(|| bad("data bits are 5..=8"))?
                        }
                        "stop_bits" => {
                            st.stop_bits = v
                                .parse()
                                .ok()
                                .filter(|d| matches!(d, 1 | 2))
                                .ok_or_else(|| bad("stop bits are 1 or 2"))?
                        }
                        _ => {
                            return Err(format!(
                                "unknown query key `{k}` (baud, parity, data_bits, stop_bits)"
                            ));
                        }
                    }
                }
                Ok(Endpoint::Rtu(st))
            }
            other => Err(format!("scheme `{other}` is not tcp:// or rtu://")),
        }
    }
}

impl ModbusConfig {
    /// Checks what serde cannot; errors name the key path under `modbus.`.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ports: HashMap<String, (usize, SerialSettings)> = HashMap::new();
        let mut units: HashMap<(Endpoint, u8), usize> = HashMap::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("modbus.devices[{i}].{k}");
            if d.name.is_empty() {
                return Err(invalid(key("name"), "must not be empty"));
            }
            if let Some(first) = names.insert(&d.name, i) {
                return Err(invalid(
                    key("name"),
                    format!("`{}` is also modbus.devices[{first}].name", d.name),
                ));
            }
            if d.site.is_empty() {
                return Err(invalid(key("site"), "must not be empty"));
            }
            if d.stream.is_empty() {
                return Err(invalid(key("stream"), "must not be empty"));
            }
            let ep = Endpoint::parse(&d.url).map_err(|r| invalid(key("url"), r))?;
            if let Endpoint::Rtu(st) = &ep {
                if !(1..=247).contains(&d.unit) {
                    return Err(invalid(key("unit"), "must be 1..=247 on a serial bus"));
                }
                if let Some((first, other)) = ports.get(&st.path) {
                    if other != st {
                        return Err(invalid(
                            key("url"),
                            format!(
                                "serial settings differ from modbus.devices[{first}].url on the same port"
                            ),
                        ));
                    }
                } else {
                    ports.insert(st.path.clone(), (i, st.clone()));
                }
            }
            if let Some(first) = units.insert((ep, d.unit), i) {
                return Err(invalid(
                    key("unit"),
                    format!("same url and unit as modbus.devices[{first}]"),
                ));
            }
            if d.interval_ms < 10 {
                return Err(invalid(key("interval_ms"), "must be at least 10"));
            }
            if d.timeout_ms == 0 {
                return Err(invalid(key("timeout_ms"), "must be at least 1"));
            }
            if d.backoff_max_ms < d.interval_ms {
                return Err(invalid(key("backoff_max_ms"), "must be >= interval_ms"));
            }
            if d.offline_after_failures == 0 {
                return Err(invalid(key("offline_after_failures"), "must be at least 1"));
            }
            if !(2..=125).contains(&d.max_registers) {
                return Err(invalid(key("max_registers"), "must be 2..=125"));
            }
            if !(1..=2000).contains(&d.max_bits) {
                return Err(invalid(key("max_bits"), "must be 1..=2000"));
            }
            if d.registers.is_empty() {
                return Err(invalid(
                    key("registers"),
                    "at least one register is required",
                ));
            }
            let mut metrics: HashMap<&str, usize> = HashMap::new();
            for (j, r) in d.registers.iter().enumerate() {
                let rkey = |k: &str| format!("modbus.devices[{i}].registers[{j}].{k}");
                if r.metric.is_empty() {
                    return Err(invalid(rkey("metric"), "must not be empty"));
                }
                if let Some(first) = metrics.insert(&r.metric, j) {
                    return Err(invalid(
                        rkey("metric"),
                        format!("`{}` is also registers[{first}].metric", r.metric),
                    ));
                }
                if r.kind.is_bit() {
                    if r.data_type != DataType::U16 || r.order != WordOrder::ABCD {
                        return Err(invalid(
                            rkey("type"),
                            "coils and discrete inputs are single bits: leave type and order unset",
                        ));
                    }
                    if r.scale != 1.0 || r.offset != 0.0 || !r.unit.is_empty() {
                        return Err(invalid(
                            rkey("scale"),
                            "scale, offset and unit do not apply to coils and discrete inputs",
                        ));
                    }
                    continue;
                }
                if u32::from(r.address) + u32::from(r.data_type.words()) > 65_536 {
                    return Err(invalid(
                        rkey("type"),
                        "value runs past register address 65535",
                    ));
                }
                if !r.scale.is_finite() || r.scale == 0.0 {
                    return Err(invalid(rkey("scale"), "must be a finite non-zero number"));
                }
                if !r.offset.is_finite() {
                    return Err(invalid(rkey("offset"), "must be finite"));
                }
                if crate::units::canonical(&r.unit).is_none() {
                    return Err(invalid(rkey("unit"), format!("unknown unit `{}`", r.unit)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_rtu_urls() {
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.5:1502").unwrap(),
            Endpoint::Tcp {
                host: "10.0.0.5".into(),
                port: 1502
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://plc.local").unwrap(),
            Endpoint::Tcp {
                host: "plc.local".into(),
                port: 502
            }
        );
        let Endpoint::Rtu(s) =
            Endpoint::parse("rtu:///dev/ttyUSB0?baud=19200&parity=E&stop_bits=2").unwrap()
        else {
            panic!("not rtu")
        };
        assert_eq!(s.path, "/dev/ttyUSB0");
        assert_eq!(
            (s.baud, s.parity, s.data_bits, s.stop_bits),
            (19200, Parity::Even, 8, 2)
        );
        assert!(Endpoint::parse("rtu:///dev/ttyUSB0?speed=1").is_err());
        assert!(Endpoint::parse("udp://x:1").is_err());
        assert!(Endpoint::parse("rtu://host/dev/ttyUSB0").is_err());
    }

    const GOOD: &str = r#"
[[modbus.devices]]
name = "trap-1"
site = "s1"
url = "tcp://127.0.0.1:1502"
unit = 3
stream = "grease_trap"
interval_ms = 1000
timeout_ms = 300
[[modbus.devices.registers]]
metric = "level"
kind = "holding"
address = 0
type = "u16"
scale = 0.1
unit = "cm"
[[modbus.devices.registers]]
metric = "volume"
kind = "input"
address = 10
type = "f32"
order = "CDAB"
unit = "L"
[[modbus.devices.registers]]
metric = "lid_open"
kind = "coil"
address = 0

[[modbus.devices]]
name = "pump-1"
site = "s1"
url = "rtu:///dev/ttyUSB0?baud=19200&parity=E"
unit = 7
[[modbus.devices.registers]]
metric = "run_hours"
kind = "input"
address = 100
type = "u32"
order = "DCBA"
"#;

    fn err(toml: &str) -> String {
        crate::config::Config::from_toml(toml)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_device_map_loads() {
        let c = crate::config::Config::from_toml(GOOD).unwrap();
        let d = &c.modbus.devices;
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].registers[1].data_type, DataType::F32);
        assert_eq!(d[0].registers[1].order, WordOrder::CDAB);
        assert_eq!(d[0].registers[2].kind, RegisterKind::Coil);
        assert_eq!(d[1].stream, "modbus");
        assert_eq!(d[1].interval_ms, 10_000);
    }

    #[test]
    fn errors_name_the_key_path() {
        let e = err(&GOOD.replace("type = \"u32\"", "type = \"u64\""));
        assert!(e.contains("modbus.devices") && e.contains("type"), "{e}");
        let e = err(&GOOD.replace("order = \"CDAB\"", "order = \"cdab\""));
        assert!(e.contains("order"), "{e}");
        let e = err(&GOOD.replace("unit = \"L\"", "unit = \"furlong\""));
        assert!(e.contains("modbus.devices[0].registers[1].unit"), "{e}");
        let e = err(&GOOD.replace("kind = \"coil\"", "kind = \"coil\"\ntype = \"f32\""));
        assert!(e.contains("modbus.devices[0].registers[2].type"), "{e}");
        let e = err(&GOOD.replace("unit = 7", "unit = 0"));
        assert!(e.contains("modbus.devices[1].unit"), "{e}");
        let e = err(&GOOD.replace("parity=E", "parity=X"));
        assert!(e.contains("modbus.devices[1].url"), "{e}");
        let e = err(&GOOD.replace("name = \"pump-1\"", "name = \"trap-1\""));
        assert!(e.contains("modbus.devices[1].name"), "{e}");
        let e = err(&GOOD.replace("interval_ms = 1000", "interval_ms = 1000\npoll = 1"));
        assert!(e.contains("poll"), "{e}");
        let e = err(&GOOD.replace("scale = 0.1", "scale = 0.0"));
        assert!(e.contains("modbus.devices[0].registers[0].scale"), "{e}");
        let e = err(&GOOD.replace("address = 100", "address = 65535"));
        assert!(e.contains("modbus.devices[1].registers[0].type"), "{e}");
    }

    #[test]
    fn devices_on_one_port_must_agree_on_serial_settings() {
        let two = format!(
            "{GOOD}\n{}",
            r#"
[[modbus.devices]]
name = "pump-2"
site = "s1"
url = "rtu:///dev/ttyUSB0?baud=9600"
unit = 8
[[modbus.devices.registers]]
metric = "x"
kind = "holding"
address = 0
"#
        );
        let e = err(&two);
        assert!(e.contains("modbus.devices[2].url"), "{e}");
        assert!(
            crate::config::Config::from_toml(&two.replace("baud=9600", "baud=19200&parity=E"))
                .is_ok()
        );
    }
}
