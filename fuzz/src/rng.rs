//! A small deterministic PRNG (SplitMix64): a run is reproduced from its
//! seed alone, and the harness needs no `rand` dependency.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    /// Random bytes, [`len`](Self::len)`(max)` of them.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.len(max);
        self.bytes(n)
    }

    /// A length biased to small values, sometimes up to `max`.
    pub fn len(&mut self, max: usize) -> usize {
        match self.below(8) {
            0..=4 => self.below(16.min(max + 1)),
            5 | 6 => self.below(256.min(max + 1)),
            _ => self.below(max + 1),
        }
    }

    /// A value from the edges of integer ranges more often than not.
    pub fn interesting_u32(&mut self) -> u32 {
        const EDGES: [u32; 12] = [
            0,
            1,
            0x7F,
            0x80,
            0xFF,
            0x3FFF,
            0x4000,
            0xFFFF,
            0x1F_FFFF,
            0xFF_FFFF,
            0x7FFF_FFFF,
            u32::MAX,
        ];
        if self.one_in(2) {
            *self.pick(&EDGES)
        } else {
            self.next_u64() as u32
        }
    }

    /// A short string: ASCII, sometimes CJK, quotes, escapes or controls.
    pub fn text(&mut self, max: usize) -> String {
        const PIECES: [&str; 12] = [
            "a",
            "Z",
            "0",
            "_",
            "*",
            ".",
            "\"",
            "\\",
            "中",
            "\u{0}",
            "\u{1F600}",
            "é",
        ];
        let n = self.len(max);
        (0..n).map(|_| *self.pick(&PIECES)).collect()
    }
}
