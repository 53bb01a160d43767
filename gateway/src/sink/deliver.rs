//! Delivery: drains the outbox into the database, batch by batch, in order.
//!
//! A batch is committed (removed from the outbox) only after the writer reports every line
//! accepted or dead-lettered, so a crash or an outage replays it later (at-least-once; points
//! are idempotent, so a replay overwrites rather than duplicates). Batches are cut by line
//! count and bytes; a partial batch waits at most `flush_interval_ms` for company.

use crate::outbox::Outbox;
use crate::sink::influx::InfluxConfig;
use crate::sink::influx::InfluxWriter;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// How often a partial batch is re-read while it waits for the flush deadline.
const POLL: Duration = Duration::from_millis(50);

pub(crate) async fn run(
    outbox: Arc<Outbox>,
    writer: InfluxWriter,
    cfg: InfluxConfig,
    cancel: CancellationToken,
) {
    let flush = Duration::from_millis(cfg.flush_interval_ms);
    let mut partial_since: Option<Instant> = None;
    while !cancel.is_cancelled() {
        let ob = outbox.clone();
        let (max_lines, max_bytes) = (cfg.batch_max_lines, cfg.batch_max_bytes);
        let batch =
            match tokio::task::spawn_blocking(move || ob.read_batch(max_lines, max_bytes)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    error!(error = %e, "reading the outbox failed; retrying");
                    sleep_or_cancel(&cancel, Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    error!(error = %e, "outbox read task failed");
                    sleep_or_cancel(&cancel, Duration::from_secs(1)).await;
                    continue;
                }
            };
        if batch.records.is_empty() {
            partial_since = None;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = outbox.wait_for_data() => {},
                // Belt and braces against a missed notification.
                _ = tokio::time::sleep(flush) => {},
            }
            continue;
        }
        let bytes: usize = batch.records.iter().map(|r| r.len() + 1).sum();
        let full = batch.records.len() >= max_lines || bytes + 1024 >= max_bytes;
        if !full {
            let since = *partial_since.get_or_insert_with(Instant::now);
            if since.elapsed() < flush {
                sleep_or_cancel(&cancel, POLL.min(flush)).await;
                continue;
            }
        }
        partial_since = None;
        match writer.write_batch(&batch.records, &cancel).await {
            Ok(_) => {
                let ob = outbox.clone();
                let end = batch.end.clone();
                match tokio::task::spawn_blocking(move || ob.commit(&end)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        // The batch will be written again after a restart: harmless.
                        error!(error = %e, "committing the outbox cursor failed");
                        sleep_or_cancel(&cancel, Duration::from_secs(1)).await;
                    }
                    Err(e) => error!(error = %e, "outbox commit task failed"),
                }
            }
            Err(e) => {
                if !cancel.is_cancelled() {
                    warn!(error = %e, "batch not delivered; retrying");
                    sleep_or_cancel(&cancel, Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {},
        _ = tokio::time::sleep(d) => {},
    }
}
