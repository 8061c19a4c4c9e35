//! The real client address behind a load balancer.
//!
//! A frontend behind a TCP load balancer sees the balancer's address on
//! every connection, so per-address limits and logs would lump every
//! player together. Two standard ways carry the client's address, and both
//! are believed **only from configured proxy addresses**
//! (`trusted-proxies` in `config/connector.json`, addresses or CIDR
//! blocks) — anyone else could claim any address:
//!
//! * the **PROXY protocol** (HAProxy's, v1 text or v2 binary, parsed by the
//!   `ppp` crate) in front of the stream, when `proxy-protocol` is on: a
//!   trusted peer *must* send it (a connection without one is closed); an
//!   untrusted peer's bytes are never read as one;
//! * the **`X-Forwarded-For`** header of the WebSocket upgrade (an HTTP
//!   proxy): the rightmost address that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use ppp::HeaderResult;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest PROXY header read (v1 is at most 107 bytes; v2 with TLVs
/// can be longer, but balancers send addresses and a few TLVs).
const MAX_HEADER: usize = 1024;

/// Addresses whose PROXY header or `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.5`, `10.0.0.0/8`, `::1`…; an error names the entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "`{e}` is not an address or a CIDR block (e.g. 10.0.0.5 or 10.0.0.0/8)"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a configured proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address from an `X-Forwarded-For` value sent by a trusted
    /// proxy: the rightmost entry that is not a trusted proxy itself.
    pub fn client_from_forwarded_for(&self, header: &str) -> Option<IpAddr> {
        header
            .split(',')
            .rev()
            .filter_map(|part| parse_forwarded(part.trim()))
            .find(|ip| !self.trusts(*ip))
    }
}

/// `::ffff:1.2.3.4` is `1.2.3.4`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    entry.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// What a PROXY header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The client's address.
    Client(SocketAddr),
    /// A header without an address (`UNKNOWN`, v2 `LOCAL`: the balancer's
    /// own health check): keep the peer's address.
    Local,
}

/// Parses a complete PROXY header at the start of `bytes`: `Ok(None)` while
/// incomplete, else the header and its length in bytes.
pub fn parse_header(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, String> {
    let result = HeaderResult::parse(bytes);
    if !ppp::PartialResult::is_complete(&result) {
        return Ok(None);
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let len = h.header.len();
            let header = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    ProxyHeader::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    ProxyHeader::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                ppp::v1::Addresses::Unknown => ProxyHeader::Local,
            };
            Ok(Some((header, len)))
        }
        HeaderResult::V2(Ok(h)) => {
            let len = h.len();
            let header = match h.addresses {
                ppp::v2::Addresses::IPv4(a) => {
                    ProxyHeader::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                ppp::v2::Addresses::IPv6(a) => {
                    ProxyHeader::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                _ => ProxyHeader::Local,
            };
            Ok(Some((header, len)))
        }
        HeaderResult::V1(Err(e)) => Err(format!("bad PROXY v1 header: {e}")),
        HeaderResult::V2(Err(e)) => Err(format!("bad PROXY v2 header: {e}")),
    }
}

/// Reads the PROXY header a trusted proxy sends first, consuming exactly
/// its bytes (what follows — TLS, the WebSocket upgrade — stays unread).
/// Bounded by `within`.
pub async fn read_header(tcp: &mut TcpStream, within: Duration) -> Result<ProxyHeader, String> {
    let read = async {
        let mut buf = vec![0u8; MAX_HEADER];
        loop {
            let n = tcp
                .peek(&mut buf)
                .await
                .map_err(|e| format!("reading the PROXY header: {e}"))?;
            if n == 0 {
                return Err("the proxy closed before its PROXY header".to_string());
            }
            match parse_header(&buf[..n])? {
                Some((header, len)) => {
                    tcp.read_exact(&mut buf[..len])
                        .await
                        .map_err(|e| format!("reading the PROXY header: {e}"))?;
                    return Ok(header);
                }
                None if n == MAX_HEADER => {
                    return Err(format!("PROXY header longer than {MAX_HEADER} bytes"));
                }
                // Part of it so far: give the rest a moment to arrive
                // (peek would return the same bytes at once).
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| "no PROXY header in time from a trusted proxy".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_give_the_client_and_their_length() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 3050\r\nGET / HTTP/1.1\r\n";
        let (h, len) = parse_header(v1).unwrap().unwrap();
        assert_eq!(h, ProxyHeader::Client("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(&v1[len..len + 3], b"GET");
        assert_eq!(parse_header(&v1[..20]).unwrap(), None, "incomplete");
        let (h, _) = parse_header(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!(h, ProxyHeader::Local);

        // v2, PROXY command, TCP over IPv4: 203.0.113.7:51000 → 10.0.0.1:3050.
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
        v2.extend_from_slice(&[203, 0, 113, 7, 10, 0, 0, 1]);
        v2.extend_from_slice(&51000u16.to_be_bytes());
        v2.extend_from_slice(&3050u16.to_be_bytes());
        let total = v2.len();
        v2.extend_from_slice(b"GET");
        let (h, len) = parse_header(&v2).unwrap().unwrap();
        assert_eq!(h, ProxyHeader::Client("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(len, total);
        assert!(
            parse_header(b"GET / HTTP/1.1\r\n\r\n").is_err(),
            "plain HTTP is not a PROXY header"
        );
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_past_trusted_proxies() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.5".into()]).unwrap();
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!trusted.trusts("203.0.113.7".parse().unwrap()));
        let client = |h: &str| trusted.client_from_forwarded_for(h);
        assert_eq!(client("203.0.113.7"), Some("203.0.113.7".parse().unwrap()));
        // A client's forged entry on the left is ignored: the rightmost
        // untrusted address is the one the first trusted proxy saw.
        assert_eq!(
            client("1.1.1.1, 203.0.113.7, 10.0.0.9"),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(client("10.0.0.9, garbage"), None);
        assert!(TrustedProxies::parse(&["not-an-ip".into()]).is_err());
    }
}
