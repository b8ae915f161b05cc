//! Arbitrary bytes as a capture file, through the pcap examples' own reader
//! and dissector (`capture.rs` and `dissect.rs` of `examples/pcap/`, the
//! same code, mounted by path). Nothing may panic, and what the reader
//! hands out must keep its length checks: no frame over the snaplen or
//! 256 KiB, a classic pcap frame exactly the bytes its record header
//! announces, every timestamp's nanoseconds below a second, and memory
//! bounded whatever the length fields claim.
//!
//! The committed captures make a good seed corpus:
//! `cargo +nightly fuzz run --fuzz-dir fuzz pcap fuzz/corpus/pcap tests/data`.
#![no_main]

#[allow(dead_code, reason = "the target uses the capture reader and the dissector only")]
#[path = "../../examples/pcap/mod.rs"]
mod pcap;

use libfuzzer_sys::fuzz_target;
use refbuf::Pool;

use pcap::capture::{Capture, CaptureError, MAX_CAPLEN};
use pcap::dissect::flow_of;

/// A small buf, so that records and blocks span bufs.
const BUF_SIZE: usize = 4096;

/// The pool may hold this much at most: a whole pcapng block of the largest
/// size read whole (320 KiB) in the reader's buf, and change.
const MAX_HELD: usize = 1 << 20;

/// A classic pcap file's byte order, timestamp resolution and snaplen, read
/// here independently of the reader; `None` for anything else.
fn classic_header(data: &[u8]) -> Option<(bool, bool, u32)> {
    let (big, nanos) = match data.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
        _ => return None,
    };
    Some((big, nanos, u32_at(data, 16, big)?))
}

fn u32_at(data: &[u8], at: usize, big: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
}

fuzz_target!(|data: &[u8]| {
    let pool = Pool::builder().buf_size(BUF_SIZE).build();
    let classic = classic_header(data);
    if let Ok(mut capture) = Capture::open(&pool, data) {
        // Where the next classic pcap record starts in `data`.
        let mut record = 24;
        loop {
            let packet = match capture.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    if classic.is_some() {
                        assert_eq!(record, data.len(), "a clean end between records");
                    }
                    break;
                }
                Err(CaptureError::CaplenTooLarge { caplen, limit, .. }) => {
                    assert!(caplen > limit, "{caplen} is within {limit}");
                    break;
                }
                Err(_) => break,
            };
            let len = packet.data.len();
            assert!(len <= MAX_CAPLEN as usize, "a frame of {len} bytes");
            assert!(packet.ts.nanos < 1_000_000_000, "{:?}", packet.ts);
            if let Some((big, nanos, snaplen)) = classic {
                assert!(snaplen == 0 || len <= snaplen as usize, "{len} over the snaplen {snaplen}");
                let caplen = u32_at(data, record + 8, big).expect("a whole record header");
                assert_eq!(len, caplen as usize);
                let at = record + 16;
                assert_eq!(&packet.data[..], &data[at..at + len], "the record at {record}");
                let frac = u32_at(data, record + 4, big).expect("a whole record header");
                let ns = if nanos { u64::from(frac) } else { u64::from(frac) * 1000 };
                assert_eq!(u64::from(packet.ts.nanos), ns % 1_000_000_000);
                record = at + len;
            }
            // Whatever the frame says, the dissector reads only within it.
            let _ = flow_of(packet.link, &packet.data, packet.wire_len);
        }
    }
    let stats = pool.stats();
    assert!(stats.bytes_in_use + stats.bytes_idle <= MAX_HELD, "{stats:?}");
});
