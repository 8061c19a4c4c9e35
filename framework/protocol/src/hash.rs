//! The dispatch hash Pomelo uses everywhere (§6.2): CRC-32 as computed by the
//! `crc` 0.2.0 npm package, over one byte per UTF-16 code unit (its low 8
//! bits), read as a **signed** 32-bit integer. Servers are picked with
//! `|hash| mod n`. Matching this exactly means a Rust gate sends a user to the
//! same connector a Node gate would, given the same server order.

/// `crc.crc32(key)` of crc 0.2.0: signed, over the low byte of each UTF-16 unit.
pub fn crc32_pomelo(key: &str) -> i32 {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = [0u8; 64];
    let mut n = 0;
    for unit in key.encode_utf16() {
        buf[n] = unit as u8;
        n += 1;
        if n == buf.len() {
            hasher.update(&buf);
            n = 0;
        }
    }
    hasher.update(&buf[..n]);
    hasher.finalize() as i32
}

/// `Math.abs(crc32(key)) % n`; `None` when `n` is 0.
pub fn dispatch_index(key: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let h = i64::from(crc32_pomelo(key)).unsigned_abs();
    Some((h % n as u64) as usize)
}
