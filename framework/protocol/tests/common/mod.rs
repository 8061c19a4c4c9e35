//! Shared by the golden tests: reading the `.hex` fixtures.
#![allow(dead_code)]

use bytes::Bytes;

/// Parses a `.hex` fixture: `#` starts a comment, `|` and whitespace separate.
pub fn hex(text: &str) -> Bytes {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars())
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in fixture"
    );
    let bytes: Vec<u8> = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect();
    Bytes::from(bytes)
}

#[macro_export]
macro_rules! fixture {
    ($name:literal) => {
        $crate::common::hex(include_str!(concat!("fixtures/", $name, ".hex")))
    };
}
