//! `cargo shaddock start` builds the CLI, then the app. For the cold start
//! to compile each crate once, every crate the two builds share must get
//! the same features in both (Cargo compiles a crate once per feature set).
//! This test asks `cargo tree` for both builds' resolved features and names
//! any crate whose features differ, with what to add to
//! `framework/workspace-hack/Cargo.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Crate name+version → every feature set it is compiled with in a build.
fn units(packages: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).arg("tree");
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.args([
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--offline",
        "-f",
        "{p}|{f}",
    ]);
    let out = cmd.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree {packages:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut units: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        // "serde v1.0.0 (proc-macro)" → "serde v1.0.0"
        let name: Vec<&str> = package.split_whitespace().take(2).collect();
        let features = features.trim_end_matches(" (*)").trim().to_string();
        units.entry(name.join(" ")).or_default().insert(features);
    }
    units
}

#[test]
fn the_cli_and_the_app_compile_shared_crates_with_the_same_features() {
    let cli = units(&["shaddock-cli"]);
    let app = units(&["game-server", "web-server"]);
    assert!(
        cli.keys().any(|k| k.starts_with("tonic ")),
        "no tonic in {cli:?}"
    );
    let mut differ = Vec::new();
    for (name, app_sets) in &app {
        let Some(cli_sets) = cli.get(name) else {
            continue; // only the app uses it: compiled once anyway
        };
        // bitflags without `std` is compiled for tower-http alone, which
        // only the web server uses: an extra unit, not a second copy of a
        // crate the runtime depends on.
        if name.starts_with("bitflags ") {
            continue;
        }
        if app_sets != cli_sets {
            differ.push(format!(
                "{name}\n    CLI build: {cli_sets:?}\n    app build: {app_sets:?}"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "these crates would be compiled twice by `cargo shaddock start`; enable the \
         missing features in framework/workspace-hack/Cargo.toml:\n{}",
        differ.join("\n")
    );
}
