//! Manhole cover switch: a reed switch (magnet in the cover) or a hall sensor on a GPIO input,
//! debounced in time.

use embedded_hal::digital::InputPin;

use crate::logic::debounce::Debouncer;

/// Which pin level means "cover open".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenLevel {
    /// Normally-open reed pulled up: the magnet closes the contact (low) while the cover is on,
    /// so an open cover reads high. The common wiring, and fail-safe: a cut wire reads open.
    High,
    Low,
}

pub struct CoverSwitch<P> {
    pin: P,
    open_level: OpenLevel,
    debounce: Debouncer,
}

impl<P: InputPin> CoverSwitch<P> {
    /// Starts assuming the cover is closed; the first stable reading corrects that.
    pub fn new(pin: P, open_level: OpenLevel, stable_ms: u64) -> Self {
        CoverSwitch {
            pin,
            open_level,
            debounce: Debouncer::new(false, stable_ms),
        }
    }

    /// Samples the pin; returns the new debounced state when it changes (`true` = open).
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<bool>, P::Error> {
        let high = self.pin.is_high()?;
        let open = high == (self.open_level == OpenLevel::High);
        Ok(self.debounce.update(open, now_ms))
    }

    /// The debounced state.
    pub fn is_open(&self) -> bool {
        self.debounce.state()
    }

    pub fn release(self) -> P {
        self.pin
    }
}
