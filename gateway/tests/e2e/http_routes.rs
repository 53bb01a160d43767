//! The HTTP API's routes and its OpenAPI document (`GET /api/v1/openapi.json`, hand-written in
//! `http/openapi.rs`) are the same set, checked against the real binary:
//! - every path registered in the source (`.route("...")` under `gateway/src`) is documented,
//!   and every documented path is registered;
//! - every path is registered in the one route table, `gateway/src/http/mod.rs` (no domain
//!   module builds a router);
//! - every documented method of a path is served, and every other method is refused as not
//!   allowed (405).

use crate::common::GatewayProcess;
use anyhow::{Context, Result, ensure};
use e2e::{free_port, http};
use std::collections::BTreeSet;
use std::path::Path;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// A request path for a documented template: each `{param}` filled with a well-formed value.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        out.push_str(match &rest[open + 1..close] {
            "sha256" => "0000000000000000000000000000000000000000000000000000000000000000",
            "name" => "a.jpg",
            _ => "1",
        });
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Every string-literal path passed to `.route(` in the `.rs` files under `dir`, with the file.
/// A file's `#[cfg(test)] mod tests` (at its end, by this crate's convention) is left out: a
/// unit test's stand-in server (a fake database's `/api/v2/write`) is not a gateway route.
fn routes_in_source(dir: &Path, found: &mut BTreeSet<(String, String)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.is_dir() {
            routes_in_source(&path, found)?;
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let whole = std::fs::read_to_string(&path)?;
        let text = whole
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for (i, _) in text.match_indices(".route(") {
            let after = text[i + ".route(".len()..].trim_start();
            if let Some(lit) = after.strip_prefix('"')
                && let Some(end) = lit.find('"')
            {
                found.insert((lit[..end].to_string(), path.display().to_string()));
            }
        }
    }
    Ok(())
}

#[test]
fn the_routes_and_the_openapi_document_are_the_same_set() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"routes-test\"\n[clues]\nmqtt_publish = false\n",
        free_port()
    );
    let gw = GatewayProcess::start(tmp.path(), &config)?;
    let doc = http::get(&format!("{}/api/v1/openapi.json", gw.http))?
        .ok()?
        .json()?;
    let paths = doc["paths"]
        .as_object()
        .context("openapi.json has no paths")?;
    let documented: BTreeSet<String> = paths.keys().cloned().collect();

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut routed = BTreeSet::new();
    routes_in_source(&src, &mut routed)?;
    let table = src.join("http").join("mod.rs").display().to_string();
    let elsewhere: Vec<_> = routed.iter().filter(|(_, file)| *file != table).collect();
    ensure!(
        elsewhere.is_empty(),
        "routes outside the route table {table}: {elsewhere:?}"
    );
    let in_source: BTreeSet<String> = routed.into_iter().map(|(path, _)| path).collect();
    ensure!(in_source.len() > 20, "found too few routes: {in_source:?}");
    let undocumented: Vec<_> = in_source.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&in_source).collect();
    ensure!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in openapi.json: {undocumented:?}; in openapi.json but not routed: {unrouted:?}"
    );

    // What the server answers for a path nobody routes, to tell "not routed" from a handler's
    // own 404 (a clue that does not exist, ...).
    let call = |method: &str, path: &str| {
        http::request(
            method,
            &format!("{}{path}", gw.http),
            None,
            &[],
            http::TIMEOUT,
        )
    };
    let nowhere = call("GET", "/api/v1/no-such-route")?;
    let unrouted = |r: &http::Response| r.status == nowhere.status && r.body == nowhere.body;
    ensure!(nowhere.status == 404, "unrouted path: {}", nowhere.status);

    let mut wrong = Vec::new();
    for (template, item) in paths {
        let path = concrete(template);
        for method in METHODS {
            let listed = item.get(method.to_lowercase()).is_some();
            let r = call(method, &path)?;
            let served = r.status != 405 && !unrouted(&r);
            if listed != served {
                wrong.push(format!(
                    "{method} {template}: documented {listed}, served {served} ({})",
                    r.status
                ));
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "methods differ:\n{}\n{}",
        wrong.join("\n"),
        gw.proc.log_tail(10)
    );
    Ok(())
}
