//! Tests never pass by skipping in CI.
//!
//! A few tests need something a developer's machine may lack (a browser, the right to mount a
//! small file system, fixtures built with Python, or the time for an evaluation). Each of them
//! calls [`skip_outside_ci`] at that point: under `CI=true` it fails the test, naming what is
//! missing; elsewhere it prints `SKIPPED: ...` and the test returns. `STRICT_TESTS=1` makes a
//! developer's machine behave like CI. Every such point is listed in `SECURITY.md` ("Tests
//! never pass by skipping") and pinned by a test that runs it under `CI=true` and sees it fail.
//! Everything else a test needs (servers, tools, models, Python modules) fails the test when
//! missing, everywhere (`require_binary`, `run_bounded`, `models/fetch.sh`).

/// Whether a missing prerequisite must fail the test: `CI=true` or `STRICT_TESTS=1`.
pub fn strict() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("STRICT_TESTS").as_deref() == Ok("1")
}

/// Called where a test is about to skip because `what` is missing: panics under [`strict`],
/// prints `SKIPPED: {what}` otherwise (the caller then returns).
pub fn skip_outside_ci(what: &str) {
    assert!(
        !strict(),
        "{what}: a test must not pass by skipping in CI (CI=true or STRICT_TESTS=1); \
         run `bash tests/run-all.sh` once to install what the tests need"
    );
    eprintln!("SKIPPED: {what} (this fails under CI=true)");
}
