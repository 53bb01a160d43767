//! Muck-truck permits through the API of the real binary, on SQLite and on a real PostgreSQL:
//! added, refused (bad field, taken plate, configured plate), replaced and revoked, each
//! change in the audit chain; who may read and who may write; and the stored permits are
//! still there after the gateway is killed and started again. Plates are masked for roles
//! without the personal-data right, as in clues.

use crate::common;

use crate::common::{GatewayProcess, TestStore, call};
use anyhow::{Context, Result};
use e2e::{free_port, http};
use serde_json::json;

on_both_stores!(permits_are_added_replaced_and_revoked_through_the_api_and_audited);

/// Two muck cameras at two sites; one permit in the file.
fn config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"permits-test\"\n\
         [clues]\nmqtt_publish = false\n\
         [[muck_trucks.cameras]]\nsite = \"a\"\ncamera = \"cam-road\"\n\
         [[muck_trucks.cameras]]\nsite = \"b\"\ncamera = \"cam-bridge\"\n\
         [[muck_trucks.permits]]\nplate = \"苏E5T703\"\nhours = [\"22:00-06:00\"]\n",
        free_port()
    )
}

const LIST: &str = "/api/v1/muck-trucks/permits";

fn one(plate: &str) -> String {
    format!("{LIST}/{}", http::encode(plate))
}

/// (plate, source, in_force) of each listed permit.
fn listed(gw: &GatewayProcess, token: &str) -> Result<Vec<(String, String, bool)>> {
    let v = call(gw, "GET", LIST, token, None)?.ok()?.json()?;
    Ok(v.as_array()
        .context("a list")?
        .iter()
        .map(|p| {
            (
                p["plate"].as_str().unwrap_or("").to_string(),
                p["source"].as_str().unwrap_or("").to_string(),
                p["in_force"].as_bool().unwrap_or(false),
            )
        })
        .collect())
}

fn permits_are_added_replaced_and_revoked_through_the_api_and_audited(
    store: &TestStore,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut gw = store.gateway(dir.path(), &config())?;
    let admin = gw.token_named("admin", "", "root")?;
    let platform_ab = gw.token_named("platform", "a,b", "city")?;
    let platform_a = gw.token("platform", "a")?;
    let inspector_b = gw.token("inspector", "b")?;
    let inspector_c = gw.token("inspector", "c")?;
    let auditor = gw.token("auditor", "a")?;
    let device = gw.relay_token("a")?;
    let supervisor_a = gw.token("supervisor", "a")?;

    // Reading: the configured permit, for those who see a muck camera's site; its plate
    // masked for roles without the personal-data right (supervisors and admins have it).
    for tok in [&inspector_b, &auditor, &platform_a] {
        assert_eq!(
            listed(&gw, tok)?,
            [("苏E*****".to_string(), "config".to_string(), true)]
        );
    }
    for tok in [&supervisor_a, &admin] {
        assert_eq!(
            listed(&gw, tok)?,
            [("苏E5T703".to_string(), "config".to_string(), true)]
        );
    }
    for (who, tok) in [("inspector of c", &inspector_c), ("device", &device)] {
        assert_eq!(call(&gw, "GET", LIST, tok, None)?.status, 403, "{who}");
    }

    // Writing: admin, or a platform seeing both sites.
    let p1 = json!({"plate": "沪B74992", "cameras": ["cam-bridge"], "holder": "Huaxin Earthworks"});
    for (who, tok) in [
        ("platform of a", &platform_a),
        ("inspector", &inspector_b),
        ("auditor", &auditor),
    ] {
        let r = call(&gw, "POST", LIST, tok, Some(&p1))?;
        assert_eq!(r.status, 403, "{who}: {}", r.text());
    }
    let r = call(&gw, "POST", LIST, &admin, Some(&p1))?;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json()?;
    assert_eq!(
        (&v["plate"], &v["source"], &v["in_force"], &v["updated_by"]),
        (
            &json!("沪B74992"),
            &json!("api"),
            &json!(true),
            &json!("root#1")
        )
    );
    let r = call(&gw, "POST", LIST, &platform_ab, Some(&p1))?;
    assert_eq!(r.status, 409, "the plate has a permit: {}", r.text());

    // Checked as the configured ones, the field named.
    for (body, field) in [
        (json!({"plate": "E5T"}), "plate"),
        (
            json!({"plate": "浙A12345", "cameras": ["cam-road", "cam-moon"]}),
            "cameras[1]",
        ),
        (json!({"plate": "浙A12345", "hours": ["7-8"]}), "hours"),
        (json!({"plate": "浙A12345", "colour": "red"}), "colour"),
    ] {
        let r = call(&gw, "POST", LIST, &admin, Some(&body))?;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(field), "{field}: {}", r.text());
    }
    // The file wins: its plate is not written through the API.
    let r = call(
        &gw,
        "POST",
        LIST,
        &admin,
        Some(&json!({"plate": "苏E·5T703"})),
    )?;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("configuration"), "{}", r.text());
    assert_eq!(
        call(&gw, "DELETE", &one("苏E5T703"), &admin, None)?.status,
        409
    );

    // Replaced (200) and added (201) by PUT; read one.
    let r = call(
        &gw,
        "PUT",
        &one("沪B74992"),
        &platform_ab,
        Some(&json!({"hours": ["20:00-05:00"]})),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json()?;
    assert_eq!(v["hours"], json!(["20:00-05:00"]));
    assert_eq!(
        v["plate"],
        json!("沪B*****"),
        "the platform's own answer too: {v}"
    );
    let r = call(&gw, "PUT", &one("浙A12345"), &admin, Some(&json!({})))?;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(
        &gw,
        "PUT",
        &one("浙A12345"),
        &admin,
        Some(&json!({"plate": "浙A99999"})),
    )?;
    assert_eq!(r.status, 400, "plate differs from the path: {}", r.text());
    let v = call(&gw, "GET", &one("沪B74992"), &inspector_b, None)?
        .ok()?
        .json()?;
    assert_eq!(
        (&v["hours"], &v["cameras"], &v["updated_by"]),
        (&json!(["20:00-05:00"]), &json!([]), &json!("city#2"))
    );
    assert_eq!(v["plate"], json!("沪B*****"), "{v}");
    assert!(!v.to_string().contains("74992"), "{v}");
    let r = call(&gw, "GET", &one("浙A00000"), &inspector_b, None)?;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("00000"), "{}", r.text());
    let v = call(&gw, "GET", &one("沪B74992"), &supervisor_a, None)?
        .ok()?
        .json()?;
    assert_eq!(v["plate"], json!("沪B74992"), "{v}");

    // Revoked once, at once.
    let r = call(&gw, "DELETE", &one("浙A12345"), &platform_ab, None)?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        call(&gw, "DELETE", &one("浙A12345"), &admin, None)?.status,
        404
    );
    assert_eq!(
        call(&gw, "GET", &one("浙A12345"), &admin, None)?.status,
        404
    );

    // Each change is in the chain, with who made it and the permit before and after.
    let audit = call(
        &gw,
        "GET",
        "/api/v1/audit/export?from_ms=0&format=json",
        &admin,
        None,
    )?
    .ok()?
    .json()?;
    let changes: Vec<(String, String, String)> = audit
        .as_array()
        .context("entries")?
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("muck_permit"))
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["detail"]["plate"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("muck_permit_put", "沪B74992", "root#1"),
        ("muck_permit_put", "沪B74992", "city#2"),
        ("muck_permit_put", "浙A12345", "root#1"),
        ("muck_permit_delete", "浙A12345", "city#2"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(changes, want);
    let v = call(&gw, "GET", "/api/v1/audit/verify", &admin, None)?
        .ok()?
        .json()?;
    assert_eq!(v["ok"], json!(true), "{v}");

    // Durable: killed and started again, the stored permit is still in force.
    gw.kill();
    gw.start_again()?;
    assert_eq!(
        listed(&gw, &inspector_b)?,
        [
            ("苏E*****".to_string(), "config".to_string(), true),
            ("沪B*****".to_string(), "api".to_string(), true)
        ]
    );
    Ok(())
}

/// Two gateways on one PostgreSQL: a permit added, then revoked, through one is in force on
/// the other after its next re-read (`permits_reload_s`), without a restart.
#[test]
fn a_permit_changed_through_one_gateway_reaches_the_other_on_a_shared_store() -> Result<()> {
    let store = TestStore::postgres()?;
    let cfg = config().replacen(
        "[[muck_trucks.cameras]]",
        "[muck_trucks]\npermits_reload_s = 1\n[[muck_trucks.cameras]]",
        1,
    );
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = store.gateway(dir_a.path(), &cfg)?;
    let b = store.gateway(dir_b.path(), &cfg)?;
    // One token table: a token made through A is good on B.
    let admin = a.token("admin", "")?;
    let on_b = |want: bool| {
        e2e::wait_until(
            "the permit on B",
            std::time::Duration::from_secs(10),
            || {
                let has = listed(&b, &admin)?
                    .iter()
                    .any(|(plate, source, _)| plate == "沪B74992" && source == "api");
                Ok((has == want).then_some(()))
            },
        )
    };
    on_b(false)?;
    let p = json!({"plate": "沪B74992", "holder": "Huaxin Earthworks"});
    assert_eq!(call(&a, "POST", LIST, &admin, Some(&p))?.status, 201);
    on_b(true)?;
    assert_eq!(
        call(&a, "DELETE", &one("沪B74992"), &admin, None)?.status,
        200
    );
    on_b(false)?;
    Ok(())
}
