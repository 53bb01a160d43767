//! Two-threshold alarms, so a value hovering at the limit does not flap alarm / recovery.

use crate::protocol::EventPhase;

/// Which side of the thresholds is the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Alarm at or above `on`, recovery at or below `off` (`off < on`): level high, tilt.
    Rising,
    /// Alarm at or below `on`, recovery at or above `off` (`off > on`): low battery.
    Falling,
}

#[derive(Debug, Clone, Copy)]
pub struct Hysteresis {
    on: f32,
    off: f32,
    direction: Direction,
    active: bool,
}

impl Hysteresis {
    pub const fn rising(on: f32, off: f32) -> Self {
        Hysteresis {
            on,
            off,
            direction: Direction::Rising,
            active: false,
        }
    }

    pub const fn falling(on: f32, off: f32) -> Self {
        Hysteresis {
            on,
            off,
            direction: Direction::Falling,
            active: false,
        }
    }

    pub const fn is_active(&self) -> bool {
        self.active
    }

    /// Feeds a value; returns the transition, if any.
    pub fn update(&mut self, value: f32) -> Option<EventPhase> {
        let (enter, leave) = match self.direction {
            Direction::Rising => (value >= self.on, value <= self.off),
            Direction::Falling => (value <= self.on, value >= self.off),
        };
        if !self.active && enter {
            self.active = true;
            Some(EventPhase::Alarm)
        } else if self.active && leave {
            self.active = false;
            Some(EventPhase::Recovery)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_alarm_does_not_flap_between_thresholds() {
        let mut h = Hysteresis::rising(10.0, 8.0);
        let seq = [5.0, 9.9, 10.0, 9.5, 10.5, 8.5, 9.9, 8.0, 9.0, 10.2];
        let got: [Option<EventPhase>; 10] = core::array::from_fn(|i| h.update(seq[i]));
        use EventPhase::*;
        assert_eq!(
            got,
            [
                None,
                None,
                Some(Alarm),
                None,
                None,
                None,
                None,
                Some(Recovery),
                None,
                Some(Alarm)
            ]
        );
    }

    #[test]
    fn falling_alarm_for_low_battery() {
        let mut h = Hysteresis::falling(20.0, 25.0);
        assert_eq!(h.update(30.0), None);
        assert_eq!(h.update(19.0), Some(EventPhase::Alarm));
        assert_eq!(h.update(24.0), None);
        assert_eq!(h.update(25.0), Some(EventPhase::Recovery));
    }
}
