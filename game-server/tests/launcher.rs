//! The server launcher (`shaddock::launch`) as a process: clear failures
//! with a non-zero exit status, `dictionary.json` extras, `SHADDOCK_ENV`,
//! `logs/<server-id>.log`, and a graceful stop on SIGTERM.

mod support;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use shaddock_testkit::{eventually_async, exit_within};
use support::chat::connect;
use support::{ENV, command, free_ports, server, write_servers_json};

const EXIT_WAIT: Duration = Duration::from_secs(20);

/// Runs `cmd` to its end (bounded) and returns its status and stderr.
fn run(mut cmd: Command) -> (ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn game-server");
    let status = exit_within(&mut child, EXIT_WAIT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("game-server did not exit within {EXIT_WAIT:?}");
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// The binary with exactly `args`, run in `dir`, without SHADDOCK_* variables.
fn raw(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(support::bin());
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHADDOCK_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn one_chat_server(dir: &Path) -> u16 {
    let port = free_ports(1)[0];
    write_servers_json(dir, &[server("chat-server-1", "chat", Some(port), None)]);
    port
}

#[test]
fn bad_arguments_and_config_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    one_chat_server(dir.path());

    let (status, err) = run(raw(dir.path(), &["--env", ENV]));
    assert_eq!(status.code(), Some(2), "usage error: {err}");
    assert!(err.contains("--server-id"), "{err}");

    let (status, err) = run(command(dir.path(), "chat-server-9"));
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("`chat-server-9` is not in") && err.contains("chat-server-1"),
        "{err}"
    );

    let (status, err) = run(raw(
        dir.path(),
        &["--env", "staging", "--server-id", "chat-server-1"],
    ));
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("staging") && err.contains(ENV), "{err}");

    let (status, err) = run(raw(
        dir.path(),
        &["--server-id", "chat-server-1", "--config-dir", "nowhere"],
    ));
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("nowhere") && err.contains("servers.json"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("config/servers.json"),
        "{\"development\": [",
    )
    .unwrap();
    let (status, err) = run(command(dir.path(), "chat-server-1"));
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn a_server_type_the_app_does_not_know_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    write_servers_json(
        dir.path(),
        &[
            server("chat-server-1", "chat", Some(ports[0]), None),
            server("chta-server-1", "chta", Some(ports[1]), None),
        ],
    );
    let (status, err) = run(command(dir.path(), "chat-server-1"));
    assert_eq!(status.code(), Some(1));
    for word in ["chta", "chta-server-1", "`gate`", "`connector`", "`chat`"] {
        assert!(err.contains(word), "missing {word}: {err}");
    }
}

#[test]
fn a_port_in_use_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    write_servers_json(
        dir.path(),
        &[server("chat-server-1", "chat", Some(port), None)],
    );
    let (status, err) = run(command(dir.path(), "chat-server-1"));
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("cannot listen") && err.contains(&port.to_string()),
        "{err}"
    );
}

/// `SHADDOCK_ENV` picks the section, `dictionary.json` routes extend the
/// route dictionary after the handler routes, the log goes to
/// `<log-dir>/<id>.log`, and SIGTERM stops the server gracefully (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_variable_dictionary_json_log_file_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let topology = shaddock::config::Topology {
        env: "staging".into(),
        servers: vec![server(
            "connector-server-1",
            "connector",
            Some(ports[0]),
            Some(ports[1]),
        )],
    };
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/servers.json"),
        topology.to_servers_json().to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config/dictionary.json"),
        r#"["onChat", "onAdd"]"#,
    )
    .unwrap();

    let mut cmd = Command::new(support::bin());
    cmd.args(["--server-id", "connector-server-1"])
        .current_dir(dir.path())
        .env("SHADDOCK_ENV", "staging")
        .env_remove("SHADDOCK_MASTER")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let guard = KillOnDrop(child.id());

    let url = format!("ws://127.0.0.1:{}", ports[1]);
    let client = eventually_async("the connector to come up", support::START_TIMEOUT, || {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        shaddock_client::Client::connect(&url, support::chat::options())
    })
    .await;
    let dict = client.dictionary().unwrap();
    assert_eq!(dict.code(shared::ROUTE_QUERY_ENTRY), Some(3));
    assert_eq!(dict.code("onChat"), Some(4));
    assert_eq!(dict.code("onAdd"), Some(5));
    let _ = connect(&url).await;

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let reason = client.closed_within(Duration::from_secs(10)).await;
    assert!(reason.is_some(), "clients are closed on shutdown");
    let status = eventually_async("an exit after SIGTERM", EXIT_WAIT, || {
        std::future::ready(child.try_wait().unwrap())
    })
    .await;
    drop(guard);
    assert!(status.success(), "graceful stop exits 0: {status}");
    let log = std::fs::read_to_string(dir.path().join("logs/connector-server-1.log")).unwrap();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("server stopped"), "{log}");
}

/// Kills a child by pid if the test fails before it exits.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2); harmless if the process is already gone and reaped
        // only by us (the pid is not reused while the test holds the Child).
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
    }
}
