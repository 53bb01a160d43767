//! Camera frames over HTTP: the real binary checks uploaded JPEGs, refuses bad uploads with a
//! clear status, and turns a black camera into a clue in the pool.

use crate::common::*;
use e2e::{Mosquitto, VictoriaMetrics, http, wait_until};
use std::time::Duration;

fn jpeg(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn post(gw: &GatewayProcess, path: &str, token: &str, ct: &str, body: &[u8]) -> http::Response {
    let auth = format!("Bearer {token}");
    http::request(
        "POST",
        &format!("{}{path}", gw.http),
        Some((ct, body)),
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )
    .unwrap()
}

#[test]
fn black_kitchen_camera_becomes_a_clue_and_bad_uploads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let cfg = format!(
        "{}\n[cameras.defaults]\nhold_ms = 300\nrecover_ms = 300\n",
        config(&broker.url(), "gw-cam", &vm.url(), "")
    );
    let gw = GatewayProcess::start(dir.path(), &cfg).unwrap();
    let device = gw.relay_token("r-001").unwrap();
    let inspector = gw.token("inspector", "r-001").unwrap();
    let other_site = gw.relay_token("r-002").unwrap();
    let frames = "/api/v1/cameras/k1/frames?site=r-001";

    // A textured, lit kitchen is healthy.
    let scene = jpeg(320, 240, |x, y| {
        let v = (((x / 8) + (y / 8)) % 2 * 120 + 60) as u8;
        [v, v.saturating_add(20), v]
    });
    let ok = post(&gw, frames, &device, "image/jpeg", &scene);
    assert_eq!(ok.status, 200, "{}", ok.text());

    // Refusals: no token, another site, wrong type, a truncated JPEG.
    let r = http::request(
        "POST",
        &format!("{}{frames}", gw.http),
        Some(("image/jpeg", &scene)),
        &[],
        http::TIMEOUT,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        post(&gw, frames, &other_site, "image/jpeg", &scene).status,
        403
    );
    assert_eq!(
        post(&gw, frames, &device, "text/plain", b"hello").status,
        415
    );
    let cut = post(
        &gw,
        frames,
        &device,
        "image/jpeg",
        &scene[..scene.len() / 2],
    );
    assert_eq!(cut.status, 422);
    assert!(cut.text().contains("truncated"), "{}", cut.text());

    // The camera goes black and stays black past the hold time: one clue.
    let black = jpeg(320, 240, |_, _| [2, 2, 2]);
    for _ in 0..4 {
        let r = post(&gw, frames, &device, "image/jpeg", &black);
        assert_eq!(r.status, 200, "{}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let clues = wait_until("a camera.black clue", Duration::from_secs(20), || {
        let v = gw
            .get_with_token("/api/v1/clues?site=r-001&kind=camera.black", &inspector)?
            .json()?;
        Ok(v.as_array()
            .or_else(|| v["clues"].as_array())
            .filter(|a| !a.is_empty())
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(clues.len(), 1, "{clues:?}");
}
