//! `simulator`: run a simulated fleet of restaurants, manholes and kitchen cameras against an
//! MQTT broker. Flags override the scenario file; see `--help`.

use std::process::ExitCode;

use firmware::sim::{FleetConfig, run_fleet};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "\
usage: simulator [--scenario FILE.toml] [--broker HOST:PORT] [--restaurants N] [--manholes N]
                 [--cameras N] [--seed N] [--speed SIM_S_PER_S] [--duration-s N]
                 [--max-messages N] [--start-ms MS] [--no-outages]

Publishes v1/{site}/{device}/telemetry|event|state with QoS 1 until Ctrl-C or a bound.
--speed 0 runs as fast as the broker accepts messages.";

fn parse(args: &[String]) -> Result<FleetConfig, String> {
    let mut cfg = FleetConfig::default();
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        let path = args.get(i + 1).ok_or("--scenario needs a file")?;
        cfg = FleetConfig::from_file(path).map_err(|e| e.to_string())?;
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--no-outages" {
            cfg.link_outages = false;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--scenario" => {}
            "--broker" => {
                let (h, p) = value
                    .rsplit_once(':')
                    .ok_or("--broker: expected HOST:PORT")?;
                cfg.broker_host = h.to_string();
                cfg.broker_port = p.parse().map_err(|e| format!("--broker port: {e}"))?;
            }
            "--restaurants" => cfg.restaurants = num(value)? as u32,
            "--manholes" => cfg.manholes = num(value)? as u32,
            "--cameras" => cfg.cameras = num(value)? as u32,
            "--seed" => cfg.seed = num(value)?,
            "--speed" => cfg.speed = value.parse().map_err(|e| format!("--speed: {e}"))?,
            "--duration-s" => cfg.duration_s = Some(num(value)?),
            "--max-messages" => cfg.max_messages = Some(num(value)?),
            "--start-ms" => cfg.start_ms = Some(num(value)? as i64),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    match run_fleet(cfg, cancel).await {
        Ok(stats) => {
            println!(
                "{}",
                serde_json::to_string(&stats).unwrap_or_else(|_| format!("{stats:?}"))
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("simulator: {e}");
            ExitCode::FAILURE
        }
    }
}
