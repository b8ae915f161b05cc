//! The bump allocator: layout of slices in a buf, and the guarantee that no
//! stale bytes leak out by default.

use std::io::Write;

use refbuf::{Pool, Slice};

/// `(bufs_created, bufs_in_use, bufs_idle, bytes_in_use, bytes_idle)`.
fn counts(pool: &Pool) -> (u64, usize, usize, usize, usize) {
    let s = pool.stats();
    (s.bufs_created, s.bufs_in_use, s.bufs_idle, s.bytes_in_use, s.bytes_idle)
}

/// One past the last byte of `s`.
fn end(s: &Slice) -> *const u8 {
    s.as_ptr().wrapping_add(s.len())
}

const MARK: u8 = 0xAA;

/// Fills the one 64-byte buf of a fresh `pool` with `MARK` through
/// `alloc_for_overwrite`, lets everything go so the buf is idle, and returns
/// the address of its data area.
fn dirty_buf_via_overwrite(pool: &Pool) -> usize {
    assert_eq!(pool.buf_size(), 64);
    let mut alloc = pool.allocator(0);
    let mut s = alloc.alloc_for_overwrite(64);
    s.fill(MARK);
    let at = s.as_ptr().addr();
    drop((s, alloc));
    assert_eq!(counts(pool), (1, 0, 1, 0, 64));
    at
}

/// As [`dirty_buf_via_overwrite`], through `copy_from_slice`.
fn dirty_buf_via_copy(pool: &Pool) -> usize {
    assert_eq!(pool.buf_size(), 64);
    let mut alloc = pool.allocator(0);
    let s = alloc.copy_from_slice(&[MARK; 64]);
    let at = s.as_ptr().addr();
    drop((s, alloc));
    assert_eq!(counts(pool), (1, 0, 1, 0, 64));
    at
}

/// The slice's headroom followed by its data, read through `expand_front`
/// and restored afterwards.
fn headroom_and_data(s: &mut Slice) -> Vec<u8> {
    let r = s.headroom();
    assert!(s.expand_front(r));
    let bytes = s.to_vec();
    s.truncate_front(r);
    bytes
}

// ---------------------------------------------------------------------------
// 2. Allocator layout
// ---------------------------------------------------------------------------

/// A new allocator takes no buf (stats stay zero) until its first alloc; dropping an unused allocator changes nothing.
#[test]
fn allocator_takes_no_buf_until_first_alloc() {
    let pool = Pool::builder().buf_size(64).build();
    let unused = pool.allocator(16);
    assert_eq!(unused.reserve(), 16);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    drop(unused);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));

    let mut alloc = pool.allocator(0);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    let s = alloc.alloc(1);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    assert_eq!(s.len(), 1);
}

/// With reserve 0, consecutive slices touch (each starts where the previous ends) and have no headroom.
#[test]
fn reserve_zero_slices_touch() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let lens = [1, 5, 0, 10, 3, 0, 0, 7];
    let slices: Vec<Slice> = lens.iter().map(|&n| alloc.alloc(n)).collect();
    for (s, &n) in slices.iter().zip(&lens) {
        assert_eq!(s.len(), n);
        assert_eq!(s.headroom(), 0);
    }
    for pair in slices.windows(2) {
        assert_eq!(end(&pair[0]), pair[1].as_ptr());
    }
    assert_eq!(pool.stats().bufs_created, 1);
}

/// With reserve r, each slice has headroom r and starts exactly r bytes after the previous one ends; expand_front(r) reaches that end.
#[test]
fn reserve_r_slices_are_exactly_r_apart() {
    for r in [1, 4, 7, 16] {
        let pool = Pool::builder().buf_size(256).build();
        let mut alloc = pool.allocator(r);
        assert_eq!(alloc.reserve(), r);
        let mut slices: Vec<Slice> = [3, 0, 9, 1].iter().map(|&n| alloc.alloc(n)).collect();
        assert_eq!(pool.stats().bufs_created, 1);
        for s in &slices {
            assert_eq!(s.headroom(), r);
        }
        for i in 1..slices.len() {
            let prev_end = end(&slices[i - 1]);
            assert_eq!(slices[i].as_ptr(), prev_end.wrapping_add(r), "reserve {r}, slice {i}");
            assert!(slices[i].expand_front(r));
            assert_eq!(slices[i].as_ptr(), prev_end);
            assert_eq!(slices[i].headroom(), 0);
        }
    }
}

/// The first slice of a buf starts `reserve` bytes into the data area: once it holds the buf alone, free_entire_prefix finds headroom of exactly `reserve`.
#[test]
fn first_slice_starts_reserve_bytes_into_buf() {
    for r in [0, 5] {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(r);
        let mut s = alloc.alloc(10);
        drop(alloc);
        assert!(s.free_entire_prefix());
        assert_eq!(s.headroom(), r, "reserve {r}");
    }
}

/// The allocator stays in its buf when exactly `need` bytes are left, and moves to a new buf when one byte fewer is left.
#[test]
fn allocator_moves_on_only_when_need_exceeds_remaining() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(8);
    let s1 = alloc.alloc(24); // need 32, 32 left after
    let s2 = alloc.alloc(24); // need 32 == left
    assert_eq!(s2.as_ptr(), end(&s1).wrapping_add(8));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));

    let s3 = alloc.alloc(0); // need 8 > 0 left
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));
    assert_eq!(s3.headroom(), 8);
    assert_ne!(s3.as_ptr(), end(&s2).wrapping_add(8));

    let s4 = alloc.alloc(48); // need 56 == 56 left
    assert_eq!(s4.as_ptr(), end(&s3).wrapping_add(8));
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));

    // Fresh buf, 56 left after the first alloc; 57 do not fit.
    let mut other = pool.allocator(8);
    let t1 = other.alloc(0);
    let t2 = other.alloc(49);
    assert_eq!(counts(&pool), (4, 4, 0, 256, 0));
    assert_ne!(t2.as_ptr(), end(&t1).wrapping_add(8));
}

/// Slices longer than the stretch the allocator carves between its checks
/// for a free buf (16 KiB, the first in a fresh buf or the next after a
/// few small slices), and a `Writer`'s bytes run past it, each come whole
/// and apart from every other slice of the buf, through both allocators;
/// the small slices that follow continue right after them in the same buf.
#[test]
fn slices_longer_than_a_run_come_whole_and_apart() {
    fn check(slices: &[Slice], pool: &Pool) {
        let mut spans: Vec<(usize, usize)> =
            slices.iter().map(|s| (s.as_ptr().addr(), end(s).addr())).collect();
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "slices overlap: {pair:?}");
        }
        for (i, s) in slices.iter().enumerate() {
            assert!(s.iter().all(|&b| b == i as u8), "slice {i} was overwritten");
        }
        assert_eq!(counts(pool).0, 1, "one 64 KiB buf holds them all");
    }
    let sizes = [40 * 1024, 100, 20 * 1024, 100, 3 * 1024];
    let pool = Pool::builder().buf_size(64 * 1024).build();
    let mut alloc = pool.local_allocator(0);
    let mut slices = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let mut s = alloc.alloc_for_overwrite(len);
        s.fill(i as u8);
        if let Some(prev) = slices.last() {
            assert_eq!(s.as_ptr(), end(prev), "slice {i} follows the one before");
        }
        slices.push(s);
    }
    check(&slices, &pool);

    let pool = Pool::builder().buf_size(64 * 1024).build();
    let mut alloc = pool.allocator(0);
    let mut slices = vec![alloc.copy_from_slice(&[0; 100])];
    let mut writer = alloc.writer();
    for _ in 0..30 {
        writer.write_all(&[1; 1024]).unwrap();
    }
    let mut written = writer.finish();
    assert_eq!(written.iter().count(), 1, "the writer's bytes make one slice");
    slices.extend(written.pop_front());
    for (i, &len) in sizes.iter().enumerate().skip(2) {
        slices.push(alloc.copy_from_slice(&vec![i as u8; len]));
    }
    assert_eq!(slices[1].len(), 30 * 1024);
    assert_eq!(slices[1].as_ptr(), end(&slices[0]), "the writer's bytes follow the first slice");
    check(&slices, &pool);
}

/// When it moves to a new buf the allocator lets go of the old one: with no slice left in it, the old buf goes idle and is reused later.
#[test]
fn allocator_lets_go_of_old_buf_when_moving_on() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let s = alloc.alloc(64);
    let first_buf = s.as_ptr();
    drop(s);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0), "the allocator still holds its buf");

    let t = alloc.alloc(1);
    let stats = pool.stats();
    assert_eq!(stats.bufs_in_use, 1, "the old buf was not let go");
    assert_eq!(stats.bytes_in_use, 64);
    assert_eq!(stats.bufs_idle as u64, stats.bufs_created - 1);

    let u = alloc.alloc(63);
    assert_eq!(u.as_ptr(), end(&t));
    let v = alloc.alloc(1); // t's buf is full: another buf, the idle one
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0), "the old buf was not reused");
    assert!(t.as_ptr() == first_buf || v.as_ptr() == first_buf, "the old buf is one of the two in use");
}

/// Dropping the allocator lets go of its buf, but live slices keep it in use (bufs_in_use 1) until the last drops; then it is idle.
#[test]
fn slices_keep_buf_alive_after_allocator_drops() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(4);
    let a = alloc.copy_from_slice(b"one");
    let b = alloc.copy_from_slice(b"two");
    drop(alloc);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    assert_eq!(&a[..], b"one");
    drop(a);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    assert_eq!(&b[..], b"two");
    drop(b);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));

    // Dropping an allocator whose slices are all gone frees its buf at once.
    let mut alloc = pool.allocator(0);
    drop(alloc.alloc(5));
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    drop(alloc);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));
}

/// alloc(0) works: an empty slice with `reserve` zeroed headroom, taking a buf on a fresh allocator, and touching both neighbours with reserve 0.
#[test]
fn alloc_zero_works() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(6);
    let mut empty = alloc.alloc(0);
    assert!(empty.is_empty());
    assert_eq!(empty.headroom(), 6);
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
    assert_eq!(headroom_and_data(&mut empty), vec![0; 6]);
    let next = alloc.alloc(2);
    assert_eq!(next.as_ptr(), end(&empty).wrapping_add(6));

    let mut alloc = pool.allocator(0);
    let a = alloc.alloc(3);
    let z = alloc.try_alloc(0).expect("alloc(0)");
    let b = alloc.alloc(3);
    assert_eq!(z.as_ptr(), end(&a));
    assert_eq!(end(&z), b.as_ptr());
    assert_eq!(z.headroom(), 0);
    assert!(alloc.alloc_for_overwrite(0).is_empty());
    assert!(alloc.copy_from_slice(&[]).is_empty());
}

/// Allocator::pool() is the pool it came from (shared stats and buf size), and an Allocator can be moved to another thread and used there.
#[test]
fn allocator_reports_pool_and_is_send() {
    let pool = Pool::builder().buf_size(128).build();
    let mut alloc = pool.allocator(3);
    assert_eq!(alloc.pool().buf_size(), 128);
    let s = alloc.alloc(1);
    assert_eq!(alloc.pool().stats(), pool.stats());
    let (alloc, t) = std::thread::spawn(move || {
        let t = alloc.copy_from_slice(b"xyz");
        (alloc, t)
    })
    .join()
    .expect("thread panicked");
    assert_eq!(t.as_ptr(), end(&s).wrapping_add(3));
    assert_eq!(&t[..], b"xyz");
    assert!(format!("{alloc:?}").contains("reserve"));
}

// ---------------------------------------------------------------------------
// 3. No stale bytes by default
// ---------------------------------------------------------------------------

/// alloc zero-fills data and reserve in a recycled buf that held 0xAA (same buf reused, bufs_created unchanged), while the untouched rest still holds the marker.
#[test]
fn alloc_zeroes_recycled_data_and_reserve() {
    let pool = Pool::builder().buf_size(64).build();
    let buf = dirty_buf_via_overwrite(&pool);

    let mut alloc = pool.allocator(8);
    let mut s = alloc.alloc(20);
    assert_eq!(s.as_ptr().addr(), buf + 8, "the dirty buf is reused");
    assert_eq!(pool.stats().bufs_created, 1);
    assert!(s.iter().all(|&b| b == 0), "stale data bytes: {:x?}", &s[..]);
    assert_eq!(headroom_and_data(&mut s), vec![0; 28], "stale reserve bytes");

    // The bytes after it were not touched: they are still the marker, so the
    // zeros above were written by `alloc`, not found.
    let mut rest = alloc.alloc_for_overwrite(28);
    assert_eq!(rest.as_ptr(), end(&s).wrapping_add(8));
    assert_eq!(headroom_and_data(&mut rest), vec![MARK; 36]);
}

/// try_alloc zero-fills data and reserve in a recycled dirty buf, for every slice carved from it.
#[test]
fn try_alloc_zeroes_recycled_data_and_reserve() {
    let pool = Pool::builder().buf_size(64).build();
    let buf = dirty_buf_via_copy(&pool);

    let mut alloc = pool.allocator(3);
    let mut first = true;
    let mut used = 0;
    while used + 3 + 5 <= 64 {
        let mut s = alloc.try_alloc(5).expect("try_alloc");
        if first {
            assert_eq!(s.as_ptr().addr(), buf + 3, "the dirty buf is reused");
            first = false;
        }
        assert_eq!(headroom_and_data(&mut s), vec![0; 8]);
        used += 8;
    }
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
}

/// copy_from_slice and try_copy_from_slice zero their reserve in a recycled dirty buf and hold exactly the copied bytes.
#[test]
fn copy_from_slice_zeroes_reserve() {
    let pool = Pool::builder().buf_size(64).build();
    let buf = dirty_buf_via_overwrite(&pool);

    let mut alloc = pool.allocator(8);
    let mut s = alloc.copy_from_slice(b"data");
    assert_eq!(s.as_ptr().addr(), buf + 8);
    assert_eq!(&s[..], b"data");
    assert_eq!(headroom_and_data(&mut s), b"\0\0\0\0\0\0\0\0data".to_vec());

    let mut t = alloc.try_copy_from_slice(b"more").expect("try_copy_from_slice");
    assert_eq!(t.as_ptr(), end(&s).wrapping_add(8));
    assert_eq!(headroom_and_data(&mut t), b"\0\0\0\0\0\0\0\0more".to_vec());
    assert_eq!(pool.stats().bufs_created, 1);
}

/// alloc_for_overwrite reuses recycled memory as found: data and reserve show the earlier user's marker, proving alloc's zeros are not luck of fresh memory.
#[test]
fn alloc_for_overwrite_shows_memory_as_found() {
    let pool = Pool::builder().buf_size(64).build();
    let buf = dirty_buf_via_copy(&pool);

    let mut alloc = pool.allocator(4);
    let mut s = alloc.alloc_for_overwrite(10);
    assert_eq!(s.as_ptr().addr(), buf + 4, "the dirty buf is reused");
    assert_eq!(pool.stats().bufs_created, 1);
    assert_eq!(headroom_and_data(&mut s), vec![MARK; 14]);

    let mut t = alloc.try_alloc_for_overwrite(6).expect("try_alloc_for_overwrite");
    assert_eq!(headroom_and_data(&mut t), vec![MARK; 10]);
}

/// A buf dirtied through several slices (and a truncated one) comes back zeroed by alloc wherever the new slices fall.
#[test]
fn alloc_zeroes_after_mixed_dirtying() {
    let pool = Pool::builder().buf_size(64).build();
    {
        let mut alloc = pool.allocator(2);
        let mut a = alloc.alloc_for_overwrite(18);
        a.fill(0x11);
        let mut b = alloc.alloc(18);
        b.fill(0x22);
        assert!(b.expand_front(2));
        b[..2].fill(0x33);
        let mut c = alloc.copy_from_slice(&[0x44; 18]);
        c.truncate(3);
    }
    assert_eq!(counts(&pool), (1, 0, 1, 0, 64));

    let mut alloc = pool.allocator(5);
    let mut parts = Vec::new();
    for len in [7, 0, 13, 1, 18] {
        let mut s = alloc.alloc(len);
        assert_eq!(headroom_and_data(&mut s), vec![0; 5 + len], "len {len}");
        parts.push(s);
    }
    assert_eq!(counts(&pool), (1, 1, 0, 64, 0));
}

/// free_entire_prefix can expose an earlier slice's bytes: after the writer and allocator are gone, expand_front over the new headroom shows them.
#[test]
fn free_entire_prefix_exposes_earlier_bytes() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let secret = alloc.copy_from_slice(b"secret");
    let mut s = alloc.copy_from_slice(b"mine");
    drop((secret, alloc));
    assert!(s.free_entire_prefix());
    assert_eq!(s.headroom(), 6);
    assert!(s.expand_front(6));
    assert_eq!(&s[..], b"secretmine");
}

/// An allocator that moves on when none of its slices is alive gets its own buf straight back from the
/// idle list: a lone allocator cycles through one buf, not two.
#[test]
fn lone_allocator_recycles_its_own_buf() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    for _ in 0..if cfg!(miri) { 20 } else { 1000 } {
        drop(alloc.alloc(40));
    }
    let stats = pool.stats();
    assert_eq!((stats.bufs_created, stats.bufs_in_use, stats.bufs_idle), (1, 1, 0));
}

/// An allocator that runs out of room while none of its slices is alive rewinds to the start of the same
/// buf (the memory it touched last); with a slice still alive it takes another buf instead.
#[test]
fn allocator_rewinds_only_when_no_slice_is_alive() {
    let pool = Pool::builder().buf_size(64).build();
    let mut alloc = pool.allocator(0);
    let first = alloc.alloc(40);
    let start = first.as_ptr();
    drop(first);
    let rewound = alloc.alloc(40);
    assert_eq!(rewound.as_ptr(), start, "rewound to the start of the same buf");
    assert_eq!(pool.stats().bufs_created, 1);

    let moved_on = alloc.alloc(40);
    assert_ne!(moved_on.as_ptr(), start, "a live slice keeps the allocator from rewinding over it");
    assert_eq!(pool.stats().bufs_created, 2);
    assert_eq!(&rewound[..], &[0; 40][..]);
}
