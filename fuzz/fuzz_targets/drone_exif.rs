//! Drone: the still metadata reader (EXIF via kamadak-exif, DJI XMP by a bounded text scan) on
//! arbitrary bytes. It must never panic, and whatever position it reports must be finite and
//! inside WGS84 bounds.
#![no_main]

use gateway::drone::exif;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = exif::read(data);
    if let (Some(lat), Some(lon)) = (m.lat, m.lon) {
        assert!(lat.is_finite() && lon.is_finite());
        assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon), "{lat} {lon}");
    }
});
