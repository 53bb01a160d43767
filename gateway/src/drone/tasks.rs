//! Inspection tasks ("fly once"): a department registers an area (GeoJSON Polygon or
//! MultiPolygon, WGS84 lon/lat), the COCO classes it cares about and a contact; every finding of
//! any flight that falls inside the area and matches a target becomes a clue for that
//! department. Tasks are kept in `{storage.dir}/drone/tasks.json`.

use crate::vision::detector::COCO_LABELS;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Largest accepted polygon (vertices over all rings): a city block needs tens.
const MAX_VERTICES: usize = 10_000;

#[derive(Debug, Error)]
pub(crate) enum TaskError {
    #[error("{0}")]
    Invalid(String),
    #[error("task store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `POST /api/v1/tasks` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTask {
    pub name: String,
    pub department: String,
    pub area: geojson::Geometry,
    /// COCO class names (`car`, `truck`, `person`, ...) or `vehicle` (car, motorbike, bus,
    /// truck).
    pub targets: Vec<String>,
    pub contact: String,
    /// The site whose flights this task looks at; absent = every flight the area overlaps.
    #[serde(default)]
    pub site: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Task {
    pub id: u64,
    pub name: String,
    pub department: String,
    pub area: geojson::Geometry,
    pub targets: Vec<String>,
    pub contact: String,
    #[serde(default)]
    pub site: Option<String>,
    pub created_ms: i64,
    /// Polygons as rings of `[lon, lat]` (first ring outer, the rest holes).
    #[serde(skip)]
    polygons: Vec<Vec<Vec<[f64; 2]>>>,
}

fn ring(positions: &[geojson::Position]) -> Result<Vec<[f64; 2]>, TaskError> {
    let mut out = Vec::with_capacity(positions.len());
    for p in positions {
        let s = p.as_slice();
        let (lon, lat) = match s {
            [lon, lat, ..] => (*lon, *lat),
            _ => return Err(TaskError::Invalid("area: a position needs lon, lat".into())),
        };
        if !((-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)) {
            return Err(TaskError::Invalid(format!(
                "area: position [{lon}, {lat}] is outside WGS84 lon/lat"
            )));
        }
        out.push([lon, lat]);
    }
    if out.len() < 4 || out.first() != out.last() {
        return Err(TaskError::Invalid(
            "area: a ring needs at least 4 positions and must be closed".into(),
        ));
    }
    Ok(out)
}

fn polygons(area: &geojson::Geometry) -> Result<Vec<Vec<Vec<[f64; 2]>>>, TaskError> {
    use geojson::GeometryValue as G;
    let polys: Vec<&Vec<Vec<geojson::Position>>> = match &area.value {
        G::Polygon { coordinates } => vec![coordinates],
        G::MultiPolygon { coordinates } => coordinates.iter().collect(),
        other => {
            return Err(TaskError::Invalid(format!(
                "area: expected a GeoJSON Polygon or MultiPolygon, got {}",
                other.type_name()
            )));
        }
    };
    let n: usize = polys.iter().flat_map(|p| p.iter()).map(Vec::len).sum();
    if n > MAX_VERTICES {
        return Err(TaskError::Invalid(format!(
            "area: {n} vertices (at most {MAX_VERTICES})"
        )));
    }
    let out = polys
        .into_iter()
        .map(|p| p.iter().map(|r| ring(r)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() || out.iter().any(Vec::is_empty) {
        return Err(TaskError::Invalid("area: empty polygon".into()));
    }
    Ok(out)
}

/// Even-odd rule on one ring (planar in lon/lat: exact enough for areas of city-block size).
fn in_ring(r: &[[f64; 2]], lon: f64, lat: f64) -> bool {
    crate::vision::zone::in_polygon(r, lon, lat)
}

/// Whether `label` is one of `targets` (`vehicle` stands for every motor vehicle).
pub(crate) fn target_matches(targets: &[String], label: &str) -> bool {
    targets.iter().any(|t| {
        t == label || (t == "vehicle" && matches!(label, "car" | "motorbike" | "bus" | "truck"))
    })
}

impl Task {
    pub(crate) fn new(id: u64, t: NewTask, now_ms: i64) -> Result<Task, TaskError> {
        for (key, v) in [
            ("name", &t.name),
            ("department", &t.department),
            ("contact", &t.contact),
        ] {
            if v.trim().is_empty() || v.len() > 200 {
                return Err(TaskError::Invalid(format!("{key}: 1 to 200 characters")));
            }
        }
        if t.targets.is_empty() {
            return Err(TaskError::Invalid("targets: at least one class".into()));
        }
        for target in &t.targets {
            if target != "vehicle" && !COCO_LABELS.contains(&target.as_str()) {
                return Err(TaskError::Invalid(format!(
                    "targets: `{target}` is not a COCO class name (e.g. car, truck, person) or `vehicle`"
                )));
            }
        }
        let polygons = polygons(&t.area)?;
        Ok(Task {
            id,
            name: t.name,
            department: t.department,
            area: t.area,
            targets: t.targets,
            contact: t.contact,
            site: t.site,
            created_ms: now_ms,
            polygons,
        })
    }

    /// Inside an outer ring and outside its holes, in any of the polygons.
    pub(crate) fn contains(&self, lat: f64, lon: f64) -> bool {
        self.polygons.iter().any(|p| {
            p.first().is_some_and(|outer| in_ring(outer, lon, lat))
                && !p[1..].iter().any(|hole| in_ring(hole, lon, lat))
        })
    }

    /// `(min_lat, min_lon, max_lat, max_lon)` of the outer rings.
    pub(crate) fn bounds(&self) -> (f64, f64, f64, f64) {
        let mut b = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in &self.polygons {
            for [lon, lat] in p.first().into_iter().flatten() {
                b = (b.0.min(*lat), b.1.min(*lon), b.2.max(*lat), b.3.max(*lon));
            }
        }
        b
    }

    pub(crate) fn wants(&self, label: &str) -> bool {
        target_matches(&self.targets, label)
    }
}

/// The registered tasks, persisted as JSON on every change.
#[derive(Clone)]
pub(crate) struct TaskStore {
    path: Option<PathBuf>,
    tasks: Arc<Mutex<Vec<Task>>>,
}

impl TaskStore {
    /// In memory only (tests).
    #[cfg(test)]
    pub(crate) fn memory() -> TaskStore {
        TaskStore {
            path: None,
            tasks: Default::default(),
        }
    }

    /// Loads `path` if it exists; a task that no longer validates is dropped with a warning.
    pub(crate) fn open(path: PathBuf) -> Result<TaskStore, TaskError> {
        let mut tasks = Vec::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: Vec<Task> = serde_json::from_slice(&bytes)
                    .map_err(|e| TaskError::Invalid(format!("{}: {e}", path.display())))?;
                for t in stored {
                    let new = NewTask {
                        name: t.name,
                        department: t.department,
                        area: t.area,
                        targets: t.targets,
                        contact: t.contact,
                        site: t.site,
                    };
                    match Task::new(t.id, new, t.created_ms) {
                        Ok(t) => tasks.push(t),
                        Err(e) => tracing::warn!(id = t.id, error = %e, "stored task dropped"),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TaskError::Io { path, source }),
        }
        Ok(TaskStore {
            path: Some(path),
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Task>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, t: NewTask, now_ms: i64) -> Result<Task, TaskError> {
        let mut tasks = self.lock();
        let id = tasks.iter().map(|t| t.id).max().unwrap_or(0) + 1;
        let task = Task::new(id, t, now_ms)?;
        tasks.push(task.clone());
        if let Some(path) = &self.path {
            let json = serde_json::to_vec_pretty(&*tasks)
                .map_err(|e| TaskError::Invalid(e.to_string()))?;
            super::upload::write_atomic(path, &json).map_err(|source| TaskError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(task)
    }

    pub(crate) fn list(&self) -> Vec<Task> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_task(area: serde_json::Value, targets: &[&str]) -> NewTask {
        serde_json::from_value(serde_json::json!({
            "name": "Main St kerb", "department": "city-management", "contact": "ops@city",
            "area": area, "targets": targets
        }))
        .expect("task json")
    }

    fn square_with_hole() -> serde_json::Value {
        serde_json::json!({"type": "Polygon", "coordinates": [
            [[114.0, 22.0], [114.01, 22.0], [114.01, 22.01], [114.0, 22.01], [114.0, 22.0]],
            [[114.004, 22.004], [114.006, 22.004], [114.006, 22.006], [114.004, 22.006], [114.004, 22.004]]
        ]})
    }

    #[test]
    fn points_inside_the_area_but_not_in_holes_match() {
        let t = Task::new(1, new_task(square_with_hole(), &["vehicle", "person"]), 0).expect("ok");
        assert!(t.contains(22.001, 114.001));
        assert!(!t.contains(22.005, 114.005), "in the hole");
        assert!(!t.contains(22.02, 114.001));
        assert!(t.wants("truck") && t.wants("person") && !t.wants("dog"));
        let (a, b, c, d) = t.bounds();
        assert_eq!((a, b, c, d), (22.0, 114.0, 22.01, 114.01));
    }

    #[test]
    fn bad_tasks_are_refused_with_the_key() {
        let open_ring = serde_json::json!({"type": "Polygon",
            "coordinates": [[[114.0, 22.0], [114.01, 22.0], [114.01, 22.01]]]});
        let e = Task::new(1, new_task(open_ring, &["car"]), 0).expect_err("open");
        assert!(e.to_string().contains("area"), "{e}");
        let point = serde_json::json!({"type": "Point", "coordinates": [114.0, 22.0]});
        let e = Task::new(1, new_task(point, &["car"]), 0).expect_err("point");
        assert!(e.to_string().contains("Polygon"), "{e}");
        let e = Task::new(1, new_task(square_with_hole(), &["stall"]), 0).expect_err("class");
        assert!(e.to_string().contains("targets"), "{e}");
        let far = serde_json::json!({"type": "Polygon",
            "coordinates": [[[214.0, 22.0], [114.01, 22.0], [114.01, 22.01], [214.0, 22.0]]]});
        assert!(Task::new(1, new_task(far, &["car"]), 0).is_err());
    }

    #[test]
    fn tasks_persist_across_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("tasks.json");
        let s = TaskStore::open(path.clone()).expect("open");
        let t = s
            .add(new_task(square_with_hole(), &["car"]), 5)
            .expect("add");
        assert_eq!(t.id, 1);
        let again = TaskStore::open(path).expect("reopen").list();
        assert_eq!(again.len(), 1);
        assert!(again[0].contains(22.001, 114.001));
    }
}
