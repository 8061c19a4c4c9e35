//! Debian packages a test needs (etcd, a font…): found where the package
//! puts them, installed with apt-get when missing and the test runs as root
//! (as on CI, whose fresh machine has only what `.ci/run` and the tests
//! install), else a panic saying which package to install.

use std::path::PathBuf;
use std::process::Command;

/// The first of `paths` that is a file; when none is, installs `package`
/// (as root: `apt-get install`, after `apt-get update` if the first try
/// fails) and looks again. Panics naming the package when it cannot.
/// `what` says what the test needs it for.
pub fn find_or_install(paths: &[&str], package: &str, what: &str) -> PathBuf {
    let found = || paths.iter().map(PathBuf::from).find(|p| p.is_file());
    if let Some(p) = found() {
        return p;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let log = format!("/tmp/{package}-apt.log");
    if root {
        eprintln!("{what} not found: installing Debian's {package} (apt-get)");
        let ok = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "(apt-get install -y {package} || (apt-get update && apt-get install -y {package})) >{log} 2>&1"
                ),
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if ok && let Some(p) = found() {
            return p;
        }
    }
    panic!(
        "this test needs {what}: install Debian's package with `sudo apt-get install {package}` \
         (tried: {}; see {log})",
        if root {
            "apt-get as root"
        } else {
            "nothing, not root"
        }
    );
}
