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
    /// Embedded default: in-process broker, simulated devices, storage under ./data.
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
    },
    /// Rules tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
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
            Config::load(Some(&config))?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::Backtest { config, input },
        } => {
            let cfg = Config::load(Some(&config))?;
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            print!("{}", gateway::rules::backtest::backtest(&cfg, &text)?);
            Ok(())
        }
        Command::Run { config } => {
            let cfg = Config::load(Some(&config))?;
            runtime()?.block_on(gateway::app::run(cfg))
        }
        Command::Demo {
            data,
            listen,
            mqtt_port,
            restaurants,
            manholes,
            duration_s,
        } => runtime()?.block_on(gateway::demo::run(gateway::demo::DemoOptions {
            data,
            listen,
            mqtt_port,
            restaurants,
            manholes,
            duration_s,
        })),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
