//! Clue-quality benchmark: a simulated month of a city block (100 restaurants, 50 manholes,
//! 20 kitchen cameras, seeded violations and innocent happenings) through the gateway's
//! judgement, scored against the ground truth (see `gateway::scenario`).
//!
//! ```text
//! cargo run --release -p gateway --example clue_quality -- [--seeds 9101,9102,9103]
//!     [--scenario firmware/scenarios/blocks/city-block.toml] [--days N] [--config-extra FILE]
//!     [--json OUT.json] [--details]
//! cargo run --release -p gateway --example clue_quality -- --rescore RUN.json[,RUN2.json] [--details]
//! ```
//! Prints, per seed, violation recall, the share of violations with exactly one clue, clues
//! and false clues per 1,000 device-days; then medians per problem kind and per clue kind.
//! The default seeds are the *judging* seeds: nothing was adjusted while looking at them
//! (seeds 1-3 were used while building the harness and choosing parameters).
//! `--details` lists missed, duplicated and false clues. `RUST_LOG=scenario_trace=debug` writes
//! every reading and clue signal to stderr, to follow one device (grep its site).
//! `--rescore` reads the runs a `--json` file holds and scores them again, without simulating:
//! for a change of the scorer (`gateway::scenario::score`), not of the gateway.

use firmware::sim::scenario::BlockParams;
use gateway::scenario::frames::{FrameLibrary, ensure_fixtures};
use gateway::scenario::score::Score;
use gateway::scenario::score::{report, score};
use gateway::scenario::{RunOutput, run_block};
use std::path::{Path, PathBuf};

/// Seeds that judge: never used while adjusting anything.
const JUDGING_SEEDS: [u64; 5] = [9101, 9102, 9103, 9104, 9105];

struct Args {
    seeds: Vec<u64>,
    scenario: Option<PathBuf>,
    days: Option<u32>,
    extra: Option<PathBuf>,
    json: Option<PathBuf>,
    details: bool,
    rescore: Vec<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        seeds: JUDGING_SEEDS.to_vec(),
        scenario: None,
        days: None,
        extra: None,
        json: None,
        details: false,
        rescore: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--seeds" => {
                a.seeds = value()?
                    .split(',')
                    .map(|s| s.trim().parse::<u64>())
                    .collect::<Result<_, _>>()?
            }
            "--scenario" => a.scenario = Some(value()?.into()),
            "--days" => a.days = Some(value()?.parse()?),
            "--config-extra" => a.extra = Some(value()?.into()),
            "--json" => a.json = Some(value()?.into()),
            "--details" => a.details = true,
            "--rescore" => a.rescore = value()?.split(',').map(PathBuf::from).collect(),
            other => anyhow::bail!("unknown argument {other} (see the file's doc comment)"),
        }
    }
    Ok(a)
}

/// The runs stored in `--json` files.
fn stored_runs(paths: &[PathBuf]) -> anyhow::Result<Vec<RunOutput>> {
    #[derive(serde::Deserialize)]
    struct Stored {
        runs: Vec<RunOutput>,
    }
    let mut runs = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("--rescore {}: {e}", p.display()))?;
        let stored: Stored = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("--rescore {}: not a --json output: {e}", p.display()))?;
        runs.extend(stored.runs);
    }
    Ok(runs)
}

fn print_details(s: &Score) {
    let seed = s.seed;
    println!("seed {seed}: missed\n  {}", s.misses.join("\n  "));
    println!("seed {seed}: duplicated\n  {}", s.duplicates.join("\n  "));
    println!("seed {seed}: false\n  {}", s.false_examples.join("\n  "));
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !args.rescore.is_empty() {
        let runs = stored_runs(&args.rescore)?;
        let scores: Vec<Score> = runs.iter().map(score).collect();
        if args.details {
            scores.iter().for_each(print_details);
        }
        println!("clue quality (rescored from {} stored run(s))", runs.len());
        print!("{}", report(&scores));
        return Ok(());
    }
    // Off unless RUST_LOG asks (e.g. `scenario_trace=debug`: every reading and signal).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no workspace root"))?
        .to_path_buf();
    let scenario = args
        .scenario
        .clone()
        .unwrap_or_else(|| root.join("firmware/scenarios/blocks/city-block.toml"));
    let base = BlockParams::from_toml_str(&std::fs::read_to_string(&scenario)?)?;
    let extra = match &args.extra {
        Some(p) => std::fs::read_to_string(p)?,
        None => String::new(),
    };
    let frames = FrameLibrary::load(&ensure_fixtures(&root)?, None)?;
    eprintln!(
        "scenario {} ({} scenes of camera frames: {})",
        scenario.display(),
        frames.len(),
        frames.names().join(", ")
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut scores = Vec::new();
    let mut runs = Vec::new();
    for &seed in &args.seeds {
        let p = BlockParams {
            seed,
            days: args.days.unwrap_or(base.days),
            ..base.clone()
        };
        let out = rt.block_on(run_block(&p, &frames, &extra, |day| {
            if day % 5 == 0 {
                eprintln!("  seed {seed}: day {day}/{}", p.days);
            }
        }))?;
        eprintln!(
            "seed {seed}: {} messages, {} frames, {} clues, {} truth records in {:.1} s",
            out.messages,
            out.frames,
            out.clues.len(),
            out.truth.len(),
            out.wall_s
        );
        let s = score(&out);
        if args.details {
            print_details(&s);
        }
        scores.push(s);
        runs.push(out);
    }
    println!(
        "clue quality: {} seeds x {} days, {} devices",
        scores.len(),
        args.days.unwrap_or(base.days),
        base.device_count()
    );
    print!("{}", report(&scores));
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::json!({"scores": scores, "runs": runs}))?,
        )?;
    }
    Ok(())
}
