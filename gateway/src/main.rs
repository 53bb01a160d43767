//! `gateway`: the command line. Parses arguments, loads config, hands over to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gateway", version, about = "City enforcement sensor gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file (keys may be overridden by GATEWAY_* variables).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Load and validate a config file; exit non-zero naming the bad key.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Embedded default: in-process broker, simulated devices, storage under ./data (needs a
    /// build with `--features demo`, as `deploy/demo.sh` does).
    Demo {
        /// Where the demo keeps its data.
        #[arg(long, default_value = "data/demo")]
        data: PathBuf,
        /// Dashboard / API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// In-process MQTT broker port on 127.0.0.1.
        #[arg(long, default_value_t = 1883)]
        mqtt_port: u16,
        /// Simulated restaurants (grease traps and kitchen cameras).
        #[arg(long, default_value_t = 4)]
        restaurants: u32,
        /// Simulated manhole covers.
        #[arg(long, default_value_t = 4)]
        manholes: u32,
        /// Stop after this many seconds (0 = until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        duration_s: u64,
        /// The dashboard's `web/` folder (default: found from the working folder or the binary).
        #[arg(long)]
        dashboard_dir: Option<PathBuf>,
    },
    /// The clue store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The clue audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// API bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Rules tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain (sealed entries with the configured key) and every clue row; exit
    /// non-zero naming the first broken entry. With the last head the platform received
    /// (`audit/v1/head`), a chain cut off or rewritten before it is caught too.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// `seq` of the last published head.
        #[arg(long, requires = "head_hash")]
        head_seq: Option<i64>,
        /// `hash` of the last published head.
        #[arg(long, requires = "head_seq")]
        head_hash: Option<String>,
    },
    /// Give the audit chain a new key: the old one moves to the retired keys
    /// (`[clues.audit] retired_dir`, default `audit-keys-retired` beside the key file), and the
    /// entry `audit_key_rotated`, sealed with the old key, names the new one. Stop every
    /// gateway that writes the chain first. Run again after an interruption to finish.
    RotateKey {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (only its SHA-256 is stored).
    Create {
        #[arg(long)]
        config: PathBuf,
        /// device, drone_operator, inspector, supervisor, platform, admin, auditor or notifier.
        #[arg(long)]
        role: String,
        /// Sites the token may see, comma-separated (admin tokens see every site).
        #[arg(long, value_delimiter = ',')]
        sites: Vec<String>,
        /// Who holds it (recorded in the audit log as the actor).
        #[arg(long)]
        name: Option<String>,
        /// Binds a device token to this one device (camera id): it may then post frames and
        /// enrol the reference only for that camera. A device token needs this or --relay.
        #[arg(long, conflicts_with = "relay")]
        device: Option<String>,
        /// Scopes the token to a unit of `[org]`: it sees the unit's sites and those of the
        /// units below it (narrowed to --sites when given too).
        #[arg(long)]
        unit: Option<String>,
        /// Scopes the token to a department: it sees the clues that department leads or
        /// assists (of the unit's, or of --sites').
        #[arg(long)]
        department: Option<String>,
        /// A device token bound to no camera: it speaks for every device of its sites (a relay
        /// or recorder that uploads for several cameras). Recorded in the audit entry.
        #[arg(long)]
        relay: bool,
        /// The owner-notice channel (`[[clues.owner_notify.channels]] name`) whose receipts a
        /// notifier token posts; required for --role notifier, refused for every other role.
        #[arg(long)]
        channel: Option<String>,
    },
    /// List tokens (ids, roles, sites; never the tokens).
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: i64,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Move a gateway's clue pool (clues, audit chain, tokens, outbox, evidence files) from
    /// its SQLite file into an empty PostgreSQL database; both must verify.
    Migrate {
        /// `sqlite:PATH` (the `clues.sqlite` file; evidence files are read from the
        /// `evidence` folder beside it).
        #[arg(long)]
        from: String,
        /// `postgres:postgres://user@host:port/database`
        #[arg(long)]
        to: String,
        /// The audit chain's key (default: `audit.key` beside the SQLite file, if present).
        /// The gateways on PostgreSQL must use the same key afterwards.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Retired audit keys, for a chain whose key was rotated (default:
        /// `audit-keys-retired` beside the key file).
        #[arg(long)]
        retired_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Replay recorded readings (CSV or line protocol) through the configured rules and print
    /// the clues they would have raised.
    Backtest {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        input: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig { config } => {
            let cfg = Config::load(Some(&config))?;
            // The registry file is part of what must be right before a start.
            let registry = gateway::registry::Registry::open(
                &cfg.registry,
                std::sync::Arc::new(gateway::metrics::Metrics::new()),
            )?;
            println!(
                "{}: ok ({} registered devices)",
                config.display(),
                registry.snapshot().len()
            );
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::Backtest { config, input },
        } => {
            let cfg = Config::load(Some(&config))?;
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            print!(
                "{}",
                gateway::rules::backtest::backtest(
                    cfg.rules_engine()?,
                    cfg.measurement_prefix(),
                    &text,
                )?
            );
            Ok(())
        }
        Command::Run { config } => {
            let cfg = Config::load(Some(&config))?;
            runtime()?.block_on(gateway::app::run(cfg, Some(config)))
        }
        Command::Store {
            command:
                StoreCommand::Migrate {
                    from,
                    to,
                    key_file,
                    retired_dir,
                },
        } => {
            let path = PathBuf::from(
                from.strip_prefix("sqlite:")
                    .context("--from must be sqlite:PATH")?,
            );
            let url = to
                .strip_prefix("postgres:")
                .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
                .context("--to must be postgres:postgres://user@host:port/database")?;
            let evidence = path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("evidence");
            let key_cfg = gateway::clue::audit_key::AuditConfig {
                key_file: key_file.clone(),
                retired_dir,
                ..Default::default()
            };
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            let key = gateway::clue::audit_key::AuditKeyring::load(&key_cfg, dir, false)?;
            if key.is_none() && key_file.is_some() {
                anyhow::bail!("--key-file: no such file");
            }
            let report = gateway::clue::postgres::migrate::sqlite_to_postgres(
                &path,
                &evidence,
                url,
                key.map(std::sync::Arc::new),
            )?;
            for (table, n) in &report.rows {
                println!("{table}: {n} rows");
            }
            println!(
                "evidence files: {}; audit chain: {} entries, verified before and after",
                report.evidence_files, report.audit_entries
            );
            if !report.missing_files.is_empty() {
                eprintln!(
                    "warning: {} evidence files cited but absent from {}: {}",
                    report.missing_files.len(),
                    evidence.display(),
                    report.missing_files.join(", ")
                );
            }
            Ok(())
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    config,
                    head_seq,
                    head_hash,
                },
        } => {
            let cfg = Config::load(Some(&config))?;
            let store = gateway::clue::pool::open_store_to_verify(&cfg.clue_setup())?;
            let head = head_seq
                .zip(head_hash)
                .map(|(seq, hash)| gateway::clue::audit::Head { seq, hash });
            let report = gateway::clue::store::AuditLog::verify_audit_against(
                store.clues().as_ref(),
                head.as_ref(),
            )?;
            if report.ok {
                println!("{report}");
                Ok(())
            } else {
                anyhow::bail!("{report}")
            }
        }
        Command::Audit {
            command: AuditCommand::RotateKey { config },
        } => {
            let cfg = Config::load(Some(&config))?;
            let (rotation, report) =
                gateway::clue::pool::rotate_audit_key(&cfg.clue_setup(), gateway::clock::now_ms())?;
            println!(
                "audit key rotated: {} -> {} (old key kept at {})",
                rotation.old_key_id,
                rotation.new_key_id,
                rotation.retired_file.display()
            );
            if report.ok {
                println!("{report}");
                Ok(())
            } else {
                anyhow::bail!("{report}")
            }
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    config,
                    role,
                    sites,
                    name,
                    device,
                    unit,
                    department,
                    relay,
                    channel,
                },
        } => {
            let cfg = Config::load(Some(&config))?;
            let role = gateway::clue::auth::Role::parse(&role).with_context(|| {
                format!(
                    "unknown role `{role}` (device, drone_operator, inspector, supervisor, platform, admin, auditor, notifier)"
                )
            })?;
            let sites: Vec<String> = sites
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if let Err(why) = cfg
                .org()
                .check_grant(unit.as_deref(), department.as_deref())
            {
                anyhow::bail!("--unit/--department: {why}");
            }
            if sites.is_empty() && unit.is_none() && role != gateway::clue::auth::Role::Admin {
                anyhow::bail!("--sites or --unit is required for role {}", role.as_str());
            }
            if let Some(c) = &channel
                && cfg.clues.owner_notify.channel(c).is_none()
            {
                anyhow::bail!(
                    "--channel: no owner-notice channel `{c}` in [[clues.owner_notify.channels]] \
                     (configured: {})",
                    cfg.clues.owner_notify.names()
                );
            }
            std::fs::create_dir_all(&cfg.storage.dir)
                .with_context(|| format!("creating storage.dir {}", cfg.storage.dir.display()))?;
            let store = gateway::clue::pool::open_store(&cfg.clue_setup())?;
            let grant = gateway::clue::auth::TokenGrant {
                role,
                sites: &sites,
                name: name.as_deref(),
                device: device.as_deref(),
                unit: unit.as_deref(),
                department: department.as_deref(),
                relay,
                channel: channel.as_deref(),
            };
            let (id, token) = gateway::clue::auth::create_token_for(
                store.tokens().as_ref(),
                &grant,
                gateway::clock::now_ms(),
            )?;
            eprintln!(
                "token {id} ({}) created; it is shown only once:",
                role.as_str()
            );
            println!("{token}");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::List { config },
        } => {
            let cfg = Config::load(Some(&config))?;
            let store = gateway::clue::pool::open_store(&cfg.clue_setup())?;
            for t in store.list_tokens()? {
                println!("{}", serde_json::to_string(&t)?);
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Revoke { config, id },
        } => {
            let cfg = Config::load(Some(&config))?;
            let store = gateway::clue::pool::open_store(&cfg.clue_setup())?;
            if !store.revoke_token(id, gateway::clock::now_ms())? {
                anyhow::bail!("no active token {id}");
            }
            println!("token {id} revoked");
            Ok(())
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            data,
            listen,
            mqtt_port,
            restaurants,
            manholes,
            duration_s,
            dashboard_dir,
        } => runtime()?.block_on(gateway::demo::run(gateway::demo::DemoOptions {
            data,
            listen,
            mqtt_port,
            restaurants,
            manholes,
            duration_s,
            dashboard_dir,
        })),
        // The subcommand stays in `--help` so the message can say how to get it.
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => anyhow::bail!(
            "this gateway was built without the demo (the in-process MQTT broker and device \
             simulator are left out of production builds): run `bash deploy/demo.sh`, or build \
             with `cargo build --release -p gateway --features demo`"
        ),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
