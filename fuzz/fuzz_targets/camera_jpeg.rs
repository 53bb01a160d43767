//! Camera frames arrive from devices: any bytes must decode to a frame or fail with a
//! `FrameError`, never panic or allocate without bound (sides are capped).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gateway::camera::frame::decode_jpeg(data);
});
