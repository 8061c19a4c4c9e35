//! Byte-level mutation (the classic AFL/libFuzzer operators): applied to
//! corpus entries and to freshly generated structured inputs, so inputs
//! are mostly well-formed with a few broken bytes where decoders are
//! weakest (lengths, flags, boundaries).

use crate::rng::Rng;

/// Applies 1 to 8 random mutations to `data`, keeping it at most `max_len`
/// bytes. `other` is another input to splice from.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        mutate_once(rng, data, other);
    }
    data.truncate(max_len);
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(10) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        // Replace a byte with a random or an interesting one.
        1 if len > 0 => {
            let i = rng.below(len);
            let random = rng.byte();
            data[i] = *rng.pick(&[0x00, 0x01, 0x7F, 0x80, 0xFF, b'{', b'"', b'*', random]);
        }
        // Insert random bytes.
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes = rng.bytes(n);
            data.splice(at..at, bytes);
        }
        // Delete a range.
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(16));
            data.drain(at..at + n);
        }
        // Duplicate a range in place.
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(32));
            let copy = data[at..at + n].to_vec();
            let to = rng.below(data.len() + 1);
            data.splice(to..to, copy);
        }
        // Overwrite 1, 2 or 4 bytes with an edge value (a length field).
        5 if len > 0 => {
            let v = rng.interesting_u32().to_be_bytes();
            let width = *rng.pick(&[1usize, 2, 4]);
            let at = rng.below(len);
            for (k, b) in v[4 - width..].iter().enumerate() {
                if let Some(slot) = data.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        // Splice in a piece of another input.
        6 if !other.is_empty() => {
            let from = rng.below(other.len());
            let n = 1 + rng.below((other.len() - from).min(64));
            let at = rng.below(len + 1);
            data.splice(at..at, other[from..from + n].iter().copied());
        }
        // Truncate.
        7 if len > 0 => data.truncate(rng.below(len)),
        // Add or subtract a little from a byte (off-by-one lengths).
        8 if len > 0 => {
            let i = rng.below(len);
            data[i] = data[i].wrapping_add(*rng.pick(&[1u8, 255, 2, 254]));
        }
        // Append random bytes.
        _ => {
            let n = 1 + rng.below(8);
            data.extend(rng.bytes(n));
        }
    }
}
