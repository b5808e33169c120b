//! Which IP addresses are not on the public internet, so that a webhook may
//! not be sent to them by default (a tenant must not make the daemon call
//! services on its own host or network, or a cloud's metadata server).
//!
//! std's `IpAddr::is_global` is unstable, and no crate in the tree
//! classifies addresses, so the special-purpose blocks of the IANA registries
//! that matter here are listed below, using std's stable predicates where
//! they exist. Addresses that embed an IPv4 address (IPv4-mapped and
//! -compatible, NAT64, 6to4) are judged by the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of non-public address `ip` is, or `None` if it is public.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_unspecified() || a == 0 => "an unspecified (\"this network\")",
        _ if ip.is_loopback() => "a loopback",
        _ if ip.is_private() => "a private",
        _ if ip.is_link_local() => "a link-local (cloud metadata)",
        // 100.64.0.0/10, carrier-grade NAT.
        _ if a == 100 && (b & 0xc0) == 64 => "a shared (carrier-grade NAT)",
        _ if ip.is_multicast() => "a multicast",
        _ if ip.is_broadcast() || a >= 240 => "a reserved",
        _ if ip.is_documentation() => "a documentation",
        // 198.18.0.0/15, benchmarking; 192.0.0.0/24, IETF protocol assignments.
        _ if a == 198 && (b & 0xfe) == 18 => "a benchmarking",
        _ if a == 192 && b == 0 && c == 0 => "a protocol-assignment",
        // 192.88.99.0/24, the deprecated 6to4 relay anycast block.
        _ if a == 192 && b == 88 && c == 99 => "a 6to4-relay",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return non_public_v4(v4);
    }
    let s = ip.segments();
    Some(match () {
        _ if ip.is_unspecified() => "an unspecified",
        _ if ip.is_loopback() => "a loopback",
        _ if ip.is_unique_local() => "a unique-local",
        _ if ip.is_unicast_link_local() => "a link-local",
        // fec0::/10, the deprecated site-local block.
        _ if (s[0] & 0xffc0) == 0xfec0 => "a site-local",
        _ if ip.is_multicast() => "a multicast",
        // 2001:db8::/32.
        _ if s[0] == 0x2001 && s[1] == 0x0db8 => "a documentation",
        // 100::/64, discard-only; 64:ff9b:1::/48, local-use NAT64.
        _ if s[0] == 0x0100 && s[1..4] == [0, 0, 0] => "a discard-only",
        _ if s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1 => "a local NAT64",
        // 2001::/32, Teredo: tunnels to an IPv4 host through a relay.
        _ if s[0] == 0x2001 && s[1] == 0 => "a Teredo",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // IPv4-translated (`::ffff:0:a.b.c.d`, SIIT).
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        non_public(s.parse().unwrap())
    }

    #[test]
    fn refuses_every_non_public_block() {
        for (ip, what) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "reserved"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.7", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.170", "protocol-assignment"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fd00::1", "unique-local"),
            ("fc00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::1", "local NAT64"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::192.168.0.1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("::ffff:0:127.0.0.1", "loopback"),
            ("::ffff:0:10.1.2.3", "private"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("192.88.99.1", "6to4-relay"),
        ] {
            let got = kind(ip);
            assert!(got.is_some_and(|k| k.contains(what)), "{ip}: {got:?}, wanted {what}");
        }
    }

    #[test]
    fn lets_public_addresses_through() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }
}
