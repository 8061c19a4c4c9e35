//! `shaddock kill --force`: kill an app's processes without the master
//! (hung, stopped, unreachable).
//!
//! Pomelo's `kill -f` kills every `node` process of the machine. We kill
//! only the pids the master recorded in `logs/master.pids.json`, and each
//! only after `/proc` shows it still is what the file says: a server whose
//! environment has `SHADDOCK_SERVER_ID=<id>` and `SHADDOCK_MASTER=<this
//! app's master address>`, or a `shaddock master` of this app folder. A pid
//! reused by an unrelated process is left alone.

use std::path::Path;

use super::args::SelectArgs;
use super::client;
use super::exit::CliError;

fn environ(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
    )
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
    )
}

/// Whether `pid` is server `id` of the master at `addr`.
fn is_server(pid: u32, id: &str, addr: &str) -> bool {
    environ(pid).is_some_and(|env| {
        env.iter().any(|v| *v == format!("SHADDOCK_SERVER_ID={id}"))
            && env.iter().any(|v| *v == format!("SHADDOCK_MASTER={addr}"))
    })
}

/// Whether `pid` is `shaddock master -d <dir>`.
fn is_master(pid: u32, dir: &Path) -> bool {
    cmdline(pid).is_some_and(|args| {
        args.iter().any(|a| a == "master")
            && args.windows(2).any(|w| {
                w[0] == "-d" && Path::new(&w[1]).canonicalize().ok().as_deref() == Some(dir)
            })
    })
}

fn sigkill(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) on a pid just verified through /proc to be ours.
    pid > 0 && unsafe { libc::kill(pid, libc::SIGKILL) } == 0
}

pub fn kill(a: &SelectArgs) -> Result<(), CliError> {
    let dir =
        a.admin.app.dir.canonicalize().map_err(|e| {
            CliError::error(format!("app folder {}: {e}", a.admin.app.dir.display()))
        })?;
    let addr = client::master_addr(&a.admin)?;
    let path = dir.join("logs").join("master.pids.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::error(format!(
            "cannot read {} ({e}): no master recorded its processes here",
            path.display()
        ))
    })?;
    let pids: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::error(format!("{} is not valid JSON: {e}", path.display())))?;
    let all = a.ids.is_empty() && a.server_type.is_none();
    if a.server_type.is_some() {
        return Err(CliError::error(
            "--force works by id (the pid file has no types); list the ids",
        ));
    }
    let servers = pids["servers"].as_object().cloned().unwrap_or_default();
    let mut killed = Vec::new();
    let mut skipped = Vec::new();
    for (id, pid) in &servers {
        if !all && !a.ids.contains(id) {
            continue;
        }
        let Some(pid) = pid.as_u64().and_then(|p| u32::try_from(p).ok()) else {
            continue;
        };
        if is_server(pid, id, &addr) && sigkill(pid) {
            killed.push(format!("{id} (pid {pid})"));
        } else {
            skipped.push(format!(
                "{id}: pid {pid} is gone or is not that server any more"
            ));
        }
    }
    for id in &a.ids {
        if !servers.contains_key(id) {
            skipped.push(format!("{id}: not in {}", path.display()));
        }
    }
    if all && let Some(pid) = pids["master"].as_u64().and_then(|p| u32::try_from(p).ok()) {
        if is_master(pid, &dir) && sigkill(pid) {
            killed.push(format!("master (pid {pid})"));
        } else {
            skipped.push(format!(
                "master: pid {pid} is gone or is not this app's master"
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
    if !killed.is_empty() {
        println!("killed: {}", killed.join(", "));
    }
    for s in &skipped {
        println!("skipped {s}");
    }
    Ok(())
}
