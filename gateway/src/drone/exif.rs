//! Metadata of drone stills: EXIF (GPS position, altitude, time, focal length) read with the
//! `kamadak-exif` crate, and DJI's XMP fields (`drone-dji:RelativeAltitude`,
//! `GimbalPitchDegree`, `GimbalYawDegree`, `FlightYawDegree`, ...) from the XMP packet.
//!
//! The XMP packet is RDF/XML, but DJI writes these fields as plain attributes
//! (`drone-dji:GimbalPitchDegree="-90.00"`) and some tools rewrite them as elements
//! (`<drone-dji:GimbalPitchDegree>-90.00</drone-dji:GimbalPitchDegree>`); both are read by a
//! bounded text scan of the packet, which is all these numeric fields need.

use exif::{In, Reader, Tag, Value};
use serde::Serialize;

/// What a still tells about where and how it was taken. Every field is optional: phones and
/// other cameras write only part of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StillMeta {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// GPS altitude above sea level, metres.
    pub gps_alt_m: Option<f64>,
    /// Height above the take-off point (DJI XMP), metres.
    pub rel_alt_m: Option<f64>,
    pub gimbal_pitch_deg: Option<f64>,
    pub gimbal_yaw_deg: Option<f64>,
    pub gimbal_roll_deg: Option<f64>,
    pub flight_yaw_deg: Option<f64>,
    /// EXIF `DateTimeOriginal` as written (`YYYY:MM:DD HH:MM:SS`, local time).
    pub taken: Option<String>,
    pub focal_35mm: Option<f64>,
    pub make: Option<String>,
    pub model: Option<String>,
}

fn rationals(v: &Value) -> Option<Vec<f64>> {
    match v {
        Value::Rational(r) => Some(r.iter().map(|x| x.to_f64()).collect()),
        Value::SRational(r) => Some(r.iter().map(|x| x.to_f64()).collect()),
        _ => None,
    }
}

fn ascii(v: &Value) -> Option<String> {
    match v {
        Value::Ascii(parts) => parts
            .first()
            .map(|p| String::from_utf8_lossy(p).trim().to_string())
            .filter(|s| !s.is_empty()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    rationals(v)
        .and_then(|r| r.first().copied())
        .or_else(|| v.get_uint(0).map(f64::from))
        .filter(|x| x.is_finite())
}

/// Degrees/minutes/seconds with its `N`/`S`/`E`/`W` reference.
fn dms(exif: &exif::Exif, tag: Tag, ref_tag: Tag, negative: u8) -> Option<f64> {
    let v = rationals(&exif.get_field(tag, In::PRIMARY)?.value)?;
    let deg = v.first()? + v.get(1).unwrap_or(&0.0) / 60.0 + v.get(2).unwrap_or(&0.0) / 3600.0;
    let r = exif
        .get_field(ref_tag, In::PRIMARY)
        .and_then(|f| ascii(&f.value))
        .unwrap_or_default();
    let sign = if r.as_bytes().first() == Some(&negative) {
        -1.0
    } else {
        1.0
    };
    deg.is_finite().then_some(sign * deg)
}

/// The first `<x:xmpmeta ...</x:xmpmeta>` packet in the file, if any (bounded: 256 KiB).
fn xmp_packet(bytes: &[u8]) -> Option<&str> {
    let start = find(bytes, b"<x:xmpmeta")?;
    let rest = &bytes[start..bytes.len().min(start + (256 << 10))];
    let end = find(rest, b"</x:xmpmeta>")? + b"</x:xmpmeta>".len();
    std::str::from_utf8(&rest[..end]).ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `drone-dji:NAME` as an attribute or an element of the XMP packet, as a number.
pub(crate) fn xmp_number(xmp: &str, name: &str) -> Option<f64> {
    let key = format!("drone-dji:{name}");
    let mut from = 0;
    while let Some(i) = xmp[from..].find(&key) {
        let at = from + i + key.len();
        from = at;
        let rest = &xmp[at..];
        let value = if let Some(r) = rest.trim_start().strip_prefix('=') {
            let r = r.trim_start();
            let q = r.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let r = &r[1..];
            &r[..r.find(q)?]
        } else if let Some(r) = rest.strip_prefix('>') {
            &r[..r.find('<')?]
        } else {
            continue; // A longer name sharing the prefix (e.g. GpsLongtitude vs GpsLong).
        };
        if let Ok(v) = value.trim().trim_start_matches('+').parse::<f64>()
            && v.is_finite()
        {
            return Some(v);
        }
    }
    None
}

/// Reads what is there; a still without EXIF or XMP gives an empty [`StillMeta`].
pub fn read(bytes: &[u8]) -> StillMeta {
    let mut m = StillMeta::default();
    if let Ok(exif) = Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) {
        m.lat = dms(&exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S');
        m.lon = dms(&exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W');
        m.gps_alt_m = exif
            .get_field(Tag::GPSAltitude, In::PRIMARY)
            .and_then(|f| number(&f.value))
            .map(|a| {
                let below = exif
                    .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
                    .and_then(|f| f.value.get_uint(0))
                    == Some(1);
                if below { -a } else { a }
            });
        m.taken = exif
            .get_field(Tag::DateTimeOriginal, In::PRIMARY)
            .and_then(|f| ascii(&f.value));
        m.focal_35mm = exif
            .get_field(Tag::FocalLengthIn35mmFilm, In::PRIMARY)
            .and_then(|f| number(&f.value))
            .filter(|f| *f > 0.0);
        m.make = exif
            .get_field(Tag::Make, In::PRIMARY)
            .and_then(|f| ascii(&f.value));
        m.model = exif
            .get_field(Tag::Model, In::PRIMARY)
            .and_then(|f| ascii(&f.value));
    }
    if let Some(xmp) = xmp_packet(bytes) {
        m.rel_alt_m = xmp_number(xmp, "RelativeAltitude");
        m.gimbal_pitch_deg = xmp_number(xmp, "GimbalPitchDegree");
        m.gimbal_yaw_deg = xmp_number(xmp, "GimbalYawDegree");
        m.gimbal_roll_deg = xmp_number(xmp, "GimbalRollDegree");
        m.flight_yaw_deg = xmp_number(xmp, "FlightYawDegree");
        m.lat = m.lat.or_else(|| xmp_number(xmp, "GpsLatitude"));
        m.lon = m.lon.or_else(|| {
            xmp_number(xmp, "GpsLongitude").or_else(|| xmp_number(xmp, "GpsLongtitude"))
        });
    }
    m.lat = m.lat.filter(|v| (-90.0..=90.0).contains(v));
    m.lon = m.lon.filter(|v| (-180.0..=180.0).contains(v));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const DJI_XMP: &str = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description
        xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
        drone-dji:AbsoluteAltitude="+120.30"
        drone-dji:RelativeAltitude="+50.10"
        drone-dji:GimbalRollDegree="+0.00"
        drone-dji:GimbalYawDegree="-45.20"
        drone-dji:GimbalPitchDegree="-89.90"
        drone-dji:FlightYawDegree="-44.80"
        drone-dji:GpsLongtitude="114.054321"/>
        <rdf:Description><drone-dji:GpsLatitude>22.5432</drone-dji:GpsLatitude></rdf:Description>
        </rdf:RDF></x:xmpmeta>"#;

    #[test]
    fn dji_xmp_attributes_and_elements_are_read() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10];
        jpeg.extend_from_slice(DJI_XMP.as_bytes());
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        let m = read(&jpeg);
        assert_eq!(m.rel_alt_m, Some(50.1));
        assert_eq!(m.gimbal_pitch_deg, Some(-89.9));
        assert_eq!(m.gimbal_yaw_deg, Some(-45.2));
        assert_eq!(m.gimbal_roll_deg, Some(0.0));
        assert_eq!(m.flight_yaw_deg, Some(-44.8));
        assert_eq!(m.lat, Some(22.5432));
        assert_eq!(m.lon, Some(114.054321));
        assert!(xmp_number(DJI_XMP, "GpsLong").is_none());
    }

    #[test]
    fn junk_gives_empty_metadata() {
        assert_eq!(read(b"not an image"), StillMeta::default());
        let m = read(b"<x:xmpmeta drone-dji:RelativeAltitude=\"abc\"></x:xmpmeta>");
        assert_eq!(m.rel_alt_m, None);
        // Unterminated packet: ignored, no panic.
        assert_eq!(
            read(b"<x:xmpmeta drone-dji:RelativeAltitude=\"+1"),
            StillMeta::default()
        );
    }
}
