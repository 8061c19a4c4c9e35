//! The fuzz targets' short run, part of `cargo test --workspace` (so CI
//! runs it): every file of each target's corpus replays without a crash,
//! then each target fuzzes for a few seconds. The seed is printed; set
//! `SHADDOCK_FUZZ_SEED` to repeat a run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shaddock_fuzz::runner::{self, Limits};
use shaddock_fuzz::{input_name, load_corpus, targets};

const PER_TARGET: Duration = Duration::from_secs(3);

#[test]
fn every_target_survives_its_corpus_and_a_short_run() {
    let seed = std::env::var("SHADDOCK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("fuzz smoke seed {seed} (repeat with SHADDOCK_FUZZ_SEED={seed})");
    let mut failures = Vec::new();
    for mut target in targets::all() {
        let files = load_corpus(target.name());
        assert!(
            !files.is_empty(),
            "fuzz/corpus/{} is empty: the corpus is part of the repository",
            target.name()
        );
        runner::quiet_panics(|| {
            for (path, data) in &files {
                if let Err(m) = runner::run_one(target.as_mut(), data) {
                    failures.push(format!("corpus file {} crashes: {m}", path.display()));
                }
            }
        });
        let corpus = files.into_iter().map(|(_, d)| d).collect();
        let limits = Limits {
            inputs: u64::MAX,
            time: PER_TARGET,
        };
        let report = runner::fuzz(target.as_mut(), corpus, seed, limits);
        println!(
            "{}: {} inputs in {:.1} s ({:.0}/s), {} signatures",
            report.target,
            report.inputs,
            report.elapsed.as_secs_f64(),
            report.per_second(),
            report.signatures
        );
        assert!(
            report.inputs > 100,
            "{} ran only {} inputs",
            report.target,
            report.inputs
        );
        for c in &report.crashes {
            failures.push(format!(
                "{} crashed (seed {seed}): {}\ninput {} (hex): {}",
                report.target,
                c.message,
                input_name(&c.input),
                hex(&c.input)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
