//! The package decoder (`decode_packages`): one WebSocket frame → packages.
//! Invariant: a frame that decodes re-encodes to exactly its bytes.

use bytes::{Bytes, BytesMut};
use shaddock_protocol::{PackageType, decode_packages, encode_package_into};

use super::{Target, signature, variant};
use crate::rng::Rng;

pub struct Packages;

/// One package header + body, the length sometimes lying.
pub fn package_bytes(rng: &mut Rng, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut declared = body.len() as u32;
    if rng.one_in(8) {
        declared = match rng.below(3) {
            0 => declared.wrapping_add(1),
            1 => declared.saturating_sub(1),
            _ => rng.interesting_u32() & 0xFF_FFFF,
        };
    }
    let mut out = vec![kind];
    out.extend_from_slice(&declared.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// A package type byte: mostly the five real ones.
pub fn package_kind(rng: &mut Rng) -> u8 {
    if rng.one_in(10) {
        *rng.pick(&[0, 6, 7, 0x81, 0xFF])
    } else {
        1 + rng.below(5) as u8
    }
}

impl Target for Packages {
    fn name(&self) -> &'static str {
        "package"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut frame = Vec::new();
        for _ in 0..rng.below(5) {
            let kind = package_kind(rng);
            let body_len = rng.len(512);
            let body = rng.bytes(body_len);
            frame.extend(package_bytes(rng, kind, &body));
        }
        frame
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        match decode_packages(Bytes::copy_from_slice(input)) {
            Ok(packages) => {
                let mut again = BytesMut::new();
                for p in &packages {
                    encode_package_into(&mut again, p.kind, &p.body)
                        .expect("a decoded package re-encodes");
                }
                assert_eq!(&again[..], input, "decode → encode changed the frame");
                let kinds: Vec<PackageType> = packages.iter().map(|p| p.kind).collect();
                signature(("ok", kinds.len().min(4), kinds.first().map(|k| *k as u8)))
            }
            Err(e) => signature(("err", variant(&e))),
        }
    }
}
