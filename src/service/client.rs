//! Who the client is: the TCP peer, or, when the peer is a trusted proxy, the address the
//! proxy reports in a header (`X-Real-IP`, `X-Forwarded-For`).
//!
//! A header is believed only from a trusted peer (loopback by default): from anyone else
//! it is the client's own claim, and a scanner would pick a new address per request to
//! escape the failure limit. The header is read as a list (the values of every line of it,
//! split at commas, as `X-Forwarded-For` is built: each proxy appends the address it
//! received the request from), and the client is its right-most address that is not a
//! trusted proxy: everything left of that was written by the client itself. When every
//! address is trusted, the left-most one is the client. An entry that is not an address
//! ends the walk: the client is then the trusted hop that reported it.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::text::Trim;

/// `addr`, or the IPv4 address an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`) carries,
/// as a dual-stack listener reports IPv4 peers.
///
/// ```
/// use gobuildkey::service::client::normalize;
///
/// assert_eq!(normalize("::ffff:192.0.2.7".parse()?), "192.0.2.7".parse::<std::net::IpAddr>()?);
/// assert_eq!(normalize("2001:db8::1".parse()?), "2001:db8::1".parse::<std::net::IpAddr>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn normalize(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// How the client's address is found (see the [module](self) documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    header: Option<String>,
    trusted: Vec<IpNet>,
}

impl ClientAddress {
    /// The proxies trusted when none are named: loopback (`127.0.0.0/8`, `::1/128`).
    #[must_use]
    pub fn loopback() -> Vec<IpNet> {
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect()
    }

    /// The client's address is the peer's, or `header`'s when the peer is in `trusted`.
    /// A network of IPv4-mapped IPv6 addresses (`::ffff:10.0.0.0/104`) is taken as the
    /// IPv4 network it maps, as the addresses are.
    #[must_use]
    pub fn new(header: Option<&str>, trusted: Vec<IpNet>) -> Self {
        let trusted = trusted
            .into_iter()
            .map(|net| match net {
                IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
                    .addr()
                    .to_ipv4_mapped()
                    .and_then(|v4| IpNet::new(v4.into(), v6.prefix_len() - 96).ok())
                    .unwrap_or(net),
                _ => net,
            })
            .collect();
        Self {
            header: header.map(str::to_ascii_lowercase),
            trusted,
        }
    }

    /// The header read (lowercase), if any.
    #[must_use]
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&addr))
    }

    /// The client of a request from `peer` whose header (named in [`new`](Self::new))
    /// has `values`, one per header line.
    ///
    /// ```
    /// use gobuildkey::service::client::ClientAddress;
    ///
    /// let clients = ClientAddress::new(Some("X-Forwarded-For"), ClientAddress::loopback());
    /// let xff: &[&[u8]] = &[b"10.9.9.9, 203.0.113.5, 127.0.0.2"];
    /// // From the trusted proxy: the right-most address that is not a proxy.
    /// assert_eq!(clients.resolve("127.0.0.1".parse()?, xff), "203.0.113.5".parse::<std::net::IpAddr>()?);
    /// // From anyone else: the header is the client's own claim, and ignored.
    /// assert_eq!(clients.resolve("198.51.100.1".parse()?, xff), "198.51.100.1".parse::<std::net::IpAddr>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn resolve(&self, peer: IpAddr, values: &[&[u8]]) -> IpAddr {
        let peer = normalize(peer);
        if self.header.is_none() || !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = values
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','));
        for entry in entries {
            // Each entry trimmed as a header value is (spaces and tabs), by the one rule.
            let Some(addr) = std::str::from_utf8(Trim::Header.apply(entry))
                .ok()
                .and_then(parse_entry)
                .map(normalize)
            else {
                return client;
            };
            client = addr;
            if !self.is_trusted(addr) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write them: `192.0.2.7`, `2001:db8::1`, or with a port
/// (`192.0.2.7:51234`, `[2001:db8::1]:51234`) or brackets (`[2001:db8::1]`).
fn parse_entry(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn right_most_untrusted_address_of_every_line() {
        let trusted = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let clients = ClientAddress::new(Some("x-forwarded-for"), trusted);
        let local = ip("127.0.0.1");
        let cases: [(&[&[u8]], &str); 12] = [
            // With ports or brackets, as some proxies write them.
            (&[b"6.6.6.6, 203.0.113.5:51234"], "203.0.113.5"),
            (&[b"6.6.6.6, [2001:db8::5]:51234, 10.1.1.1"], "2001:db8::5"),
            (&[b"[2001:db8::6]"], "2001:db8::6"),
            (&[], "127.0.0.1"),
            (&[b"203.0.113.5"], "203.0.113.5"),
            (&[b"6.6.6.6, 203.0.113.5"], "203.0.113.5"),
            (&[b"6.6.6.6, 203.0.113.5, 10.1.1.1"], "203.0.113.5"),
            // Two header lines are one list, in order.
            (&[b"6.6.6.6", b"203.0.113.5,10.1.1.1"], "203.0.113.5"),
            // All trusted: the left-most.
            (&[b"10.2.2.2, 10.1.1.1"], "10.2.2.2"),
            // Not an address: the trusted hop that reported it.
            (&[b"6.6.6.6, garbage, 10.1.1.1"], "10.1.1.1"),
            (&[b"garbage"], "127.0.0.1"),
            (&[b" ::ffff:203.0.113.9\t"], "203.0.113.9"),
        ];
        for (values, want) in cases {
            assert_eq!(clients.resolve(local, values), ip(want), "{values:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_or_no_header_is_the_client() {
        let xff: &[&[u8]] = &[b"203.0.113.5"];
        let clients = ClientAddress::new(Some("X-Real-IP"), ClientAddress::loopback());
        assert_eq!(clients.resolve(ip("198.51.100.1"), xff), ip("198.51.100.1"));
        assert_eq!(clients.resolve(ip("::1"), xff), ip("203.0.113.5"));
        // A dual-stack listener's view of an IPv4 loopback peer is trusted as loopback.
        assert_eq!(
            clients.resolve(ip("::ffff:127.0.0.1"), xff),
            ip("203.0.113.5")
        );
        // A trusted network written as IPv4-mapped IPv6 matches the IPv4 peers it maps.
        let mapped = ClientAddress::new(
            Some("X-Real-IP"),
            vec!["::ffff:10.0.0.0/104".parse().unwrap()],
        );
        assert_eq!(mapped.resolve(ip("10.1.2.3"), xff), ip("203.0.113.5"));
        assert_eq!(
            mapped.resolve(ip("::ffff:10.1.2.3"), xff),
            ip("203.0.113.5")
        );
        let no_header = ClientAddress::new(None, ClientAddress::loopback());
        assert_eq!(no_header.resolve(ip("127.0.0.1"), xff), ip("127.0.0.1"));
        assert_eq!(
            no_header.resolve(ip("::ffff:192.0.2.1"), xff),
            ip("192.0.2.1")
        );
    }
}
