//! The robot's own open-files limit: thousands of sockets need more than the
//! usual soft limit of 1024, so raise it (up to the hard limit) and say so.

/// Makes sure `needed` descriptors can be open; returns a note for the user
/// when the limit was raised, or an error when the hard limit is too low.
pub fn ensure_open_files(needed: u64) -> anyhow::Result<Option<String>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(Some(format!(
            "cannot read the open-files limit ({}); continuing",
            std::io::Error::last_os_error()
        )));
    }
    if lim.rlim_cur >= needed {
        return Ok(None);
    }
    if lim.rlim_max < needed {
        anyhow::bail!(
            "{needed} open files needed but the hard limit is {}; raise it (ulimit -Hn) or use fewer clients",
            lim.rlim_max
        );
    }
    let old = lim.rlim_cur;
    lim.rlim_cur = needed.max(lim.rlim_cur).min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit with cur <= max.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        anyhow::bail!(
            "cannot raise the open-files limit from {old} to {}: {}",
            lim.rlim_cur,
            std::io::Error::last_os_error()
        );
    }
    Ok(Some(format!(
        "raised the open-files limit from {old} to {} for {needed} sockets",
        lim.rlim_cur
    )))
}
