//! 4-20 mA level transmitter (submersible pressure or radar level sensor) read through an ADC
//! across a shunt resistor.
//!
//! embedded-hal 1.0 has no ADC trait, so this module defines a minimal one: a channel that
//! returns the voltage across the shunt in microvolts. Wrap a chip's ADC (or an ADS1115 driver)
//! in it. Loop diagnostics follow the usual NAMUR NE43 spirit, with the thresholds this
//! product uses: below 3.8 mA the loop is open (cable cut, transmitter dead), above 20.5 mA the
//! transmitter signals a fault; 3.8..4 and 20..20.5 mA are clamped to the range ends.

/// One ADC channel that measures a voltage.
pub trait Adc {
    type Error: core::fmt::Debug;
    /// The voltage at the input in microvolts.
    fn read_microvolts(&mut self) -> Result<u32, Self::Error>;
}

impl<T: Adc + ?Sized> Adc for &mut T {
    type Error = T::Error;
    fn read_microvolts(&mut self) -> Result<u32, Self::Error> {
        (**self).read_microvolts()
    }
}

/// Below this the loop is open.
pub const OPEN_LOOP_MA: f32 = 3.8;
/// Above this the transmitter reports a fault.
pub const FAULT_MA: f32 = 20.5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoopReading {
    /// A value in the configured engineering range, with the loop current it came from.
    Value { value: f32, milliamps: f32 },
    /// Under 3.8 mA.
    OpenLoop { milliamps: f32 },
    /// Over 20.5 mA.
    Fault { milliamps: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopConfig {
    /// Shunt resistance in ohms (250 gives 1-5 V; 150 gives 0.6-3 V for a 3.3 V ADC).
    pub shunt_ohms: f32,
    /// Engineering value at 4 mA.
    pub range_min: f32,
    /// Engineering value at 20 mA.
    pub range_max: f32,
}

/// Maps a loop current to a reading (pure, so the sim and tests can use it directly).
pub fn classify(milliamps: f32, cfg: &LoopConfig) -> LoopReading {
    if milliamps < OPEN_LOOP_MA {
        LoopReading::OpenLoop { milliamps }
    } else if milliamps > FAULT_MA {
        LoopReading::Fault { milliamps }
    } else {
        let frac = ((milliamps - 4.0) / 16.0).clamp(0.0, 1.0);
        LoopReading::Value {
            value: cfg.range_min + frac * (cfg.range_max - cfg.range_min),
            milliamps,
        }
    }
}

/// The loop current that a transmitter outputs for `value` (inverse of [`classify`]).
pub fn milliamps_for(value: f32, cfg: &LoopConfig) -> f32 {
    let span = cfg.range_max - cfg.range_min;
    if span == 0.0 {
        return 4.0;
    }
    4.0 + 16.0 * ((value - cfg.range_min) / span).clamp(0.0, 1.0)
}

pub struct CurrentLoop<A> {
    adc: A,
    cfg: LoopConfig,
}

impl<A: Adc> CurrentLoop<A> {
    pub fn new(adc: A, cfg: LoopConfig) -> Self {
        CurrentLoop { adc, cfg }
    }

    pub fn read(&mut self) -> Result<LoopReading, A::Error> {
        let uv = self.adc.read_microvolts()?;
        // uV / ohm = uA; / 1000 = mA.
        let ma = uv as f32 / self.cfg.shunt_ohms / 1000.0;
        Ok(classify(ma, &self.cfg))
    }

    pub fn release(self) -> A {
        self.adc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedAdc(u32);
    impl Adc for FixedAdc {
        type Error = ();
        fn read_microvolts(&mut self) -> Result<u32, ()> {
            Ok(self.0)
        }
    }

    const CFG: LoopConfig = LoopConfig {
        shunt_ohms: 250.0,
        range_min: 0.0,
        range_max: 2000.0,
    };

    fn read(uv: u32) -> LoopReading {
        CurrentLoop::new(FixedAdc(uv), CFG).read().unwrap()
    }

    #[test]
    fn maps_4_to_20_ma_onto_the_range() {
        assert_eq!(
            read(1_000_000),
            LoopReading::Value {
                value: 0.0,
                milliamps: 4.0
            }
        );
        assert_eq!(
            read(3_000_000),
            LoopReading::Value {
                value: 1000.0,
                milliamps: 12.0
            }
        );
        assert_eq!(
            read(5_000_000),
            LoopReading::Value {
                value: 2000.0,
                milliamps: 20.0
            }
        );
        // 3.9 mA and 20.4 mA are inside the tolerance band and clamp.
        assert!(matches!(
            read(975_000),
            LoopReading::Value { value: 0.0, .. }
        ));
        assert!(matches!(
            read(5_100_000),
            LoopReading::Value { value: 2000.0, .. }
        ));
    }

    #[test]
    fn detects_open_loop_and_fault() {
        assert!(matches!(read(0), LoopReading::OpenLoop { .. }));
        assert!(matches!(read(940_000), LoopReading::OpenLoop { .. })); // 3.76 mA
        assert!(matches!(read(5_150_000), LoopReading::Fault { .. })); // 20.6 mA
        assert!((milliamps_for(500.0, &CFG) - 8.0).abs() < 1e-6);
    }
}
