//! VXLAN encapsulation (RFC 7348) in place: the outer headers go into a
//! slice's headroom with `expand_front`, in front of the frame, which does
//! not move.

use std::error::Error;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::str::FromStr;

use refbuf::{Pool, Slice};

use super::capture::Capture;
use super::dissect::{Flow, LINKTYPE_ETHERNET, flow_of};
use super::write::{PcapWriter, replace_file};

/// Outer Ethernet (14), IPv4 (20), UDP (8) and VXLAN (8) headers: the
/// headroom each frame is read into a slice with.
pub const RESERVE: usize = 50;
/// The IANA-assigned VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;
/// Outer destination MAC: a locally administered address.
pub const OUTER_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Outer source MAC: a locally administered address.
pub const OUTER_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The largest VNI: 24 bits.
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// Everything outer that is the same for every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// Outer IPv4 source.
    pub src: Ipv4Addr,
    /// Outer IPv4 destination.
    pub dst: Ipv4Addr,
    /// The VXLAN network identifier, at most [`MAX_VNI`].
    pub vni: u32,
}

/// Why a frame cannot be encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// The outer IPv4 total length would pass 65535 bytes.
    TooLarge {
        /// The inner frame's length.
        len: usize,
    },
    /// The slice has less than [`RESERVE`] bytes of headroom.
    NoHeadroom {
        /// The headroom it has.
        headroom: usize,
    },
    /// The VNI does not fit in 24 bits.
    BadVni(u32),
}

impl fmt::Display for EncapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncapError::TooLarge { len } => {
                write!(
                    f,
                    "a frame of {len} bytes is too large for an IPv4 VXLAN packet (at most {})",
                    MAX_INNER
                )
            }
            EncapError::NoHeadroom { headroom } => {
                write!(f, "the frame has {headroom} bytes of headroom, {RESERVE} are needed")
            }
            EncapError::BadVni(vni) => write!(f, "VNI {vni} does not fit in 24 bits"),
        }
    }
}

impl std::error::Error for EncapError {}

/// What to do with a frame too large for one outer IPv4 packet (over
/// 65,499 bytes; a loopback capture holds frames of up to 65,549).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Oversize {
    /// Leave it out of the output and go on, as tcprewrite does with a
    /// packet over its MTU.
    #[default]
    Skip,
    /// Stop with an error naming the frame.
    Fail,
}

impl FromStr for Oversize {
    type Err = String;

    fn from_str(s: &str) -> Result<Oversize, String> {
        match s {
            "skip" => Ok(Oversize::Skip),
            "fail" => Ok(Oversize::Fail),
            _ => Err(format!("--oversize {s}: expected skip or fail")),
        }
    }
}

/// A frame left out of the output because it is too large for VXLAN over
/// IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its number in the capture, from 1.
    pub frame: u64,
    /// Its captured length.
    pub len: usize,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped frame {}: {}", self.frame, EncapError::TooLarge { len: self.len })
    }
}

/// What an encapsulation did with the frames of a capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encapsulated {
    /// Frames read.
    pub frames: u64,
    /// Frames written, encapsulated.
    pub written: u64,
    /// Frames skipped as too large (under [`Oversize::Skip`]).
    pub skipped: u64,
}

/// Encapsulates every frame of the capture file `input` into a classic pcap
/// at `output`, as [`encapsulate_capture`] does, all or nothing: the output
/// is written to a temporary file next to `output` and renamed over it only
/// once every frame is written, so on any error no partial file is left and
/// an earlier `output` is untouched.
///
/// # Errors
/// Those of [`encapsulate_capture`], and failing to open `input` or to
/// create, write or rename the output.
pub fn encapsulate_file(
    pool: &Pool,
    input: &Path,
    output: &Path,
    tunnel: &Tunnel,
    oversize: Oversize,
    on_skip: impl FnMut(Skipped),
) -> Result<Encapsulated, Box<dyn Error>> {
    let src = File::open(input)?;
    replace_file(output, |out| {
        encapsulate_capture(pool, src, out, tunnel, oversize, on_skip).map(|(done, _)| done)
    })
}

/// Encapsulates every frame of the capture `src` into a classic pcap written
/// to `out`, with the original timestamps; returns what it did and `out`.
///
/// Each frame is read once, from the reader's buf into a slice with exactly
/// [`RESERVE`] bytes of headroom, and not copied again: the outer headers
/// are written into the headroom, and the slice goes to a vectored write.
///
/// A frame too large for one outer IPv4 packet is skipped, and passed to
/// `on_skip`, or is an error, as `oversize` says.
///
/// # Errors
/// A bad capture, a frame that is not Ethernet, has a bad IP header or (under
/// [`Oversize::Fail`]) is too large, or a write error; each message names the
/// frame.
pub fn encapsulate_capture<R: Read, W: Write>(
    pool: &Pool,
    src: R,
    out: W,
    tunnel: &Tunnel,
    oversize: Oversize,
    mut on_skip: impl FnMut(Skipped),
) -> Result<(Encapsulated, W), Box<dyn Error>> {
    let mut capture = Capture::open(pool, src)?;
    let mut alloc = pool.allocator(RESERVE);
    let mut writer = PcapWriter::new(out)?;
    let mut done = Encapsulated::default();
    while let Some(packet) = capture.next_packet()? {
        done.frames += 1;
        let frames = done.frames;
        if packet.link != LINKTYPE_ETHERNET {
            return Err(format!(
                "frame {frames} has link type {}; VXLAN carries Ethernet frames",
                packet.link
            )
            .into());
        }
        // Checked before the copy, so a skipped frame costs no allocation.
        let len = packet.data.len();
        if len > MAX_INNER {
            match oversize {
                Oversize::Fail => {
                    return Err(format!("frame {frames}: {}", EncapError::TooLarge { len }).into());
                }
                Oversize::Skip => {
                    done.skipped += 1;
                    on_skip(Skipped { frame: frames, len });
                    continue;
                }
            }
        }
        let flow = flow_of(packet.link, &packet.data, packet.wire_len)
            .map_err(|e| format!("frame {frames}: {e}"))?;
        // The read: from the reader's buf into a slice with exactly RESERVE
        // bytes of headroom. Nothing copies the frame after this.
        let mut frame = alloc.try_copy_from_slice(&packet.data)?;
        drop(packet.data);
        let src_port = source_port(&frame, flow);
        encapsulate(&mut frame, tunnel, src_port).map_err(|e| format!("frame {frames}: {e}"))?;
        writer.write(packet.ts, packet.wire_len.saturating_add(RESERVE as u32), frame)?;
        done.written += 1;
    }
    Ok((done, writer.finish()?))
}

/// The largest inner frame: what the IPv4 total length leaves after the
/// outer IPv4, UDP and VXLAN headers.
pub const MAX_INNER: usize = u16::MAX as usize - 36;

/// The outer UDP source port for an inner frame: a hash of its flow (or,
/// for a frame that is not TCP or UDP, of its Ethernet header), in the
/// dynamic range 49152-65535, as RFC 7348 section 5 suggests. Frames of one
/// flow get one port, so ECMP keeps them on one path.
pub fn source_port(frame: &[u8], flow: Option<Flow>) -> u16 {
    let mut hash = Fnv1a::new();
    match flow {
        Some(flow) => {
            hash.write(&[flow.proto as u8]);
            for addr in [flow.src, flow.dst] {
                match addr {
                    IpAddr::V4(a) => hash.write(&a.octets()),
                    IpAddr::V6(a) => hash.write(&a.octets()),
                }
            }
            hash.write(&flow.src_port.to_be_bytes());
            hash.write(&flow.dst_port.to_be_bytes());
        }
        None => hash.write(frame.get(..14).unwrap_or(frame)),
    }
    49152 + (hash.0 % 16384) as u16
}

/// Prepends the outer Ethernet, IPv4, UDP and VXLAN headers to `frame` in
/// its headroom, in place, with `src_port` as the outer UDP source port.
///
/// # Errors
/// Too little headroom, a frame too large for IPv4, or a VNI over 24 bits;
/// `frame` is unchanged then.
pub fn encapsulate(frame: &mut Slice, tunnel: &Tunnel, src_port: u16) -> Result<(), EncapError> {
    let len = frame.len();
    if tunnel.vni > MAX_VNI {
        return Err(EncapError::BadVni(tunnel.vni));
    }
    if len > MAX_INNER {
        return Err(EncapError::TooLarge { len });
    }
    if !frame.expand_front(RESERVE) {
        return Err(EncapError::NoHeadroom { headroom: frame.headroom() });
    }
    let Some((outer, _)) = frame.split_first_chunk_mut::<RESERVE>() else {
        return Err(EncapError::NoHeadroom { headroom: 0 });
    };
    let (eth, rest) = outer.split_at_mut(14);
    let (ip, rest) = rest.split_at_mut(20);
    let (udp, vxlan) = rest.split_at_mut(8);

    eth[0..6].copy_from_slice(&OUTER_DST_MAC);
    eth[6..12].copy_from_slice(&OUTER_SRC_MAC);
    eth[12..14].copy_from_slice(&0x0800u16.to_be_bytes());

    // `len <= MAX_INNER` keeps both lengths within 16 bits. The IPv4 header:
    // version 4, IHL 5, total length, DF, TTL 64, UDP, checksum, addresses.
    let udp_len = (len + 16) as u16;
    let total = (udp_len + 20).to_be_bytes();
    ip[..12].copy_from_slice(&[0x45, 0, total[0], total[1], 0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip[12..16].copy_from_slice(&tunnel.src.octets());
    ip[16..20].copy_from_slice(&tunnel.dst.octets());
    let checksum = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());

    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);

    // Flags with I set, 24 reserved bits, the VNI, 8 reserved bits.
    vxlan.copy_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 0]);
    vxlan[4..7].copy_from_slice(&tunnel.vni.to_be_bytes()[1..]);
    Ok(())
}

/// The Internet checksum (RFC 1071) of an IPv4 header whose checksum field
/// is zero; over a header with its checksum filled in, it is zero.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 =
        header.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// 32-bit FNV-1a: small, fast and the same on every run, so the golden
/// files can name the ports.
struct Fnv1a(u32);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
}
