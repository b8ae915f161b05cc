//! Reading pcap and pcapng captures through a refbuf `Reader`, zero copy.
//!
//! Every record header and block is one slice cut from the reader's
//! read-ahead buf and parsed in place; a packet's bytes are a slice of the
//! same buf. Lengths are checked before anything is read, so a lying length
//! field costs an error, not memory.

use std::fmt;
use std::io::{self, Read};

use refbuf::{Pool, Reader, Slice};

/// The largest captured length accepted for one frame: 256 KiB.
pub const MAX_CAPLEN: u32 = 256 * 1024;

/// The largest pcapng packet, interface or section block read whole: a
/// packet of `MAX_CAPLEN` bytes and 64 KiB of header and options.
const MAX_WHOLE_BLOCK: u32 = MAX_CAPLEN + 64 * 1024;

/// Blocks of other types are skipped in reads of at most this many bytes,
/// so their length bounds no allocation.
const SKIP_CHUNK: u32 = 64 * 1024;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;

/// A capture time, in seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds.
    pub secs: u64,
    /// Nanoseconds past `secs`, below 1e9.
    pub nanos: u32,
}

/// One captured frame.
#[derive(Debug)]
pub struct Packet {
    /// The link type of the interface it was captured on.
    pub link: u16,
    /// When it was captured; zero for a pcapng simple packet block.
    pub ts: Timestamp,
    /// Its length on the wire, which the captured bytes may fall short of.
    pub wire_len: u32,
    /// The captured bytes: a slice of the reader's buf, not a copy.
    pub data: Slice,
}

/// Why a capture cannot be read.
#[derive(Debug)]
pub enum CaptureError {
    /// Reading the file failed.
    Io(io::Error),
    /// The file starts with neither a pcap nor a pcapng magic number.
    BadMagic([u8; 4]),
    /// The file ends inside a header, record or block.
    Truncated {
        /// File offset of the header, record or block.
        offset: u64,
        /// What was being read, and how long it claimed to be.
        what: String,
    },
    /// A frame's captured length is over the snaplen or over [`MAX_CAPLEN`].
    CaplenTooLarge {
        /// File offset of the record or block.
        offset: u64,
        /// The captured length claimed.
        caplen: u32,
        /// The limit it breaks.
        limit: u32,
        /// Which limit that is.
        which: &'static str,
    },
    /// A pcapng block's total length is not a multiple of 4, too small for
    /// its block type, or larger than any block read whole may be.
    BadBlockLength {
        /// File offset of the block.
        offset: u64,
        /// The block type.
        block_type: u32,
        /// The total length claimed.
        len: u32,
    },
    /// Any other header field that cannot be right.
    Malformed {
        /// File offset of the header, record or block.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io(e) => write!(f, "read error: {e}"),
            CaptureError::BadMagic(m) => write!(
                f,
                "not a pcap or pcapng file: bad magic number {:02x}{:02x}{:02x}{:02x}",
                m[0], m[1], m[2], m[3]
            ),
            CaptureError::Truncated { offset, what } => {
                write!(f, "truncated file: {what} at byte {offset} runs past the end of the file")
            }
            CaptureError::CaplenTooLarge { offset, caplen, limit, which } => {
                write!(f, "record at byte {offset}: captured length {caplen} is over the {which} ({limit})")
            }
            CaptureError::BadBlockLength { offset, block_type, len } => write!(
                f,
                "pcapng block of type {block_type:#x} at byte {offset}: bad block length {len} \
                 (a multiple of 4, at least the block's fixed fields, at most {MAX_WHOLE_BLOCK} \
                 for a packet, interface or section block)"
            ),
            CaptureError::Malformed { offset, what } => {
                write!(f, "malformed capture at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for CaptureError {}

/// Byte order of a file or pcapng section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }
}

/// `N` bytes of `b` from `at`, or `None` where `b` is too short.
fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// An interface of a pcapng section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: u16,
    /// 0 means no limit.
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

#[derive(Debug)]
enum Format {
    Pcap { endian: Endian, nanos: bool, snaplen: u32, link: u16 },
    Pcapng { endian: Endian, interfaces: Vec<Interface> },
}

/// A capture being read: classic pcap (either byte order, microsecond or
/// nanosecond timestamps) or pcapng (section, interface, enhanced and simple
/// packet blocks; every other block type is skipped).
#[derive(Debug)]
pub struct Capture<R> {
    reader: Reader<R>,
    /// File offset of the next unread byte.
    pos: u64,
    format: Format,
}

impl<R: Read> Capture<R> {
    /// Reads the file header (or first section header) of `src`, reading
    /// through a `Reader` of `pool`.
    ///
    /// # Errors
    /// A bad magic number, a truncated header or a read error.
    pub fn open(pool: &Pool, src: R) -> Result<Capture<R>, CaptureError> {
        let mut capture = Capture {
            reader: pool.reader(src),
            pos: 0,
            format: Format::Pcapng { endian: Endian::Little, interfaces: Vec::new() },
        };
        let magic = capture.take(4, || "the file header".to_owned())?;
        let magic: [u8; 4] = field(&magic, 0).ok_or(CaptureError::BadMagic([0; 4]))?;
        let (endian, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (Endian::Little, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (Endian::Little, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (Endian::Big, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (Endian::Big, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                let len = capture.take(4, || "a section header block".to_owned())?;
                capture.read_section_header(0, field(&len, 0).unwrap_or_default())?;
                return Ok(capture);
            }
            other => return Err(CaptureError::BadMagic(other)),
        };
        let h = capture.take(20, || "the 24-byte pcap file header".to_owned())?;
        let (Some(major), Some(snaplen), Some(link)) = (field(&h, 0), field(&h, 12), field(&h, 16)) else {
            return Err(capture.malformed(0, "short pcap file header".to_owned()));
        };
        let major = endian.u16(major);
        if major != 2 {
            return Err(capture.malformed(0, format!("unsupported pcap version {major}")));
        }
        // The low 16 bits are the link type; the rest describe the FCS.
        let link = (endian.u32(link) & 0xffff) as u16;
        capture.format = Format::Pcap { endian, nanos, snaplen: endian.u32(snaplen), link };
        Ok(capture)
    }

    /// The next frame, or `None` at a clean end of file.
    ///
    /// # Errors
    /// Every inconsistency in the file, and read errors.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, CaptureError> {
        match self.format {
            Format::Pcap { endian, nanos, snaplen, link } => self.next_record(endian, nanos, snaplen, link),
            Format::Pcapng { .. } => self.next_packet_block(),
        }
    }

    /// The next classic pcap record.
    fn next_record(
        &mut self,
        endian: Endian,
        nanos: bool,
        snaplen: u32,
        link: u16,
    ) -> Result<Option<Packet>, CaptureError> {
        let offset = self.pos;
        let Some(h) = self.take_at_boundary(16, "a 16-byte record header")? else {
            return Ok(None);
        };
        let (Some(secs), Some(frac), Some(caplen), Some(wire_len)) =
            (field(&h, 0), field(&h, 4), field(&h, 8), field(&h, 12))
        else {
            return Err(self.malformed(offset, "short record header".to_owned()));
        };
        let caplen = endian.u32(caplen);
        check_caplen(offset, caplen, snaplen)?;
        let frac = u64::from(endian.u32(frac));
        let ns = if nanos { frac } else { frac * 1000 };
        let ts = Timestamp {
            secs: u64::from(endian.u32(secs)) + ns / 1_000_000_000,
            nanos: (ns % 1_000_000_000) as u32,
        };
        let data = self.take(caplen as usize, || format!("a record of {caplen} captured bytes"))?;
        Ok(Some(Packet { link, ts, wire_len: endian.u32(wire_len), data }))
    }

    /// The next enhanced or simple packet block, handling the section and
    /// interface blocks before it and skipping every other block.
    fn next_packet_block(&mut self) -> Result<Option<Packet>, CaptureError> {
        loop {
            let offset = self.pos;
            let Some(head) = self.take_at_boundary(8, "a pcapng block header")? else {
                return Ok(None);
            };
            let (Some(block_type), Some(len)) = (field(&head, 0), field(&head, 4)) else {
                return Err(self.malformed(offset, "short block header".to_owned()));
            };
            let Format::Pcapng { endian, .. } = self.format else {
                return Err(self.malformed(offset, "internal: not a pcapng file".to_owned()));
            };
            let block_type = endian.u32(block_type);
            if block_type == PCAPNG_SHB {
                self.read_section_header(offset, len)?;
                continue;
            }
            let len = endian.u32(len);
            let fixed = match block_type {
                PCAPNG_IDB => 20,
                PCAPNG_EPB => 32,
                PCAPNG_SPB => 16,
                _ => 12,
            };
            if len % 4 != 0 || len < fixed {
                return Err(CaptureError::BadBlockLength { offset, block_type, len });
            }
            match block_type {
                PCAPNG_IDB | PCAPNG_EPB | PCAPNG_SPB => {
                    if len > MAX_WHOLE_BLOCK {
                        return Err(CaptureError::BadBlockLength { offset, block_type, len });
                    }
                    let body = self.block_body(offset, block_type, len, endian)?;
                    match block_type {
                        PCAPNG_IDB => self.add_interface(offset, &body, endian)?,
                        PCAPNG_EPB => return self.enhanced_packet(offset, body, endian).map(Some),
                        _ => return self.simple_packet(offset, body, endian).map(Some),
                    }
                }
                _ => self.skip_block(offset, block_type, len, endian)?,
            }
        }
    }

    /// Reads a section header block at `offset` whose type and length
    /// (`len`, in the byte order still to be found) have been read, and
    /// starts a new section: its byte order, no interfaces yet.
    fn read_section_header(&mut self, offset: u64, len: [u8; 4]) -> Result<(), CaptureError> {
        let bom = self.take(4, || "a section header block".to_owned())?;
        let Some(bom) = field::<4>(&bom, 0) else {
            return Err(self.malformed(offset, "short section header".to_owned()));
        };
        let endian = match bom {
            [0x4d, 0x3c, 0x2b, 0x1a] => Endian::Little,
            [0x1a, 0x2b, 0x3c, 0x4d] => Endian::Big,
            other => {
                return Err(
                    self.malformed(offset, format!("bad byte-order magic {other:02x?} in a section header"))
                );
            }
        };
        let len = endian.u32(len);
        if len % 4 != 0 || !(28..=MAX_WHOLE_BLOCK).contains(&len) {
            return Err(CaptureError::BadBlockLength { offset, block_type: PCAPNG_SHB, len });
        }
        let rest = self.take(len as usize - 12, || format!("a section header block of {len} bytes"))?;
        let major = field(&rest, 0).map(|b| endian.u16(b));
        if major != Some(1) {
            return Err(self.malformed(offset, format!("unsupported pcapng version {major:?}")));
        }
        self.check_trailer(offset, &rest, len, endian)?;
        self.format = Format::Pcapng { endian, interfaces: Vec::new() };
        Ok(())
    }

    /// The body of a block whose 8-byte header at `offset` has been read:
    /// everything after it, with the trailing length checked.
    fn block_body(
        &mut self,
        offset: u64,
        block_type: u32,
        len: u32,
        endian: Endian,
    ) -> Result<Slice, CaptureError> {
        let body = self
            .take(len as usize - 8, || format!("a pcapng block of type {block_type:#x} and {len} bytes"))?;
        self.check_trailer(offset, &body, len, endian)?;
        Ok(body)
    }

    /// Skips a block whose 8-byte header at `offset` has been read, in
    /// reads of at most `SKIP_CHUNK` bytes, and checks its trailing length.
    fn skip_block(
        &mut self,
        offset: u64,
        block_type: u32,
        len: u32,
        endian: Endian,
    ) -> Result<(), CaptureError> {
        let what = || format!("a pcapng block of type {block_type:#x} and {len} bytes");
        let mut left = len - 12;
        while left > 0 {
            let n = left.min(SKIP_CHUNK);
            self.take(n as usize, what)?;
            left -= n;
        }
        let trailer = self.take(4, what)?;
        self.check_trailer(offset, &trailer, len, endian)
    }

    /// Checks that `body`, a block's bytes after its 8-byte header, ends with
    /// the block's total length again.
    fn check_trailer(&self, offset: u64, body: &[u8], len: u32, endian: Endian) -> Result<(), CaptureError> {
        let trailer = body.len().checked_sub(4).and_then(|at| field(body, at)).map(|b| endian.u32(b));
        if trailer != Some(len) {
            return Err(
                self.malformed(offset, format!("block length {len} at the start but {trailer:?} at the end"))
            );
        }
        Ok(())
    }

    /// Adds the interface described by an interface description block's body.
    fn add_interface(&mut self, offset: u64, body: &[u8], endian: Endian) -> Result<(), CaptureError> {
        let (Some(link), Some(snaplen)) = (field(body, 0), field(body, 4)) else {
            return Err(self.malformed(offset, "short interface description block".to_owned()));
        };
        let mut interface = Interface {
            link: endian.u16(link),
            snaplen: endian.u32(snaplen),
            units_per_sec: 1_000_000,
            offset_secs: 0,
        };
        // Options run from byte 8 to the trailing length.
        let options = body.get(8..body.len().saturating_sub(4)).unwrap_or_default();
        let mut at = 0;
        while let (Some(code), Some(olen)) = (field(options, at), field(options, at + 2)) {
            let (code, olen) = (endian.u16(code), usize::from(endian.u16(olen)));
            let Some(value) = options.get(at + 4..at + 4 + olen) else {
                return Err(self.malformed(
                    offset,
                    format!("interface option {code} of {olen} bytes runs past its block"),
                ));
            };
            match (code, value) {
                (0, _) => break,
                (9, &[resol]) => {
                    interface.units_per_sec = units_per_sec(resol).ok_or_else(|| {
                        self.malformed(offset, format!("unsupported if_tsresol {resol:#x}"))
                    })?;
                }
                (14, _) => {
                    let secs = field(value, 0).filter(|_| olen == 8).map(|b| endian.u64(b) as i64);
                    interface.offset_secs =
                        secs.ok_or_else(|| self.malformed(offset, format!("if_tsoffset of {olen} bytes")))?;
                }
                (9, _) => return Err(self.malformed(offset, format!("if_tsresol of {olen} bytes"))),
                _ => {}
            }
            at += 4 + olen.next_multiple_of(4);
        }
        let Format::Pcapng { interfaces, .. } = &mut self.format else {
            return Err(self.malformed(offset, "internal: not a pcapng file".to_owned()));
        };
        interfaces.push(interface);
        Ok(())
    }

    /// The interface numbered `id` in the current section.
    fn interface(&self, offset: u64, id: u32) -> Result<Interface, CaptureError> {
        let Format::Pcapng { interfaces, .. } = &self.format else {
            return Err(self.malformed(offset, "internal: not a pcapng file".to_owned()));
        };
        interfaces.get(id as usize).copied().ok_or_else(|| {
            self.malformed(
                offset,
                format!(
                    "packet on interface {id}, but the section describes {} interfaces",
                    interfaces.len()
                ),
            )
        })
    }

    /// The packet in an enhanced packet block's body.
    fn enhanced_packet(
        &mut self,
        offset: u64,
        mut body: Slice,
        endian: Endian,
    ) -> Result<Packet, CaptureError> {
        let (Some(id), Some(hi), Some(lo), Some(caplen), Some(wire_len)) =
            (field(&body, 0), field(&body, 4), field(&body, 8), field(&body, 12), field(&body, 16))
        else {
            return Err(self.malformed(offset, "short enhanced packet block".to_owned()));
        };
        let interface = self.interface(offset, endian.u32(id))?;
        let caplen = endian.u32(caplen);
        check_caplen(offset, caplen, interface.snaplen)?;
        // The data, padded to 4 bytes, and the trailing length must fit.
        if caplen.next_multiple_of(4) as usize + 24 > body.len() {
            return Err(self.malformed(offset, format!("captured length {caplen} runs past its block")));
        }
        let units = u64::from(endian.u32(hi)) << 32 | u64::from(endian.u32(lo));
        let ts = timestamp(units, interface)
            .ok_or_else(|| self.malformed(offset, "timestamp out of range".to_owned()))?;
        body.truncate_front(20);
        body.truncate(caplen as usize);
        Ok(Packet { link: interface.link, ts, wire_len: endian.u32(wire_len), data: body })
    }

    /// The packet in a simple packet block's body, on interface 0.
    fn simple_packet(
        &mut self,
        offset: u64,
        mut body: Slice,
        endian: Endian,
    ) -> Result<Packet, CaptureError> {
        let Some(wire_len) = field(&body, 0).map(|b| endian.u32(b)) else {
            return Err(self.malformed(offset, "short simple packet block".to_owned()));
        };
        let interface = self.interface(offset, 0)?;
        let room = (body.len() - 8) as u32;
        let caplen = match interface.snaplen {
            0 => wire_len.min(room),
            snaplen => wire_len.min(snaplen),
        };
        check_caplen(offset, caplen, interface.snaplen)?;
        if caplen > room {
            return Err(self.malformed(offset, format!("captured length {caplen} runs past its block")));
        }
        body.truncate_front(4);
        body.truncate(caplen as usize);
        Ok(Packet { link: interface.link, ts: Timestamp::default(), wire_len, data: body })
    }

    /// The next `n` bytes as a slice; `what` describes them for the error
    /// raised where the file ends first.
    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<Slice, CaptureError> {
        let offset = self.pos;
        match self.reader.read(n) {
            Ok(s) => {
                self.pos += n as u64;
                Ok(s)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(CaptureError::Truncated { offset, what: what() })
            }
            Err(e) => Err(CaptureError::Io(e)),
        }
    }

    /// Like `take`, but `None` where the file ends cleanly before the first
    /// of the `n` bytes.
    fn take_at_boundary(&mut self, n: usize, what: &str) -> Result<Option<Slice>, CaptureError> {
        match self.take(n, || what.to_owned()) {
            Err(CaptureError::Truncated { .. }) if self.reader.buffered() == 0 => Ok(None),
            other => other.map(Some),
        }
    }

    fn malformed(&self, offset: u64, what: String) -> CaptureError {
        CaptureError::Malformed { offset, what }
    }
}

/// Checks a captured length against the snaplen (0: none) and `MAX_CAPLEN`
/// before any of it is read.
fn check_caplen(offset: u64, caplen: u32, snaplen: u32) -> Result<(), CaptureError> {
    if snaplen != 0 && caplen > snaplen {
        return Err(CaptureError::CaplenTooLarge { offset, caplen, limit: snaplen, which: "snaplen" });
    }
    if caplen > MAX_CAPLEN {
        return Err(CaptureError::CaplenTooLarge {
            offset,
            caplen,
            limit: MAX_CAPLEN,
            which: "256 KiB limit",
        });
    }
    Ok(())
}

/// Timestamp units per second for an `if_tsresol` value: a power of 10, or
/// of 2 where the top bit is set.
fn units_per_sec(resol: u8) -> Option<u64> {
    let exp = u32::from(resol & 0x7f);
    if resol & 0x80 == 0 { 10u64.checked_pow(exp) } else { 2u64.checked_pow(exp) }
}

/// A pcapng timestamp of `units` on `interface`, as seconds and nanoseconds.
fn timestamp(units: u64, interface: Interface) -> Option<Timestamp> {
    let per_sec = interface.units_per_sec;
    let secs = (units / per_sec).checked_add_signed(interface.offset_secs)?;
    let nanos = u128::from(units % per_sec) * 1_000_000_000 / u128::from(per_sec);
    Some(Timestamp { secs, nanos: nanos as u32 })
}
