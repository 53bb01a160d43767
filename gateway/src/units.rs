//! Unit conversion to one canonical unit per quantity, so rules compare like with like
//! whatever the sensor model sends (mm vs cm, L vs m3, F vs C).

/// Canonical unit and the affine map `canonical = value * factor + offset` for a unit as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Conversion {
    pub canonical: &'static str,
    pub factor: f64,
    pub offset: f64,
}

impl Conversion {
    pub(crate) fn apply(&self, v: f64) -> f64 {
        v * self.factor + self.offset
    }
}

const fn c(canonical: &'static str, factor: f64, offset: f64) -> Conversion {
    Conversion {
        canonical,
        factor,
        offset,
    }
}

/// Looks up a unit (case-sensitive where case matters: `m` vs `M` never appear both).
/// Returns `None` for units we do not know, which config validation reports.
pub(crate) fn canonical(unit: &str) -> Option<Conversion> {
    Some(match unit {
        "" => c("", 1.0, 0.0),
        // length
        "mm" => c("mm", 1.0, 0.0),
        "cm" => c("mm", 10.0, 0.0),
        "m" => c("mm", 1000.0, 0.0),
        "in" => c("mm", 25.4, 0.0),
        // volume
        "m3" | "m³" => c("m3", 1.0, 0.0),
        "L" | "l" => c("m3", 0.001, 0.0),
        "mL" | "ml" => c("m3", 1e-6, 0.0),
        "gal" => c("m3", 0.003_785_411_784, 0.0),
        // temperature
        "C" | "°C" | "degC" => c("C", 1.0, 0.0),
        "F" | "°F" | "degF" => c("C", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
        "K" => c("C", 1.0, -273.15),
        // angle
        "deg" | "°" => c("deg", 1.0, 0.0),
        "rad" => c("deg", 180.0 / std::f64::consts::PI, 0.0),
        // ratio
        "%" => c("%", 1.0, 0.0),
        "ratio" => c("%", 100.0, 0.0),
        // electrical
        "V" => c("V", 1.0, 0.0),
        "mV" => c("V", 0.001, 0.0),
        "mA" => c("mA", 1.0, 0.0),
        "A" => c("mA", 1000.0, 0.0),
        // time
        "s" => c("s", 1.0, 0.0),
        "ms" => c("s", 0.001, 0.0),
        "min" => c("s", 60.0, 0.0),
        "h" => c("s", 3600.0, 0.0),
        // flow, pressure, signal
        "m3/h" => c("m3/h", 1.0, 0.0),
        "L/min" => c("m3/h", 0.06, 0.0),
        "Pa" => c("Pa", 1.0, 0.0),
        "kPa" => c("Pa", 1000.0, 0.0),
        "bar" => c("Pa", 100_000.0, 0.0),
        "dBm" => c("dBm", 1.0, 0.0),
        "count" => c("count", 1.0, 0.0),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_canonical_units() {
        assert_eq!(canonical("cm").unwrap().apply(41.2), 412.0);
        assert!((canonical("F").unwrap().apply(212.0) - 100.0).abs() < 1e-9);
        assert!((canonical("L").unwrap().apply(1500.0) - 1.5).abs() < 1e-12);
        assert_eq!(canonical("m").unwrap().canonical, "mm");
        assert!(canonical("furlong").is_none());
    }
}
