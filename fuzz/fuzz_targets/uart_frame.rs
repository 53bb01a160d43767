//! Firmware: the A02YYUW ultrasonic sensor's UART frame parser, fed byte by byte (line noise,
//! partial frames, false headers). Every distance it returns must come from a frame whose
//! checksum holds. Also the native MQTT topic parser the gateway shares with the firmware.
#![no_main]

use firmware::drivers::ultrasonic::FrameParser;
use firmware::protocol::NativeTopic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = FrameParser::new();
    let mut last4 = [0u8; 4];
    for (i, &b) in data.iter().enumerate() {
        last4.rotate_left(1);
        last4[3] = b;
        if let Some(Ok(mm)) = p.push(b) {
            assert!(i >= 3);
            let [h, hi, lo, sum] = last4;
            assert_eq!(h, 0xFF, "frame without header at byte {i}");
            assert_eq!(mm, u16::from_be_bytes([hi, lo]));
            assert_eq!(
                sum,
                h.wrapping_add(hi).wrapping_add(lo),
                "bad checksum accepted"
            );
        }
    }
    if let Ok(topic) = std::str::from_utf8(data)
        && let Some(t) = NativeTopic::parse(topic)
    {
        assert_eq!(
            format!("v1/{}/{}/", t.site, t.device),
            topic[..topic.rfind('/').unwrap() + 1]
        );
    }
});
