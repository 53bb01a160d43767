//! Tilt of a cover from its calibrated rest orientation.

/// An acceleration vector in milli-g.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vector3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl Vector3 {
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Vector3 { x, y, z }
    }

    pub fn dot(self, o: Vector3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    pub fn norm(self) -> f32 {
        libm::sqrtf(self.dot(self))
    }
}

/// Angle in degrees between the gravity vector at rest and now. Using the rest vector rather
/// than the z axis means the sensor need not be mounted level. `None` for a zero vector
/// (free fall or a dead sensor), which has no direction.
pub fn tilt_deg(rest: Vector3, now: Vector3) -> Option<f32> {
    let n = rest.norm() * now.norm();
    if n.is_nan() || n <= f32::EPSILON {
        return None;
    }
    let c = (rest.dot(now) / n).clamp(-1.0, 1.0);
    Some(libm::acosf(c).to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilt_is_measured_from_the_rest_vector() {
        let rest = Vector3::new(0.0, 174.0, 985.0); // mounted 10 degrees off level
        assert!(tilt_deg(rest, rest).unwrap() < 0.05);
        let level = Vector3::new(0.0, 0.0, 1000.0);
        let t = tilt_deg(rest, level).unwrap();
        assert!((t - 10.0).abs() < 0.1, "{t}");
        let flipped = Vector3::new(0.0, 0.0, -1000.0);
        assert!(tilt_deg(level, flipped).unwrap() > 179.9);
        assert_eq!(tilt_deg(Vector3::default(), level), None);
    }
}
