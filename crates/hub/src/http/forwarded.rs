//! Who is asking, when a reverse proxy stands in between: pure, no I/O.
//!
//! A hub facing its clients directly takes the connection's address as the client's,
//! its own TLS as the scheme and `Host` as the host asked for, and ignores every
//! forwarding header: any client can write them. Behind a reverse proxy every
//! connection comes from the proxy, so for a peer the operator listed in
//! `trusted_proxies` (and only then) the hub reads what that proxy adds:
//!
//! - `X-Forwarded-For`, walked from the right (each proxy appends the address it was
//!   reached from), skipping listed proxies: the first address not listed is the
//!   client. What lies to its left was written by the client and is never read.
//! - `X-Forwarded-Proto`: `https` means the client reached the proxy over TLS.
//! - `X-Forwarded-Host`: the host the client asked the proxy for (some proxies send
//!   their own upstream address as `Host`).
//!
//! RFC 7239 `Forwarded` is not read: Caddy, nginx, HAProxy and Traefik all send
//! `X-Forwarded-For`, and a header the proxy does not set itself is one the client
//! wrote. A malformed header from a trusted proxy is not guessed at: the peer's own
//! address (or scheme, or `Host`) is used, and the caller counts it.

use axum::http::{header, HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The reverse proxies whose forwarding headers are believed (`trusted_proxies`).
/// Empty: none, the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `trusted_proxies` entry that is neither an address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted_proxies: {0:?} is not an IP address or CIDR range (such as 127.0.0.1, 10.0.0.0/8 or fd00::/8)")]
pub struct BadProxy(pub String);

impl TrustedProxies {
    /// Each entry an address (`10.0.0.7`, `::1`) or a range (`10.0.0.0/8`,
    /// `fd00::/8`); an entry may itself be a comma-separated list.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, BadProxy> {
        let mut nets = Vec::new();
        for entry in entries {
            for item in entry.as_ref().split(',') {
                let item = item.trim();
                let net = match item.parse::<IpNet>() {
                    Ok(n) => n.trunc(),
                    Err(_) => item
                        .parse::<IpAddr>()
                        .map(|ip| IpNet::from(ip.to_canonical()))
                        .map_err(|_| BadProxy(item.chars().take(80).collect()))?,
                };
                nets.push(net);
            }
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a listed proxy (an IPv4 address seen as `::ffff:a.b.c.d` on a
    /// dual-stack socket counts as the IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// What the hub knows of a request's sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the peer's, or the one a trusted proxy reported. None
    /// when the server did not record the peer (a router driven directly in tests).
    pub addr: Option<IpAddr>,
    /// Whether the client's request came over TLS: the hub's own, or a trusted
    /// proxy's (`X-Forwarded-Proto: https`).
    pub https: bool,
    /// The host the client asked for: `Host`, or a trusted proxy's
    /// `X-Forwarded-Host`.
    pub host: Option<String>,
    /// Whether the answer came from a trusted proxy's headers.
    pub via_proxy: bool,
}

/// Which forwarding header a trusted proxy sent malformed (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    For,
    Proto,
    Host,
}

impl Malformed {
    pub fn header(self) -> &'static str {
        match self {
            Malformed::For => "x-forwarded-for",
            Malformed::Proto => "x-forwarded-proto",
            Malformed::Host => "x-forwarded-host",
        }
    }
}

/// The client, and the first malformed header met (if any: its part was ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub client: Client,
    pub malformed: Option<Malformed>,
}

/// The client behind a request that arrived from `peer` (over the hub's own TLS if
/// `own_tls`), believing forwarding headers only from a peer in `trusted`.
pub fn resolve(
    peer: IpAddr,
    own_tls: bool,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Resolved {
    let peer = peer.to_canonical();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !trusted.contains(peer) {
        return Resolved {
            client: Client {
                addr: Some(peer),
                https: own_tls,
                host,
                via_proxy: false,
            },
            malformed: None,
        };
    }
    let mut malformed = None;
    let addr = walk(peer, headers, trusted).unwrap_or_else(|()| {
        malformed.get_or_insert(Malformed::For);
        peer
    });
    let https = match proto(headers) {
        Ok(p) => p.unwrap_or(own_tls),
        Err(()) => {
            malformed.get_or_insert(Malformed::Proto);
            own_tls
        }
    };
    let host = match forwarded_host(headers) {
        Ok(Some(h)) => Some(h.to_owned()),
        Ok(None) => host,
        Err(()) => {
            malformed.get_or_insert(Malformed::Host);
            host
        }
    };
    Resolved {
        client: Client {
            addr: Some(addr),
            https,
            host,
            via_proxy: true,
        },
        malformed,
    }
}

/// `X-Forwarded-For` from the right: every hop a trusted proxy is skipped, the first
/// that is not is the client. Every hop trusted (or no header): the leftmost one
/// reached, else the peer. A hop that is not an address, met before the client:
/// `Err`. Header lines are one list, in order.
fn walk(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Result<IpAddr, ()> {
    let mut reached = peer;
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for hop in line.as_bytes().rsplit(|b| *b == b',') {
            let ip = hop_addr(hop).ok_or(())?;
            reached = ip;
            if !trusted.contains(ip) {
                return Ok(ip);
            }
        }
    }
    Ok(reached)
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, or either
/// with a port (`1.2.3.4:5678`, `[2001:db8::1]:5678`).
fn hop_addr(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let is_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    let (ip, port) = s.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// `X-Forwarded-Proto`: its first entry (the scheme the client used with the first
/// proxy), `http` or `https`. `None` without the header.
fn proto(headers: &HeaderMap) -> Result<Option<bool>, ()> {
    let Some(v) = headers.get(X_FORWARDED_PROTO) else {
        return Ok(None);
    };
    let first = v.to_str().map_err(|_| ())?.split(',').next().unwrap_or("");
    match first.trim() {
        s if s.eq_ignore_ascii_case("https") => Ok(Some(true)),
        s if s.eq_ignore_ascii_case("http") => Ok(Some(false)),
        _ => Err(()),
    }
}

/// `X-Forwarded-Host`: its first entry, which must look like `host[:port]`.
fn forwarded_host(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let Some(v) = headers.get(X_FORWARDED_HOST) else {
        return Ok(None);
    };
    let first = v
        .to_str()
        .map_err(|_| ())?
        .split(',')
        .next()
        .unwrap_or("")
        .trim();
    let ok = !first.is_empty()
        && first.len() <= 255
        && first.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        });
    if ok {
        Ok(Some(first))
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client_of(peer: &str, list: &[&str], pairs: &[(&str, &str)]) -> Resolved {
        resolve(ip(peer), false, &headers(pairs), &trusted(list))
    }

    #[test]
    fn ranges_and_addresses_of_both_families_parse() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8, fd00::/8", "::1", "192.168.1.7"]);
        for yes in ["127.0.0.1", "10.200.3.4", "fd12::9", "::1", "192.168.1.7"] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["127.0.0.2", "11.0.0.1", "fe80::1", "192.168.1.8", "::2"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        // An IPv4 peer on a dual-stack socket.
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        // Host bits in a range are ignored, as every proxy configuration does.
        assert!(trusted(&["10.1.2.3/8"]).contains(ip("10.9.9.9")));
        assert!(trusted(&[]).is_empty());
    }

    #[test]
    fn bad_entries_are_one_line_naming_the_setting() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "localhost",
            "10.0.0",
            "",
            "1.2.3.4/x",
        ] {
            let e = TrustedProxies::parse(&[bad]).unwrap_err().to_string();
            assert!(e.starts_with("trusted_proxies: "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(TrustedProxies::parse(&["10.0.0.0/8,"]).is_err());
    }

    #[test]
    fn an_untrusted_peer_cannot_say_who_it_is() {
        let r = client_of(
            "203.0.113.9",
            &["127.0.0.1"],
            &[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "hub.example.org"),
                ("host", "hub.lan:8080"),
            ],
        );
        assert_eq!(
            r.client,
            Client {
                addr: Some(ip("203.0.113.9")),
                https: false,
                host: Some("hub.lan:8080".into()),
                via_proxy: false,
            }
        );
        assert_eq!(r.malformed, None);
        // No proxies configured: the same.
        let r = client_of("127.0.0.1", &[], &[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(r.client.addr, Some(ip("127.0.0.1")));
    }

    #[test]
    fn the_walk_takes_the_first_untrusted_hop_from_the_right() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        // The client's own claim (left) is never read.
        let r = client_of(
            "127.0.0.1",
            &proxies,
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")],
        );
        assert_eq!(r.client.addr, Some(ip("198.51.100.7")));
        assert!(r.client.via_proxy);
        // Several header lines are one list, in order.
        let r = client_of(
            "127.0.0.1",
            &proxies,
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "2001:db8::7, 10.1.1.1"),
            ],
        );
        assert_eq!(r.client.addr, Some(ip("2001:db8::7")));
        // Ports and brackets.
        for (xff, want) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            let r = client_of("127.0.0.1", &proxies, &[("x-forwarded-for", xff)]);
            assert_eq!(r.client.addr, Some(ip(want)), "{xff}");
        }
        // The proxy's own request (no header), or every hop a proxy: the leftmost.
        assert_eq!(
            client_of("127.0.0.1", &proxies, &[]).client.addr,
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client_of(
                "127.0.0.1",
                &proxies,
                &[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]
            )
            .client
            .addr,
            Some(ip("10.0.0.9"))
        );
    }

    #[test]
    fn garbage_left_of_the_client_is_not_read_garbage_before_it_is_counted() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        let r = client_of(
            "127.0.0.1",
            &proxies,
            &[("x-forwarded-for", "unknown, nonsense, 198.51.100.7")],
        );
        assert_eq!(
            (r.client.addr, r.malformed),
            (Some(ip("198.51.100.7")), None)
        );
        for bad in [
            "198.51.100.7, unknown",
            "198.51.100.7,,10.0.0.1",
            "",
            "198.51.100.7:99999999",
            "[::1",
            "fe80::1%eth0",
            "198.51.100.7 10.0.0.1",
        ] {
            let r = client_of("127.0.0.1", &proxies, &[("x-forwarded-for", bad)]);
            assert_eq!(
                (r.client.addr, r.malformed),
                (Some(ip("127.0.0.1")), Some(Malformed::For)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scheme_and_host_come_from_a_trusted_proxy_only() {
        let p = ["127.0.0.1"];
        let r = client_of(
            "127.0.0.1",
            &p,
            &[
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-proto", "HTTPS"),
                ("x-forwarded-host", "hub.example.org"),
            ],
        );
        assert!(r.client.https);
        assert_eq!(r.client.host.as_deref(), Some("hub.example.org"));
        // Chained proxies: the first entry is the client's own scheme and host.
        let r = client_of(
            "127.0.0.1",
            &p,
            &[
                ("x-forwarded-proto", "https, http"),
                ("x-forwarded-host", "hub.example.org, inner:8080"),
            ],
        );
        assert!(r.client.https);
        assert_eq!(r.client.host.as_deref(), Some("hub.example.org"));
        // Plain HTTP to the proxy, over the hub's own TLS: the client's scheme wins.
        let r = resolve(
            ip("127.0.0.1"),
            true,
            &headers(&[("x-forwarded-proto", "http")]),
            &trusted(&p),
        );
        assert!(!r.client.https);
        // No header: the hub's own TLS decides.
        let r = resolve(ip("127.0.0.1"), true, &headers(&[]), &trusted(&p));
        assert!(r.client.https);
        // Malformed: ignored, counted, the rest still read.
        let r = client_of(
            "127.0.0.1",
            &p,
            &[
                ("host", "hub.lan"),
                ("x-forwarded-proto", "gopher"),
                ("x-forwarded-host", "evil.example/path"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        );
        assert_eq!(
            (r.client.https, r.client.host.as_deref(), r.client.addr),
            (false, Some("hub.lan"), Some(ip("198.51.100.7")))
        );
        assert_eq!(r.malformed, Some(Malformed::Proto));
    }

    /// Random header bytes never panic, and from an untrusted peer never matter.
    #[test]
    fn random_header_bytes_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"0123456789abcdef:.,[] %\t\xff\x80unknown;=\"";
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8", "::1"]);
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let Ok(v) = axum::http::HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            let mut h = HeaderMap::new();
            for name in [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST] {
                h.insert(name, v.clone());
            }
            let from_proxy = resolve(ip("127.0.0.1"), false, &h, &proxies);
            assert!(from_proxy.client.addr.is_some());
            let direct = resolve(ip("203.0.113.9"), false, &h, &proxies);
            assert_eq!(direct.client.addr, Some(ip("203.0.113.9")));
            assert!(!direct.client.https && direct.malformed.is_none());
        }
    }
}
