//! CI smoke of the load robot against the real chat app, so neither rots:
//! start 1 gate + 2 connectors + 2 chat servers (`game-server` processes on
//! free loopback ports), run the robot's chat scenario for ~10 s at a small
//! load, its idle scenario briefly (over both connectors and two source
//! addresses, coordinated through ready/go files as
//! `bench/scripts/connections_100k.sh` does) and a login storm of 50 users,
//! and check what it reports; and draw the plot from fixture ramps. Not a
//! timed test: the thresholds are about correctness (every push delivered,
//! no errors, a parsable JSON line), never about speed.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shaddock_testkit::{eventually, exit_within};

/// The `game-server` binary next to this test's target dir
/// (`target/<profile>/game-server`), built first if it is missing.
fn game_server() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/smoke-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("game-server{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "game-server"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p game-server");
        assert!(status.success(), "cargo build -p game-server failed");
    }
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p game-server`",
        bin.display()
    );
    bin
}

use shaddock_testkit::free_port;

/// Kills its processes when dropped, so a failing assertion leaves nothing behind.
struct Cluster {
    children: Vec<(String, Child)>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
        }
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }
}

impl Cluster {
    fn start() -> (Self, [u16; 2]) {
        let bin = game_server();
        let dir = tempfile::tempdir().expect("temp dir");
        let p: Vec<u16> = (0..7).map(|_| free_port()).collect();
        let servers = serde_json::json!({
            "smoke": {
                "gate": [{"id": "gate-server-1", "host": "127.0.0.1", "clientPort": p[0], "frontend": true}],
                "connector": [
                    {"id": "connector-server-1", "host": "127.0.0.1", "port": p[1], "clientPort": p[2], "frontend": true},
                    {"id": "connector-server-2", "host": "127.0.0.1", "port": p[3], "clientPort": p[4], "frontend": true}
                ],
                "chat": [
                    {"id": "chat-server-1", "host": "127.0.0.1", "port": p[5]},
                    {"id": "chat-server-2", "host": "127.0.0.1", "port": p[6]}
                ]
            }
        });
        let master = serde_json::json!({
            "smoke": {"id": "master-server-1", "host": "127.0.0.1", "port": free_port()}
        });
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/servers.json"), servers.to_string()).unwrap();
        std::fs::write(dir.path().join("config/master.json"), master.to_string()).unwrap();
        let mut cluster = Cluster {
            children: Vec::new(),
            dir,
        };
        for id in [
            "chat-server-1",
            "chat-server-2",
            "connector-server-1",
            "connector-server-2",
            "gate-server-1",
        ] {
            let child = Command::new(&bin)
                .args(["--env", "smoke", "--server-id", id])
                .current_dir(cluster.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {} --server-id {id}: {e}", bin.display()));
            cluster.children.push((id.to_owned(), child));
        }
        eventually("every server to listen", Duration::from_secs(30), || {
            for port in [p[0], p[2], p[4], p[1], p[3], p[5], p[6]] {
                if TcpStream::connect(("127.0.0.1", port)).is_err() {
                    for (id, child) in &mut cluster.children {
                        if let Ok(Some(status)) = child.try_wait() {
                            panic!(
                                "{id} exited during start-up ({status}); logs in {}",
                                cluster.dir.path().display()
                            );
                        }
                    }
                    return Err(format!("port {port} not listening"));
                }
            }
            Ok(())
        });
        (cluster, [p[2], p[4]])
    }

    fn servers_json(&self) -> PathBuf {
        self.dir.path().join("config/servers.json")
    }
}

fn spawn_robot(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shaddock-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shaddock-bench")
}

/// Runs the robot with a hard timeout; returns the JSON line it printed last.
fn robot(args: &[&str]) -> Value {
    finish(spawn_robot(args), args)
}

/// Waits (bounded) for a started robot; returns the JSON line it printed last.
fn finish(mut child: Child, args: &[&str]) -> Value {
    if exit_within(&mut child, Duration::from_secs(120)).is_none() {
        let _ = child.kill();
        panic!("the robot ran for more than 120 s: {args:?}");
    }
    let out = child.wait_with_output().expect("robot output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "robot failed: {stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}\nstderr: {stderr}"))
}

#[test]
fn robot_chat_idle_and_storm_against_the_chat_app() {
    let (cluster, connector_ports) = Cluster::start();
    let topology = cluster.servers_json();
    let topology = topology.to_str().unwrap();
    let gate = {
        let servers: Value =
            serde_json::from_str(&std::fs::read_to_string(topology).unwrap()).unwrap();
        format!(
            "ws://127.0.0.1:{}",
            servers["smoke"]["gate"][0]["clientPort"].as_u64().unwrap()
        )
    };

    let report = robot(&[
        "chat",
        "--gate",
        &gate,
        "--label",
        "smoke",
        "--topology",
        topology,
        "--env",
        "smoke",
        "-c",
        "50",
        "-r",
        "5",
        "--rate",
        "2",
        "-d",
        "10",
        "--warmup",
        "1",
        "--quiet",
    ]);
    assert_eq!(report["scenario"], "chat");
    assert_eq!(report["login_errors"], 0, "{report}");
    assert_eq!(
        report["processes"].as_array().map(Vec::len),
        Some(5),
        "the robot must find all five servers from the topology: {report}"
    );
    let step = &report["steps"][0];
    // 50 clients × 2 msg/s × 10 s, each pushed to a room of 10.
    let expected = step["pushes_expected"].as_u64().unwrap();
    assert!(expected >= 9_000, "too few pushes expected: {step}");
    assert!(step["delivery"].as_f64().unwrap() >= 0.999, "{step}");
    assert_eq!(step["send_errors"], 0, "{step}");
    assert_eq!(step["send_timeouts"], 0, "{step}");
    assert_eq!(step["disconnects"], 0, "{step}");
    assert_eq!(step["pushes_reordered"], 0, "{step}");
    assert!(step["server_rss_kb"].as_u64().unwrap() > 0, "{step}");
    assert!(step["push_p99_ms"].as_f64().unwrap() > 0.0, "{step}");

    // Idle over both connectors and two source addresses, holding only when
    // told to (the 100k script's coordination, in small).
    let connectors = format!(
        "ws://127.0.0.1:{},ws://127.0.0.1:{}",
        connector_ports[0], connector_ports[1]
    );
    let ready = cluster.dir.path().join("ready");
    let go = cluster.dir.path().join("go");
    let idle_args = [
        "idle",
        "--gate",
        &gate,
        "--connector",
        &connectors,
        "--source-addrs",
        "127.0.0.2,127.0.0.3",
        "--topology",
        topology,
        "--env",
        "smoke",
        "-c",
        "50",
        "--hold",
        "2",
        "--settle",
        "1",
        "--ready-file",
        ready.to_str().unwrap(),
        "--go-file",
        go.to_str().unwrap(),
        "--go-timeout",
        "60",
        "--quiet",
    ];
    let mut child = spawn_robot(&idle_args);
    let said = eventually(
        "the idle robot to be ready",
        Duration::from_secs(60),
        || std::fs::read_to_string(&ready).map_err(|e| e.to_string()),
    );
    let said: Value = serde_json::from_str(said.trim()).expect("ready file is JSON");
    assert_eq!(said["connected"], 50, "{said}");
    // Letting time pass on purpose: the robot must not finish without "go".
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the robot must wait for the go file"
    );
    std::fs::write(&go, "").unwrap();
    let idle = finish(child, &idle_args);
    let i = &idle["idle"];
    assert_eq!(i["connected"], 50, "{idle}");
    assert_eq!(i["connect_errors"], 0, "{idle}");
    assert_eq!(i["disconnects"], 0, "{idle}");
    assert!(i["rss_connected_kb"].as_u64().unwrap() > 0, "{idle}");
    assert_eq!(
        i["source_addrs"],
        serde_json::json!(["127.0.0.2", "127.0.0.3"])
    );
    assert!(i["robot_cpu_s"].as_f64().unwrap() > 0.0, "{idle}");
    assert!(
        idle["machine"]["loadavg_after"].as_array().is_some(),
        "{idle}"
    );

    // A login storm, tiny: every user through gate, connector and enter.
    let storm = robot(&[
        "storm",
        "--gate",
        &gate,
        "--label",
        "smoke",
        "--topology",
        topology,
        "--env",
        "smoke",
        "-c",
        "50",
        "-r",
        "5",
        "--concurrency",
        "50",
        "--hold",
        "1",
        "--max-seconds",
        "60",
        "--quiet",
    ]);
    assert_eq!(storm["scenario"], "storm");
    let s = &storm["storm"];
    assert_eq!(s["users"], 50, "{storm}");
    assert_eq!(s["logged_in"], 50, "{storm}");
    assert_eq!(s["errors"], 0, "{storm}");
    assert_eq!(s["disconnects"], 0, "{storm}");
    assert_eq!(s["pass"], true, "{storm}");
    assert!(s["login_p99_ms"].as_f64().unwrap() > 0.0, "{storm}");
    assert!(s["logins_per_s"].as_f64().unwrap() > 0.0, "{storm}");
    assert!(s["server_cpu_s"].as_f64().unwrap() > 0.0, "{storm}");
    assert_eq!(
        s["server_cpu_by_process"].as_object().map(|m| m.len()),
        Some(5),
        "CPU of every server process: {storm}"
    );
}

#[test]
fn robot_storm_counts_errors_by_kind_when_nothing_listens() {
    // A gate port nobody listens on: every login fails at the first step,
    // and the report says so by kind instead of hanging or crashing.
    let port = free_port();
    let gate = format!("ws://127.0.0.1:{port}");
    let storm = robot(&[
        "storm",
        "--gate",
        &gate,
        "-c",
        "20",
        "--hold",
        "0",
        "--timeout",
        "2",
        "--quiet",
    ]);
    let s = &storm["storm"];
    assert_eq!(s["logged_in"], 0, "{storm}");
    assert_eq!(s["errors"], 20, "{storm}");
    assert_eq!(s["errors_by_kind"]["gate connect error"], 20, "{storm}");
    assert_eq!(s["pass"], false, "{storm}");
}

#[test]
fn plot_draws_a_png_from_ramp_json() {
    let font = shaddock_testkit::apt::find_or_install(
        &["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"],
        "fonts-dejavu-core",
        "a TrueType font for the plot's labels",
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ramp");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plot.png");
    let run = Command::new(env!("CARGO_BIN_EXE_shaddock-bench"))
        .args([
            "plot",
            fixtures.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--font", font.to_str().unwrap()])
        .output()
        .expect("run shaddock-bench plot");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "plot failed: {}{stdout}",
        String::from_utf8_lossy(&run.stderr)
    );
    // One line per system, in the bench's order, with its best passing step.
    assert!(stdout.contains("ours: "), "{stdout}");
    assert!(stdout.contains("pomelo-nodelay: "), "{stdout}");
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1000, 900));
    assert!(
        png.len() > 20_000,
        "a plot with text and lines is not this small: {} bytes",
        png.len()
    );

    // A folder without ramps is a clear error, not an empty picture.
    let empty = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_shaddock-bench"))
        .args(["plot", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("no <system>-ramp-<run>.json"), "{err}");
}
