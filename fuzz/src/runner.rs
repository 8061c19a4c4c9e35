//! The fuzz loop: pick or make an input, run it, catch a panic, learn from
//! the outcome signature.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::mutate::mutate;
use crate::rng::Rng;
use crate::targets::Target;

/// When to stop: after `inputs` inputs or `time`, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub inputs: u64,
    pub time: Duration,
}

/// One input that crashed, with the panic message.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub inputs: u64,
    pub elapsed: Duration,
    /// Distinct crashes (by panic message).
    pub crashes: Vec<Crash>,
    /// Inputs that crashed, duplicates included.
    pub crashing_inputs: u64,
    /// Distinct outcome signatures seen.
    pub signatures: usize,
    /// Working corpus at the end (files + inputs with new signatures).
    pub corpus: usize,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Most inputs kept in the working corpus.
const CORPUS_CAP: usize = 4096;

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with panic messages recorded instead of printed (a fuzz run
/// panics on purpose, often); restores the previous hook afterwards.
pub fn quiet_panics<R>(f: impl FnOnce() -> R) -> R {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = format!("{payload}{location}"));
    }));
    let result = f();
    panic::set_hook(previous);
    result
}

/// Runs one input; `Err(message)` if it panicked. Call inside
/// [`quiet_panics`] to keep the console clean.
pub fn run_one(target: &mut dyn Target, input: &[u8]) -> Result<u64, String> {
    panic::catch_unwind(AssertUnwindSafe(|| target.run(input)))
        .map_err(|_| LAST_PANIC.with(|p| p.borrow().clone()))
}

/// Fuzzes `target` from `seed` within `limits`, starting from `corpus`.
pub fn fuzz(target: &mut dyn Target, corpus: Vec<Vec<u8>>, seed: u64, limits: Limits) -> Report {
    quiet_panics(|| fuzz_loop(target, corpus, seed, limits))
}

fn fuzz_loop(
    target: &mut dyn Target,
    mut corpus: Vec<Vec<u8>>,
    seed: u64,
    limits: Limits,
) -> Report {
    let mut rng = Rng::new(seed);
    let max_len = target.max_len();
    let mut seen = HashSet::new();
    let mut crashes: Vec<Crash> = Vec::new();
    let mut crashing_inputs = 0;
    let start = Instant::now();
    let mut inputs = 0u64;
    while inputs < limits.inputs {
        // The clock is read every 256 inputs: cheap, and precise enough.
        if inputs & 255 == 0 && start.elapsed() >= limits.time {
            break;
        }
        let input = next_input(target, &corpus, &mut rng, max_len);
        inputs += 1;
        match run_one(target, &input) {
            Ok(sig) => {
                if seen.insert(sig) && corpus.len() < CORPUS_CAP {
                    corpus.push(input);
                }
            }
            Err(message) => {
                crashing_inputs += 1;
                if !crashes.iter().any(|c| c.message == message) {
                    crashes.push(Crash { input, message });
                }
            }
        }
    }
    Report {
        target: target.name(),
        seed,
        inputs,
        elapsed: start.elapsed(),
        crashes,
        crashing_inputs,
        signatures: seen.len(),
        corpus: corpus.len(),
    }
}

/// Half the time a fresh structured input (mutated or not), otherwise a
/// mutated corpus entry spliced with another.
fn next_input(
    target: &mut dyn Target,
    corpus: &[Vec<u8>],
    rng: &mut Rng,
    max_len: usize,
) -> Vec<u8> {
    if corpus.is_empty() || rng.one_in(2) {
        let mut input = target.generate(rng);
        if rng.one_in(2) {
            let other = if corpus.is_empty() {
                &[][..]
            } else {
                &corpus[rng.below(corpus.len())][..]
            };
            mutate(rng, &mut input, other, max_len);
        }
        input.truncate(max_len);
        input
    } else {
        let mut input = corpus[rng.below(corpus.len())].clone();
        let other = &corpus[rng.below(corpus.len())];
        mutate(rng, &mut input, other, max_len);
        input
    }
}
