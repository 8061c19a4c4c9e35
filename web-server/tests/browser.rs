//! The chat in a real browser: starts our chat cluster (gate, two connectors,
//! chat servers) and the web server on free loopback ports, then runs
//! `web-server/e2e/chat.e2e.mjs` (playwright-core driving Debian's chromium,
//! headless): two users in one room on different connectors exchange a
//! public and a private message, a duplicate name is refused, users leave and
//! the others see them go, and finally the cluster is taken down and the page
//! must return to the login screen with a notice. Screenshots are written to
//! `web-server/e2e/artifacts/`.
//!
//! Needs `node`, `/usr/bin/chromium` and `web-server/e2e/node_modules`; when
//! they are missing the test runs `.ci/install-browser-deps.sh` itself, and
//! FAILS saying what is still missing if that did not work.
//! `SHADDOCK_SKIP_BROWSER=1` skips it explicitly (loudly).
//!
//! `dashboard_works_in_a_real_browser` runs `web-server/e2e/dashboard.e2e.mjs`
//! against the `/admin` dashboard while users chat on every connector and
//! chat server (Rust clients here), and keeps its screenshot
//! (`web-server/e2e/artifacts/dashboard.png`).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shaddock_testkit::{
    Topo, eventually, exit_within, free_ports, workspace_bin, write_servers_json,
};

/// Whole-run limit for the node script (it has its own 120 s watchdog).
const E2E_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the cluster and the web server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_dir() -> PathBuf {
    manifest_dir().parent().unwrap().to_path_buf()
}

/// Waits until every `(what, port)` accepts connections, failing early if
/// the master exits.
fn wait_for_ports(ports: &[(&str, u16)], master: &mut Proc) {
    eventually(
        "the cluster and the web server to accept connections",
        STARTUP_TIMEOUT,
        || {
            for &(what, port) in ports {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                    if let Ok(Some(status)) = master.child.try_wait() {
                        panic!(
                            "`shaddock master` exited ({status}) before {what} listened on {addr}; see its output above"
                        );
                    }
                    return Err(format!("{what} does not accept connections on {addr}"));
                }
            }
            Ok(())
        },
    );
}

/// What the browser test needs and does not have.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node (Node.js >= 20)".to_string());
    }
    if !Path::new("/usr/bin/chromium").is_file() {
        missing.push("/usr/bin/chromium".to_string());
    }
    let modules = manifest_dir().join("e2e/node_modules/playwright-core");
    if !modules.is_dir() {
        missing.push(format!("{}", modules.display()));
    }
    missing
}

/// Makes sure the browser test can run: when chromium or playwright-core is
/// missing, runs `.ci/install-browser-deps.sh` itself (apt + npm, pinned by
/// the lock file), so the README's one test command works on a fresh
/// machine. Fails with what is still missing and how to fix it; skips only
/// when SHADDOCK_SKIP_BROWSER=1 (then nothing is installed). Returns false
/// when skipping.
fn browser_prerequisites() -> bool {
    let mut missing = missing_prerequisites();
    if missing.is_empty() {
        return true;
    }
    let skip = std::env::var("SHADDOCK_SKIP_BROWSER").as_deref() == Ok("1");
    if !skip {
        eprintln!(
            "browser test: missing {}; running .ci/install-browser-deps.sh",
            missing.join(", ")
        );
        let script = workspace_dir().join(".ci/install-browser-deps.sh");
        match Command::new("bash").arg(&script).status() {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("browser test: {} exited with {status}", script.display()),
            Err(e) => eprintln!("browser test: cannot run {}: {e}", script.display()),
        }
        missing = missing_prerequisites();
        if missing.is_empty() {
            return true;
        }
    }
    if skip {
        eprintln!(
            "\n!!!!!!!! SKIPPED: browser end-to-end test (SHADDOCK_SKIP_BROWSER=1); missing: {} !!!!!!!!\n",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "browser test prerequisites still missing after running .ci/install-browser-deps.sh: {}.\n\
         That script installs Debian's chromium (apt-get, needs root or sudo) and the \
         pinned playwright-core (npm ci in web-server/e2e, needs node and npm); run it \
         by hand to see what fails, or set SHADDOCK_SKIP_BROWSER=1 to skip this test.",
        missing.join(", ")
    );
}

/// A child process stopped on drop: SIGTERM, a grace period, then SIGKILL.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if exit_within(&mut self.child, Duration::from_secs(15)).is_some() {
            return;
        }
        eprintln!(
            "{} did not stop within 15 s of SIGTERM; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the e2e script needs to know about the running cluster.
struct ChatCluster {
    /// `host:port` of the gate's client port.
    gate: String,
    /// Number of connectors (the e2e picks names that hash onto different ones).
    connectors: usize,
    /// Page URL of the web server started with the cluster.
    web_url: String,
    /// Shell command that takes the servers down (the e2e's last step).
    server_loss_cmd: String,
    /// The certificate the frontends serve `wss://` with, if TLS is on.
    tls_cert: Option<PathBuf>,
    _master: Proc,
    _app_dir: tempfile::TempDir,
}

/// Starts the chat app the way a user does: `shaddock master` (what
/// `shaddock start` runs, minus the build) over a scratch app folder whose
/// servers.json (gate, 2 connectors, 2 chat servers) and master.json use
/// free ports. The master starts every server and the web server.
fn start_chat_cluster(tls: bool) -> ChatCluster {
    let app_dir = tempfile::tempdir().expect("temp dir");
    let servers = Topo::new(2, 2).servers();
    write_servers_json(app_dir.path(), &servers);
    let port_of = |id: &str| {
        servers
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.client_port)
            .expect("client port")
    };
    let gate_port = port_of("gate-server-1");
    let connector_ports = [port_of("connector-server-1"), port_of("connector-server-2")];
    let [master_port, web_port] = free_ports(2)[..] else {
        unreachable!("two ports")
    };
    std::fs::write(
        app_dir.path().join("config/master.json"),
        format!(
            r#"{{"development": {{"id": "master-server-1", "host": "127.0.0.1", "port": {master_port},
  "web": {{"host": "127.0.0.1", "port": {web_port}}}}}}}"#
        ),
    )
    .unwrap();

    // TLS: a certificate for 127.0.0.1 served by the gate and the
    // connectors (config/connector.json), which the web server then tells
    // the page to reach over wss://.
    let tls_cert = tls.then(|| {
        let dir = app_dir.path().join("config/tls");
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        let files = r#"{"tls-cert": "tls/cert.pem", "tls-key": "tls/key.pem"}"#;
        std::fs::write(
            app_dir.path().join("config/connector.json"),
            format!(r#"{{"development": {{"gate": {files}, "connector": {files}}}}}"#),
        )
        .unwrap();
        dir.join("cert.pem")
    });

    // The admin API needs a user; like `shaddock init`, make one with a
    // random password (only its hash is stored).
    let admin = Command::new(workspace_bin("shaddock"))
        .args(["admin-user", "admin", "-d"])
        .arg(app_dir.path())
        .stdout(Stdio::null())
        .status()
        .expect("running `shaddock admin-user`");
    assert!(admin.success(), "`shaddock admin-user` failed ({admin})");

    let master = Command::new(workspace_bin("shaddock"))
        .arg("master")
        .arg("--directory")
        .arg(app_dir.path())
        .args([
            "--env",
            "development",
            "--no-build",
            "--auto-restart",
            "false",
        ])
        .arg("--server-bin")
        .arg(workspace_bin("game-server"))
        .arg("--web-bin")
        .arg(env!("CARGO_BIN_EXE_web-server"))
        .current_dir(app_dir.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("starting `shaddock master`");
    let mut master = Proc {
        name: "shaddock master",
        child: master,
    };

    wait_for_ports(
        &[
            ("the gate", gate_port),
            ("a connector", connector_ports[0]),
            ("a connector", connector_ports[1]),
            ("the web server", web_port),
        ],
        &mut master,
    );

    ChatCluster {
        gate: format!("127.0.0.1:{gate_port}"),
        connectors: connector_ports.len(),
        web_url: format!("http://127.0.0.1:{web_port}/"),
        server_loss_cmd: format!("kill -TERM {}", master.pid()),
        tls_cert,
        _master: master,
        _app_dir: app_dir,
    }
}

/// Runs the e2e script against `cluster` with extra environment.
fn run_e2e(cluster: &ChatCluster, extra: &[(&str, &str)]) {
    let url = format!("{}?gate={}", cluster.web_url, cluster.gate);
    let connectors = cluster.connectors.to_string();
    let mut env = vec![
        ("WEB_URL", url.as_str()),
        ("E2E_CONNECTORS", connectors.as_str()),
        ("E2E_SERVER_LOSS_CMD", cluster.server_loss_cmd.as_str()),
    ];
    let cert = cluster.tls_cert.as_ref().map(|c| c.display().to_string());
    if let Some(cert) = &cert {
        env.push(("E2E_TLS_CERT", cert));
    }
    env.extend_from_slice(extra);
    run_node("chat.e2e.mjs", &env, &url);
}

/// Runs `web-server/e2e/<script>` with `env`, within [`E2E_TIMEOUT`].
fn run_node(script: &str, env: &[(&str, &str)], url: &str) {
    let path = manifest_dir().join("e2e").join(script);
    let mut child = Command::new("node")
        .arg(&path)
        .envs(env.iter().copied())
        .current_dir(workspace_dir())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting node web-server/e2e/{script}: {e}"));
    let status = exit_within(&mut child, E2E_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("web-server/e2e/{script} did not finish within {E2E_TIMEOUT:?} ({url})");
    });
    assert!(
        status.success(),
        "web-server/e2e/{script} failed ({status}) against {url}: see `E2E FAILED: ...` above and the \
         screenshots in web-server/e2e/artifacts/"
    );
}

#[test]
fn chat_works_in_a_real_browser() {
    if !browser_prerequisites() {
        return;
    }
    run_e2e(&start_chat_cluster(false), &[]);
}

/// The same chat over `wss://`: the gate and the connectors serve TLS with
/// a test certificate Chromium is told to trust (by its key's hash, not by
/// turning certificate checks off), the web server tells the page to use
/// `wss://`, and the run checks every socket the page opened was `wss://`.
#[test]
fn chat_works_over_wss_in_a_real_browser() {
    if !browser_prerequisites() {
        return;
    }
    run_e2e(&start_chat_cluster(true), &[("E2E_ONLY_CHAT", "1")]);
}

/// The admin user's password `shaddock admin-user` wrote for the cluster.
fn admin_password(cluster: &ChatCluster) -> String {
    let path = cluster._app_dir.path().join("config/.admin-credentials");
    let text = std::fs::read_to_string(&path).expect("config/.admin-credentials");
    let creds: serde_json::Value = serde_json::from_str(&text).expect("credentials JSON");
    creds["password"].as_str().expect("a password").to_string()
}

/// Users chatting until `stop`: six names in each of `rooms` (so both
/// connectors and both chat servers get traffic), one message per user
/// every 300 ms. Pushes are dropped as they arrive.
fn keep_chatting(
    gate: String,
    rooms: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use serde_json::{Value, json};
    use shaddock_client::{Client, ClientOptions};
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let mut users = Vec::new();
            for room in &rooms {
                for i in 0..6 {
                    let name = format!("bot{i}");
                    let g = Client::connect(&format!("ws://{gate}"), ClientOptions::default())
                        .await
                        .expect("the gate");
                    let entry: Value = g
                        .request("gate.gateHandler.queryEntry", &json!({"uid": name}))
                        .await
                        .expect("queryEntry");
                    g.close().await;
                    let url = format!("ws://{}:{}", entry["host"].as_str().unwrap(), entry["port"]);
                    let c = Client::connect(&url, ClientOptions::default())
                        .await
                        .expect("a connector");
                    for route in ["onChat", "onAdd", "onLeave", "onSystem"] {
                        c.on_push(route, |_| {});
                    }
                    let joined: Value = c
                        .request(
                            "connector.entryHandler.enter",
                            &json!({"username": name, "rid": room}),
                        )
                        .await
                        .expect("enter");
                    assert!(joined["users"].is_array(), "enter answered {joined}");
                    users.push(c);
                }
            }
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for c in &users {
                    n += 1;
                    let _: Result<Value, _> = c
                        .request(
                            "chat.chatHandler.send",
                            &json!({"content": format!("m{n}"), "target": "*"}),
                        )
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            for c in users {
                c.close().await;
            }
        })
    })
}

/// The `/admin` dashboard in Chromium: log in, every game server shows
/// traffic while users chat, a broadcast sent from it reaches a chat
/// page, and its screenshot is kept.
#[test]
fn dashboard_works_in_a_real_browser() {
    if !browser_prerequisites() {
        return;
    }
    let cluster = start_chat_cluster(false);
    let topology =
        shaddock::config::Topology::load(&cluster._app_dir.path().join("config"), "development")
            .expect("servers.json");
    let chats: Vec<_> = topology
        .servers_of_type("chat")
        .into_iter()
        .cloned()
        .collect();
    // A room on each chat server.
    let rooms: Vec<String> = (0..chats.len())
        .map(|owner| {
            (0..200)
                .map(|i| format!("room{i}"))
                .find(|r| shaddock::router::RendezvousRouter::owner(r, &chats) == Some(owner))
                .expect("a room for each chat server")
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chatting = keep_chatting(cluster.gate.clone(), rooms, stop.clone());
    let ids: Vec<String> = topology.servers.iter().map(|s| s.id.clone()).collect();
    let password = admin_password(&cluster);
    let admin_url = format!("{}admin/", cluster.web_url);
    let url = format!("{}?gate={}", cluster.web_url, cluster.gate);
    let ids = ids.join(",");
    run_node(
        "dashboard.e2e.mjs",
        &[
            ("WEB_URL", &url),
            ("ADMIN_URL", &admin_url),
            ("ADMIN_PASSWORD", &password),
            ("E2E_SERVER_IDS", &ids),
        ],
        &admin_url,
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    chatting.join().expect("the chatting users");
}
