//! Varints and zigzag as pomelo-protobuf's `codec.js` writes them.

use bytes::BufMut;

use super::Problem;

/// Base-128 varint, least significant group first (the message id's
/// format too, §3.3).
pub(crate) fn put_varint(out: &mut impl BufMut, mut value: u64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// zigzag: `n >= 0 → 2n`, `n < 0 → -2n - 1`.
pub(crate) fn zigzag(n: i32) -> u64 {
    u64::from(((n << 1) ^ (n >> 31)) as u32)
}

pub(crate) fn unzigzag(n: u32) -> i64 {
    i64::from(n >> 1) ^ -i64::from(n & 1)
}

/// A cursor over a body, bounded by `end` (the end of the enclosing
/// message): nothing is read past it.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    /// A varint of at most 10 bytes whose value fits 64 bits. Redundant
    /// continuation bytes (`ff 80 80 80 00`) are read as pomelo-protobuf
    /// reads them.
    pub(crate) fn varint(&mut self, end: usize) -> Result<u64, Problem> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.bytes[..end].get(self.pos) else {
                return Err(Problem::new(format!(
                    "varint truncated at byte {} (the message ends at {end})",
                    self.pos
                )));
            };
            self.pos += 1;
            let bits = u64::from(b & 0x7F);
            if i == 9 && bits > 1 {
                return Err(Problem::new("varint overflows 64 bits"));
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Problem::new("varint longer than 10 bytes"))
    }

    /// A varint that must fit 32 bits (values, lengths, counts).
    pub(crate) fn varint32(&mut self, end: usize) -> Result<u32, Problem> {
        let value = self.varint(end)?;
        u32::try_from(value)
            .map_err(|_| Problem::new(format!("value {value} does not fit 32 bits")))
    }

    /// The next `n` bytes, if the message holds them.
    pub(crate) fn take(&mut self, n: usize, end: usize) -> Result<&'a [u8], Problem> {
        let stop = self.pos.checked_add(n).filter(|&s| s <= end);
        let Some(stop) = stop else {
            return Err(Problem::new(format!(
                "{n} bytes announced at byte {} but the message ends at {end}",
                self.pos
            )));
        };
        let slice = &self.bytes[self.pos..stop];
        self.pos = stop;
        Ok(slice)
    }
}
