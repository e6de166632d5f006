//! Client addresses: networks for `TRUSTED_PROXIES`, and which address a request came from.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address or a network (`10.0.0.0/8`, `::1`), for `TRUSTED_PROXIES`.
pub use ipnet::IpNet;

/// Reads an address or a network: a bare address is a network of one, and IPv4-mapped IPv6
/// (`::ffff:10.0.0.1`) is read as the IPv4 it maps, as [`client_ip`] compares addresses.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let (address, prefix) = match s.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let address = canonical(address.parse::<IpAddr>().ok()?);
    let max = if address.is_ipv4() { 32 } else { 128 };
    IpNet::new(address, prefix.unwrap_or(max)).ok()
}

/// An https URL, or an http one on a loopback address (`localhost`, 127.0.0.0/8, `::1`):
/// what an OpenID provider's issuer and endpoints may be.
pub fn secure_or_loopback(url: &url::Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(host))) => host.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

/// An address on the public internet: not loopback, private (RFC 1918, unique local),
/// link-local, shared (CGNAT), unspecified, broadcast, multicast or documentation. What a
/// webhook may be delivered to unless private receivers are allowed.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || v6.to_ipv4().is_some())
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) compare as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The socket's peer, unless that peer is a trusted proxy: then the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy. Addresses a client wrote further left
/// are never believed, so a client cannot pick its own address.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&canonical(ip)));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in forwarded.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec![parse_net("10.0.0.0/8").unwrap()];
        let h = headers("6.6.6.6, 1.2.3.4");
        // Straight from the client: the header is the client's own claim, ignored.
        assert_eq!(client_ip(ip("1.2.3.4"), &h, &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("8.8.8.8"), &h, &trusted), ip("8.8.8.8"));
        // Through the proxy: the right-most untrusted hop, not the spoofable left one.
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("1.2.3.4"));
        let chain = headers("6.6.6.6, 1.2.3.4, 10.0.0.7");
        assert_eq!(client_ip(ip("10.0.0.2"), &chain, &trusted), ip("1.2.3.4"));
        // Nothing trusted: the peer.
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
        // A proxy that sent no header.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn public_addresses_are_told_from_inward_ones() {
        for inward in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip(inward)), "{inward}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn plain_http_only_on_the_loopback() {
        let ok = |u: &str| secure_or_loopback(&url::Url::parse(u).unwrap());
        assert!(ok("https://accounts.example.com"));
        assert!(ok("http://127.0.0.1:9000/realm"));
        assert!(ok("http://[::1]:9000"));
        assert!(ok("http://localhost:9000"));
        assert!(!ok("http://accounts.example.com"));
        assert!(!ok("http://10.0.0.1"));
        assert!(!ok("http://127.0.0.1.example.com"));
        assert!(!ok("ftp://127.0.0.1"));
    }
}
