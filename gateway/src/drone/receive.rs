//! A file arriving in a flight: the checks against the flight (open for uploads, file count,
//! byte budget, one writer per file, the disk floor), the resumable write and, on the last
//! byte, the content check, the hash and the rename that make the file complete.
//!
//! The HTTP handler (`crate::http::drone::put_file`) checks the token and the flight's site,
//! reads the headers into a [`Put`] and maps the [`UploadError`] to its status; everything a
//! file's bytes decide happens here, so it is tested without a server (`tests` below).
//!
//! A `.part` file keeps what arrived: a client that lost its connection asks for the offset
//! (`FileState::received`) and continues with `Content-Range`. A plain PUT (no range) starts
//! the file again. A file over its limit, with a body longer than its range, or whose content
//! is refused on completion is deleted, so the next attempt starts from 0.

use super::DroneState;
use super::flight::{FileState, Flight, Status};
use super::upload::{self, UploadError};
use futures_util::Stream;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What the request says about the file, besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Put<'a> {
    /// `Content-Type` (empty when absent).
    pub content_type: &'a str,
    /// `Content-Length`, when present and a number.
    pub content_length: Option<u64>,
    /// The raw `Content-Range` header, when present.
    pub content_range: Option<&'a [u8]>,
}

/// Where a file stands after a PUT that was accepted.
#[derive(Debug, Clone)]
pub(crate) enum Received {
    /// More bytes are expected (a range short of its total): 200.
    Partial(FileState),
    /// The last byte arrived and the content was accepted: 201.
    Complete(FileState),
}

/// Removes the busy mark when the upload returns (even early).
struct BusyGuard(Arc<Mutex<HashSet<(u64, String)>>>, (u64, String));

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

impl DroneState {
    /// Writes `body` as file `name` of `flight` (which the caller may see), checked in the
    /// order the API has always answered: flight closed (409), bad name (400) or type (415),
    /// file already complete (409), too many files (413), the same file being written now
    /// (409), disk floor (507), bad `Content-Range` (400), over the file's or the flight's
    /// byte limit (413), a range that does not start at the stored offset (409 with
    /// `received`); then the write and, when the file is whole, the content check (422).
    pub(crate) async fn receive<S, E>(
        &self,
        flight: &Flight,
        name: &str,
        put: Put<'_>,
        body: S,
    ) -> Result<Received, UploadError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        let id = flight.id;
        if flight.status != Status::Uploading {
            return Err(UploadError::Conflict(format!(
                "flight {id} is {:?}: uploads are closed",
                flight.status
            )));
        }
        let kind = upload::kind_of(name)?;
        upload::check_content_type(kind, put.content_type)?;
        let limits = self.cfg.limits();
        let existing = flight.files.iter().find(|f| f.name == name).cloned();
        if existing.as_ref().is_some_and(|f| f.complete) {
            return Err(UploadError::Conflict(format!("{name} is already complete")));
        }
        if existing.is_none() && flight.files.len() >= limits.max_files {
            return Err(UploadError::TooLarge(format!(
                "a flight holds at most {} files",
                limits.max_files
            )));
        }
        let key = (id, name.to_string());
        if !self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            return Err(UploadError::Conflict(format!(
                "{name} is being uploaded now"
            )));
        }
        let _guard = BusyGuard(self.busy.clone(), key);
        let dir = self.flights.dir(id);
        let part = upload::part_path(&dir, name);
        // The flight's other files count against its byte limit: this file gets what is left.
        let others: u64 = flight
            .files
            .iter()
            .filter(|f| f.name != name)
            .map(|f| f.received)
            .sum();
        let flight_left = limits.max_flight_bytes.saturating_sub(others);
        let max = limits.max_bytes(kind).min(flight_left);
        // Footage must not fill the disk that holds the evidence, the outbox and the audit
        // chain (each refusal is logged by `check_floor`).
        crate::disk::check_floor(
            &dir,
            put.content_length.unwrap_or(0),
            limits.min_free_bytes,
            "drone.min_free_mb",
        )
        .map_err(|e| UploadError::DiskFloor(e.to_string()))?;
        let range = match put.content_range {
            None => None,
            Some(v) => Some(
                // Visible ASCII only, as `HeaderValue::to_str` reads it.
                std::str::from_utf8(v)
                    .ok()
                    .filter(|v| v.is_ascii())
                    .and_then(|v| upload::parse_content_range(v).ok())
                    .ok_or_else(|| {
                        UploadError::BadRange(
                            "Content-Range: expected bytes START-END/TOTAL".into(),
                        )
                    })?,
            ),
        };
        let received = tokio::fs::metadata(&part)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let declared_total = range.and_then(|r| r.total);
        if declared_total.is_some_and(|t| t > max) || put.content_length.is_some_and(|l| l > max) {
            return Err(UploadError::TooLarge(if max < limits.max_bytes(kind) {
                format!(
                    "{name}: over the flight's byte limit ({} bytes for all its files, {flight_left} left)",
                    limits.max_flight_bytes
                )
            } else {
                format!("{name}: over the {max} byte limit for this kind of file")
            }));
        }
        match range {
            Some(r) if r.start != received => {
                return Err(UploadError::Offset {
                    start: r.start,
                    received,
                });
            }
            Some(_) => {}
            // A plain PUT replaces whatever partial file was there.
            None => {
                if let Err(e) = tokio::fs::remove_file(&part).await
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(UploadError::from(e));
                }
            }
        }
        let expect = range.map(|r| r.end - r.start + 1);
        let written = upload::append(&part, body, max, expect).await;
        let received = tokio::fs::metadata(&part)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let mut state = FileState {
            name: name.to_string(),
            kind,
            received,
            total: declared_total.or(existing.and_then(|e| e.total)),
            complete: false,
            sha256: None,
            expired_ms: None,
        };
        if let Err(e) = written {
            if matches!(e, UploadError::TooLarge(_) | UploadError::BadRange(_)) {
                let _ = tokio::fs::remove_file(&part).await;
                state.received = 0;
            }
            self.record(id, state);
            return Err(e);
        }
        let done = match range {
            None => true,
            Some(r) => r.total.is_some_and(|t| received == t),
        };
        if !done {
            self.record(id, state.clone());
            return Ok(Received::Partial(state));
        }
        let final_path = dir.join(name);
        let check = {
            let part = part.clone();
            tokio::task::spawn_blocking(move || {
                upload::verify(&part, kind, &limits)?;
                Ok::<_, UploadError>(upload::sha256_file(&part)?)
            })
            .await
        };
        match check {
            Ok(Ok(sha)) => {
                tokio::fs::rename(&part, &final_path).await?;
                state.complete = true;
                state.total = Some(received);
                state.sha256 = Some(sha);
                self.record(id, state.clone());
                Ok(Received::Complete(state))
            }
            Ok(Err(e)) => {
                let _ = tokio::fs::remove_file(&part).await;
                state.received = 0;
                self.record(id, state);
                tracing::warn!(flight = id, file = %name, error = %e, "upload rejected");
                Err(e)
            }
            Err(e) => Err(UploadError::Failed(format!("check: {e}"))),
        }
    }

    /// Records a file's state in the flight (a rejected empty file is dropped from the list).
    fn record(&self, id: u64, st: FileState) {
        self.flights.update(id, true, |f| {
            f.files.retain(|x| x.name != st.name);
            if st.received > 0 || st.complete {
                f.files.push(st);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drone::config::DroneConfig;
    use crate::drone::flight::FlightStore;
    use crate::drone::tasks::TaskStore;
    use bytes::Bytes;

    /// A drone state over a temporary folder, with `cfg` (no disk floor) and one open flight.
    fn state(cfg: DroneConfig) -> (tempfile::TempDir, DroneState, u64) {
        let dir = tempfile::tempdir().expect("tmp");
        let flights = FlightStore::open(dir.path().join("flights")).expect("flights");
        let (queue, _rx) = tokio::sync::mpsc::channel(1);
        let s = DroneState::new(
            DroneConfig {
                min_free_mb: 0,
                ..cfg
            },
            flights,
            TaskStore::memory(),
            queue,
            Default::default(),
        );
        let f = s.flights.create("s1".into(), None, "op".into(), 0);
        std::fs::create_dir_all(s.flights.dir(f.id)).expect("flight dir");
        (dir, s, f.id)
    }

    fn flight(s: &DroneState, id: u64) -> Flight {
        s.flights.get(id).expect("flight")
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + use<> {
        let v: Vec<_> = parts
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        futures_util::stream::iter(v)
    }

    fn jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(32, 24, image::Rgb([10, 200, 30]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .expect("encode");
        out
    }

    fn jpeg_put() -> Put<'static> {
        Put {
            content_type: "image/jpeg",
            ..Put::default()
        }
    }

    #[tokio::test]
    async fn an_interrupted_upload_keeps_its_bytes_and_resumes_to_complete() {
        let (_d, s, id) = state(DroneConfig::default());
        let img = jpeg();
        let (a, b) = img.split_at(img.len() / 2);
        let total = img.len() as u64;
        let range = format!("bytes 0-{}/{total}", total - 1);
        // The connection drops after the first half.
        let cut = futures_util::stream::iter(vec![
            Ok(Bytes::copy_from_slice(a)),
            Err(std::io::Error::other("connection reset")),
        ]);
        let put = Put {
            content_range: Some(range.as_bytes()),
            ..jpeg_put()
        };
        let e = s
            .receive(&flight(&s, id), "DJI_0001.JPG", put, cut)
            .await
            .expect_err("cut");
        assert!(matches!(e, UploadError::Body(_)), "{e}");
        let f = flight(&s, id);
        assert_eq!(f.files.len(), 1);
        assert_eq!(f.files[0].received, a.len() as u64);
        assert_eq!(f.files[0].total, Some(total));
        assert!(!f.files[0].complete);
        // A range that does not start at the stored offset is told where to resume.
        let wrong = "bytes 0-9/99".to_string();
        let put = Put {
            content_range: Some(wrong.as_bytes()),
            ..jpeg_put()
        };
        match s.receive(&f, "DJI_0001.JPG", put, chunks(&[b"x"])).await {
            Err(UploadError::Offset { start: 0, received }) => {
                assert_eq!(received, a.len() as u64)
            }
            other => panic!("{other:?}"),
        }
        // The rest from there completes it, hashed and renamed.
        let rest = format!("bytes {}-{}/{total}", a.len(), total - 1);
        let put = Put {
            content_range: Some(rest.as_bytes()),
            ..jpeg_put()
        };
        let Received::Complete(st) = s
            .receive(&flight(&s, id), "DJI_0001.JPG", put, chunks(&[b]))
            .await
            .expect("rest")
        else {
            panic!("not complete")
        };
        assert_eq!((st.received, st.total), (total, Some(total)));
        assert_eq!(st.sha256.as_deref().map(str::len), Some(64));
        let dir = s.flights.dir(id);
        assert_eq!(std::fs::read(dir.join("DJI_0001.JPG")).expect("file"), img);
        assert!(!upload::part_path(&dir, "DJI_0001.JPG").exists());
    }

    #[tokio::test]
    async fn a_truncated_jpeg_is_refused_on_its_last_byte_and_forgotten() {
        let (_d, s, id) = state(DroneConfig::default());
        let img = jpeg();
        let cut = &img[..img.len() - 40];
        let e = s
            .receive(&flight(&s, id), "a.jpg", jpeg_put(), chunks(&[cut]))
            .await
            .expect_err("truncated");
        assert!(matches!(e, UploadError::Rejected(_)), "{e}");
        assert!(flight(&s, id).files.is_empty(), "a refused file is dropped");
        let dir = s.flights.dir(id);
        assert!(!dir.join("a.jpg").exists());
        assert!(!upload::part_path(&dir, "a.jpg").exists());
    }

    #[tokio::test]
    async fn oversized_files_are_refused_before_and_while_writing() {
        let cfg = DroneConfig {
            max_still_mb: 1,
            max_flight_mb: 1,
            ..DroneConfig::default()
        };
        let (_d, s, id) = state(cfg);
        // Declared too large: refused before a byte is written.
        let put = Put {
            content_length: Some((1 << 20) + 1),
            ..jpeg_put()
        };
        let e = s
            .receive(&flight(&s, id), "big.jpg", put, chunks(&[b"x"]))
            .await
            .expect_err("declared");
        assert!(
            matches!(&e, UploadError::TooLarge(m) if m.contains("byte limit for this kind")),
            "{e}"
        );
        assert!(!upload::part_path(&s.flights.dir(id), "big.jpg").exists());
        // Undeclared: stopped at the limit, and what was written is deleted.
        let mib = vec![0u8; 1 << 19];
        let e = s
            .receive(
                &flight(&s, id),
                "big.jpg",
                jpeg_put(),
                chunks(&[&mib, &mib, b"x"]),
            )
            .await
            .expect_err("streamed");
        assert!(matches!(e, UploadError::TooLarge(_)), "{e}");
        assert!(!upload::part_path(&s.flights.dir(id), "big.jpg").exists());
        assert!(flight(&s, id).files.is_empty());
        // The flight's budget counts its other files: a partial half leaves half for the rest.
        let range = format!("bytes 0-{}/{}", (1 << 19) - 1, 1 << 20);
        let put = Put {
            content_range: Some(range.as_bytes()),
            ..jpeg_put()
        };
        let r = s
            .receive(&flight(&s, id), "one.jpg", put, chunks(&[&mib]))
            .await
            .expect("half");
        assert!(matches!(r, Received::Partial(_)));
        let put = Put {
            content_length: Some((1 << 19) + 1),
            ..jpeg_put()
        };
        let e = s
            .receive(&flight(&s, id), "two.jpg", put, chunks(&[b"x"]))
            .await
            .expect_err("flight budget");
        assert!(
            matches!(&e, UploadError::TooLarge(m) if m.contains("flight's byte limit")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_path_in_the_name_is_refused_and_nothing_leaves_the_flight_folder() {
        let (d, s, id) = state(DroneConfig::default());
        for name in [
            "../escape.jpg",
            "../../flights/x.jpg",
            "a/b.jpg",
            ".hidden.jpg",
        ] {
            let e = s
                .receive(&flight(&s, id), name, jpeg_put(), chunks(&[&jpeg()]))
                .await
                .expect_err(name);
            assert!(matches!(e, UploadError::BadName(_)), "{name}: {e}");
        }
        assert!(!d.path().join("flights/escape.jpg").exists());
        assert!(!d.path().join("flights/escape.jpg.part").exists());
        assert!(!d.path().join("escape.jpg.part").exists());
        assert!(flight(&s, id).files.is_empty());
        // An unknown extension or a type that does not fit the name is 415, not written.
        let e = s
            .receive(&flight(&s, id), "run.sh", jpeg_put(), chunks(&[b"x"]))
            .await
            .expect_err("sh");
        assert!(matches!(e, UploadError::UnsupportedType(_)), "{e}");
        let put = Put {
            content_type: "text/html",
            ..Put::default()
        };
        let e = s
            .receive(&flight(&s, id), "a.jpg", put, chunks(&[b"x"]))
            .await
            .expect_err("html");
        assert!(matches!(e, UploadError::UnsupportedType(_)), "{e}");
    }

    #[tokio::test]
    async fn a_retry_of_the_same_file_restarts_a_partial_and_refuses_a_complete_one() {
        let (_d, s, id) = state(DroneConfig::default());
        let img = jpeg();
        // A partial left by an earlier attempt.
        let range = format!("bytes 0-9/{}", img.len());
        let put = Put {
            content_range: Some(range.as_bytes()),
            ..jpeg_put()
        };
        s.receive(&flight(&s, id), "a.jpg", put, chunks(&[&img[..10]]))
            .await
            .expect("partial");
        // A plain PUT of the whole file starts over: no doubled bytes.
        let r = s
            .receive(&flight(&s, id), "a.jpg", jpeg_put(), chunks(&[&img]))
            .await
            .expect("retry");
        assert!(matches!(&r, Received::Complete(st) if st.received == img.len() as u64));
        assert_eq!(flight(&s, id).files.len(), 1);
        // Once complete, the same file again is a conflict and the stored one stays.
        let e = s
            .receive(&flight(&s, id), "a.jpg", jpeg_put(), chunks(&[b"other"]))
            .await
            .expect_err("complete");
        assert!(
            matches!(&e, UploadError::Conflict(m) if m.contains("already complete")),
            "{e}"
        );
        assert_eq!(
            std::fs::read(s.flights.dir(id).join("a.jpg")).expect("kept"),
            img
        );
        // While one PUT of a file is running, a second one is refused.
        s.busy
            .lock()
            .expect("busy")
            .insert((id, "b.jpg".to_string()));
        let e = s
            .receive(&flight(&s, id), "b.jpg", jpeg_put(), chunks(&[&img]))
            .await
            .expect_err("busy");
        assert!(
            matches!(&e, UploadError::Conflict(m) if m.contains("being uploaded now")),
            "{e}"
        );
        // A flight that is no longer uploading takes nothing.
        s.flights.update(id, false, |f| f.status = Status::Queued);
        let e = s
            .receive(&flight(&s, id), "c.jpg", jpeg_put(), chunks(&[&img]))
            .await
            .expect_err("closed");
        assert!(
            matches!(&e, UploadError::Conflict(m) if m.contains("uploads are closed")),
            "{e}"
        );
    }
}
