//! The runtime's modules are layers (see the `# Layout` table in `lib.rs`):
//! each may use the layers above it in that table, never one below. This
//! test reads every source file and fails on an import that reaches down
//! the table (up the stack), naming the file and the line, so the rule
//! holds without anyone having to remember it.
//!
//! It also checks the promise made to app authors: an app's dependency tree
//! holds none of the CLI's crates (clap, argon2, tempfile, the master).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Module → layer, from the wire up. Equal layers may not use each other
/// either, except through the crate root.
const LAYERS: &[(&str, u32)] = &[
    ("protocol", 0),
    ("hash", 0),
    ("config", 1),
    ("error", 1),
    ("logging", 1),
    ("telemetry", 1),
    ("trace", 1),
    ("discovery", 2),
    ("session", 3),
    ("connector", 4),
    ("handler", 5),
    ("router", 6),
    ("cluster", 7),
    ("channel", 7),
    ("app", 8),
    ("launch", 9),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/cluster/mux.rs` → `cluster`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// Every `crate::<module>` named on a code line (comments skipped).
fn crate_refs(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut refs = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::BoxFuture`, `crate::App`: root items, usable everywhere.
        if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            refs.push(name);
        }
    }
    refs
}

#[test]
fn no_module_reaches_up_the_stack() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found the sources in {}", src.display());
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(own) = layer(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no layer; add it to LAYERS and to lib.rs's # Layout",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for used in crate_refs(line) {
                checked += 1;
                if used == module {
                    continue;
                }
                match layer(&used) {
                    Some(l) if l < own => {}
                    Some(l) => violations.push(format!(
                        "{}:{}: `{module}` (layer {own}) uses `crate::{used}` (layer {l})",
                        file.display(),
                        n + 1
                    )),
                    None => violations.push(format!(
                        "{}:{}: `crate::{used}` is not a known layer",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} imports seen: is the scan broken?"
    );
    assert!(
        violations.is_empty(),
        "imports against the layer order:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scan_sees_an_upward_import() {
    // The checker itself: a line like this one must be reported.
    assert_eq!(crate_refs("use crate::app::App; // ok"), vec!["app"]);
    assert_eq!(crate_refs("// use crate::app::App;"), Vec::<String>::new());
    assert_eq!(
        crate_refs("pub use crate::BoxFuture;"),
        Vec::<String>::new()
    );
    assert!(layer("connector").unwrap() < layer("app").unwrap());
}

/// `cargo tree -p game-server` over the given edge kinds, one crate a line.
fn game_server_tree(edges: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "tree",
            "-p",
            "game-server",
            "-e",
            edges,
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(tree.contains("shaddock v"), "unexpected tree:\n{tree}");
    tree
}

fn assert_absent(tree: &str, crates: &[&str]) {
    for name in crates {
        let prefix = format!("{name} v");
        assert!(
            !tree.lines().any(|l| l.starts_with(&prefix)),
            "game-server depends on `{name}`:\n{tree}"
        );
    }
}

#[test]
fn an_app_compiles_none_of_the_cli() {
    // Build scripts included: nothing of the CLI, the master or the testkit.
    let with_build = game_server_tree("normal,build");
    assert_absent(
        &with_build,
        &["clap", "argon2", "shaddock-cli", "shaddock-testkit"],
    );
    // What the server binary links. (tempfile does reach the build scripts:
    // prost-build uses it to call protoc, which protox makes unnecessary.)
    let linked = game_server_tree("normal");
    assert_absent(&linked, &["tempfile"]);
}
