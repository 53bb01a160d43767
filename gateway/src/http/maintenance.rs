//! Maintenance works over HTTP, so a registered crew opening a manhole raises no "cover open"
//! clue (rules with `unless_maintenance`; issue 17). Works as pump-outs are (`super::pumpouts`):
//!
//! - `POST /api/v1/maintenance` `{"site","device","from_ms","to_ms","permit"?,"note"?}`:
//!   inspector, supervisor, platform or admin, within the token's sites. 201 with the stored
//!   record. The window must be plausible (`MaintenanceRecord::check`: at most 7 days, starting
//!   at most 30 days ahead, not ended more than 7 days ago); the registration is written to
//!   the audit chain before it takes effect (an unauditable one is refused, 500), because it
//!   silences clues.
//! - `GET  /api/v1/maintenance?site=`: the records of the token's sites.
//!
//! Crews often register works late, after the cover they lifted already raised its clue. So a
//! registration also dismisses the open clues it explains: clues of a rule with
//! `unless_maintenance` about the same site and device that were first seen inside the works'
//! window (dismissed by the registrar as they may dismiss through the clue API, the reason
//! naming the works; each an audited action).
//! The answer lists them (`dismissed_clues`). A clue first seen before the works began is left
//! for a person: the works do not explain how it started.

use super::error::ApiError;
use super::pumpouts::{ListQuery, register_audited, require_registrar, scoped_list};
use crate::clue::auth::Principal;
use crate::clue::lifecycle::Action;
use crate::clue::model::ClueQuery;
use crate::clue::pool::PoolHandle;
use crate::rules::config::RuleConfig;
use crate::rules::maintenance::{MaintenanceJournal, MaintenanceRecord};
use crate::rules::task::RulesUpdate;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWorks {
    site: String,
    device: String,
    from_ms: i64,
    to_ms: i64,
    #[serde(default)]
    permit: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// The journal shared with the handlers (absent: the routes answer 503), and which rules the
/// works excuse.
#[derive(Clone, Default)]
pub struct Maintenance(
    pub Option<Arc<MaintenanceJournal>>,
    pub(crate) Option<ExcusedRules>,
);

/// The rules registered works excuse (`unless_maintenance`), as running: the rules at start,
/// then each reload's.
#[derive(Clone)]
pub(crate) struct ExcusedRules {
    at_start: Arc<HashSet<String>>,
    reloads: watch::Receiver<Option<RulesUpdate>>,
}

impl ExcusedRules {
    pub(crate) fn new(
        at_start: &[RuleConfig],
        reloads: watch::Receiver<Option<RulesUpdate>>,
    ) -> ExcusedRules {
        ExcusedRules {
            at_start: Arc::new(excused(at_start)),
            reloads,
        }
    }

    /// Rule ids and problem names (a clue carries one of them as its `rule`).
    fn current(&self) -> Arc<HashSet<String>> {
        match &*self.reloads.borrow() {
            Some((rules, _)) => Arc::new(excused(rules)),
            None => self.at_start.clone(),
        }
    }
}

fn excused(rules: &[RuleConfig]) -> HashSet<String> {
    rules
        .iter()
        .filter(|r| r.unless_maintenance)
        .flat_map(|r| std::iter::once(r.id.clone()).chain(r.problem.clone()))
        .collect()
}

/// What a registration answers: the stored record and the clues it explained.
#[derive(Serialize)]
struct Registered {
    #[serde(flatten)]
    record: MaintenanceRecord,
    dismissed_clues: Vec<i64>,
}

/// Clues listed per registration when looking for the ones the works explain.
const EXPLAINED_SCAN: u32 = 1_000;

/// Dismisses the open clues `record` explains (module doc) as the registrar `p` may (the
/// same checks as `POST /api/v1/clues/{id}/actions`: an inspector only clues that are theirs
/// or nobody's); returns their ids. A clue that cannot be dismissed is logged and left.
async fn dismiss_explained(
    pool: &PoolHandle,
    rules: &HashSet<String>,
    record: &MaintenanceRecord,
    p: &Principal,
) -> Result<Vec<i64>, ApiError> {
    let may = p.role.may_act(&Action::Dismiss {
        reason: String::new(),
    });
    if rules.is_empty() || !may {
        return Ok(Vec::new());
    }
    let actor = p.actor();
    let clues = pool
        .list(ClueQuery {
            site: Some(record.site.clone()),
            // Created after the works began (a clue is created when first seen, or later).
            from_ms: Some(record.from_ms),
            limit: EXPLAINED_SCAN,
            ..ClueQuery::default()
        })
        .await?;
    let reason = format!(
        "explained by maintenance works on {} from {} to {} ms{}, registered by {}",
        record.device,
        record.from_ms,
        record.to_ms,
        record
            .permit
            .as_deref()
            .map(|p| format!(" (permit {p})"))
            .unwrap_or_default(),
        record.by
    );
    let mut dismissed = Vec::new();
    for c in clues {
        let explained = c.status.is_open()
            && rules.contains(&c.rule)
            && c.subject.device.as_deref() == Some(record.device.as_str())
            && (record.from_ms..=record.to_ms).contains(&c.first_seen_ms);
        let action = Action::Dismiss {
            reason: reason.clone(),
        };
        if !explained || !p.sees_clue(&c) || p.blocked_by_assignee(&action, c.assignee.as_deref()) {
            continue;
        }
        match pool.act(c.id, action, actor.clone()).await {
            Ok(_) => dismissed.push(c.id),
            Err(e) => {
                tracing::warn!(clue = c.id, error = %e, "clue explained by maintenance works not dismissed")
            }
        }
    }
    Ok(dismissed)
}

fn journal(m: &Maintenance) -> Result<&Arc<MaintenanceJournal>, ApiError> {
    m.0.as_ref()
        .ok_or_else(|| ApiError::Unavailable("maintenance records are not enabled".into()))
}

pub(super) async fn register(
    p: Principal,
    State(works): State<Maintenance>,
    State(pool): State<PoolHandle>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_registrar(&p, "register maintenance works")?;
    let new: NewWorks = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad maintenance works: {e}")))?;
    p.require_site(&new.site)?;
    let now = crate::clock::now_ms();
    let record = MaintenanceRecord {
        site: new.site,
        device: new.device,
        from_ms: new.from_ms,
        to_ms: new.to_ms,
        by: p.actor(),
        at_ms: now,
        permit: new.permit,
        note: new.note,
    };
    record
        .check(now)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let j = journal(&works)?.clone();
    register_audited(j, &pool, p.actor(), record.clone()).await?;
    let rules = works
        .1
        .as_ref()
        .map(ExcusedRules::current)
        .unwrap_or_default();
    let dismissed_clues = dismiss_explained(&pool, &rules, &record, &p).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            record,
            dismissed_clues,
        }),
    )
        .into_response())
}

pub(super) async fn list(
    p: Principal,
    State(works): State<Maintenance>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<MaintenanceRecord>>, ApiError> {
    Ok(Json(scoped_list(&p, journal(&works)?, q.site.as_deref())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_excuse_the_rules_that_say_so_by_id_and_by_problem() {
        let rules: Vec<RuleConfig> = crate::rules::default_rules();
        let set = excused(&rules);
        for name in [
            "cover-open",
            "cover-open-too-long",
            "cover-tilted",
            "manhole-cover",
        ] {
            assert!(set.contains(name), "{name} in {set:?}");
        }
        for r in rules.iter().filter(|r| !r.unless_maintenance) {
            assert!(!set.contains(&r.id), "{} does not opt in", r.id);
        }
    }
}
