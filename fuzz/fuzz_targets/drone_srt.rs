//! Drone: the DJI SRT telemetry parser on arbitrary bytes (truncated files, broken lines,
//! other generations' field sets). It must never panic, every record it keeps must hold a
//! finite position inside WGS84 bounds and an ordered cue span, and looking the track up at any
//! time must not panic either.
#![no_main]

use gateway::drone::srt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let track = srt::parse(data);
    for r in &track.records {
        assert!(r.lat.is_finite() && r.lon.is_finite(), "{r:?}");
        assert!((-90.0..=90.0).contains(&r.lat) && (-180.0..=180.0).contains(&r.lon), "{r:?}");
        assert!(r.start_ms <= r.end_ms, "{r:?}");
    }
    let end = track.duration_ms();
    for t in [0, end / 2, end, end.saturating_add(1)] {
        let _ = track.at(t, 2000);
    }
});
