//! The decoder's index of native devices: a topic's site and device resolved, with one
//! lookup, to their shared names and to the device's slot in the live device table.
//!
//! Why (issue 24): with 10,000 devices every message's device was found twice with a cold
//! hash lookup of its own, once by the decoder's interner (the device's name) and again by
//! the processor in the device table (its slot, for the sequence window, the table row and
//! the history). Each was a few cache misses per message. Here the decoder's one lookup
//! answers both, and the processor reuses the slot it brings ([`crate::pipeline::Intake`]).

use crate::devices::{DeviceSlot, DeviceTable};
use crate::reading::{Name, Names};
use std::sync::Arc;

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Site, then device: the device's interned name and its slot in the device table.
#[derive(Default)]
pub(crate) struct DeviceNames {
    sites: FastMap<Name, FastMap<Key, (Name, Arc<DeviceSlot>)>>,
    /// Devices held: bounded like [`Names`], as topics come from the outside.
    held: usize,
    /// The site of the latest message: most messages come from the site before them (one
    /// site per gateway is usual), and comparing its text is cheaper than interning it again
    /// (hashing and probing the interner: ~450 instructions a message, issue 24).
    last_site: Option<Name>,
}

/// A device's text, held in the map's own entry when short (device ids are), so finding a
/// device compares bytes loaded with the entry instead of following a pointer to the name's
/// text: with 10,000 devices that was a cache miss per message (issue 24, perf: the comparison
/// was 1.6 % of the gateway's samples).
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Long(Box<str>),
}

/// Longest text a [`Key`] holds in place (the key is then 32 bytes).
const INLINE_KEY: usize = 30;

impl Key {
    fn new(text: &str) -> Key {
        if text.len() > INLINE_KEY {
            return Key::Long(text.into());
        }
        let mut bytes = [0u8; INLINE_KEY];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Key::Inline {
            len: text.len() as u8,
            bytes,
        }
    }

    /// The text's bytes. Hashed, compared and looked up as bytes: a lookup by `&str` checked
    /// the entry's inline bytes as UTF-8 on every compare (~100 instructions a message, issue
    /// 24); the bytes are a whole UTF-8 text copied in, so equal bytes are equal texts.
    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Long(text) => text.as_bytes(),
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.bytes().hash(h);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Key {}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

/// A message's device: its shared names and, when the decoder knows the device table, its slot.
pub(crate) struct Resolved {
    pub site: Name,
    pub device: Name,
    pub slot: Option<Arc<DeviceSlot>>,
}

impl DeviceNames {
    /// Devices held before starting over (only sharing is lost then: slots live in the table).
    const MAX_DEVICES: usize = Names::MAX_NAMES;

    /// The names of `site`/`device` (interned in `names`) and, for a device seen before, its
    /// slot in `table`; a new device gets its slot from [`DeviceNames::remember`] once its
    /// message decoded (so a stream of undecodable messages makes no slots).
    pub(crate) fn resolve(
        &mut self,
        names: &mut Names,
        table: Option<&DeviceTable>,
        site: &str,
        device: &str,
    ) -> Resolved {
        let site = match &self.last_site {
            Some(last) if last.as_str() == site => last.clone(),
            _ => {
                let name = names.get(site);
                self.last_site = Some(name.clone());
                name
            }
        };
        if table.is_some()
            && let Some((name, slot)) = self
                .sites
                .get(&site)
                .and_then(|devices| devices.get(device.as_bytes()))
        {
            return Resolved {
                device: name.clone(),
                slot: Some(slot.clone()),
                site,
            };
        }
        Resolved {
            site,
            device: names.get(device),
            slot: None,
        }
    }

    /// The slot of a device [`DeviceNames::resolve`] did not know, made in `table` if new
    /// there too, and remembered.
    pub(crate) fn remember(
        &mut self,
        table: &DeviceTable,
        site: &Name,
        device: &Name,
    ) -> Arc<DeviceSlot> {
        if self.held >= Self::MAX_DEVICES {
            self.sites.clear();
            self.held = 0;
            self.last_site = None;
        }
        let slot = table.slot(site, device);
        let devices = self.sites.entry(site.clone()).or_default();
        if devices
            .insert(Key::new(device), (device.clone(), slot.clone()))
            .is_none()
        {
            self.held += 1;
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the decoder does per message: resolve, then remember a new device.
    fn slot_of(
        index: &mut DeviceNames,
        names: &mut Names,
        t: &DeviceTable,
        s: &str,
        d: &str,
    ) -> Resolved {
        let mut r = index.resolve(names, Some(t), s, d);
        if r.slot.is_none() {
            r.slot = Some(index.remember(t, &r.site, &r.device));
        }
        r
    }

    /// The same device always gets the table's own slot and the interned names; devices are
    /// told apart by site and device together; without a table only the names are resolved.
    #[test]
    fn a_device_resolves_to_its_own_slot_in_the_table() {
        let table = DeviceTable::new(60_000);
        let mut names = Names::new();
        let mut index = DeviceNames::default();
        let a = slot_of(&mut index, &mut names, &table, "s1", "d1");
        let again = index.resolve(&mut names, Some(&table), "s1", "d1");
        let other_site = slot_of(&mut index, &mut names, &table, "s2", "d1");
        let other_device = slot_of(&mut index, &mut names, &table, "s1", "d2");
        let slot = |r: &Resolved| r.slot.clone().expect("a slot");
        assert!(Arc::ptr_eq(&slot(&a), &slot(&again)), "known: found");
        assert!(Arc::ptr_eq(&slot(&a), &table.slot(&a.site, &a.device)));
        assert!(!Arc::ptr_eq(&slot(&a), &slot(&other_site)));
        assert!(!Arc::ptr_eq(&slot(&a), &slot(&other_device)));
        assert!(!Arc::ptr_eq(&slot(&other_site), &slot(&other_device)));
        assert!(Arc::ptr_eq(
            &slot(&other_site),
            &table.slot(&Name::from("s2"), &Name::from("d1"))
        ));
        assert_eq!((a.site.as_str(), a.device.as_str()), ("s1", "d1"));
        assert_eq!(
            (other_site.site.as_str(), other_site.device.as_str()),
            ("s2", "d1")
        );
        assert_eq!(again.device, names.get("d1"));
        assert!(
            index
                .resolve(&mut names, Some(&table), "s3", "d1")
                .slot
                .is_none(),
            "a new device has no slot until remembered"
        );
        let bare = index.resolve(&mut names, None, "s1", "d1");
        assert!(bare.slot.is_none(), "no table, no slot");
        assert_eq!((bare.site.as_str(), bare.device.as_str()), ("s1", "d1"));
        assert_eq!(index.held, 3);
    }

    /// Short and long texts, multi-byte ones included, are found by their text alone, and
    /// texts that share a start are told apart (the inline form must not compare its padding
    /// or a prefix).
    #[test]
    fn device_keys_are_found_by_their_whole_text() {
        let long = "d".repeat(INLINE_KEY + 1);
        let edge = "é".repeat(INLINE_KEY / 2);
        let texts = [
            "",
            "d",
            "d1",
            "d10",
            "dé",
            long.as_str(),
            &long[..INLINE_KEY],
            edge.as_str(),
        ];
        let mut map: FastMap<Key, usize> = FastMap::default();
        for (i, t) in texts.iter().enumerate() {
            assert!(map.insert(Key::new(t), i).is_none(), "{t:?} is new");
        }
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(map.get(t.as_bytes()), Some(&i), "{t:?}");
            assert_eq!(Key::new(t).bytes(), t.as_bytes());
        }
        assert!(!map.contains_key("d100".as_bytes()) && !map.contains_key("d\0".as_bytes()));
        assert!(matches!(Key::new(&long), Key::Long(_)));
        assert!(matches!(Key::new(&edge), Key::Inline { .. }));
    }

    /// Past its bound the index starts over; the table's slots stay the same.
    #[test]
    fn the_index_is_bounded_and_slots_survive_a_restart() {
        let table = DeviceTable::new(60_000);
        let mut names = Names::new();
        let mut index = DeviceNames::default();
        let first = slot_of(&mut index, &mut names, &table, "s", "d0");
        index.held = DeviceNames::MAX_DEVICES;
        let after = slot_of(&mut index, &mut names, &table, "s", "d1");
        assert_eq!(index.held, 1, "started over");
        assert!(
            index
                .resolve(&mut names, Some(&table), "s", "d0")
                .slot
                .is_none()
        );
        let back = slot_of(&mut index, &mut names, &table, "s", "d0");
        assert!(Arc::ptr_eq(
            first.slot.as_ref().expect("slot"),
            back.slot.as_ref().expect("slot")
        ));
        assert!(after.slot.is_some());
    }
}
