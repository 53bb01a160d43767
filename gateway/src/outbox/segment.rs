//! On-disk format of the outbox: segment files of framed records, and the cursor file.
//!
//! Segment file `{id:020}.seg`:
//! ```text
//! header  : b"GWOB" | version u32 LE (= 1)                      8 bytes
//! frame*  : len u32 LE | crc32(len LE bytes ++ payload) u32 LE | payload (len bytes)
//! ```
//! The CRC covers the length too, so a flipped bit in the length is caught. A zero-filled tail
//! (seen after power loss on some file systems) fails the CRC (crc32 of four zero bytes is not 0).
//!
//! Cursor file `cursor` (replaced atomically: `cursor.tmp`, fsync, rename, fsync dir):
//! ```text
//! b"GWOC" | segment id u64 LE | byte offset u64 LE | crc32 of the previous 20 bytes u32 LE
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub(crate) const MAGIC: [u8; 4] = *b"GWOB";
pub(crate) const VERSION: u32 = 1;
/// Bytes of the segment header.
pub(crate) const HEADER_LEN: u64 = 8;
/// Bytes of framing around each record (length + CRC).
pub(crate) const FRAME_OVERHEAD: u64 = 8;

const CURSOR_MAGIC: [u8; 4] = *b"GWOC";
const CURSOR_LEN: usize = 24;
pub(crate) const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
pub(crate) const LOCK_FILE: &str = "lock";

pub(crate) fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&MAGIC);
    h[4..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

pub(crate) fn segment_name(id: u64) -> String {
    format!("{id:020}.seg")
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A fresh hasher to clone: `Hasher::new` detects the CPU's features on every call, about a
/// sixth of a record's CRC work (issue 24); a clone copies the detected state.
static FRESH: std::sync::LazyLock<crc32fast::Hasher> =
    std::sync::LazyLock::new(crc32fast::Hasher::new);

fn frame_crc(len: u32, payload: &[u8]) -> u32 {
    let mut h = FRESH.clone();
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `buf`. The caller has checked that the length fits in u32.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len() as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&frame_crc(len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The result of decoding the frame at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A valid record and the total bytes the frame occupies.
    Record(&'a [u8], u64),
    /// The buffer ends inside the frame; `need` bytes (whole frame) are required.
    Incomplete { need: u64 },
    /// The CRC does not match.
    Corrupt,
}

/// The frame at the start of `buf`. Its CRC is checked only when `verify`: not for a frame
/// this process has verified already (see `Outbox::read_batch_after`).
pub(crate) fn decode_frame(buf: &[u8], verify: bool) -> Frame<'_> {
    let (Some(len_b), Some(crc_b)) = (buf.get(0..4), buf.get(4..8)) else {
        return Frame::Incomplete {
            need: FRAME_OVERHEAD,
        };
    };
    let len = u32::from_le_bytes([len_b[0], len_b[1], len_b[2], len_b[3]]);
    let crc = u32::from_le_bytes([crc_b[0], crc_b[1], crc_b[2], crc_b[3]]);
    let need = FRAME_OVERHEAD + u64::from(len);
    let Some(payload) = usize::try_from(need)
        .ok()
        .and_then(|end| buf.get(FRAME_OVERHEAD as usize..end))
    else {
        return Frame::Incomplete { need };
    };
    if verify && frame_crc(len, payload) != crc {
        return Frame::Corrupt;
    }
    Frame::Record(payload, need)
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The file ends exactly after a valid frame.
    Clean,
    /// The file ends inside a frame (a write torn by a crash).
    Torn,
    /// A complete frame failed its CRC.
    Corrupt,
}

#[derive(Debug)]
pub(crate) struct Scan {
    /// End of the valid data (byte offset).
    pub end: u64,
    /// Valid records.
    pub records: u64,
    pub stop: Stop,
    /// If `at` was given and is a frame boundary within the valid data: the index of the
    /// record that starts there (or `records` when `at == end`).
    pub index_at: Option<u64>,
}

/// What the header of a segment file says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
    /// Shorter than a header (crash while the segment was being created).
    Short,
    BadMagic,
    UnknownVersion(u32),
}

pub(crate) fn check_header(file: &File, len: u64) -> io::Result<HeaderCheck> {
    if len < HEADER_LEN {
        return Ok(HeaderCheck::Short);
    }
    let mut h = [0u8; HEADER_LEN as usize];
    let mut r = file;
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut h)?;
    if h[..4] != MAGIC {
        return Ok(HeaderCheck::BadMagic);
    }
    let v = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if v != VERSION {
        return Ok(HeaderCheck::UnknownVersion(v));
    }
    Ok(HeaderCheck::Ok)
}

/// Reads every frame after the header and verifies it. `len` is the file length.
pub(crate) fn scan(file: &File, len: u64, at: Option<u64>) -> io::Result<Scan> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    r.seek(SeekFrom::Start(HEADER_LEN))?;
    let mut off = HEADER_LEN;
    let mut records = 0u64;
    let mut index_at = None;
    let mut payload = Vec::new();
    let stop = loop {
        if at == Some(off) {
            index_at = Some(records);
        }
        if off == len {
            break Stop::Clean;
        }
        if len - off < FRAME_OVERHEAD {
            break Stop::Torn;
        }
        let mut fh = [0u8; FRAME_OVERHEAD as usize];
        r.read_exact(&mut fh)?;
        let flen = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]);
        let crc = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]);
        if u64::from(flen) > len - off - FRAME_OVERHEAD {
            break Stop::Torn;
        }
        payload.resize(flen as usize, 0);
        r.read_exact(&mut payload)?;
        if frame_crc(flen, &payload) != crc {
            break Stop::Corrupt;
        }
        off += FRAME_OVERHEAD + u64::from(flen);
        records += 1;
    };
    Ok(Scan {
        end: off,
        records,
        stop,
        index_at,
    })
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces the cursor file atomically and durably.
///
/// On a full disk the temp file cannot get a block, but the cursor's own block is already
/// allocated: the record is then overwritten in place (24 bytes, one sector). A torn write fails
/// the CRC and redelivers from the oldest record (duplicates, never a loss). Without this a full
/// disk could never drain: freeing space needs a commit, and a commit needed space.
pub(crate) fn write_cursor(dir: &Path, segment: u64, offset: u64) -> io::Result<()> {
    let mut b = [0u8; CURSOR_LEN];
    b[..4].copy_from_slice(&CURSOR_MAGIC);
    b[4..12].copy_from_slice(&segment.to_le_bytes());
    b[12..20].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&b[..20]);
    b[20..].copy_from_slice(&crc.to_le_bytes());
    match replace_cursor(dir, &b) {
        Err(e) if is_disk_full(&e) => {
            use std::os::unix::fs::FileExt;
            let _ = fs::remove_file(dir.join(CURSOR_TMP));
            let f = OpenOptions::new()
                .write(true)
                .open(dir.join(CURSOR_FILE))
                .map_err(|_| e)?;
            f.write_all_at(&b, 0)?;
            f.sync_data()
        }
        other => other,
    }
}

/// ENOSPC or EDQUOT.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

fn replace_cursor(dir: &Path, b: &[u8; CURSOR_LEN]) -> io::Result<()> {
    let tmp = dir.join(CURSOR_TMP);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(b)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(CURSOR_FILE))?;
    sync_dir(dir)
}

/// `Ok(None)`: no cursor file. `Err(reason)` inside: the file exists but is not valid.
pub(crate) fn read_cursor(dir: &Path) -> io::Result<Result<Option<(u64, u64)>, String>> {
    let b = match fs::read(dir.join(CURSOR_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) => return Err(e),
    };
    if b.len() != CURSOR_LEN {
        return Ok(Err(format!(
            "cursor file has {} bytes, expected {CURSOR_LEN}",
            b.len()
        )));
    }
    if b[..4] != CURSOR_MAGIC {
        return Ok(Err("cursor file has a bad magic".into()));
    }
    let word = |r: std::ops::Range<usize>| -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[r]);
        u64::from_le_bytes(a)
    };
    let crc = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
    if crc32fast::hash(&b[..20]) != crc {
        return Ok(Err("cursor file fails its CRC".into()));
    }
    Ok(Ok(Some((word(4..12), word(12..20)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cloned hasher gives the format's CRC: crc32 of the length (LE) and the payload, as
    /// one buffer hashed by a hasher made afresh.
    #[test]
    fn frame_crc_is_crc32_of_length_and_payload() {
        for n in [0usize, 1, 3, 4, 15, 16, 63, 64, 65, 150, 4096] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            let mut whole = (n as u32).to_le_bytes().to_vec();
            whole.extend_from_slice(&payload);
            assert_eq!(
                frame_crc(n as u32, &payload),
                crc32fast::hash(&whole),
                "{n} bytes"
            );
            // Twice: the shared hasher is cloned, never updated itself.
            assert_eq!(
                frame_crc(n as u32, &payload),
                crc32fast::hash(&whole),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn frame_round_trip_and_corruption() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, b"hello");
        assert_eq!(decode_frame(&buf, true), Frame::Record(b"hello", 13));
        assert_eq!(decode_frame(&buf[..3], true), Frame::Incomplete { need: 8 });
        assert_eq!(
            decode_frame(&buf[..10], true),
            Frame::Incomplete { need: 13 }
        );
        let mut bad = buf.clone();
        bad[9] ^= 0x01;
        assert_eq!(decode_frame(&bad, true), Frame::Corrupt);
        // Not verified (a frame this process checked before): taken as it is.
        assert_eq!(decode_frame(&bad, false), Frame::Record(&bad[8..], 13));
        assert_eq!(decode_frame(&[0u8; 8], true), Frame::Corrupt);
    }

    #[test]
    fn segment_names() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("x.seg"), None);
        assert_eq!(parse_segment_name("cursor"), None);
    }

    #[test]
    fn cursor_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_cursor(dir.path()).unwrap(), Ok(None));
        write_cursor(dir.path(), 7, 1234).unwrap();
        assert_eq!(read_cursor(dir.path()).unwrap(), Ok(Some((7, 1234))));
        let p = dir.path().join(CURSOR_FILE);
        let mut b = fs::read(&p).unwrap();
        b[5] ^= 0xff;
        fs::write(&p, &b).unwrap();
        assert!(read_cursor(dir.path()).unwrap().is_err());
    }
}
