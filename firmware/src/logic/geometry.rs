//! Grease trap geometry: from the sensor's distance to the surface, to level, fill and volume.

/// Plan shape of the trap chamber (walls are vertical).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Rectangular { length_mm: f32, width_mm: f32 },
    Cylinder { diameter_mm: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrapGeometry {
    pub shape: Shape,
    /// Distance from the sensor face to the trap floor.
    pub sensor_to_floor_mm: f32,
    /// Liquid depth at the outlet invert: the level at which the trap is "full" (100 %).
    pub full_depth_mm: f32,
}

impl TrapGeometry {
    /// Plan area in mm².
    pub fn area_mm2(&self) -> f32 {
        match self.shape {
            Shape::Rectangular {
                length_mm,
                width_mm,
            } => length_mm * width_mm,
            Shape::Cylinder { diameter_mm } => {
                core::f32::consts::PI * diameter_mm * diameter_mm / 4.0
            }
        }
    }

    /// Liquid depth from a measured distance, clamped to `0..=sensor_to_floor_mm`.
    pub fn level_mm(&self, distance_mm: f32) -> f32 {
        (self.sensor_to_floor_mm - distance_mm).clamp(0.0, self.sensor_to_floor_mm)
    }

    /// Distance the sensor would measure at `level_mm` (the inverse of [`Self::level_mm`]).
    pub fn distance_mm(&self, level_mm: f32) -> f32 {
        self.sensor_to_floor_mm - level_mm
    }

    /// Contents in litres at `level_mm`.
    pub fn volume_l(&self, level_mm: f32) -> f32 {
        self.area_mm2() * level_mm / 1.0e6
    }

    /// Fill in percent of the full depth (may exceed 100 when backing up).
    pub fn fill_pct(&self, level_mm: f32) -> f32 {
        if self.full_depth_mm <= 0.0 {
            return 0.0;
        }
        level_mm / self.full_depth_mm * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangular_trap_level_volume_fill() {
        let g = TrapGeometry {
            shape: Shape::Rectangular {
                length_mm: 1000.0,
                width_mm: 500.0,
            },
            sensor_to_floor_mm: 1200.0,
            full_depth_mm: 800.0,
        };
        let level = g.level_mm(800.0);
        assert_eq!(level, 400.0);
        assert_eq!(g.volume_l(level), 200.0);
        assert_eq!(g.fill_pct(level), 50.0);
        assert_eq!(g.level_mm(1500.0), 0.0, "below the floor clamps");
        assert_eq!(g.level_mm(-10.0), 1200.0);
        assert_eq!(g.distance_mm(400.0), 800.0);
    }

    #[test]
    fn cylinder_volume() {
        let g = TrapGeometry {
            shape: Shape::Cylinder {
                diameter_mm: 1000.0,
            },
            sensor_to_floor_mm: 1000.0,
            full_depth_mm: 1000.0,
        };
        let v = g.volume_l(1000.0);
        assert!((v - 785.398).abs() < 0.01, "{v}");
    }
}
