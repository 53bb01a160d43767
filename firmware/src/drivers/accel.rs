//! ST LIS3DH 3-axis accelerometer on I2C, used for cover tilt.
//!
//! Register use (datasheet DocID17530): WHO_AM_I `0x0F` reads `0x33`; CTRL_REG1 `0x20` =
//! `0x57` (100 Hz, normal power, X/Y/Z on); CTRL_REG4 `0x23` = `0x88` (block data update,
//! +/-2 g, high resolution: 12-bit, 1 mg/digit); OUT_X_L `0x28`..OUT_Z_H `0x2D`, read in one
//! burst with the auto-increment bit (`0x80`) set on the sub-address. Samples are left-justified
//! little-endian `i16`, so a 12-bit reading is the value shifted right by 4.

use embedded_hal::i2c::I2c;

use crate::logic::tilt::{Vector3, tilt_deg};

/// Address with SA0 tied low; `0x19` with SA0 high.
pub const ADDR_SA0_LOW: u8 = 0x18;
pub const ADDR_SA0_HIGH: u8 = 0x19;

pub const REG_WHO_AM_I: u8 = 0x0F;
pub const WHO_AM_I_VALUE: u8 = 0x33;
pub const REG_CTRL1: u8 = 0x20;
pub const REG_CTRL4: u8 = 0x23;
pub const REG_OUT_X_L: u8 = 0x28;
/// Sub-address auto-increment flag for multi-byte reads.
pub const AUTO_INCREMENT: u8 = 0x80;
/// 100 Hz, normal mode, X, Y and Z enabled.
pub const CTRL1_100HZ_XYZ: u8 = 0x57;
/// BDU, +/-2 g, high-resolution.
pub const CTRL4_BDU_2G_HR: u8 = 0x88;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    I2c(E),
    /// Something answered at the address, but it is not a LIS3DH.
    WrongDevice(u8),
    /// Tilt asked for before [`Lis3dh::calibrate`].
    NotCalibrated,
    /// The calibration or sample vector had no length (free fall, or a stuck sensor).
    ZeroVector,
}

pub struct Lis3dh<I> {
    i2c: I,
    addr: u8,
    rest: Option<Vector3>,
}

impl<I: I2c> Lis3dh<I> {
    /// Checks WHO_AM_I and configures the sensor.
    pub fn new(mut i2c: I, addr: u8) -> Result<Self, Error<I::Error>> {
        let mut id = [0u8];
        i2c.write_read(addr, &[REG_WHO_AM_I], &mut id)
            .map_err(Error::I2c)?;
        if id[0] != WHO_AM_I_VALUE {
            return Err(Error::WrongDevice(id[0]));
        }
        i2c.write(addr, &[REG_CTRL1, CTRL1_100HZ_XYZ])
            .map_err(Error::I2c)?;
        i2c.write(addr, &[REG_CTRL4, CTRL4_BDU_2G_HR])
            .map_err(Error::I2c)?;
        Ok(Lis3dh {
            i2c,
            addr,
            rest: None,
        })
    }

    /// One sample in milli-g.
    pub fn read_mg(&mut self) -> Result<Vector3, Error<I::Error>> {
        let mut raw = [0u8; 6];
        self.i2c
            .write_read(self.addr, &[REG_OUT_X_L | AUTO_INCREMENT], &mut raw)
            .map_err(Error::I2c)?;
        let axis = |i: usize| (i16::from_le_bytes([raw[i], raw[i + 1]]) >> 4) as f32;
        Ok(Vector3::new(axis(0), axis(2), axis(4)))
    }

    /// Averages `samples` readings as the rest orientation (cover closed and level). Done at
    /// installation; the rest vector can be stored and restored with [`Lis3dh::set_rest`].
    pub fn calibrate(&mut self, samples: u16) -> Result<Vector3, Error<I::Error>> {
        let n = samples.max(1);
        let mut sum = Vector3::default();
        for _ in 0..n {
            let v = self.read_mg()?;
            sum = Vector3::new(sum.x + v.x, sum.y + v.y, sum.z + v.z);
        }
        let n = n as f32;
        let rest = Vector3::new(sum.x / n, sum.y / n, sum.z / n);
        if rest.norm() < 100.0 {
            return Err(Error::ZeroVector);
        }
        self.rest = Some(rest);
        Ok(rest)
    }

    pub fn rest(&self) -> Option<Vector3> {
        self.rest
    }

    pub fn set_rest(&mut self, rest: Vector3) {
        self.rest = Some(rest);
    }

    /// Reads a sample and returns its angle from the rest vector in degrees.
    pub fn tilt_deg(&mut self) -> Result<f32, Error<I::Error>> {
        let rest = self.rest.ok_or(Error::NotCalibrated)?;
        let now = self.read_mg()?;
        tilt_deg(rest, now).ok_or(Error::ZeroVector)
    }

    pub fn release(self) -> I {
        self.i2c
    }
}
