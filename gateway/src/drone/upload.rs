//! Uploads into a flight: streamed to disk (never held in memory), resumable with
//! `Content-Range`, limited in size and type, checked on completion.
//!
//! A file is written to `{name}.part` until its last byte arrives, then checked (magic bytes,
//! JPEG end marker, image dimensions before any decoding, SRT is text), hashed (SHA-256) and
//! renamed to `{name}`. A client that lost its connection asks for the received offset and
//! continues from there. Names are a strict whitelist (no path separators, no leading dot, a
//! known extension), so a name can never leave the flight's folder.

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Error)]
pub(crate) enum UploadError {
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    BadRange(String),
    /// The client's offset is not where the file stands: resume from `received`.
    #[error("range starts at {start} but {received} bytes are already stored")]
    Offset { start: u64, received: u64 },
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Rejected(String),
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    /// The flight or the file is not in a state to take these bytes (closed, complete,
    /// being written by another request).
    #[error("{0}")]
    Conflict(String),
    /// Storing it would leave less than `drone.min_free_mb` free (or free space is unknown).
    #[error("{0}")]
    DiskFloor(String),
    /// A failure of the gateway, not of the upload (the completion check's task died).
    #[error("{0}")]
    Failed(String),
}

/// What a file is, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FileKind {
    Still,
    Video,
    Telemetry,
}

/// Size limits (bytes) per kind and per flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UploadLimits {
    pub max_still_bytes: u64,
    pub max_video_bytes: u64,
    pub max_telemetry_bytes: u64,
    pub max_files: usize,
    /// All files of one flight together.
    pub max_flight_bytes: u64,
    /// Free space that must remain on the file system holding the flights.
    pub min_free_bytes: u64,
    /// Largest still accepted, in pixels (checked from the header, before decoding).
    pub max_still_pixels: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_still_bytes: 64 << 20,
            max_video_bytes: 8 << 30,
            max_telemetry_bytes: 64 << 20,
            max_files: 2000,
            max_flight_bytes: 32 << 30,
            min_free_bytes: 1 << 30,
            max_still_pixels: 64_000_000,
        }
    }
}

impl UploadLimits {
    pub(crate) fn max_bytes(&self, kind: FileKind) -> u64 {
        match kind {
            FileKind::Still => self.max_still_bytes,
            FileKind::Video => self.max_video_bytes,
            FileKind::Telemetry => self.max_telemetry_bytes,
        }
    }
}

/// Checks a file name and returns its kind: 1-100 characters of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot, ending in `.jpg`/`.jpeg` (still), `.mp4`/`.mov` (video) or `.srt`.
pub(crate) fn kind_of(name: &str) -> Result<FileKind, UploadError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > 100 || !ok_chars || name.starts_with('.') {
        return Err(UploadError::BadName(format!(
            "file name `{}`: use 1-100 characters of A-Z a-z 0-9 . _ - (no paths, no leading dot)",
            name.chars().take(100).collect::<String>()
        )));
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => Ok(FileKind::Still),
        "mp4" | "mov" => Ok(FileKind::Video),
        "srt" => Ok(FileKind::Telemetry),
        _ => Err(UploadError::UnsupportedType(format!(
            "file name `{name}`: extension must be .jpg, .jpeg, .mp4, .mov or .srt"
        ))),
    }
}

/// The declared content type must fit the kind (`application/octet-stream` is accepted for
/// any: resumable-upload clients often send it; the bytes are checked anyway).
pub(crate) fn check_content_type(kind: FileKind, ct: &str) -> Result<(), UploadError> {
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = ct == "application/octet-stream"
        || match kind {
            FileKind::Still => ct == "image/jpeg",
            FileKind::Video => matches!(ct.as_str(), "video/mp4" | "video/quicktime"),
            FileKind::Telemetry => {
                matches!(
                    ct.as_str(),
                    "application/x-subrip" | "text/plain" | "text/srt"
                )
            }
        };
    if ok {
        Ok(())
    } else {
        Err(UploadError::UnsupportedType(format!(
            "Content-Type `{ct}` does not fit a {kind:?} file"
        )))
    }
}

/// `Content-Range: bytes START-END/TOTAL` (END inclusive; TOTAL may be `*` until known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

pub(crate) fn parse_content_range(s: &str) -> Result<ContentRange, UploadError> {
    let bad = || {
        UploadError::BadRange(format!(
            "Content-Range `{s}`: expected bytes START-END/TOTAL"
        ))
    };
    let rest = s.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().map_err(|_| bad())?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return Err(bad());
    }
    Ok(ContentRange { start, end, total })
}

/// Paths of a file in a flight's folder.
pub(crate) fn part_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.part"))
}

/// Appends `body` to `path` (created if missing) and returns the bytes written. Stops with
/// [`UploadError::TooLarge`] as soon as the file would pass `max_len`; with `expect` set,
/// a body longer than the declared range is refused too.
pub(crate) async fn append<S, E>(
    path: &Path,
    body: S,
    max_len: u64,
    expect: Option<u64>,
) -> Result<u64, UploadError>
where
    S: Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let mut len = file.metadata().await?.len();
    let mut written = 0u64;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // Keep what arrived: the client resumes from the stored offset.
                file.flush().await?;
                return Err(UploadError::Body(e.to_string()));
            }
        };
        let n = chunk.len() as u64;
        if len + n > max_len {
            return Err(UploadError::TooLarge(format!(
                "file would pass the {max_len} byte limit"
            )));
        }
        if expect.is_some_and(|e| written + n > e) {
            return Err(UploadError::BadRange(
                "body is longer than its Content-Range".into(),
            ));
        }
        file.write_all(&chunk).await?;
        len += n;
        written += n;
    }
    file.flush().await?;
    file.sync_data().await?;
    Ok(written)
}

/// SHA-256 (hex) of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(crate::clue::audit::hex(ctx.finish().as_ref()))
}

/// Checks a complete file's content against its kind before it is accepted.
pub(crate) fn verify(
    path: &Path,
    kind: FileKind,
    limits: &UploadLimits,
) -> Result<(), UploadError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = vec![0u8; 4096.min(len as usize)];
    f.read_exact(&mut head)?;
    match kind {
        FileKind::Still => {
            if !head.starts_with(&[0xFF, 0xD8, 0xFF]) {
                return Err(UploadError::Rejected("not a JPEG (no start marker)".into()));
            }
            let mut tail = vec![0u8; 1024.min(len as usize)];
            f.seek(SeekFrom::End(-(tail.len() as i64)))?;
            f.read_exact(&mut tail)?;
            if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
                return Err(UploadError::Rejected(
                    "truncated JPEG (no end-of-image marker)".into(),
                ));
            }
            // Dimensions from the header only: a "decompression bomb" is refused here,
            // before a single pixel is decoded.
            let reader = image::ImageReader::with_format(
                std::io::BufReader::new(std::fs::File::open(path)?),
                image::ImageFormat::Jpeg,
            );
            let (w, h) = reader
                .into_dimensions()
                .map_err(|e| UploadError::Rejected(format!("unreadable JPEG header: {e}")))?;
            if w == 0 || h == 0 || u64::from(w) * u64::from(h) > limits.max_still_pixels {
                return Err(UploadError::Rejected(format!(
                    "{w}x{h} JPEG is over the {} pixel limit",
                    limits.max_still_pixels
                )));
            }
        }
        FileKind::Video => {
            // ISO base media (MP4, MOV): the first box is `ftyp` (or `wide`/`moov`/`mdat`/`free`
            // in old QuickTime files).
            let known = [b"ftyp", b"wide", b"moov", b"mdat", b"free", b"skip"];
            if head.len() < 8 || !known.iter().any(|k| &head[4..8] == *k) {
                return Err(UploadError::Rejected("not an MP4/MOV file".into()));
            }
        }
        FileKind::Telemetry => {
            if head.contains(&0) || (!head.contains(&b'\n') && len > 200) {
                return Err(UploadError::Rejected("not a text SRT file".into()));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_a_whitelist() {
        assert_eq!(kind_of("DJI_0001.JPG").expect("jpg"), FileKind::Still);
        assert_eq!(kind_of("DJI_0002.MP4").expect("mp4"), FileKind::Video);
        assert_eq!(kind_of("DJI_0002.SRT").expect("srt"), FileKind::Telemetry);
        for bad in [
            "../etc/passwd.jpg",
            "..",
            ".hidden.jpg",
            "a/b.jpg",
            "a\\b.jpg",
            "",
            "x.jpg\0",
            "name with space.jpg",
            "café.jpg",
        ] {
            assert!(
                matches!(kind_of(bad), Err(UploadError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            kind_of("evil.sh"),
            Err(UploadError::UnsupportedType(_))
        ));
        assert!(kind_of(&"a".repeat(101)).is_err());
    }

    #[test]
    fn content_types_must_fit() {
        assert!(check_content_type(FileKind::Still, "image/jpeg").is_ok());
        assert!(check_content_type(FileKind::Video, "video/quicktime").is_ok());
        assert!(check_content_type(FileKind::Telemetry, "text/plain; charset=utf-8").is_ok());
        assert!(check_content_type(FileKind::Still, "application/octet-stream").is_ok());
        assert!(check_content_type(FileKind::Still, "text/html").is_err());
        assert!(check_content_type(FileKind::Video, "image/jpeg").is_err());
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000").expect("ok"),
            ContentRange {
                start: 0,
                end: 99,
                total: Some(1000)
            }
        );
        assert_eq!(
            parse_content_range("bytes 100-199/*").expect("ok").total,
            None
        );
        for bad in [
            "0-99/1000",
            "bytes 99-0/1000",
            "bytes 0-1000/1000",
            "bytes a-b/c",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn append_stops_at_the_limit_and_resumes() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f.part");
        let chunks = |v: Vec<&'static [u8]>| {
            futures_util::stream::iter(
                v.into_iter()
                    .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from_static(c))),
            )
        };
        assert_eq!(
            append(&p, chunks(vec![b"abc", b"def"]), 10, None)
                .await
                .expect("ok"),
            6
        );
        assert_eq!(
            append(&p, chunks(vec![b"gh"]), 10, Some(2))
                .await
                .expect("ok"),
            2
        );
        assert_eq!(std::fs::read(&p).expect("read"), b"abcdefgh");
        assert!(matches!(
            append(&p, chunks(vec![b"ijk"]), 10, None).await,
            Err(UploadError::TooLarge(_))
        ));
        assert!(matches!(
            append(&p, chunks(vec![b"i"]), 100, Some(0)).await,
            Err(UploadError::BadRange(_))
        ));
    }

    #[test]
    fn verify_refuses_fakes_truncations_and_bombs() {
        let dir = tempfile::tempdir().expect("tmp");
        let lim = UploadLimits::default();
        let p = dir.path().join("x");
        std::fs::write(&p, b"<html>not a jpeg</html>").expect("w");
        assert!(verify(&p, FileKind::Still, &lim).is_err());
        // A real small JPEG passes; the same cut in half is refused.
        let img = image::RgbImage::from_pixel(64, 48, image::Rgb([10, 200, 30]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .expect("encode");
        std::fs::write(&p, &jpeg).expect("w");
        verify(&p, FileKind::Still, &lim).expect("valid jpeg");
        std::fs::write(&p, &jpeg[..jpeg.len() / 2]).expect("w");
        assert!(verify(&p, FileKind::Still, &lim).is_err());
        // A header claiming 60000 x 60000 pixels (3.6 Gpx) is refused from the header.
        let bomb = bomb_jpeg(&jpeg, 60000, 60000);
        std::fs::write(&p, &bomb).expect("w");
        let e = verify(&p, FileKind::Still, &lim).expect_err("bomb");
        assert!(e.to_string().contains("pixel limit"), "{e}");
        std::fs::write(&p, b"\0\0\0\x18ftypmp42rest").expect("w");
        verify(&p, FileKind::Video, &lim).expect("mp4 box");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\n....").expect("w");
        assert!(verify(&p, FileKind::Video, &lim).is_err());
        std::fs::write(&p, b"1\n00:00:00,000 --> 00:00:01,000\nx\0y").expect("w");
        assert!(verify(&p, FileKind::Telemetry, &lim).is_err());
    }

    /// Rewrites the SOF0 frame size of a baseline JPEG.
    pub(crate) fn bomb_jpeg(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        let sof = out
            .windows(2)
            .position(|x| x == [0xFF, 0xC0])
            .expect("baseline SOF0");
        out[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        out[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        out
    }
}
