//! `shaddock kill --force`: kill an app's processes without the master
//! (hung, stopped, unreachable).
//!
//! Pomelo's `kill -f` kills every `node` process of the machine. We kill
//! only the pids the master recorded in `logs/master.pids.json`, and each
//! only after `/proc` shows it still is what the file says: the recorded
//! start time, and a server whose environment has `SHADDOCK_SERVER_ID=<id>`
//! and `SHADDOCK_MASTER=<the address its master gave it>`, or a `shaddock
//! master` of this app folder. A pid reused by an unrelated process is left
//! alone. Servers adopted by a later master are in that master's file too.
//! With several hosts, `-H NAME` reads the records of host NAME's
//! supervisor (`logs/host-NAME/`).

use std::path::Path;

use super::args::SelectArgs;
use super::client;
use super::exit::CliError;
use crate::master::{hosts, procinfo, records};

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
    )
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
    // `-H NAME`: the records of host NAME's supervisor (`start --host`),
    // when there are any; else the single master's.
    let log_dir = match &a.admin.host {
        Some(host) if hosts::host_log_dir(&dir, Some(host)).is_dir() => {
            hosts::host_log_dir(&dir, Some(host))
        }
        _ => dir.join("logs"),
    };
    let path = records::path(&log_dir);
    let records = records::Records::read(&log_dir)
        .map_err(CliError::error)?
        .ok_or_else(|| {
            CliError::error(format!(
                "no {}: no master recorded its processes here",
                path.display()
            ))
        })?;
    // The address the servers were given; older files do not record it.
    let addr = if records.addr.is_empty() {
        client::master_addr(&a.admin)?
    } else {
        records.addr.clone()
    };
    let all = a.ids.is_empty() && a.server_type.is_none();
    if a.server_type.is_some() {
        return Err(CliError::error(
            "--force works by id (the pid file has no types); list the ids",
        ));
    }
    // Still the same process: same start time (when recorded) and, in its
    // environment, this app's server id.
    let same = |pid: u32, start: Option<u64>| start.is_none_or(|s| procinfo::is_alive(pid, s));
    let mut killed = Vec::new();
    let mut skipped = Vec::new();
    for s in &records.servers {
        if !all && !a.ids.contains(&s.id) {
            continue;
        }
        if same(s.pid, s.start) && procinfo::is_server(s.pid, &s.id, &addr) && sigkill(s.pid) {
            killed.push(format!("{} (pid {})", s.id, s.pid));
        } else {
            skipped.push(format!(
                "{}: pid {} is gone or is not that server any more",
                s.id, s.pid
            ));
        }
    }
    for id in &a.ids {
        if !records.servers.iter().any(|s| &s.id == id) {
            skipped.push(format!("{id}: not in {}", path.display()));
        }
    }
    if all {
        let pid = records.master;
        if same(pid, records.master_start) && is_master(pid, &dir) && sigkill(pid) {
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
