//! Simulated peripherals implementing the embedded-hal traits the drivers take. The world side
//! holds a clone of the handle and sets what the "hardware" shows; the driver side reads it
//! through the trait, exactly as on a board.

use std::prelude::rust_2024::*;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use embedded_hal::digital::{ErrorType as PinErrorType, InputPin};
use embedded_hal::i2c::{self, I2c, Operation};
use embedded_hal_nb::serial::{self, Read};

use crate::drivers::accel;
use crate::drivers::current_loop::Adc;
use crate::logic::tilt::Vector3;

/// A GPIO input whose level the world sets.
#[derive(Debug, Clone, Default)]
pub struct SimPin(Arc<AtomicBool>);

impl SimPin {
    pub fn new(high: bool) -> Self {
        SimPin(Arc::new(AtomicBool::new(high)))
    }
    pub fn set_high(&self, high: bool) {
        self.0.store(high, Ordering::Relaxed);
    }
}

impl PinErrorType for SimPin {
    type Error = core::convert::Infallible;
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(self.0.load(Ordering::Relaxed))
    }
    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.0.load(Ordering::Relaxed))
    }
}

/// A UART receive line: the world pushes bytes, the driver reads them; `WouldBlock` when empty.
#[derive(Debug, Clone, Default)]
pub struct SimUart(Arc<Mutex<VecDeque<u8>>>);

impl SimUart {
    pub fn feed(&self, bytes: &[u8]) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(bytes);
        // A real UART FIFO is small; keep the newest bytes like an overrun would.
        while q.len() > 256 {
            q.pop_front();
        }
    }
}

impl serial::ErrorType for SimUart {
    type Error = serial::ErrorKind;
}

impl Read<u8> for SimUart {
    fn read(&mut self) -> nb::Result<u8, Self::Error> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .ok_or(nb::Error::WouldBlock)
    }
}

/// An ADC channel showing the voltage across the 4-20 mA shunt.
#[derive(Debug, Clone, Default)]
pub struct SimAdc(Arc<AtomicU32>);

impl SimAdc {
    pub fn set_microvolts(&self, uv: u32) {
        self.0.store(uv, Ordering::Relaxed);
    }
}

impl Adc for SimAdc {
    type Error = core::convert::Infallible;
    fn read_microvolts(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.load(Ordering::Relaxed))
    }
}

/// A LIS3DH register file on a simulated I2C bus: answers WHO_AM_I, stores control writes,
/// and serves the output registers from the acceleration the world sets (milli-g).
#[derive(Debug, Clone)]
pub struct SimLis3dh {
    addr: u8,
    state: Arc<Mutex<Lis3dhState>>,
}

#[derive(Debug)]
struct Lis3dhState {
    regs: [u8; 0x40],
    pointer: u8,
}

impl SimLis3dh {
    pub fn new(addr: u8) -> Self {
        let mut regs = [0u8; 0x40];
        regs[accel::REG_WHO_AM_I as usize] = accel::WHO_AM_I_VALUE;
        SimLis3dh {
            addr,
            state: Arc::new(Mutex::new(Lis3dhState { regs, pointer: 0 })),
        }
    }

    /// Sets the acceleration the sensor feels, in mg (12-bit high-resolution encoding).
    pub fn set_mg(&self, v: Vector3) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (i, c) in [v.x, v.y, v.z].into_iter().enumerate() {
            let raw = ((c.round().clamp(-2048.0, 2047.0) as i16) << 4).to_le_bytes();
            let r = accel::REG_OUT_X_L as usize + 2 * i;
            s.regs[r] = raw[0];
            s.regs[r + 1] = raw[1];
        }
    }

    /// A control register's value, to check what the driver configured.
    pub fn register(&self, reg: u8) -> u8 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).regs[reg as usize & 0x3F]
    }
}

impl i2c::ErrorType for SimLis3dh {
    type Error = i2c::ErrorKind;
}

impl I2c for SimLis3dh {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        if address != self.addr {
            return Err(i2c::ErrorKind::NoAcknowledge(
                i2c::NoAcknowledgeSource::Address,
            ));
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut auto_inc = false;
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    let Some((&sub, data)) = bytes.split_first() else {
                        continue;
                    };
                    auto_inc = sub & accel::AUTO_INCREMENT != 0;
                    s.pointer = sub & 0x3F;
                    for &b in data {
                        let p = s.pointer as usize;
                        s.regs[p] = b;
                        if auto_inc {
                            s.pointer = (s.pointer + 1) & 0x3F;
                        }
                    }
                }
                Operation::Read(buf) => {
                    for b in buf.iter_mut() {
                        *b = s.regs[s.pointer as usize];
                        if auto_inc {
                            s.pointer = (s.pointer + 1) & 0x3F;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
