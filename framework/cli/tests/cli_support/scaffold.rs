//! A fresh `shaddock init` app, built and run as a user does it
//! (`cli_init`, `cli_guide`): generate, free ports, this workspace's
//! Cargo.lock, `start -D --debug`, clients through gate → connector, and
//! cleanup on drop.
//!
//! The app shares this workspace's target folder (and Cargo.lock), so only
//! the framework and the app itself are compiled; its packages are named
//! after the app, so its binaries cannot overwrite the chat app's or another
//! test app's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use shaddock_client::{Client, ClientOptions};

use super::{cleanup, code, free_port, run_cli, shaddock, stderr, stdout, wait_gone};

/// The target folder of this test build: `<target>/<profile>/shaddock`.
pub fn target_dir() -> PathBuf {
    shaddock().parent().unwrap().parent().unwrap().to_path_buf()
}

/// `shaddock init <dir>`; panics unless it succeeds. Returns what it printed.
pub fn init_app(dir: &Path) -> String {
    let out = std::process::Command::new(shaddock())
        .arg("init")
        .arg(dir)
        .output()
        .unwrap();
    let printed = stdout(&out);
    assert_eq!(code(&out), 0, "{printed}{}", stderr(&out));
    printed
}

/// Asserts that `cargo fmt --check` is happy with the app's code.
pub fn assert_rustfmt_clean(dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let fmt = std::process::Command::new(&cargo)
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        fmt.status.success(),
        "the app's code is not rustfmt-clean:\n{}{}",
        stdout(&fmt),
        stderr(&fmt)
    );
}

/// Makes the app ready to build and run in a test: every port of its
/// config is replaced by a free one (the defaults are Pomelo's demo ports,
/// which a developer may be using), and it gets this workspace's Cargo.lock
/// (same dependency versions: nothing but the framework and the app gets
/// compiled, and nothing is resolved over the network).
pub fn prepare_for_test(app: &Path) {
    let path = app.join("config/servers.json");
    let mut servers: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for env in servers.as_object_mut().unwrap().values_mut() {
        for list in env.as_object_mut().unwrap().values_mut() {
            for s in list.as_array_mut().unwrap() {
                for key in ["port", "clientPort", "metricsPort"] {
                    if s.get(key).is_some() {
                        s[key] = json!(free_port());
                    }
                }
            }
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&servers).unwrap()).unwrap();
    let path = app.join("config/master.json");
    let mut master: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for env in master.as_object_mut().unwrap().values_mut() {
        env["port"] = json!(free_port());
        env["web"]["port"] = json!(free_port());
    }
    std::fs::write(&path, serde_json::to_string_pretty(&master).unwrap()).unwrap();
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    std::fs::copy(lock, app.join("Cargo.lock")).unwrap();
}

/// A started app; `kill`s whatever is left of it when dropped.
pub struct Running {
    pub dir: PathBuf,
    /// What `start -D` printed.
    pub start_stdout: String,
}

impl Running {
    /// `shaddock start -D --debug` (builds the app first); panics unless
    /// every server came up.
    pub fn start(dir: &Path) -> Running {
        let mut app = Running {
            dir: dir.to_path_buf(),
            start_stdout: String::new(),
        };
        let out = app.cli(&["start", "-D", "--debug", "--timeout", "60"]);
        app.start_stdout = stdout(&out);
        assert_eq!(
            code(&out),
            0,
            "start -D failed:\n{}\n{}",
            app.start_stdout,
            stderr(&out)
        );
        app
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        run_cli(&self.dir, args, |cmd| {
            cmd.env("CARGO_TARGET_DIR", target_dir());
        })
    }

    pub fn list(&self) -> Value {
        let out = self.cli(&["list", "--json"]);
        assert_eq!(code(&out), 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn server(&self, id: &str) -> Value {
        super::server_in(&self.list(), id)
    }

    /// `ws://` address of `gate-server-1`.
    pub fn gate(&self) -> String {
        let port = self.server("gate-server-1")["clientPort"].as_u64().unwrap();
        format!("ws://127.0.0.1:{port}")
    }

    /// `shaddock stop`, then checks that the master and every server it
    /// ran are gone.
    pub fn stop(&self) {
        let pids = super::all_pids(&self.list());
        let out = self.cli(&["stop"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        wait_gone(&pids, Duration::from_secs(15));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        cleanup(&self.dir);
    }
}

/// Asks the gate for `uid`'s connector: `(host, client port)`.
pub async fn connector_for(gate: &str, uid: &str) -> (String, u16) {
    let client = Client::connect(gate, ClientOptions::default())
        .await
        .expect("gate");
    let resp: Value = client
        .request("gate.gateHandler.queryEntry", &json!({"uid": uid}))
        .await
        .expect("queryEntry");
    client.close().await;
    assert_eq!(resp["code"], 200, "{resp}");
    (
        resp["host"].as_str().unwrap().to_string(),
        resp["port"].as_u64().unwrap() as u16,
    )
}

/// Logs `uid` into `rid` through the gate; returns the client and the
/// connector port it was sent to.
pub async fn enter(gate: &str, uid: &str, rid: &str) -> (Client, u16) {
    let (host, port) = connector_for(gate, uid).await;
    let client = Client::connect(&format!("ws://{host}:{port}"), ClientOptions::default())
        .await
        .expect("connector");
    let resp: Value = client
        .request(
            "connector.entryHandler.enter",
            &json!({"uid": uid, "rid": rid}),
        )
        .await
        .expect("enter");
    assert_eq!(resp["code"], 200, "{resp}");
    assert!(
        resp["users"].as_array().unwrap().contains(&json!(uid)),
        "{resp}"
    );
    (client, port)
}

/// One HTTP/1.0 GET on 127.0.0.1:`port`: `(status, headers, body)`.
pub fn http_get(port: u16, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    (status, head.to_string(), body.to_string())
}
