use super::*;

const TOML: &str = r#"
[[devices]]
site = "r7"
device = "trap-1"
kind = "grease_trap"
name = "Trap under the wash sink"
dev_eui = "24E1-2471-3B12-3456"
owner = "Wang Wei"
shop = "Golden Dragon"
location = { lat = 31.2304, lon = 121.4737 }

[[devices]]
site = "s2"
device = "cam-1"
kind = "parking_camera"
[devices.installation]
notes = "pole 3, facing north"
[[devices.installation.camera_zones]]
id = "kerb"
polygon = [[0, 400], [640, 400], [640, 480]]
"#;

fn registry_with(dir: &std::path::Path, name: &str, text: &str) -> Registry {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let cfg = RegistryConfig {
        file: Some(path),
        ..RegistryConfig::default()
    };
    Registry::open(&cfg, Arc::new(Metrics::new())).unwrap()
}

#[test]
fn toml_file_is_indexed_by_name_and_normalized_dev_eui() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry_with(dir.path(), "reg.toml", TOML);
    let s = r.snapshot();
    assert_eq!(s.len(), 2);
    let e = s.by_eui("24e124713b123456").expect("by DevEUI");
    assert_eq!((e.site.as_str(), e.device.as_str()), ("r7", "trap-1"));
    assert_eq!(r.location("r7", "trap-1").map(|p| p.lat), Some(31.2304));
    let cam = r.get("s2", "cam-1").unwrap();
    assert_eq!(cam.installation.camera_zones[0].id, "kerb");
}

#[test]
fn bad_entries_are_refused_naming_the_entry_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.toml");
    for (text, key) in [
        (
            "[[devices]]\nsite='a'\ndevice='b'\nkind='other'\ndev_eui='xyz'\n",
            "devices[0].dev_eui",
        ),
        (
            "[[devices]]\nsite='a'\ndevice='b'\nkind='other'\nlocation={lat=91.0,lon=0.0}\n",
            "devices[0].location",
        ),
        (
            "[[devices]]\nsite='a'\ndevice='b'\nkind='other'\n[[devices]]\nsite='a'\ndevice='b'\nkind='other'\n",
            "devices[1].device",
        ),
        (
            "[[devices]]\nsite='a'\ndevice='b'\nkind='other'\ncolour='red'\n",
            "colour",
        ),
        (
            "[[devices]]\nsite='a'\ndevice='b'\nkind='grease_trap'\n\
             [devices.installation.trap]\nreports='distance'\nshape='rectangular'\nlength_mm=900.0\n",
            "devices[0].installation.trap.width_mm",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = file::load(&path).expect_err("refused").to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn unknown_dev_eui_is_kept_under_the_placeholder_site_and_listed() {
    let r = Registry::empty();
    let out = r.resolve_eui("0101010101010101", None, "application/x/up", 5);
    assert_eq!(
        out,
        EuiOutcome::StoredAs {
            site: "unregistered".into(),
            device: "0101010101010101".into()
        }
    );
    r.resolve_eui("0101010101010101", None, "application/x/up", 9);
    let rows = r.unknown();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].messages, rows[0].last_seen_ms), (2, 9));
    assert_eq!(rows[0].readings, "stored");
}

#[test]
fn dead_letter_policy_refuses_unknown_dev_eui_but_still_lists_it() {
    let cfg = RegistryConfig {
        unregistered: UnregisteredPolicy::DeadLetter,
        ..RegistryConfig::default()
    };
    let r = Registry::open(&cfg, Arc::new(Metrics::new())).unwrap();
    assert_eq!(
        r.resolve_eui("0101010101010101", None, "t", 1),
        EuiOutcome::Refused
    );
    assert_eq!(r.unknown()[0].readings, "dead_lettered");
}

#[test]
fn native_devices_are_checked_only_when_a_file_is_configured() {
    let r = Registry::empty();
    r.note_device("r1", "d1", "v1/r1/d1/telemetry", 1);
    assert!(r.unknown().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let r = registry_with(dir.path(), "reg.toml", TOML);
    r.note_device("r7", "trap-1", "v1/r7/trap-1/telemetry", 1);
    r.note_device("r1", "d1", "v1/r1/d1/telemetry", 1);
    let rows = r.unknown();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, "r1/d1");
}

#[test]
fn edits_are_audited_written_and_applied_and_a_failed_audit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry_with(dir.path(), "reg.toml", TOML);
    r.resolve_eui("0101010101010101", None, "t", 1);
    let entry = DeviceEntry {
        site: "r9".into(),
        device: "udl-9".into(),
        kind: DeviceKind::GreaseTrap,
        name: None,
        dev_eui: Some("0101010101010101".into()),
        location: Some(GeoPoint {
            lat: 30.0,
            lon: 120.0,
        }),
        owner: None,
        owner_phone: None,
        owner_address: None,
        shop: Some("Noodle bar".into()),
        installation: Installation::default(),
    };
    // A failed audit leaves registry and file as they were.
    let e = r.put(entry.clone(), |_, _| {
        Err(RegistryError::File {
            path: "audit".into(),
            reason: "down".into(),
        })
    });
    assert!(e.is_err());
    assert!(r.get("r9", "udl-9").is_none());
    assert!(
        !std::fs::read_to_string(dir.path().join("reg.toml"))
            .unwrap()
            .contains("udl-9")
    );
    let mut audited = None;
    let before = r
        .put(entry, |b, a| {
            audited = Some((b.cloned(), a.cloned()));
            Ok(())
        })
        .unwrap();
    assert!(before.is_none());
    let (b, a) = audited.unwrap();
    assert!(b.is_none());
    assert_eq!(a.unwrap().dev_eui.as_deref(), Some("0101010101010101"));
    // Applied, written (a fresh load sees it), the unknown row gone, old entries kept.
    assert_eq!(
        r.snapshot().by_eui("0101010101010101").unwrap().device,
        "udl-9"
    );
    assert!(r.unknown().is_empty());
    let again = registry_with_existing(&dir.path().join("reg.toml"));
    assert_eq!(again.snapshot().len(), 3);
    // Nothing to reload: the stamp is ours.
    assert!(!r.reload_if_changed().unwrap());
    let removed = r.remove("r9", "udl-9", |_, _| Ok(())).unwrap();
    assert_eq!(removed.device, "udl-9");
    assert!(matches!(
        r.remove("r9", "udl-9", |_, _| Ok(())),
        Err(RegistryError::NotFound(_))
    ));
}

fn registry_with_existing(path: &std::path::Path) -> Registry {
    let cfg = RegistryConfig {
        file: Some(path.to_path_buf()),
        ..RegistryConfig::default()
    };
    Registry::open(&cfg, Arc::new(Metrics::new())).unwrap()
}

#[test]
fn a_changed_file_is_reloaded_and_a_bad_one_keeps_the_running_registry() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry_with(dir.path(), "reg.csv", "site,device,kind\nr1,d1,other\n");
    assert_eq!(r.snapshot().len(), 1);
    let path = dir.path().join("reg.csv");
    std::fs::write(
        &path,
        "site,device,kind\nr1,d1,other\nr1,d2,manhole_cover\n",
    )
    .unwrap();
    assert!(r.reload_if_changed().unwrap());
    assert_eq!(r.snapshot().len(), 2);
    std::fs::write(&path, "site,device,kind\nr1,d1,toaster\n").unwrap();
    assert!(r.reload_if_changed().is_err());
    assert_eq!(r.snapshot().len(), 2, "running registry kept");
    // The same bad version is not retried every check.
    assert!(!r.reload_if_changed().unwrap());
}

#[test]
fn the_example_registry_loads() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry_with(
        dir.path(),
        "registry.toml",
        include_str!("../../../deploy/registry.example.toml"),
    );
    let s = r.snapshot();
    assert_eq!(s.len(), 4);
    assert_eq!(s.by_eui("24e124710c408089").unwrap().device, "cover-17");
    let traps = s.traps();
    assert_eq!(traps.len(), 1);
    assert_eq!(traps[0].area_mm2(), Some(720_000.0));
}

#[test]
fn a_registered_trap_reaches_the_rules_at_once_and_wins_over_the_configured_one() {
    use crate::install::trap::{Reports, TrapInstall};
    let dir = tempfile::tempdir().unwrap();
    let r = registry_with(dir.path(), "reg.toml", TOML);
    let configured = TrapInstall {
        site: "r7".into(),
        device: "trap-1".into(),
        shape: None,
        length_mm: None,
        width_mm: None,
        diameter_mm: None,
        working_depth_mm: Some(500.0),
        sensor_height_mm: Some(900.0),
        reports: Reports::Distance,
        metric: None,
    };
    let traps = TrapInstalls::new(std::slice::from_ref(&configured));
    r.feed_traps(traps.clone());
    assert_eq!(traps.get("r7", "trap-1"), Some(configured.clone()));
    // An installer adds the geometry through the API: the rules' copy changes at once.
    let mut e = r.get("r7", "trap-1").unwrap();
    let mount: crate::install::trap::TrapMount = serde_json::from_value(serde_json::json!({
        "shape": "rectangular", "length_mm": 1200.0, "width_mm": 600.0,
        "working_depth_mm": 800.0, "sensor_height_mm": 1000.0, "reports": "distance"
    }))
    .unwrap();
    e.installation.trap = Some(mount.clone());
    r.put(e.clone(), |_, _| Ok(())).unwrap();
    assert_eq!(traps.get("r7", "trap-1"), Some(mount.at("r7", "trap-1")));
    assert_eq!(
        traps.get("r7", "trap-1").unwrap().area_mm2(),
        Some(720_000.0)
    );
    // Written to the file and read back the same.
    let again = registry_with_existing(&dir.path().join("reg.toml"));
    assert_eq!(again.snapshot().traps(), vec![mount.at("r7", "trap-1")]);
    // Taken out of the registry: the configured geometry is back.
    e.installation.trap = None;
    r.put(e, |_, _| Ok(())).unwrap();
    assert_eq!(traps.get("r7", "trap-1"), Some(configured));
}

#[test]
fn the_owner_contact_is_the_devices_or_the_one_its_site_agrees_on() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[[devices]]
site = "r1"
device = "trap-1"
kind = "grease_trap"
owner = "Wang Wei"
owner_phone = "13800138000"
[[devices]]
site = "r1"
device = "cam-1"
kind = "kitchen_camera"
[[devices]]
site = "r2"
device = "a"
kind = "other"
owner_phone = "13800000001"
[[devices]]
site = "r2"
device = "b"
kind = "other"
owner_phone = "13800000002"
"#;
    let r = registry_with(dir.path(), "reg.toml", text);
    let subject = |site: &str, device: Option<&str>| Subject {
        site: site.into(),
        device: device.map(String::from),
        ..Default::default()
    };
    let c = r
        .owner_contact(&subject("r1", Some("trap-1")))
        .expect("own entry");
    assert_eq!(c.phone.as_deref(), Some("13800138000"));
    assert_eq!(c.name.as_deref(), Some("Wang Wei"));
    // A device without a contact, or a site-wide clue: the site's one contact.
    assert!(r.owner_contact(&subject("r1", Some("cam-1"))).is_some());
    assert!(r.owner_contact(&subject("r1", None)).is_some());
    // Two owners on one site: whom to tell is a person's call.
    assert!(r.owner_contact(&subject("r2", None)).is_none());
    assert!(r.owner_contact(&subject("r2", Some("a"))).is_some());
    assert!(r.owner_contact(&subject("nowhere", None)).is_none());
    // In a CSV registry too, and written back with the new columns.
    let csv =
        "site,device,kind,owner_phone,owner_address\nr3,d,other,13800000003,12 Beijing Road\n";
    let r = registry_with(dir.path(), "reg.csv", csv);
    let c = r
        .owner_contact(&subject("r3", Some("d")))
        .expect("csv entry");
    assert_eq!(c.address.as_deref(), Some("12 Beijing Road"));
}
