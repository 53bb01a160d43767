//! A PostgreSQL server per test: Debian's `postgresql` 15 binaries, a fresh cluster in a temp
//! dir (`initdb`, trust authentication on loopback), `postgres` on a free 127.0.0.1 port.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI, the session machines)
//! `initdb` and `postgres` run as the `postgres` system user (the package creates it) through
//! `setpriv`, which execs in place: the guarded pid is the postmaster itself, so a kill reaches
//! it. The temp dir is made traversable (`mktemp -d` is mode 700) and the data dir is owned by
//! that user. Durability settings are relaxed (`fsync = off`): these are throwaway clusters;
//! [`PostgresOptions::durable`] keeps the defaults for benchmarks that should pay for them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::port::with_free_port;
use crate::process::ServerProcess;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Debian's `postgresql-15` puts the server binaries (not on PATH).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Options for [`Postgres::start_with`].
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Keep PostgreSQL's durable defaults (fsync, synchronous commit).
    pub durable: bool,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

/// A running PostgreSQL on 127.0.0.1, user `postgres`, trust authentication.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    process: ServerProcess,
    // Last: removed after the process is killed.
    dir: TempDir,
}

fn pg_binary(name: &str) -> Result<PathBuf> {
    let p = Path::new(PG_BIN).join(name);
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "`{}` not found; run `bash tests/run-all.sh` once to install the test servers \
         (Debian package postgresql)",
        p.display()
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program args` as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_postgres(program: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
    if !is_root() {
        return (program.to_path_buf(), args.to_vec());
    }
    let mut all = vec![
        "--reuid=postgres".to_string(),
        "--regid=postgres".into(),
        "--init-groups".into(),
        "--".into(),
        program.display().to_string(),
    ];
    all.extend(args.iter().cloned());
    (PathBuf::from("setpriv"), all)
}

/// Hands `path` to the `postgres` user (root only; otherwise it is already ours).
fn give_to_postgres(path: &Path) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let out = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .output()
        .context("chown")?;
    if !out.status.success() {
        bail!(
            "chown postgres {}: {} (is the postgresql package installed?)",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Postgres {
    pub fn start() -> Result<Self> {
        Self::start_with(PostgresOptions::default())
    }

    pub fn start_with(opts: PostgresOptions) -> Result<Self> {
        let initdb = pg_binary("initdb")?;
        let postgres = pg_binary("postgres")?;
        let dir = tempfile::Builder::new().prefix("e2e-postgres-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        give_to_postgres(&data)?;
        let (prog, args) = as_postgres(
            &initdb,
            &[
                "-D".into(),
                data.display().to_string(),
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "postgres".into(),
                "-E".into(),
                "UTF8".into(),
                "--no-sync".into(),
            ],
        );
        let out = Command::new(&prog)
            .args(&args)
            .output()
            .with_context(|| format!("run {}", prog.display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        with_free_port("postgres", |port| {
            let mut settings = vec![
                ("listen_addresses".to_string(), "127.0.0.1".to_string()),
                ("max_connections".into(), "100".into()),
                ("shared_buffers".into(), "32MB".into()),
            ];
            if !opts.durable {
                settings.push(("fsync".into(), "off".into()));
                settings.push(("synchronous_commit".into(), "off".into()));
                settings.push(("full_page_writes".into(), "off".into()));
            }
            settings.extend(opts.settings.iter().cloned());
            let mut args = vec![
                "-D".to_string(),
                data.display().to_string(),
                "-p".into(),
                port.to_string(),
                "-k".into(),
                data.display().to_string(),
            ];
            for (k, v) in settings {
                args.push("-c".into());
                args.push(format!("{k}={v}"));
            }
            let (prog, args) = as_postgres(&postgres, &args);
            let log = dir.path().join("postgres.log");
            let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let mut process = ServerProcess::spawn("postgres", &prog, args, log)?;
            wait_ready(&mut process, port, offset)?;
            Ok((port, process))
        })
        .map(|(port, process)| Postgres { port, process, dir })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL through `psql` (stops at the first error) and returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(pg_binary("psql")?)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(database))
            .args(["-c", sql])
            .output()
            .context("run psql")?;
        if !out.status.success() {
            bail!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    crate::process::server_lifecycle!("postgres", wait_ready);
}

/// Ready when this start's log says so and `psql` can run a query.
fn wait_ready(p: &mut ServerProcess, port: u16, offset: u64) -> Result<()> {
    let log = p.log_path().to_path_buf();
    p.wait_ready(READY_TIMEOUT, || {
        let text = std::fs::read(&log).unwrap_or_default();
        let since = text.get(offset as usize..).unwrap_or_default();
        Ok(
            String::from_utf8_lossy(since).contains("ready to accept connections")
                && crate::port::is_listening(port),
        )
    })
}
