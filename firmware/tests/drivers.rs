//! Driver tests against embedded-hal-mock: the exact bus transactions each part expects.

use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTx};
use embedded_hal_mock::eh1::serial::{Mock as SerialMock, Transaction as SerialTx};
use embedded_hal_nb::serial::ErrorKind;
use firmware::drivers::accel::{self, Lis3dh};
use firmware::drivers::camera::{CameraMonitor, CameraStatus};
use firmware::drivers::cover::{CoverSwitch, OpenLevel};
use firmware::drivers::ultrasonic::{self, A02yyuw, FrameError};

const A: u8 = accel::ADDR_SA0_LOW;

fn init_transactions() -> Vec<I2cTx> {
    vec![
        I2cTx::write_read(A, vec![0x0F], vec![0x33]),
        I2cTx::write(A, vec![0x20, 0x57]),
        I2cTx::write(A, vec![0x23, 0x88]),
    ]
}

/// Left-justified 12-bit samples, as the LIS3DH puts them in OUT_X_L..OUT_Z_H.
fn sample_bytes(x: i16, y: i16, z: i16) -> Vec<u8> {
    [x, y, z]
        .iter()
        .flat_map(|v| (v << 4).to_le_bytes())
        .collect()
}

#[test]
fn lis3dh_init_checks_who_am_i_then_configures() {
    let mut i2c = I2cMock::new(&init_transactions());
    let dev = Lis3dh::new(i2c.clone(), A).unwrap();
    drop(dev);
    i2c.done();
}

#[test]
fn lis3dh_wrong_device_stops_before_configuring() {
    let mut i2c = I2cMock::new(&[I2cTx::write_read(A, vec![0x0F], vec![0xE5])]);
    let err = Lis3dh::new(i2c.clone(), A).err().unwrap();
    assert_eq!(err, accel::Error::WrongDevice(0xE5));
    i2c.done();
}

#[test]
fn lis3dh_reads_a_burst_with_auto_increment_and_scales_to_mg() {
    let mut tx = init_transactions();
    tx.push(I2cTx::write_read(
        A,
        vec![0xA8],
        sample_bytes(-12, 250, 968),
    ));
    let mut i2c = I2cMock::new(&tx);
    let mut dev = Lis3dh::new(i2c.clone(), A).unwrap();
    let v = dev.read_mg().unwrap();
    assert_eq!((v.x, v.y, v.z), (-12.0, 250.0, 968.0));
    i2c.done();
}

#[test]
fn lis3dh_calibrates_rest_and_measures_tilt_from_it() {
    let mut tx = init_transactions();
    // Mounted ~5 degrees off level: rest vector is not the z axis.
    for _ in 0..4 {
        tx.push(I2cTx::write_read(A, vec![0xA8], sample_bytes(0, 87, 996)));
    }
    // Cover lifted and leaned: 30 degrees further about x.
    let (s, c) = 35f32.to_radians().sin_cos();
    tx.push(I2cTx::write_read(
        A,
        vec![0xA8],
        sample_bytes(0, (1000.0 * s) as i16, (1000.0 * c) as i16),
    ));
    tx.push(I2cTx::write_read(A, vec![0xA8], sample_bytes(0, 87, 996)));
    let mut i2c = I2cMock::new(&tx);
    let mut dev = Lis3dh::new(i2c.clone(), A).unwrap();
    assert_eq!(dev.tilt_deg().err(), Some(accel::Error::NotCalibrated));
    let rest = dev.calibrate(4).unwrap();
    assert_eq!((rest.y, rest.z), (87.0, 996.0));
    let t = dev.tilt_deg().unwrap();
    assert!((t - 30.0).abs() < 0.3, "{t}");
    assert!(dev.tilt_deg().unwrap() < 0.1);
    i2c.done();
}

#[test]
fn ultrasonic_parses_frames_skipping_junk() {
    let mut bytes = vec![0x00, 0x42];
    bytes.extend(ultrasonic::frame(1953));
    bytes.extend(ultrasonic::frame(300));
    let mut serial = SerialMock::new(&[SerialTx::read_many(bytes)]);
    let mut s = A02yyuw::new(serial.clone());
    assert_eq!(s.read_mm(), Ok(1953));
    assert_eq!(s.read_mm(), Ok(300));
    serial.done();
}

#[test]
fn ultrasonic_bad_checksum_is_reported_then_resyncs() {
    // The corrupted frame's checksum byte is 0xFF: the parser must take it as the next header.
    let mut bad = ultrasonic::frame(1000);
    bad[3] = 0xFF;
    let good = ultrasonic::frame(1234); // FF 04 D2 D5
    let mut serial = SerialMock::new(&[
        SerialTx::read_many(bad),
        SerialTx::read_many(&good[1..]),
        SerialTx::read_many(ultrasonic::frame(250)),
    ]);
    let mut s = A02yyuw::new(serial.clone());
    assert!(matches!(
        s.read_mm(),
        Err(nb::Error::Other(ultrasonic::Error::Frame(
            FrameError::Checksum { got: 0xFF, .. }
        )))
    ));
    assert_eq!(s.read_mm(), Ok(1234));
    assert_eq!(s.read_mm(), Ok(250));
    serial.done();
}

#[test]
fn ultrasonic_keeps_a_partial_frame_across_would_block() {
    let f = ultrasonic::frame(777);
    let mut serial = SerialMock::new(&[
        SerialTx::read_many(&f[..2]),
        SerialTx::read_error(nb::Error::WouldBlock),
        SerialTx::read_many(&f[2..]),
        SerialTx::read_error(nb::Error::Other(ErrorKind::Overrun)),
    ]);
    let mut s = A02yyuw::new(serial.clone());
    assert_eq!(s.read_mm(), Err(nb::Error::WouldBlock));
    assert_eq!(s.read_mm(), Ok(777));
    assert_eq!(
        s.read_mm(),
        Err(nb::Error::Other(ultrasonic::Error::Serial(
            ErrorKind::Overrun
        )))
    );
    serial.done();
}

#[test]
fn cover_switch_debounces_a_bouncing_reed() {
    use State::{High, Low};
    // Polled every 10 ms; open = high; 30 ms stability required.
    let levels = [Low, High, Low, High, High, High, High, High, Low, High];
    let tx: Vec<PinTx> = levels.iter().map(|&l| PinTx::get(l)).collect();
    let mut pin = PinMock::new(&tx);
    let mut sw = CoverSwitch::new(pin.clone(), OpenLevel::High, 30);
    let mut changes = Vec::new();
    for (i, _) in levels.iter().enumerate() {
        if let Some(open) = sw.poll(i as u64 * 10).unwrap() {
            changes.push((i as u64 * 10, open));
        }
    }
    // High from t=30 (after the bounce at 20) is stable at t=60; the glitch at 80 is ignored.
    assert_eq!(changes, vec![(60, true)]);
    assert!(sw.is_open());
    pin.done();
}

#[test]
fn cover_switch_active_low_wiring() {
    let mut pin = PinMock::new(&[PinTx::get(State::Low), PinTx::get(State::Low)]);
    let mut sw = CoverSwitch::new(pin.clone(), OpenLevel::Low, 0);
    assert_eq!(sw.poll(0).unwrap(), Some(true));
    assert_eq!(sw.poll(5).unwrap(), None);
    pin.done();
}

#[test]
fn camera_status_from_power_good_and_heartbeats() {
    use State::{High, Low};
    let mut pin = PinMock::new(&[
        PinTx::get(High),
        PinTx::get(High),
        PinTx::get(High),
        PinTx::get(High),
        PinTx::get(Low),
    ]);
    let mut cam = CameraMonitor::new(pin.clone(), 60_000, 0);
    assert_eq!(
        cam.poll(10_000).unwrap(),
        CameraStatus::Ok,
        "grace after boot"
    );
    assert_eq!(
        cam.poll(61_000).unwrap(),
        CameraStatus::Offline,
        "never spoke"
    );
    cam.heartbeat(62_000, false);
    assert_eq!(cam.poll(63_000).unwrap(), CameraStatus::ImageBad);
    cam.heartbeat(70_000, true);
    assert_eq!(cam.poll(71_000).unwrap(), CameraStatus::Ok);
    assert_eq!(cam.poll(72_000).unwrap(), CameraStatus::PowerLost);
    assert_eq!(cam.heartbeat_age_ms(72_000), 2_000);
    pin.done();
}
