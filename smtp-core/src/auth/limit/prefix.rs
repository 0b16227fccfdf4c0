//! Client addresses counted by network prefix: one IPv6 host usually holds a whole /64.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The prefix lengths by which client addresses are counted, one per address family: every
/// address in one prefix is one client to the [`AuthLimiter`](super::AuthLimiter) (and to the
/// per-address connection cap). An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as a
/// dual-stack socket reports IPv4 clients) counts as the IPv4 address.
///
/// Default is /32 for IPv4 (each address) and /64 for IPv6 (the subnet a single host is
/// usually given, which it can fill with addresses of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrPrefixes {
    v4: u8,
    v6: u8,
}

impl AddrPrefixes {
    /// Counts IPv4 clients by their first `v4` bits (8 to 32) and IPv6 clients by their
    /// first `v6` bits (16 to 128). Shorter prefixes are refused: they would put whole
    /// providers behind one counter, which one guesser could then block.
    pub const fn new(v4: u8, v6: u8) -> Result<AddrPrefixes, InvalidPrefixLen> {
        if v4 < 8 || v4 > 32 {
            return Err(InvalidPrefixLen {
                ipv6: false,
                len: v4,
            });
        }
        if v6 < 16 || v6 > 128 {
            return Err(InvalidPrefixLen {
                ipv6: true,
                len: v6,
            });
        }
        Ok(AddrPrefixes { v4, v6 })
    }

    /// The IPv4 prefix length.
    pub const fn v4(self) -> u8 {
        self.v4
    }

    /// The IPv6 prefix length.
    pub const fn v6(self) -> u8 {
        self.v6
    }

    /// The prefix `ip` is counted by: `192.0.2.7/32`, `2001:db8:1:2::/64`.
    pub fn prefix_of(self, ip: IpAddr) -> IpPrefix {
        match ip {
            IpAddr::V4(v4) => IpPrefix::v4(v4, self.v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpPrefix::v4(v4, self.v4),
                None => IpPrefix::v6(v6, self.v6),
            },
        }
    }
}

impl Default for AddrPrefixes {
    /// /32 for IPv4, /64 for IPv6.
    fn default() -> AddrPrefixes {
        AddrPrefixes { v4: 32, v6: 64 }
    }
}

/// A prefix length [`AddrPrefixes::new`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidPrefixLen {
    ipv6: bool,
    len: u8,
}

impl fmt::Display for InvalidPrefixLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (family, range) = match self.ipv6 {
            false => ("IPv4", "8 to 32"),
            true => ("IPv6", "16 to 128"),
        };
        write!(
            f,
            "{family} prefix length /{} is not from {range}",
            self.len
        )
    }
}

impl std::error::Error for InvalidPrefixLen {}

/// An address with all but its first [`prefix_len`](Self::prefix_len) bits cleared: the key
/// a client is counted by (see [`AddrPrefixes::prefix_of`]). Shown as `192.0.2.7/32` or
/// `2001:db8:1:2::/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// The first `len` bits of `addr`; `None` if `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        match addr {
            IpAddr::V4(v4) if len <= 32 => Some(IpPrefix::v4(v4, len)),
            IpAddr::V6(v6) if len <= 128 => Some(IpPrefix::v6(v6, len)),
            _ => None,
        }
    }

    fn v4(addr: Ipv4Addr, len: u8) -> IpPrefix {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        IpPrefix {
            addr: Ipv4Addr::from(u32::from(addr) & mask).into(),
            len,
        }
    }

    fn v6(addr: Ipv6Addr, len: u8) -> IpPrefix {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        IpPrefix {
            addr: Ipv6Addr::from(u128::from(addr) & mask).into(),
            len,
        }
    }

    /// The first address of the prefix.
    pub fn addr(self) -> IpAddr {
        self.addr
    }

    /// How many leading bits of [`addr`](Self::addr) count.
    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// This prefix shortened to at most `v4` or `v6` bits, by its family.
    pub(crate) fn shortened(self, v4: u8, v6: u8) -> IpPrefix {
        match self.addr {
            IpAddr::V4(addr) => IpPrefix::v4(addr, self.len.min(v4)),
            IpAddr::V6(addr) => IpPrefix::v6(addr, self.len.min(v6)),
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_map_to_their_prefix() {
        let default = AddrPrefixes::default();
        let wide = AddrPrefixes::new(24, 48).unwrap();
        for (prefixes, addr, shown) in [
            (default, "192.0.2.7", "192.0.2.7/32"),
            (
                default,
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
                "2001:db8:1:2::/64",
            ),
            (default, "2001:db8:1:2::", "2001:db8:1:2::/64"),
            (default, "::ffff:192.0.2.7", "192.0.2.7/32"),
            (default, "::1", "::/64"),
            (wide, "192.0.2.7", "192.0.2.0/24"),
            (wide, "2001:db8:1:2::1", "2001:db8:1::/48"),
            (wide, "::ffff:192.0.2.7", "192.0.2.0/24"),
            (AddrPrefixes::new(8, 128).unwrap(), "10.1.2.3", "10.0.0.0/8"),
            (
                AddrPrefixes::new(8, 128).unwrap(),
                "2001:db8::9",
                "2001:db8::9/128",
            ),
        ] {
            assert_eq!(prefixes.prefix_of(ip(addr)).to_string(), shown, "{addr}");
        }
    }

    #[test]
    fn prefix_lengths_are_validated() {
        let default = AddrPrefixes::default();
        assert_eq!(AddrPrefixes::new(32, 64), Ok(default));
        assert_eq!((default.v4(), default.v6()), (32, 64));
        for (v4, v6, error) in [
            (33, 64, "IPv4 prefix length /33 is not from 8 to 32"),
            (7, 64, "IPv4 prefix length /7 is not from 8 to 32"),
            (0, 64, "IPv4 prefix length /0 is not from 8 to 32"),
            (32, 129, "IPv6 prefix length /129 is not from 16 to 128"),
            (32, 15, "IPv6 prefix length /15 is not from 16 to 128"),
        ] {
            assert_eq!(AddrPrefixes::new(v4, v6).unwrap_err().to_string(), error);
        }
    }

    #[test]
    fn prefixes_are_masked_and_shortened() {
        assert_eq!(IpPrefix::new(ip("192.0.2.7"), 33), None);
        assert_eq!(IpPrefix::new(ip("::1"), 129), None);
        let p = IpPrefix::new(ip("2001:db8:1:2::1"), 64).unwrap();
        assert_eq!((p.addr(), p.prefix_len()), (ip("2001:db8:1:2::"), 64));
        assert_eq!(p.shortened(24, 48).to_string(), "2001:db8:1::/48");
        assert_eq!(p.shortened(24, 96), p);
        let p = IpPrefix::new(ip("192.0.2.7"), 32).unwrap();
        assert_eq!(p.shortened(24, 48).to_string(), "192.0.2.0/24");
        assert_eq!(
            IpPrefix::new(ip("192.0.2.7"), 0).unwrap().to_string(),
            "0.0.0.0/0"
        );
    }
}
