//! Devices that send without being registered, so installers see what is on the air.
//!
//! Two kinds: a DevEUI the registry does not know (its readings were kept under a placeholder
//! site or refused, per `[registry] unregistered`), and a site/device name that sends (native
//! topics, mappings naming the site) but has no registry entry (its readings are stored as
//! usual). Bounded by `max_unknown` rows; past that, messages are only counted (metrics).
//! A row disappears when its device gets registered.

use super::{EuiOutcome, Snapshot};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// One row of `GET /api/v1/devices?unregistered=true`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct UnknownView {
    /// `dev_eui` or `device`.
    pub kind: &'static str,
    /// The DevEUI, or `{site}/{device}`.
    pub id: String,
    /// The site the readings were stored under (none when refused).
    pub site: Option<String>,
    pub device: Option<String>,
    /// `stored` (under `site`/`device`) or `dead_lettered`.
    pub readings: &'static str,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub messages: u64,
    pub last_topic: String,
}

#[derive(Debug, Clone)]
struct Seen {
    first_ms: i64,
    last_ms: i64,
    messages: u64,
    last_topic: String,
    stored_as: Option<(String, String)>,
}

impl Seen {
    fn new(at_ms: i64, topic: &str, stored_as: Option<(String, String)>) -> Seen {
        Seen {
            first_ms: at_ms,
            last_ms: at_ms,
            messages: 0,
            last_topic: String::new(),
            stored_as,
        }
        .touch(at_ms, topic)
    }

    fn touch(mut self, at_ms: i64, topic: &str) -> Seen {
        self.bump(at_ms, topic);
        self
    }

    fn bump(&mut self, at_ms: i64, topic: &str) {
        self.messages += 1;
        self.last_ms = self.last_ms.max(at_ms);
        if self.last_topic != topic {
            self.last_topic = topic.to_string();
        }
    }
}

#[derive(Default)]
struct Tables {
    euis: HashMap<String, Seen>,
    /// site -> device -> seen (nested so a lookup needs no allocation).
    devices: HashMap<String, HashMap<String, Seen>>,
    rows: usize,
}

pub(crate) struct UnknownDevices {
    limit: usize,
    tables: Mutex<Tables>,
}

impl UnknownDevices {
    pub(crate) fn new(limit: usize) -> UnknownDevices {
        UnknownDevices {
            limit,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn note_eui(&self, eui: &str, outcome: &EuiOutcome, topic: &str, at_ms: i64) {
        let mut t = self.lock();
        if let Some(s) = t.euis.get_mut(eui) {
            s.bump(at_ms, topic);
            return;
        }
        if t.rows >= self.limit {
            return;
        }
        let stored_as = match outcome {
            EuiOutcome::StoredAs { site, device } => Some((site.clone(), device.clone())),
            EuiOutcome::Refused => None,
        };
        t.euis
            .insert(eui.to_string(), Seen::new(at_ms, topic, stored_as));
        t.rows += 1;
    }

    pub(crate) fn note_device(&self, site: &str, device: &str, topic: &str, at_ms: i64) {
        let mut t = self.lock();
        if let Some(s) = t.devices.get_mut(site).and_then(|d| d.get_mut(device)) {
            s.bump(at_ms, topic);
            return;
        }
        if t.rows >= self.limit {
            return;
        }
        t.devices
            .entry(site.to_string())
            .or_default()
            .insert(device.to_string(), Seen::new(at_ms, topic, None));
        t.rows += 1;
    }

    /// Drops the rows of devices that `snap` now registers.
    pub(crate) fn forget_registered(&self, snap: &Snapshot) {
        let mut t = self.lock();
        t.euis.retain(|eui, _| snap.by_eui(eui).is_none());
        for (site, devs) in t.devices.iter_mut() {
            devs.retain(|device, _| snap.get(site, device).is_none());
        }
        t.devices.retain(|_, d| !d.is_empty());
        t.rows = t.euis.len() + t.devices.values().map(HashMap::len).sum::<usize>();
    }

    /// Every row, most recently seen first.
    pub(crate) fn list(&self) -> Vec<UnknownView> {
        let t = self.lock();
        let mut out: Vec<UnknownView> = t
            .euis
            .iter()
            .map(|(eui, s)| UnknownView {
                kind: "dev_eui",
                id: eui.clone(),
                site: s.stored_as.as_ref().map(|(site, _)| site.clone()),
                device: s.stored_as.as_ref().map(|(_, d)| d.clone()),
                readings: if s.stored_as.is_some() {
                    "stored"
                } else {
                    "dead_lettered"
                },
                first_seen_ms: s.first_ms,
                last_seen_ms: s.last_ms,
                messages: s.messages,
                last_topic: s.last_topic.clone(),
            })
            .chain(t.devices.iter().flat_map(|(site, devs)| {
                devs.iter().map(move |(device, s)| UnknownView {
                    kind: "device",
                    id: format!("{site}/{device}"),
                    site: Some(site.clone()),
                    device: Some(device.clone()),
                    readings: "stored",
                    first_seen_ms: s.first_ms,
                    last_seen_ms: s.last_ms,
                    messages: s.messages,
                    last_topic: s.last_topic.clone(),
                })
            }))
            .collect();
        out.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id)));
        out
    }
}
