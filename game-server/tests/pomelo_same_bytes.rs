//! Same bytes as the real Pomelo: one scripted exchange of two raw-TCP
//! clients with protobuf bodies, run against Pomelo 2.2.7's chat (a
//! private copy of `../shared/pomelo-chat`) and against ours, both with the
//! same `serverProtos.json` / `clientProtos.json`
//! (`tests/fixtures/protobuf/`). Every DATA package the clients receive
//! (responses, `onAdd`, `onChat`) must be byte for byte the same, and so
//! must the handshake's `sys.protos` (schemas and version) and `useProto`.
//!
//! What legitimately differs, and is not compared: the handshake's route
//! dictionary (`dict`, `routeToCode`, `codeToRoute`, `dictVersion`,
//! `useDict`) — pomelo-chat runs with `useDict: false`, ours with the
//! dictionary on — and heartbeats (timing).
//!
//! The Pomelo copy: `app.js` with `useProtobuf: true` on the connectors,
//! the two protos files, fresh ports, and the one-line fix Node 20 needs in
//! `connectors/hybrid/tcpsocket.js` (Pomelo passes `{binary: true}` as the
//! encoding argument of `socket.write`, which Node 20 rejects). Its
//! `node_modules` (`npm ci` from pomelo-chat's lock file) is installed once
//! under the target directory. Without node, or without
//! `../shared/pomelo-chat` (`POMELO_CHAT_SRC` overrides it), the test says
//! so and passes without comparing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use shaddock::protocol::{
    HANDSHAKE_ACK, Message, MessageType, PackageType, Protos, decode_message, decode_packages,
    encode_data_frame, encode_package, split_package,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVER_PROTOS: &str = include_str!("fixtures/protobuf/serverProtos.json");
const CLIENT_PROTOS: &str = include_str!("fixtures/protobuf/clientProtos.json");
const STEP: Duration = Duration::from_secs(10);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn pomelo_chat_src() -> PathBuf {
    std::env::var_os("POMELO_CHAT_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/pomelo-chat"))
}

fn protos() -> Protos {
    Protos::from_sources(
        Some(&serde_json::from_str(SERVER_PROTOS).unwrap()),
        Some(&serde_json::from_str(CLIENT_PROTOS).unwrap()),
    )
    .unwrap()
}

/// One raw-TCP Pomelo client: packages in and out, nothing hidden.
struct Raw {
    tcp: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        let tcp = tokio::time::timeout(STEP, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect in time")
            .expect("connect");
        Raw {
            tcp,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    /// The next package that is not a HEARTBEAT.
    async fn next(&mut self) -> Bytes {
        loop {
            if let Some(package) = split_package(&mut self.buf, 1 << 20).expect("framing") {
                if package[0] != PackageType::Heartbeat as u8 {
                    return package;
                }
                continue;
            }
            let n = tokio::time::timeout(STEP, self.tcp.read_buf(&mut self.buf))
                .await
                .expect("a package in time")
                .expect("read");
            assert!(n > 0, "the server closed the connection");
        }
    }

    /// HANDSHAKE with `protoVersion`, the reply's JSON, then the ACK.
    async fn handshake(&mut self, proto_version: Value) -> Value {
        let body = json!({"sys": {"type": "shaddock-test", "version": "0.0.1", "rsa": {},
                                  "protoVersion": proto_version}});
        let package = encode_package(PackageType::Handshake, body.to_string().as_bytes()).unwrap();
        self.send(&package).await;
        let reply = self.next().await;
        assert_eq!(reply[0], PackageType::Handshake as u8);
        let reply: Value = serde_json::from_slice(&reply[4..]).unwrap();
        self.send(&HANDSHAKE_ACK).await;
        reply
    }

    async fn request(&mut self, id: u32, route: &str, body: &Value) {
        let wire = protos().client.encode(route, body).unwrap();
        let frame = encode_data_frame(&Message::request(id, route, wire), None).unwrap();
        self.send(&frame).await;
    }

    /// The next DATA package, whole (header included), and its message.
    async fn data(&mut self) -> (Bytes, Message) {
        let package = self.next().await;
        let packages = decode_packages(package.clone()).unwrap();
        assert_eq!(packages[0].kind, PackageType::Data, "{package:?}");
        let msg = decode_message(packages[0].body.clone(), None).unwrap();
        (package, msg)
    }

    /// The next DATA package that is not an `onAdd` push. Pomelo's chat
    /// also pushes a newcomer its own `onAdd` (its channel adds the member
    /// before the push goes out), ours does not: a chat-app difference,
    /// not a protocol one, so those are left out of the comparison.
    async fn data_but_on_add(&mut self) -> (Bytes, Message) {
        loop {
            let (bytes, msg) = self.data().await;
            if msg.route != "onAdd" {
                return (bytes, msg);
            }
        }
    }
}

/// What one run of the exchange saw.
#[derive(Debug, Default)]
struct Transcript {
    /// The handshake replies: A's first (protoVersion 0), B's with A's
    /// version.
    handshakes: Vec<Value>,
    /// Every DATA package, labelled, in a fixed order.
    data: Vec<(String, Bytes)>,
}

/// amy enters room1, bob enters (amy hears `onAdd`), amy says hello to
/// everyone (both hear `onChat`, amy gets the response).
async fn exchange(port: u16) -> Transcript {
    let mut t = Transcript::default();
    let mut amy = Raw::connect(port).await;
    let first = amy.handshake(json!(0)).await;
    let version = first["sys"]["protos"]["version"].clone();
    t.handshakes.push(first);
    amy.request(
        1,
        "connector.entryHandler.enter",
        &json!({"username": "amy", "rid": "room1"}),
    )
    .await;
    let (bytes, msg) = amy.data().await;
    assert_eq!((msg.kind, msg.id), (MessageType::Response, 1));
    t.data.push(("amy enter response".into(), bytes));

    let mut bob = Raw::connect(port).await;
    t.handshakes.push(bob.handshake(version).await);
    bob.request(
        1,
        "connector.entryHandler.enter",
        &json!({"username": "bob", "rid": "room1"}),
    )
    .await;
    let (bytes, msg) = bob.data_but_on_add().await;
    assert_eq!(
        (msg.kind, msg.id),
        (MessageType::Response, 1),
        "port {port}: {msg:?}"
    );
    t.data.push(("bob enter response".into(), bytes));
    let (bytes, msg) = amy.data().await;
    assert_eq!(msg.route, "onAdd");
    t.data.push(("amy onAdd".into(), bytes));

    amy.request(
        2,
        "chat.chatHandler.send",
        &json!({"rid": "room1", "content": "hello", "from": "amy", "target": "*"}),
    )
    .await;
    // The push and the response may come in either order.
    let mut got = vec![amy.data().await, amy.data().await];
    got.sort_by_key(|(_, m)| m.kind as u8);
    let [(response, r), (push, p)] = <[_; 2]>::try_from(got).unwrap();
    assert_eq!(
        (p.kind, r.kind, r.id),
        (MessageType::Push, MessageType::Response, 2)
    );
    t.data.push(("amy send response".into(), response));
    t.data.push(("amy onChat".into(), push));
    let (bytes, msg) = bob.data_but_on_add().await;
    assert_eq!(msg.route, "onChat");
    t.data.push(("bob onChat".into(), bytes));
    t
}

/// Kills the Pomelo process tree on drop (its servers are spawned
/// detached, so they are found as descendants, not by process group).
struct PomeloRun {
    cli: Child,
    dir: tempfile::TempDir,
}

fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so cut at ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

impl Drop for PomeloRun {
    fn drop(&mut self) {
        for pid in descendants(self.cli.id()).into_iter().rev() {
            // SAFETY: plain kill(2) of processes this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = self.cli.wait();
        let _ = &self.dir;
    }
}

/// `npm ci` of pomelo-chat's lock file, once, under the target dir; then
/// Node 20's fix in tcpsocket.js.
fn pomelo_modules(src: &Path) -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pomelo-2.2.7");
    let modules = cache.join("node_modules");
    if !modules.join("pomelo/package.json").exists() {
        std::fs::create_dir_all(&cache).unwrap();
        for f in ["package.json", "package-lock.json"] {
            // Written, not copied: shared/ may be read-only, npm may write.
            let text = std::fs::read(src.join("game-server").join(f)).unwrap();
            std::fs::write(cache.join(f), text).unwrap();
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&cache)
            .output()
            .expect("npm runs (node is installed, so is npm)");
        assert!(
            out.status.success(),
            "npm ci of pomelo 2.2.7 in {} failed: {}",
            cache.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tcp = modules.join("pomelo/lib/connectors/hybrid/tcpsocket.js");
    let text = std::fs::read_to_string(&tcp).unwrap();
    let broken = "this._socket.write(msg, encode, cb);";
    if text.contains(broken) {
        // Node 20: `encode` is `{binary: true}`, not an encoding.
        std::fs::write(&tcp, text.replace(broken, "this._socket.write(msg, cb);")).unwrap();
    }
    modules
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "node_modules" && entry.file_name() != "logs" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

/// The private Pomelo copy on fresh ports; returns it and the connector's
/// client port once it listens.
async fn start_pomelo(src: &Path) -> (PomeloRun, u16) {
    let modules = pomelo_modules(src);
    let dir = tempfile::tempdir().unwrap();
    let gs = dir.path().join("game-server");
    copy_dir(&src.join("game-server"), &gs);
    std::os::unix::fs::symlink(&modules, gs.join("node_modules")).unwrap();
    std::fs::create_dir_all(gs.join("logs")).unwrap();
    let app = std::fs::read_to_string(gs.join("app.js")).unwrap();
    assert!(
        app.contains("useProtobuf: false"),
        "pomelo-chat's app.js changed"
    );
    std::fs::write(
        gs.join("app.js"),
        app.replace("useProtobuf: false", "useProtobuf: true"),
    )
    .unwrap();
    std::fs::write(gs.join("config/serverProtos.json"), SERVER_PROTOS).unwrap();
    std::fs::write(gs.join("config/clientProtos.json"), CLIENT_PROTOS).unwrap();
    let ports = support::free_ports(4);
    let (master, rpc, client, chat) = (ports[0], ports[1], ports[2], ports[3]);
    std::fs::write(
        gs.join("config/master.json"),
        json!({"production": {"id": "master-server-1", "host": "127.0.0.1", "port": master}})
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        gs.join("config/servers.json"),
        json!({"production": {
            "connector": [{"id": "connector-server-1", "host": "127.0.0.1", "port": rpc,
                           "clientPort": client, "frontend": true}],
            "chat": [{"id": "chat-server-1", "host": "127.0.0.1", "port": chat}]
        }})
        .to_string(),
    )
    .unwrap();
    let log = std::fs::File::create(gs.join("logs/console.log")).unwrap();
    let cli = Command::new("node")
        .args([
            "node_modules/pomelo/bin/pomelo",
            "start",
            "-e",
            "production",
        ])
        .current_dir(&gs)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node starts pomelo");
    let run = PomeloRun { cli, dir };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let up = TcpStream::connect(("127.0.0.1", client)).await.is_ok()
            && TcpStream::connect(("127.0.0.1", chat)).await.is_ok();
        if up {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pomelo did not listen within 60 s: {}",
            std::fs::read_to_string(gs.join("logs/console.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The connector learns of the chat server from the master: wait until
    // a request can reach it (an `enter` that fails binds nothing).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let name = format!("probe{attempt}");
        let mut probe = Raw::connect(client).await;
        probe.handshake(json!(0)).await;
        probe
            .request(
                1,
                "connector.entryHandler.enter",
                &json!({"username": name, "rid": name}),
            )
            .await;
        let (_, msg) = probe.data().await;
        let body = protos()
            .server
            .decode("connector.entryHandler.enter", &msg.body)
            .unwrap();
        if body["users"] == json!([name]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pomelo's connector never reached its chat server: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (run, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_exchange_gives_the_same_bytes_as_pomelo_2_2_7() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: node is not installed, so the real Pomelo cannot run (apt-get install nodejs npm)"
        );
        return;
    }
    let src = pomelo_chat_src();
    if !src.join("game-server/package.json").exists() {
        eprintln!(
            "SKIPPED: no pomelo-chat at {} (set POMELO_CHAT_SRC to the shared pomelo-chat folder)",
            src.display()
        );
        return;
    }
    let (pomelo_run, pomelo_port) = start_pomelo(&src).await;
    let pomelo = exchange(pomelo_port).await;
    drop(pomelo_run);

    let cluster = support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        support::Topo::new(1, 1).servers(),
        &[],
        &[
            ("serverProtos.json", SERVER_PROTOS),
            ("clientProtos.json", CLIENT_PROTOS),
        ],
    )
    .await
    .expect("our cluster starts");
    let port = cluster.server("connector-server-1").client_port.unwrap();
    let ours = exchange(port).await;

    for (label, bytes) in &pomelo.data {
        eprintln!("pomelo {label}: {:02x?}", &bytes[..]);
    }
    assert_eq!(pomelo.data.len(), 6);
    for (p, o) in pomelo.data.iter().zip(&ours.data) {
        assert_eq!(p.0, o.0);
        assert_eq!(
            p.1,
            o.1,
            "{}: Pomelo sent {:02x?}, we sent {:02x?}",
            p.0,
            &p.1[..],
            &o.1[..]
        );
    }
    assert_eq!(pomelo.data.len(), ours.data.len());
    for (i, (p, o)) in pomelo.handshakes.iter().zip(&ours.handshakes).enumerate() {
        assert_eq!(p["code"], o["code"]);
        assert_eq!(p["sys"]["heartbeat"], o["sys"]["heartbeat"]);
        assert_eq!(p["sys"]["useProto"], json!(true));
        assert_eq!(o["sys"]["useProto"], json!(true));
        // Text, not values: the version is a digest of exactly this text.
        assert_eq!(
            p["sys"].get("protos").map(|v| v.to_string()),
            o["sys"].get("protos").map(|v| v.to_string()),
            "handshake {i}"
        );
    }
    assert!(
        pomelo.handshakes[0]["sys"]["protos"].is_object(),
        "the first client gets the protos"
    );
    assert!(
        pomelo.handshakes[1]["sys"].get("protos").is_none(),
        "the second has them"
    );
    assert_eq!(
        ours.handshakes[0]["sys"]["protos"]["version"],
        json!(protos().version())
    );
}
