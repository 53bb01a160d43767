//! Geo-referencing: where on the ground a pixel of a drone frame lies.
//!
//! Model: a pinhole camera (no lens distortion) at the aircraft's GPS position, `rel_alt_m`
//! above a **flat ground at the take-off height**, looking along the gimbal's yaw (clockwise
//! from north) and pitch (0 = horizon, -90 = straight down), with an optional roll. A pixel
//! becomes a ray, the ray meets the ground plane, the meeting point is an East/North offset
//! from the aircraft (local ENU), and the offset becomes WGS84 through the ellipsoid's radii
//! of curvature at the aircraft's latitude (exact to millimetres over the few hundred metres a
//! drone frame spans).
//!
//! Error model (1 sigma, metres, reported as `error_m` with each position): the horizontal GPS
//! error is added in quadrature to the ground displacement caused by each other uncertain
//! input, found numerically by re-running the projection with that input moved by its sigma:
//! relative altitude (barometer drift, and ground that is not at take-off height), gimbal pitch,
//! yaw and roll, and the pixel position of the object's ground point. Displacement from pitch
//! and altitude grows quickly as the view gets oblique (the ray grazes the ground), so rays
//! shallower than [`MIN_DEPRESSION_DEG`] below the horizon are refused rather than answered
//! with a meaningless position.

use serde::Serialize;

/// Rays closer to the horizon than this are not intersected (position error explodes).
pub(crate) const MIN_DEPRESSION_DEG: f64 = 5.0;
/// WGS84 semi-major axis and first eccentricity squared.
const WGS84_A: f64 = 6_378_137.0;
const WGS84_E2: f64 = 6.694_379_990_14e-3;

/// The camera's intrinsics: image size and horizontal field of view.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Camera {
    pub width: u32,
    pub height: u32,
    pub hfov_deg: f64,
}

impl Camera {
    /// Focal length in pixels.
    pub(crate) fn focal_px(&self) -> f64 {
        (self.width as f64 / 2.0) / (self.hfov_deg.to_radians() / 2.0).tan()
    }

    /// From a 35 mm-equivalent focal length: the equivalence is by the diagonal (43.27 mm),
    /// which holds for any aspect ratio (DJI's 4:3 sensors included).
    pub fn from_focal_35mm(width: u32, height: u32, f35_mm: f64) -> Camera {
        let diag_px = (width as f64).hypot(height as f64);
        let f_px = diag_px / 43.27 * f35_mm;
        let hfov = 2.0 * ((width as f64 / 2.0) / f_px).atan();
        Camera {
            width,
            height,
            hfov_deg: hfov.to_degrees(),
        }
    }
}

/// Where the camera is and where it looks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pose {
    pub lat: f64,
    pub lon: f64,
    /// Height above the (flat) ground, metres.
    pub rel_alt_m: f64,
    /// Camera heading, degrees clockwise from true north.
    pub yaw_deg: f64,
    /// Camera pitch, degrees: 0 horizon, -90 straight down.
    pub pitch_deg: f64,
    pub roll_deg: f64,
}

/// One-sigma uncertainties of the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Uncertainty {
    /// Horizontal GNSS error (consumer GPS ~2.5 m, RTK ~0.05 m).
    pub gps_m: f64,
    /// Relative altitude error, including ground that is not at take-off height.
    pub alt_m: f64,
    pub pitch_deg: f64,
    pub yaw_deg: f64,
    pub roll_deg: f64,
    /// Where in the box the object touches the ground.
    pub pixel: f64,
}

impl Default for Uncertainty {
    fn default() -> Self {
        Uncertainty {
            gps_m: 2.5,
            alt_m: 2.0,
            pitch_deg: 1.0,
            yaw_deg: 2.0,
            roll_deg: 0.5,
            pixel: 4.0,
        }
    }
}

/// A ground position with its one-sigma horizontal error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct GroundPoint {
    pub lat: f64,
    pub lon: f64,
    /// Offset from the aircraft, metres east and north.
    pub east_m: f64,
    pub north_m: f64,
    pub error_m: f64,
}

type V3 = [f64; 3];

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn scale(a: V3, k: f64) -> V3 {
    [a[0] * k, a[1] * k, a[2] * k]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Camera axes in ENU: forward, right, down-in-image.
fn axes(pose: &Pose) -> (V3, V3, V3) {
    let (yaw, pitch, roll) = (
        pose.yaw_deg.to_radians(),
        pose.pitch_deg.to_radians(),
        pose.roll_deg.to_radians(),
    );
    let fwd = [
        yaw.sin() * pitch.cos(),
        yaw.cos() * pitch.cos(),
        pitch.sin(),
    ];
    let right0 = [yaw.cos(), -yaw.sin(), 0.0];
    let up0 = cross(right0, fwd);
    let right = add(scale(right0, roll.cos()), scale(up0, roll.sin()));
    let up = add(scale(up0, roll.cos()), scale(right0, -roll.sin()));
    (fwd, right, scale(up, -1.0))
}

/// Metres per degree of latitude and of longitude at `lat`.
fn metres_per_degree(lat: f64) -> (f64, f64) {
    let s = lat.to_radians().sin();
    let w = (1.0 - WGS84_E2 * s * s).sqrt();
    let meridian = WGS84_A * (1.0 - WGS84_E2) / (w * w * w);
    let normal = WGS84_A / w;
    (
        meridian.to_radians(),
        (normal * lat.to_radians().cos()).to_radians(),
    )
}

/// ENU offset from (`lat0`, `lon0`) to WGS84.
pub fn enu_to_wgs84(lat0: f64, lon0: f64, east: f64, north: f64) -> (f64, f64) {
    let (m_lat, m_lon) = metres_per_degree(lat0);
    (lat0 + north / m_lat, lon0 + east / m_lon)
}

/// WGS84 to an ENU offset from (`lat0`, `lon0`).
pub(crate) fn wgs84_to_enu(lat0: f64, lon0: f64, lat: f64, lon: f64) -> (f64, f64) {
    let (m_lat, m_lon) = metres_per_degree(lat0);
    ((lon - lon0) * m_lon, (lat - lat0) * m_lat)
}

/// Ground offset (east, north) of pixel (`u`, `v`), or `None` when its ray does not meet the
/// ground at least [`MIN_DEPRESSION_DEG`] below the horizon.
pub fn pixel_to_ground(cam: &Camera, pose: &Pose, u: f64, v: f64) -> Option<(f64, f64)> {
    if !(pose.rel_alt_m.is_finite() && pose.rel_alt_m > 0.0) {
        return None;
    }
    let f = cam.focal_px();
    let (fwd, right, down) = axes(pose);
    let x = (u - cam.width as f64 / 2.0) / f;
    let y = (v - cam.height as f64 / 2.0) / f;
    let ray = add(fwd, add(scale(right, x), scale(down, y)));
    let len = dot(ray, ray).sqrt();
    if -ray[2] / len < MIN_DEPRESSION_DEG.to_radians().sin() {
        return None;
    }
    let t = pose.rel_alt_m / -ray[2];
    Some((ray[0] * t, ray[1] * t))
}

/// The pixel where a ground point (east, north offset from the aircraft) appears, or `None`
/// when it is behind the camera. May lie outside the image.
pub(crate) fn ground_to_pixel(
    cam: &Camera,
    pose: &Pose,
    east: f64,
    north: f64,
) -> Option<(f64, f64)> {
    let (fwd, right, down) = axes(pose);
    let p = [east, north, -pose.rel_alt_m];
    let z = dot(p, fwd);
    if z <= 1e-6 {
        return None;
    }
    let f = cam.focal_px();
    Some((
        cam.width as f64 / 2.0 + f * dot(p, right) / z,
        cam.height as f64 / 2.0 + f * dot(p, down) / z,
    ))
}

/// Geo-references pixel (`u`, `v`) with its one-sigma horizontal error.
pub(crate) fn locate(
    cam: &Camera,
    pose: &Pose,
    unc: &Uncertainty,
    u: f64,
    v: f64,
) -> Option<GroundPoint> {
    let (e, n) = pixel_to_ground(cam, pose, u, v)?;
    let shift = |p: Pose, du: f64, dv: f64| -> f64 {
        // A perturbed ray that misses the ground counts as the whole distance to the point.
        match pixel_to_ground(cam, &p, u + du, v + dv) {
            Some((e2, n2)) => (e2 - e).hypot(n2 - n),
            None => e.hypot(n).max(pose.rel_alt_m),
        }
    };
    let mut var = unc.gps_m * unc.gps_m;
    let terms = [
        shift(
            Pose {
                rel_alt_m: pose.rel_alt_m + unc.alt_m,
                ..*pose
            },
            0.0,
            0.0,
        ),
        shift(
            Pose {
                pitch_deg: pose.pitch_deg + unc.pitch_deg,
                ..*pose
            },
            0.0,
            0.0,
        ),
        shift(
            Pose {
                yaw_deg: pose.yaw_deg + unc.yaw_deg,
                ..*pose
            },
            0.0,
            0.0,
        ),
        shift(
            Pose {
                roll_deg: pose.roll_deg + unc.roll_deg,
                ..*pose
            },
            0.0,
            0.0,
        ),
        shift(*pose, unc.pixel, 0.0),
        shift(*pose, 0.0, unc.pixel),
    ];
    for d in terms {
        var += d * d;
    }
    let (lat, lon) = enu_to_wgs84(pose.lat, pose.lon, e, n);
    Some(GroundPoint {
        lat,
        lon,
        east_m: e,
        north_m: n,
        error_m: var.sqrt(),
    })
}

/// Great-circle distance in metres (haversine, mean Earth radius): for tests and reports.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAM: Camera = Camera {
        width: 4000,
        height: 3000,
        hfov_deg: 73.7,
    };

    fn pose(yaw: f64, pitch: f64, alt: f64) -> Pose {
        Pose {
            lat: 22.543210,
            lon: 114.054321,
            rel_alt_m: alt,
            yaw_deg: yaw,
            pitch_deg: pitch,
            roll_deg: 0.0,
        }
    }

    /// Independent forward model for the tests: the pixel of a ground point, by explicit
    /// rotations (yaw about up, then pitch about the camera's right axis).
    fn project(cam: &Camera, p: &Pose, east: f64, north: f64) -> (f64, f64) {
        let (yaw, pitch) = (p.yaw_deg.to_radians(), p.pitch_deg.to_radians());
        // Into a heading frame: x right of heading, y along heading, z up.
        let x = east * yaw.cos() - north * yaw.sin();
        let y = east * yaw.sin() + north * yaw.cos();
        let z = -p.rel_alt_m;
        // Camera frame: forward tilted down by -pitch.
        let fwd = y * pitch.cos() + z * pitch.sin();
        let up = -y * pitch.sin() + z * pitch.cos();
        let f = cam.focal_px();
        (
            cam.width as f64 / 2.0 + f * x / fwd,
            cam.height as f64 / 2.0 - f * up / fwd,
        )
    }

    #[test]
    fn nadir_centre_is_below_the_aircraft_and_image_top_is_the_heading() {
        let p = pose(0.0, -90.0, 100.0);
        let (e, n) = pixel_to_ground(&CAM, &p, 2000.0, 1500.0).expect("ground");
        assert!(e.abs() < 1e-6 && n.abs() < 1e-6);
        // Right edge: 100 m * tan(hfov/2) east.
        let (e, n) = pixel_to_ground(&CAM, &p, 4000.0, 1500.0).expect("ground");
        assert!((e - 100.0 * (73.7f64 / 2.0).to_radians().tan()).abs() < 1e-6);
        assert!(n.abs() < 1e-6);
        let (_, n) = pixel_to_ground(&CAM, &p, 2000.0, 0.0).expect("ground");
        assert!(n > 0.0, "top of the image is north when heading north");
    }

    #[test]
    fn known_targets_are_located_within_the_stated_error() {
        // Targets at known ENU offsets, seen from several attitudes; the pixel comes from the
        // independent forward model, the position back from `locate`.
        let cases = [
            (pose(0.0, -90.0, 100.0), 30.0, 20.0),
            (pose(45.0, -90.0, 80.0), -25.0, 12.0),
            (pose(120.0, -60.0, 60.0), 40.0, -35.0),
            (pose(-30.0, -45.0, 50.0), -30.0, 45.0),
        ];
        for (p, east, north) in cases {
            let (lat_t, lon_t) = enu_to_wgs84(p.lat, p.lon, east, north);
            let (u, v) = project(&CAM, &p, east, north);
            assert!(
                (0.0..4000.0).contains(&u) && (0.0..3000.0).contains(&v),
                "{u},{v}"
            );
            let exact = Uncertainty {
                gps_m: 0.0,
                alt_m: 0.0,
                pitch_deg: 0.0,
                yaw_deg: 0.0,
                roll_deg: 0.0,
                pixel: 0.0,
            };
            let g = locate(&CAM, &p, &exact, u, v).expect("located");
            let d = distance_m(g.lat, g.lon, lat_t, lon_t);
            assert!(d < 0.05, "exact geometry within 5 cm, got {d} m for {p:?}");
            assert!(g.error_m < 1e-9);

            // The real-world case: the aircraft's reported pose is off by typical amounts
            // (2 m altitude, 1 deg pitch, 2 deg yaw, 2.5 m GPS). The true target must lie
            // within 2 sigma of the computed position.
            let (glat, glon) = enu_to_wgs84(p.lat, p.lon, 1.5, -2.0);
            let reported = Pose {
                lat: glat,
                lon: glon,
                rel_alt_m: p.rel_alt_m + 2.0,
                pitch_deg: p.pitch_deg + 1.0,
                yaw_deg: p.yaw_deg - 2.0,
                ..p
            };
            let g = locate(&CAM, &reported, &Uncertainty::default(), u, v).expect("located");
            let d = distance_m(g.lat, g.lon, lat_t, lon_t);
            assert!(
                d <= 2.0 * g.error_m,
                "off by {d:.2} m, stated 1-sigma {:.2} m, {p:?}",
                g.error_m
            );
            assert!(g.error_m < 12.0, "{}", g.error_m);
        }
    }

    #[test]
    fn error_grows_with_altitude_and_obliquity_and_the_horizon_is_refused() {
        let u = Uncertainty::default();
        let low = locate(&CAM, &pose(0.0, -90.0, 30.0), &u, 2500.0, 1500.0).expect("low");
        let high = locate(&CAM, &pose(0.0, -90.0, 120.0), &u, 2500.0, 1500.0).expect("high");
        assert!(high.error_m > low.error_m);
        let oblique = locate(&CAM, &pose(0.0, -30.0, 120.0), &u, 2500.0, 1500.0).expect("obl");
        assert!(oblique.error_m > high.error_m);
        // Looking at the horizon: the top rows never meet the ground.
        assert!(locate(&CAM, &pose(0.0, -10.0, 100.0), &u, 2000.0, 0.0).is_none());
        assert!(pixel_to_ground(&CAM, &pose(0.0, -90.0, 0.0), 1.0, 1.0).is_none());
    }

    #[test]
    fn ground_to_pixel_inverts_pixel_to_ground() {
        let p = Pose {
            roll_deg: 3.0,
            ..pose(200.0, -70.0, 90.0)
        };
        for (u, v) in [(10.0, 20.0), (3990.0, 2990.0), (1234.0, 2345.0)] {
            let (e, n) = pixel_to_ground(&CAM, &p, u, v).expect("ground");
            let (u2, v2) = ground_to_pixel(&CAM, &p, e, n).expect("pixel");
            assert!((u - u2).abs() < 1e-6 && (v - v2).abs() < 1e-6);
        }
    }

    #[test]
    fn enu_round_trip_and_35mm_focal() {
        let (lat, lon) = enu_to_wgs84(48.0, 2.0, 300.0, -200.0);
        let (e, n) = wgs84_to_enu(48.0, 2.0, lat, lon);
        assert!((e - 300.0).abs() < 1e-6 && (n + 200.0).abs() < 1e-6);
        assert!((distance_m(48.0, 2.0, lat, lon) - 300f64.hypot(200.0)).abs() < 1.5);
        // DJI 24 mm equivalent on a 4:3 sensor: ~84 deg diagonal, ~71 deg horizontal.
        let c = Camera::from_focal_35mm(4000, 3000, 24.0);
        assert!((c.hfov_deg - 71.9).abs() < 0.5, "{}", c.hfov_deg);
    }
}
