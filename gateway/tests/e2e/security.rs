//! The promises of `SECURITY.md`, each pinned through the real binary: who may see what, what
//! a role without the personal-data right gets, and that tokens and clue ids reveal nothing.
//! Every test here failed on the code before its fix (issue 19).

use crate::common::{GatewayProcess, call};
use anyhow::{Context, Result};
use e2e::{free_port, http};
use serde_json::{Value, json};

/// No broker in reach and no MQTT delivery: the API needs neither.
fn offline_config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"security-test\"\n[clues]\nmqtt_publish = false\n",
        free_port()
    )
}

/// The whole audit chain's entries of one `action`, as the admin exports them.
fn audit_entries(gw: &GatewayProcess, action: &str) -> Result<Vec<Value>> {
    let admin = gw.token("admin", "")?;
    let audit = call(gw, "GET", "/api/v1/audit/export?format=json", &admin, None)?
        .ok()?
        .json()?;
    let Value::Array(entries) = audit else {
        anyhow::bail!("audit export is not a list: {audit}");
    };
    Ok(entries
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect())
}

fn clue_event(site: &str, device: &str) -> Value {
    json!({
        "rule": "cover-open",
        "kind": "manhole.cover_open",
        "level": "high",
        "subject": {"site": site, "device": device},
        "dedup_key": format!("cover-open/{site}/{device}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("Cover open at {site}/{device}"),
        "detail": {},
        "evidence": [],
    })
}

fn create(gw: &GatewayProcess, token: &str, ev: &Value) -> Result<i64> {
    let v = call(gw, "POST", "/api/v1/clues", token, Some(ev))?
        .ok()?
        .json()?;
    v["clue"]["id"].as_i64().context("clue id")
}

#[test]
fn another_sites_clue_answers_exactly_like_a_missing_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = gw.token("admin", "")?;
    let insp_a = gw.token("inspector", "a")?;
    let b = create(&gw, &admin, &clue_event("b", "m9"))?;
    let missing = b + 1000;
    for (suffix, method, body) in [
        ("", "GET", None),
        ("/audit", "GET", None),
        ("/actions", "POST", Some(json!({"action": "claim"}))),
        ("/evidence/00", "GET", None),
    ] {
        let theirs = call(
            &gw,
            method,
            &format!("/api/v1/clues/{b}{suffix}"),
            &insp_a,
            body.as_ref(),
        )?;
        let none = call(
            &gw,
            method,
            &format!("/api/v1/clues/{missing}{suffix}"),
            &insp_a,
            body.as_ref(),
        )?;
        assert_eq!(theirs.status, 404, "{suffix}: {}", theirs.text());
        assert_eq!(none.status, 404, "{suffix}: {}", none.text());
        assert_eq!(
            theirs.text().replace(&b.to_string(), "ID"),
            none.text().replace(&missing.to_string(), "ID"),
            "{suffix}: same body"
        );
    }
    Ok(())
}

#[test]
fn failed_logins_from_one_address_never_lock_out_a_valid_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let insp = gw.token("inspector", "a")?;
    // Another client behind the same address (a proxy) keeps presenting a wrong token.
    for i in 0..40 {
        let r = call(
            &gw,
            "GET",
            "/api/v1/clues",
            &format!("gwt_badbadbadbadbad{i:02}"),
            None,
        )?;
        assert!(r.status == 401 || r.status == 429, "{}", r.status);
    }
    let repeated: Vec<u16> = (0..25)
        .map(|_| {
            call(
                &gw,
                "GET",
                "/api/v1/clues",
                "gwt_0000000000000000dead",
                None,
            )
            .map(|r| r.status)
            .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        repeated.last(),
        Some(&429),
        "one wrong token repeated is limited"
    );
    let r = call(&gw, "GET", "/api/v1/clues", &insp, None)?;
    assert_eq!(r.status, 200, "the valid token still works: {}", r.text());
    Ok(())
}

fn parking_event(site: &str, plate: &str, title_prefix: &str) -> Value {
    json!({
        "rule": "no-parking",
        "kind": "parking.illegal",
        "level": "medium",
        "subject": {"site": site, "device": "cam1", "plate": plate},
        "dedup_key": format!("no-parking/{site}/cam1/{plate}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("{title_prefix}{plate} parked 9 min"),
        "detail": {"plate": plate, "note": format!("plate {plate} read twice")},
        "evidence": [],
    })
}

/// A textured JPEG (masking must visibly change it).
fn scene_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        let v = ((x * 37 + y * 11) % 256) as u8;
        image::Rgb([v, (x * y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg");
    out.into_inner()
}

/// `POST /api/v1/cameras/{camera}/{route}?site=a` (`frames` or `reference`) with `token`.
fn post_camera(
    gw: &GatewayProcess,
    token: &str,
    camera: &str,
    route: &str,
    jpeg: &[u8],
) -> Result<http::Response> {
    http::request(
        "POST",
        &format!("{}/api/v1/cameras/{camera}/{route}?site=a", gw.http),
        Some(("image/jpeg", jpeg)),
        &[("Authorization", &format!("Bearer {token}"))],
        http::TIMEOUT,
    )
}

#[test]
fn plates_are_masked_on_every_read_path_for_roles_without_the_right() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let platform = gw.token("platform", "a")?;
    let insp = gw.token("inspector", "a")?;
    let sup = gw.token("supervisor", "a")?;
    let plate = "京A12345";
    let id = create(&gw, &platform, &parking_event("a", plate, ""))?;
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        &insp,
        Some(&json!({"action": "comment", "text": "seen again"})),
    )?
    .ok()?;
    for path in [
        "/api/v1/clues".to_string(),
        format!("/api/v1/clues/{id}"),
        format!("/api/v1/clues/{id}/audit"),
        "/api/v1/clues/export?format=csv".into(),
        "/api/v1/clues/export?format=json".into(),
    ] {
        let r = call(&gw, "GET", &path, &insp, None)?.ok()?;
        assert!(!r.text().contains("12345"), "{path}: {}", r.text());
        assert!(r.text().contains("京A*****"), "{path}: {}", r.text());
        let full = call(&gw, "GET", &path, &sup, None)?.ok()?;
        assert!(full.text().contains(plate), "{path}: supervisors see it");
    }
    // The action answer carries the clue too.
    let r = call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        &insp,
        Some(&json!({"action": "claim"})),
    )?
    .ok()?;
    assert!(!r.text().contains("12345"), "{}", r.text());

    // The last camera frame: masked for the inspector, original (audited) for the supervisor.
    let device = gw.relay_token("a")?;
    let frame = scene_jpeg();
    let auth = format!("Bearer {device}");
    http::request(
        "POST",
        &format!("{}/api/v1/cameras/cam1/frames?site=a", gw.http),
        Some(("image/jpeg", &frame)),
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )?
    .ok()?;
    let latest = "/api/v1/cameras/cam1/latest.jpg?site=a";
    let masked = call(&gw, "GET", latest, &insp, None)?.ok()?;
    assert_ne!(masked.body, frame, "the inspector never gets the raw frame");
    let decoded = image::load_from_memory(&masked.body)?;
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    let original = call(&gw, "GET", latest, &sup, None)?.ok()?;
    assert_eq!(original.body, frame);
    let accesses = audit_entries(&gw, "frame_original_access")?;
    assert_eq!(accesses.len(), 1, "{accesses:?}");
    assert_eq!(accesses[0]["detail"]["camera"], "cam1");
    Ok(())
}

#[test]
fn csv_exports_neutralise_formulas_and_a_limited_export_says_so() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = gw.token("admin", "")?;
    create(
        &gw,
        &admin,
        &parking_event("a", "沪B54321", "=HYPERLINK(\"http://x\",\"y\")"),
    )?;
    for d in ["m1", "m2"] {
        create(&gw, &admin, &clue_event("a", d))?;
    }
    let csv = call(&gw, "GET", "/api/v1/clues/export?format=csv", &admin, None)?.ok()?;
    let text = csv.text();
    assert!(text.contains("'=HYPERLINK"), "{text}");
    assert!(
        !text.contains(",=") && !text.contains(",\"="),
        "no field starts with a formula: {text}"
    );
    assert_eq!(csv.header("x-export-truncated"), Some("false"));

    let cut = call(
        &gw,
        "GET",
        "/api/v1/clues/export?format=json&limit=2",
        &admin,
        None,
    )?
    .ok()?;
    assert_eq!(cut.json()?.as_array().map(|a| a.len()), Some(2));
    assert_eq!(cut.header("x-export-truncated"), Some("true"));
    let audit = call(
        &gw,
        "GET",
        "/api/v1/audit/export?format=csv&limit=2",
        &admin,
        None,
    )?
    .ok()?;
    assert_eq!(audit.header("x-export-truncated"), Some("true"));
    assert!(audit.header("x-export-next-from-ms").is_some());
    Ok(())
}

#[test]
fn pumpouts_are_audited_and_cannot_lie_in_the_future_or_the_distant_past() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let insp = gw.token("inspector", "a")?;
    let now = e2e::now_ms();
    let visit =
        |from: i64, to: i64| json!({"site": "a", "device": "trap-1", "from_ms": from, "to_ms": to});
    let hour = 3_600_000i64;

    // A visit booked ahead would excuse dumping that has not happened yet; one from last
    // month would excuse a discharge after the fact.
    for (what, body) in [
        ("future", visit(now + hour, now + 2 * hour)),
        ("ends in the future", visit(now - hour, now + hour)),
        (
            "too old",
            visit(now - 8 * 24 * hour, now - 8 * 24 * hour + hour),
        ),
    ] {
        let r = call(&gw, "POST", "/api/v1/pumpouts", &insp, Some(&body))?;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    let r = call(
        &gw,
        "POST",
        "/api/v1/pumpouts",
        &insp,
        Some(&visit(now - 2 * hour, now - hour)),
    )?;
    assert_eq!(r.status, 201, "{}", r.text());

    let registered = audit_entries(&gw, "pumpout_registered")?;
    let audit = format!("{registered:?}");
    assert_eq!(
        registered.len(),
        1,
        "only the accepted visit is audited: {audit}"
    );
    assert!(
        registered[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("inspector")),
        "{audit}"
    );
    assert_eq!(registered[0]["detail"]["pumpout"]["device"], "trap-1");
    assert_eq!(registered[0]["detail"]["pumpout"]["to_ms"], now - hour);
    Ok(())
}

/// `gateway audit verify --config` (plus `extra` arguments): (exit ok, everything printed).
fn verify_cli(gw: &GatewayProcess, extra: &[&str]) -> Result<(bool, String)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["audit", "verify", "--config"])
        .arg(gw.dir.join("gateway.toml"))
        .args(extra)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Every audit row from `from_seq` on gets its plain SHA-256 recomputed, as someone who can
/// write the database (but has no key) would after an edit.
fn rehash_plain_from(conn: &rusqlite::Connection, from_seq: i64) -> Result<()> {
    rehash_from(conn, from_seq, None)
}

/// Every audit row from `from_seq` on gets its hash recomputed: sealed with `key` (someone who
/// holds the database and that key), plain without one.
fn rehash_from(
    conn: &rusqlite::Connection,
    from_seq: i64,
    key: Option<&gateway::clue::audit_key::AuditKey>,
) -> Result<()> {
    type Row = (i64, i64, String, String, Option<i64>, String);
    let rows: Vec<Row> = conn
        .prepare(
            "SELECT seq, at_ms, actor, action, clue_id, detail FROM audit WHERE seq >= ?1 \
             ORDER BY seq",
        )?
        .query_map([from_seq], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut prev: String = conn
        .query_row(
            "SELECT hash FROM audit WHERE seq = ?1",
            [from_seq - 1],
            |r| r.get(0),
        )
        .unwrap_or_else(|_| gateway::clue::audit::GENESIS.to_string());
    for (seq, at_ms, actor, action, clue_id, detail) in rows {
        let detail: Value = serde_json::from_str(&detail)?;
        let fields = gateway::clue::audit::Fields {
            seq,
            at_ms,
            actor: &actor,
            action: &action,
            clue_id,
            detail: &detail,
        };
        let hash = gateway::clue::audit::seal(key, &prev, &fields);
        conn.execute(
            "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
            rusqlite::params![seq, prev, hash],
        )?;
        prev = hash;
    }
    Ok(())
}

#[test]
fn an_audit_entry_edited_with_every_hash_recomputed_fails_verify() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = gw.token_named("admin", "", "root")?;
    for d in ["m1", "m2", "m3"] {
        create(&gw, &admin, &clue_event("a", d))?;
    }
    gw.proc.stop()?;
    let key_file = dir.path().join("storage/audit.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file)?.permissions());
    assert_eq!(mode & 0o777, 0o600, "the key file is the owner's only");
    let (ok, out) = verify_cli(&gw, &[])?;
    assert!(
        ok && out.contains("sealed with the key from entry 1"),
        "{out}"
    );

    // Whoever holds the database: drop the trigger, edit the first entry (who created the
    // admin token), recompute every hash after it. Plain SHA-256 cannot tell.
    let conn = rusqlite::Connection::open(dir.path().join("storage/clues.sqlite"))?;
    conn.execute_batch("DROP TRIGGER audit_no_update;")?;
    conn.execute(
        "UPDATE audit SET detail = replace(detail, 'root', 'nobody') WHERE seq = 1",
        [],
    )?;
    rehash_plain_from(&conn, 1)?;
    drop(conn);
    let (ok, out) = verify_cli(&gw, &[])?;
    assert!(!ok, "a chain rewritten without the key must fail: {out}");
    assert!(out.contains("rewritten without the key"), "{out}");

    // The same from the middle of the chain: a plain entry after sealed ones.
    let dir2 = tempfile::tempdir()?;
    let mut gw2 = GatewayProcess::start(dir2.path(), &offline_config())?;
    let admin2 = gw2.token("admin", "")?;
    for d in ["m1", "m2", "m3"] {
        create(&gw2, &admin2, &clue_event("a", d))?;
    }
    gw2.proc.stop()?;
    let conn = rusqlite::Connection::open(dir2.path().join("storage/clues.sqlite"))?;
    conn.execute_batch("DROP TRIGGER audit_no_update;")?;
    conn.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 3", [])?;
    rehash_plain_from(&conn, 3)?;
    drop(conn);
    let (ok, out) = verify_cli(&gw2, &[])?;
    assert!(!ok, "{out}");
    assert!(out.contains("entry 3"), "{out}");
    Ok(())
}

/// `gateway audit rotate-key`: the chain stays one verifiable chain across the switch, the old
/// key is kept among the retired keys, an entry after the rotation recomputed with the old key
/// is named, verify without the retired key names the key it lacks, and `store migrate` copies
/// the rotated chain to PostgreSQL, verified there with the same keyring.
#[test]
fn the_audit_key_rotates_and_the_chain_stays_one_verifiable_chain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = gw.token("admin", "")?;
    create(&gw, &admin, &clue_event("a", "m1"))?;
    gw.proc.stop()?;
    let storage = dir.path().join("storage");
    let old_id = gateway::clue::audit_key::AuditKey::from_hex(
        &std::fs::read_to_string(storage.join("audit.key"))?,
        "old key",
    )?
    .id()
    .to_string();

    let rotate = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["audit", "rotate-key", "--config"])
        .arg(gw.dir.join("gateway.toml"))
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&rotate.stdout),
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(rotate.status.success(), "{text}");
    assert!(
        text.contains(&format!("audit key rotated: {old_id} -> ")),
        "{text}"
    );
    let retired = storage.join(format!("audit-keys-retired/{old_id}.key"));
    assert!(retired.is_file(), "{text}");

    // The gateway starts with the new key and seals with it.
    gw.start_again()?;
    create(&gw, &admin, &clue_event("a", "m2"))?;
    gw.proc.stop()?;
    let (ok, out) = verify_cli(&gw, &[])?;
    assert!(
        ok && out.contains(&format!("keys: {old_id} from entry 1")),
        "{out}"
    );
    let conn = rusqlite::Connection::open(storage.join("clues.sqlite"))?;
    let rotation: (i64, String) = conn.query_row(
        "SELECT seq, detail FROM audit WHERE action = 'audit_key_rotated'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert!(rotation.1.contains(&old_id), "{rotation:?}");

    // Without the retired key: verify names the key id it lacks.
    let aside = dir.path().join("retired-aside");
    std::fs::rename(storage.join("audit-keys-retired"), &aside)?;
    let (ok, out) = verify_cli(&gw, &[])?;
    assert!(
        !ok && out.contains(&format!("sealed with key {old_id}")),
        "{out}"
    );
    assert!(out.contains("not in the keyring"), "{out}");
    std::fs::rename(&aside, storage.join("audit-keys-retired"))?;

    // PostgreSQL: the rotated chain is copied and verified with the keyring beside the file.
    let pg = e2e::Postgres::start()?;
    let url = pg.create_database("clues")?;
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["store", "migrate", "--from"])
        .arg(format!("sqlite:{}", storage.join("clues.sqlite").display()))
        .args(["--to", &format!("postgres:{url}")])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&migrate.stdout),
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(migrate.status.success(), "{text}");
    assert!(text.contains("verified before and after"), "{text}");

    // Whoever kept the old key edits an entry after the rotation and recomputes the chain
    // from there with it: named.
    let old = gateway::clue::audit_key::AuditKey::from_hex(
        &std::fs::read_to_string(&retired)?,
        "retired key",
    )?;
    conn.execute_batch("DROP TRIGGER audit_no_update;")?;
    let edited = rotation.0 + 1;
    conn.execute("UPDATE audit SET actor = 'nobody' WHERE seq = ?1", [edited])?;
    rehash_from(&conn, edited, Some(&old))?;
    drop(conn);
    let (ok, out) = verify_cli(&gw, &[])?;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("entry {edited}"))
            && out.contains(&format!("sealed with key {old_id}")),
        "{out}"
    );
    Ok(())
}

/// The rotation by configuration, on a shared PostgreSQL whose gateways take the key from the
/// environment: `rotate-key` refuses and says how; the old key goes to the retired keys, the
/// new one into the variable, and the first start writes the rotation with the old key.
#[test]
fn the_audit_key_rotates_by_configuration_on_postgres() -> Result<()> {
    use crate::common::{TEST_AUDIT_KEY, TestStore};
    let store = TestStore::postgres()?;
    let dir = tempfile::tempdir()?;
    let mut gw = store.gateway(dir.path(), &offline_config())?;
    let admin = gw.token("admin", "")?;
    create(&gw, &admin, &clue_event("a", "m1"))?;
    gw.proc.stop()?;
    let cli = |env: &[(&str, &str)], args: &[&str]| -> Result<(bool, String)> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(args)
            .arg("--config")
            .arg(dir.path().join("gateway.toml"))
            .envs(env.iter().copied())
            .output()?;
        Ok((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    let old_env = store.env();
    let (ok, out) = cli(&old_env, &["audit", "rotate-key"])?;
    assert!(
        !ok && out.contains("key_env") && out.contains("retired_dir"),
        "{out}"
    );

    let old_id = gateway::clue::audit_key::AuditKey::from_hex(TEST_AUDIT_KEY, "old")?
        .id()
        .to_string();
    let retired = dir.path().join("storage/audit-keys-retired");
    std::fs::create_dir_all(&retired)?;
    let old_file = retired.join("2026.key");
    std::fs::write(&old_file, format!("{TEST_AUDIT_KEY}\n"))?;
    std::fs::set_permissions(
        &old_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let new_key = "a1".repeat(32);
    let new_id = gateway::clue::audit_key::AuditKey::from_hex(&new_key, "new")?
        .id()
        .to_string();
    let new_env: Vec<(&str, &str)> = old_env
        .iter()
        .map(|&(k, v)| {
            (
                k,
                if k == "E2E_AUDIT_KEY" {
                    new_key.as_str()
                } else {
                    v
                },
            )
        })
        .collect();
    let mut gw = GatewayProcess::start_with_env(dir.path(), &offline_config(), &new_env)?;
    create(&gw, &admin, &clue_event("a", "m2"))?;
    gw.proc.stop()?;
    let (ok, out) = cli(&new_env, &["audit", "verify"])?;
    assert!(
        ok && out.contains(&format!("keys: {old_id} from entry 1, {new_id} from entry")),
        "{out}"
    );
    // The gateway with the old key may no longer write; verify without the retired key names it.
    let (ok, out) = cli(&old_env, &["token", "create", "--role", "admin"])?;
    assert!(!ok && out.contains(&new_id), "{out}");
    std::fs::remove_file(&old_file)?;
    let (ok, out) = cli(&new_env, &["audit", "verify"])?;
    assert!(
        !ok && out.contains(&format!("sealed with key {old_id}")),
        "{out}"
    );
    Ok(())
}

#[test]
fn a_cut_off_tail_is_caught_against_the_last_published_head() -> Result<()> {
    let broker = e2e::Mosquitto::start()?;
    let sub = broker.subscribe("audit/v1/#")?;
    let dir = tempfile::tempdir()?;
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"security-head\"\n[clues.audit]\npublish_every_s = 1\n",
        broker.url()
    );
    let mut gw = GatewayProcess::start(dir.path(), &config)?;
    let admin = gw.token("admin", "")?;
    for d in ["m1", "m2"] {
        create(&gw, &admin, &clue_event("a", d))?;
    }
    // Two more entries (token creations), the tail that will be cut.
    gw.token("inspector", "a")?;
    gw.token("inspector", "a")?;
    let entries = call(&gw, "GET", "/api/v1/audit/export?format=json", &admin, None)?
        .ok()?
        .json()?;
    let last = entries
        .as_array()
        .and_then(|a| a.last())
        .context("audit entries")?
        .clone();
    let last_seq = last["seq"].as_i64().context("seq")?;
    // The platform receives the head (MQTT `audit/v1/head`), and the log has it too.
    let head: Value = e2e::wait_until(
        "the head published",
        std::time::Duration::from_secs(20),
        || {
            Ok(sub.messages().into_iter().find_map(|(topic, body)| {
                let v: Value = serde_json::from_str(&body).ok()?;
                (topic == "audit/v1/head" && v["seq"].as_i64() == Some(last_seq)).then_some(v)
            }))
        },
    )
    .with_context(|| gw.diagnostics())?;
    assert_eq!(head["hash"], last["hash"]);
    assert!(
        head["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("hmac-sha256:"))
    );
    let log = std::fs::read_to_string(dir.path().join("gateway.log"))?;
    assert!(
        log.lines().any(|l| l.contains("audit chain head published")
            && head["hash"].as_str().is_some_and(|h| l.contains(h))),
        "the head is in the log"
    );
    gw.proc.stop()?;

    // Cut the tail: the chain that is left is valid on its own ...
    let conn = rusqlite::Connection::open(dir.path().join("storage/clues.sqlite"))?;
    conn.execute_batch("DROP TRIGGER audit_no_delete;")?;
    conn.execute("DELETE FROM audit WHERE seq > ?1", [last_seq - 2])?;
    drop(conn);
    let (ok, out) = verify_cli(&gw, &[])?;
    assert!(ok, "without the head a cut is invisible: {out}");
    // ... but not against the head the platform holds.
    let seq = last_seq.to_string();
    let hash = head["hash"].as_str().context("hash")?;
    let (ok, out) = verify_cli(&gw, &["--head-seq", &seq, "--head-hash", hash])?;
    assert!(!ok, "{out}");
    assert!(out.contains("cut off"), "{out}");
    Ok(())
}

#[test]
fn frames_for_made_up_camera_ids_are_refused_at_the_site_limit_and_counted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = format!("{}[cameras]\nmax_per_site = 2\n", offline_config());
    let gw = GatewayProcess::start(dir.path(), &config)?;
    let device = gw.relay_token("a")?;
    let jpeg = scene_jpeg();
    let post = |camera: &str| post_camera(&gw, &device, camera, "frames", &jpeg);
    for cam in ["k1", "k2"] {
        assert!(post(cam)?.is_success(), "within the limit");
    }
    for cam in ["k3", "k4", "k5"] {
        assert_eq!(post(cam)?.status, 403, "a made-up camera id over the limit");
    }
    assert!(post("k1")?.is_success(), "a known camera keeps working");
    let metrics = http::get(&format!("{}/metrics", gw.http))?.text();
    assert!(
        metrics.contains("camera_frames_refused_total{reason=\"camera_limit\"} 3"),
        "{metrics}"
    );
    Ok(())
}

/// A new device token is bound to its camera or, deliberately and on the record, a relay;
/// tokens from before the rule keep working, and the gateway counts and names the unbound
/// ones at start.
#[test]
fn a_device_token_is_bound_or_a_deliberate_relay_and_unbound_ones_are_counted_at_start()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut gw = GatewayProcess::start(dir.path(), &offline_config())?;
    assert_eq!(gw.metric("gateway_device_tokens_unbound")?, 0.0);
    assert_eq!(gw.metric("gateway_device_tokens_unbound_unchosen")?, 0.0);
    let e = gw
        .token("device", "a")
        .expect_err("neither --device nor --relay");
    assert!(
        e.to_string().contains("--device CAM") && e.to_string().contains("--relay"),
        "{e}"
    );
    assert!(
        gw.token_with("device", "a", &["--device", "k1", "--relay"])
            .is_err()
    );
    assert!(gw.token_with("inspector", "a", &["--relay"]).is_err());
    gw.device_token("a", "k1")?;
    gw.relay_token("a")?;
    let created = audit_entries(&gw, "token_created")?;
    let relays: Vec<&Value> = created
        .iter()
        .filter(|e| e["detail"]["relay"] == true)
        .collect();
    assert_eq!(relays.len(), 1, "the relay choice is recorded: {created:?}");
    assert_eq!(relays[0]["detail"]["role"], "device");
    gw.proc.stop()?;

    // A device token issued before the rule: unbound, with no choice recorded.
    let legacy = format!("gwt_{}", "ab".repeat(32));
    let conn = rusqlite::Connection::open(dir.path().join("storage/clues.sqlite"))?;
    conn.execute(
        "INSERT INTO tokens (hash, role, sites, name, created_ms, device) \
         VALUES (?1, 'device', '[\"a\"]', 'old recorder', 1, NULL)",
        [gateway::clue::auth::token_hash(&legacy)],
    )?;
    drop(conn);
    let offset = gw.proc.log_len();
    gw.start_again()?;
    assert_eq!(gw.metric("gateway_device_tokens_unbound")?, 2.0);
    assert_eq!(gw.metric("gateway_device_tokens_unbound_unchosen")?, 1.0);
    let log = gw.proc.log_since(offset);
    assert!(
        log.contains("1 active device token(s) issued before --device or --relay was required")
            && log.contains("require_device_binding")
            && log.contains("1 active relay device token(s)"),
        "{log}"
    );
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["token", "list", "--config"])
        .arg(gw.dir.join("gateway.toml"))
        .output()?;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.matches("\"relay\":true").count(), 1, "{listed}");
    // The old token keeps working, for every camera of its site.
    let jpeg = scene_jpeg();
    for camera in ["k1", "k2"] {
        let r = post_camera(&gw, &legacy, camera, "frames", &jpeg)?;
        assert!(r.is_success(), "{camera}: {}", r.text());
    }
    Ok(())
}

#[test]
fn a_cameras_token_posts_frames_and_enrols_the_reference_only_for_its_own_camera() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let own = gw.device_token("a", "k1")?;
    let relay = gw.relay_token("a")?;
    let jpeg = scene_jpeg();
    let post =
        |token: &str, camera: &str, route: &str| post_camera(&gw, token, camera, route, &jpeg);
    assert!(
        post(&own, "k1", "reference")?.is_success(),
        "its own reference"
    );
    assert!(post(&own, "k1", "frames")?.is_success(), "its own frames");
    assert!(
        post(&relay, "k2", "reference")?.is_success(),
        "a relay's token"
    );
    for route in ["reference", "frames"] {
        let r = post(&own, "k2", route)?;
        assert_eq!(r.status, 403, "{route} of another camera: {}", r.text());
    }
    let metrics = http::get(&format!("{}/metrics", gw.http))?.text();
    assert!(
        metrics.contains("camera_frames_refused_total{reason=\"other_device\"} 2"),
        "{metrics}"
    );
    // The binding is in the audit trail of the token's creation, and only device tokens bind.
    let created = audit_entries(&gw, "token_created")?;
    assert!(
        created.iter().any(|e| e["detail"]["device"] == "k1"),
        "{created:?}"
    );
    assert!(
        gw.token_with("inspector", "a", &["--device", "k1"])
            .is_err()
    );
    drop(gw);

    // Where every camera posts for itself, relays' tokens can be refused outright.
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}[cameras]\nrequire_device_binding = true\n",
        offline_config()
    );
    let gw = GatewayProcess::start(dir.path(), &config)?;
    let own = gw.device_token("a", "k1")?;
    let relay = gw.relay_token("a")?;
    let platform = gw.token("platform", "a")?;
    assert!(post_camera(&gw, &own, "k1", "frames", &jpeg)?.is_success());
    let r = post_camera(&gw, &relay, "k1", "frames", &jpeg)?;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("--device"), "{}", r.text());
    assert!(post_camera(&gw, &platform, "k2", "frames", &jpeg)?.is_success());
    assert_eq!(
        gw.metric("gateway_camera_frames_refused_total{reason=\"unbound_token\"}")?,
        1.0
    );
    Ok(())
}

#[test]
fn below_the_storage_floor_frames_and_evidence_files_are_refused_and_nothing_is_written()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    // More free space than any disk has: every frame and evidence file is refused.
    let gw = GatewayProcess::start_with_env(
        dir.path(),
        &offline_config(),
        &[("GATEWAY_STORAGE__MIN_FREE_MB", "1000000000")],
    )?;
    let camera = gw.device_token("a", "k1")?;
    let platform = gw.token("platform", "a")?;
    let jpeg = scene_jpeg();
    for route in ["frames", "reference"] {
        let r = post_camera(&gw, &camera, "k1", route, &jpeg)?;
        assert_eq!(r.status, 507, "{route}: {}", r.text());
        assert!(r.text().contains("storage.min_free_mb"), "{}", r.text());
    }
    let mut ev = clue_event("a", "cover-1");
    ev["evidence"] = json!([{"type": "file", "name": "frame.jpg",
        "content_type": "image/jpeg", "bytes": jpeg}]);
    let r = call(&gw, "POST", "/api/v1/clues", &platform, Some(&ev))?;
    assert_eq!(r.status, 507, "{}", r.text());
    // A clue without files needs no evidence file and is still taken.
    let ok = call(
        &gw,
        "POST",
        "/api/v1/clues",
        &platform,
        Some(&clue_event("a", "c2")),
    )?;
    assert_eq!(ok.status, 201, "{}", ok.text());
    let metrics = http::get(&format!("{}/metrics", gw.http))?.text();
    for line in [
        "camera_frames_refused_total{reason=\"disk_full\"} 2",
        "evidence_refused_total 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    let evidence = dir.path().join("storage/evidence");
    let left: Vec<_> = std::fs::read_dir(&evidence)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing written: {left:?}");
    Ok(())
}

#[test]
fn a_camera_over_its_upload_rate_gets_429_with_retry_after_and_others_are_not_slowed() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}[cameras]\nmax_frames_per_minute = 2\nframe_burst = 3\n",
        offline_config()
    );
    let gw = GatewayProcess::start(dir.path(), &config)?;
    let relay = gw.relay_token("a")?;
    let jpeg = scene_jpeg();
    let post = |camera: &str| post_camera(&gw, &relay, camera, "frames", &jpeg);
    for i in 0..3 {
        let r = post("k1")?;
        assert!(r.is_success(), "burst frame {i}: {}", r.text());
    }
    for _ in 0..2 {
        let r = post("k1")?;
        assert_eq!(r.status, 429, "{}", r.text());
        let wait: u64 = r
            .header("retry-after")
            .context("Retry-After")?
            .parse()
            .context("Retry-After in seconds")?;
        // Two frames a minute: the next one is due within 30 s.
        assert!((1..=30).contains(&wait), "{wait}");
    }
    assert!(post("k2")?.is_success(), "another camera is not slowed");
    let metrics = http::get(&format!("{}/metrics", gw.http))?.text();
    assert!(
        metrics.contains("camera_frames_refused_total{reason=\"rate_limit\"} 2"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn oversight_warnings_and_registry_owners_are_masked_for_roles_without_the_right() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        "[[devices]]\nsite = \"a\"\ndevice = \"cam1\"\nkind = \"parking_camera\"\n\
         owner = \"Wang Wei 13800138000\"\n",
    )?;
    let config = format!(
        "{}[clues.oversight]\nevery_s = 3600\n\
         [clues.oversight.officer_outlier]\nrepeat_yellow = 2\nrepeat_red = 2\n\
         [registry]\nfile = \"{}\"\n",
        offline_config(),
        registry.display()
    );
    let gw = GatewayProcess::start(dir.path(), &config)?;
    let platform = gw.token("platform", "a")?;
    let insp = gw.token_named("inspector", "a", "ann")?;
    let sup = gw.token("supervisor", "a")?;
    let auditor = gw.token("auditor", "a")?;
    let plate = "京A12345";
    let mut ids = Vec::new();
    for prefix in ["first: ", "second: "] {
        let mut ev = parking_event("a", plate, prefix);
        ev["dedup_key"] = json!(format!("no-parking/a/cam1/{plate}/{prefix}"));
        ids.push(create(&gw, &platform, &ev)?);
    }

    // The registry's owner contact, in the registry and stamped on the clue.
    for path in [
        "/api/v1/registry/devices".to_string(),
        "/api/v1/registry/devices/a/cam1".into(),
        format!("/api/v1/clues/{}", ids[0]),
    ] {
        let r = call(&gw, "GET", &path, &insp, None)?.ok()?;
        assert!(!r.text().contains("13800138000"), "{path}: {}", r.text());
        assert!(
            r.text().contains("Wang Wei 138****8000"),
            "{path}: {}",
            r.text()
        );
        let full = call(&gw, "GET", &path, &sup, None)?.ok()?;
        assert!(
            full.text().contains("13800138000"),
            "{path}: supervisors see it"
        );
    }

    // One inspector resolving twice against one plate raises an officer_outlier warning whose
    // key and message name the subject, plate included.
    for id in &ids {
        for body in [
            json!({"action": "claim"}),
            json!({"action": "resolve", "note": "warned the driver"}),
        ] {
            call(
                &gw,
                "POST",
                &format!("/api/v1/clues/{id}/actions"),
                &insp,
                Some(&body),
            )?
            .ok()?;
        }
    }
    let run = call(&gw, "POST", "/api/v1/oversight/run", &sup, None)?.ok()?;
    assert!(
        run.text().contains(plate),
        "supervisors see it: {}",
        run.text()
    );
    let r = call(&gw, "GET", "/api/v1/oversight/warnings", &auditor, None)?.ok()?;
    assert!(r.text().contains("same_subject"), "{}", r.text());
    assert!(!r.text().contains("12345"), "{}", r.text());
    assert!(r.text().contains("京A*****"), "{}", r.text());

    // Made a supervision notice, the plate stays masked for the unit's other officer (and the
    // auditor), in the list and the detail; the supervisor sees it.
    let warnings: Value = call(&gw, "GET", "/api/v1/oversight/warnings", &sup, None)?
        .ok()?
        .json()?;
    let wid = warnings
        .as_array()
        .and_then(|w| {
            w.iter()
                .find(|w| w["detail"]["metric"] == json!("same_subject"))
        })
        .and_then(|w| w["id"].as_i64())
        .context("same-subject warning")?;
    let notice: Value = call(
        &gw,
        "POST",
        &format!("/api/v1/oversight/warnings/{wid}/notice"),
        &sup,
        Some(&json!({"unit": "county:xihu/traffic", "due_days": 5})),
    )?
    .ok()?
    .json()?;
    let path = format!("/api/v1/oversight/notices/{}", notice["id"]);
    let bo = gw.token_named("inspector", "a", "bo")?;
    for tok in [&bo, &auditor] {
        for p in ["/api/v1/oversight/notices", path.as_str()] {
            let r = call(&gw, "GET", p, tok, None)?.ok()?;
            assert!(r.text().contains("same subject"), "{p}: {}", r.text());
            assert!(!r.text().contains("12345"), "{p}: {}", r.text());
            assert!(r.text().contains("京A*****"), "{p}: {}", r.text());
        }
    }
    assert!(
        call(&gw, "GET", &path, &sup, None)?
            .ok()?
            .text()
            .contains(plate)
    );
    Ok(())
}

#[test]
fn a_grease_clue_shows_the_pumpouts_that_explain_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let platform = gw.token("platform", "a")?;
    let insp = gw.token_named("inspector", "a", "ann")?;
    let (now, hour) = (e2e::now_ms(), 3_600_000i64);
    let discharge = |device: &str| {
        json!({
            "rule": "trap-discharge", "kind": "grease.illegal_discharge", "level": "high",
            "subject": {"site": "a", "device": device},
            "dedup_key": format!("trap-discharge/a/{device}"),
            "at_ms": now - 90 * 60_000,
            "title": format!("Trap {device} dropped 40 mm"),
            "detail": {"drop": 40.0, "from_ms": now - 100 * 60_000, "to_ms": now - 90 * 60_000},
            "evidence": [],
        })
    };
    let explained = create(&gw, &platform, &discharge("trap-1"))?;
    let other = create(&gw, &platform, &discharge("trap-2"))?;
    // The crew's visit to trap-1, registered after the clue opened; and one a day earlier.
    for (from, to, note) in [
        (now - 2 * hour, now - hour, "manifest 77"),
        (now - 26 * hour, now - 25 * hour, "last week's"),
    ] {
        let body =
            json!({"site": "a", "device": "trap-1", "from_ms": from, "to_ms": to, "note": note});
        call(&gw, "POST", "/api/v1/pumpouts", &insp, Some(&body))?.ok()?;
    }
    let d = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{explained}"),
        &insp,
        None,
    )?
    .ok()?
    .json()?;
    let shown = d["pumpouts"].as_array().context("pumpouts on the clue")?;
    assert_eq!(shown.len(), 1, "only the overlapping visit: {d}");
    assert_eq!(shown[0]["note"], "manifest 77");
    assert_eq!(shown[0]["from_ms"], now - 2 * hour);
    assert!(
        shown[0]["by"].as_str().is_some_and(|b| b.contains("ann")),
        "{d}"
    );
    let d = call(&gw, "GET", &format!("/api/v1/clues/{other}"), &insp, None)?
        .ok()?
        .json()?;
    assert!(d.get("pumpouts").is_none(), "another trap's visit: {d}");
    Ok(())
}

/// A valid JPEG of noise: `side` pixels square (noise does not compress, so its size is known
/// to within a little).
fn noise_jpeg(side: u32) -> Vec<u8> {
    let mut x = 0x2545_f491u32;
    let img = image::RgbImage::from_fn(side, side, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg");
    out.into_inner()
}

fn put_still(
    gw: &GatewayProcess,
    token: &str,
    id: u64,
    name: &str,
    body: &[u8],
) -> Result<http::Response> {
    let auth = format!("Bearer {token}");
    http::request(
        "PUT",
        &format!("{}/api/v1/flights/{id}/files/{name}", gw.http),
        Some(("image/jpeg", body)),
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )
}

#[test]
fn a_flight_cannot_exceed_its_byte_limit_or_the_disks_free_space_floor() -> Result<()> {
    let still = noise_jpeg(700);
    assert!(
        (600_000..1_000_000).contains(&still.len()),
        "{} bytes",
        still.len()
    );
    for (drone, what) in [
        ("max_flight_mb = 1", "flight"),
        // More free space than any disk has: every upload is refused.
        ("min_free_mb = 1000000000", "disk"),
    ] {
        let dir = tempfile::tempdir()?;
        let gw = GatewayProcess::start(
            dir.path(),
            &format!("{}[drone]\n{drone}\n", offline_config()),
        )?;
        let pilot = gw.token("drone_operator", "a")?;
        let id = call(
            &gw,
            "POST",
            "/api/v1/flights",
            &pilot,
            Some(&json!({"site": "a"})),
        )?
        .ok()?
        .json()?["id"]
            .as_u64()
            .context("flight id")?;
        let first = put_still(&gw, &pilot, id, "one.jpg", &still)?;
        let second = put_still(&gw, &pilot, id, "two.jpg", &still)?;
        if what == "flight" {
            assert!(first.status < 300, "{}: {}", first.status, first.text());
            assert_eq!(second.status, 413, "{}", second.text());
            let flights = dir.path().join("storage/drone/flights");
            assert!(walk_jpegs(&flights) >= 1, "the accepted still is on disk");
            assert!(
                second.text().contains("flight's byte limit"),
                "{}",
                second.text()
            );
        } else {
            for r in [first, second] {
                assert_eq!(r.status, 507, "{}", r.text());
                assert!(r.text().contains("drone.min_free_mb"), "{}", r.text());
            }
            assert_eq!(walk_jpegs(&dir.path().join("storage/drone/flights")), 0);
        }
    }
    Ok(())
}

/// Files under `dir` named after an upload (nothing of a refused one may be left behind).
fn walk_jpegs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk_jpegs(&p)
                } else {
                    usize::from(p.to_string_lossy().contains(".jpg"))
                }
            })
            .sum()
    })
}

#[test]
fn old_flights_lose_their_footage_and_the_files_a_clue_came_from_only_after_a_longer_period()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = format!("{}[drone]\nfootage_retention_days = 30\n", offline_config());
    // A clue still open (its case is not over).
    let mut gw = GatewayProcess::start(dir.path(), &config)?;
    let admin = gw.token("admin", "")?;
    let open_clue = create(&gw, &admin, &clue_event("a", "m1"))?;
    gw.proc.stop()?;
    // A flight processed 100 days ago (as a gateway before this start left it), one of
    // yesterday, and two of 800 days ago, past the clue footage period (default 730 days); a
    // clue came from each flight's b.jpg: clue 4 (closed or purged: not in the pool) from the
    // first three, the open clue from the fourth.
    let day = 86_400_000i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let flights = dir.path().join("storage/drone/flights");
    let file = |name: &str| {
        json!({"name": name, "kind": "still", "received": 5, "total": 5,
            "complete": true, "sha256": null})
    };
    for (id, age_days, clue) in [(1, 100, 4), (2, 1, 4), (3, 800, 4), (4, 800, open_clue)] {
        let finding = json!({"id": 1, "task_id": 1, "class": "truck", "confidence": 0.9,
            "lat": 30.0, "lon": 120.0, "error_m": 3.0, "time_ms": now - age_days * day,
            "frame": "b.jpg", "clue_id": clue, "bbox": [1.0, 2.0, 3.0, 4.0]});
        let flight = json!({"id": id, "site": "a", "name": null, "status": "done",
            "progress": 1.0, "frames_total": 2, "frames_done": 2,
            "files": [file("a.jpg"), file("b.jpg")], "findings": [finding],
            "detections_total": 1, "errors": [], "changes": [],
            "created_ms": now - age_days * day - 60_000, "created_by": "pilot#1",
            "started_ms": now - age_days * day - 30_000, "finished_ms": now - age_days * day});
        let fdir = flights.join(id.to_string());
        std::fs::create_dir_all(&fdir)?;
        std::fs::write(fdir.join("flight.json"), flight.to_string())?;
        for name in ["a.jpg", "b.jpg"] {
            std::fs::write(fdir.join(name), b"jpeg!")?;
        }
    }
    gw.start_again()?;
    e2e::wait_until(
        "the retention run at start",
        std::time::Duration::from_secs(20),
        || Ok((gw.metric("gateway_drone_footage_expired_files_total")? >= 4.0).then_some(())),
    )?;
    assert_eq!(gw.metric("gateway_drone_footage_expired_files_total")?, 4.0);
    assert_eq!(
        gw.metric("gateway_drone_footage_expired_bytes_total")?,
        20.0
    );
    assert!(!flights.join("4/a.jpg").exists(), "no clue came from it");
    assert!(
        flights.join("4/b.jpg").exists(),
        "800 days, but its clue is still open: kept"
    );
    assert_eq!(
        gw.metric("gateway_drone_clue_footage_expired_files_total")?,
        1.0
    );
    for name in ["a.jpg", "b.jpg"] {
        assert!(
            !flights.join("3").join(name).exists(),
            "800 days: past the clue footage period too"
        );
    }
    assert!(flights.join("3/flight.json").exists(), "the record stays");
    assert!(
        !flights.join("1/a.jpg").exists(),
        "expired footage is deleted"
    );
    assert!(
        flights.join("1/b.jpg").exists(),
        "a clue came from it: kept"
    );
    assert!(flights.join("1/flight.json").exists(), "the record stays");
    for name in ["a.jpg", "b.jpg"] {
        assert!(
            flights.join("2").join(name).exists(),
            "yesterday's flight is kept"
        );
    }
    let pilot = gw.token("drone_operator", "a")?;
    let f = call(&gw, "GET", "/api/v1/flights/1", &pilot, None)?
        .ok()?
        .json()?;
    let files = f["files"].as_array().context("files")?;
    let expired: Vec<&str> = files
        .iter()
        .filter(|x| x["expired_ms"].is_i64())
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(expired, ["a.jpg"], "{f}");
    Ok(())
}

/// Runs one test of this binary by name with `env`, under `CI=true` or not; returns whether it
/// passed and what it printed.
fn run_this_binarys_test(name: &str, env: &[(&str, &str)], ci: bool) -> Result<(bool, String)> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args([name, "--exact", "--nocapture"])
        .env_remove("CI")
        .env_remove("STRICT_TESTS")
        .envs(env.iter().copied());
    if ci {
        cmd.env("CI", "true");
    }
    let out = cmd.output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

/// Every test that can skip (SECURITY.md, "Tests never pass by skipping") fails under
/// `CI=true` when what it needs is missing, and passes saying `SKIPPED` elsewhere.
#[test]
fn tests_that_can_skip_fail_in_ci_instead() -> Result<()> {
    let cases = [
        (
            "dashboard_browser::dashboard_in_chromium_shows_a_live_clue_that_is_claimed_resolved_and_audited",
            ("CHROMIUM", "/nonexistent/chromium"),
        ),
        (
            "camera_health_eval::camera_health_precision_recall_on_real_photos",
            ("CAMERA_EVAL_SKIP", "1"),
        ),
        // No `mount` on the PATH: no tmpfs for the bounded disk-full fault.
        (
            "resilience::bounded_disk_full_loses_nothing",
            ("PATH", "/nonexistent"),
        ),
    ];
    for (name, missing) in cases {
        let (ok, text) = run_this_binarys_test(name, &[missing], true)?;
        assert!(
            !ok && text.contains("must not pass by skipping"),
            "{name} under CI=true: {text}"
        );
        let (ok, text) = run_this_binarys_test(name, &[missing], false)?;
        assert!(ok && text.contains("SKIPPED: "), "{name} elsewhere: {text}");
    }
    Ok(())
}
