//! The `Reader` against an adversarial source the input drives: short reads
//! of every size, `Interrupted`, `WouldBlock` and other errors at any point,
//! early EOF mid-frame, frames of every size up to several bufs, and slices
//! kept alive or dropped at random. Every frame must be exactly the next
//! bytes of the stream, no byte may be lost or repeated on an error, and the
//! pool must get every buf back.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use refbuf::{Pool, Slice};

/// Most frames a case reads.
const MAX_FRAMES: usize = 400;

/// Byte `k` of the stream: not periodic in any buf size.
fn stream(k: usize) -> u8 {
    ((k as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ (k >> 8) as u8
}

/// Hands out `0..total` of the stream, each call as its script says; once
/// the script runs out, as much as asked for, then EOF.
struct Adversary<'a> {
    script: &'a [u8],
    total: usize,
    /// Bytes handed out so far.
    delivered: usize,
}

impl Read for Adversary<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.total - self.delivered;
        let n = match self.script.split_first() {
            None => buf.len().min(left),
            Some((&b, rest)) => {
                self.script = rest;
                match b % 8 {
                    0 => return Err(io::ErrorKind::Interrupted.into()),
                    1 => return Err(io::ErrorKind::WouldBlock.into()),
                    2 => return Err(io::Error::other("transient")),
                    // An early EOF: the stream goes on at the next call.
                    3 => 0,
                    _ => usize::from(b >> 3).min(buf.len()).min(left),
                }
            }
        };
        for (k, byte) in buf[..n].iter_mut().enumerate() {
            *byte = stream(self.delivered + k);
        }
        self.delivered += n;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[size, total_lo, total_hi], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let buf_size = 1 + usize::from(size % 64);
    let total = usize::from(u16::from_le_bytes([total_lo, total_hi]) % 4096);
    // Even bytes choose frames, odd bytes drive the source.
    let frames: Vec<u8> = rest.iter().step_by(2).copied().take(MAX_FRAMES).collect();
    let script: Vec<u8> = rest.iter().skip(1).step_by(2).copied().collect();

    let pool = Pool::builder().buf_size(buf_size).build();
    let mut reader = pool.reader(Adversary { script: &script, total, delivered: 0 });
    let mut kept: Vec<Slice> = Vec::new();
    let mut pos = 0;
    for &f in &frames {
        let n = usize::from(f & 0x7f) % (3 * buf_size + 1);
        loop {
            let hostile = !reader.get_ref().script.is_empty();
            match reader.read(n) {
                Ok(frame) => {
                    assert_eq!(frame.len(), n);
                    assert!(frame.iter().enumerate().all(|(k, &b)| b == stream(pos + k)), "frame at {pos}");
                    pos += n;
                    if f & 0x80 != 0 {
                        kept.push(frame);
                    }
                    break;
                }
                Err(e) => {
                    let src = reader.get_ref();
                    assert_eq!(reader.buffered(), src.delivered - pos, "{e}: bytes lost or repeated");
                    assert!(
                        matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Other | io::ErrorKind::UnexpectedEof
                        ),
                        "{e}"
                    );
                    if !hostile && src.delivered == src.total {
                        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                        assert!(reader.buffered() < n);
                        break;
                    }
                }
            }
        }
        if kept.len() > 8 {
            kept.swap_remove(usize::from(f) % kept.len());
        }
    }
    // Whatever the script did, the rest of the stream comes out intact.
    let rest = loop {
        let hostile = !reader.get_ref().script.is_empty();
        match reader.read(total - pos) {
            Ok(rest) => break rest,
            Err(e) => assert!(hostile, "{e} with the source no longer hostile"),
        }
    };
    assert!(rest.iter().enumerate().all(|(k, &b)| b == stream(pos + k)), "the tail from {pos}");
    // And nothing after it, once the script has run out.
    loop {
        let hostile = !reader.get_ref().script.is_empty();
        let e = reader.read(1).expect_err("a byte past the end of the stream");
        if !hostile {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            break;
        }
    }
    drop((reader, rest, kept));
    assert_eq!(pool.stats().bufs_in_use, 0);
});
