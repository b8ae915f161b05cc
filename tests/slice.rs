//! `Slice` operations and `coalesce`.

use std::fmt::Debug;

use refbuf::{AllocError, Allocator, Pool, PoolBuilder, PoolStats, Reader, Slice, coalesce};

/// `(bufs_created, bufs_in_use, bufs_idle, bytes_in_use, bytes_idle)`.
fn counts(pool: &Pool) -> (u64, usize, usize, usize, usize) {
    let s = pool.stats();
    (s.bufs_created, s.bufs_in_use, s.bufs_idle, s.bytes_in_use, s.bytes_idle)
}

/// One past the last byte of `s`.
fn end(s: &Slice) -> *const u8 {
    s.as_ptr().wrapping_add(s.len())
}

/// Everything observable about a slice: start, length, headroom, contents.
fn snapshot(s: &Slice) -> (*const u8, usize, usize, Vec<u8>) {
    (s.as_ptr(), s.len(), s.headroom(), s.to_vec())
}

fn pool64() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// Every buf of `pool` is idle again: nothing is in use.
fn assert_all_returned(pool: &Pool) {
    let s = pool.stats();
    assert_eq!(s.bufs_in_use, 0, "{s:?}");
    assert_eq!(s.bytes_in_use, 0, "{s:?}");
    assert_eq!(s.bufs_idle as u64, s.bufs_created, "{s:?}");
}

// ---------------------------------------------------------------------------
// 4. Slice operations: expand_front, prepend, truncate_front, truncate
// ---------------------------------------------------------------------------

/// expand_front(n) grows the slice n bytes back into its headroom (n = 0, partial, the rest exactly), moving the start by n and keeping the data.
#[test]
fn expand_front_grows_into_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(8);
    let mut s = alloc.copy_from_slice(b"data");
    let data_at = s.as_ptr();

    assert!(s.expand_front(0));
    assert_eq!(snapshot(&s), (data_at, 4, 8, b"data".to_vec()));

    assert!(s.expand_front(3));
    assert_eq!(s.as_ptr(), data_at.wrapping_sub(3));
    assert_eq!((s.len(), s.headroom()), (7, 5));
    assert_eq!(&s[..], b"\0\0\0data");

    assert!(s.expand_front(5));
    assert_eq!(s.as_ptr(), data_at.wrapping_sub(8));
    assert_eq!((s.len(), s.headroom()), (12, 0));
    assert_eq!(&s[8..], b"data");
}

/// expand_front(n) with n > headroom returns false and changes nothing: pointer, length, headroom and contents; also with no headroom at all.
#[test]
fn expand_front_beyond_headroom_changes_nothing() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut s = alloc.copy_from_slice(b"abc");
    let before = snapshot(&s);
    assert!(!s.expand_front(5));
    assert!(!s.expand_front(usize::MAX));
    assert_eq!(snapshot(&s), before);

    let mut flat = pool.allocator(0).copy_from_slice(b"xyz");
    let before = snapshot(&flat);
    assert!(!flat.expand_front(1));
    assert!(flat.expand_front(0));
    assert_eq!(snapshot(&flat), before);
}

/// prepend copies the header right in front of the data without moving it; an exact fit uses all the headroom; an empty header is a no-op success.
#[test]
fn prepend_writes_header_in_place() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut s = alloc.copy_from_slice(b"payload");
    let data_at = s.as_ptr();
    assert!(s.prepend(b""));
    assert_eq!(snapshot(&s), (data_at, 7, 4, b"payload".to_vec()));
    assert!(s.prepend(b"hd"));
    assert_eq!(&s[..], b"hdpayload");
    assert_eq!(s[2..].as_ptr(), data_at, "the payload did not move");
    assert_eq!(s.headroom(), 2);
    assert!(s.prepend(b"HD"));
    assert_eq!(&s[..], b"HDhdpayload");
    assert_eq!(s.headroom(), 0);
    assert_eq!(s.as_ptr(), data_at.wrapping_sub(4));
}

/// prepend of a header longer than the headroom returns false and changes nothing.
#[test]
fn prepend_too_large_changes_nothing() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut s = alloc.copy_from_slice(b"payload");
    let before = snapshot(&s);
    assert!(!s.prepend(b"12345"));
    assert_eq!(snapshot(&s), before);
    // The headroom is still all zeros: nothing was written.
    assert!(s.expand_front(4));
    assert_eq!(&s[..4], &[0; 4]);
}

/// truncate_front(n) drops n bytes from the front; they become headroom, and expand_front(n) gets the same bytes back at the same address.
#[test]
fn truncate_front_bytes_become_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(2);
    let mut s = alloc.copy_from_slice(b"headerbody");
    let start = s.as_ptr();
    s.truncate_front(6);
    assert_eq!(&s[..], b"body");
    assert_eq!(s.as_ptr(), start.wrapping_add(6));
    assert_eq!(s.headroom(), 8);
    assert!(s.expand_front(6));
    assert_eq!(&s[..], b"headerbody");
    assert_eq!(s.as_ptr(), start);
    assert_eq!(s.headroom(), 2);

    s.truncate_front(0);
    assert_eq!(snapshot(&s), (start, 10, 2, b"headerbody".to_vec()));
}

/// truncate_front clamps to the length: a too-large n empties the slice and adds only len bytes of headroom, all recoverable.
#[test]
fn truncate_front_clamps_to_len() {
    let pool = pool64();
    let mut alloc = pool.allocator(3);
    let mut s = alloc.copy_from_slice(b"abcde");
    let start = s.as_ptr();
    s.truncate_front(100);
    assert!(s.is_empty());
    assert_eq!(s.headroom(), 8);
    assert_eq!(s.as_ptr(), start.wrapping_add(5));
    s.truncate_front(usize::MAX);
    assert_eq!(s.headroom(), 8);
    assert!(!s.expand_front(9));
    assert!(s.expand_front(8));
    assert_eq!(&s[..], b"\0\0\0abcde");
}

/// truncate(len) shortens in place keeping the start and headroom; a length at or above the current one changes nothing; truncate(0) empties.
#[test]
fn truncate_keeps_front_in_place() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut s = alloc.copy_from_slice(b"abcdef");
    let start = s.as_ptr();
    s.truncate(6);
    s.truncate(100);
    assert_eq!(snapshot(&s), (start, 6, 4, b"abcdef".to_vec()));
    s.truncate(2);
    assert_eq!(snapshot(&s), (start, 2, 4, b"ab".to_vec()));
    s.truncate(0);
    assert_eq!(snapshot(&s), (start, 0, 4, Vec::new()));
    assert!(s.expand_front(4));
}

// ---------------------------------------------------------------------------
// 4. split_to, split_off
// ---------------------------------------------------------------------------

/// split_to(at) returns the first at bytes with the headroom; self keeps the rest with no headroom; neither moves (no copy).
#[test]
fn split_to_front_keeps_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut back = alloc.copy_from_slice(b"hello world");
    let start = back.as_ptr();
    let mut front = back.split_to(5);
    assert_eq!(snapshot(&front), (start, 5, 4, b"hello".to_vec()));
    assert_eq!(snapshot(&back), (start.wrapping_add(5), 6, 0, b" world".to_vec()));
    assert!(!back.expand_front(1), "the back part has no headroom");
    assert!(front.prepend(b"HEAD"));
    // Writes to one part do not show in the other.
    front[4..].fill(b'X');
    back.fill(b'Y');
    assert_eq!(&front[..], b"HEADXXXXX");
    assert_eq!(&back[..], b"YYYYYY");
}

/// split_to(0) gives an empty front that keeps the headroom; split_to(len) takes everything and leaves an empty back at the end.
#[test]
fn split_to_at_zero_and_at_len() {
    let pool = pool64();
    let mut alloc = pool.allocator(3);
    let mut s = alloc.copy_from_slice(b"abc");
    let start = s.as_ptr();
    let front = s.split_to(0);
    assert_eq!(snapshot(&front), (start, 0, 3, Vec::new()));
    assert_eq!(snapshot(&s), (start, 3, 0, b"abc".to_vec()));

    let all = s.split_to(3);
    assert_eq!(snapshot(&all), (start, 3, 0, b"abc".to_vec()));
    assert_eq!(snapshot(&s), (start.wrapping_add(3), 0, 0, Vec::new()));
}

/// split_to(len + 1) panics with "split_to out of bounds".
#[test]
#[should_panic(expected = "split_to out of bounds")]
fn split_to_past_len_panics() {
    let pool = pool64();
    let mut s = pool.allocator(8).copy_from_slice(b"abc");
    let _ = s.split_to(4);
}

/// split_off(at) returns the bytes from at on with no headroom; self keeps the front and its headroom; neither moves.
#[test]
fn split_off_back_has_no_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut front = alloc.copy_from_slice(b"hello world");
    let start = front.as_ptr();
    let mut back = front.split_off(5);
    assert_eq!(snapshot(&front), (start, 5, 4, b"hello".to_vec()));
    assert_eq!(snapshot(&back), (start.wrapping_add(5), 6, 0, b" world".to_vec()));
    assert!(!back.expand_front(1));
    back.fill(b'Z');
    assert_eq!(&front[..], b"hello");
    assert!(front.expand_front(4));
}

/// split_off(0) leaves self empty with its headroom and returns all bytes; split_off(len) returns an empty back at the end.
#[test]
fn split_off_at_zero_and_at_len() {
    let pool = pool64();
    let mut alloc = pool.allocator(3);
    let mut s = alloc.copy_from_slice(b"abc");
    let start = s.as_ptr();
    let tail = s.split_off(3);
    assert_eq!(snapshot(&tail), (start.wrapping_add(3), 0, 0, Vec::new()));
    assert_eq!(snapshot(&s), (start, 3, 3, b"abc".to_vec()));

    let all = s.split_off(0);
    assert_eq!(snapshot(&all), (start, 3, 0, b"abc".to_vec()));
    assert_eq!(snapshot(&s), (start, 0, 3, Vec::new()));
}

/// split_off(len + 1) panics with "split_off out of bounds".
#[test]
#[should_panic(expected = "split_off out of bounds")]
fn split_off_past_len_panics() {
    let pool = pool64();
    let mut s = pool.allocator(0).copy_from_slice(b"abc");
    let _ = s.split_off(4);
}

/// split_off on an empty Slice::new() at 0 works; at 1 it panics.
#[test]
#[should_panic(expected = "split_off out of bounds")]
fn split_off_empty_slice_past_len_panics() {
    let mut s = Slice::new();
    let empty = s.split_off(0);
    assert!(empty.is_empty() && s.is_empty());
    let _ = s.split_off(1);
}

/// Every split part holds the buf: it stays in use until the last part drops, then goes idle.
#[test]
fn split_parts_each_hold_the_buf() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut s = alloc.alloc(30);
    drop(alloc);
    let a = s.split_to(10);
    let b = s.split_off(10);
    let c = s.split_off(0);
    drop((a, s, c));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(b);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));
}

// ---------------------------------------------------------------------------
// 4. release_previous
// ---------------------------------------------------------------------------

/// release_previous(prev) with prev just before (reserve r): headroom grows by prev's headroom + len, reaching prev's headroom start; prev's buf reference goes.
#[test]
fn release_previous_adjacent_grows_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut prev = alloc.copy_from_slice(b"first");
    assert!(prev.expand_front(1));
    prev[0] = b'>';
    let prev_region = prev.as_ptr().wrapping_sub(prev.headroom());
    let mut s = alloc.copy_from_slice(b"second");
    let data_at = s.as_ptr();
    s.release_previous(prev);
    assert_eq!(s.headroom(), 3 + 6 + 4);
    assert_eq!(s.as_ptr(), data_at);
    assert_eq!(&s[..], b"second");
    assert!(s.expand_front(13));
    assert_eq!(s.as_ptr(), prev_region);
    assert_eq!(&s[..], b"\0\0\0>first\0\0\0\0second");
    drop((s, alloc));
    assert_all_returned(&pool);
}

/// release_previous with reserve 0 (touching slices) grows the headroom by exactly prev's length; a zero-length prev adds nothing but is consumed.
#[test]
fn release_previous_touching_reserve_zero() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let prev = alloc.copy_from_slice(b"abc");
    let empty = alloc.alloc(0);
    let mut s = alloc.copy_from_slice(b"de");
    s.release_previous(empty);
    assert_eq!(s.headroom(), 0);
    // `prev` ends where `s` begins now that `empty` is gone.
    s.release_previous(prev);
    assert_eq!(s.headroom(), 3);
    assert!(s.prepend(b"ABC"));
    assert_eq!(&s[..], b"ABCde");
}

/// release_previous with the front part of a split_to: the back regains the front's bytes and headroom.
#[test]
fn release_previous_of_split_front() {
    let pool = pool64();
    let mut alloc = pool.allocator(2);
    let mut s = alloc.copy_from_slice(b"hdrbody");
    let start = s.as_ptr();
    let front = s.split_to(3);
    assert_eq!(s.headroom(), 0);
    s.release_previous(front);
    assert_eq!(s.headroom(), 5);
    assert!(s.expand_front(3));
    assert_eq!(s.as_ptr(), start);
    assert_eq!(&s[..], b"hdrbody");
}

/// release_previous with a non-adjacent prev (another slice between them) drops prev and leaves the headroom unchanged.
#[test]
fn release_previous_not_adjacent_is_just_dropped() {
    let pool = pool64();
    let mut alloc = pool.allocator(2);
    let prev = alloc.copy_from_slice(b"aaa");
    let middle = alloc.copy_from_slice(b"bbb");
    let mut s = alloc.copy_from_slice(b"ccc");
    let before = snapshot(&s);
    s.release_previous(prev);
    assert_eq!(snapshot(&s), before);
    assert_eq!(&middle[..], b"bbb");
    drop(alloc);
    drop(middle);
    assert_eq!(pool.stats().bufs_in_use, 1, "s still holds the buf");
    drop(s);
    assert_all_returned(&pool);
}

/// release_previous with prev from another buf, another pool, a from_vec slice or Slice::new(): prev is dropped, headroom unchanged, refcounts right.
#[test]
fn release_previous_foreign_prev_is_just_dropped() {
    let pool = pool64();
    let other_pool = pool64();
    let mut alloc = pool.allocator(2);
    let mut s = alloc.copy_from_slice(b"mine");
    let before = snapshot(&s);

    let mut second_buf = pool.allocator(0);
    s.release_previous(second_buf.alloc(3));
    assert_eq!(snapshot(&s), before);

    let mut foreign = other_pool.allocator(0);
    s.release_previous(foreign.alloc(3));
    assert_eq!(snapshot(&s), before);

    s.release_previous(Slice::from_vec(b"vec".to_vec()));
    assert_eq!(snapshot(&s), before);

    s.release_previous(Slice::new());
    assert_eq!(snapshot(&s), before);

    drop((second_buf, foreign));
    assert_eq!(counts(&pool), (2, 1, 1, 64, 64));
    assert_all_returned(&other_pool);
    drop((s, alloc));
    assert_all_returned(&pool);
}

/// release_previous with a prev that no longer ends at the headroom (truncated), or that comes after self, leaves the headroom unchanged.
#[test]
fn release_previous_truncated_or_later_prev_is_just_dropped() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut prev = alloc.copy_from_slice(b"abcd");
    let mut s = alloc.copy_from_slice(b"ef");
    let later = alloc.copy_from_slice(b"gh");
    prev.truncate(2);
    let before = snapshot(&s);
    s.release_previous(prev);
    assert_eq!(snapshot(&s), before);
    s.release_previous(later);
    assert_eq!(snapshot(&s), before);
    drop((s, alloc));
    assert_all_returned(&pool);
}

/// release_previous on a from_vec slice with its own split-off front (adjacent in the same Vec buf) grows the headroom.
#[test]
fn release_previous_within_from_vec() {
    let mut s = Slice::from_vec(b"headbody".to_vec());
    let start = s.as_ptr();
    let front = s.split_to(4);
    s.release_previous(front);
    assert_eq!(s.headroom(), 4);
    assert!(s.expand_front(4));
    assert_eq!(s.as_ptr(), start);
    assert_eq!(&s[..], b"headbody");
}

// ---------------------------------------------------------------------------
// 4. free_entire_prefix
// ---------------------------------------------------------------------------

/// free_entire_prefix is false and changes nothing while the allocator or another slice holds the buf; once sole holder it is true with headroom = offset from buf start.
#[test]
fn free_entire_prefix_only_for_sole_holder() {
    let pool = pool64();
    let mut alloc = pool.allocator(3);
    let first = alloc.copy_from_slice(b"first");
    let buf_start = first.as_ptr().addr() - 3;
    let mut s = alloc.copy_from_slice(b"second");
    let before = snapshot(&s);

    assert!(!s.free_entire_prefix(), "the allocator still holds the buf");
    assert_eq!(snapshot(&s), before);
    drop(alloc);
    assert!(!s.free_entire_prefix(), "another slice still holds the buf");
    assert_eq!(snapshot(&s), before);
    drop(first);
    assert!(s.free_entire_prefix());
    assert_eq!(s.headroom(), s.as_ptr().addr() - buf_start);
    assert_eq!(s.headroom(), 3 + 5 + 3);
    assert_eq!((s.as_ptr(), s.len(), &s[..]), (before.0, 6, &b"second"[..]));
    assert!(s.expand_front(11));
    assert_eq!(s.as_ptr().addr(), buf_start);
    // Calling it again is harmless.
    assert!(s.free_entire_prefix());
    assert_eq!(s.headroom(), 0);
}

/// free_entire_prefix is false while a split-off part of the same slice lives, and on Slice::new().
#[test]
fn free_entire_prefix_false_with_split_part_or_no_buf() {
    let pool = pool64();
    let mut s = pool.allocator(0).copy_from_slice(b"abcdef");
    let tail = s.split_off(3);
    let before = snapshot(&tail);
    let mut tail = tail;
    assert!(!tail.free_entire_prefix());
    assert_eq!(snapshot(&tail), before);
    drop(s);
    assert!(tail.free_entire_prefix());
    assert_eq!(tail.headroom(), 3);

    let mut empty = Slice::new();
    assert!(!empty.free_entire_prefix());
    assert_eq!(empty.headroom(), 0);
}

/// free_entire_prefix on a from_vec back part, once the front is dropped, extends the headroom to the Vec's start.
#[test]
fn free_entire_prefix_on_from_vec() {
    let mut front = Slice::from_vec(b"0123456789".to_vec());
    let start = front.as_ptr();
    let mut back = front.split_off(4);
    assert!(!back.free_entire_prefix());
    drop(front);
    assert!(back.free_entire_prefix());
    assert_eq!(back.headroom(), 4);
    assert!(back.expand_front(4));
    assert_eq!(back.as_ptr(), start);
    assert_eq!(&back[..], b"0123456789");
}

/// free_entire_prefix is false while a Reader holds the slice's buf, true once the reader is gone.
#[test]
fn free_entire_prefix_false_while_reader_holds_buf() {
    let pool = pool64();
    let mut reader = pool.reader(&b"abcdefgh"[..]);
    let _head = reader.read(2).expect("read");
    let mut s = reader.read(3).expect("read");
    drop(_head);
    assert!(!s.free_entire_prefix());
    assert_eq!(s.headroom(), 0);
    drop(reader);
    assert!(s.free_entire_prefix());
    assert_eq!(s.headroom(), 2);
}

// ---------------------------------------------------------------------------
// 4. try_join
// ---------------------------------------------------------------------------

/// try_join of the directly following slice makes one slice with no copy: start kept, lengths summed, headroom kept, next's reference released.
#[test]
fn try_join_adjacent_joins_without_copy() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut a = alloc.copy_from_slice(b"abc");
    let b = alloc.copy_from_slice(b"defg");
    let a_at = a.as_ptr();
    assert_eq!(end(&a), b.as_ptr());
    assert!(a.try_join(b).is_ok());
    assert_eq!(snapshot(&a), (a_at, 7, 0, b"abcdefg".to_vec()));

    // Headroom of the first is kept; a zero-length next joins too.
    let mut r_alloc = pool.allocator(5);
    let mut c = r_alloc.copy_from_slice(b"xy");
    let d = c.split_off(2);
    assert!(c.try_join(d).is_ok());
    assert_eq!(c.headroom(), 5);
    assert_eq!(&c[..], b"xy");

    drop((a, alloc, c, r_alloc));
    assert_all_returned(&pool);
}

/// split_off then try_join restores the original slice exactly (start, length, headroom, contents).
#[test]
fn split_then_join_restores() {
    let pool = pool64();
    let mut s = pool.allocator(4).copy_from_slice(b"0123456789");
    let before = snapshot(&s);
    for at in [0, 1, 5, 10] {
        let back = s.split_off(at);
        assert!(s.try_join(back).is_ok(), "at {at}");
        assert_eq!(snapshot(&s), before, "at {at}");

        let mut front = s.split_to(at);
        assert!(front.try_join(std::mem::take(&mut s)).is_ok(), "at {at}");
        s = front;
        assert_eq!(snapshot(&s), before, "at {at}");
    }
}

/// try_join of a slice that does not directly follow hands it back unchanged and leaves self unchanged: reserve gap, reversed order, other buf, other pool, from_vec, empty self.
#[test]
fn try_join_not_adjacent_returns_next_unchanged() {
    let pool = pool64();
    let other_pool = pool64();

    let mut gap = pool.allocator(1);
    let mut a = gap.copy_from_slice(b"aa");
    let b = gap.copy_from_slice(b"bb");
    let mut flat = pool.allocator(0);
    let c = flat.copy_from_slice(b"cc");
    let mut d = flat.copy_from_slice(b"dd");
    let mut foreign = other_pool.allocator(0);
    let e = foreign.copy_from_slice(b"ee");
    let v = Slice::from_vec(b"vv".to_vec());

    let a_before = snapshot(&a);
    for next in [b, c, e, v] {
        let next_before = snapshot(&next);
        let back = a.try_join(next).expect_err("must not join");
        assert_eq!(snapshot(&back), next_before);
        assert_eq!(snapshot(&a), a_before);
    }

    // Reversed: `p` comes right before `q`, so `q` cannot take `p` as its next.
    let p = flat.copy_from_slice(b"p1");
    let mut q = flat.copy_from_slice(b"q1");
    let (p_before, q_before) = (snapshot(&p), snapshot(&q));
    let p = q.try_join(p).expect_err("p precedes q");
    assert_eq!(snapshot(&p), p_before);
    assert_eq!(snapshot(&q), q_before);
    // Another buf, even allocated right after.
    let d_before = snapshot(&d);
    let z = pool.allocator(0).copy_from_slice(b"zz");
    let z_before = snapshot(&z);
    assert_eq!(snapshot(&d.try_join(z).expect_err("another buf")), z_before);
    assert_eq!(snapshot(&d), d_before);

    let mut empty = Slice::new();
    let z = flat.copy_from_slice(b"z");
    let z_before = snapshot(&z);
    assert_eq!(snapshot(&empty.try_join(z).expect_err("empty self")), z_before);
}

/// try_join with a next that follows a truncated slice's old end is refused: the cut-off bytes belong to nobody and are not rejoined.
#[test]
fn try_join_after_truncate_refused() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut a = alloc.copy_from_slice(b"abcd");
    let b = alloc.copy_from_slice(b"ef");
    a.truncate(2);
    let b_before = snapshot(&b);
    let back = a.try_join(b).expect_err("gap of 2 bytes");
    assert_eq!(snapshot(&back), b_before);
    assert_eq!(&a[..], b"ab");
}

// ---------------------------------------------------------------------------
// 4. from_vec, new/default, traits, Debug
// ---------------------------------------------------------------------------

/// Slice::from_vec wraps the Vec without copying (same pointer), has no headroom, and is counted in no pool's stats.
#[test]
fn from_vec_wraps_without_copy() {
    let pool = pool64();
    let v = b"hello vec".to_vec();
    let at = v.as_ptr();
    let mut s = Slice::from_vec(v);
    assert_eq!(snapshot(&s), (at, 9, 0, b"hello vec".to_vec()));
    assert!(!s.expand_front(1));
    s[0] = b'H';
    assert_eq!(&s[..], b"Hello vec");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));

    let mut with_spare = Vec::with_capacity(32);
    with_spare.extend_from_slice(b"spare");
    let at = with_spare.as_ptr();
    let spare = Slice::from_vec(with_spare);
    assert_eq!(snapshot(&spare), (at, 5, 0, b"spare".to_vec()));

    let empty = Slice::from_vec(Vec::new());
    assert!(empty.is_empty());
    assert_eq!(empty.headroom(), 0);
}

/// split, truncate_front/expand_front and try_join work on a from_vec slice without copying.
#[test]
fn from_vec_split_and_join() {
    let mut s = Slice::from_vec(b"0123456789".to_vec());
    let at = s.as_ptr();
    let mut back = s.split_off(4);
    assert_eq!(back.as_ptr(), at.wrapping_add(4));
    let mut front = s.split_to(2);
    assert_eq!((front.as_ptr(), &front[..]), (at, &b"01"[..]));
    assert_eq!((s.as_ptr(), &s[..]), (at.wrapping_add(2), &b"23"[..]));
    back.truncate_front(3);
    assert_eq!(&back[..], b"789");
    assert!(back.expand_front(3));
    assert!(front.try_join(s).is_ok());
    assert!(front.try_join(back).is_ok());
    assert_eq!(snapshot(&front), (at, 10, 0, b"0123456789".to_vec()));
}

/// Slice::new() and Slice::default() are empty with headroom 0: expand_front(0) succeeds, expand_front(1) fails, split at 0 works.
#[test]
fn new_and_default_are_empty() {
    for mut s in [Slice::new(), Slice::default()] {
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        assert_eq!(s.headroom(), 0);
        assert_eq!(&s[..], b"");
        assert!(s.expand_front(0));
        assert!(!s.expand_front(1));
        assert!(!s.prepend(b"x"));
        s.truncate_front(3);
        s.truncate(3);
        assert_eq!(s.headroom(), 0);
        let front = s.split_to(0);
        let back = s.split_off(0);
        assert!(front.is_empty() && back.is_empty() && s.is_empty());
    }
}

/// A Slice is at most 32 bytes (and Option<Slice> no larger).
#[test]
fn slice_is_small() {
    assert!(size_of::<Slice>() <= 32, "Slice is {} bytes", size_of::<Slice>());
    assert!(size_of::<Option<Slice>>() <= 32, "Option<Slice> is {} bytes", size_of::<Option<Slice>>());
}

/// Compile-time: Slice is Send + Sync, Pool is Clone + Send + Sync, Allocator and Reader are Send, and every public type is Debug.
#[test]
fn auto_traits_and_debug() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn clone_send_sync<T: Clone + Send + Sync>() {}
    fn debug<T: Debug>() {}
    send_sync::<Slice>();
    clone_send_sync::<Pool>();
    send::<Allocator>();
    send::<Reader<std::io::Empty>>();
    send_sync::<AllocError>();
    debug::<Slice>();
    debug::<Pool>();
    debug::<PoolBuilder>();
    debug::<PoolStats>();
    debug::<Allocator>();
    debug::<Reader<std::io::Empty>>();
    debug::<AllocError>();

    // The Debug output says which type it is.
    let pool = pool64();
    assert!(format!("{pool:?}").contains("Pool"));
    assert!(format!("{:?}", pool.allocator(0)).contains("Allocator"));
    assert!(format!("{:?}", pool.reader(std::io::empty())).contains("Reader"));
    assert!(format!("{:?}", Pool::builder()).contains("PoolBuilder"));
    assert!(format!("{:?}", pool.stats()).contains("bufs_in_use"));
}

/// Debug of a Slice shows its length but not its contents (neither as text nor as byte values).
#[test]
fn slice_debug_hides_contents() {
    let pool = pool64();
    let s = pool.allocator(2).copy_from_slice(b"hunter2!");
    let shown = format!("{s:?}");
    assert!(shown.contains("len"), "{shown}");
    assert!(shown.contains('8'), "{shown}");
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(!shown.contains("104"), "{shown}"); // b'h'
    assert!(!shown.contains("117"), "{shown}"); // b'u'
    assert!(!shown.contains("0x68") && !shown.contains("68,"), "{shown}");
    let pretty = format!("{s:#?}");
    assert!(pretty.contains("len") && !pretty.contains("hunter") && !pretty.contains("104"), "{pretty}");
}

/// Neighbouring slices never overlap: filling each slice (data and headroom) leaves every other slice's bytes intact.
#[test]
fn neighbouring_slices_do_not_overlap() {
    let pool = pool64();
    let mut alloc = pool.allocator(2);
    let mut slices: Vec<Slice> = (0..6).map(|i| alloc.alloc(i)).collect();
    for (i, s) in slices.iter_mut().enumerate() {
        assert!(s.expand_front(2));
        s.fill(i as u8 + 1);
    }
    for (i, s) in slices.iter().enumerate() {
        assert_eq!(s.len(), i + 2);
        assert!(s.iter().all(|&b| b == i as u8 + 1), "slice {i}: {:?}", &s[..]);
    }
}

// ---------------------------------------------------------------------------
// 5. coalesce
// ---------------------------------------------------------------------------

/// Touching slices from one allocator coalesce into one: the head pointer is unchanged (no copy) and the contents are the concatenation.
#[test]
fn coalesce_merges_touching_run() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut v: Vec<Slice> =
        [&b"ab"[..], b"cde", b"f", b"ghij"].iter().map(|d| alloc.copy_from_slice(d)).collect();
    let head = v[0].as_ptr();
    coalesce(&mut v, usize::MAX);
    assert_eq!(v.len(), 1);
    assert_eq!(snapshot(&v[0]), (head, 10, 0, b"abcdefghij".to_vec()));
    drop((v, alloc));
    assert_all_returned(&pool);
}

/// Slices of two allocators interleaved (A B A B) never touch their neighbours and stay as they are; grouped (A A B B) they merge per allocator, order kept.
#[test]
fn coalesce_two_allocators() {
    let pool = pool64();
    let mut x = pool.allocator(0);
    let mut y = pool.allocator(0);
    let x1 = x.copy_from_slice(b"x1");
    let y1 = y.copy_from_slice(b"y1");
    let x2 = x.copy_from_slice(b"x2");
    let y2 = y.copy_from_slice(b"y2");
    let ptrs = [x1.as_ptr(), y1.as_ptr(), x2.as_ptr(), y2.as_ptr()];

    let mut interleaved = vec![x1, y1, x2, y2];
    coalesce(&mut interleaved, usize::MAX);
    let got: Vec<_> = interleaved.iter().map(|s| (s.as_ptr(), s.to_vec())).collect();
    assert_eq!(
        got,
        vec![
            (ptrs[0], b"x1".to_vec()),
            (ptrs[1], b"y1".to_vec()),
            (ptrs[2], b"x2".to_vec()),
            (ptrs[3], b"y2".to_vec())
        ]
    );

    let [x1, y1, x2, y2]: [Slice; 4] = interleaved.try_into().expect("four slices");
    let mut grouped = vec![x1, x2, y1, y2];
    coalesce(&mut grouped, usize::MAX);
    let got: Vec<_> = grouped.iter().map(|s| (s.as_ptr(), s.to_vec())).collect();
    assert_eq!(got, vec![(ptrs[0], b"x1x2".to_vec()), (ptrs[1], b"y1y2".to_vec())]);

    drop((grouped, x, y));
    assert_all_returned(&pool);
}

/// Each kept slice moves down over the slots its run emptied, however far,
/// keeping its address and bytes; every merged reference is given up.
#[test]
fn coalesce_moves_kept_slices_down() {
    let pool = pool64();
    let mut x = pool.allocator(0);
    let mut y = pool.allocator(0);
    let mut v: Vec<Slice> = (0..4).map(|i| x.copy_from_slice(&[b'a' + i])).collect();
    v.push(y.copy_from_slice(b"y"));
    v.extend((4..6).map(|i| x.copy_from_slice(&[b'a' + i])));
    let heads = [v[0].as_ptr(), v[4].as_ptr(), v[5].as_ptr()];

    coalesce(&mut v, usize::MAX);
    let got: Vec<_> = v.iter().map(|s| (s.as_ptr(), s.to_vec())).collect();
    assert_eq!(
        got,
        vec![(heads[0], b"abcd".to_vec()), (heads[1], b"y".to_vec()), (heads[2], b"ef".to_vec())]
    );

    drop((v, x, y));
    assert_all_returned(&pool);
}

/// A run that crosses from one buf into the next splits at the buf boundary, even though max_len would allow more.
#[test]
fn coalesce_stops_at_buf_boundary() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let v: Vec<Slice> = (0..6).map(|i| alloc.copy_from_slice(&[i; 30])).collect();
    let heads = [v[0].as_ptr(), v[2].as_ptr(), v[4].as_ptr()];
    assert_eq!(pool.stats().bufs_created, 3);
    let mut v = v;
    coalesce(&mut v, usize::MAX);
    assert_eq!(v.len(), 3);
    for (k, s) in v.iter().enumerate() {
        assert_eq!(s.as_ptr(), heads[k]);
        assert_eq!(s.len(), 60);
        let k = k as u8;
        assert!(s[..30].iter().all(|&b| b == 2 * k) && s[30..].iter().all(|&b| b == 2 * k + 1));
    }
    drop((v, alloc));
    assert_all_returned(&pool);
}

/// max_len bounds each merged slice, greedily left to right: 4 x 10 bytes give [20, 20] at 20 (cut exactly), unchanged at 19, [30, 10] at 30 and 29 -> [20, 20].
#[test]
fn coalesce_max_len_cuts_runs() {
    for (max_len, expected) in [
        (40, vec![40]),
        (39, vec![30, 10]),
        (30, vec![30, 10]),
        (29, vec![20, 20]),
        (20, vec![20, 20]),
        (19, vec![10, 10, 10, 10]),
        (10, vec![10, 10, 10, 10]),
        (9, vec![10, 10, 10, 10]),
    ] {
        let pool = pool64();
        let mut alloc = pool.allocator(0);
        let mut v: Vec<Slice> = (0..4u8).map(|i| alloc.copy_from_slice(&[i; 10])).collect();
        let starts: Vec<_> = v.iter().map(|s| s.as_ptr()).collect();
        let all: Vec<u8> = v.iter().flat_map(|s| s.to_vec()).collect();
        coalesce(&mut v, max_len);
        let lens: Vec<usize> = v.iter().map(|s| s.len()).collect();
        assert_eq!(lens, expected, "max_len {max_len}");
        assert_eq!(v.iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>(), all, "max_len {max_len}");
        let mut offset = 0;
        for s in &v {
            assert_eq!(s.as_ptr(), starts[0].wrapping_add(offset), "max_len {max_len}");
            assert!(starts.contains(&s.as_ptr()), "a run head moved");
            offset += s.len();
        }
        drop((v, alloc));
        assert_all_returned(&pool);
    }
}

/// max_len 0: non-empty slices pass through untouched, while touching zero-length slices still merge.
#[test]
fn coalesce_max_len_zero() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut v =
        vec![alloc.alloc(0), alloc.alloc(0), alloc.copy_from_slice(b"a"), alloc.copy_from_slice(b"b")];
    let ptrs: Vec<_> = v.iter().map(|s| s.as_ptr()).collect();
    coalesce(&mut v, 0);
    let got: Vec<_> = v.iter().map(|s| (s.as_ptr(), s.to_vec())).collect();
    assert_eq!(got, vec![(ptrs[0], Vec::new()), (ptrs[2], b"a".to_vec()), (ptrs[3], b"b".to_vec())]);
    drop((v, alloc));
    assert_all_returned(&pool);
}

/// A slice longer than max_len passes through unsplit, and touching neighbours on either side are not merged into it; later runs still merge.
#[test]
fn coalesce_never_splits_long_slice() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut v = vec![
        alloc.copy_from_slice(b"ab"),
        alloc.copy_from_slice(b"0123456789"),
        alloc.alloc(0),
        alloc.copy_from_slice(b"cd"),
        alloc.copy_from_slice(b"e"),
    ];
    let ptrs: Vec<_> = v.iter().map(|s| s.as_ptr()).collect();
    coalesce(&mut v, 5);
    let got: Vec<_> = v.iter().map(|s| (s.as_ptr(), s.to_vec())).collect();
    assert_eq!(
        got,
        vec![(ptrs[0], b"ab".to_vec()), (ptrs[1], b"0123456789".to_vec()), (ptrs[2], b"cde".to_vec())]
    );
    drop((v, alloc));
    assert_all_returned(&pool);
}

/// Touching zero-length slices merge with each other and with non-empty neighbours.
#[test]
fn coalesce_merges_zero_length_slices() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut v = vec![
        alloc.alloc(0),
        alloc.copy_from_slice(b"x"),
        alloc.alloc(0),
        alloc.alloc(0),
        alloc.copy_from_slice(b"y"),
    ];
    let head = v[0].as_ptr();
    coalesce(&mut v, usize::MAX);
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].as_ptr(), &v[0][..]), (head, &b"xy"[..]));

    let mut only_empty = vec![alloc.alloc(0), alloc.alloc(0), alloc.alloc(0)];
    coalesce(&mut only_empty, usize::MAX);
    assert_eq!(only_empty.len(), 1);
    assert!(only_empty[0].is_empty());
    drop((v, only_empty, alloc));
    assert_all_returned(&pool);
}

/// An empty Vec stays empty and a single slice is left exactly as it is, whatever max_len.
#[test]
fn coalesce_empty_and_single() {
    let mut none: Vec<Slice> = Vec::new();
    coalesce(&mut none, usize::MAX);
    assert!(none.is_empty());
    coalesce(&mut none, 0);
    assert!(none.is_empty());

    let pool = pool64();
    let mut alloc = pool.allocator(3);
    let mut one = vec![alloc.copy_from_slice(b"solo")];
    let before = snapshot(&one[0]);
    coalesce(&mut one, 0);
    assert_eq!(one.len(), 1);
    assert_eq!(snapshot(&one[0]), before);
    coalesce(&mut one, usize::MAX);
    assert_eq!(snapshot(&one[0]), before);
}

/// Slices separated by a reserve gap, or by a dropped slice, do not touch and are not merged.
#[test]
fn coalesce_does_not_merge_gaps() {
    let pool = pool64();
    let mut gap = pool.allocator(1);
    let mut v = vec![gap.copy_from_slice(b"a"), gap.copy_from_slice(b"b")];
    coalesce(&mut v, usize::MAX);
    assert_eq!(v.len(), 2);

    let mut flat = pool.allocator(0);
    let a = flat.copy_from_slice(b"a");
    drop(flat.copy_from_slice(b"gone"));
    let c = flat.copy_from_slice(b"c");
    let mut v = vec![a, c];
    coalesce(&mut v, usize::MAX);
    assert_eq!(v.iter().map(|s| s.to_vec()).collect::<Vec<_>>(), vec![b"a".to_vec(), b"c".to_vec()]);
}

/// The head of each run keeps its headroom: with reserve 4, slices whose fronts are expanded to touch merge into one with the first slice's headroom.
#[test]
fn coalesce_keeps_head_headroom() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let a = alloc.copy_from_slice(b"aa");
    let mut b = alloc.copy_from_slice(b"bb");
    assert!(b.prepend(b"HDR:"));
    let mut c = alloc.copy_from_slice(b"cc");
    assert!(c.prepend(b"hdr:"));
    let head = a.as_ptr();
    let mut v = vec![a, b, c];
    coalesce(&mut v, usize::MAX);
    assert_eq!(v.len(), 1);
    assert_eq!(snapshot(&v[0]), (head, 14, 4, b"aaHDR:bbhdr:cc".to_vec()));
    assert!(v[0].expand_front(4));
}

/// Split parts (pooled and from_vec) in order coalesce back into the original slice; out of order they do not.
#[test]
fn coalesce_rejoins_split_parts() {
    let pool = pool64();
    let mut s = pool.allocator(2).copy_from_slice(b"abcdefgh");
    let before = snapshot(&s);
    let mut parts = Vec::new();
    for _ in 0..3 {
        parts.push(s.split_to(2));
    }
    parts.push(s);
    coalesce(&mut parts, usize::MAX);
    assert_eq!(parts.len(), 1);
    assert_eq!(snapshot(&parts[0]), before);

    let mut v = Slice::from_vec(b"12345".to_vec());
    let at = v.as_ptr();
    let tail = v.split_off(3);
    let mut reversed = vec![tail, v];
    coalesce(&mut reversed, usize::MAX);
    assert_eq!(reversed.len(), 2);
    reversed.reverse();
    coalesce(&mut reversed, usize::MAX);
    assert_eq!(reversed.len(), 1);
    assert_eq!(snapshot(&reversed[0]), (at, 5, 0, b"12345".to_vec()));
}

/// A mixed pattern of runs from two allocators, several bufs, empty slices and a length cap keeps order, contents and the max_len bound, and after dropping everything no buf stays in use.
#[test]
fn coalesce_mixed_pattern_keeps_order_and_refcounts() {
    let rounds = if cfg!(miri) { 3 } else { 40 };
    let pool = Pool::builder().buf_size(128).build();
    let mut x = pool.allocator(0);
    let mut y = pool.allocator(0);
    drop((x.alloc(0), y.alloc(0))); // both allocators hold a buf from here on
    let mut seed = 0x2545_f491_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let (mut slices_in, mut slices_out) = (0, 0);
    for round in 0..rounds {
        let mut v = Vec::new();
        for i in 0..24 {
            let r = next();
            let len = (r % 13) as usize;
            let which = if (r >> 8) % 4 == 0 { &mut y } else { &mut x };
            let mut s = which.alloc(len);
            s.fill(i as u8);
            v.push(s);
        }
        let max_len = 8 + (next() % 40) as usize;
        let all: Vec<u8> = v.iter().flat_map(|s| s.to_vec()).collect();
        let originals: Vec<(*const u8, usize)> = v.iter().map(|s| (s.as_ptr(), s.len())).collect();
        // `coalesce`'s greedy rule as a model: extend the last run while the
        // next slice starts where it ends and the sum stays within max_len.
        let mut model: Vec<(*const u8, usize)> = Vec::new();
        for &(at, len) in &originals {
            match model.last_mut() {
                Some(run) if run.0.wrapping_add(run.1) == at && run.1 + len <= max_len => run.1 += len,
                _ => model.push((at, len)),
            }
        }
        coalesce(&mut v, max_len);
        (slices_in, slices_out) = (slices_in + originals.len(), slices_out + v.len());
        let got: Vec<(*const u8, usize)> = v.iter().map(|s| (s.as_ptr(), s.len())).collect();
        assert_eq!(got, model, "round {round}, max_len {max_len}");
        assert_eq!(v.iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>(), all, "round {round}");
        drop(v);
        let stats = pool.stats();
        assert_eq!(stats.bufs_in_use, 2, "round {round}: only the two allocators hold bufs: {stats:?}");
    }
    // The pattern exercised both merging and keeping apart.
    assert!(slices_out < slices_in && slices_out > rounds, "{slices_in} -> {slices_out}");
    drop((x, y));
    assert_all_returned(&pool);
}
