//! What the master reads about processes in `/proc` (Linux): resident
//! memory and CPU time for `list`, and the checks that a pid still is the
//! process it recorded (start time, environment) before it adopts or
//! signals a process it did not spawn itself. Elsewhere the values are
//! unknown (`None`, 0) and nothing is adopted.

use std::time::Duration;

/// CPU time (user + system) in seconds and resident set size in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

/// The fields of `/proc/<pid>/stat` from field 3 (state) on. The command
/// name (field 2) is in parentheses and may contain spaces: split after the
/// last ')'. So field `n` (1-based, as in proc(5)) is at index `n - 3`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(String::from).collect())
}

fn field(fields: &[String], n: usize) -> Option<u64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Samples `/proc/<pid>`; `None` when the process is gone or not readable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let fields = stat_fields(pid)?;
    // utime = field 14, stime = field 15, rss (pages) = field 24.
    let utime = field(&fields, 14)?;
    let stime = field(&fields, 15)?;
    let rss_pages = field(&fields, 24)?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as u64 } else { 4096 };
    Some(ProcSample {
        cpu_secs: (utime + stime) as f64 / clock_ticks(),
        rss_bytes: rss_pages * page,
    })
}

/// When the process started, in clock ticks after boot (field 22 of
/// `/proc/<pid>/stat`). A pid plus its start time names one process: a
/// reused pid has a later start time. `None` when the process is gone or
/// is a zombie (it exited; its parent has not reaped it yet).
pub fn start_time(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    if matches!(fields.first().map(String::as_str), Some("Z" | "X" | "x")) {
        return None;
    }
    field(&fields, 22)
}

/// Whether `pid` still is the process that started at `start`.
pub fn is_alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// How long ago a process with this start time started (`None` if
/// `/proc/uptime` cannot be read).
pub fn started_ago(start: u64) -> Option<Duration> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let now: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let ago = now - start as f64 / clock_ticks();
    Some(Duration::from_secs_f64(ago.max(0.0)))
}

/// The environment `pid` was started with (`KEY=value` strings).
pub fn environ(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
    )
}

/// Whether `pid` is server `id` started by the master at `addr` (the
/// `SHADDOCK_SERVER_ID` and `SHADDOCK_MASTER` a master gives its servers).
pub fn is_server(pid: u32, id: &str, addr: &str) -> bool {
    environ(pid).is_some_and(|env| {
        env.iter().any(|v| *v == format!("SHADDOCK_SERVER_ID={id}"))
            && env.iter().any(|v| *v == format!("SHADDOCK_MASTER={addr}"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn samples_this_process() {
        let me = std::process::id();
        let s = super::sample(me).expect("own /proc entry");
        assert!(s.rss_bytes > 1024 * 1024, "{s:?}");
        assert!(super::sample(u32::MAX).is_none());
        let start = super::start_time(me).expect("own start time");
        assert!(super::is_alive(me, start));
        assert!(!super::is_alive(me, start + 1));
        assert!(super::started_ago(start).unwrap() < std::time::Duration::from_secs(3600));
    }
}
