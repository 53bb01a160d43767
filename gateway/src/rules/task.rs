//! The tokio task around the engine: readings in from the processor, a tick every second,
//! signals out to the clue pool. Ends when every readings sender is gone (the processor
//! stopped), after judging what is pending one last time.

use super::engine::Engine;
use crate::clue::signal::{ClueSender, ClueSignal};
use crate::reading::Reading;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Readings messages buffered between the processor and the rules (a slow engine slows the
/// processor visibly rather than growing memory).
pub const RULES_CAPACITY: usize = 1024;

/// What the processor sends the rules: one message's readings (`Processor::readings_out`).
pub type ReadingsSender = mpsc::Sender<Arc<[Reading]>>;

/// Runs the engine until `rx` closes.
pub async fn run(mut engine: Engine, mut rx: mpsc::Receiver<Arc<[Reading]>>, clues: ClueSender) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pool_gone = false;
    loop {
        let signals = tokio::select! {
            msg = rx.recv() => match msg {
                Some(readings) => engine.on_readings(&readings),
                None => break,
            },
            _ = tick.tick() => engine.on_tick(crate::clock::now_ms()),
        };
        send(&clues, signals, &mut pool_gone).await;
    }
    let last = engine.on_tick(crate::clock::now_ms());
    send(&clues, last, &mut pool_gone).await;
    debug!(stats = ?engine.stats(), "rules task stopped");
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

    #[tokio::test]
    async fn rules_task_forwards_signals_and_stops_when_readings_end() {
        let engine = Engine::new(crate::rules::default_rules(), &RulesSettings::default())
            .expect("default rules compile");
        let (tx, rx) = mpsc::channel(8);
        let (clue_tx, mut clue_rx) = mpsc::channel(8);
        let task = tokio::spawn(run(engine, rx, clue_tx));
        let t = at_local(2, 0);
        tx.send(cover("mh-1", true, t).into())
            .await
            .expect("task alive");
        drop(tx);
        let first = clue_rx.recv().await.expect("one signal");
        assert!(matches!(first, ClueSignal::Occurrence(ref e) if e.rule == "cover-open"));
        task.await.expect("task ends");
    }
}
