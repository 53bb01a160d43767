//! The device registry: what each device in the field is, where it stands and whose it is.
//!
//! A device is known by our `{site}/{device}` name; LoRaWAN devices also by their DevEUI (the
//! network server's identity, which knows nothing of our sites). Modbus devices and cameras
//! are named by site and device in their own config, so `{site}/{device}` is their key too.
//! Each entry carries the kind, a WGS84 location, installation data (a grease trap's geometry,
//! a camera's zones, notes) and the owner and shop: decoders turn a DevEUI into site and device
//! through it, the grease rules read the trap geometry from it ([`Registry::feed_traps`]) and
//! parking a camera's zones (`camera::parking::Parking::zones_from`), the
//! clue pool stamps every new clue's subject with the device's location, shop and owner
//! ([`Registry::stamp`]), and the dashboard shows it (device page, map).
//!
//! - Source of truth: one file (`[registry] file`, TOML `[[devices]]` or CSV, see `file.rs`),
//!   re-read when it changes (checked every `check_s`) and on SIGHUP. A bad file is refused
//!   with the entry and key named, and the running registry stays.
//! - Edits through the API (admin) are validated, audited in the clue audit chain, written to
//!   the file (temp file + rename) and applied at once; no restart.
//! - Devices that send but are not registered are counted and listed (`unknown.rs`); what
//!   happens to the readings of an unregistered DevEUI is `[registry] unregistered` (kept under
//!   a placeholder site, or dead-lettered): never silently dropped.
//!
//! Lookups are on the intake path: the current registry is an `Arc` swapped whole on change, so
//! a decoder holds a read lock only for an `Arc` clone.

pub(crate) mod file;
pub(crate) mod unknown;

use crate::clue::signal::{GeoPoint, Subject};
use crate::config_error::{ConfigError, invalid};
use crate::install::{TrapInstall, TrapInstalls};
use crate::metrics::{Metrics, Reason};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use thiserror::Error;

/// What kind of device an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeviceKind {
    /// Grease-trap level sensor (ultrasonic, 4-20 mA...).
    GreaseTrap,
    /// Manhole-cover switch or tilt sensor.
    ManholeCover,
    /// Kitchen ("sunshine kitchen") camera.
    KitchenCamera,
    /// Street parking camera.
    ParkingCamera,
    Other,
}

impl DeviceKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeviceKind::GreaseTrap => "grease_trap",
            DeviceKind::ManholeCover => "manhole_cover",
            DeviceKind::KitchenCamera => "kitchen_camera",
            DeviceKind::ParkingCamera => "parking_camera",
            DeviceKind::Other => "other",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<DeviceKind> {
        [
            DeviceKind::GreaseTrap,
            DeviceKind::ManholeCover,
            DeviceKind::KitchenCamera,
            DeviceKind::ParkingCamera,
            DeviceKind::Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// How a device is installed: what rules and reviewers need beyond its readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Installation {
    /// A camera's zones (polygons in image pixels), e.g. the no-parking area it watches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub camera_zones: Vec<crate::vision::zone::Zone>,
    /// A grease trap's build and sensor mount (what its sensor's figures mean to the grease
    /// rules; see `install::trap`). Applied to the rules as soon as the entry changes; it
    /// wins over a `[[traps]]` entry of the gateway config for the same device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trap: Option<crate::install::trap::TrapMount>,
    /// Free text for the next installer (mounting, access, wiring).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Installation {
    pub(crate) fn is_empty(&self) -> bool {
        self.camera_zones.is_empty() && self.trap.is_none() && self.notes.is_none()
    }
}

/// One registered device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceEntry {
    pub site: String,
    pub device: String,
    pub kind: DeviceKind,
    /// Human name ("Trap under the wash sink").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// LoRaWAN DevEUI, 16 hex digits (stored lower-case, separators removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_eui: Option<String>,
    /// WGS84 position of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    /// Who answers for the device's site (the owner told about a clue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The owner's phone for notices (`[[clues.owner_notify.channels]] contact = "phone"`);
    /// masked for roles without the personal-data right, and in every log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_phone: Option<String>,
    /// The owner's postal address for letters (`contact = "address"`); masked like the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_address: Option<String>,
    /// The shop or restaurant it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
    #[serde(default, skip_serializing_if = "Installation::is_empty")]
    pub installation: Installation,
}

impl DeviceEntry {
    /// `{site}/{device}`.
    pub(crate) fn id(&self) -> String {
        format!("{}/{}", self.site, self.device)
    }

    /// Checks one entry; `key` prefixes the field named in the error (`devices[3]`).
    pub(crate) fn validate(&mut self, key: &str) -> Result<(), ConfigError> {
        for (name, v) in [("site", &self.site), ("device", &self.device)] {
            if !firmware::protocol::valid_segment(v) || v.contains('/') {
                return Err(invalid(
                    format!("{key}.{name}"),
                    "must be 1..=64 characters without `/`, `+` or `#`",
                ));
            }
        }
        if let Some(eui) = &self.dev_eui {
            self.dev_eui = Some(
                normalize_eui(eui)
                    .ok_or_else(|| invalid(format!("{key}.dev_eui"), EUI_HINT.to_string()))?,
            );
        }
        if let Some(p) = &self.location
            && !(p.lat.is_finite()
                && p.lon.is_finite()
                && (-90.0..=90.0).contains(&p.lat)
                && (-180.0..=180.0).contains(&p.lon))
        {
            return Err(invalid(
                format!("{key}.location"),
                "lat must be within -90..=90 and lon within -180..=180 (WGS84 degrees)",
            ));
        }
        if let Some(t) = &self.installation.trap {
            t.at(&self.site, &self.device)
                .validate(&format!("{key}.installation.trap"))?;
        }
        for (i, z) in self.installation.camera_zones.iter().enumerate() {
            if z.polygon.len() < 3
                || z.polygon
                    .iter()
                    .flatten()
                    .any(|v| !v.is_finite() || *v < 0.0)
            {
                return Err(invalid(
                    format!("{key}.installation.camera_zones[{i}].polygon"),
                    "needs at least 3 points of finite, non-negative image pixels",
                ));
            }
        }
        Ok(())
    }
}

const EUI_HINT: &str =
    "a DevEUI is 16 hex digits (`24E124713B123456`, `24-e1-24-...` also accepted)";

/// `24-E1-24-71-3B-12-34-56` / `24E124713B123456` -> `24e124713b123456`; `None` if not an EUI-64.
pub(crate) fn normalize_eui(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// What to do with readings of a DevEUI the registry does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnregisteredPolicy {
    /// Store them as site `unregistered_site`, device = the DevEUI, so nothing is lost and the
    /// installer sees the values; they stay there after the device is registered.
    Keep,
    /// Refuse them like a malformed message: counted, logged, republished on
    /// `mqtt.dead_letter_topic` when set, acknowledged.
    DeadLetter,
}

/// The `[registry]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// The registry file (`.toml` or `.csv`). Unset: no registry (DevEUIs stay unregistered
    /// and native devices are not checked). A missing file is an empty registry, created by
    /// the first edit through the API.
    pub file: Option<PathBuf>,
    /// How often the file is checked for changes (seconds).
    pub check_s: u64,
    pub unregistered: UnregisteredPolicy,
    /// Site under which kept readings of unregistered DevEUIs are stored.
    pub unregistered_site: String,
    /// Unregistered devices listed at most (the rest are only counted).
    pub max_unknown: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            file: None,
            check_s: 2,
            unregistered: UnregisteredPolicy::Keep,
            unregistered_site: "unregistered".into(),
            max_unknown: 10_000,
        }
    }
}

impl RegistryConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.check_s == 0 {
            return Err(invalid("registry.check_s", "must be at least 1"));
        }
        if !firmware::protocol::valid_segment(&self.unregistered_site)
            || self.unregistered_site.contains('/')
        {
            return Err(invalid(
                "registry.unregistered_site",
                "must be a valid site name (1..=64 characters, no `/`, `+`, `#`)",
            ));
        }
        if let Some(f) = &self.file
            && file::Format::of(f).is_none()
        {
            return Err(invalid(
                "registry.file",
                "must end in .toml or .csv (that decides its format)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("registry file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("no registry file is configured (set `[registry] file`)")]
    NoFile,
    #[error("{0} is not registered")]
    NotFound(String),
}

/// An immutable registry version with its indexes.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sorted by site, then device.
    entries: Vec<DeviceEntry>,
    by_key: HashMap<String, HashMap<String, usize>>,
    by_eui: HashMap<String, usize>,
}

impl Snapshot {
    /// Validates and indexes `entries`; errors name the entry (`devices[2].dev_eui`).
    pub(crate) fn build(mut entries: Vec<DeviceEntry>) -> Result<Snapshot, ConfigError> {
        for (i, e) in entries.iter_mut().enumerate() {
            e.validate(&format!("devices[{i}]"))?;
        }
        let mut seen = HashMap::new();
        let mut euis = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(j) = seen.insert((e.site.clone(), e.device.clone()), i) {
                return Err(invalid(
                    format!("devices[{i}].device"),
                    format!("{} is also devices[{j}]", e.id()),
                ));
            }
            if let Some(eui) = &e.dev_eui
                && let Some(j) = euis.insert(eui.clone(), i)
            {
                return Err(invalid(
                    format!("devices[{i}].dev_eui"),
                    format!("DevEUI {eui} is also devices[{j}]"),
                ));
            }
        }
        entries.sort_by(|a, b| (&a.site, &a.device).cmp(&(&b.site, &b.device)));
        let mut s = Snapshot {
            entries,
            ..Snapshot::default()
        };
        for (i, e) in s.entries.iter().enumerate() {
            s.by_key
                .entry(e.site.clone())
                .or_default()
                .insert(e.device.clone(), i);
            if let Some(eui) = &e.dev_eui {
                s.by_eui.insert(eui.clone(), i);
            }
        }
        Ok(s)
    }

    pub(crate) fn entries(&self) -> &[DeviceEntry] {
        &self.entries
    }

    pub(crate) fn get(&self, site: &str, device: &str) -> Option<&DeviceEntry> {
        let i = self.by_key.get(site)?.get(device)?;
        self.entries.get(*i)
    }

    /// The entry of a normalized DevEUI.
    pub(crate) fn by_eui(&self, eui: &str) -> Option<&DeviceEntry> {
        self.entries.get(*self.by_eui.get(eui)?)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The trap installations the entries carry, in the rules' form.
    pub(crate) fn traps(&self) -> Vec<TrapInstall> {
        self.entries
            .iter()
            .filter_map(|e| Some(e.installation.trap.as_ref()?.at(&e.site, &e.device)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The running registry, shared by the decoder, the clue pool and the API.
pub struct Registry {
    cfg: RegistryConfig,
    current: RwLock<Arc<Snapshot>>,
    unknown: unknown::UnknownDevices,
    /// Modification stamp of the file last loaded (or written by us).
    stamp: Mutex<Option<file::Stamp>>,
    /// Serializes edits (read-modify-write of the file).
    edits: Mutex<()>,
    metrics: Arc<Metrics>,
    /// The rules' trap installations, fed with every version (see [`Registry::feed_traps`]).
    traps: Mutex<Option<TrapInstalls>>,
}

/// Where the readings of an unregistered DevEUI went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EuiOutcome {
    /// Stored under this site and device.
    StoredAs { site: String, device: String },
    /// Refused (dead-lettered).
    Refused,
}

impl Registry {
    /// Loads `cfg.file` (a missing file is an empty registry).
    pub fn open(cfg: &RegistryConfig, metrics: Arc<Metrics>) -> Result<Registry, RegistryError> {
        let (snapshot, stamp) = match &cfg.file {
            Some(path) => file::load(path)?,
            None => (Snapshot::default(), None),
        };
        Ok(Registry {
            unknown: unknown::UnknownDevices::new(cfg.max_unknown),
            cfg: cfg.clone(),
            current: RwLock::new(Arc::new(snapshot)),
            stamp: Mutex::new(stamp),
            edits: Mutex::new(()),
            metrics,
            traps: Mutex::new(None),
        })
    }

    /// No file, nothing registered (tests, tools).
    pub(crate) fn empty() -> Registry {
        Registry::open(&RegistryConfig::default(), Arc::new(Metrics::new()))
            .unwrap_or_else(|_| unreachable!("an empty registry reads no file"))
    }

    /// The registry as it is now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn get(&self, site: &str, device: &str) -> Option<DeviceEntry> {
        self.snapshot().get(site, device).cloned()
    }

    /// The registered location of a device, for clue subjects.
    #[cfg(test)]
    pub(crate) fn location(&self, site: &str, device: &str) -> Option<GeoPoint> {
        self.snapshot().get(site, device)?.location
    }

    /// Completes a clue subject from its device's entry: location, shop and owner, where the
    /// producer gave none (a drone finding's own position is closer than the registry's).
    pub(crate) fn stamp(&self, s: &mut Subject) {
        let Some(device) = &s.device else { return };
        let snap = self.snapshot();
        let Some(e) = snap.get(&s.site, device) else {
            return;
        };
        if s.location.is_none() {
            s.location = e.location;
        }
        if s.shop.is_none() {
            s.shop.clone_from(&e.shop);
        }
        if s.owner.is_none() {
            s.owner.clone_from(&e.owner);
        }
    }

    /// The owner's contacts for notices about `s`: its device's entry when that holds a phone
    /// or address, else the one contact every entry of the site that holds one agrees on (a
    /// site-wide clue, or a device registered without it). None when there is none, or the
    /// site's entries disagree (whom to tell is then a person's call).
    pub(crate) fn owner_contact(
        &self,
        s: &Subject,
    ) -> Option<crate::clue::owner_notify::OwnerContact> {
        use crate::clue::owner_notify::OwnerContact;
        let of = |e: &DeviceEntry| {
            (e.owner_phone.is_some() || e.owner_address.is_some()).then(|| OwnerContact {
                name: e.owner.clone(),
                phone: e.owner_phone.clone(),
                address: e.owner_address.clone(),
            })
        };
        let snap = self.snapshot();
        if let Some(c) = s
            .device
            .as_deref()
            .and_then(|d| snap.get(&s.site, d))
            .and_then(of)
        {
            return Some(c);
        }
        let mut found: Option<OwnerContact> = None;
        for c in snap
            .entries()
            .iter()
            .filter(|e| e.site == s.site)
            .filter_map(of)
        {
            match &found {
                Some(f) if *f != c => return None,
                _ => found = Some(c),
            }
        }
        found
    }

    /// Whether devices named by site and device are checked against the registry (a file is
    /// configured); without one every native device would be "unregistered".
    pub(crate) fn checks_devices(&self) -> bool {
        self.cfg.file.is_some()
    }

    /// Site and device of a DevEUI (normalized), or what the policy says for an unknown one;
    /// `fallback` is a site and device the message itself named (topic or fixed).
    pub(crate) fn resolve_eui(
        &self,
        eui: &str,
        fallback: Option<(&str, &str)>,
        topic: &str,
        at_ms: i64,
    ) -> EuiOutcome {
        if let Some(e) = self.snapshot().by_eui(eui) {
            return EuiOutcome::StoredAs {
                site: e.site.clone(),
                device: e.device.clone(),
            };
        }
        let outcome = match (fallback, self.cfg.unregistered) {
            (Some((site, device)), _) => EuiOutcome::StoredAs {
                site: site.into(),
                device: device.into(),
            },
            (None, UnregisteredPolicy::Keep) => EuiOutcome::StoredAs {
                site: self.cfg.unregistered_site.clone(),
                device: eui.into(),
            },
            (None, UnregisteredPolicy::DeadLetter) => EuiOutcome::Refused,
        };
        let label = match &outcome {
            EuiOutcome::StoredAs { .. } => "kept",
            EuiOutcome::Refused => "dead_letter",
        };
        self.count(label);
        self.unknown.note_eui(eui, &outcome, topic, at_ms);
        outcome
    }

    /// Notes a message from a device named by site and device (native topic, mapping with
    /// site and device in the topic): counted and listed when it is not registered.
    pub(crate) fn note_device(&self, site: &str, device: &str, topic: &str, at_ms: i64) {
        if !self.checks_devices() || self.snapshot().get(site, device).is_some() {
            return;
        }
        self.count("stored");
        self.unknown.note_device(site, device, topic, at_ms);
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .unregistered_messages_total
            .get_or_create(&Reason::of(outcome))
            .inc();
    }

    /// Devices sending without being registered, most recent first.
    pub(crate) fn unknown(&self) -> Vec<unknown::UnknownView> {
        self.unknown.list()
    }

    /// Re-reads the file when it changed since it was last read or written; `Ok(true)` when a
    /// new version was applied.
    pub(crate) fn reload_if_changed(&self) -> Result<bool, RegistryError> {
        let Some(path) = &self.cfg.file else {
            return Ok(false);
        };
        let now = file::stamp(path);
        if now == *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(false);
        }
        self.reload().map(|_| true)
    }

    /// Re-reads the file (SIGHUP); a bad file is refused and the running registry stays.
    pub(crate) fn reload(&self) -> Result<usize, RegistryError> {
        let Some(path) = &self.cfg.file else {
            return Ok(0);
        };
        let _edit = self.edits.lock().unwrap_or_else(|p| p.into_inner());
        let (snap, stamp) = file::load(path).inspect_err(|_| {
            self.metrics
                .registry_reloads_total
                .get_or_create(&Reason::of("rejected"))
                .inc();
            // Do not retry the same bad version every tick.
            *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = file::stamp(path);
        })?;
        let n = snap.len();
        self.install(snap, stamp);
        self.metrics
            .registry_reloads_total
            .get_or_create(&Reason::of("ok"))
            .inc();
        Ok(n)
    }

    /// Keeps `traps` (the rules engine's) up to date with the registered trap installations,
    /// from now on and at every new version, so a trap's geometry edited in the file or
    /// through the API reaches the rules without a restart.
    pub(crate) fn feed_traps(&self, traps: TrapInstalls) {
        let mut fed = self.traps.lock().unwrap_or_else(|p| p.into_inner());
        traps.set_registered(self.snapshot().traps());
        *fed = Some(traps);
    }

    fn install(&self, snap: Snapshot, stamp: Option<file::Stamp>) {
        if let Some(t) = &*self.traps.lock().unwrap_or_else(|p| p.into_inner()) {
            t.set_registered(snap.traps());
        }
        self.unknown.forget_registered(&snap);
        self.metrics.registry_devices.set(snap.len() as i64);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
    }

    /// Adds or replaces the entry of `entry.site`/`entry.device`. `audit` runs after the new
    /// file is written beside the old one and before it replaces it: if auditing fails,
    /// nothing changes. Returns the previous entry.
    pub(crate) fn put<F>(
        &self,
        entry: DeviceEntry,
        audit: F,
    ) -> Result<Option<DeviceEntry>, RegistryError>
    where
        F: FnOnce(Option<&DeviceEntry>, Option<&DeviceEntry>) -> Result<(), RegistryError>,
    {
        self.edit(
            &entry.site.clone(),
            &entry.device.clone(),
            Some(entry),
            audit,
        )
    }

    /// Removes an entry (404 when there is none); returns it.
    pub(crate) fn remove<F>(
        &self,
        site: &str,
        device: &str,
        audit: F,
    ) -> Result<DeviceEntry, RegistryError>
    where
        F: FnOnce(Option<&DeviceEntry>, Option<&DeviceEntry>) -> Result<(), RegistryError>,
    {
        self.edit(site, device, None, audit)?
            .ok_or_else(|| RegistryError::NotFound(format!("{site}/{device}")))
    }

    fn edit<F>(
        &self,
        site: &str,
        device: &str,
        new: Option<DeviceEntry>,
        audit: F,
    ) -> Result<Option<DeviceEntry>, RegistryError>
    where
        F: FnOnce(Option<&DeviceEntry>, Option<&DeviceEntry>) -> Result<(), RegistryError>,
    {
        let path = self.cfg.file.clone().ok_or(RegistryError::NoFile)?;
        let _edit = self.edits.lock().unwrap_or_else(|p| p.into_inner());
        // Edit what is on disk now: a hand edit not yet picked up by the poller is kept.
        let (on_disk, _) = file::load(&path)?;
        let before = on_disk.get(site, device).cloned();
        if new.is_none() && before.is_none() {
            return Ok(None);
        }
        let mut entries: Vec<DeviceEntry> = on_disk
            .entries()
            .iter()
            .filter(|e| !(e.site == site && e.device == device))
            .cloned()
            .collect();
        let index = entries.len();
        entries.extend(new);
        let snap = Snapshot::build(entries).map_err(|e| match e {
            // Name the edited entry, not its position in the file.
            ConfigError::Invalid { key, reason } => RegistryError::Invalid(invalid(
                key.replace(&format!("devices[{index}]"), "device"),
                reason,
            )),
            other => RegistryError::Invalid(other),
        })?;
        let pending = file::write_pending(&path, snap.entries())?;
        let after = snap.get(site, device).cloned();
        if let Err(e) = audit(before.as_ref(), after.as_ref()) {
            pending.discard();
            return Err(e);
        }
        let stamp = pending.commit()?;
        self.install(snap, stamp);
        Ok(before)
    }
}

/// Checks the file every `check_s` until `cancel`, applying a changed version.
pub(crate) async fn watch(registry: Arc<Registry>, cancel: tokio_util::sync::CancellationToken) {
    if registry.cfg.file.is_none() {
        return;
    }
    let mut every = tokio::time::interval(std::time::Duration::from_secs(registry.cfg.check_s));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => {}
        }
        let r = registry.clone();
        match tokio::task::spawn_blocking(move || r.reload_if_changed()).await {
            Ok(Ok(true)) => tracing::info!(
                devices = registry.snapshot().len(),
                "device registry reloaded (file changed)"
            ),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "device registry file refused; keeping the running registry")
            }
            Err(e) => tracing::error!(error = %e, "device registry check failed"),
        }
    }
}

#[cfg(test)]
mod tests;
