//! Runs the JavaScript tests of the browser client (`web-server/js-tests/`,
//! node's built-in test runner) as part of `cargo test`, so the Pomelo codec
//! the page ships is checked against the §11 vectors on every CI run.
//!
//! Needs `node` (>= 20). Without it the test fails and says what to install;
//! `SHADDOCK_SKIP_JS=1` skips it explicitly (loudly).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use shaddock_testkit::exit_within;

const TIMEOUT: Duration = Duration::from_secs(120);

fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    v.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[test]
fn javascript_client_tests_pass() {
    if std::env::var("SHADDOCK_SKIP_JS").as_deref() == Ok("1") {
        eprintln!("!!! SKIPPED: web-server JavaScript tests (SHADDOCK_SKIP_JS=1) !!!");
        return;
    }
    let major = node_major().unwrap_or_else(|| {
        panic!(
            "`node` not found: the browser client's tests need Node.js >= 20 \
             (apt-get install nodejs; or run .ci/install-browser-deps.sh). \
             Set SHADDOCK_SKIP_JS=1 to skip."
        )
    });
    assert!(major >= 20, "node {major} is too old: need >= 20");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("node");
    if major < 22 {
        // The client tests use node's WebSocket client, built in from 22.
        cmd.arg("--experimental-websocket");
    }
    let mut child = cmd
        .args(["--test", "--test-reporter=spec", "js-tests/"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node --test");

    // Read output on threads so a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let status = exit_within(&mut child, TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("node --test js-tests/ did not finish within {TIMEOUT:?}");
    });
    let out = out_thread.join().unwrap();
    let err = err_thread.join().unwrap();
    println!("{out}");
    eprintln!("{err}");
    assert!(
        status.success(),
        "node --test js-tests/ failed ({status}); see the output above"
    );
    // Guard against a run that silently found no tests.
    let passed = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("ℹ pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed >= 20,
        "expected the JS suites to run (>= 20 tests), saw {passed}"
    );
}
