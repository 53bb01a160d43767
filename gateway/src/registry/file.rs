//! The registry file: TOML (`[[devices]]` tables, as in `deploy/registry.example.toml`) or CSV
//! with a header row (`site,device,kind,name,dev_eui,lat,lon,owner,shop,notes,camera_zones,trap,owner_phone,owner_address`;
//! only `site`, `device` and `kind` are required; `camera_zones` and `trap` are JSON). The extension
//! decides the format. CSV suits a spreadsheet export of a survey; TOML holds everything.
//!
//! Writes go to a temp file in the same folder, fsynced, then renamed over the old one, so a
//! crash leaves either the old or the new registry, never half of one.
//!
//! Why no CSV crate: a registry is small and the subset needed (quoted fields, doubled quotes,
//! commas and line breaks inside quotes) is a page, tested below; no new dependency for it.

use super::{DeviceEntry, DeviceKind, Installation, RegistryError, Snapshot};
use crate::clue::signal::GeoPoint;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Toml,
    Csv,
}

impl Format {
    pub(crate) fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Size and modification time: enough to notice an edit without reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    devices: Vec<DeviceEntry>,
}

fn file_error(path: &Path, reason: impl Into<String>) -> RegistryError {
    RegistryError::File {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads and validates the registry; a missing file is an empty registry.
pub(crate) fn load(path: &Path) -> Result<(Snapshot, Option<Stamp>), RegistryError> {
    let before = stamp(path);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Snapshot::default(), None));
        }
        Err(e) => return Err(file_error(path, e.to_string())),
    };
    let entries = parse(path, &text)?;
    let snap = Snapshot::build(entries).map_err(|e| file_error(path, e.to_string()))?;
    Ok((snap, before))
}

fn parse(path: &Path, text: &str) -> Result<Vec<DeviceEntry>, RegistryError> {
    match Format::of(path) {
        Some(Format::Toml) => toml::from_str::<TomlFile>(text)
            .map(|f| f.devices)
            .map_err(|e| file_error(path, e.to_string())),
        Some(Format::Csv) => from_csv(text).map_err(|e| file_error(path, e)),
        None => Err(file_error(path, "must end in .toml or .csv")),
    }
}

pub(crate) fn render(path: &Path, entries: &[DeviceEntry]) -> Result<String, RegistryError> {
    match Format::of(path) {
        Some(Format::Toml) => {
            let body = toml::to_string(&TomlFile {
                devices: entries.to_vec(),
            })
            .map_err(|e| file_error(path, e.to_string()))?;
            Ok(format!(
                "# Device registry (edited through the gateway API; hand edits are picked up too).\n{body}"
            ))
        }
        Some(Format::Csv) => to_csv(entries).map_err(|e| file_error(path, e)),
        None => Err(file_error(path, "must end in .toml or .csv")),
    }
}

/// A new version written beside the file, not yet in place.
pub(crate) struct Pending {
    tmp: PathBuf,
    path: PathBuf,
}

impl Pending {
    /// Puts the new version in place; returns its stamp.
    pub(crate) fn commit(self) -> Result<Option<Stamp>, RegistryError> {
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| file_error(&self.path, e.to_string()))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            // Make the rename durable; failure here only weakens crash safety.
            let _ = d.sync_all();
        }
        Ok(stamp(&self.path))
    }

    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes `entries` to a temp file beside `path` (fsynced).
pub(crate) fn write_pending(
    path: &Path,
    entries: &[DeviceEntry],
) -> Result<Pending, RegistryError> {
    let text = render(path, entries)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(path, e.to_string()))?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| file_error(path, e.to_string()))?;
    Ok(Pending {
        tmp,
        path: path.to_path_buf(),
    })
}

const COLUMNS: [&str; 14] = [
    "site",
    "device",
    "kind",
    "name",
    "dev_eui",
    "lat",
    "lon",
    "owner",
    "shop",
    "notes",
    "camera_zones",
    "trap",
    "owner_phone",
    "owner_address",
];

fn from_csv(text: &str) -> Result<Vec<DeviceEntry>, String> {
    let mut rows = csv_rows(text)?.into_iter();
    let header = rows.next().ok_or("empty file (a header row is needed)")?;
    let mut index = Vec::with_capacity(header.len());
    for h in &header {
        let h = h.trim();
        if !COLUMNS.contains(&h) {
            return Err(format!(
                "unknown column `{h}` (columns: {})",
                COLUMNS.join(",")
            ));
        }
        index.push(h.to_string());
    }
    for required in ["site", "device", "kind"] {
        if !index.iter().any(|h| h == required) {
            return Err(format!("column `{required}` is required"));
        }
    }
    let mut out = Vec::new();
    for (n, row) in rows.enumerate() {
        // Line numbers count the header as line 1.
        let line = n + 2;
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if row.len() != index.len() {
            return Err(format!(
                "row {line}: {} values for {} columns",
                row.len(),
                index.len()
            ));
        }
        let get = |col: &str| {
            index
                .iter()
                .position(|h| h == col)
                .map(|i| row[i].trim())
                .filter(|v| !v.is_empty())
        };
        let opt = |col: &str| get(col).map(str::to_string);
        let num = |col: &str| -> Result<Option<f64>, String> {
            get(col)
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| format!("row {line}: `{col}` is not a number: `{v}`"))
                })
                .transpose()
        };
        let kind = get("kind").unwrap_or("");
        let kind =
            DeviceKind::parse(kind).ok_or_else(|| format!("row {line}: unknown kind `{kind}`"))?;
        let location = match (num("lat")?, num("lon")?) {
            (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon }),
            (None, None) => None,
            _ => return Err(format!("row {line}: `lat` and `lon` go together")),
        };
        let camera_zones = match get("camera_zones") {
            Some(j) => serde_json::from_str(j)
                .map_err(|e| format!("row {line}: `camera_zones` is not a JSON zone list: {e}"))?,
            None => Vec::new(),
        };
        let trap = get("trap")
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| format!("row {line}: `trap` is not a JSON trap installation: {e}"))?;
        out.push(DeviceEntry {
            site: opt("site").unwrap_or_default(),
            device: opt("device").unwrap_or_default(),
            kind,
            name: opt("name"),
            dev_eui: opt("dev_eui"),
            location,
            owner: opt("owner"),
            owner_phone: opt("owner_phone"),
            owner_address: opt("owner_address"),
            shop: opt("shop"),
            installation: Installation {
                camera_zones,
                trap,
                notes: opt("notes"),
            },
        });
    }
    Ok(out)
}

fn to_csv(entries: &[DeviceEntry]) -> Result<String, String> {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for e in entries {
        let zones = if e.installation.camera_zones.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&e.installation.camera_zones).map_err(|e| e.to_string())?
        };
        let cells = [
            e.site.clone(),
            e.device.clone(),
            e.kind.as_str().to_string(),
            e.name.clone().unwrap_or_default(),
            e.dev_eui.clone().unwrap_or_default(),
            e.location.map(|p| p.lat.to_string()).unwrap_or_default(),
            e.location.map(|p| p.lon.to_string()).unwrap_or_default(),
            e.owner.clone().unwrap_or_default(),
            e.shop.clone().unwrap_or_default(),
            e.installation.notes.clone().unwrap_or_default(),
            zones,
            match &e.installation.trap {
                Some(t) => serde_json::to_string(t).map_err(|e| e.to_string())?,
                None => String::new(),
            },
            e.owner_phone.clone().unwrap_or_default(),
            e.owner_address.clone().unwrap_or_default(),
        ];
        let quoted: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// RFC 4180 rows: quoted fields may hold commas, line breaks and doubled quotes.
fn csv_rows(text: &str) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("row {}: unterminated quote", rows.len() + 1));
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_handle_quotes_commas_and_line_breaks() {
        let rows = csv_rows("a,b\n\"x, y\",\"say \"\"hi\"\"\nthere\"\r\n").unwrap();
        assert_eq!(
            rows,
            vec![vec!["a", "b"], vec!["x, y", "say \"hi\"\nthere"]]
        );
        assert!(csv_rows("a,\"open").is_err());
    }

    #[test]
    fn csv_round_trips_every_column() {
        let text = "site,device,kind,name,dev_eui,lat,lon,owner,shop,notes,camera_zones,trap\n\
            r7,trap-1,grease_trap,\"Trap, wash sink\",24E1-2471-3B12-3456,31.2304,121.4737,Wang,Golden Dragon,,,\
            \"{\"\"reports\"\":\"\"distance\"\",\"\"sensor_height_mm\"\":1000}\"\n\
            s2,cam-1,parking_camera,,,,,,,\"pole 3\",\"[{\"\"id\"\":\"\"kerb\"\",\"\"polygon\"\":[[0,0],[10,0],[10,10]]}]\",\n";
        let entries = from_csv(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name.as_deref(), Some("Trap, wash sink"));
        assert_eq!(entries[1].installation.camera_zones[0].id, "kerb");
        let trap = entries[0].installation.trap.as_ref().expect("trap column");
        assert_eq!(trap.sensor_height_mm, Some(1000.0));
        let again = from_csv(&to_csv(&entries).unwrap()).unwrap();
        assert_eq!(again, entries);
    }

    #[test]
    fn csv_errors_name_the_row_and_column() {
        let e = from_csv("site,device,kind,colour\n").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = from_csv("site,device,kind\nr1,d1,toaster\n").unwrap_err();
        assert!(e.contains("row 2") && e.contains("toaster"), "{e}");
        let e = from_csv("site,device,kind,lat\nr1,d1,other,north\n").unwrap_err();
        assert!(e.contains("row 2") && e.contains("lat"), "{e}");
    }
}
