//! The SQLite schema: migrations applied in order, the version kept in `PRAGMA user_version`.
//! A database newer than this gateway is refused rather than guessed at.

use crate::clue::store::StoreError;
use rusqlite::Connection;

pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE clues (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    status TEXT NOT NULL,
    open INTEGER NOT NULL,
    site TEXT NOT NULL,
    device TEXT,
    plate TEXT,
    lat REAL,
    lon REAL,
    subject_key TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    department TEXT,
    assignee TEXT,
    resolution TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    escalation TEXT NOT NULL,
    claimed_ms INTEGER,
    resolved_ms INTEGER,
    closed_ms INTEGER,
    cleared_ms INTEGER,
    cleared_note TEXT
);
CREATE UNIQUE INDEX clues_one_open_per_key ON clues(dedup_key) WHERE open = 1;
CREATE INDEX clues_site_status ON clues(site, status);
CREATE INDEX clues_subject ON clues(subject_key, kind);
CREATE INDEX clues_open_deadline ON clues(open, deadline_ms);
CREATE TABLE occurrences (
    id INTEGER PRIMARY KEY,
    clue_id INTEGER NOT NULL REFERENCES clues(id),
    at_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX occurrences_clue ON occurrences(clue_id, id);
CREATE TABLE evidence (
    id INTEGER PRIMARY KEY,
    clue_id INTEGER NOT NULL REFERENCES clues(id),
    occurrence_id INTEGER NOT NULL REFERENCES occurrences(id),
    kind TEXT NOT NULL,
    name TEXT,
    content_type TEXT,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    body TEXT,
    at_ms INTEGER NOT NULL
);
CREATE INDEX evidence_clue ON evidence(clue_id, id);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    clue_id INTEGER,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_clue ON audit(clue_id, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    sites TEXT NOT NULL,
    name TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_ms INTEGER
);
CREATE INDEX outbound_pending ON outbound(channel, id) WHERE delivered_ms IS NULL;
"#,
    // 2: tokens can be revoked.
    "ALTER TABLE tokens ADD COLUMN revoked_ms INTEGER;",
    // 3: oversight. Personal-data regions and retention tombstones on evidence, duplicate-act
    // links, supervision warnings. Kept out of the clue row so its audited digest is unchanged.
    r#"
ALTER TABLE evidence ADD COLUMN regions TEXT;
ALTER TABLE evidence ADD COLUMN purged_ms INTEGER;
ALTER TABLE evidence ADD COLUMN purge_reason TEXT;
CREATE INDEX evidence_sha ON evidence(sha256);
CREATE TABLE clue_links (
    linked_id INTEGER PRIMARY KEY REFERENCES clues(id),
    lead_id INTEGER NOT NULL REFERENCES clues(id),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX clue_links_lead ON clue_links(lead_id);
CREATE TABLE oversight_warnings (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    level TEXT NOT NULL,
    site TEXT,
    clue_id INTEGER,
    concerns TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX oversight_warnings_site ON oversight_warnings(site, updated_ms);
"#,
    // 4: the subject's shop and owner from the device registry (NULL for older clues, which
    // their audited digests expect).
    r#"
ALTER TABLE clues ADD COLUMN shop TEXT;
ALTER TABLE clues ADD COLUMN owner TEXT;
"#,
    // 5: parking stays that got a "please move" notice, and their outcome (`clue::stays`).
    r#"
CREATE TABLE parking_stays (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    plate TEXT,
    first_ms INTEGER NOT NULL,
    notice_ms INTEGER NOT NULL,
    dwell_s INTEGER NOT NULL,
    remaining_s INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    outcome_ms INTEGER,
    clue_key TEXT,
    left_ms INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE INDEX parking_stays_notice ON parking_stays(site, camera, notice_ms);
"#,
    // 6: decisions on clues (`clue::decision`), with the catalogue check made when recorded.
    r#"
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    clue_id INTEGER NOT NULL REFERENCES clues(id),
    site TEXT NOT NULL,
    matter TEXT NOT NULL,
    catalogue_version TEXT NOT NULL,
    band TEXT NOT NULL,
    applicable_band TEXT,
    penalty INTEGER NOT NULL,
    outside_band INTEGER NOT NULL,
    leniency_applied TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX decisions_site ON decisions(site, id);
"#,
    // 7: the shop a shop-front notice asked to take its goods inside (NULL: a parking stay).
    r#"
ALTER TABLE parking_stays ADD COLUMN shop TEXT;
"#,
    // 8: the one device a device token speaks for (NULL: every device of its sites).
    r#"
ALTER TABLE tokens ADD COLUMN device TEXT;
"#,
    // 9: the newest clue of a dedup key, open or not (a worse event reopens a disposed one).
    r#"
CREATE INDEX clues_key ON clues(dedup_key, id);
"#,
    // 10: the list's order (open first, then level, then newest) as an index, so a page of a
    // large pool is read in order instead of sorting every clue of the scope. The expression
    // must stay the same text as `LEVEL_RANK` for the planner to use it.
    r#"
CREATE INDEX clues_list_order ON clues(open, (CASE level WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END), last_seen_ms, id);
"#,
    // 11: supervision notices made from warnings (`clue::supervision`), at most one open per
    // warning, and the audit entries of each (its history).
    r#"
CREATE TABLE supervision_notices (
    id INTEGER PRIMARY KEY,
    warning_id INTEGER NOT NULL REFERENCES oversight_warnings(id),
    model TEXT NOT NULL,
    site TEXT,
    clue_id INTEGER,
    concerns TEXT NOT NULL,
    message TEXT NOT NULL,
    unit TEXT NOT NULL,
    escalated_to TEXT,
    state TEXT NOT NULL,
    level TEXT NOT NULL,
    note TEXT NOT NULL,
    statement TEXT,
    deadline_ms INTEGER NOT NULL,
    span_start_ms INTEGER NOT NULL,
    issued_by TEXT NOT NULL,
    issued_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX supervision_notices_one_open ON supervision_notices(warning_id)
    WHERE state <> 'closed';
CREATE INDEX supervision_notices_owed ON supervision_notices(state, deadline_ms);
CREATE TABLE supervision_notice_audit (
    notice_id INTEGER NOT NULL REFERENCES supervision_notices(id),
    seq INTEGER NOT NULL,
    PRIMARY KEY (notice_id, seq)
);
"#,
    // 12: the plate a notice's warning names, so lesser roles get it masked as on warnings.
    r#"
ALTER TABLE supervision_notices ADD COLUMN plate TEXT;
"#,
    // 13: muck-truck permits written through the API (the permit as JSON, by its plate).
    r#"
CREATE TABLE muck_permits (
    plate TEXT PRIMARY KEY,
    permit TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
"#,
    // 14: organisation (`clue::org`): the departments assisting a clue's lead, and the unit
    // and department a token is scoped to (NULL: its sites only, every department).
    r#"
ALTER TABLE clues ADD COLUMN assisting TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tokens ADD COLUMN unit TEXT;
ALTER TABLE tokens ADD COLUMN department TEXT;
"#,
    // 15: a device token bound to no camera on purpose (`token create --relay`); 0 for every
    // token from before, the unbound device tokens among them issued without that choice.
    "ALTER TABLE tokens ADD COLUMN relay INTEGER NOT NULL DEFAULT 0;",
    // 16: notices to owners through configured channels (`clue::owner_notify`); the contact
    // is kept masked (the full one is only in the notice's outbox row).
    r#"
CREATE TABLE owner_notices (
    id INTEGER PRIMARY KEY,
    clue_id INTEGER NOT NULL REFERENCES clues(id),
    site TEXT NOT NULL,
    channel TEXT NOT NULL,
    template TEXT,
    contact TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    queued_ms INTEGER NOT NULL,
    queued_by TEXT NOT NULL,
    delivered_ms INTEGER,
    provider_id TEXT,
    failed_ms INTEGER,
    receipt_status TEXT,
    receipt_ms INTEGER,
    idempotency_key TEXT NOT NULL UNIQUE
);
CREATE INDEX owner_notices_clue ON owner_notices(clue_id, id);
"#,
    // 17: per-row retry time of the outbox (owner notices back off one by one, so one that
    // fails does not hold up the others of its channel; NULL: due now), and the owner-notice
    // channel a `notifier` token may post receipts for.
    r#"
ALTER TABLE outbound ADD COLUMN next_attempt_ms INTEGER;
ALTER TABLE tokens ADD COLUMN channel TEXT;
"#,
    // 18: an occurrence row may stand for a run of plain repeats written once per window
    // (`clue::repeats`): how many events, and when the first was (`at_ms` is the last).
    r#"
ALTER TABLE occurrences ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE occurrences ADD COLUMN first_ms INTEGER;
"#,
];

/// The level as a number for ordering (high first); the same text as in `clues_list_order`.
pub(super) const LEVEL_RANK: &str = "CASE level WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END";

/// Brings the database at `conn` to the newest schema, one transaction per step.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this gateway ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
