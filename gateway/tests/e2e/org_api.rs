//! The organisation through the real binary, on SQLite and on a real PostgreSQL: tokens scoped
//! to a unit see exactly their unit's scope (a township its own sites, a county its
//! townships'), a clue outside it answers 404 like a missing one; department tokens see the
//! clues their department leads or assists; dispatch rules give new clues their lead and
//! assisting departments, and a supervisor's change of them is an audited `dispatch` action.
//! Also: an invalid `[org]` is refused naming the key, and `store migrate` copies token scopes.

use crate::common;

use crate::common::{GatewayProcess, TestStore, call};
use anyhow::{Context, Result, ensure};
use e2e::free_port;
use serde_json::{Value, json};

on_both_stores!(unit_and_department_tokens_see_only_their_scope);
on_both_stores!(a_clue_posted_for_one_site_cannot_touch_another_sites_clue);

/// Hangzhou (city) -> Xihu (county: site x0) -> Lingyin (s1), Beishan (s2); Gongshu (county:
/// g1). Cover clues in Xihu go to its water department with market assisting; anything else
/// to the city's urban management.
const ORG: &str = r#"
[clues.matters]
version = "v1"
[[clues.matters.matter]]
id = "cover"
name = "Cover"
kinds = ["manhole.*"]
violated_provision = "<a>"
penalty_provision = "<b>"
[[clues.matters.matter.bands]]
id = "any"
label = "any"
penalty_min = 0
penalty_max = 100

[[org.units]]
id = "hangzhou"
name = "杭州市"
level = "city"
departments = ["urban-management"]
[[org.units]]
id = "xihu"
name = "西湖区"
parent = "hangzhou"
level = "county"
sites = ["x0"]
departments = ["urban-management", "water", "market"]
[[org.units]]
id = "lingyin"
name = "灵隐街道"
parent = "xihu"
level = "township"
sites = ["s1"]
departments = ["urban-management", "market"]
[[org.units]]
id = "beishan"
name = "北山街道"
parent = "xihu"
level = "township"
sites = ["s2"]
departments = ["urban-management"]
[[org.units]]
id = "gongshu"
name = "拱墅区"
parent = "hangzhou"
level = "county"
sites = ["g1"]
departments = ["urban-management"]

[[org.dispatch]]
matter = "cover"
unit = "xihu"
lead = "water"
assisting = ["market"]
[[org.dispatch]]
matter = "*"
unit = "hangzhou"
lead = "urban-management"
"#;

fn config(client_id: &str) -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"{client_id}\"\n\
         [clues]\nmqtt_publish = false\n{ORG}",
        free_port()
    )
}

fn event(site: &str, kind: &str) -> Value {
    json!({
        "rule": "r",
        "kind": kind,
        "level": "medium",
        "subject": {"site": site, "device": "d1"},
        "dedup_key": format!("r/{site}/{kind}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("{kind} at {site}"),
        "detail": {},
        "evidence": [],
    })
}

fn create(gw: &GatewayProcess, token: &str, site: &str, kind: &str) -> Result<Value> {
    let r = call(gw, "POST", "/api/v1/clues", token, Some(&event(site, kind)))?;
    Ok(r.ok()?.json()?["clue"].clone())
}

/// The sites of the clues `token` lists (`query` appended to the list path), sorted.
fn listed(gw: &GatewayProcess, token: &str, query: &str) -> Result<Vec<String>> {
    let v = call(gw, "GET", &format!("/api/v1/clues{query}"), token, None)?
        .ok()?
        .json()?;
    let mut sites: Vec<String> = v
        .as_array()
        .context("clue list")?
        .iter()
        .filter_map(|c| c["subject"]["site"].as_str().map(String::from))
        .collect();
    sites.sort();
    Ok(sites)
}

fn status(gw: &GatewayProcess, token: &str, path: &str) -> Result<u16> {
    Ok(call(gw, "GET", path, token, None)?.status)
}

fn unit_and_department_tokens_see_only_their_scope(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &config("org-test"))?;
    let admin = gw.token("admin", "")?;
    let s1 = create(&gw, &admin, "s1", "manhole.cover_open")?;
    let s2 = create(&gw, &admin, "s2", "manhole.cover_open")?;
    let x0 = create(&gw, &admin, "x0", "parking.overstay")?;
    let g1 = create(&gw, &admin, "g1", "manhole.cover_open")?;
    let id = |c: &Value| c["id"].as_i64().unwrap_or(-1);

    // Dispatch: Xihu's cover rule inside Xihu, the city's catch-all elsewhere.
    assert_eq!(s1["department"], json!("water"), "{s1}");
    assert_eq!(s1["assisting"], json!(["market"]), "{s1}");
    assert_eq!(g1["department"], json!("urban-management"), "{g1}");
    assert!(g1.get("assisting").is_none(), "{g1}");
    assert_eq!(x0["department"], json!("urban-management"), "{x0}");

    // A township token sees its township only; another unit's clue is a 404, not a 403.
    let lingyin = gw.token_with("inspector", "", &["--unit", "lingyin", "--name", "li"])?;
    assert_eq!(listed(&gw, &lingyin, "")?, ["s1"]);
    for other in [&s2, &x0, &g1] {
        let path = format!("/api/v1/clues/{}", id(other));
        assert_eq!(status(&gw, &lingyin, &path)?, 404, "{path}");
    }
    let missing = call(&gw, "GET", "/api/v1/clues/999999", &lingyin, None)?;
    let hidden = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{}", id(&g1)),
        &lingyin,
        None,
    )?;
    assert_eq!(
        hidden.text().replace(&id(&g1).to_string(), "N"),
        missing.text().replace("999999", "N"),
        "the same answer as a missing clue"
    );
    let who = call(&gw, "GET", "/api/v1/whoami", &lingyin, None)?
        .ok()?
        .json()?;
    assert_eq!(
        (&who["unit"], &who["sites"]),
        (&json!("lingyin"), &json!(["s1"]))
    );
    let detail = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{}", id(&s1)),
        &lingyin,
        None,
    )?
    .ok()?
    .json()?;
    assert_eq!(detail["unit"]["id"], json!("lingyin"), "{detail}");
    assert_eq!(detail["unit"]["name"], json!("灵隐街道"));
    let chain: Vec<&Value> = detail["unit_chain"]
        .as_array()
        .context("chain")?
        .iter()
        .map(|u| &u["id"])
        .collect();
    assert_eq!(
        chain,
        [&json!("lingyin"), &json!("xihu"), &json!("hangzhou")]
    );

    // A county token sees its own sites and its townships', not another county's.
    let xihu = gw.token_with("supervisor", "", &["--unit", "xihu", "--name", "xi"])?;
    assert_eq!(listed(&gw, &xihu, "")?, ["s1", "s2", "x0"]);
    assert_eq!(listed(&gw, &xihu, "?unit=lingyin")?, ["s1"]);
    assert!(listed(&gw, &xihu, "?unit=gongshu")?.is_empty());
    assert_eq!(status(&gw, &xihu, "/api/v1/clues?unit=nowhere")?, 400);
    assert_eq!(
        status(&gw, &xihu, &format!("/api/v1/clues/{}", id(&g1)))?,
        404
    );
    let units = call(&gw, "GET", "/api/v1/org/units", &lingyin, None)?
        .ok()?
        .json()?;
    assert_eq!(units["units"].as_array().map(Vec::len), Some(1), "{units}");
    let units = call(&gw, "GET", "/api/v1/org/units", &xihu, None)?
        .ok()?
        .json()?;
    let mut ids: Vec<&str> = units["units"]
        .as_array()
        .context("units")?
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["beishan", "lingyin", "xihu"]);

    // Department tokens: the clues their department leads or assists, within their unit.
    let market = gw.token_with(
        "inspector",
        "",
        &["--unit", "xihu", "--department", "market"],
    )?;
    assert_eq!(listed(&gw, &market, "")?, ["s1", "s2"], "assisting");
    let water = gw.token_with(
        "inspector",
        "",
        &["--unit", "xihu", "--department", "water"],
    )?;
    assert_eq!(listed(&gw, &water, "")?, ["s1", "s2"], "lead");
    assert_eq!(
        status(&gw, &market, &format!("/api/v1/clues/{}", id(&x0)))?,
        404
    );

    // Its audit export holds the entries of those clues only (not the unit's other clues).
    let auditor = gw.token_with("auditor", "", &["--unit", "xihu", "--department", "market"])?;
    let audit = call(
        &gw,
        "GET",
        "/api/v1/audit/export?format=json",
        &auditor,
        None,
    )?
    .ok()?
    .json()?;
    let mut clues: Vec<i64> = audit
        .as_array()
        .context("audit")?
        .iter()
        .filter_map(|e| e["clue_id"].as_i64())
        .collect();
    clues.sort();
    clues.dedup();
    assert_eq!(clues, [id(&s1), id(&s2)], "{audit:#}");

    // A supervisor changes who leads and assists: an audited `dispatch` action.
    let act = |token: &str, clue: &Value, body: Value| {
        call(
            &gw,
            "POST",
            &format!("/api/v1/clues/{}/actions", id(clue)),
            token,
            Some(&body),
        )
    };
    let body = json!({"action": "dispatch", "lead": "market", "assisting": ["water"],
                      "reason": "a market stall"});
    assert_eq!(
        act(&lingyin, &x0, body.clone())?.status,
        404,
        "outside its unit"
    );
    let inspector = gw.token_with("inspector", "", &["--unit", "xihu"])?;
    assert_eq!(act(&inspector, &x0, body.clone())?.status, 403);
    let bad = json!({"action": "dispatch", "lead": "environment", "reason": "r"});
    assert_eq!(act(&xihu, &x0, bad)?.status, 400, "no such department");
    let changed = act(&xihu, &x0, body)?.ok()?.json()?;
    assert_eq!(changed["clue"]["department"], json!("market"), "{changed}");
    assert_eq!(changed["clue"]["assisting"], json!(["water"]));
    assert_eq!(listed(&gw, &market, "")?, ["s1", "s2", "x0"]);
    let trail = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{}/audit", id(&x0)),
        &xihu,
        None,
    )?
    .ok()?
    .json()?;
    let entry = trail
        .as_array()
        .and_then(|t| t.iter().find(|e| e["action"] == "dispatch"))
        .context("dispatch entry")?;
    assert_eq!(
        entry["detail"]["from_department"],
        json!("urban-management")
    );
    assert!(
        entry["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("xi#")),
        "{entry}"
    );
    let verify = call(&gw, "GET", "/api/v1/audit/verify", &admin, None)?
        .ok()?
        .json()?;
    assert_eq!(verify["ok"], json!(true), "{verify}");

    // Tokens name configured units and their departments only.
    let e = gw
        .token_with("inspector", "", &["--unit", "nowhere"])
        .expect_err("unknown unit");
    assert!(e.to_string().contains("nowhere"), "{e}");
    let e = gw
        .token_with(
            "inspector",
            "",
            &["--unit", "beishan", "--department", "market"],
        )
        .expect_err("not a department of Beishan");
    assert!(e.to_string().contains("market"), "{e}");
    Ok(())
}

#[test]
fn an_invalid_org_is_refused_naming_the_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let beishan = "parent = \"xihu\"\nlevel = \"township\"\nsites = [\"s2\"]";
    let bad = config("org-bad").replace(beishan, &beishan.replace("xihu", "xihuu"));
    ensure!(bad.contains("xihuu"));
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &bad)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("org.units[3].parent"), "{err}");
    let twice = config("org-bad").replace("sites = [\"g1\"]", "sites = [\"s1\"]");
    std::fs::write(&path, &twice)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("org.units[4].sites[0]") && err.contains("lingyin"),
        "{err}"
    );
    Ok(())
}

#[test]
fn store_migrate_copies_the_scope_of_tokens() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut gw = GatewayProcess::start(dir.path(), &config("org-sqlite"))?;
    let admin = gw.token("admin", "")?;
    let market = gw.token_with(
        "inspector",
        "",
        &["--unit", "xihu", "--department", "market"],
    )?;
    for site in ["s1", "g1"] {
        create(&gw, &admin, site, "manhole.cover_open")?;
    }
    create(&gw, &admin, "x0", "parking.overstay")?;
    assert_eq!(listed(&gw, &market, "")?, ["s1"]);
    // `token list` shows the scope (never the token).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["token", "list", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .output()?;
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.contains(r#""unit":"xihu""#) && l.contains(r#""department":"market""#)),
        "{list}"
    );
    assert!(!list.contains(&market), "the token itself is never listed");
    gw.proc.stop()?;

    let pg = e2e::Postgres::start()?;
    let url = pg.create_database("clues")?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["store", "migrate", "--from"])
        .arg(format!(
            "sqlite:{}",
            dir.path().join("storage/clues.sqlite").display()
        ))
        .args(["--to", &format!("postgres:{url}")])
        .output()?;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let key_file = dir.path().join("storage/audit.key");
    let dir2 = tempfile::tempdir()?;
    let gw2 = GatewayProcess::start_with_env(
        dir2.path(),
        &format!(
            "{}\n[clues.audit]\nkey_file = \"{}\"\n",
            config("org-pg"),
            key_file.display()
        ),
        &[
            ("GATEWAY_CLUES__STORE", "postgres"),
            ("GATEWAY_CLUES__URL", url.as_str()),
        ],
    )?;
    // The same token, still scoped to Xihu's market department.
    assert_eq!(listed(&gw2, &market, "")?, ["s1"]);
    let who = call(&gw2, "GET", "/api/v1/whoami", &market, None)?
        .ok()?
        .json()?;
    assert_eq!(
        (&who["unit"], &who["department"]),
        (&json!("xihu"), &json!("market"))
    );
    Ok(())
}

on_both_stores!(a_major_clue_is_reported_up_and_an_overdue_reply_turns_red);
on_both_stores!(the_township_that_owes_a_reply_cannot_close_its_notice_and_the_county_can);

/// `[org.major]`: high clues are major; their unit owes the unit above a reply within 2 s.
fn a_major_clue_is_reported_up_and_an_overdue_reply_turns_red(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "{}\n[org.major]\nlevels = [\"high\"]\nreply_within_s = 2\n",
        config("org-major").replace("[clues]\n", "[clues]\ntick_s = 1\n")
    );
    let gw = store.gateway(dir.path(), &cfg)?;
    let admin = gw.token("admin", "")?;
    let mut high = event("s1", "manhole.cover_open");
    high["level"] = json!("high");
    let major = create_event(&gw, &admin, &high)?;
    create(&gw, &admin, "s2", "manhole.cover_open")?; // medium: not major

    // The county (the unit above Lingyin) sees the report as a notice Lingyin owes.
    let xihu = gw.token_with("supervisor", "", &["--unit", "xihu"])?;
    let notices = call(&gw, "GET", "/api/v1/oversight/notices", &xihu, None)?
        .ok()?
        .json()?;
    let list = notices.as_array().context("notices")?;
    assert_eq!(list.len(), 1, "only the high clue is major: {notices:#}");
    let n = &list[0];
    assert_eq!(
        (&n["model"], &n["unit"], &n["clue_id"]),
        (&json!("major_clue"), &json!("lingyin"), &major["id"]),
        "{n:#}"
    );
    assert!(
        n["message"].as_str().is_some_and(|m| m.contains("to xihu")),
        "{n:#}"
    );
    // Not answered within the deadline: yellow, then red at twice its span (the pool tick).
    let id = n["id"].as_i64().context("notice id")?;
    e2e::wait_until(
        "the overdue reply turns red",
        std::time::Duration::from_secs(20),
        || {
            let d = call(
                &gw,
                "GET",
                &format!("/api/v1/oversight/notices/{id}"),
                &xihu,
                None,
            )?
            .ok()?
            .json()?;
            Ok((d["level"] == json!("red")).then_some(()))
        },
    )?;
    // The report and the escalation are in the audit chain.
    let admin_audit = call(&gw, "GET", "/api/v1/audit/export?format=json", &admin, None)?
        .ok()?
        .json()?;
    let actions: Vec<&str> = admin_audit
        .as_array()
        .context("audit")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["oversight_warning", "notice_issued", "notice_overdue"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    // A township of another county sees nothing of it.
    let gongshu = gw.token_with("supervisor", "", &["--unit", "gongshu"])?;
    let none = call(&gw, "GET", "/api/v1/oversight/notices", &gongshu, None)?
        .ok()?
        .json()?;
    assert_eq!(none, json!([]));
    Ok(())
}

fn create_event(gw: &GatewayProcess, token: &str, ev: &Value) -> Result<Value> {
    let r = call(gw, "POST", "/api/v1/clues", token, Some(ev))?;
    Ok(r.ok()?.json()?["clue"].clone())
}

/// `POST /api/v1/clues` lets the caller choose the dedup key. A key held by an open clue of
/// another site (another unit here) is refused, and that clue stays exactly as it was; a
/// clue the caller cannot read (another department's) is answered with its id only.
fn a_clue_posted_for_one_site_cannot_touch_another_sites_clue(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &config("org-dedup"))?;
    let admin = gw.token("admin", "")?;
    let key = "parking/g1//京A12345";
    let mut ev = event("g1", "parking.overstay");
    ev["dedup_key"] = json!(key);
    let g1 = create_event(&gw, &admin, &ev)?;
    let g1_id = g1["id"].as_i64().context("id")?;
    let before = call(&gw, "GET", &format!("/api/v1/clues/{g1_id}"), &admin, None)?
        .ok()?
        .json()?;

    let platform = gw.token("platform", "s1")?;
    let unit_admin = gw.token_with("admin", "", &["--unit", "lingyin"])?;
    for token in [&platform, &unit_admin] {
        let mut forged = event("s1", "parking.overstay");
        forged["dedup_key"] = json!(key);
        forged["level"] = json!("high");
        let r = call(&gw, "POST", "/api/v1/clues", token, Some(&forged))?;
        assert_eq!(r.status, 409, "{}", r.text());
    }
    let after = call(&gw, "GET", &format!("/api/v1/clues/{g1_id}"), &admin, None)?
        .ok()?
        .json()?;
    assert_eq!(after, before, "the g1 clue is untouched");
    assert_eq!(after["occurrences"], json!(1));
    assert_eq!(after["level"], json!("medium"));

    // A platform token of the market department posts a parking clue, which goes to urban
    // management: taken (201), but only its id comes back.
    let market = gw.token_with(
        "platform",
        "",
        &["--unit", "lingyin", "--department", "market"],
    )?;
    let r = call(
        &gw,
        "POST",
        "/api/v1/clues",
        &market,
        Some(&event("s1", "parking.overstay")),
    )?;
    assert_eq!(r.status, 201, "{}", r.text());
    let body: Value = r.json()?;
    let id = body["clue"]["id"].as_i64().context("id")?;
    assert_eq!(body["clue"], json!({"id": id}), "{body}");
    assert_eq!(
        status(&gw, &market, &format!("/api/v1/clues/{id}"))?,
        404,
        "not its clue"
    );
    Ok(())
}

/// An admin scoped to a unit edits the device registry of its unit's sites only: a PUT or
/// DELETE for another unit's site is refused like a read of it, and a DELETE answers the same
/// whether the entry exists or not.
#[test]
fn a_unit_admin_edits_the_registry_of_its_own_sites_only() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        "[[devices]]\nsite = \"g1\"\ndevice = \"trap-1\"\nkind = \"grease_trap\"\n\
         shop = \"Golden Dragon\"\n",
    )?;
    let cfg = format!(
        "{}\n[registry]\nfile = \"{}\"\n",
        config("org-registry"),
        registry.display()
    );
    let gw = TestStore::Sqlite.gateway(dir.path(), &cfg)?;
    let admin = gw.token("admin", "")?;
    let lingyin = gw.token_with("admin", "", &["--unit", "lingyin"])?;
    let entry = json!({"kind": "grease_trap", "shop": "Taken Over"});
    let put = |token: &str, path: &str| call(&gw, "PUT", path, token, Some(&entry));
    let r = put(&lingyin, "/api/v1/registry/devices/g1/trap-1")?;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = put(&lingyin, "/api/v1/registry/devices/g1/trap-9")?;
    assert_eq!(r.status, 403, "{}", r.text());
    let there = call(
        &gw,
        "DELETE",
        "/api/v1/registry/devices/g1/trap-1",
        &lingyin,
        None,
    )?;
    let missing = call(
        &gw,
        "DELETE",
        "/api/v1/registry/devices/g1/trap-9",
        &lingyin,
        None,
    )?;
    assert_eq!(there.status, 403, "{}", there.text());
    assert_eq!(
        (there.status, there.text()),
        (missing.status, missing.text())
    );
    let kept = call(
        &gw,
        "GET",
        "/api/v1/registry/devices/g1/trap-1",
        &admin,
        None,
    )?
    .ok()?
    .json()?;
    assert_eq!(kept["shop"], json!("Golden Dragon"), "{kept}");
    // Its own site, and the unscoped admin anywhere.
    assert_eq!(
        put(&lingyin, "/api/v1/registry/devices/s1/trap-2")?.status,
        201
    );
    assert_eq!(
        put(&admin, "/api/v1/registry/devices/g1/trap-1")?.status,
        200
    );
    Ok(())
}

/// The unit that owes a major clue's reply answers its notice (acknowledge, report fixed) but
/// cannot close, reopen or escalate it (which would stop the escalation to the county); the
/// county above it can.
fn the_township_that_owes_a_reply_cannot_close_its_notice_and_the_county_can(
    store: &TestStore,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "{}\n[org.major]\nlevels = [\"high\"]\nreply_within_s = 3600\n",
        config("org-major-close")
    );
    let gw = store.gateway(dir.path(), &cfg)?;
    let admin = gw.token("admin", "")?;
    let mut high = event("s1", "manhole.cover_open");
    high["level"] = json!("high");
    create_event(&gw, &admin, &high)?;
    let township = gw.token_with("supervisor", "", &["--unit", "lingyin"])?;
    let township_admin = gw.token_with("admin", "", &["--unit", "lingyin"])?;
    let officer = gw.token_with("inspector", "", &["--unit", "lingyin"])?;
    let county = gw.token_with("supervisor", "", &["--unit", "xihu"])?;
    let notices = call(&gw, "GET", "/api/v1/oversight/notices", &township, None)?
        .ok()?
        .json()?;
    let n = notices
        .as_array()
        .and_then(|l| l.first())
        .context("notice")?;
    assert_eq!(n["unit"], json!("lingyin"), "{n:#}");
    let path = format!("/api/v1/oversight/notices/{}/actions", n["id"]);
    let act = |token: &str, body: Value| call(&gw, "POST", &path, token, Some(&body));
    let refused = [
        json!({"action": "close", "note": "done"}),
        json!({"action": "reopen", "note": "again"}),
        json!({"action": "escalate", "to": "xihu"}),
    ];
    for body in &refused {
        for token in [&township, &township_admin] {
            let r = act(token, body.clone())?;
            assert_eq!(r.status, 403, "{body}: {}", r.text());
        }
    }
    let r = act(&officer, json!({"action": "acknowledge"}))?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = act(
        &officer,
        json!({"action": "report_fixed", "statement": "closed the cover"}),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = act(&township_admin, json!({"action": "close", "note": "done"}))?;
    assert_eq!(r.status, 403, "{}", r.text());
    let closed = act(&county, json!({"action": "close", "note": "accepted"}))?
        .ok()?
        .json()?;
    assert_eq!(closed["state"], json!("closed"), "{closed:#}");
    Ok(())
}

/// Camera ids are unique within a site only, so a token bound to a camera names exactly one
/// site and no unit (no device token names a unit), through the CLI.
#[test]
fn a_device_token_bound_to_a_camera_names_one_site_and_no_unit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = TestStore::Sqlite.gateway(dir.path(), &config("org-device"))?;
    let e = gw
        .token_with("device", "", &["--device", "cam-1", "--unit", "lingyin"])
        .expect_err("a bound device token with a unit");
    assert!(e.to_string().contains("not a unit (--unit)"), "{e}");
    let e = gw
        .token_with("device", "", &["--relay", "--unit", "lingyin"])
        .expect_err("a relay with a unit");
    assert!(e.to_string().contains("not a unit (--unit)"), "{e}");
    let e = gw
        .token_with("device", "s1,s2", &["--device", "cam-1"])
        .expect_err("a bound device token at two sites");
    assert!(e.to_string().contains("exactly one site"), "{e}");
    gw.token_with("device", "s1", &["--device", "cam-1"])?;
    gw.token_with("device", "s1,s2", &["--relay"])?;
    Ok(())
}
