//! Golden tests of the raw TCP framing (§1, §2.1): `split_package` cuts a
//! stream's read buffer into whole packages, however the bytes arrive.
//!
//! Fixtures: `tcp_*.hex` for the error cases; the §11 fixtures for whole
//! packages (two in one read: §11.13; one split across reads: §11.14 f).

mod common;

use bytes::{Bytes, BytesMut};
use shaddock_protocol::{DecodeError, decode_packages, split_package};

/// The default `max-message-size` of a frontend.
const LIMIT: usize = 64 * 1024;

/// Every whole package in `buf`, leaving the rest in it.
fn split_all(buf: &mut BytesMut) -> Result<Vec<Bytes>, DecodeError> {
    let mut out = Vec::new();
    while let Some(package) = split_package(buf, LIMIT)? {
        out.push(package);
    }
    Ok(out)
}

#[test]
fn a_truncated_header_waits_for_more() {
    let mut buf = BytesMut::from(&fixture!("tcp_truncated_header")[..]);
    assert_eq!(buf.len(), 3);
    assert_eq!(split_package(&mut buf, LIMIT), Ok(None));
    assert_eq!(buf.len(), 3, "nothing consumed");
    // The rest of §11.14 g arrives: one whole package.
    let whole = fixture!("11_14g_chat_send_response");
    buf.extend_from_slice(&whole[3..]);
    assert_eq!(split_package(&mut buf, LIMIT), Ok(Some(whole)));
    assert!(buf.is_empty());
    assert_eq!(split_package(&mut buf, LIMIT), Ok(None));
}

#[test]
fn an_oversized_length_is_refused_on_the_header() {
    let mut buf = BytesMut::from(&fixture!("tcp_oversized_length")[..]);
    assert_eq!(
        split_package(&mut buf, LIMIT),
        Err(DecodeError::PackageTooLarge {
            declared: 65_537,
            limit: LIMIT
        })
    );
    // One byte less is fine: it waits for the body.
    let mut buf = BytesMut::from(&[4u8, 1, 0, 0][..]);
    assert_eq!(split_package(&mut buf, LIMIT), Ok(None));
}

#[test]
fn an_unknown_type_is_refused_at_once() {
    let mut buf = BytesMut::from(&fixture!("tcp_unknown_type")[..]);
    assert_eq!(
        split_package(&mut buf, LIMIT),
        Err(DecodeError::UnknownPackageType(7))
    );
}

#[test]
fn two_packages_in_one_read_come_out_one_by_one() {
    let frame = fixture!("11_13_batched_pushes");
    let mut buf = BytesMut::from(&frame[..]);
    let packages = split_all(&mut buf).unwrap();
    assert!(buf.is_empty());
    assert_eq!(packages.len(), 2);
    assert_eq!(packages[0].len(), 4 + 0x25);
    assert_eq!(packages[1].len(), 4 + 0x29);
    assert_eq!([&packages[0][..], &packages[1][..]].concat(), frame);
    // Each is a whole package, as a WebSocket frame would carry it.
    for package in packages {
        assert_eq!(decode_packages(package).unwrap().len(), 1);
    }
}

#[test]
fn one_package_split_across_reads_at_every_offset() {
    let whole = fixture!("11_14f_chat_send");
    for cut in 0..=whole.len() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&whole[..cut]);
        let first = split_all(&mut buf).unwrap();
        buf.extend_from_slice(&whole[cut..]);
        let second = split_all(&mut buf).unwrap();
        let got: Vec<Bytes> = first.into_iter().chain(second).collect();
        assert_eq!(got, vec![whole.clone()], "cut at {cut}");
        assert!(buf.is_empty());
    }
    // Byte by byte, followed by the next package in the same reads.
    let next = fixture!("11_01_heartbeat");
    let stream = [&whole[..], &next[..]].concat();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in stream {
        buf.extend_from_slice(&[byte]);
        got.extend(split_all(&mut buf).unwrap());
    }
    assert_eq!(got, vec![whole, next]);
}
