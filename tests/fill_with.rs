//! `Allocator::fill_with`: the receive primitive.

use std::cell::Cell;
use std::io::{self, Read};

use refbuf::{AllocError, Pool, Slice};

fn pool64() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// One past the last byte of `s`.
fn end(s: &Slice) -> *const u8 {
    s.as_ptr().wrapping_add(s.len())
}

/// The slice's headroom bytes, read through `expand_front` and restored.
fn headroom_bytes(s: &mut Slice) -> Vec<u8> {
    let r = s.headroom();
    assert!(s.expand_front(r));
    let bytes = s[..r].to_vec();
    s.truncate_front(r);
    bytes
}

/// f is handed exactly max bytes; the slice is the n bytes it filled, with the reserve as headroom.
#[test]
fn hands_max_bytes_and_keeps_n() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut src = &b"datagram"[..];
    let given = Cell::new(0);
    let s = alloc
        .fill_with(20, |buf| {
            given.set(buf.len());
            src.read(buf)
        })
        .expect("fill");
    assert_eq!(given.get(), 20);
    assert_eq!(&s[..], b"datagram");
    assert_eq!(s.headroom(), 4);
}

/// The unused tail stays with the allocator: the next slice starts reserve bytes after the filled bytes.
#[test]
fn unused_tail_goes_back_to_the_allocator() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let first = alloc.fill_with(40, |buf| (&b"abc"[..]).read(buf)).expect("fill");
    let next = alloc.copy_from_slice(b"next");
    assert_eq!(next.as_ptr(), end(&first).wrapping_add(4));
    assert_eq!(pool.stats().bufs_created, 1, "both fit one 64-byte buf");
}

/// The reserve is zeroed even on a recycled buf full of old bytes; the filled bytes are what f wrote.
#[test]
fn reserve_is_zeroed_on_a_dirty_buf() {
    let pool = pool64();
    {
        let mut alloc = pool.allocator(0);
        alloc.alloc_for_overwrite(64).fill(0xAA);
    }
    assert_eq!(pool.stats().bufs_idle, 1);
    let mut alloc = pool.allocator(8);
    let mut s = alloc
        .fill_with(16, |buf| {
            buf[..5].copy_from_slice(b"fresh");
            Ok(5)
        })
        .expect("fill");
    assert_eq!(pool.stats().bufs_created, 1, "the dirty buf was reused");
    assert_eq!(headroom_bytes(&mut s), [0; 8]);
    assert_eq!(&s[..], b"fresh");
}

/// An error from f is returned as it is, and nothing is taken: the next slice starts where the failed one would have.
#[test]
fn error_from_f_holds_nothing() {
    let pool = pool64();
    let mut alloc = pool.allocator(2);
    let before = alloc.copy_from_slice(b"x");
    let err = alloc
        .fill_with(30, |buf| {
            buf.fill(7);
            Err(io::Error::new(io::ErrorKind::WouldBlock, "nothing to receive"))
        })
        .expect_err("f failed");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(err.to_string(), "nothing to receive");
    let next = alloc.copy_from_slice(b"y");
    assert_eq!(next.as_ptr(), end(&before).wrapping_add(2), "the cursor did not move");
}

/// f claiming more than max bytes is an InvalidData error, and nothing is taken.
#[test]
fn n_above_max_is_invalid_data() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let before = alloc.copy_from_slice(b"x");
    let err = alloc.fill_with(10, |_| Ok(11)).expect_err("n > max");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(alloc.copy_from_slice(b"y").as_ptr(), end(&before));
}

/// A fill that does not fit what is left of the buf takes a new one, larger than buf_size when max needs it.
#[test]
fn large_max_takes_a_new_buf() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let small = alloc.fill_with(30, |_| Ok(30)).expect("fill");
    let big = alloc
        .fill_with(100, |buf| {
            buf.fill(9);
            Ok(100)
        })
        .expect("fill");
    assert_eq!(big.len(), 100);
    assert!(big.iter().all(|&b| b == 9));
    assert_ne!(big.as_ptr(), end(&small).wrapping_add(4));
    let s = pool.stats();
    assert_eq!((s.bufs_created, s.bytes_in_use), (2, 64 + 128));
}

/// f may fill nothing: the slice is empty with the reserve as headroom.
#[test]
fn zero_filled_is_an_empty_slice_with_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(6);
    let mut s = alloc.fill_with(10, |_| Ok(0)).expect("fill");
    assert!(s.is_empty());
    assert_eq!(s.headroom(), 6);
    assert!(s.prepend(b"header"));
    assert_eq!(&s[..], b"header");
}

/// On a closed pool, or where reserve + max overflows, fill_with fails without calling f.
#[test]
fn no_memory_means_f_is_not_called() {
    let pool = pool64();
    let mut alloc = pool.allocator(1);
    let called = Cell::new(false);
    let err = alloc
        .fill_with(usize::MAX, |_| {
            called.set(true);
            Ok(0)
        })
        .expect_err("too large");
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::TooLarge));
    pool.close();
    let err = alloc
        .fill_with(8, |_| {
            called.set(true);
            Ok(0)
        })
        .expect_err("closed");
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Closed));
    assert!(!called.get());
}

/// Consecutive fills with reserve 0 touch, so coalesce joins received data without copying.
#[test]
fn consecutive_fills_touch() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut src = &b"abcdefgh"[..];
    let mut parts: Vec<Slice> =
        (0..3).map(|_| alloc.fill_with(3, |buf| src.read(buf)).expect("fill")).collect();
    assert_eq!(end(&parts[0]), parts[1].as_ptr());
    refbuf::coalesce(&mut parts, usize::MAX);
    assert_eq!(parts.len(), 1);
    assert_eq!(&parts[0][..], b"abcdefgh");
}
