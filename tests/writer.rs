//! `Writer`: appending into pool memory as `io::Write` and
//! `BufMut`, growing one slice in place, capped by `with_max_len`.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::BufMut;
use refbuf::{AllocError, Chain, Pool, Slice};

fn pool64() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// One past the last byte of `s`.
fn end(s: &Slice) -> *const u8 {
    s.as_ptr().wrapping_add(s.len())
}

fn contents(chain: &Chain) -> Vec<u8> {
    chain.iter().flat_map(|part| part.iter().copied()).collect()
}

fn part_lens(chain: &Chain) -> Vec<usize> {
    chain.iter().map(|part| part.len()).collect()
}

/// Small writes grow one slice in place: one part, starting where the first write went, holding every byte in order.
#[test]
fn writes_grow_one_slice_in_place() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let before = alloc.copy_from_slice(b"x");
    let mut w = alloc.writer();
    for word in [&b"one "[..], b"two ", b"three"] {
        w.write_all(word).expect("write");
    }
    assert_eq!(w.len(), 13);
    let chain = w.finish();
    assert_eq!(part_lens(&chain), [13]);
    let part = chain.iter().next().expect("a part");
    assert_eq!(part.as_ptr(), end(&before), "the writer started at the allocator's cursor");
    assert_eq!(&part[..], b"one two three");
    assert_eq!(pool.stats().bufs_created, 1);
}

/// When the buf is full the writer moves to a new buf and a new part; every byte arrives in order.
#[test]
fn full_buf_starts_a_new_part() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer();
    let data: Vec<u8> = (0..150).map(|i| i as u8).collect();
    for chunk in data.chunks(10) {
        w.write_all(chunk).expect("write");
    }
    let chain = w.finish();
    assert_eq!(part_lens(&chain), [64, 64, 22]);
    assert_eq!(contents(&chain), data);
    assert_eq!(pool.stats().bufs_created, 3);
}

/// One write larger than a buf fills the current buf, then standard bufs, in parts.
#[test]
fn a_large_write_spans_bufs() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let _head = alloc.copy_from_slice(&[0; 40]);
    let mut w = alloc.writer();
    let data: Vec<u8> = (0..200).map(|i| (i * 7) as u8).collect();
    assert_eq!(w.write(&data).expect("write"), 200, "all of it in one call");
    let chain = w.finish();
    assert_eq!(part_lens(&chain), [24, 64, 64, 48]);
    assert_eq!(contents(&chain), data);
}

/// Each part that starts a buf gets the allocator's reserve as zeroed headroom, so a header can be prepended in place.
#[test]
fn new_parts_get_zeroed_reserve() {
    let pool = pool64();
    {
        let mut dirty = pool.allocator(0);
        dirty.alloc_for_overwrite(64).fill(0xAA);
    }
    let mut alloc = pool.allocator(4);
    let mut w = alloc.writer();
    w.write_all(&[1; 70]).expect("write");
    let mut chain = w.finish();
    assert_eq!(part_lens(&chain), [60, 10]);
    assert_eq!(chain.iter().map(Slice::headroom).collect::<Vec<_>>(), [4, 4]);
    while let Some(mut part) = chain.pop_front() {
        assert!(part.expand_front(4));
        assert_eq!(part[..4], [0; 4], "reserve is zeroed, not the old 0xAA");
    }
}

/// with_max_len accepts writes up to the cap exactly, refuses one past it with InvalidInput keeping none of its bytes, and accepts smaller writes after.
#[test]
fn max_len_refuses_whole_writes() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer().with_max_len(10);
    assert_eq!(w.max_len(), 10);
    w.write_all(b"123456").expect("fits");
    let err = w.write(b"78901").expect_err("past the cap");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(w.len(), 6, "nothing partial kept");
    w.write_all(b"7890").expect("fits exactly");
    assert!(w.write(b"x").is_err());
    assert_eq!(contents(&w.finish()), b"1234567890");
}

/// A cap set below what is already written refuses every further non-empty write.
#[test]
fn max_len_below_written() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer();
    w.write_all(b"abcdef").expect("write");
    let mut w = w.with_max_len(3);
    assert!(w.write(b"g").is_err());
    assert_eq!(w.write(b"").expect("an empty write fits"), 0);
    assert_eq!(w.remaining_mut(), 0);
    assert_eq!(contents(&w.finish()), b"abcdef");
}

/// Dropping an unfinished writer releases everything it wrote.
#[test]
fn dropping_the_writer_releases() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer();
    w.write_all(&[5; 200]).expect("write");
    assert_eq!(pool.stats().bufs_in_use, 4);
    drop(w);
    assert_eq!(pool.stats().bufs_in_use, 1, "only the allocator's current buf is held");
    drop(alloc);
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// After finish, the allocator carries on right after the writer's bytes (plus the reserve).
#[test]
fn allocator_continues_after_the_writer() {
    let pool = pool64();
    let mut alloc = pool.allocator(2);
    let mut w = alloc.writer();
    w.write_all(b"written").expect("write");
    let chain = w.finish();
    let next = alloc.copy_from_slice(b"next");
    assert_eq!(next.as_ptr(), end(chain.iter().next().expect("a part")).wrapping_add(2));
}

/// A write that needs a new buf from a closed pool fails and keeps nothing partial; bytes written before stay.
#[test]
fn closed_pool_fails_the_whole_write() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer();
    w.write_all(b"kept").expect("write");
    pool.close();
    let err = w.write(&[1; 100]).expect_err("needs a new buf");
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Closed));
    assert_eq!(w.len(), 4);
    assert_eq!(contents(&w.finish()), b"kept");
}

/// write! formats straight into pool memory.
#[test]
fn write_fmt_formats_into_pool_memory() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer();
    let id = "id";
    write!(w, "{id}:{:04}", 42).expect("write");
    w.flush().expect("flush");
    assert_eq!(contents(&w.finish()), b"id:0042");
}

// ---------------------------------------------------------------------------
// BufMut
// ---------------------------------------------------------------------------

/// BufMut's put methods append big-endian integers and slices, growing the same slice.
#[test]
fn bufmut_put_methods() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer();
    w.put_u32(0x0102_0304);
    w.put_u8(b'!');
    w.put_slice(b"tail");
    w.put(&b"-more"[..]);
    let chain = w.finish();
    assert_eq!(part_lens(&chain), [14]);
    assert_eq!(contents(&chain), b"\x01\x02\x03\x04!tail-more");
}

/// chunk_mut hands out the room left in the current buf, capped at remaining_mut, and advance_mut commits what was written into it.
#[test]
fn bufmut_chunk_mut_and_advance_mut() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let _head = alloc.copy_from_slice(&[0; 50]);
    let mut w = alloc.writer().with_max_len(20);
    assert_eq!(w.remaining_mut(), 20);
    let room = w.chunk_mut();
    assert_eq!(room.len(), 14, "what is left of the buf");
    room.copy_from_slice(b"abcdefghijklmn");
    // SAFETY: the 14 bytes were just written.
    unsafe { w.advance_mut(14) };
    assert_eq!(w.remaining_mut(), 6);
    let room = w.chunk_mut();
    assert_eq!(room.len(), 6, "a new buf, capped at the remaining 6");
    room[..3].copy_from_slice(b"opq");
    // SAFETY: the 3 bytes were just written.
    unsafe { w.advance_mut(3) };
    // SAFETY: advancing by zero bytes commits nothing.
    unsafe { w.advance_mut(0) };
    let chain = w.finish();
    assert_eq!(part_lens(&chain), [14, 3]);
    assert_eq!(contents(&chain), b"abcdefghijklmnopq");
}

/// chunk_mut is empty exactly when remaining_mut is 0.
#[test]
fn bufmut_chunk_mut_empty_iff_no_room() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut w = alloc.writer().with_max_len(3);
    assert_ne!(w.chunk_mut().len(), 0);
    w.put_slice(b"abc");
    assert_eq!(w.remaining_mut(), 0);
    assert_eq!(w.chunk_mut().len(), 0);
    assert!(!w.has_remaining_mut());
}

/// advance_mut past the room chunk_mut hands out panics, and put_slice past the cap panics, both keeping what was written.
#[test]
fn bufmut_out_of_bounds_panics() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let _head = alloc.copy_from_slice(&[0; 60]);
    let mut w = alloc.writer().with_max_len(10);
    w.put_slice(b"ab");
    // SAFETY: the call panics before committing anything.
    let past_room = catch_unwind(AssertUnwindSafe(|| unsafe { w.advance_mut(3) }));
    assert!(past_room.is_err(), "only 2 bytes of room are left in the buf");
    // SAFETY: as above.
    let past_cap = catch_unwind(AssertUnwindSafe(|| unsafe { w.advance_mut(9) }));
    assert!(past_cap.is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| w.put_slice(&[0; 9]))).is_err());
    assert_eq!(contents(&w.finish()), b"ab");
}
