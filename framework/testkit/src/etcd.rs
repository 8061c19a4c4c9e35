//! A real etcd server on loopback for tests (Debian's `etcd-server`).
//!
//! [`Etcd::start`] finds the `etcd` binary, installing Debian's package
//! when it is missing and the test runs as root with apt (as on CI), or
//! panics saying how to install it. Each server has its own data folder,
//! ports and name; [`Etcd::kill`] and [`Etcd::restart`] (same data, same
//! ports) let a test take etcd away and bring it back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_ports;

/// The etcd binary, installed if needed (once per test process).
pub fn etcd_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        crate::apt::find_or_install(
            &["/usr/bin/etcd", "/usr/local/bin/etcd"],
            "etcd-server",
            "an etcd server",
        )
    })
    .clone()
}

/// One etcd member on 127.0.0.1, killed on drop.
pub struct Etcd {
    pub client_port: u16,
    peer_port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd and waits until it answers on its client port.
    pub fn start() -> Etcd {
        let ports = free_ports(2);
        let mut etcd = Etcd {
            client_port: ports[0],
            peer_port: ports[1],
            data: tempfile::tempdir().expect("temp dir for etcd"),
            child: None,
        };
        etcd.spawn();
        etcd
    }

    /// `127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(etcd_binary())
            .arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (etcd lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
