//! `shaddock-fuzz`: runs the fuzz targets (see the crate docs).
//!
//! ```text
//! cargo run --release -p shaddock-fuzz -- [--target NAME]... [--inputs N] [--seconds S] [--seed N]
//! cargo run --release -p shaddock-fuzz -- --list
//! ```
//!
//! Defaults: every target, 1 000 000 inputs each, no time limit, a seed
//! from the clock (printed, so a run can be repeated). Each target first
//! replays its corpus (`fuzz/corpus/<target>/`), then fuzzes. A crashing
//! input is written to `fuzz/artifacts/<target>/crash-<hash>`; the exit
//! status is 1 if anything crashed.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use shaddock_fuzz::runner::{self, Limits, Report};
use shaddock_fuzz::{input_name, load_corpus, targets};

struct Args {
    targets: Vec<String>,
    inputs: u64,
    seconds: Option<f64>,
    seed: Option<u64>,
    list: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    use lexopt::prelude::*;
    let mut args = Args {
        targets: Vec::new(),
        inputs: 1_000_000,
        seconds: None,
        seed: None,
        list: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("target") => args.targets.push(parser.value()?.string()?),
            Long("inputs") => args.inputs = parser.value()?.parse()?,
            Long("seconds") => args.seconds = Some(parser.value()?.parse()?),
            Long("seed") => args.seed = Some(parser.value()?.parse()?),
            Long("list") => args.list = true,
            Long("help") | Short('h') => {
                println!(
                    "usage: shaddock-fuzz [--target NAME]... [--inputs N] [--seconds S] [--seed N] | --list"
                );
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("shaddock-fuzz: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = parse_args()?;
    let names: Vec<&'static str> = targets::all().iter().map(|t| t.name()).collect();
    if args.list {
        println!("{}", names.join("\n"));
        return Ok(true);
    }
    for t in &args.targets {
        if !names.contains(&t.as_str()) {
            bail!("unknown target `{t}`; targets: {}", names.join(", "));
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let limits = Limits {
        inputs: args.inputs,
        time: args
            .seconds
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::MAX),
    };
    println!("seed {seed} (repeat with --seed {seed})");
    println!(
        "{:<13} {:>10} {:>8} {:>10} {:>8} {:>6} {:>7}",
        "target", "inputs", "secs", "inputs/s", "crashes", "sigs", "corpus"
    );
    let mut clean = true;
    for mut target in targets::all() {
        if !args.targets.is_empty() && !args.targets.iter().any(|t| t == target.name()) {
            continue;
        }
        let files = load_corpus(target.name());
        // The corpus first: a crash kept there must stay fixed.
        let replayed = runner::quiet_panics(|| {
            files
                .iter()
                .filter_map(|(path, data)| {
                    runner::run_one(target.as_mut(), data)
                        .err()
                        .map(|m| format!("{}: {m}", path.display()))
                })
                .collect::<Vec<_>>()
        });
        for failure in &replayed {
            println!("CORPUS CRASH {failure}");
        }
        let corpus = files.into_iter().map(|(_, d)| d).collect();
        let report = runner::fuzz(target.as_mut(), corpus, seed, limits);
        print_report(&report);
        save_crashes(&report)?;
        clean &= replayed.is_empty() && report.crashes.is_empty();
    }
    Ok(clean)
}

fn print_report(r: &Report) {
    println!(
        "{:<13} {:>10} {:>8.1} {:>10.0} {:>8} {:>6} {:>7}",
        r.target,
        r.inputs,
        r.elapsed.as_secs_f64(),
        r.per_second(),
        r.crashing_inputs,
        r.signatures,
        r.corpus
    );
    for c in &r.crashes {
        println!("  crash: {}", c.message);
    }
}

fn save_crashes(r: &Report) -> anyhow::Result<()> {
    if r.crashes.is_empty() {
        return Ok(());
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(r.target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for c in &r.crashes {
        let path = dir.join(format!("crash-{}", input_name(&c.input)));
        std::fs::write(&path, &c.input).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "  saved {} (move it to fuzz/corpus/{}/ once fixed)",
            path.display(),
            r.target
        );
    }
    Ok(())
}
