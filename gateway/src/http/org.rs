//! `GET /api/v1/org/units`: the units of `[org]` the token sees, for the dashboard's unit
//! filter and the names shown beside unit ids.
//!
//! A unit token sees its own unit and the units below it; any other token the units whose
//! own sites it sees (an admin without a unit: every unit). A unit is listed with its parent,
//! level, departments and the sites of its scope the token sees, never with sites outside the
//! token's scope.

use crate::clue::PoolHandle;
use crate::clue::auth::Principal;
use axum::Json;
use axum::extract::State;

pub(super) async fn units(p: Principal, State(pool): State<PoolHandle>) -> Json<serde_json::Value> {
    let org = pool.org();
    let listed: Vec<serde_json::Value> = org
        .units()
        .filter(|u| match &p.unit {
            Some(own) => org.within(&u.id, own),
            None => p.scope().is_none() || u.sites.iter().any(|s| p.sees(s)),
        })
        .map(|u| {
            let sites: Vec<String> = org
                .scope_sites(&u.id)
                .into_iter()
                .filter(|s| p.sees(s))
                .collect();
            serde_json::json!({
                "id": u.id, "name": u.name, "level": u.level, "parent": u.parent,
                "departments": u.departments, "sites": sites,
            })
        })
        .collect();
    Json(serde_json::json!({"units": listed}))
}
