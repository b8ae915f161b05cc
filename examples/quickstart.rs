//! A short tour of refbuf: a pool, an allocator with header reserve, a
//! header prepended in place, coalescing, a reader, and the pool's stats.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::io;

use clap::Parser;
use refbuf::{Pool, coalesce};

/// Length prefix of our toy protocol: a 4-byte big-endian payload length.
const HEADER_LEN: usize = 4;

/// A short tour of refbuf: a pool, headroom, a header prepended in place,
/// coalescing, a reader and the pool's stats.
// Public for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "quickstart")]
pub struct Args {}

fn main() -> io::Result<()> {
    Args::parse();
    // 1. A pool of 16 KiB bufs. Clones of `pool` share it.
    let pool = Pool::builder().buf_size(16 * 1024).build();
    println!("pool with {} KiB bufs", pool.buf_size() / 1024);

    // 2. An allocator that leaves room for the header in front of each slice.
    let mut alloc = pool.allocator(HEADER_LEN);

    // 3. Write payloads, then prepend each one's header in place: the payload
    //    bytes never move.
    let mut frames = Vec::new();
    for payload in ["hello", "pooled", "world"] {
        let mut frame = alloc.copy_from_slice(payload.as_bytes());
        let payload_at = frame.as_ptr();
        let len = u32::try_from(frame.len()).expect("small payload").to_be_bytes();
        assert!(frame.prepend(&len), "the allocator reserved {HEADER_LEN} bytes of headroom");
        assert_eq!(frame[HEADER_LEN..].as_ptr(), payload_at, "prepending copied nothing");
        println!("frame {:>2} bytes: {:02x?}", frame.len(), &frame[..]);
        frames.push(frame);
    }

    // 4. With the header in place each frame fills its reserve, so the frames
    //    touch in memory, and coalesce joins them into one slice: no copy.
    let first_at = frames[0].as_ptr();
    coalesce(&mut frames, usize::MAX);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].as_ptr(), first_at);
    println!("coalesced into {} slice of {} bytes", frames.len(), frames[0].len());

    // 5. A reader over any `io::Read` hands out exactly the frames asked for,
    //    as slices of pool memory.
    let wire = frames.pop().expect("one coalesced slice");
    let mut reader = pool.reader(&wire[..]);
    loop {
        let header = match reader.read(HEADER_LEN) {
            Ok(header) => header,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let len = u32::from_be_bytes(header[..].try_into().expect("4 bytes")) as usize;
        let body = reader.read(len)?;
        println!("read frame: {:?}", String::from_utf8_lossy(&body));
    }

    // 6. Stats: the reader, the allocator and the wire slice still hold bufs.
    println!("in use:      {}", pool.stats());
    drop(reader);
    drop((alloc, wire));
    println!("all dropped: {}", pool.stats());
    Ok(())
}
