//! Pool-level behaviour: buf sizes, lifetime of bufs, `close` and exact
//! stats, and bad input, including hostile sizes (`usize::MAX`,
//! `isize::MAX`, overflowing reserves, `buf_size` of 1 and too large to lay
//! out, frames over every maximum) through every API.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use refbuf::{AllocError, DEFAULT_BUF_SIZE, DEFAULT_MAX_POOLED_MULTIPLE, Pool, Slice};

/// `(bufs_created, bufs_in_use, bufs_idle, bytes_in_use, bytes_idle)`.
fn counts(pool: &Pool) -> (u64, usize, usize, usize, usize) {
    let s = pool.stats();
    (s.bufs_created, s.bufs_in_use, s.bufs_idle, s.bytes_in_use, s.bytes_idle)
}

/// One past the last byte of `s`.
fn end(s: &Slice) -> *const u8 {
    s.as_ptr().wrapping_add(s.len())
}

/// The panic message carried by a `catch_unwind` error.
fn panic_message(err: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = err.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        String::from("<non-string panic>")
    }
}

// ---------------------------------------------------------------------------
// 1. Buf sizes
// ---------------------------------------------------------------------------

/// With buf_size 64 and reserve 0, 64 one-byte slices come from one buf (touching, spanning exactly 64 bytes) and the 65th takes a second buf.
#[test]
fn one_byte_allocs_fill_exactly_one_buf() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let slices: Vec<Slice> = (0..64).map(|_| alloc.alloc(1)).collect();
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    for pair in slices.windows(2) {
        assert_eq!(end(&pair[0]), pair[1].as_ptr(), "consecutive slices must touch");
    }
    assert_eq!(slices[0].as_ptr().wrapping_add(64), end(&slices[63]));

    let extra = alloc.alloc(1);
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));
    assert_ne!(extra.as_ptr(), end(&slices[63]), "the 65th byte cannot come from the full buf");
}

/// `alloc(buf_size)` fits one buf exactly; a zero-length alloc at the very end of the full buf stays in it, and the next byte takes a new buf.
#[test]
fn alloc_of_exactly_buf_size_fits_one_buf() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let full = alloc.alloc(64);
    assert_eq!(full.len(), 64);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));

    let empty = alloc.alloc(0);
    assert!(empty.is_empty());
    assert_eq!(empty.as_ptr(), end(&full), "need 0 fits the 0 bytes left");
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));

    let next = alloc.alloc(1);
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));
    assert_ne!(next.as_ptr(), end(&full));
}

/// `alloc(buf_size + 1)` gets a buf of two buf_sizes, whose 63 spare bytes serve the next request; one more byte then needs a third buf_size.
#[test]
fn alloc_one_over_buf_size_gets_double_buf() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let big = alloc.alloc(65);
    assert_eq!(counts(&pool), (1, 1, 0, 128, 0));

    let rest = alloc.alloc(63);
    assert_eq!(rest.as_ptr(), end(&big), "the rest of the 128-byte buf follows");
    assert_eq!(counts(&pool), (1, 1, 0, 128, 0));

    let more = alloc.alloc(1);
    assert_eq!(counts(&pool), (2, 2, 0, 192, 0));
    assert_ne!(more.as_ptr(), end(&rest));
}

/// The buf's data size is the smallest class (buf_size x 2^k) holding reserve + len (at least one buf_size), for power-of-two and odd buf sizes.
#[test]
fn buf_size_is_smallest_class_holding_reserve_plus_len() {
    let cases: &[(usize, usize, usize, usize)] = &[
        // (buf_size, reserve, len, expected data bytes)
        (64, 0, 0, 64),
        (64, 0, 1, 64),
        (64, 0, 64, 64),
        (64, 8, 56, 64),
        (64, 8, 57, 128),
        (64, 64, 0, 64),
        (64, 64, 1, 128),
        (64, 0, 128, 128),
        (64, 0, 129, 256),
        (64, 1, 1023, 1024),
        (100, 0, 1, 100),
        (100, 0, 100, 100),
        (100, 10, 91, 200),
        (100, 0, 250, 400),
        (1, 0, 5, 8),
        (4096, 16, 4080, 4096),
        (4096, 16, 4081, 8192),
    ];
    for &(buf_size, reserve, len, expected) in cases {
        let pool = Pool::builder().buf_size(buf_size).build();
        let mut alloc = pool.allocator(reserve);
        let slice = alloc.alloc(len);
        assert_eq!(slice.len(), len);
        assert_eq!(
            counts(&pool),
            (1, 1, 0, expected, 0),
            "buf_size {buf_size}, reserve {reserve}, len {len}"
        );
        drop((slice, alloc));
        assert_eq!(
            counts(&pool),
            (1, 0, 1, 0, expected),
            "buf_size {buf_size}, reserve {reserve}, len {len}"
        );
    }
}

/// `buf_size(0)` means DEFAULT_BUF_SIZE (64 KiB), as do `Pool::new()` and `Pool::default()`; `buf_size()` reports the configured size.
#[test]
fn buf_size_zero_means_default() {
    assert_eq!(DEFAULT_BUF_SIZE, 64 * 1024);
    let pool = Pool::builder().buf_size(0).build();
    assert_eq!(pool.buf_size(), DEFAULT_BUF_SIZE);
    assert_eq!(Pool::new().buf_size(), DEFAULT_BUF_SIZE);
    assert_eq!(Pool::default().buf_size(), DEFAULT_BUF_SIZE);
    assert_eq!(Pool::builder().build().buf_size(), DEFAULT_BUF_SIZE);
    assert_eq!(Pool::builder().buf_size(100).build().buf_size(), 100);
    assert_eq!(Pool::builder().buf_size(1).build().buf_size(), 1);

    let mut alloc = pool.allocator(0);
    let slice = alloc.alloc(1);
    assert_eq!(counts(&pool), (1, 1, 0, DEFAULT_BUF_SIZE, 0));
    drop((slice, alloc));
    assert_eq!(counts(&pool), (1, 0, 1, 0, DEFAULT_BUF_SIZE));
}

/// Bufs of up to the largest class (DEFAULT_MAX_POOLED_MULTIPLE x buf_size) go idle when released and are reused; a larger request gets an unpooled multiple of buf_size that is freed (bufs_idle unchanged).
#[test]
fn bufs_up_to_largest_class_are_kept_larger_are_freed() {
    assert_eq!(DEFAULT_MAX_POOLED_MULTIPLE, 16);
    let pool = Pool::builder().buf_size(64).build();
    let largest_pooled = DEFAULT_MAX_POOLED_MULTIPLE * 64;

    let mut alloc = pool.allocator(0);
    let kept = alloc.alloc(largest_pooled);
    drop(alloc);
    assert_eq!(counts(&pool), (1, 1, 0, largest_pooled, 0));
    let kept_at = kept.as_ptr();
    drop(kept);
    assert_eq!(counts(&pool), (1, 0, 1, 0, largest_pooled));

    let mut alloc = pool.allocator(0);
    let too_big = alloc.alloc(largest_pooled + 1);
    assert_eq!(counts(&pool), (2, 1, 1, largest_pooled + 64, largest_pooled));
    drop((too_big, alloc));
    assert_eq!(counts(&pool), (2, 0, 1, 0, largest_pooled), "the oversized buf is freed, not kept");

    // The kept buf is reused for the next request of its class.
    let mut alloc = pool.allocator(0);
    let again = alloc.alloc(largest_pooled / 2 + 1);
    assert_eq!(again.as_ptr(), kept_at);
    assert_eq!(counts(&pool), (2, 1, 0, largest_pooled, 0));
}

/// An idle buf is reused only for requests of its own size: a 1-byte request does not take an idle 128-byte buf, a 100-byte one does.
#[test]
fn idle_bufs_are_reused_only_for_their_size() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let double = alloc.alloc(128);
    let double_at = double.as_ptr();
    drop((double, alloc));
    assert_eq!(counts(&pool), (1, 0, 1, 0, 128));

    let mut small_alloc = pool.allocator(0);
    let small = small_alloc.alloc(1);
    assert_eq!(counts(&pool), (2, 1, 1, 64, 128), "a 1-byte request gets a fresh 64-byte buf");
    assert_ne!(small.as_ptr(), double_at);

    let mut big_alloc = pool.allocator(0);
    let big = big_alloc.alloc(100);
    assert_eq!(big.as_ptr(), double_at, "the idle 128-byte buf is reused");
    assert_eq!(counts(&pool), (2, 2, 0, 192, 0));
}

// ---------------------------------------------------------------------------
// 6. Lifetime
// ---------------------------------------------------------------------------

/// The allocator and every slice (including split-off parts) each hold the buf: it stays in use until the last one lets go, then goes idle.
#[test]
fn buf_returns_only_after_last_holder_lets_go() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let first = alloc.alloc(10);
    let mut second = alloc.alloc(10);
    let third = second.split_off(5);

    drop(alloc);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(second);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(first);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(third);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));

    // Allocator last: the slices go first, the buf stays with the allocator.
    let mut alloc = pool.allocator(0);
    let a = alloc.alloc(1);
    let b = alloc.alloc(1);
    drop((a, b));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(alloc);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));
}

/// A marker in a live slice survives churn through other allocators of the same pool: its buf is never reused (nor counted idle) while the slice lives.
#[test]
fn live_slice_buf_is_never_reused() {
    let rounds = if cfg!(miri) { 6 } else { 300 };
    let pool = Pool::builder().buf_size(64).build();
    let mut keeper = pool.allocator(0);
    let mut kept = keeper.alloc(16);
    kept.fill(0xAA);
    drop(keeper);
    let kept_buf = kept.as_ptr().addr()..kept.as_ptr().addr() + 64;

    for round in 0..rounds {
        let reserve = round % 4;
        let mut a = pool.allocator(reserve);
        let mut b = pool.allocator(reserve);
        let mut sa = a.alloc_for_overwrite(40);
        let mut sb = b.alloc_for_overwrite(40);
        sa.fill(round as u8);
        sb.fill(!(round as u8));
        for s in [&sa, &sb] {
            assert!(
                !kept_buf.contains(&s.as_ptr().addr()),
                "round {round}: the kept slice's buf was handed out"
            );
        }
        assert_eq!(pool.stats().bufs_in_use, 3);
        drop((sa, sb, a, b));
    }
    assert!(kept.iter().all(|&b| b == 0xAA), "the live slice was overwritten");
    assert_eq!(counts(&pool), (3, 1, 2, 64, 128));
}

/// Live holders never share memory: slices from several allocators at once have disjoint ranges and each keeps the byte written into it.
#[test]
fn live_slices_never_overlap() {
    let pool = Pool::builder().buf_size(64).build();
    let mut allocs: Vec<_> = (0..4).map(|r| pool.allocator(r)).collect();
    let mut slices = Vec::new();
    for round in 0..5 {
        for a in &mut allocs {
            let mut s = a.alloc_for_overwrite(9 + round);
            s.fill(slices.len() as u8);
            slices.push(s);
        }
    }
    for (i, s) in slices.iter().enumerate() {
        assert!(s.iter().all(|&b| b == i as u8), "slice {i} was overwritten");
        let (start, stop) = (s.as_ptr().addr(), end(s).addr());
        for (j, t) in slices.iter().enumerate().filter(|&(j, _)| j != i) {
            let (t_start, t_stop) = (t.as_ptr().addr(), end(t).addr());
            assert!(stop <= t_start || t_stop <= start, "slices {i} and {j} overlap");
        }
    }
}

/// Slices outlive their Pool and Allocator: with every handle dropped the slice stays readable, writable, splittable and joinable (Miri checks the free).
#[test]
fn slices_outlive_pool_and_allocator() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(4);
    let mut slice = alloc.copy_from_slice(b"hello world");
    let other = alloc.copy_from_slice(b"!!");
    let idle_maker = {
        let mut a = pool.allocator(0);
        a.alloc(64)
    };
    drop(idle_maker); // one idle buf, to be freed when the pool closes itself
    drop(pool);
    drop(alloc);

    slice[0] = b'H';
    assert_eq!(&slice[..], b"Hello world");
    assert!(slice.prepend(b"abcd"));
    let tail = slice.split_off(9);
    assert!(slice.try_join(tail).is_ok());
    assert_eq!(&slice[..], b"abcdHello world");
    drop(slice);
    assert_eq!(&other[..], b"!!");
}

/// An Allocator keeps its pool open after the user's Pool is dropped: it still takes fresh bufs, and its `pool()` handle shows them.
#[test]
fn allocator_keeps_pool_open() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    drop(pool);
    let first = alloc.alloc(64);
    let second = alloc.alloc(64);
    assert!(!alloc.pool().is_closed());
    assert_eq!(counts(alloc.pool()), (2, 2, 0, 128, 0));
    drop(first);
    assert_eq!(counts(alloc.pool()), (2, 1, 1, 64, 64));
    assert_eq!(&second[..], &[0; 64][..]);
}

/// A Reader keeps its pool open after the user's Pool is dropped, and its slices outlive the reader.
#[test]
fn reader_keeps_pool_open() {
    let pool = Pool::builder().buf_size(64).build();
    let mut reader = pool.reader(&b"abcdef"[..]);
    drop(pool);
    let head = reader.read(2).expect("pool is still open");
    assert!(!reader.pool().is_closed());
    let tail = reader.read(4).expect("pool is still open");
    drop(reader);
    assert_eq!(&head[..], b"ab");
    assert_eq!(&tail[..], b"cdef");
}

/// A Pool clone shares one pool: stats are shared, and dropping one clone neither closes the pool nor disturbs the other.
#[test]
fn pool_clones_share_one_pool() {
    let pool = Pool::builder().buf_size(64).build();
    let clone = pool.clone();
    let mut alloc = clone.allocator(0);
    let slice = alloc.alloc(3);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(clone);
    assert!(!pool.is_closed());
    drop((slice, alloc));
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));
}

/// A slice sent to another thread and dropped there returns its buf to the pool; an Allocator can be moved to and used on another thread.
#[test]
fn holders_can_be_released_on_other_threads() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let slice = alloc.copy_from_slice(b"abc");
    let handle = std::thread::spawn(move || {
        let more = alloc.copy_from_slice(b"def");
        assert_eq!(&slice[..], b"abc");
        (more, alloc)
    });
    let (more, alloc) = handle.join().expect("thread panicked");
    drop(alloc);
    std::thread::spawn(move || drop(more)).join().expect("thread panicked");
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));
}

// ---------------------------------------------------------------------------
// 8. Pool: close and stats
// ---------------------------------------------------------------------------

/// `close()` frees idle bufs at once (bufs_idle and bytes_idle 0), `is_closed()` turns true on every clone, and closing twice is harmless.
#[test]
fn close_frees_idle_bufs_and_twice_is_harmless() {
    let pool = Pool::builder().buf_size(64).build();
    let clone = pool.clone();
    {
        let mut a = pool.allocator(0);
        let mut b = pool.allocator(0);
        let _ = (a.alloc(64), b.alloc(65));
    }
    assert_eq!(counts(&pool), (2, 0, 2, 0, 192));
    assert!(!pool.is_closed());

    pool.close();
    assert!(pool.is_closed());
    assert!(clone.is_closed());
    assert_eq!(counts(&pool), (2, 0, 0, 0, 0));

    clone.close();
    pool.close();
    assert!(pool.is_closed());
    assert_eq!(counts(&pool), (2, 0, 0, 0, 0));
}

/// After close, every try_* gives Err(Closed) even where the allocator's current buf has room, and new allocators are refused too.
#[test]
fn closed_pool_refuses_even_with_room_in_current_buf() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(4);
    let live = alloc.alloc(1);
    pool.close();
    assert_eq!(alloc.try_alloc(1).err(), Some(AllocError::Closed));
    assert_eq!(alloc.try_alloc(0).err(), Some(AllocError::Closed));
    assert_eq!(alloc.try_alloc_for_overwrite(1).err(), Some(AllocError::Closed));
    assert_eq!(alloc.try_copy_from_slice(b"x").err(), Some(AllocError::Closed));
    let mut fresh = pool.allocator(0);
    assert_eq!(fresh.try_alloc(1).err(), Some(AllocError::Closed));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0), "refused requests take nothing");
    assert_eq!(live.len(), 1);
}

/// After close, `alloc` panics with a message saying the pool is closed.
#[test]
#[should_panic(expected = "closed")]
fn alloc_on_closed_pool_panics() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let _live = alloc.alloc(1);
    pool.close();
    let _ = alloc.alloc(1);
}

/// After close, `alloc_for_overwrite` and `copy_from_slice` panic saying the pool is closed.
#[test]
fn other_allocs_on_closed_pool_panic() {
    let pool = Pool::builder().buf_size(64).build();
    pool.close();
    let mut alloc = pool.allocator(0);
    let err = catch_unwind(AssertUnwindSafe(|| alloc.alloc_for_overwrite(1))).expect_err("must panic");
    assert!(panic_message(&*err).contains("closed"), "message: {}", panic_message(&*err));
    let err = catch_unwind(AssertUnwindSafe(|| alloc.copy_from_slice(b"abc"))).expect_err("must panic");
    assert!(panic_message(&*err).contains("closed"), "message: {}", panic_message(&*err));
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

/// Bufs released after close are freed (bufs_in_use drops, bufs_idle stays 0), and slices alive at close stay valid and writable meanwhile.
#[test]
fn bufs_released_after_close_are_freed() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let mut first = alloc.copy_from_slice(b"first");
    let second = alloc.alloc(64); // a second buf
    let mut other = pool.allocator(0);
    let third = other.alloc(100); // a 128-byte buf
    drop(other);
    assert_eq!(counts(&pool), (3, 3, 0, 256, 0));

    pool.close();
    first.copy_from_slice(b"FIRST");
    assert_eq!(&first[..], b"FIRST");
    assert!(second.iter().all(|&b| b == 0));

    drop(third);
    assert_eq!(counts(&pool), (3, 2, 0, 128, 0));
    drop(second);
    assert_eq!(counts(&pool), (3, 2, 0, 128, 0), "the allocator still holds the second buf");
    drop(alloc);
    assert_eq!(counts(&pool), (3, 1, 0, 64, 0));
    assert_eq!(&first[..], b"FIRST");
    drop(first);
    assert_eq!(counts(&pool), (3, 0, 0, 0, 0));
}

/// A Reader on a closed pool returns an io::Error (kind Other, wrapping AllocError::Closed) instead of a slice.
#[test]
fn reader_on_closed_pool_errors() {
    let pool = Pool::builder().buf_size(64).build();
    pool.close();
    let mut reader = pool.reader(&b"abcdef"[..]);
    let err = reader.read(4).expect_err("closed pool");
    assert_eq!(err.kind(), io::ErrorKind::Other);
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<AllocError>());
    assert_eq!(inner, Some(&AllocError::Closed));
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

/// `stats()` is exact through a scripted single-threaded sequence: creation, reuse, size classes, a large buf, release order and close.
#[test]
fn stats_follow_scripted_sequence() {
    let pool = Pool::builder().buf_size(64).build();
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));

    let mut a = pool.allocator(8);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    let s1 = a.alloc(20); // need 28 of 64
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    let s2 = a.alloc(28); // need 36: exactly the rest
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    let s3 = a.alloc(100); // need 108: a new 128-byte buf
    assert_eq!(counts(&pool), (2, 2, 0, 192, 0));

    let mut b = pool.allocator(0);
    let huge = b.alloc(17 * 64); // beyond the largest class
    assert_eq!(counts(&pool), (3, 3, 0, 192 + 1088, 0));
    drop(huge);
    assert_eq!(counts(&pool), (3, 3, 0, 192 + 1088, 0), "the allocator still holds it");
    drop(b);
    assert_eq!(counts(&pool), (3, 2, 0, 192, 0));

    drop((s1, s2));
    assert_eq!(counts(&pool), (3, 1, 1, 128, 64));
    drop(s3);
    assert_eq!(counts(&pool), (3, 1, 1, 128, 64), "the allocator still holds the 128-byte buf");
    drop(a);
    assert_eq!(counts(&pool), (3, 0, 2, 0, 192));

    // Reuse from both size classes; nothing new is created.
    let mut c = pool.allocator(0);
    let t1 = c.alloc(64);
    let t2 = c.alloc(65);
    assert_eq!(counts(&pool), (3, 2, 0, 192, 0));
    let t3 = c.alloc(64); // 63 bytes left in the 128-byte buf: too few
    assert_eq!(counts(&pool), (4, 3, 0, 256, 0));

    pool.close();
    assert_eq!(counts(&pool), (4, 3, 0, 256, 0));
    drop((t1, t2, t3));
    assert_eq!(counts(&pool), (4, 1, 0, 64, 0));
    drop(c);
    assert_eq!(counts(&pool), (4, 0, 0, 0, 0));
}

// ---------------------------------------------------------------------------
// 9. Bad input
// ---------------------------------------------------------------------------

/// try_alloc with a length that overflows with the reserve or cannot be laid out gives TooLarge, takes nothing, and the allocator carries on in its current buf.
#[test]
fn try_alloc_too_large_leaves_allocator_usable() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(8);
    let before = alloc.alloc(4);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));

    let max = isize::MAX as usize;
    for len in [usize::MAX, usize::MAX - 8, usize::MAX - 7, max, max + 1, max - 8, max - 100] {
        assert_eq!(alloc.try_alloc(len).err(), Some(AllocError::TooLarge), "len {len}");
        assert_eq!(counts(&pool), (1, 1, 0, 64, 0), "len {len}: stats changed by a failed request");
    }

    let after = alloc.alloc(4);
    assert_eq!(after.as_ptr(), end(&before).wrapping_add(8), "the current buf was kept");
    assert_eq!(after.headroom(), 8);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop((before, after, alloc));
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64), "no buf leaked by the failures");
}

/// On a fresh allocator (no buf yet) a too-large request takes no buf and leaks nothing; the next good request then works.
#[test]
fn too_large_on_fresh_allocator_takes_nothing() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    assert_eq!(alloc.try_alloc(usize::MAX).err(), Some(AllocError::TooLarge));
    assert_eq!(alloc.try_alloc_for_overwrite(isize::MAX as usize).err(), Some(AllocError::TooLarge));
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    let ok = alloc.alloc(10);
    assert_eq!(&ok[..], &[0; 10]);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
}

/// A reserve alone so large that reserve + len overflows (or cannot be laid out) makes every try_* return TooLarge with stats unchanged.
#[test]
fn huge_reserve_gives_too_large() {
    let pool = Pool::builder().buf_size(64).build();
    for reserve in [usize::MAX, isize::MAX as usize] {
        let mut alloc = pool.allocator(reserve);
        assert_eq!(alloc.reserve(), reserve);
        assert_eq!(alloc.try_alloc(0).err(), Some(AllocError::TooLarge), "reserve {reserve}");
        assert_eq!(alloc.try_alloc(1).err(), Some(AllocError::TooLarge), "reserve {reserve}");
        assert_eq!(alloc.try_alloc_for_overwrite(1).err(), Some(AllocError::TooLarge), "reserve {reserve}");
        assert_eq!(alloc.try_copy_from_slice(b"x").err(), Some(AllocError::TooLarge), "reserve {reserve}");
        assert_eq!(alloc.try_copy_from_slice(b"").err(), Some(AllocError::TooLarge), "reserve {reserve}");
    }
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    let mut ok = pool.allocator(8);
    assert_eq!(&ok.copy_from_slice(b"fine")[..], b"fine");
}

/// try_alloc_for_overwrite with a too-large length gives TooLarge and the allocator carries on in its current buf.
#[test]
fn try_alloc_for_overwrite_too_large_leaves_allocator_usable() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(2);
    let before = alloc.alloc_for_overwrite(5);
    for len in [usize::MAX, usize::MAX - 2, isize::MAX as usize] {
        assert_eq!(alloc.try_alloc_for_overwrite(len).err(), Some(AllocError::TooLarge), "len {len}");
    }
    let after = alloc.alloc_for_overwrite(5);
    assert_eq!(after.as_ptr(), end(&before).wrapping_add(2));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
}

/// try_copy_from_slice where reserve + data length overflows or cannot be laid out gives TooLarge with stats unchanged.
#[test]
fn try_copy_from_slice_too_large() {
    let pool = Pool::builder().buf_size(64).build();
    let mut ok = pool.allocator(0);
    let live = ok.alloc(1);
    let mut alloc = pool.allocator(usize::MAX - 2);
    assert_eq!(alloc.try_copy_from_slice(b"abc").err(), Some(AllocError::TooLarge));
    let mut alloc = pool.allocator(isize::MAX as usize - 2);
    assert_eq!(alloc.try_copy_from_slice(b"abc").err(), Some(AllocError::TooLarge));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    let next = ok.copy_from_slice(b"abc");
    assert_eq!(next.as_ptr(), end(&live));
}

/// `alloc(usize::MAX)` panics with a message naming the length.
#[test]
#[should_panic(expected = "18446744073709551615")]
fn alloc_too_large_panics_with_length() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let _ = alloc.alloc(usize::MAX);
}

/// `alloc_for_overwrite(isize::MAX)` panics with a message naming the length.
#[test]
#[should_panic(expected = "9223372036854775807")]
fn alloc_for_overwrite_too_large_panics_with_length() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let _ = alloc.alloc_for_overwrite(isize::MAX as usize);
}

/// `copy_from_slice` with an overflowing reserve panics with a message naming the data length.
#[test]
#[should_panic(expected = "3 bytes")]
fn copy_from_slice_too_large_panics_with_length() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(usize::MAX);
    let _ = alloc.copy_from_slice(b"abc");
}

/// A panicking `alloc` names the length and the reason, leaks nothing, and the allocator is usable afterwards in the same buf.
#[test]
fn allocator_usable_after_alloc_panic() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let before = alloc.alloc(3);
    let len = isize::MAX as usize - 1;
    let err = catch_unwind(AssertUnwindSafe(|| alloc.alloc(len))).expect_err("must panic");
    let msg = panic_message(&*err);
    assert!(msg.contains(&len.to_string()), "message lacks the length: {msg}");
    assert!(msg.contains("too large"), "message lacks the reason: {msg}");
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    let after = alloc.alloc(3);
    assert_eq!(after.as_ptr(), end(&before));
}

/// A pool whose buf_size itself cannot be laid out refuses every request with TooLarge instead of misbehaving.
#[test]
fn unlayoutable_buf_size_gives_too_large() {
    for buf_size in [usize::MAX, isize::MAX as usize, 1 << 62] {
        let pool = Pool::builder().buf_size(buf_size).build();
        let mut alloc = pool.allocator(0);
        let result = if buf_size == 1 << 62 { alloc.try_alloc((1 << 62) + 1) } else { alloc.try_alloc(1) };
        assert_eq!(result.err(), Some(AllocError::TooLarge), "buf_size {buf_size}");
        assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    }
}

/// A length that can be laid out but that the system allocator refuses gives OutOfMemory (not TooLarge) with bufs_created, bufs_in_use and the high-water mark restored; the allocator, whose buf a slice still uses, kept it and carries on in it.
#[test]
#[cfg_attr(miri, ignore = "Miri aborts on a huge allocation instead of returning null")]
fn system_refusal_gives_out_of_memory_and_restores_stats() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let before = alloc.alloc(1);
    // About 2^63 bytes: passes the layout check, but no system can supply it.
    let len = isize::MAX as usize - 1000;
    assert_eq!(alloc.try_alloc(len).err(), Some(AllocError::OutOfMemory));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    assert_eq!(pool.stats().high_water_bytes, 64, "a buf the system refused never counts");
    let after = alloc.alloc(1);
    assert_eq!(after.as_ptr(), end(&before));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    // A waiting request the system refuses lets its buf go first, as every
    // request that may wait does.
    assert_eq!(alloc.alloc_timeout(len, Duration::from_secs(3600)).err(), Some(AllocError::OutOfMemory));
    assert_eq!(pool.stats().high_water_bytes, 64);
    let fresh = alloc.alloc(1);
    assert_ne!(fresh.as_ptr(), end(&after));
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));
}

/// AllocError is Display + std::error::Error with a distinct message per variant, and converts to io::Error (TooLarge -> InvalidInput, Closed -> Other, Exhausted and OutOfMemory -> OutOfMemory), downcastable back.
#[test]
fn alloc_error_traits_and_io_conversion() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let all = [AllocError::Closed, AllocError::Exhausted, AllocError::TooLarge, AllocError::OutOfMemory];
    for e in &all {
        assert_error(e);
        assert!(!e.to_string().is_empty());
        let boxed: Box<dyn std::error::Error> = Box::new(*e);
        assert_eq!(boxed.to_string(), e.to_string());
    }
    assert!(AllocError::Closed.to_string().contains("closed"));
    assert_ne!(AllocError::Closed.to_string(), AllocError::TooLarge.to_string());
    assert_ne!(AllocError::Exhausted.to_string(), AllocError::TooLarge.to_string());
    assert_ne!(AllocError::OutOfMemory.to_string(), AllocError::TooLarge.to_string());
    assert_ne!(AllocError::OutOfMemory.to_string(), AllocError::Exhausted.to_string());

    assert_eq!(io::Error::from(AllocError::TooLarge).kind(), io::ErrorKind::InvalidInput);
    assert_eq!(io::Error::from(AllocError::Closed).kind(), io::ErrorKind::Other);
    assert_eq!(io::Error::from(AllocError::Exhausted).kind(), io::ErrorKind::OutOfMemory);
    assert_eq!(io::Error::from(AllocError::OutOfMemory).kind(), io::ErrorKind::OutOfMemory);
    for e in all {
        let io_err = io::Error::from(e);
        assert_eq!(io_err.get_ref().and_then(|inner| inner.downcast_ref::<AllocError>()), Some(&e));
    }
}

/// A reader that already holds bytes refuses to read once the pool is closed, as an allocator with room
/// left does, and keeps the buffered bytes; its error downcasts to AllocError::Closed.
#[test]
fn reader_with_buffered_bytes_refuses_after_close() {
    let pool = Pool::builder().buf_size(64).build();
    let mut reader = pool.reader(&b"abcdefgh"[..]);
    assert_eq!(&reader.read(2).unwrap()[..], b"ab");
    assert_eq!(reader.buffered(), 6);
    pool.close();
    let err = reader.read(2).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Closed));
    assert_eq!(reader.buffered(), 6);
}

/// The `io::Error` of a refused request, as the pool's `AllocError`.
fn alloc_error_of(e: &io::Error) -> Option<AllocError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<AllocError>()).copied()
}

/// With buf_size 1 every size is a multiple: allocations of 0 to 40 bytes with a reserve, a reader and a writer all work, and every buf comes back.
#[test]
fn buf_size_one_serves_every_api() {
    let pool = Pool::builder().buf_size(1).build();
    assert_eq!(pool.buf_size(), 1);
    let mut alloc = pool.allocator(3);
    let held: Vec<Slice> = (0..40u8).map(|n| alloc.copy_from_slice(&vec![n; n.into()])).collect();
    for (n, s) in held.iter().enumerate() {
        assert_eq!((s.len(), s.headroom()), (n, 3));
        assert!(s.iter().all(|&b| usize::from(b) == n));
    }
    let filled = alloc
        .fill_with(5, |buf| {
            buf[..5].copy_from_slice(b"abcde");
            Ok(5)
        })
        .expect("fill_with");
    assert_eq!((&filled[..], filled.headroom()), (&b"abcde"[..], 3));
    let data: Vec<u8> = (0..100).collect();
    let mut reader = pool.reader(&data[..]);
    let frames: Vec<Slice> = [1, 0, 2, 17, 80].map(|n| reader.read(n).expect("read")).into();
    assert_eq!(frames.iter().flat_map(|s| s.iter().copied()).collect::<Vec<u8>>(), data);
    let mut w = alloc.writer();
    io::Write::write_all(&mut w, &data).expect("write");
    assert_eq!(w.finish().iter().flat_map(|s| s.iter().copied()).collect::<Vec<u8>>(), data);
    drop((held, filled, frames, reader, alloc));
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// A pool whose buf_size cannot be laid out refuses the reader, the writer and fill_with too, with TooLarge and nothing taken, and never calls fill_with's closure.
#[test]
fn unlayoutable_buf_size_refuses_every_api() {
    for buf_size in [usize::MAX, isize::MAX as usize + 1, isize::MAX as usize] {
        let pool = Pool::builder().buf_size(buf_size).build();
        let mut alloc = pool.allocator(0);
        let e = alloc.fill_with(1, |_| unreachable!("no room was made")).expect_err("fill_with");
        assert_eq!(alloc_error_of(&e), Some(AllocError::TooLarge), "buf_size {buf_size}");
        let mut w = alloc.writer();
        let e = io::Write::write(&mut w, b"x").expect_err("write");
        assert_eq!(alloc_error_of(&e), Some(AllocError::TooLarge), "buf_size {buf_size}");
        assert!(w.finish().is_empty());
        let mut reader = pool.reader(&b"abc"[..]);
        let e = reader.read(1).expect_err("read");
        assert_eq!(alloc_error_of(&e), Some(AllocError::TooLarge), "buf_size {buf_size}");
        assert_eq!(reader.read(0).expect("an empty frame needs no buf").len(), 0);
        assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    }
}

/// fill_with where reserve + max overflows, or max is isize::MAX or usize::MAX, gives TooLarge without calling the closure, and the allocator carries on in its current buf.
#[test]
fn fill_with_over_every_maximum_is_refused() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(8);
    let before = alloc.alloc(1);
    for max in [usize::MAX, usize::MAX - 7, isize::MAX as usize, (isize::MAX as usize) + 1] {
        let e = alloc.fill_with(max, |_| unreachable!("no room was made")).expect_err("fill_with");
        assert_eq!(alloc_error_of(&e), Some(AllocError::TooLarge), "max {max}");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
    let mut huge_reserve = pool.allocator(usize::MAX);
    let e = huge_reserve.fill_with(1, |_| unreachable!("no room was made")).expect_err("fill_with");
    assert_eq!(alloc_error_of(&e), Some(AllocError::TooLarge));
    let after = alloc.alloc(1);
    assert_eq!(after.as_ptr(), end(&before).wrapping_add(8), "still the same buf");
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
}

/// Writers capped at 0, 1 and usize::MAX: writes past the cap are refused whole with InvalidInput, empty writes always succeed, and the allocator keeps serving after.
#[test]
fn writer_caps_at_the_extremes() {
    let pool = Pool::builder().buf_size(16).build();
    let mut alloc = pool.allocator(2);
    for cap in [0, 1, usize::MAX] {
        let mut w = alloc.writer().with_max_len(cap);
        assert_eq!(io::Write::write(&mut w, b"").expect("an empty write"), 0);
        let too_long = vec![7; cap.saturating_add(1).min(100)];
        let result = io::Write::write(&mut w, &too_long);
        if cap == usize::MAX {
            assert_eq!(result.expect("under the cap"), too_long.len());
        } else {
            assert_eq!(result.expect_err("past the cap").kind(), io::ErrorKind::InvalidInput);
            assert_eq!(w.len(), 0, "nothing of a refused write is kept");
        }
        drop(w.finish());
    }
    assert_eq!(&alloc.copy_from_slice(b"ok")[..], b"ok");
    drop(alloc);
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// Reader frames over every maximum (usize::MAX, isize::MAX, one past it, and one just short of overflowing a buf_size multiple) are refused with TooLarge, keep the buffered bytes, and reading carries on.
#[test]
fn reader_frames_over_every_maximum_are_refused() {
    let pool = Pool::builder().buf_size(64).build();
    let data: Vec<u8> = (0..200).map(|k| k as u8).collect();
    // No frame limit of the reader's own: the pool's limits are under test.
    let mut reader = pool.reader(&data[..]).with_max_frame_len(usize::MAX);
    assert_eq!(&reader.read(3).expect("read")[..], &data[..3]);
    let buffered = reader.buffered();
    for n in [usize::MAX, usize::MAX - 63, isize::MAX as usize, isize::MAX as usize + 1] {
        let e = reader.read(n).expect_err("too large");
        assert_eq!(alloc_error_of(&e), Some(AllocError::TooLarge), "frame of {n}");
        assert_eq!(reader.buffered(), buffered, "frame of {n}: buffered bytes kept");
    }
    assert_eq!(&reader.read(197).expect("the rest")[..], &data[3..]);
}

/// A buf the system refuses never raises the high-water mark: after a refused 1 TiB request the mark
/// is what the pool has actually held.
#[test]
#[cfg_attr(miri, ignore = "Miri aborts on a huge allocation instead of returning null")]
fn high_water_counts_only_bufs_made() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    assert_eq!(alloc.try_alloc(1 << 40).err(), Some(AllocError::OutOfMemory));
    assert_eq!(pool.stats().high_water_bytes, 0);
    let held = alloc.alloc(10);
    assert_eq!(alloc.try_alloc(1 << 40).err(), Some(AllocError::OutOfMemory));
    let stats = pool.stats();
    assert_eq!((stats.high_water_bytes, stats.bytes_in_use, stats.bufs_created), (64, 64, 1), "{stats:?}");
    drop(held);
}

/// PoolStats' Display is one line with sizes people read at a glance, and names the counters that are not
/// zero.
#[test]
fn stats_display_is_one_readable_line() {
    let pool = Pool::builder().buf_size(1536).max_bytes(3 * 1536).thread_cache(1).build();
    assert_eq!(pool.stats().to_string(), "0 bufs in use (0 B), 0 idle (0 B); 0 made, high water 0 B");
    let mut alloc = pool.allocator(0);
    let held: Vec<Slice> = (0..3).map(|_| alloc.alloc(1536)).collect();
    assert_eq!(alloc.try_alloc(1).err(), Some(AllocError::Exhausted));
    drop(held);
    drop(alloc);
    let line = pool.stats().to_string();
    assert_eq!(
        line,
        "0 bufs in use (0 B), 3 idle (4.5 KiB, 1 in thread caches); 3 made, high water 4.5 KiB, 1 refused"
    );
    assert!(!line.contains('\n'));
    let big = Pool::builder().buf_size(3 << 20).build();
    let mut alloc = big.allocator(0);
    let s = alloc.alloc_for_overwrite(1);
    assert_eq!(big.stats().to_string(), "1 buf in use (3 MiB), 0 idle (0 B); 1 made, high water 3 MiB");
    drop(s);
}
