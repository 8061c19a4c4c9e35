//! Fuzzing on stable Rust (no nightly, so no cargo-fuzz/libFuzzer): for each
//! target, inputs come from a structured generator (mostly well-formed
//! packages, messages, handshakes, WebSocket frames, servers.json files)
//! and from byte-level mutation of a corpus — the files kept in
//! `fuzz/corpus/<target>/` plus, while running, every input whose outcome
//! signature (which error, which shapes) was new. That signature is cheap
//! feedback, not coverage: this is not coverage-guided fuzzing.
//!
//! A crash is a panic in the code under test or a broken invariant (a
//! round trip that changes a value, a connection that never ends). The
//! runner catches it, keeps the input and goes on. See docs/reliability.md
//! for the commands and the figures.

pub mod mutate;
pub mod rng;
pub mod runner;
pub mod targets;

use std::path::{Path, PathBuf};

/// `fuzz/corpus/<target>/` of this checkout.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Every file of a target's corpus folder (sorted by name; none if the
/// folder is missing).
pub fn load_corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(corpus_dir(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|data| (p, data)))
        .collect()
}

/// A stable short name for an input (FNV-1a of its bytes).
pub fn input_name(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
