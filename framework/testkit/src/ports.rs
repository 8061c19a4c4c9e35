//! Free ports for test servers that bind later, in another process.
//!
//! "Bind port 0, read the port, release it" hands out a port from the
//! kernel's *ephemeral* range — the same range every outgoing connection
//! takes its source port from. Between the release and the server's own
//! bind (seconds later when a test builds an app first) any connect on the
//! machine may take that port, and the server then fails with "address in
//! already use": CI saw exactly that once (`cli_guide`, web server).
//!
//! So ports come from *below* the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), where no outgoing connection
//! ever lands, each one checked free by a bind on every interface, and
//! never the same port twice in one test process (an atomic cursor over the
//! range, starting at an offset drawn from the pid so that two test
//! processes at once are unlikely to meet; the bind check catches it when
//! they do).

use std::net::TcpListener;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Lowest port handed out: clear of the well-known and registered ports
/// that services on a developer machine commonly use.
const FLOOR: u16 = 10_000;

/// The kernel's ephemeral range, `(low, high)`; Linux's default when it
/// cannot be read.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// The ports this module hands out: `[FLOOR, low)` of the ephemeral range,
/// or above it when the range starts too low to leave room below.
fn pool() -> (u16, u16) {
    static POOL: OnceLock<(u16, u16)> = OnceLock::new();
    *POOL.get_or_init(|| {
        let (low, high) = ephemeral_range();
        if low >= FLOOR + 2_000 {
            (FLOOR, low)
        } else if high <= 63_000 {
            (high + 1, 65_535)
        } else {
            // Nothing outside the range is wide enough: fall back to the
            // ephemeral range itself (bind checks still apply).
            (FLOOR, 65_535)
        }
    })
}

fn bindable(port: u16) -> bool {
    // The wildcard bind fails if anything holds the port on any address
    // (a server may bind 0.0.0.0 or 127.0.0.x).
    TcpListener::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback port that is free now, outside the kernel's ephemeral range
/// (so no outgoing connection takes it before the server binds it), and
/// not handed out before by this process.
pub fn free_port() -> u16 {
    static CURSOR: OnceLock<AtomicUsize> = OnceLock::new();
    let (lo, hi) = pool();
    let width = usize::from(hi - lo);
    let cursor = CURSOR.get_or_init(|| {
        let seed = std::process::id() as usize;
        AtomicUsize::new(seed.wrapping_mul(7_919) % width)
    });
    for _ in 0..width {
        let n = cursor.fetch_add(1, Ordering::Relaxed) % width;
        let port = lo + n as u16;
        if bindable(port) {
            return port;
        }
    }
    panic!("no free port in {lo}..{hi}: is the machine out of ports?");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let unique: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for &p in &ports {
            assert!(
                !(low..=high).contains(&p) || pool() == (FLOOR, 65_535),
                "{p} is ephemeral"
            );
            assert!(p >= FLOOR);
        }
        assert!(TcpListener::bind(("127.0.0.1", ports[0])).is_ok());
    }
}
