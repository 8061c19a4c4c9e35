//! Resident memory and CPU time of a child process, read from `/proc`
//! (Linux). Elsewhere the values are reported as unknown (0).

/// CPU time (user + system) in seconds and resident set size in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

/// Samples `/proc/<pid>`; `None` when the process is gone or not readable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces:
    // split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime = field 14, stime = field 15,
    // rss (pages) = field 24.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let page = if page > 0 { page as u64 } else { 4096 };
    Some(ProcSample {
        cpu_secs: (utime + stime) as f64 / ticks,
        rss_bytes: rss_pages * page,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn samples_this_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 1024 * 1024, "{s:?}");
        assert!(super::sample(u32::MAX).is_none());
    }
}
