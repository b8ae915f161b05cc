//! Finding a frame's TCP or UDP flow: link layer, VLAN tags, IPv4 or IPv6
//! (with extension headers), then the ports.
//!
//! Every field is read through a bounds check. Two lengths matter: the
//! captured bytes, which a snaplen may cut short, and the frame's length on
//! the wire. A header the capture cut off makes the frame "other"; an IP
//! length field that points past the frame on the wire is an error.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ethernet.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// Raw IPv4 or IPv6, no link header.
pub const LINKTYPE_RAW: u16 = 101;
/// Linux cooked capture v1 (SLL).
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// Linux cooked capture v2 (SLL2).
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad and the older 0x9100 QinQ tag.
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;

/// A transport protocol that has ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A unidirectional flow: what a frame's IP and TCP or UDP headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// TCP or UDP.
    pub proto: Proto,
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dst_port: u16,
}

impl fmt::Display for Flow {
    /// `PROTO SRC_IP SRC_PORT DST_IP DST_PORT`; IPv6 addresses in RFC 5952
    /// form, which is what std prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        };
        write!(f, "{proto} {} {} {} {}", self.src, self.src_port, self.dst, self.dst_port)
    }
}

/// An IP header whose lengths cannot be right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DissectError {
    /// An IPv4 header length (IHL) under 5 words.
    Ipv4HeaderLength {
        /// The IHL field.
        ihl: u8,
    },
    /// An IPv4 total length shorter than the header, or past the frame.
    Ipv4TotalLength {
        /// The total length field.
        total_len: u16,
        /// The header length from the IHL.
        header_len: usize,
        /// Bytes from the IPv4 header to the end of the frame on the wire.
        room: usize,
    },
    /// An IPv6 header or payload that runs past the frame.
    Ipv6PayloadLength {
        /// The payload length field.
        payload_len: u16,
        /// Bytes after the 40-byte IPv6 header, to the end of the frame on
        /// the wire; negative where the header itself does not fit.
        room: isize,
    },
    /// An IPv6 extension header that runs past the payload.
    Ipv6Extension {
        /// Its protocol number.
        header: u8,
    },
}

impl fmt::Display for DissectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DissectError::Ipv4HeaderLength { ihl } => {
                write!(f, "IPv4 header length (IHL) {ihl} is under the minimum of 5")
            }
            DissectError::Ipv4TotalLength { total_len, header_len, room } => write!(
                f,
                "IPv4 total length {total_len} does not fit between its {header_len}-byte header \
                 and the {room} bytes left in the frame"
            ),
            DissectError::Ipv6PayloadLength { payload_len, room } if room < 0 => write!(
                f,
                "IPv6 header runs {} bytes past the end of the frame (payload length {payload_len})",
                -room
            ),
            DissectError::Ipv6PayloadLength { payload_len, room } => write!(
                f,
                "IPv6 payload length {payload_len} points past the end of the frame ({room} bytes left)"
            ),
            DissectError::Ipv6Extension { header } => {
                write!(f, "IPv6 extension header {header} runs past the end of the payload")
            }
        }
    }
}

impl std::error::Error for DissectError {}

/// The flow of a frame of link type `link` whose captured bytes are `frame`
/// and whose length on the wire is `wire_len`, or `None` for a frame that is
/// not TCP or UDP over IP (or whose ports the capture cut off).
///
/// # Errors
/// An IP header whose lengths are impossible; see [`DissectError`].
pub fn flow_of(link: u16, frame: &[u8], wire_len: u32) -> Result<Option<Flow>, DissectError> {
    // The frame on the wire is never shorter than what was captured of it.
    let wire_len = (wire_len as usize).max(frame.len());
    let (ethertype, at) = match link {
        LINKTYPE_ETHERNET => (be16(frame, 12), 14),
        LINKTYPE_LINUX_SLL => (be16(frame, 14), 16),
        LINKTYPE_LINUX_SLL2 => (be16(frame, 0), 20),
        LINKTYPE_RAW => match frame.first().map(|b| b >> 4) {
            Some(4) => (Some(ETHERTYPE_IPV4), 0),
            Some(6) => (Some(ETHERTYPE_IPV6), 0),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let (Some(mut ethertype), mut at) = (ethertype, at) else {
        return Ok(None);
    };
    while ETHERTYPE_VLAN.contains(&ethertype) {
        let Some(inner) = be16(frame, at + 2) else {
            return Ok(None);
        };
        ethertype = inner;
        at += 4;
    }
    if at > wire_len {
        return Ok(None);
    }
    let (ip, room) = (frame.get(at..).unwrap_or_default(), wire_len - at);
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(ip, room),
        ETHERTYPE_IPV6 => ipv6(ip, room),
        _ => Ok(None),
    }
}

/// The flow of the IPv4 packet at the start of `ip`, with `room` bytes from
/// its start to the end of the frame on the wire.
fn ipv4(ip: &[u8], room: usize) -> Result<Option<Flow>, DissectError> {
    let Some(&first) = ip.first() else {
        return Ok(None);
    };
    if first >> 4 != 4 {
        return Ok(None);
    }
    let ihl = first & 0x0f;
    if ihl < 5 {
        return Err(DissectError::Ipv4HeaderLength { ihl });
    }
    let header_len = usize::from(ihl) * 4;
    let (Some(total_len), Some(frag), Some(&proto), Some(src), Some(dst)) =
        (be16(ip, 2), be16(ip, 6), ip.get(9), field::<4>(ip, 12), field::<4>(ip, 16))
    else {
        return if room < header_len {
            Err(DissectError::Ipv4TotalLength { total_len: be16(ip, 2).unwrap_or(0), header_len, room })
        } else {
            Ok(None)
        };
    };
    let total = usize::from(total_len);
    if total < header_len || total > room {
        return Err(DissectError::Ipv4TotalLength { total_len, header_len, room });
    }
    // A fragment other than the first carries no transport header.
    if frag & 0x1fff != 0 {
        return Ok(None);
    }
    let transport = ip.get(header_len..total.min(ip.len())).unwrap_or_default();
    Ok(ports(
        proto,
        transport,
        total - header_len,
        IpAddr::V4(Ipv4Addr::from(src)),
        IpAddr::V4(Ipv4Addr::from(dst)),
    ))
}

/// The flow of the IPv6 packet at the start of `ip`, with `room` bytes from
/// its start to the end of the frame on the wire. Hop-by-hop, routing,
/// destination options and fragment headers are skipped.
fn ipv6(ip: &[u8], room: usize) -> Result<Option<Flow>, DissectError> {
    if ip.first().map(|b| b >> 4) != Some(6) {
        return Ok(None);
    }
    let payload_len = be16(ip, 4);
    if room < 40 {
        return Err(DissectError::Ipv6PayloadLength {
            payload_len: payload_len.unwrap_or(0),
            room: room as isize - 40,
        });
    }
    let (Some(payload_len), Some(&next), Some(src), Some(dst)) =
        (payload_len, ip.get(6), field::<16>(ip, 8), field::<16>(ip, 24))
    else {
        return Ok(None);
    };
    let end = 40 + usize::from(payload_len);
    if end > room {
        return Err(DissectError::Ipv6PayloadLength { payload_len, room: room as isize - 40 });
    }
    let (mut next, mut at) = (next, 40);
    loop {
        let header_len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                ip.get(at + 1).map(|&n| (usize::from(n) + 1) * 8)
            }
            IPPROTO_FRAGMENT => match be16(ip, at + 2) {
                // A fragment other than the first carries no transport header.
                Some(offset) if offset >> 3 != 0 => return Ok(None),
                Some(_) => Some(8),
                None => None,
            },
            _ => break,
        };
        let (Some(header_len), Some(&after)) = (header_len, ip.get(at)) else {
            // The capture ends inside the header: is the frame that short too?
            return if at + 8 > end { Err(DissectError::Ipv6Extension { header: next }) } else { Ok(None) };
        };
        if at + header_len > end {
            return Err(DissectError::Ipv6Extension { header: next });
        }
        (next, at) = (after, at + header_len);
    }
    let transport = ip.get(at..end.min(ip.len())).unwrap_or_default();
    Ok(ports(next, transport, end - at, IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst))))
}

/// The flow of a TCP or UDP header at the start of `transport`, of which
/// `wire` bytes were on the wire, or `None` for another protocol or where
/// the ports are missing.
fn ports(proto: u8, transport: &[u8], wire: usize, src: IpAddr, dst: IpAddr) -> Option<Flow> {
    let proto = match proto {
        IPPROTO_TCP => Proto::Tcp,
        IPPROTO_UDP => Proto::Udp,
        _ => return None,
    };
    if wire < 4 {
        return None;
    }
    Some(Flow { proto, src, src_port: be16(transport, 0)?, dst, dst_port: be16(transport, 2)? })
}

/// `N` bytes of `b` from `at`, or `None` where `b` is too short.
fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// A big-endian `u16` at `at`, or `None` where `b` is too short.
fn be16(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_be_bytes)
}
