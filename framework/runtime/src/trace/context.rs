//! W3C Trace Context: the `traceparent` value and the ids it carries.
//!
//! `traceparent` is `version-traceid-parentid-flags` in lowercase hex, e.g.
//! `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>). A request
//! keeps its trace id on every server it crosses; each server's part of it
//! gets its own span id, and the id sent to the next server is the parent
//! id there.
//!
//! Parsing never fails loudly: a missing, malformed or all-zero header is
//! `None`, and the receiver starts a new trace (the spec's rule: an invalid
//! `traceparent` is ignored, never fatal).

use std::fmt;

/// 16 bytes naming one trace (one client request, end to end).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// 8 bytes naming one server's span of a trace.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// The trace context of one request on this server.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// This server's span (sent as the parent id to the next server).
    pub span_id: SpanId,
    /// The `sampled` flag (bit 0 of `trace-flags`).
    pub sampled: bool,
}

/// Length of a version-00 `traceparent`.
const LEN: usize = 55;

impl TraceContext {
    /// A new trace: random, non-zero trace and span ids, sampled.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: TraceId(nonzero_u128().to_be_bytes()),
            span_id: SpanId(nonzero_u64().to_be_bytes()),
            sampled: true,
        }
    }

    /// This trace continued by another span (the next server's, or a
    /// nested one): same trace id and flags, a new span id.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: SpanId(nonzero_u64().to_be_bytes()),
            ..*self
        }
    }

    /// Parses a `traceparent` value; `None` when it is invalid (wrong
    /// length or separators, uppercase or non-hex digits, version `ff`, an
    /// all-zero trace or parent id). A version above 00 is read as 00, as
    /// the spec asks: its first 55 characters, and a `-` after them if
    /// there is more.
    pub fn parse(value: &str) -> Option<Self> {
        let b = value.as_bytes();
        if b.len() < LEN {
            return None;
        }
        let version = hex_byte(&b[0..2])?;
        if version == 0xff || (version == 0 && b.len() != LEN) {
            return None;
        }
        if b.len() > LEN && b[LEN] != b'-' {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut trace = [0u8; 16];
        for (i, out) in trace.iter_mut().enumerate() {
            *out = hex_byte(&b[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span = [0u8; 8];
        for (i, out) in span.iter_mut().enumerate() {
            *out = hex_byte(&b[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&b[53..55])?;
        if trace == [0; 16] || span == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id: TraceId(trace),
            span_id: SpanId(span),
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` value naming this span as the parent (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// One byte from two lowercase hex digits (uppercase is invalid in
/// `traceparent`).
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Ids need to be unique, not secret: `fastrand`'s per-thread generator
/// (seeded from the OS) costs nanoseconds per request, where a getrandom
/// system call per id would cost a syscall on the request path.
fn nonzero_u128() -> u128 {
    loop {
        let v = fastrand::u128(..);
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's own example.
    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn golden_round_trip() {
        let ctx = TraceContext::parse(EXAMPLE).expect("the spec's example parses");
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.to_string(), "00f067aa0ba902b7");
        assert!(ctx.sampled);
        assert_eq!(ctx.traceparent(), EXAMPLE);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let ctx = TraceContext::parse(unsampled).unwrap();
        assert!(!ctx.sampled);
        assert_eq!(ctx.traceparent(), unsampled);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        let bad = [
            "",
            "00",
            "garbage",
            // uppercase hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            // all-zero trace id, all-zero parent id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff is forbidden
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // version 00 must be exactly 55 characters
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // wrong separators, short fields, non-hex
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // a future version longer than 55 needs a '-' after them
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // multi-byte characters where hex digits belong
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ];
        for header in bad {
            assert_eq!(TraceContext::parse(header), None, "{header:?}");
        }
    }

    #[test]
    fn future_versions_read_as_version_00() {
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more-fields";
        let ctx = TraceContext::parse(v1).expect("a later version with more fields");
        assert_eq!(ctx.traceparent(), EXAMPLE);
    }

    #[test]
    fn roots_are_fresh_and_children_keep_the_trace() {
        let a = TraceContext::new_root();
        let b = TraceContext::new_root();
        assert_ne!(a.trace_id, b.trace_id);
        let c = a.child();
        assert_eq!(c.trace_id, a.trace_id);
        assert_ne!(c.span_id, a.span_id);
        assert_eq!(TraceContext::parse(&c.traceparent()), Some(c));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_input() {
        // Every prefix and every single-byte corruption of a valid header.
        let valid = EXAMPLE.as_bytes();
        for len in 0..=valid.len() + 2 {
            let s: String = EXAMPLE.chars().cycle().take(len).collect();
            let _ = TraceContext::parse(&s);
        }
        for i in 0..valid.len() {
            for byte in [b'-', b'0', b'F', b'x', b' ', 0u8, 0x7f] {
                let mut v = valid.to_vec();
                v[i] = byte;
                if let Ok(s) = std::str::from_utf8(&v) {
                    let _ = TraceContext::parse(s);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_ignored(s in "\\PC{0,80}") {
            let _ = TraceContext::parse(&s);
        }

        #[test]
        fn any_valid_context_round_trips(t in 1u128.., p in 1u64.., sampled: bool) {
            let ctx = TraceContext {
                trace_id: TraceId(t.to_be_bytes()),
                span_id: SpanId(p.to_be_bytes()),
                sampled,
            };
            proptest::prop_assert_eq!(TraceContext::parse(&ctx.traceparent()), Some(ctx));
        }
    }
}
