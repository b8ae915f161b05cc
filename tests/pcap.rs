//! The pcap examples' shared code (`examples/pcap/`): capture formats, frame
//! dissection, the flow report against tshark's golden files, VXLAN
//! encapsulation against tshark's decode, and bad input.
//!
//! Tests on the committed captures read files, which Miri's isolation
//! forbids; the hand-built cases run under Miri too.

#[path = "../examples/pcap/mod.rs"]
mod pcap;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use proptest::prelude::*;
use refbuf::Pool;

use pcap::capture::{Capture, CaptureError, MAX_CAPLEN, Packet, Timestamp};
use pcap::dissect::{
    DissectError, Flow, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, Proto,
    flow_of,
};
use pcap::flows::{FlowTable, FlowsError, count_flows};
use pcap::vxlan::{
    self, EncapError, Encapsulated, MAX_INNER, OUTER_DST_MAC, OUTER_SRC_MAC, Oversize, RESERVE, Skipped,
    Tunnel, VXLAN_PORT, encapsulate,
};

// ---------------------------------------------------------------------------
// Building captures and frames
// ---------------------------------------------------------------------------

/// Writes integers in one byte order.
struct W {
    big: bool,
    out: Vec<u8>,
}

impl W {
    fn new(big: bool) -> W {
        W { big, out: Vec::new() }
    }

    fn u16(&mut self, v: u16) -> &mut W {
        self.out.extend(if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
        self
    }

    fn u32(&mut self, v: u32) -> &mut W {
        self.out.extend(if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut W {
        self.out.extend_from_slice(b);
        self
    }

    /// A pcapng block: type, total length, `body` padded to 4, length again.
    fn block(&mut self, block_type: u32, body: impl FnOnce(&mut W)) -> &mut W {
        let mut inner = W::new(self.big);
        body(&mut inner);
        inner.out.resize(inner.out.len().next_multiple_of(4), 0);
        let len = inner.out.len() as u32 + 12;
        self.u32(block_type).u32(len).bytes(&inner.out).u32(len)
    }

    /// A section header block in this byte order.
    fn shb(&mut self) -> &mut W {
        self.block(0x0A0D_0D0A, |w| {
            w.u32(0x1A2B_3C4D).u16(1).u16(0).u32(u32::MAX).u32(u32::MAX);
        })
    }

    /// An interface description block; `tsresol` is the `if_tsresol` byte.
    fn idb(&mut self, link: u16, snaplen: u32, tsresol: Option<u8>) -> &mut W {
        self.block(1, |w| {
            w.u16(link).u16(0).u32(snaplen);
            if let Some(r) = tsresol {
                w.u16(9).u16(1).bytes(&[r, 0, 0, 0]).u16(0).u16(0);
            }
        })
    }

    /// An enhanced packet block.
    fn epb(&mut self, interface: u32, units: u64, wire_len: u32, data: &[u8]) -> &mut W {
        self.block(6, |w| {
            w.u32(interface).u32((units >> 32) as u32).u32(units as u32);
            w.u32(data.len() as u32).u32(wire_len).bytes(data);
        })
    }

    /// A simple packet block.
    fn spb(&mut self, wire_len: u32, data: &[u8]) -> &mut W {
        self.block(3, |w| {
            w.u32(wire_len).bytes(data);
        })
    }
}

/// A classic pcap file of `(secs, frac, wire_len, data)` records.
fn pcap(big: bool, nanos: bool, snaplen: u32, link: u16, records: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut w = W::new(big);
    w.u32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }).u16(2).u16(4).u32(0).u32(0).u32(snaplen);
    w.u32(u32::from(link));
    for &(secs, frac, wire_len, data) in records {
        w.u32(secs).u32(frac).u32(data.len() as u32).u32(wire_len).bytes(data);
    }
    w.out
}

fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [src_port, dst_port, 8 + payload.len() as u16, 0] {
        h.extend(v.to_be_bytes());
    }
    h.extend_from_slice(payload);
    h
}

fn tcp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(src_port.to_be_bytes());
    h.extend(dst_port.to_be_bytes());
    h.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An IPv4 packet with a correct total length and checksum.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend(src);
    h.extend(dst);
    let sum = vxlan::ipv4_checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An IPv6 packet whose first header is `next`; `payload` starts with any
/// extension headers.
fn ipv6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend_from_slice(payload);
    h
}

/// An Ethernet frame; each of `tags` is a TPID pushed with VID 7.
fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa];
    for &tpid in tags {
        f.extend(tpid.to_be_bytes());
        f.extend([0, 7]);
    }
    f.extend(ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const A4: [u8; 4] = [192, 0, 2, 1];
const B4: [u8; 4] = [198, 51, 100, 2];

fn a6() -> Ipv6Addr {
    "2001:db8::1".parse().unwrap()
}

fn b6() -> Ipv6Addr {
    "2001:db8:0:0:1::2".parse().unwrap()
}

/// An Ethernet UDP frame from A4:1000 to B4:53.
fn udp_frame() -> Vec<u8> {
    eth(&[], 0x0800, &ipv4(17, A4, B4, &udp(1000, 53, b"query")))
}

fn open(bytes: &[u8]) -> Result<Capture<&[u8]>, CaptureError> {
    Capture::open(&Pool::builder().buf_size(4096).build(), bytes)
}

/// Every packet of a capture, or the first error.
fn packets(bytes: &[u8]) -> Result<Vec<Packet>, CaptureError> {
    let mut capture = open(bytes)?;
    let mut out = Vec::new();
    while let Some(p) = capture.next_packet()? {
        out.push(p);
    }
    Ok(out)
}

/// The flow report of a capture.
fn report(bytes: &[u8]) -> Result<String, FlowsError> {
    Ok(count_flows(&mut open(bytes)?, false)?.report())
}

fn flow(proto: Proto, src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Flow {
    Flow { proto, src, src_port, dst, dst_port }
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

// ---------------------------------------------------------------------------
// Capture formats
// ---------------------------------------------------------------------------

/// Classic pcap in both byte orders with micro- and nanosecond magic gives the same frames and timestamps.
#[test]
fn classic_pcap_byte_orders_and_resolutions() {
    let frame = udp_frame();
    for big in [false, true] {
        for nanos in [false, true] {
            let frac = if nanos { 123_456_789 } else { 123_456 };
            let file =
                pcap(big, nanos, 65535, LINKTYPE_ETHERNET, &[(100, frac, 70, &frame), (101, 0, 70, &frame)]);
            let got = packets(&file).unwrap();
            assert_eq!(got.len(), 2);
            let nanos_expected = if nanos { 123_456_789 } else { 123_456_000 };
            assert_eq!(got[0].ts, Timestamp { secs: 100, nanos: nanos_expected }, "big={big} nanos={nanos}");
            assert_eq!(got[1].ts, Timestamp { secs: 101, nanos: 0 });
            assert_eq!((got[0].link, got[0].wire_len, &got[0].data[..]), (LINKTYPE_ETHERNET, 70, &frame[..]));
        }
    }
}

/// A pcapng file with two sections of opposite byte order, several interfaces of different link types and timestamp resolutions, simple packets and skipped blocks yields each frame on its interface's link type and time.
#[test]
fn pcapng_sections_interfaces_and_blocks() {
    let frame = udp_frame();
    let raw = ipv4(17, A4, B4, &udp(1, 2, b""));
    let mut w = W::new(true);
    w.shb().idb(LINKTYPE_ETHERNET, 0, None).idb(LINKTYPE_RAW, 0, Some(9));
    w.epb(0, 1_500_000, 99, &frame); // microseconds by default
    w.block(0x0000_0BAD, |w| {
        w.bytes(&[0xee; 70_000]); // a custom block longer than a skip chunk
    });
    w.epb(1, 2_000_000_001, 28, &raw); // nanoseconds
    let mut le = W::new(false);
    le.shb().idb(LINKTYPE_LINUX_SLL2, 96, Some(0x80 | 10)).block(5, |w| {
        w.u32(0).u32(0).u32(0);
    });
    le.epb(0, 3 * 1024 + 512, 500, &[0; 20]); // 2^-10 s units: 3.5 s
    le.spb(200, &[0xab; 200]); // interface 0's snaplen 96 cuts it
    w.bytes(&le.out);
    let got = packets(&w.out).unwrap();
    let summary: Vec<(u16, Timestamp, u32, usize)> =
        got.iter().map(|p| (p.link, p.ts, p.wire_len, p.data.len())).collect();
    assert_eq!(
        summary,
        [
            (LINKTYPE_ETHERNET, Timestamp { secs: 1, nanos: 500_000_000 }, 99, frame.len()),
            (LINKTYPE_RAW, Timestamp { secs: 2, nanos: 1 }, 28, raw.len()),
            (LINKTYPE_LINUX_SLL2, Timestamp { secs: 3, nanos: 500_000_000 }, 500, 20),
            (LINKTYPE_LINUX_SLL2, Timestamp::default(), 200, 96),
        ]
    );
    assert_eq!(&got[0].data[..], &frame[..]);
    assert_eq!(&got[1].data[..], &raw[..]);
    assert!(got[3].data.iter().all(|&b| b == 0xab));
}

/// Record headers and frames are slices of the reader's buf: consecutive frames sit one record header apart in memory, with no copy.
#[test]
fn frames_are_read_in_place() {
    let frame = udp_frame();
    let file = pcap(false, false, 65535, LINKTYPE_ETHERNET, &[(1, 0, 70, &frame), (2, 0, 70, &frame)]);
    let got = packets(&file).unwrap();
    let gap = got[1].data.as_ptr() as usize - got[0].data.as_ptr() as usize;
    assert_eq!(gap, frame.len() + 16);
}

/// The pcap examples' timestamps give the capture's span.
#[test]
fn span_runs_from_the_first_to_the_last_frame() {
    let frame = udp_frame();
    let file = pcap(
        false,
        true,
        0,
        LINKTYPE_ETHERNET,
        &[(10, 900_000_000, 70, &frame), (12, 400_000_000, 70, &frame)],
    );
    let table = count_flows(&mut open(&file).unwrap(), false).unwrap();
    assert!((table.span_secs() - 1.5).abs() < 1e-9, "{}", table.span_secs());
}

// ---------------------------------------------------------------------------
// Dissection
// ---------------------------------------------------------------------------

/// Each link type (Ethernet, SLL, SLL2, raw IP) leads to the same flow.
#[test]
fn link_types() {
    let ip = ipv4(6, A4, B4, &tcp(40000, 80, b"GET"));
    let expect = Some(flow(Proto::Tcp, v4(A4), 40000, v4(B4), 80));
    let mut sll = vec![0, 0, 3, 4, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 8, 0];
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![8, 0, 0, 0, 0, 0, 0, 1, 3, 4, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(&ip);
    let frames = [
        (LINKTYPE_ETHERNET, eth(&[], 0x0800, &ip)),
        (LINKTYPE_LINUX_SLL, sll),
        (LINKTYPE_LINUX_SLL2, sll2),
        (LINKTYPE_RAW, ip.clone()),
    ];
    for (link, frame) in frames {
        assert_eq!(flow_of(link, &frame, frame.len() as u32), Ok(expect), "link type {link}");
    }
    assert_eq!(flow_of(147, &ip, ip.len() as u32), Ok(None), "an unknown link type is other");
}

/// 802.1Q, 802.1ad and stacked tags are stripped on the way to IP.
#[test]
fn vlan_tags_are_stripped() {
    let ip = ipv4(17, A4, B4, &udp(5, 6, b"x"));
    let expect = Some(flow(Proto::Udp, v4(A4), 5, v4(B4), 6));
    for tags in [&[0x8100][..], &[0x88a8, 0x8100], &[0x88a8, 0x8100, 0x8100]] {
        let frame = eth(tags, 0x0800, &ip);
        assert_eq!(flow_of(LINKTYPE_ETHERNET, &frame, frame.len() as u32), Ok(expect), "{tags:x?}");
    }
}

/// Hop-by-hop, routing, destination options and a first fragment header are skipped to UDP; a later fragment is other.
#[test]
fn ipv6_extension_headers_are_skipped() {
    let payload = udp(7, 8, b"ext");
    let mut exts = vec![43, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, PadN, then routing
    exts.extend([60, 2, 0, 0, 0, 0, 0, 0]); // routing type 0, one address, then dst opts
    exts.extend(Ipv6Addr::LOCALHOST.octets());
    exts.extend([44, 0, 1, 4, 0, 0, 0, 0]); // destination options, then fragment
    let fragment = |offset: u16| {
        let mut e = exts.clone();
        e.extend([17, 0]);
        e.extend((offset << 3 | 1).to_be_bytes());
        e.extend([0, 0, 0, 9]);
        e.extend_from_slice(&payload);
        eth(&[], 0x86dd, &ipv6(0, a6(), b6(), &e))
    };
    let first = fragment(0);
    let expect = Some(flow(Proto::Udp, IpAddr::V6(a6()), 7, IpAddr::V6(b6()), 8));
    assert_eq!(flow_of(LINKTYPE_ETHERNET, &first, first.len() as u32), Ok(expect));
    let later = fragment(185);
    assert_eq!(flow_of(LINKTYPE_ETHERNET, &later, later.len() as u32), Ok(None));
}

/// An IPv4 fragment other than the first is other; the first, with its UDP header, is in the flow.
#[test]
fn ipv4_fragments() {
    let mut ip = ipv4(17, A4, B4, &udp(9, 10, b"abc"));
    ip[6] = 0x20; // more fragments, offset 0
    let first = eth(&[], 0x0800, &ip);
    assert!(flow_of(LINKTYPE_ETHERNET, &first, first.len() as u32).unwrap().is_some());
    ip[7] = 0x10; // offset 16 x 8 bytes
    let later = eth(&[], 0x0800, &ip);
    assert_eq!(flow_of(LINKTYPE_ETHERNET, &later, later.len() as u32), Ok(None));
}

/// A frame the snaplen cut before its ports is other, not an error.
#[test]
fn frames_cut_by_the_snaplen_are_other() {
    let frame = udp_frame();
    for cut in [10, 14, 30, 34, 36] {
        assert_eq!(flow_of(LINKTYPE_ETHERNET, &frame[..cut], frame.len() as u32), Ok(None), "cut at {cut}");
    }
}

/// The report lists flows by bytes descending, ties by text, IPv6 in RFC 5952 form, then the totals.
#[test]
fn report_format_and_order() {
    let big = eth(&[], 0x0800, &ipv4(6, A4, B4, &tcp(1, 2, &[0; 100])));
    let v6 = eth(&[], 0x86dd, &ipv6(17, a6(), b6(), &udp(53, 5353, b"")));
    let arp = eth(&[], 0x0806, &[0; 28]);
    let tie_a = eth(&[], 0x0800, &ipv4(17, A4, B4, &udp(20, 2, b"")));
    let tie_b = eth(&[], 0x0800, &ipv4(17, A4, B4, &udp(100, 2, b"")));
    let records: Vec<(u32, u32, u32, &[u8])> = vec![
        (1, 0, 1000, &big),
        (1, 0, 1000, &big),
        (2, 0, 90, &v6),
        (3, 0, 60, &arp),
        (4, 0, 500, &tie_b),
        (4, 0, 500, &tie_a),
    ];
    let got = report(&pcap(false, false, 0, LINKTYPE_ETHERNET, &records)).unwrap();
    assert_eq!(
        got,
        "TCP 192.0.2.1 1 198.51.100.2 2 2 2000\n\
         UDP 192.0.2.1 100 198.51.100.2 2 1 500\n\
         UDP 192.0.2.1 20 198.51.100.2 2 1 500\n\
         UDP 2001:db8::1 53 2001:db8::1:0:0:2 5353 1 90\n\
         total packets=6 bytes=3150 other=1\n"
    );
}

/// Copying each frame into a Vec first (the --copy baseline) gives the same report.
#[test]
fn copy_mode_gives_the_same_report() {
    let frame = udp_frame();
    let file = pcap(true, false, 0, LINKTYPE_ETHERNET, &[(1, 0, 70, &frame), (2, 0, 80, &frame)]);
    let zero_copy = count_flows(&mut open(&file).unwrap(), false).unwrap();
    let copied = count_flows(&mut open(&file).unwrap(), true).unwrap();
    assert_eq!(zero_copy.report(), copied.report());
    assert_eq!(copied.packets(), 2);
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// The message of the error, which must also be the one the error names.
fn message<T>(r: Result<T, impl std::fmt::Display>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Empty files, truncated file headers, record headers and records are errors that say so.
#[test]
fn truncated_files_and_records() {
    let frame = udp_frame();
    let file = pcap(false, false, 65535, LINKTYPE_ETHERNET, &[(1, 0, 70, &frame)]);
    for cut in [0, 3, 10, 24 + 7, file.len() - 1] {
        let err = packets(&file[..cut]).unwrap_err();
        assert!(matches!(err, CaptureError::Truncated { .. }), "cut at {cut}: {err}");
        assert!(err.to_string().contains("truncated file"), "{err}");
    }
    assert_eq!(packets(&file[..24]).unwrap().len(), 0, "a header and no records is an empty capture");
}

/// A file that starts with neither magic is refused.
#[test]
fn bad_magic() {
    let mut file = pcap(false, false, 65535, LINKTYPE_ETHERNET, &[]);
    file[0] = 0xd5;
    let err = packets(&file).unwrap_err();
    assert!(matches!(err, CaptureError::BadMagic([0xd5, 0xc3, 0xb2, 0xa1])), "{err}");
    assert!(err.to_string().contains("bad magic number d5c3b2a1"), "{err}");
}

/// A caplen over the snaplen or over 256 KiB is refused before its bytes are read, so a 4 GiB caplen takes no memory.
#[test]
fn caplen_over_snaplen_or_limit() {
    let frame = udp_frame();
    let over_snaplen = pcap(false, false, 40, LINKTYPE_ETHERNET, &[(1, 0, 70, &frame)]);
    let err = packets(&over_snaplen).unwrap_err();
    assert!(matches!(err, CaptureError::CaplenTooLarge { caplen: 47, limit: 40, .. }), "{err}");
    assert!(err.to_string().contains("over the snaplen"), "{err}");

    for (snaplen, caplen) in [(0, u32::MAX), (u32::MAX, u32::MAX), (u32::MAX, MAX_CAPLEN + 1)] {
        let mut file = pcap(false, false, snaplen, LINKTYPE_ETHERNET, &[]);
        let mut record = W::new(false);
        record.u32(1).u32(0).u32(caplen).u32(caplen);
        file.extend(record.out);
        let pool = Pool::builder().buf_size(4096).build();
        let mut capture = Capture::open(&pool, &file[..]).unwrap();
        let err = capture.next_packet().unwrap_err();
        assert!(matches!(err, CaptureError::CaplenTooLarge { limit: MAX_CAPLEN, .. }), "{err}");
        assert!(pool.stats().bytes_in_use <= 4096, "{:?}", pool.stats());
    }
    let mut block = W::new(false);
    block.shb().idb(LINKTYPE_ETHERNET, 0, None).epb(0, 0, 70, &frame);
    let at = block.out.len() - 4 - frame.len().next_multiple_of(4) - 8;
    block.out[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = packets(&block.out).unwrap_err();
    assert!(matches!(err, CaptureError::CaplenTooLarge { caplen: u32::MAX, .. }), "{err}");
}

/// A pcapng block length that is not a multiple of 4, too small, or past the end of the file is refused.
#[test]
fn bad_pcapng_block_lengths() {
    let frame = udp_frame();
    let mut w = W::new(false);
    w.shb().idb(LINKTYPE_ETHERNET, 0, None);
    let packets_at = w.out.len();
    w.epb(0, 0, 70, &frame);
    let set_len = |len: u32| {
        let mut file = w.out.clone();
        file[packets_at + 4..packets_at + 8].copy_from_slice(&len.to_le_bytes());
        file
    };
    for len in [102, 8, 31] {
        let err = packets(&set_len(len)).unwrap_err();
        assert!(matches!(err, CaptureError::BadBlockLength { block_type: 6, .. }), "{len}: {err}");
        assert!(err.to_string().contains(&format!("bad block length {len}")), "{err}");
    }
    for len in [200, 1 << 20, 0xffff_fffc] {
        let err = packets(&set_len(len)).unwrap_err();
        let ok = matches!(err, CaptureError::Truncated { .. } | CaptureError::BadBlockLength { .. });
        assert!(ok, "{len}: {err}");
    }
    let err = packets(&set_len(200)).unwrap_err();
    assert!(err.to_string().contains("runs past the end of the file"), "{err}");
    // A skipped block's length is checked the same way.
    let mut skipped = w.out[..packets_at].to_vec();
    skipped.extend(0xBADu32.to_le_bytes());
    skipped.extend(4096u32.to_le_bytes());
    skipped.extend([0; 100]);
    assert!(matches!(packets(&skipped).unwrap_err(), CaptureError::Truncated { .. }));
}

/// A packet on an interface the section never described is refused.
#[test]
fn packet_on_an_unknown_interface() {
    let mut w = W::new(false);
    w.shb().idb(LINKTYPE_ETHERNET, 0, None).epb(3, 0, 70, &udp_frame());
    let err = packets(&w.out).unwrap_err();
    assert!(err.to_string().contains("interface 3"), "{err}");
}

/// An IPv4 header length under 5 words is an error naming the frame.
#[test]
fn ipv4_ihl_under_5() {
    let good = udp_frame();
    for ihl in 0..5 {
        let mut bad = good.clone();
        bad[14] = 0x40 | ihl;
        let err = report(&pcap(false, false, 0, LINKTYPE_ETHERNET, &[(1, 0, 70, &good), (2, 0, 70, &bad)]));
        let msg = message(err);
        assert_eq!(msg, format!("frame 2: IPv4 header length (IHL) {ihl} is under the minimum of 5"));
    }
}

/// An IPv6 payload length past the frame on the wire is an error; an IPv4 total length likewise.
#[test]
fn ip_lengths_past_the_frame() {
    let frame = eth(&[], 0x86dd, &ipv6(17, a6(), b6(), &udp(1, 2, b"abcd")));
    let mut bad = frame.clone();
    bad[14 + 4..14 + 6].copy_from_slice(&13u16.to_be_bytes());
    let wire = bad.len() as u32;
    assert_eq!(
        flow_of(LINKTYPE_ETHERNET, &bad, wire),
        Err(DissectError::Ipv6PayloadLength { payload_len: 13, room: 12 })
    );
    let msg = message(report(&pcap(false, false, 0, LINKTYPE_ETHERNET, &[(1, 0, wire, &bad)])));
    assert!(msg.contains("IPv6 payload length 13 points past the end of the frame"), "{msg}");
    // A header that does not fit in the frame on the wire is an error too.
    assert!(flow_of(LINKTYPE_ETHERNET, &frame[..40], 40).is_err());
    // An extension header past the payload.
    let ext = eth(&[], 0x86dd, &ipv6(0, a6(), b6(), &[17, 1, 0, 0, 0, 0, 0, 0]));
    assert_eq!(
        flow_of(LINKTYPE_ETHERNET, &ext, ext.len() as u32),
        Err(DissectError::Ipv6Extension { header: 0 })
    );

    let mut v4 = udp_frame();
    v4[16..18].copy_from_slice(&500u16.to_be_bytes());
    let err = flow_of(LINKTYPE_ETHERNET, &v4, v4.len() as u32).unwrap_err();
    assert!(matches!(err, DissectError::Ipv4TotalLength { total_len: 500, .. }), "{err}");
}

// ---------------------------------------------------------------------------
// Random and mutated input
// ---------------------------------------------------------------------------

/// A small valid capture of each format, for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let frames = [
        udp_frame(),
        eth(&[0x8100], 0x86dd, &ipv6(6, a6(), b6(), &tcp(1, 2, b"hi"))),
        eth(&[], 0x0806, &[1; 28]),
    ];
    let records: Vec<(u32, u32, u32, &[u8])> =
        frames.iter().map(|f| (1, 2, f.len() as u32, &f[..])).collect();
    let mut ng = W::new(true);
    ng.shb().idb(LINKTYPE_ETHERNET, 1500, Some(9)).idb(LINKTYPE_RAW, 0, None);
    for f in &frames {
        ng.epb(0, 5, f.len() as u32, f);
    }
    ng.spb(frames[0].len() as u32, &frames[0]).epb(1, 7, 28, &ipv4(17, A4, B4, &udp(1, 2, b"")));
    vec![pcap(false, true, 65535, LINKTYPE_ETHERNET, &records), ng.out]
}

/// Reads a whole capture and counts its flows; errors are fine, panics, hangs and large allocations are not.
fn survive(bytes: &[u8]) {
    let pool = Pool::builder().buf_size(4096).build();
    if let Ok(mut capture) = Capture::open(&pool, bytes) {
        let _ = count_flows(&mut capture, false);
    }
    let stats = pool.stats();
    assert!(stats.bytes_in_use + stats.bytes_idle <= 1 << 20, "{stats:?}");
}

proptest! {
    // Under Miri: a few cases, and no regression file (isolation forbids it).
    #![proptest_config(if cfg!(miri) {
        ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() }
    } else {
        ProptestConfig::with_cases(2000)
    })]

    /// Random bytes after either magic never panic the parser.
    #[test]
    fn random_captures(magic in prop::sample::select(vec![
        [0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d], [0x0a, 0x0d, 0x0d, 0x0a],
    ]), rest in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = magic.to_vec();
        bytes.extend(rest);
        survive(&bytes);
    }

    /// Valid captures with bytes overwritten, cut short or spliced never panic the parser.
    #[test]
    fn mutated_captures(
        seed in 0..2usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = seeds().swap_remove(seed);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        survive(&bytes);
        survive(&bytes[..cut.index(bytes.len() + 1)]);
    }
}

// ---------------------------------------------------------------------------
// The committed captures against tshark
// ---------------------------------------------------------------------------

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A golden file without its `#` comment lines.
fn golden(name: &str) -> String {
    let text = std::fs::read_to_string(data("golden").join(name)).unwrap();
    text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect()
}

const CAPTURES: [&str; 7] = ["http", "dns", "ipv6", "vlan", "sll", "sll2", "rawip"];

/// Every committed capture, pcap and pcapng, gives tshark's per-flow packet and byte counts, zero copy and copying alike.
#[test]
#[cfg_attr(miri, ignore = "reads files, which Miri's isolation forbids")]
fn flows_match_tshark() {
    for name in CAPTURES {
        for ext in ["pcap", "pcapng"] {
            let file = std::fs::read(data(&format!("{name}.{ext}"))).unwrap();
            let expected = golden(&format!("{name}.{ext}.flows"));
            assert_eq!(report(&file).unwrap(), expected, "{name}.{ext}");
            let copied = count_flows(&mut open(&file).unwrap(), true).unwrap().report();
            assert_eq!(copied, expected, "{name}.{ext} --copy");
        }
    }
}

/// The committed captures rewritten as big-endian nanosecond pcap, and as pcapng with sections of both byte orders, extra interfaces, simple packets and skipped blocks, still give tshark's counts.
#[test]
#[cfg_attr(miri, ignore = "reads files, which Miri's isolation forbids")]
fn rewritten_captures_match_tshark() {
    for name in CAPTURES {
        let file = std::fs::read(data(&format!("{name}.pcapng"))).unwrap();
        let original = packets(&file).unwrap();
        let link = original[0].link;
        let records: Vec<(u32, u32, u32, &[u8])> =
            original.iter().map(|p| (p.ts.secs as u32, p.ts.nanos, p.wire_len, &p.data[..])).collect();
        let expected = golden(&format!("{name}.pcapng.flows"));
        assert_eq!(
            report(&pcap(true, true, 65535, link, &records)).unwrap(),
            expected,
            "{name} as big-endian pcap"
        );

        let (first, second) = original.split_at(original.len() / 2);
        let mut ng = W::new(true);
        ng.shb().idb(LINKTYPE_LINUX_SLL, 0, None).idb(link, 0, Some(9));
        for p in first {
            ng.epb(1, p.ts.secs * 1_000_000_000 + u64::from(p.ts.nanos), p.wire_len, &p.data);
            ng.block(0x0BAD, |w| {
                w.bytes(b"skipped");
            });
        }
        let mut le = W::new(false);
        le.shb().idb(link, 0, None);
        for p in second {
            le.spb(p.wire_len, &p.data);
        }
        ng.bytes(&le.out);
        assert_eq!(report(&ng.out).unwrap(), expected, "{name} as two-section pcapng");
    }
}

// ---------------------------------------------------------------------------
// VXLAN
// ---------------------------------------------------------------------------

fn tunnel() -> Tunnel {
    Tunnel { src: Ipv4Addr::new(198, 51, 100, 1), dst: Ipv4Addr::new(198, 51, 100, 2), vni: 4242 }
}

/// `vxlan_encap`'s output for the capture `file` with `tunnel()`, and the
/// frames it skipped, or its error.
fn encapsulate_bytes(
    file: &[u8],
    oversize: Oversize,
) -> Result<(Encapsulated, Vec<u8>, Vec<Skipped>), String> {
    let mut skipped = Vec::new();
    let (done, out) =
        vxlan::encapsulate_capture(&Pool::new(), file, Vec::new(), &tunnel(), oversize, |s| skipped.push(s))
            .map_err(|e| e.to_string())?;
    assert_eq!(done.skipped, skipped.len() as u64, "one warning per skipped frame");
    Ok((done, out, skipped))
}

/// The encapsulated capture of a committed one, as `vxlan_encap` writes it.
fn encapsulated(name: &str) -> (Vec<Packet>, Vec<Packet>) {
    let file = std::fs::read(data(&format!("{name}.pcapng"))).unwrap();
    let (done, out, _) = encapsulate_bytes(&file, Oversize::Fail).unwrap();
    let (inner, outer) = (packets(&file).unwrap(), packets(&out).unwrap());
    let frames = inner.len() as u64;
    assert_eq!(done, Encapsulated { frames, written: frames, skipped: 0 });
    assert_eq!(outer.len() as u64, frames);
    (inner, outer)
}

/// tshark's decode of vxlan_encap's output (VNI, outer MACs and addresses, DF, TTL, IP checksum good, UDP ports and zero checksum, inner addresses) matches what the encapsulation wrote, frame by frame.
#[test]
#[cfg_attr(miri, ignore = "reads files, which Miri's isolation forbids")]
fn vxlan_matches_tshark() {
    for name in ["http", "dns", "ipv6", "vlan"] {
        let (inner, outer) = encapsulated(name);
        let golden = golden(&format!("{name}.vxlan"));
        let rows: Vec<Vec<&str>> = golden.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), outer.len(), "{name}");
        for ((row, original), packet) in rows.iter().zip(&inner).zip(&outer) {
            let first = |i: usize| row[i].split(',').next().unwrap();
            let nth = |i: usize, n: usize| row[i].split(',').nth(n);
            let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
            assert_eq!(row[1], "4242", "{name} {row:?}");
            assert_eq!((first(2), first(3)), (&*mac(OUTER_SRC_MAC), &*mac(OUTER_DST_MAC)));
            assert_eq!((first(4), first(5)), ("198.51.100.1", "198.51.100.2"));
            assert_eq!((first(6), first(7), first(8)), ("1", "64", "1"), "DF, TTL, checksum good: {row:?}");
            let src_port = u16::from_be_bytes([packet.data[34], packet.data[35]]);
            assert_eq!((first(9), first(10), first(11)), (&*src_port.to_string(), "4789", "0x0000"));
            let flow = flow_of(LINKTYPE_ETHERNET, &original.data, original.wire_len).unwrap();
            match flow.map(|f| (f.src, f.dst)) {
                Some((IpAddr::V4(s), IpAddr::V4(d))) => {
                    assert_eq!(
                        (nth(4, 1), nth(5, 1)),
                        (Some(&*s.to_string()), Some(&*d.to_string())),
                        "{row:?}"
                    );
                }
                Some((IpAddr::V6(s), IpAddr::V6(d))) => {
                    assert_eq!((first(12), first(13)), (&*s.to_string(), &*d.to_string()), "{row:?}");
                }
                _ => {}
            }
        }
    }
}

/// Stripping the 50 outer bytes of vxlan_encap's output gives back the original frames byte for byte, with their timestamps, and the outer headers say what RFC 7348 asks.
#[test]
#[cfg_attr(miri, ignore = "reads files, which Miri's isolation forbids")]
fn vxlan_round_trip() {
    for name in ["http", "dns", "ipv6", "vlan"] {
        let (inner, outer) = encapsulated(name);
        check_round_trip(name, &inner, &outer);
    }
}

/// Checks that `outer` is `inner` encapsulated with `tunnel()`, frame by
/// frame: without its 50 outer bytes each is the original, byte for byte,
/// with its timestamp, and the outer headers say what RFC 7348 asks.
fn check_round_trip(name: &str, inner: &[Packet], outer: &[Packet]) {
    assert_eq!(inner.len(), outer.len(), "{name}");
    let mut ports = std::collections::HashMap::new();
    for (original, packet) in inner.iter().zip(outer) {
        let (headers, frame) = packet.data.split_at(RESERVE);
        assert_eq!(frame, &original.data[..], "{name}");
        assert_eq!(packet.ts, original.ts);
        assert_eq!(packet.wire_len, original.wire_len + RESERVE as u32);
        assert_eq!(&headers[12..14], &[8, 0]);
        assert_eq!(vxlan::ipv4_checksum(&headers[14..34]), 0, "IPv4 checksum");
        assert_eq!(u16::from_be_bytes([headers[16], headers[17]]) as usize, 36 + frame.len());
        assert_eq!(u16::from_be_bytes([headers[36], headers[37]]), VXLAN_PORT);
        assert_eq!(&headers[40..42], &[0, 0], "UDP checksum 0");
        assert_eq!(&headers[42..], &[0x08, 0, 0, 0, 0, 0x10, 0x92, 0], "I flag, VNI 4242");
        let src_port = u16::from_be_bytes([headers[34], headers[35]]);
        assert!(src_port >= 49152);
        // One flow, one source port.
        let flow = flow_of(LINKTYPE_ETHERNET, &original.data, original.wire_len).unwrap();
        if let Some(flow) = flow {
            assert_eq!(*ports.entry(flow).or_insert(src_port), src_port, "{flow}");
        }
    }
}

/// An Ethernet/IPv4/UDP frame of exactly `len` bytes (at least 42), its
/// payload filled with `fill`.
fn frame_of_len(len: usize, fill: u8) -> Vec<u8> {
    eth(&[], 0x0800, &ipv4(17, A4, B4, &udp(1000, 4000, &vec![fill; len - 42])))
}

/// Frames of a loopback capture around the largest VXLAN over IPv4 can
/// carry: the largest (`MAX_INNER`), the largest a loopback capture holds
/// (65,549: a 65,535-byte IP packet) and one byte over the first, among
/// small ones; and which of them (numbered from 1) are too large.
fn frames_around_the_limit() -> (Vec<Vec<u8>>, [u64; 2]) {
    let frames = vec![
        udp_frame(),
        frame_of_len(MAX_INNER, 2),
        frame_of_len(14 + 65_535, 3),
        eth(&[], 0x0800, &ipv4(6, A4, B4, &tcp(40000, 80, b"GET"))),
        frame_of_len(MAX_INNER + 1, 5),
        udp_frame(),
    ];
    (frames, [3, 5])
}

/// A classic pcap, as tcpdump writes on loopback (snaplen 262144), of
/// `frames`, each captured whole, a second apart.
fn capture_of(frames: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<(u32, u32, u32, &[u8])> =
        frames.iter().enumerate().map(|(i, f)| (i as u32, 0, f.len() as u32, &f[..])).collect();
    pcap(false, false, 262_144, LINKTYPE_ETHERNET, &records)
}

/// By default, a frame too large for one outer IPv4 packet is skipped, each with a warning naming its number and length, and counted; every other frame, the largest that fits included, is encapsulated as if the skipped ones were not there.
#[test]
fn vxlan_skips_oversize_frames() {
    let (frames, oversize) = frames_around_the_limit();
    let file = capture_of(&frames);
    let (done, out, skipped) = encapsulate_bytes(&file, Oversize::Skip).unwrap();
    assert_eq!(done, Encapsulated { frames: 6, written: 4, skipped: 2 });
    let lens = oversize.map(|n| frames[n as usize - 1].len());
    assert_eq!(lens, [65_549, MAX_INNER + 1]);
    assert_eq!(skipped, [Skipped { frame: 3, len: lens[0] }, Skipped { frame: 5, len: lens[1] }]);
    assert_eq!(
        skipped[0].to_string(),
        "skipped frame 3: a frame of 65549 bytes is too large for an IPv4 VXLAN packet (at most 65499)"
    );

    let kept: Vec<Packet> =
        packets(&file).unwrap().into_iter().filter(|p| p.data.len() <= MAX_INNER).collect();
    let outer = packets(&out).unwrap();
    check_round_trip("around the limit", &kept, &outer);
    let total = u16::from_be_bytes([outer[1].data[16], outer[1].data[17]]);
    assert_eq!(total, u16::MAX, "the largest frame fills the outer IPv4 packet");
}

/// With `Oversize::Fail`, the first frame too large is an error naming it, as before skipping existed.
#[test]
fn vxlan_oversize_fail_stops_at_the_first() {
    let (frames, _) = frames_around_the_limit();
    let err = encapsulate_bytes(&capture_of(&frames), Oversize::Fail).unwrap_err();
    assert_eq!(err, "frame 3: a frame of 65549 bytes is too large for an IPv4 VXLAN packet (at most 65499)");
}

/// `--oversize` takes skip or fail, and nothing else.
#[test]
fn oversize_option_values() {
    assert_eq!("skip".parse(), Ok(Oversize::Skip));
    assert_eq!("fail".parse(), Ok(Oversize::Fail));
    assert_eq!(Oversize::default(), Oversize::Skip);
    assert_eq!("Skip".parse::<Oversize>(), Err("--oversize Skip: expected skip or fail".to_owned()));
}

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("refbuf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    /// The names of the files in it, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `vxlan_encap`'s output goes through a temporary file renamed over the destination only on success: the error of `--oversize fail`, and a capture that ends mid-record, each after more frames than one vectored write holds, leave no output file and no temporary file, and leave an earlier destination as it was; a success replaces it.
#[test]
#[cfg_attr(miri, ignore = "writes files, which Miri's isolation forbids")]
fn vxlan_output_is_all_or_nothing() {
    let dir = TempDir::new("vxlan-output");
    let (input, output) = (dir.0.join("in.pcap"), dir.0.join("out.pcap"));
    let run = |oversize| {
        let pool = Pool::new();
        vxlan::encapsulate_file(&pool, &input, &output, &tunnel(), oversize, |_| {})
            .map_err(|e| e.to_string())
    };
    // 100 frames, then a loopback-sized one.
    let mut frames: Vec<Vec<u8>> = (0..100).map(|_| udp_frame()).collect();
    frames.push(frame_of_len(14 + 65_535, 1));
    let file = capture_of(&frames);

    std::fs::write(&input, &file).unwrap();
    let err = run(Oversize::Fail).unwrap_err();
    assert!(err.starts_with("frame 101: a frame of 65549 bytes is too large"), "{err}");
    assert_eq!(dir.names(), ["in.pcap"], "no output, no temporary file");

    std::fs::write(&output, b"an earlier output").unwrap();
    let err = run(Oversize::Fail).unwrap_err();
    assert!(err.starts_with("frame 101:"), "{err}");
    assert_eq!(std::fs::read(&output).unwrap(), b"an earlier output");
    assert_eq!(dir.names(), ["in.pcap", "out.pcap"]);

    // A read error mid-capture: the file ends inside the last record.
    std::fs::write(&input, &file[..file.len() - 1000]).unwrap();
    let err = run(Oversize::Skip).unwrap_err();
    assert!(err.contains("truncated file"), "{err}");
    assert_eq!(std::fs::read(&output).unwrap(), b"an earlier output");
    assert_eq!(dir.names(), ["in.pcap", "out.pcap"]);

    std::fs::write(&input, &file).unwrap();
    assert_eq!(run(Oversize::Skip), Ok(Encapsulated { frames: 101, written: 100, skipped: 1 }));
    assert_eq!(dir.names(), ["in.pcap", "out.pcap"]);
    let outer = packets(&std::fs::read(&output).unwrap()).unwrap();
    check_round_trip("in.pcap", &packets(&file).unwrap()[..100], &outer);
}

/// Encapsulation writes only into the headroom: the frame's bytes stay where the read put them.
#[test]
fn vxlan_prepends_in_place() {
    let pool = Pool::builder().buf_size(4096).build();
    let mut alloc = pool.allocator(RESERVE);
    let frame = udp_frame();
    let mut slice = alloc.copy_from_slice(&frame);
    let at = slice.as_ptr();
    encapsulate(&mut slice, &tunnel(), 50000).unwrap();
    assert_eq!(slice[RESERVE..].as_ptr(), at);
    assert_eq!(&slice[RESERVE..], &frame[..]);
    assert_eq!(slice.headroom(), 0);
}

/// Too little headroom, a VNI over 24 bits or a frame too large for IPv4 are errors that leave the frame alone.
#[test]
fn vxlan_refusals() {
    let pool = Pool::builder().buf_size(4096).build();
    let mut slice = pool.allocator(RESERVE - 1).copy_from_slice(b"frame");
    assert_eq!(encapsulate(&mut slice, &tunnel(), 50000), Err(EncapError::NoHeadroom { headroom: 49 }));
    let mut slice = pool.allocator(RESERVE).copy_from_slice(b"frame");
    let bad_vni = Tunnel { vni: 1 << 24, ..tunnel() };
    assert_eq!(encapsulate(&mut slice, &bad_vni, 50000), Err(EncapError::BadVni(1 << 24)));
    assert_eq!(&slice[..], b"frame");
    let mut big = Pool::new().allocator(RESERVE).alloc(65500);
    assert_eq!(encapsulate(&mut big, &tunnel(), 1), Err(EncapError::TooLarge { len: 65500 }));
}

/// vxlan_encap refuses a capture that is not Ethernet, or a frame with a bad IP header, naming the frame.
#[test]
fn vxlan_refuses_bad_input() {
    let ip = ipv4(17, A4, B4, &udp(1, 2, b""));
    let raw = pcap(false, false, 0, LINKTYPE_RAW, &[(1, 0, 28, &ip)]);
    let msg = encapsulate_bytes(&raw, Oversize::Skip).unwrap_err();
    assert_eq!(msg, "frame 1 has link type 101; VXLAN carries Ethernet frames");
    let mut bad = udp_frame();
    bad[14] = 0x44;
    let file = pcap(false, false, 0, LINKTYPE_ETHERNET, &[(1, 0, 70, &bad)]);
    let msg = encapsulate_bytes(&file, Oversize::Skip).unwrap_err();
    assert!(msg.starts_with("frame 1: IPv4 header length (IHL) 4"), "{msg}");
}

/// The flow table counts a frame without a flow as other.
#[test]
fn flow_table_counts_other() {
    let mut table = FlowTable::default();
    table.add(None, 60, Timestamp::default());
    assert_eq!(table.report(), "total packets=1 bytes=60 other=1\n");
}
