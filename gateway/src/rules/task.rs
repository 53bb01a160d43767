//! The tokio task around the engine: readings in from the processor, a tick every second,
//! signals out to the clue pool. Ends when every readings sender is gone (the processor
//! stopped), after judging what is pending one last time.

use super::config::{RuleConfig, RulesSettings};
use super::engine::{Ahead, Engine};
use crate::clue::signal::{ClueSender, ClueSignal};
use crate::pipeline::ReadingsBatch;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Batches buffered between the processor and the rules (a slow engine slows the processor
/// visibly rather than growing memory). A batch holds up to `pipeline::READINGS_CHUNK` (256)
/// messages, so this is the 1,024 single messages the channel held before the hand-off was
/// batched.
pub(crate) const RULES_CAPACITY: usize = 4;

/// What the processor sends the rules: the readings of one batch, message by message
/// (`Processor::readings_out`).
pub(crate) type ReadingsSender = mpsc::Sender<ReadingsBatch>;

/// New rules and settings for a running engine (e.g. after the config file changed).
pub(crate) type RulesUpdate = (Vec<RuleConfig>, RulesSettings);

/// How often the state is saved while running (a crash loses at most this much).
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Messages ahead of the one being judged at which the engine is asked to prefetch each stage
/// of a message's state ([`Engine::prefetch`]): far enough for the loads to arrive, near
/// enough that they are still in cache (issue 24).
const PREFETCH: [(usize, Ahead); 6] = [
    (6, Ahead::Name),
    (5, Ahead::Slots),
    (4, Ahead::States),
    (3, Ahead::Series),
    (2, Ahead::Parts),
    (1, Ahead::Deep),
];

/// Runs the engine until `rx` closes, applying every rules update sent on `reload` without
/// losing the state of the rules that did not change (an invalid update is logged and the
/// running rules stay), and saving the engine's state to `state_path` every minute and when it
/// stops (see `snapshot`).
pub(crate) async fn run_persistent(
    mut engine: Engine,
    mut rx: mpsc::Receiver<ReadingsBatch>,
    clues: ClueSender,
    mut reload: watch::Receiver<Option<RulesUpdate>>,
    state_path: Option<std::path::PathBuf>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut save = tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pool_gone = false;
    let mut reload_open = true;
    loop {
        let signals = tokio::select! {
            msg = rx.recv() => match msg {
                Some(batch) => {
                    // Judged message by message (a message's readings are judged together);
                    // the signals go out in the same order as before batching.
                    let mut signals = Vec::new();
                    for (i, readings) in batch.iter().enumerate() {
                        for (ahead, stage) in PREFETCH {
                            if let Some(m) = batch.get(i + ahead) {
                                engine.prefetch(m, stage);
                            }
                        }
                        signals.extend(engine.on_readings(readings));
                    }
                    signals
                }
                None => break,
            },
            _ = tick.tick() => engine.on_tick(crate::clock::now_ms()),
            _ = save.tick(), if state_path.is_some() => {
                if let Some(path) = &state_path {
                    // Written from the live state (the engine waits meanwhile, as it did
                    // while the state was copied); made durable off this task.
                    let written = blocking(|| {
                        super::snapshot::write(path, |w| engine.write_snapshot(w))
                    });
                    let saved = match written {
                        Ok(w) => tokio::task::spawn_blocking(move || w.commit())
                            .await
                            .unwrap_or(Ok(())),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = saved {
                        warn!(error = %e, "rule state not saved");
                    }
                }
                Vec::new()
            }
            changed = reload.changed(), if reload_open => {
                if changed.is_err() {
                    reload_open = false;
                } else if let Some((rules, settings)) = reload.borrow_and_update().clone() {
                    match engine.reload(rules, &settings) {
                        Ok(()) => info!(rules = engine.rule_count(), "rules reloaded"),
                        Err(e) => warn!(error = %e, "rules reload rejected; keeping the running rules"),
                    }
                }
                Vec::new()
            }
        };
        send(&clues, signals, &mut pool_gone).await;
    }
    let last = engine.on_tick(crate::clock::now_ms());
    send(&clues, last, &mut pool_gone).await;
    if let Some(path) = &state_path {
        let saved = super::snapshot::write(path, |w| engine.write_snapshot(w))
            .and_then(super::snapshot::Written::commit);
        match saved {
            Ok(()) => info!(path = %path.display(), "rule state saved"),
            Err(e) => warn!(error = %e, "rule state not saved"),
        }
    }
    debug!(stats = ?engine.stats(), "rules task stopped");
}

/// Runs blocking work (file writes) on this task: on the multi-threaded runtime its other
/// tasks move to another worker meanwhile.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

async fn send(clues: &ClueSender, signals: Vec<ClueSignal>, pool_gone: &mut bool) {
    for s in signals {
        if clues.send(s).await.is_err() {
            if !*pool_gone {
                warn!("clue pool is gone; rule signals are dropped");
                *pool_gone = true;
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::config::RulesSettings;
    use crate::rules::tests::{at_local, cover};

    /// The periodic save writes on the engine's task through `blocking`, on either runtime
    /// (`block_in_place` alone panics on the current-thread one the tests use).
    #[test]
    fn snapshots_are_written_on_either_runtime() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(super::super::snapshot::FILE_NAME);
        let mut engine = Engine::new(crate::rules::default_rules(), &RulesSettings::default())
            .expect("default rules compile");
        let t = at_local(2, 0);
        engine.on_readings(&cover("mh-1", true, t));
        engine.on_readings(&cover("mh-1", true, t + 60_000));
        let save = || {
            blocking(|| super::super::snapshot::write(&path, |w| engine.write_snapshot(w)))
                .and_then(super::super::snapshot::Written::commit)
        };
        for multi in [true, false] {
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread().build()
            } else {
                tokio::runtime::Builder::new_current_thread().build()
            }
            .expect("runtime");
            rt.block_on(async { save() }).expect("saved");
            let snap = super::super::snapshot::Snapshot::load(&path)
                .expect("readable")
                .expect("there");
            assert_eq!(snap.state, engine.snapshot().state);
            Engine::restore(
                crate::rules::default_rules(),
                &RulesSettings::default(),
                snap,
            )
            .expect("restores");
        }
    }

    #[tokio::test]
    async fn rules_task_forwards_signals_and_stops_when_readings_end() {
        let engine = Engine::new(crate::rules::default_rules(), &RulesSettings::default())
            .expect("default rules compile");
        let (tx, rx) = mpsc::channel(8);
        let (clue_tx, mut clue_rx) = mpsc::channel(8);
        let (_keep, reload) = watch::channel(None);
        let task = tokio::spawn(run_persistent(engine, rx, clue_tx, reload, None));
        let t = at_local(2, 0);
        // Open, and still open a minute later: past the rule's 30 s confirmation.
        for at in [t, t + 60_000] {
            tx.send(vec![cover("mh-1", true, at)].into())
                .await
                .expect("task alive");
        }
        drop(tx);
        // The channel closes when the task ends (bounded: two readings, then no sender).
        let mut got = Vec::new();
        while let Some(sig) = clue_rx.recv().await {
            got.push(sig);
        }
        task.await.expect("task ends");
        assert!(
            got.iter()
                .any(|s| matches!(s, ClueSignal::Occurrence(e) if e.rule == "cover-open")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn rules_task_reloads_rules_without_restart() {
        let engine = Engine::new(crate::rules::default_rules(), &RulesSettings::default())
            .expect("default rules compile");
        let (tx, rx) = mpsc::channel(8);
        let (clue_tx, mut clue_rx) = mpsc::channel(8);
        let (reload_tx, reload_rx) = watch::channel(None);
        let task = tokio::spawn(run_persistent(engine, rx, clue_tx, reload_rx, None));
        // Only the cover rule, renamed: the old id's state is dropped, the new one raises.
        let mut rule = crate::rules::default_rules()
            .into_iter()
            .find(|r| r.id == "cover-open")
            .expect("default cover rule");
        rule.id = "cover-open-v2".into();
        reload_tx
            .send(Some((vec![rule], RulesSettings::default())))
            .expect("task alive");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(vec![cover("mh-1", true, at_local(2, 0))].into())
            .await
            .expect("task alive");
        drop(tx);
        let first = clue_rx.recv().await.expect("one signal");
        assert!(matches!(first, ClueSignal::Occurrence(ref e) if e.rule == "cover-open-v2"));
        task.await.expect("task ends");
    }
}
