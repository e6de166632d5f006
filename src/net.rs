//! Client addresses: networks for `TRUSTED_PROXIES`, and which address a request came from.

use std::{net::IpAddr, str::FromStr};

use axum::http::HeaderMap;

/// An address or a network (`10.0.0.0/8`, `::1`), for `TRUSTED_PROXIES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
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

impl FromStr for IpNet {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address = canonical(address.parse::<IpAddr>().map_err(|_| ())?);
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| ())?,
            None => max,
        };
        (prefix <= max)
            .then_some(Self { address, prefix })
            .ok_or(())
    }
}

/// The socket's peer, unless that peer is a trusted proxy: then the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy. Addresses a client wrote further left
/// are never believed, so a client cannot pick its own address.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
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
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
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
}
