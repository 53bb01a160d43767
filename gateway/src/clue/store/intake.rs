//! Dedup intake planned in memory: what a batch of events does to the open clues, the audit
//! chain and the outbox, worked out once here for every backend. The backend then writes the
//! plan in as few statements as it can (PostgreSQL: one set-based statement per batch;
//! SQLite: cached prepared statements), instead of a read-modify-write per event.
//!
//! The database stays the record. A backend plans inside its writing transaction, after it
//! took its write lock (PostgreSQL: the `audit_head` row; SQLite: the database's write lock),
//! from the open clues it just read for the batch's keys and the chain head it just read, so
//! the plan starts from what is stored and nobody writes in between. The unique index on open
//! dedup keys still refuses a second open clue, should a plan ever be wrong.
//!
//! The rules are the ones the per-event path had: repetition never lowers the level and from
//! `raise_after` occurrences on raises it ([`level_after_repeat`]); a worse stage takes over
//! the kind; a repeat undoes an earlier clearance; each event is one occurrence and one audit
//! entry whose detail carries the clue's digest after that event.
//!
//! One problem, one clue also after a person disposed of it: when no clue is open for a key
//! but its newest clue was resolved, dismissed or closed while the condition never ended (the
//! rules never cleared it: `cleared_ms` is empty), a *worse* event (a higher level or another
//! stage, e.g. due -> overdue) reopens that clue and re-levels it (audit `reopen` by the pool,
//! from and to level, kind and status) instead of opening a second clue. A repeat at the same
//! level and stage, or any event after the condition was cleared, opens a new clue as before.
//!
//! An item may stand for a run of plain repeats the pool held in memory (`clue::repeats`):
//! its event is the run's last, its [`Run`] the count and the first time. It is planned as
//! that many copies of the event, one after another, but written as one occurrence row and
//! one audit entry (`repeat`, with `count` and `first_ms`; `level_raised`, `created` or
//! `reopen` when the stored clue was not what the pool guessed, so the clue always ends as
//! the events one by one would have left it).

use super::{StoreError, change_detail, level_after_repeat, state_of};
use crate::clue::audit::{AuditAction, AuditEntry, Head, LifecycleAction};
use crate::clue::audit_key::AuditKey;
use crate::clue::lifecycle::{self, Action, Status};
use crate::clue::model::{Clue, ClueChange, Escalation, NewEvidence};
use crate::clue::repeats::Run;
use crate::clue::signal::ClueEvent;
use serde_json::{Value, json};
use std::collections::HashMap;

/// One event to record: the event, its evidence (files already stored), its clue's deadline
/// should it open one.
pub(crate) type Item = (ClueEvent, Vec<NewEvidence>, i64);

/// A clue the batch touched, as it is after the batch's last event.
pub(crate) struct Touched {
    pub clue: Clue,
    /// Opened by this batch (to insert), not stored already (to update).
    pub is_new: bool,
    /// A disposed clue this batch reopened (its status, assignee, resolution and resolved /
    /// closed times are to be written too).
    pub reopened: bool,
}

/// What one event did.
pub(crate) struct Step {
    /// Index into [`Plan::clues`].
    pub clue: usize,
    pub occurrence_id: i64,
    /// Events the occurrence row stands for (1, or a run's count).
    pub count: i64,
    /// The run's first time (none: a single event).
    pub first_ms: Option<i64>,
    /// The audit entry to append (already chained).
    pub entry: AuditEntry,
    /// What the caller gets back and the platform is told.
    pub change: ClueChange,
}

/// The whole batch: clues to insert or update, and per event its occurrence and audit entry.
pub(crate) struct Plan {
    pub clues: Vec<Touched>,
    pub steps: Vec<Step>,
}

/// The distinct dedup keys of `items`, in first-seen order.
pub(crate) fn keys(items: &[Item]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .iter()
        .map(|(ev, _, _)| ev.dedup_key.as_str())
        .filter(|k| seen.insert(*k))
        .collect()
}

/// How many clues the batch opens, given the open clues stored for its `keys`.
pub(crate) fn new_clues(keys: &[&str], open: &[Clue]) -> usize {
    keys.len().saturating_sub(open.len())
}

/// What a batch is planned with besides its events: the store's settings and the time.
pub(crate) struct Context<'k> {
    /// Repetition raises the level from this many occurrences on (0: never).
    pub raise_after: i64,
    /// Seals the batch's audit entries (none: plain entries, see `clue::audit`).
    pub key: Option<&'k AuditKey>,
    pub now_ms: i64,
}

/// Whether `clue`, read as the newest clue of a key that has no open one, may be reopened by
/// a worse event: disposed by a person while its condition was never cleared.
pub(crate) fn reopenable(clue: &Clue) -> bool {
    !clue.status.is_open() && clue.cleared_ms.is_none()
}

/// Plans `items` (in order) from the stored `open` clues of their keys and the `disposed` ones
/// that a worse event reopens (see [`reopenable`]; others are ignored): new clues take their
/// ids from `clue_ids`, occurrences from `occurrence_ids` (one per item), entries are chained
/// (and sealed with `cx.key`) after `head`, which ends on the last. `runs` is empty (every
/// item one event) or gives each item its run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan(
    items: &[Item],
    runs: &[Run],
    open: Vec<Clue>,
    disposed: Vec<Clue>,
    clue_ids: impl IntoIterator<Item = i64>,
    occurrence_ids: impl IntoIterator<Item = i64>,
    head: &mut Head,
    cx: &Context<'_>,
) -> Result<Plan, StoreError> {
    let (raise_after, now_ms) = (cx.raise_after, cx.now_ms);
    let mut clue_ids = clue_ids.into_iter();
    let mut occurrence_ids = occurrence_ids.into_iter();
    let mut clues: Vec<Touched> = Vec::with_capacity(open.len());
    let mut by_key: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for clue in open {
        if by_key.insert(clue.dedup_key.clone(), clues.len()).is_some() {
            return Err(StoreError::Corrupt(format!(
                "two open clues for dedup key {}",
                clue.dedup_key
            )));
        }
        clues.push(Touched {
            clue,
            is_new: false,
            reopened: false,
        });
    }
    let mut disposed: HashMap<String, Clue> = disposed
        .into_iter()
        .filter(|c| reopenable(c) && !by_key.contains_key(&c.dedup_key))
        .map(|c| (c.dedup_key.clone(), c))
        .collect();
    if !runs.is_empty() && runs.len() != items.len() {
        return Err(StoreError::Corrupt(format!(
            "{} runs for {} items",
            runs.len(),
            items.len()
        )));
    }
    let mut steps = Vec::with_capacity(items.len());
    for (n, (ev, evidence, deadline_ms)) in items.iter().enumerate() {
        let run = runs.get(n).copied().unwrap_or_else(|| Run::one(ev.at_ms));
        let count = run.count.max(1);
        let occurrence_id = occurrence_ids
            .next()
            .ok_or_else(|| StoreError::Corrupt("too few occurrence ids for the batch".into()))?;
        let mut detail = json!({"occurrence_id": occurrence_id, "at_ms": ev.at_ms,
            "rule": ev.rule, "dedup_key": ev.dedup_key,
            "evidence_sha256": evidence.iter().map(|e| e.sha256.as_str()).collect::<Vec<_>>()});
        if count > 1
            && let Value::Object(m) = &mut detail
        {
            m.insert("count".into(), json!(count));
            m.insert("first_ms".into(), json!(run.first_ms));
        }
        // A dedup key belongs to the site of its clue. Both stores keep one open clue per key
        // (`clues_one_open_per_key`, which `clear`/`recover` by key rely on), so matching on
        // the key alone let an event of one site (a caller of `POST /api/v1/clues` chooses the
        // key freely) merge into, re-level or reopen another site's clue. The smallest correct
        // change keeps that index and refuses such an event: a key held open by another
        // site's clue is a conflict, and another site's disposed clue is never reopened (a new
        // clue is opened instead, which the index allows as the old one is not open).
        if let Some(&i) = by_key.get(ev.dedup_key.as_str())
            && clues[i].clue.subject.site != ev.subject.site
        {
            return Err(StoreError::Conflict(format!(
                "dedup key {} is in use by an open clue of another site",
                ev.dedup_key
            )));
        }
        let worse = |c: &Clue| {
            c.subject.site == ev.subject.site && (ev.level > c.level || ev.kind != c.kind)
        };
        let mut reopened = false;
        if !by_key.contains_key(ev.dedup_key.as_str())
            && disposed.get(ev.dedup_key.as_str()).is_some_and(worse)
        {
            let mut c = disposed
                .remove(ev.dedup_key.as_str())
                .ok_or_else(|| StoreError::Corrupt("disposed clue vanished".into()))?;
            let before = state_of(&c);
            let next = lifecycle::apply(
                &before,
                &Action::Reopen {
                    reason: format!("worse again: {} {}", ev.kind, ev.level.as_str()),
                },
                "pool",
                now_ms,
            )?;
            if let Value::Object(m) = &mut detail {
                m.insert("reopened_from".into(), json!(before.status));
            }
            c.status = next.status;
            c.assignee = next.assignee;
            c.resolved_ms = next.resolved_ms;
            c.closed_ms = next.closed_ms;
            c.resolution = next.resolution;
            by_key.insert(c.dedup_key.clone(), clues.len());
            clues.push(Touched {
                clue: c,
                is_new: false,
                reopened: true,
            });
            reopened = true;
        }
        let (index, action) = match by_key.get(ev.dedup_key.as_str()) {
            Some(&i) => {
                let c = &mut clues[i].clue;
                let was = c.level;
                let level = level_after_repeat(was, ev.level, c.occurrences, raise_after);
                let was_kind = c.kind.clone();
                if ev.level > was {
                    // One problem, one clue: a worse stage (due -> overdue) takes over the kind.
                    c.kind = ev.kind.clone();
                }
                c.level = level;
                c.occurrences += 1;
                repeat_rest(c, ev, count, raise_after);
                let level = c.level;
                c.last_seen_ms = c.last_seen_ms.max(ev.at_ms);
                c.first_seen_ms = c.first_seen_ms.min(ev.at_ms).min(run.first_ms);
                c.title = ev.title.clone();
                c.detail = ev.detail.clone();
                c.updated_ms = now_ms;
                // The condition is present again: an earlier recovery no longer holds.
                c.cleared_ms = None;
                c.cleared_note = None;
                if level > was || reopened {
                    if let Value::Object(m) = &mut detail {
                        m.insert("from_level".into(), json!(was));
                        m.insert("to_level".into(), json!(level));
                        m.insert("from_kind".into(), json!(was_kind));
                        m.insert("to_kind".into(), json!(c.kind));
                    }
                    if reopened {
                        (i, AuditAction::Lifecycle(LifecycleAction::Reopen))
                    } else {
                        (i, AuditAction::LevelRaised)
                    }
                } else if count > 1 {
                    (i, AuditAction::Repeat)
                } else {
                    (i, AuditAction::Occurrence)
                }
            }
            None => {
                let id = clue_ids
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("too few clue ids for the batch".into()))?;
                by_key.insert(ev.dedup_key.clone(), clues.len());
                let mut clue = opened(ev, id, *deadline_ms, now_ms);
                repeat_rest(&mut clue, ev, count, raise_after);
                clue.first_seen_ms = clue.first_seen_ms.min(run.first_ms);
                clues.push(Touched {
                    clue,
                    is_new: true,
                    reopened: false,
                });
                (clues.len() - 1, AuditAction::Created)
            }
        };
        let clue = clues[index].clue.clone();
        let detail = change_detail(&clue, detail);
        let entry = head.append(
            cx.key,
            now_ms,
            "pool",
            action.as_str(),
            Some(clue.id),
            detail,
        );
        // Subscribers and the platform are told of a run as of an occurrence, with its count.
        let event = match action {
            AuditAction::Repeat => AuditAction::Occurrence,
            a => a,
        };
        let change = ClueChange {
            event_id: entry.seq,
            event: event.as_str().to_string(),
            at_ms: now_ms,
            actor: "pool".to_string(),
            clue,
            count,
        };
        steps.push(Step {
            clue: index,
            occurrence_id,
            count,
            first_ms: (count > 1).then_some(run.first_ms),
            entry,
            change,
        });
    }
    Ok(Plan { clues, steps })
}

/// The events of a run after its first (`count` - 1 copies of `ev`) on `c`, which already
/// took the first: as one by one, but in one step. After the first the level is at least the
/// event's, so the kind no longer moves, and repetition raises the level at most once: as
/// `level_after_repeat` grows with the occurrences, at the run's last one if at all.
fn repeat_rest(c: &mut Clue, ev: &ClueEvent, count: i64, raise_after: i64) {
    if count > 1 {
        c.level = level_after_repeat(c.level, ev.level, c.occurrences + count - 2, raise_after);
        c.occurrences += count - 1;
    }
}

/// The clue `ev` opens, as a backend stores it and reads it back.
fn opened(ev: &ClueEvent, id: i64, deadline_ms: i64, now_ms: i64) -> Clue {
    Clue {
        id,
        rule: ev.rule.clone(),
        kind: ev.kind.clone(),
        level: ev.level,
        status: Status::New,
        subject: ev.subject.clone(),
        dedup_key: ev.dedup_key.clone(),
        title: ev.title.clone(),
        detail: ev.detail.clone(),
        department: ev.department.clone(),
        assisting: ev.assisting.clone(),
        assignee: None,
        resolution: None,
        first_seen_ms: ev.at_ms,
        last_seen_ms: ev.at_ms,
        occurrences: 1,
        created_ms: now_ms,
        updated_ms: now_ms,
        deadline_ms,
        escalation: Escalation::None,
        claimed_ms: None,
        resolved_ms: None,
        closed_ms: None,
        cleared_ms: None,
        cleared_note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::audit;
    use crate::clue::signal::{Level, Subject};

    fn cx(raise_after: i64, now_ms: i64) -> Context<'static> {
        Context {
            raise_after,
            key: None,
            now_ms,
        }
    }

    fn item(device: &str, level: Level, kind: &str, at_ms: i64) -> Item {
        let subject = Subject {
            site: "s1".into(),
            device: Some(device.into()),
            ..Default::default()
        };
        let ev = ClueEvent {
            rule: "r".into(),
            kind: kind.into(),
            level,
            dedup_key: ClueEvent::default_key("r", &subject),
            subject,
            at_ms,
            title: format!("t{at_ms}"),
            detail: json!({"at": at_ms}),
            evidence: vec![],
            department: None,
            assisting: Vec::new(),
        };
        (ev, vec![], 5_000)
    }

    #[test]
    fn a_batch_is_planned_as_its_events_one_after_another() {
        let items = vec![
            item("a", Level::Low, "due", 30),
            item("b", Level::Medium, "x", 10),
            item("a", Level::Low, "due", 20),
            item("a", Level::High, "overdue", 40),
        ];
        assert_eq!(keys(&items).len(), 2);
        let mut head = audit::Head::genesis();
        let p = plan(
            &items,
            &[],
            vec![],
            vec![],
            7..,
            100..,
            &mut head,
            &cx(3, 99),
        )
        .expect("plan");
        let actions: Vec<&str> = p.steps.iter().map(|s| s.change.event.as_str()).collect();
        assert_eq!(
            actions,
            ["created", "created", "occurrence", "level_raised"]
        );
        // New clues take ids in order of first appearance; one occurrence id per event.
        assert_eq!(
            p.clues.iter().map(|t| t.clue.id).collect::<Vec<_>>(),
            [7, 8]
        );
        assert!(p.clues.iter().all(|t| t.is_new));
        let occ: Vec<i64> = p.steps.iter().map(|s| s.occurrence_id).collect();
        assert_eq!(occ, [100, 101, 102, 103]);
        // Each change carries the clue as it was after that event.
        let a: Vec<(i64, Level)> = p
            .steps
            .iter()
            .filter(|s| s.clue == 0)
            .map(|s| (s.change.clue.occurrences, s.change.clue.level))
            .collect();
        assert_eq!(a, [(1, Level::Low), (2, Level::Low), (3, Level::High)]);
        let last = &p.clues[0].clue;
        assert_eq!((last.first_seen_ms, last.last_seen_ms), (20, 40));
        assert_eq!(last.kind, "overdue", "the worse stage takes over the kind");
        assert_eq!(p.steps[3].entry.detail["from_kind"], "due");
        // The entries chain on from the head, and each records its clue's digest then.
        let entries: Vec<_> = p.steps.iter().map(|s| s.entry.clone()).collect();
        assert!(audit::verify(entries).ok);
        assert_eq!(head.seq, 4);
        for s in &p.steps {
            assert_eq!(
                s.entry.detail["clue_sha256"],
                super::super::clue_digest(&s.change.clue)
            );
        }
    }

    /// A run of n plain repeats leaves the clue as the n events one by one do, in one step:
    /// one occurrence (with the count), one entry (`repeat`, or `level_raised` when the rise
    /// from repetition falls inside the run), the change an `occurrence` with the count.
    #[test]
    fn a_run_is_planned_as_its_events_one_by_one_but_written_once() {
        let first = vec![item("a", Level::Low, "due", 10)];
        let mut head = audit::Head::genesis();
        let stored = plan(&first, &[], vec![], vec![], 1.., 1.., &mut head, &cx(4, 1))
            .expect("plan")
            .clues[0]
            .clue
            .clone();
        for (count, raise_after, action) in [(2, 4, "repeat"), (5, 4, "level_raised")] {
            let mut last = item("a", Level::Low, "due", 40);
            last.0.title = "last".into();
            let singles: Vec<Item> = (0..count)
                .map(|i| {
                    if i == count - 1 {
                        last.clone()
                    } else {
                        item("a", Level::Low, "due", 20 + i)
                    }
                })
                .collect();
            let one_by_one = plan(
                &singles,
                &[],
                vec![stored.clone()],
                vec![],
                9..,
                2..,
                &mut head.clone(),
                &cx(raise_after, 2),
            )
            .expect("singles");
            let run = Run {
                count,
                first_ms: 20,
            };
            let mut h = head.clone();
            let p = plan(
                std::slice::from_ref(&last),
                &[run],
                vec![stored.clone()],
                vec![],
                9..,
                2..,
                &mut h,
                &cx(raise_after, 2),
            )
            .expect("run");
            let (a, b) = (&p.clues[0].clue, &one_by_one.clues[0].clue);
            assert_eq!(a, b, "a run of {count} ends as {count} events");
            assert_eq!(a.occurrences, 1 + count);
            assert_eq!((a.first_seen_ms, a.last_seen_ms), (10, 40));
            assert_eq!(p.steps.len(), 1);
            let step = &p.steps[0];
            assert_eq!((step.count, step.first_ms), (count, Some(20)));
            assert_eq!(step.entry.action, action);
            assert_eq!(step.entry.detail["count"], count);
            assert_eq!(step.entry.detail["first_ms"], 20);
            let expected = if action == "repeat" {
                "occurrence"
            } else {
                action
            };
            assert_eq!(
                (step.change.event.as_str(), step.change.count),
                (expected, count)
            );
            assert_eq!(h.seq, head.seq + 1, "one entry for the run");
        }
        // The stored clue gone (closed elsewhere): the run opens a new clue counting it all.
        let p = plan(
            std::slice::from_ref(&item("a", Level::Low, "due", 40)),
            &[Run {
                count: 3,
                first_ms: 20,
            }],
            vec![],
            vec![],
            9..,
            2..,
            &mut head.clone(),
            &cx(0, 2),
        )
        .expect("plan");
        let c = &p.clues[0].clue;
        assert!(p.clues[0].is_new);
        assert_eq!(
            (c.occurrences, c.first_seen_ms, c.last_seen_ms),
            (3, 20, 40)
        );
        assert_eq!(p.steps[0].entry.action, "created");
    }

    #[test]
    fn a_stored_open_clue_is_continued_and_a_second_one_for_a_key_is_refused() {
        let items = vec![item("a", Level::Medium, "k", 50)];
        let mut head = audit::Head::genesis();
        let first =
            plan(&items, &[], vec![], vec![], 1.., 1.., &mut head, &cx(0, 1)).expect("plan");
        let stored = first.clues[0].clue.clone();
        let mut head2 = head.clone();
        let next = plan(
            &items,
            &[],
            vec![stored.clone()],
            vec![],
            9..,
            2..,
            &mut head2,
            &cx(0, 2),
        )
        .expect("plan");
        assert!(!next.clues[0].is_new);
        assert_eq!(next.clues[0].clue.id, 1);
        assert_eq!(next.clues[0].clue.occurrences, 2);
        assert_eq!(next.steps[0].entry.prev_hash, head.hash);
        assert!(matches!(
            plan(
                &items,
                &[],
                vec![stored.clone(), stored],
                vec![],
                9..,
                2..,
                &mut head,
                &cx(0, 2)
            ),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn another_sites_clue_with_the_key_is_neither_continued_nor_reopened() {
        let theirs = item("a", Level::Medium, "k", 50);
        let mut head = audit::Head::genesis();
        let stored = plan(
            std::slice::from_ref(&theirs),
            &[],
            vec![],
            vec![],
            1..,
            1..,
            &mut head,
            &cx(0, 1),
        )
        .expect("plan")
        .clues[0]
            .clue
            .clone();
        // The same key, chosen by a caller of another site, worse.
        let (mut ev, evidence, deadline) = item("a", Level::High, "k2", 60);
        ev.subject.site = "s9".into();
        let forged = vec![(ev, evidence, deadline)];
        let open = plan(
            &forged,
            &[],
            vec![stored.clone()],
            vec![],
            9..,
            2..,
            &mut head.clone(),
            &cx(0, 2),
        );
        assert!(
            matches!(open, Err(StoreError::Conflict(_))),
            "open: refused"
        );
        let mut disposed = stored;
        disposed.status = Status::Closed;
        let p = plan(
            &forged,
            &[],
            vec![],
            vec![disposed],
            9..,
            2..,
            &mut head,
            &cx(0, 2),
        )
        .expect("plan");
        assert_eq!(p.clues.len(), 1);
        assert!(
            p.clues[0].is_new,
            "a new clue, the disposed one is not reopened"
        );
        assert_eq!(
            (p.clues[0].clue.id, p.clues[0].clue.subject.site.as_str()),
            (9, "s9")
        );
    }
}
