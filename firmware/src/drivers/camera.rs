//! Kitchen camera status: the camera's power-good line on a GPIO plus heartbeats from the camera
//! host (the NVR or the camera's own agent), which also says whether the image is usable (not
//! black, frozen or covered, as the host judges it).

use embedded_hal::digital::InputPin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraStatus {
    Ok,
    /// Power-good is low: unplugged or PSU failure.
    PowerLost,
    /// Powered, but no heartbeat within the timeout: hung, or network cut.
    Offline,
    /// Heartbeats arrive but report the image black / frozen / covered.
    ImageBad,
}

impl CameraStatus {
    /// Numeric code for the `status_code` metric: 0 ok, 1 power lost, 2 offline, 3 image bad.
    pub const fn code(self) -> u32 {
        match self {
            CameraStatus::Ok => 0,
            CameraStatus::PowerLost => 1,
            CameraStatus::Offline => 2,
            CameraStatus::ImageBad => 3,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            CameraStatus::Ok => "ok",
            CameraStatus::PowerLost => "power lost",
            CameraStatus::Offline => "heartbeat lost",
            CameraStatus::ImageBad => "image black or frozen",
        }
    }
}

pub struct CameraMonitor<P> {
    power_good: P,
    timeout_ms: u64,
    boot_ms: u64,
    last: Option<(u64, bool)>,
}

impl<P: InputPin> CameraMonitor<P> {
    /// `power_good` is active high. A camera counts as offline after `timeout_ms` without a
    /// heartbeat (counted from `now_ms` at start, so a camera that never speaks goes offline too).
    pub fn new(power_good: P, timeout_ms: u64, now_ms: u64) -> Self {
        CameraMonitor {
            power_good,
            timeout_ms,
            boot_ms: now_ms,
            last: None,
        }
    }

    /// The camera host sent a heartbeat; `image_ok` is its verdict on the picture.
    pub fn heartbeat(&mut self, now_ms: u64, image_ok: bool) {
        self.last = Some((now_ms, image_ok));
    }

    /// Time since the last heartbeat (or since start).
    pub fn heartbeat_age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last.map_or(self.boot_ms, |(t, _)| t))
    }

    /// Power first (a dead camera sends no heartbeat either), then heartbeat, then image.
    pub fn poll(&mut self, now_ms: u64) -> Result<CameraStatus, P::Error> {
        if self.power_good.is_low()? {
            return Ok(CameraStatus::PowerLost);
        }
        if self.heartbeat_age_ms(now_ms) > self.timeout_ms {
            return Ok(CameraStatus::Offline);
        }
        Ok(match self.last {
            Some((_, false)) => CameraStatus::ImageBad,
            _ => CameraStatus::Ok,
        })
    }

    pub fn release(self) -> P {
        self.power_good
    }
}
