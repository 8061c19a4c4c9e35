//! The ramp results of a side_by_side.sh run folder as one series per
//! system: for each ramp rate, the offered pushes/s and the medians over the
//! runs of push p99 and server CPU per push. What `plot` draws.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// One ramp step of one system, over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Pushes/s the robot was asked to cause: rate × clients × room size.
    pub offered: f64,
    pub p99_ms: f64,
    pub cpu_us_per_push: f64,
    /// At least half of the runs passed this step.
    pub pass: bool,
    pub runs: usize,
}

/// A system's points, in increasing offered load.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub system: String,
    pub points: Vec<Point>,
}

/// Reads every `<system>-ramp-<run>.json` of `dir`; systems in the order
/// ours, pomelo, pomelo-nodelay, then any other by name.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Series>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    // system -> rate (as bits, exact) -> steps of every run
    let mut by_system: BTreeMap<String, BTreeMap<u64, Vec<(f64, Value)>>> = BTreeMap::new();
    for entry in entries {
        let path = entry?.path();
        let Some(system) = ramp_system(&path) else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let report: Value = serde_json::from_str(text.trim())
            .with_context(|| format!("{} is not a robot JSON report", path.display()))?;
        let clients = report["clients"].as_f64().unwrap_or(0.0);
        let rooms = report["rooms"].as_f64().unwrap_or(0.0).max(1.0);
        let Some(steps) = report["steps"].as_array() else {
            continue;
        };
        for step in steps {
            let Some(rate) = step["rate"].as_f64() else {
                bail!("{}: a step without a rate", path.display());
            };
            let offered = rate * clients * (clients / rooms);
            by_system
                .entry(system.clone())
                .or_default()
                .entry(rate.to_bits())
                .or_default()
                .push((offered, step.clone()));
        }
    }
    if by_system.is_empty() {
        bail!(
            "no <system>-ramp-<run>.json with steps in {}: run side_by_side.sh with the ramp scenario first",
            dir.display()
        );
    }
    let mut series: Vec<Series> = by_system
        .into_iter()
        .map(|(system, rates)| {
            let mut points: Vec<Point> = rates.into_values().map(|steps| point(&steps)).collect();
            points.sort_by(|a, b| a.offered.total_cmp(&b.offered));
            Series { system, points }
        })
        .collect();
    series.sort_by_key(|s| {
        let rank = ["ours", "pomelo", "pomelo-nodelay"]
            .iter()
            .position(|k| *k == s.system)
            .unwrap_or(usize::MAX);
        (rank, s.system.clone())
    });
    Ok(series)
}

/// `ours` for `.../ours-ramp-2.json`; `None` for any other file.
fn ramp_system(path: &Path) -> Option<String> {
    if path.extension()? != "json" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let mut parts = stem.rsplitn(3, '-');
    let run = parts.next()?;
    let scenario = parts.next()?;
    let system = parts.next()?;
    (scenario == "ramp" && run.parse::<u32>().is_ok()).then(|| system.to_owned())
}

fn point(steps: &[(f64, Value)]) -> Point {
    let field = |k: &str| -> Vec<f64> { steps.iter().filter_map(|(_, s)| s[k].as_f64()).collect() };
    let passed = steps.iter().filter(|(_, s)| s["pass"] == true).count();
    Point {
        offered: median(steps.iter().map(|(o, _)| *o).collect()),
        p99_ms: median(field("push_p99_ms")),
        cpu_us_per_push: median(field("server_cpu_us_per_push")),
        pass: passed * 2 >= steps.len(),
        runs: steps.len(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(rates: &[(f64, f64, f64, bool)]) -> String {
        let steps: Vec<Value> = rates
            .iter()
            .map(|(rate, p99, cpu, pass)| {
                serde_json::json!({"rate": rate, "push_p99_ms": p99,
                                   "server_cpu_us_per_push": cpu, "pass": pass})
            })
            .collect();
        serde_json::json!({"clients": 1000, "rooms": 20, "steps": steps}).to_string()
    }

    #[test]
    fn medians_per_rate_and_system_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        w(
            "ours-ramp-1.json",
            ramp(&[(1.0, 2.0, 16.0, true), (2.0, 60.0, 12.0, false)]),
        );
        w("ours-ramp-2.json", ramp(&[(1.0, 4.0, 18.0, true)]));
        w("ours-ramp-3.json", ramp(&[(1.0, 3.0, 17.0, true)]));
        w(
            "pomelo-nodelay-ramp-1.json",
            ramp(&[(0.5, 40.0, 27.0, true)]),
        );
        w("ours-chat-1.json", "{}".into());
        w("notes.txt", "x".into());
        let series = load(dir.path()).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].system, "ours");
        assert_eq!(series[1].system, "pomelo-nodelay");
        let p = &series[0].points[0];
        assert_eq!(p.offered, 50_000.0);
        assert_eq!(
            (p.p99_ms, p.cpu_us_per_push, p.runs, p.pass),
            (3.0, 17.0, 3, true)
        );
        assert_eq!(series[0].points[1].offered, 100_000.0);
        assert!(!series[0].points[1].pass);
        assert_eq!(series[1].points[0].offered, 25_000.0);
    }

    #[test]
    fn a_folder_without_ramps_or_with_bad_json_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no <system>-ramp-<run>.json"), "{e}");
        std::fs::write(dir.path().join("ours-ramp-1.json"), "not json").unwrap();
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(
            e.contains("ours-ramp-1.json is not a robot JSON report"),
            "{e}"
        );
    }
}
