//! The `web-server` binary, started for real on a free loopback port: it
//! serves the public folder, answers 404 for missing files, refuses path
//! traversal, logs to `<log dir>/web-server.log` and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use shaddock_testkit::eventually;

const BIN: &str = env!("CARGO_BIN_EXE_web-server");
const TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh scratch folder under the system temp dir.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "web-server-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The running binary; killed on drop so a failing test leaves nothing behind.
struct Server {
    child: Child,
    base: String,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning web-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("web-server printed no `listening on` line within {TIMEOUT:?}");
            }
        };
        let addr = base.trim_start_matches("http://").to_string();
        Server { child, base, addr }
    }

    /// Sends a raw request line (no client-side path normalisation) and
    /// returns (status, lower-cased headers, body).
    fn get(&self, path: &str) -> (u16, String, String) {
        self.send(&format!("GET {path} HTTP/1.1\r\n"))
    }

    /// Sends `head` (request line and headers, without the end of the
    /// head) with Host and Connection: close added.
    fn send(&self, head: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connecting to web-server");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        write!(
            stream,
            "{head}Host: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("reading the response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    /// SIGTERM, then the exit status within the timeout.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success(), "kill -TERM {pid} failed");
        eventually("web-server to stop after SIGTERM", TIMEOUT, || {
            self.child.try_wait().unwrap()
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn public_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("public")
}

/// The binary serving the crate's public folder, logging to `logs`, with
/// `extra` options.
fn serve_public(logs: &Path, extra: &[&str]) -> Server {
    let public = public_dir();
    let mut args = vec![
        "--public",
        public.to_str().unwrap(),
        "--log-dir",
        logs.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Runs the binary with `args` (on a free port, logging to `logs`), which
/// must fail; returns its stderr.
fn fails_with(logs: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--port", "0", "--log-dir", logs.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "web-server {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serves_the_chat_page_and_client_module() {
    let logs = scratch("logs");
    let server = serve_public(&logs, &[]);

    let (status, head, body) = server.get("/");
    assert_eq!(status, 200, "GET / ({})", server.base);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains("<title>Shaddock chat</title>"), "{body}");

    let (status, head, body) = server.get("/index.html");
    assert_eq!(status, 200);
    assert!(body.contains("js/chat.js"));
    assert!(head.contains("content-type: text/html"));

    // ES modules must be served with a JavaScript MIME type or browsers refuse them.
    for path in ["/js/pomelo-client.js", "/js/chat.js"] {
        let (status, head, body) = server.get(path);
        assert_eq!(status, 200, "GET {path}");
        assert!(
            head.contains("content-type: text/javascript"),
            "{path}: {head}"
        );
        assert!(body.contains("export") || body.contains("import"), "{path}");
    }
    let (status, head, _) = server.get("/css/chat.css");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/css"), "{head}");

    let (status, _, body) = server.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let log = std::fs::read_to_string(logs.join("web-server.log")).expect("logs/web-server.log");
    assert!(log.contains("web-server listening on http://"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("/js/chat.js"), "requests are logged: {log}");
}

/// `/admin/` and its files are served like the chat page; its API says
/// what is missing: a master (none known), a login (no cookie), a master
/// that answers (the one given is down).
#[test]
fn the_dashboard_is_served_and_its_api_says_what_is_missing() {
    let logs = scratch("admin-logs");
    let server = serve_public(&logs, &[]);
    let (status, head, body) = server.get("/admin/");
    assert_eq!(status, 200);
    assert!(body.contains("<title>Shaddock admin</title>"), "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    for path in ["/admin/admin.js", "/vendor/uplot/uPlot.esm.js"] {
        let (status, head, _) = server.get(path);
        assert_eq!(status, 200, "GET {path}");
        assert!(
            head.contains("content-type: text/javascript"),
            "{path}: {head}"
        );
    }
    let (status, _, body) = server.get("/admin/api/cluster");
    assert_eq!(status, 503);
    assert!(body.contains("knows no master"), "{body}");
    server.terminate();

    // A master address where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let master = closed.local_addr().unwrap().to_string();
    drop(closed);
    let server = serve_public(&logs, &["--master", &master]);
    let (status, _, body) = server.get("/admin/api/cluster");
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"log in first"}"#)
    );
    let (status, _, body) =
        server.send("GET /admin/api/cluster HTTP/1.1\r\nCookie: shaddock_admin=abc\r\n");
    assert_eq!(status, 502);
    assert!(body.contains("cannot reach the master"), "{body}");
    // A login is JSON only: a cross-site form post is refused.
    let (status, _, _) = server.send(
        "POST /admin/api/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n",
    );
    assert_eq!(status, 415);
    server.terminate();
}

#[test]
fn missing_files_are_404() {
    let logs = scratch("logs");
    let server = serve_public(&logs, &[]);
    for path in ["/nope.html", "/js/missing.js", "/css/", "/a/b/c"] {
        let (status, _, _) = server.get(path);
        assert_eq!(status, 404, "GET {path}");
    }
}

#[test]
fn path_traversal_is_refused() {
    // root/public/index.html is served; root/secret.txt must never be.
    let root = scratch("traversal");
    let public = root.join("public");
    std::fs::create_dir_all(public.join("js")).unwrap();
    std::fs::write(public.join("index.html"), "<p>public</p>").unwrap();
    std::fs::write(root.join("secret.txt"), "TOP-SECRET").unwrap();
    let server = Server::start(&[
        "--public",
        public.to_str().unwrap(),
        "--log-dir",
        root.join("logs").to_str().unwrap(),
    ]);
    assert_eq!(server.get("/").0, 200);
    for path in [
        "/../secret.txt",
        "/js/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/js/..%5c..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
    ] {
        let (status, _, body) = server.get(path);
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:"),
            "GET {path} leaked a file outside public/ (status {status})"
        );
        assert_ne!(status, 200, "GET {path}");
    }
}

#[test]
fn bad_public_folder_is_a_clear_error() {
    let logs = scratch("logs");
    let missing = logs.join("does-not-exist");
    let stderr = fails_with(&logs, &["--public", missing.to_str().unwrap()]);
    assert!(
        stderr.contains("not a directory") && stderr.contains("--public"),
        "{stderr}"
    );
}

#[test]
fn busy_port_is_a_clear_error() {
    let logs = scratch("logs");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .args(["--port", &port, "--log-dir", logs.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("binding 127.0.0.1:") && stderr.contains("--port"),
        "{stderr}"
    );
}

/// The headers every response carries (issue 12 item 6), lower-cased as
/// `Server::get` returns the head.
const SECURITY_HEADERS: [&str; 5] = [
    "content-security-policy: default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options: nosniff",
    "referrer-policy: no-referrer",
    "x-frame-options: deny",
    "cross-origin-opener-policy: same-origin",
];

#[test]
fn every_response_carries_the_security_headers() {
    let logs = scratch("logs");
    let server = serve_public(&logs, &[]);
    for (path, want) in [
        ("/", 200),
        ("/js/chat.js", 200),
        ("/css/chat.css", 200),
        ("/healthz", 200),
        ("/gates.json", 200),
        ("/nope.html", 404),
        ("/../secret.txt", 404),
    ] {
        let (status, head, _) = server.get(path);
        assert_eq!(status, want, "GET {path}");
        for header in SECURITY_HEADERS {
            assert!(
                head.contains(header),
                "GET {path} lacks `{header}`:\n{head}"
            );
        }
    }
    // The page itself must work under that policy: no inline script or
    // style, nothing loaded from another origin.
    let (_, _, html) = server.get("/");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
}

/// A config folder with a servers.json of env `test`: two gates, one
/// connector.
fn config_with_gates() -> PathBuf {
    let dir = scratch("config");
    std::fs::write(
        dir.join("servers.json"),
        r#"{"test": {
            "gate": [
                {"id": "gate-1", "host": "127.0.0.1", "clientPort": 4014, "frontend": true},
                {"id": "gate-2", "host": "gate.example", "clientPort": 443, "frontend": true}
            ],
            "connector": [
                {"id": "connector-1", "host": "127.0.0.1", "port": 4050, "clientPort": 4051, "frontend": true}
            ]
        }}"#,
    )
    .unwrap();
    dir
}

#[test]
fn gates_json_lists_the_configured_gates_only() {
    let logs = scratch("logs");
    let config = config_with_gates();
    let server = serve_public(
        &logs,
        &[
            "--config",
            config.to_str().unwrap(),
            "--env",
            "test",
            "--gate",
            "10.0.0.7:3014",
        ],
    );
    let (status, head, body) = server.get("/gates.json");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(
        json,
        serde_json::json!({"gates": ["127.0.0.1:4014", "gate.example:443", "10.0.0.7:3014"],
                           "secure": false}),
        "servers.json's gates (not its connector), then --gate"
    );
    // A TLS certificate for the gate type in connector.json: the page is
    // told to use wss://.
    std::fs::write(
        config.join("connector.json"),
        r#"{"test": {"gate": {"tls-cert": "tls/cert.pem", "tls-key": "tls/key.pem"}}}"#,
    )
    .unwrap();
    let tls = serve_public(
        &logs,
        &["--config", config.to_str().unwrap(), "--env", "test"],
    );
    let (_, _, body) = tls.get("/gates.json");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(json["secure"], true, "{body}");

    // No servers.json: only --gate values (none here).
    let empty = scratch("empty");
    let bare = serve_public(&logs, &["--config", empty.to_str().unwrap()]);
    let (_, _, body) = bare.get("/gates.json");
    assert_eq!(body, r#"{"gates":[],"secure":false}"#);
}

#[test]
fn a_broken_servers_json_is_a_clear_error() {
    let logs = scratch("logs");
    let config = scratch("config");
    std::fs::write(config.join("servers.json"), "{ not json").unwrap();
    let stderr = fails_with(&logs, &["--config", config.to_str().unwrap()]);
    assert!(
        stderr.contains("servers.json") && stderr.contains("--config"),
        "{stderr}"
    );
}
