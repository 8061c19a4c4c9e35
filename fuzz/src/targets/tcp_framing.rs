//! Raw TCP framing (`split_package`, the hybrid connector's TCP path): a
//! byte stream arriving in arbitrary pieces → whole packages.
//! Invariants: the packages taken off plus what is left in the buffer are
//! exactly the bytes fed, in order; every package taken off is one whole
//! package that `decode_packages` reads back; nothing over the size limit
//! is ever buffered whole.

use bytes::BytesMut;
use shaddock_protocol::{decode_packages, split_package};

use super::package::{package_bytes, package_kind};
use super::{Target, signature, variant};
use crate::rng::Rng;

/// The body limit the target runs with (small, so the limit is hit often).
const LIMIT: usize = 300;

pub struct TcpFraming;

impl Target for TcpFraming {
    fn name(&self) -> &'static str {
        "tcp_framing"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        // First byte: how the stream is cut into reads.
        let mut stream = vec![rng.below(256) as u8];
        for _ in 0..rng.below(6) {
            let kind = package_kind(rng);
            let body_len = rng.len(400);
            let body = rng.bytes(body_len);
            stream.extend(package_bytes(rng, kind, &body));
        }
        stream
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        let Some((&cut, stream)) = input.split_first() else {
            return signature("empty");
        };
        // Reads of 1..=cut+1 bytes, cycling through sizes.
        let step = (cut as usize % 64) + 1;
        let mut buf = BytesMut::new();
        let mut taken = Vec::new();
        let mut outcome = "ok";
        let mut fed = 0;
        'feed: while fed < stream.len() {
            let end = (fed + step).min(stream.len());
            buf.extend_from_slice(&stream[fed..end]);
            fed = end;
            loop {
                match split_package(&mut buf, LIMIT) {
                    Ok(Some(package)) => {
                        assert!(package.len() >= 4 && package.len() - 4 <= LIMIT);
                        let decoded =
                            decode_packages(package.clone()).expect("a package split off decodes");
                        assert_eq!(decoded.len(), 1, "one package per split");
                        taken.extend_from_slice(&package);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        outcome = if format!("{e:?}").contains("TooLarge") {
                            "too large"
                        } else {
                            "refused"
                        };
                        let _ = variant(&e);
                        break 'feed;
                    }
                }
            }
            assert!(
                buf.len() <= LIMIT + 4,
                "buffered more than one package's worth"
            );
        }
        // Nothing lost, nothing duplicated, order kept.
        taken.extend_from_slice(&buf);
        assert_eq!(&taken[..], &stream[..fed], "packages + rest != bytes fed");
        signature((outcome, taken.len() > buf.len(), step.min(8)))
    }
}
