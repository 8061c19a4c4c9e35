//! The server processes under test: finding them and sampling their CPU time
//! and RSS from `/proc` (Linux only; elsewhere the figures are reported as
//! unavailable, never guessed).
//!
//! Pids come from `--pids`, from `--pid-match` (a substring of the command
//! line), or from the topology: every process whose command line names a
//! server id of `servers.json` (`--server-id <id>` for ours, `id=<id>` for
//! Pomelo) *and* whose working directory holds that `config/servers.json`,
//! so a colleague's cluster with the same ids is never measured by mistake.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

/// One watched process.
#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    pub pid: u32,
    /// Server id when known (topology), else the command name.
    pub name: String,
}

/// CPU seconds (user + system) of a process, `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Resident set size in KiB (`VmRSS`), `None` once the process is gone.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The machine's load average (1, 5, 15 min) from `/proc/loadavg`; zeros
/// where it cannot be read. Recorded with every run: on a shared 2-core box
/// a colleague's compile moves the numbers, and the load says when.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [(); 3].map(|_| it.next().unwrap_or(0.0))
}

/// CPU seconds of this process (the robot itself).
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// A snapshot of every watched process.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub cpu_s: f64,
    pub rss_kb: u64,
    /// CPU seconds of each process readable, by name (server id).
    pub cpu_by_process: Vec<(String, f64)>,
    /// Processes that could not be read (exited).
    pub missing: usize,
}

pub fn sample(procs: &[Proc]) -> Sample {
    let mut s = Sample::default();
    for p in procs {
        match (cpu_seconds(p.pid), rss_kb(p.pid)) {
            (Some(c), Some(r)) => {
                s.cpu_s += c;
                s.rss_kb += r;
                s.cpu_by_process.push((p.name.clone(), c));
            }
            _ => s.missing += 1,
        }
    }
    s
}

/// CPU seconds each process used between two samples, by name (a process
/// missing from either sample is left out).
pub fn cpu_delta_by_process(
    before: &Sample,
    after: &Sample,
) -> std::collections::BTreeMap<String, f64> {
    after
        .cpu_by_process
        .iter()
        .filter_map(|(name, a)| {
            let b = before.cpu_by_process.iter().find(|(n, _)| n == name)?.1;
            Some((name.clone(), (a - b).max(0.0)))
        })
        .collect()
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|p| *p != me)
        .collect();
    pids.sort_unstable();
    pids
}

/// Processes given by pid.
pub fn from_pids(pids: &[u32]) -> anyhow::Result<Vec<Proc>> {
    pids.iter()
        .map(|&pid| {
            let args = cmdline(pid).with_context(|| format!("no process with pid {pid}"))?;
            Ok(Proc {
                pid,
                name: server_id_of(&args).unwrap_or_else(|| args.join(" ")),
            })
        })
        .collect()
}

/// Processes whose command line contains `needle`.
pub fn matching(needle: &str) -> Vec<Proc> {
    all_pids()
        .into_iter()
        .filter_map(|pid| {
            let args = cmdline(pid)?;
            let line = args.join(" ");
            line.contains(needle).then(|| Proc {
                pid,
                name: server_id_of(&args).unwrap_or(line),
            })
        })
        .collect()
}

/// The server id a command line names: `--server-id <id>`,
/// `--server-id=<id>` (ours) or `id=<id>` (Pomelo).
fn server_id_of(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--server-id" {
            return it.next().cloned();
        }
        if let Some(id) = a
            .strip_prefix("--server-id=")
            .or_else(|| a.strip_prefix("id="))
        {
            return Some(id.to_owned());
        }
    }
    None
}

/// Server ids listed in `servers.json` for `env` (all types).
pub fn topology_ids(servers_json: &Path, env: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(servers_json)
        .with_context(|| format!("cannot read {}", servers_json.display()))?;
    let root: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", servers_json.display()))?;
    let Some(types) = root.get(env).and_then(|v| v.as_object()) else {
        bail!("{} has no environment `{env}`", servers_json.display());
    };
    Ok(types
        .values()
        .filter_map(|v| v.as_array())
        .flatten()
        .filter_map(|s| s.get("id")?.as_str().map(str::to_owned))
        .collect())
}

/// The running servers of a topology: see the module docs.
pub fn from_topology(servers_json: &Path, env: &str) -> anyhow::Result<Vec<Proc>> {
    let ids = topology_ids(servers_json, env)?;
    let app_dir: Option<PathBuf> = servers_json
        .canonicalize()
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_path_buf));
    let mut found = Vec::new();
    for pid in all_pids() {
        let Some(args) = cmdline(pid) else { continue };
        let Some(id) = server_id_of(&args) else {
            continue;
        };
        if !ids.contains(&id) {
            continue;
        }
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        if app_dir.is_some() && cwd != app_dir {
            continue;
        }
        found.push(Proc { pid, name: id });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kb(me).unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
        assert!(cpu_seconds(u32::MAX).is_none());
        assert!(loadavg().iter().all(|l| *l >= 0.0));
    }

    #[test]
    fn server_ids_from_command_lines() {
        let ours: Vec<String> = [
            "game-server",
            "--env",
            "bench",
            "--server-id",
            "chat-server-1",
        ]
        .map(String::from)
        .into();
        assert_eq!(server_id_of(&ours).as_deref(), Some("chat-server-1"));
        let pomelo: Vec<String> = ["node", "app.js", "env=production", "id=gate-server-1"]
            .map(String::from)
            .into();
        assert_eq!(server_id_of(&pomelo).as_deref(), Some("gate-server-1"));
        assert_eq!(server_id_of(&["node".to_owned()]), None);
    }
}
