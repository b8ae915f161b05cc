//! `LocalAllocator`: its slices behave as any allocator's, wherever they
//! are dropped, and its bufs go back to the pool once the allocator has let
//! go and the last slice is gone. It cuts new slices from the dead parts of
//! bufs that long-lived slices keep alive, never over a live slice, zeroed
//! as any, and never from a buf whose slices were split or joined.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc;
use std::thread;

use refbuf::{LocalAllocator, Pool, Slice, coalesce};

fn assert_all_returned(pool: &Pool) {
    let stats = pool.stats();
    assert_eq!(stats.bufs_in_use, 0, "{stats}");
    assert_eq!(stats.bytes_in_use, 0, "{stats}");
}

/// Slices dropped at home while the allocator lives, and the allocator
/// dropped last: the buf goes back.
#[test]
fn drops_at_home_then_allocator() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.local_allocator(4);
    let n = if cfg!(miri) { 300 } else { 10_000u32 };
    for i in 0..n {
        let mut s = alloc.copy_from_slice(&i.to_be_bytes());
        assert!(s.prepend(b"head"));
        assert_eq!(&s[..4], b"head");
        assert_eq!(&s[4..], &i.to_be_bytes());
    }
    drop(alloc);
    assert_all_returned(&pool);
    assert_eq!(pool.stats().bufs_created, 1, "one buf served every slice");
}

/// Slices outliving their allocator and dropped at home afterwards take the
/// atomic path; the last of them returns the buf.
#[test]
fn slices_outlive_the_allocator_at_home() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.local_allocator(0);
    let kept: Vec<Slice> = (0..100u8).map(|i| alloc.copy_from_slice(&[i; 7])).collect();
    drop(alloc);
    assert!(pool.stats().bufs_in_use > 0);
    for (i, s) in kept.into_iter().enumerate() {
        assert_eq!(&s[..], &[i as u8; 7]);
    }
    assert_all_returned(&pool);
}

/// Slices dropped on other threads while the allocator keeps allocating at
/// home, split and joined on both sides: every buf comes back, and each
/// slice shows its own bytes to the end.
#[test]
fn slices_dropped_on_both_threads() {
    let pool = Pool::builder().buf_size(4096).build();
    let (tx, rx) = mpsc::sync_channel::<Slice>(64);
    let remote = thread::spawn(move || {
        let mut n = 0u32;
        for mut s in rx {
            let tag = s[0];
            let back = s.split_off(s.len() / 2);
            assert!(s.iter().chain(back.iter()).all(|&b| b == tag), "a slice's bytes changed");
            assert!(s.try_join(back).is_ok());
            n += 1;
        }
        n
    });
    let mut alloc = pool.local_allocator(2);
    let mut home = Vec::new();
    let mut sent = 0;
    let n = if cfg!(miri) { 400 } else { 20_000usize };
    for i in 0..n {
        let tag = (i % 251) as u8;
        let len = 1 + i * 7 % 900;
        let mut s = alloc.alloc_for_overwrite(len);
        s.fill(tag);
        if i % 3 == 0 {
            tx.send(s).unwrap();
            sent += 1;
        } else {
            home.push(s);
            if home.len() > 16 {
                let mut batch: Vec<Slice> = home.drain(..8).collect();
                for s in &batch {
                    assert!(s.iter().all(|&b| b == s[0]));
                }
                coalesce(&mut batch, usize::MAX);
            }
        }
    }
    drop(tx);
    assert_eq!(remote.join().unwrap(), sent);
    drop(home);
    drop(alloc);
    assert_all_returned(&pool);
}

/// The allocator's buf is not its slices' to take whole while the
/// allocator holds it, at home or not.
#[test]
fn free_entire_prefix_only_once_the_allocator_let_go() {
    let pool = Pool::builder().buf_size(256).build();
    let mut alloc = pool.local_allocator(0);
    drop(alloc.alloc(100));
    let mut s = alloc.alloc(10);
    assert!(!s.free_entire_prefix(), "the allocator still holds the buf");
    drop(alloc);
    assert!(s.free_entire_prefix(), "the slice is the buf's only holder");
    assert_eq!(s.headroom(), 100);
}

/// Once every slice at home is dropped, the allocator reuses the front of
/// its buf: one buf serves any number of slices dropped in turn, even with
/// a slice dropped elsewhere in between.
#[test]
fn rewinds_when_every_slice_is_gone() {
    let pool = Pool::builder().buf_size(64 * 1024).build();
    let mut alloc = pool.local_allocator(0);
    let first = alloc.alloc(1500).as_ptr().addr();
    for _ in 0..1000 {
        drop(alloc.alloc(1500));
    }
    let elsewhere = alloc.alloc(1500);
    thread::spawn(move || drop(elsewhere)).join().unwrap();
    let mut again = None;
    for _ in 0..100 {
        let s = alloc.alloc(1500);
        if s.as_ptr().addr() == first {
            again = Some(s);
            break;
        }
    }
    assert!(again.is_some(), "the allocator came back to the start of its buf");
    assert_eq!(pool.stats().bufs_created, 1);
}

/// Errors leave it usable, as an `Allocator`'s do.
#[test]
fn errors_leave_it_usable() {
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let mut alloc = pool.local_allocator(0);
    let held = alloc.alloc(64);
    assert_eq!(alloc.try_alloc(1), Err(refbuf::AllocError::Exhausted));
    assert_eq!(alloc.try_alloc(1 << 20), Err(refbuf::AllocError::TooLarge));
    drop(held);
    assert_eq!(&alloc.try_copy_from_slice(b"again").unwrap()[..], b"again");
    assert_eq!(alloc.reserve(), 0);
    assert_eq!(alloc.pool().buf_size(), 64);
}

/// Slices made at home, split on another thread (references made there),
/// every part sent back and dropped at home, while the allocator goes on
/// allocating, so its top-ups fold home counts larger than a batch: the
/// allocator keeps reusing its one buf, and it comes back in the end.
#[test]
fn remote_splits_dropped_at_home() {
    let pool = Pool::builder().buf_size(64 * 1024).build();
    let mut alloc = pool.local_allocator(0);
    let (to_remote, remote_in) = mpsc::channel::<Slice>();
    let (remote_out, back_home) = mpsc::channel::<Vec<Slice>>();
    let remote = thread::spawn(move || {
        for mut s in remote_in {
            let mut parts = Vec::new();
            while s.len() > 1 {
                parts.push(s.split_to(1));
            }
            parts.push(s.split_off(0));
            parts.push(s);
            remote_out.send(parts).unwrap();
        }
    });
    for i in 0..if cfg!(miri) { 40 } else { 3000 } {
        to_remote.send(alloc.copy_from_slice(&[i as u8; 8])).unwrap();
        let parts = back_home.recv().unwrap();
        assert_eq!(parts.len(), 9);
        assert!(parts.iter().all(|p| p.iter().all(|&b| b == i as u8)));
        drop(parts);
        drop(alloc.alloc(1));
    }
    drop(to_remote);
    remote.join().unwrap();
    assert_eq!(pool.stats().bufs_created, 1);
    drop(alloc);
    assert_all_returned(&pool);
}

/// A part split off on another thread and kept at home holds the buf: the
/// allocator never rewinds over it.
#[test]
fn no_rewind_over_a_part_split_elsewhere() {
    let pool = Pool::builder().buf_size(64 * 1024).build();
    let mut alloc = pool.local_allocator(0);
    let a = alloc.copy_from_slice(&[0xAA; 100]);
    let (a, b) = thread::spawn(move || {
        let mut a = a;
        let b = a.split_off(50);
        (a, b)
    })
    .join()
    .unwrap();
    drop(a);
    for _ in 0..if cfg!(miri) { 5 } else { 100 } {
        let mut s = alloc.alloc_for_overwrite(40 * 1024);
        s.fill(0x55);
        drop(s);
        assert_eq!(&b[..], &[0xAA; 50][..]);
    }
    drop((b, alloc));
    assert_all_returned(&pool);
}

/// A panic inside `fill_with`'s closure, which drops slices of the same buf
/// at home, leaves the allocator usable and loses nothing.
#[test]
fn panic_inside_fill_with() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.local_allocator(2);
    let mut kept = vec![alloc.copy_from_slice(b"x"), alloc.copy_from_slice(b"y")];
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        alloc.fill_with(100, |buf| {
            buf[0] = 1;
            kept.clear();
            panic!("the closure panics")
        })
    }));
    assert!(result.is_err());
    let s = alloc.fill_with(10, |buf| {
        buf[..3].copy_from_slice(b"abc");
        Ok(3)
    });
    assert_eq!(&s.unwrap()[..], b"abc");
    drop(alloc);
    assert_all_returned(&pool);
}

thread_local! {
    static EXIT_ALLOC: std::cell::RefCell<Option<refbuf::LocalAllocator>> = const { std::cell::RefCell::new(None) };
    static EXIT_SLICES: std::cell::RefCell<Vec<Slice>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An allocator and its slices kept in thread-locals are dropped by their
/// destructors as the thread exits, in either order: every buf comes back,
/// the current one and those it kept as spent.
#[test]
fn dropped_by_thread_local_destructors() {
    let pool = Pool::builder().buf_size(1024).build();
    for slices_first in [false, true] {
        let pool = pool.clone();
        thread::spawn(move || {
            let fill = || {
                EXIT_ALLOC.with(|alloc| {
                    let mut alloc = alloc.borrow_mut();
                    let alloc = alloc.get_or_insert_with(|| pool.local_allocator(0));
                    EXIT_SLICES.with(|slices| {
                        slices.borrow_mut().extend((0..10u8).map(|i| alloc.copy_from_slice(&[i; 300])))
                    });
                })
            };
            if slices_first {
                EXIT_SLICES.with(|slices| slices.borrow_mut().clear());
            }
            fill();
        })
        .join()
        .unwrap();
    }
    assert_all_returned(&pool);
}

/// A window of slices across small bufs: once warm, each buf the allocator
/// fills is one it filled before, taken back when its slices are gone, with
/// no new buf made and none through the pool.
#[test]
fn spent_bufs_turn_over_a_window() {
    let pool = Pool::builder().buf_size(4096).build();
    let mut alloc = pool.local_allocator(0);
    let mut window: std::collections::VecDeque<Slice> = (0..32).map(|_| alloc.alloc(1500)).collect();
    // Warm: the window's bufs and the one being filled.
    for _ in 0..100 {
        window.pop_front();
        window.push_back(alloc.alloc(1500));
    }
    let made = pool.stats().bufs_created;
    let mut places = std::collections::HashSet::new();
    for i in 0..1000u32 {
        window.pop_front();
        let s = alloc.copy_from_slice(&[i as u8; 1500]);
        places.insert(s.as_ptr().addr());
        window.push_back(s);
    }
    let stats = pool.stats();
    assert_eq!(stats.bufs_created, made, "no buf made once warm: {stats}");
    assert_eq!(stats.bufs_idle, 0, "no buf went back to the pool: {stats}");
    assert!(window.iter().enumerate().all(|(k, s)| s.iter().all(|&b| b == (968 + k) as u8)));
    assert!(places.len() <= 2 * made as usize, "two places in each buf: {}", places.len());
    drop(window);
    drop(alloc);
    assert_all_returned(&pool);
}

/// A spent buf a long-lived slice pins is pushed out by newer ones and goes
/// back to the pool when that slice goes; one that is not standard-size is
/// never kept.
#[test]
fn spent_bufs_are_bounded() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.local_allocator(0);
    let pinned = alloc.alloc(1000);
    // Each allocation fills a buf whose slice lives on: after the cap,
    // the pinned buf is pushed out of the allocator's hands.
    let kept: Vec<Slice> = (0..=refbuf::LocalAllocator::SPENT_BUFS).map(|_| alloc.alloc(1000)).collect();
    let in_use = pool.stats().bufs_in_use;
    drop(pinned);
    assert_eq!(pool.stats().bufs_in_use, in_use - 1, "the pinned buf went back with its slice");
    // A larger buf goes back as soon as its slice does.
    drop(alloc.alloc(4000));
    let in_use = pool.stats().bufs_in_use;
    drop(alloc.alloc(4000));
    assert_eq!(pool.stats().bufs_in_use, in_use);
    drop(kept);
    drop(alloc);
    assert_all_returned(&pool);
}

/// An allocator from a pool with a budget keeps no spent buf: a filled buf
/// whose slices are gone goes back to the pool at once, where a request on
/// another thread can have it.
#[test]
fn no_spent_bufs_under_a_budget() {
    let pool = Pool::builder().buf_size(1024).max_bytes(2 * 1024).build();
    let mut alloc = pool.local_allocator(0);
    let a = alloc.alloc(1000);
    let b = alloc.alloc(1000);
    drop(a);
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bufs_idle), (1, 1), "the first buf went back: {stats}");
    let other = thread::spawn({
        let pool = pool.clone();
        move || pool.local_allocator(0).try_alloc(1000).map(|s| s.len())
    });
    assert_eq!(other.join().unwrap(), Ok(1000));
    drop((b, alloc));
    assert_all_returned(&pool);
}

// ===== Cutting from the dead parts of bufs that slices keep alive =====

/// The bytes a slice owns, headroom then data, as addresses.
fn region(s: &Slice) -> Range<usize> {
    let at = s.as_ptr().addr();
    at - s.headroom()..at + s.len()
}

/// Whether two ranges of addresses share a byte.
fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Runs `f` on a slice's headroom and data together, and leaves the slice
/// as it was (`expand_front` and `truncate_front` keep its region in place,
/// and with it what the allocator's record knows of it).
fn with_region<T>(s: &mut Slice, f: impl FnOnce(&mut [u8]) -> T) -> T {
    let front = s.headroom();
    assert!(s.expand_front(front));
    let out = f(s);
    s.truncate_front(front);
    out
}

/// Bytes to fill slices with: slice `i` gets the bytes from `i % PERIOD`
/// on, so that two slices made fewer than `PERIOD` allocations apart, as
/// any two alive at once here are, carry different bytes. None is zero, so
/// a slice made over them shows whether it was zero-filled.
struct Patterns(Vec<u8>);

/// See [`Patterns`].
const PERIOD: usize = 4093;

impl Patterns {
    /// Patterns for regions of up to `max` bytes.
    fn new(max: usize) -> Patterns {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let words = (PERIOD + max).div_ceil(8);
        let bytes = (0..words)
            .flat_map(|_| {
                // Marsaglia's xorshift64.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes().map(|b| b.max(1))
            })
            .collect();
        Patterns(bytes)
    }

    /// `len` bytes of slice `i`'s pattern, from `from` on.
    fn of(&self, i: u32, from: usize, len: usize) -> &[u8] {
        let at = i as usize % PERIOD + from;
        &self.0[at..at + len]
    }
}

/// A slice under watch: its number, its region as made, and the slice, or
/// the two parts it was split into, which cover that region end to end.
struct Watched {
    i: u32,
    region: Range<usize>,
    front: Slice,
    back: Option<Slice>,
}

impl Watched {
    /// Slice `i`, just made: fills its region with its pattern.
    fn new(mut s: Slice, i: u32, patterns: &Patterns) -> Watched {
        with_region(&mut s, |bytes| bytes.copy_from_slice(patterns.of(i, 0, bytes.len())));
        Watched { i, region: region(&s), front: s, back: None }
    }

    /// Splits the slice in two halves with `split_to`, or else `split_off`,
    /// keeping both.
    fn split(&mut self, to: bool) {
        assert!(self.back.is_none());
        let half = self.front.len() / 2;
        self.back = Some(if to {
            let front = self.front.split_to(half);
            core::mem::replace(&mut self.front, front)
        } else {
            self.front.split_off(half)
        });
    }

    /// Joins `next`, which follows it, with `try_join`, and fills the
    /// joined region with this slice's pattern.
    fn join(&mut self, next: Watched, patterns: &Patterns) {
        assert!(self.back.is_none() && next.back.is_none());
        assert!(self.front.try_join(next.front).is_ok(), "the tiles lie end to end");
        self.region.end = next.region.end;
        with_region(&mut self.front, |bytes| bytes.copy_from_slice(patterns.of(self.i, 0, bytes.len())));
    }

    /// Checks that the slice, or each part, still holds its pattern.
    fn check(&mut self, patterns: &Patterns) {
        let (i, mut from) = (self.i, 0);
        let mut intact = |part: &mut Slice| {
            let intact = with_region(part, |bytes| *bytes == *patterns.of(i, from, bytes.len()));
            from += part.headroom() + part.len();
            intact
        };
        let intact = intact(&mut self.front) && self.back.as_mut().is_none_or(&mut intact);
        assert!(intact, "slice {i} at {:x?} was written over", self.region);
        assert_eq!(from, self.region.len());
    }

    /// Checks it, then drops it.
    fn drop_checked(mut self, patterns: &Patterns) {
        self.check(patterns);
    }
}

/// Which slices [`window_with_kept`] keeps for longer.
#[derive(Clone, Copy)]
struct Keep {
    /// One in this many, drawn from a fixed seed.
    one_in: u64,
    /// Allocations a kept slice lives.
    life: u32,
    /// Whether each is split in two (both halves kept).
    split: bool,
}

/// `n` slices from `alloc`, each dropped `window` allocations after it is
/// made, but those `keep` picks kept longer; every slice filled with its
/// own bytes and checked just before it is dropped, so that a slice made
/// over a live one shows. Returns the most bytes (headroom and data) alive
/// at once.
fn window_with_kept(
    patterns: &Patterns,
    mut alloc: impl FnMut() -> Slice,
    n: u32,
    window: u32,
    keep: Option<Keep>,
) -> usize {
    let (mut young, mut kept) = (VecDeque::new(), VecDeque::new());
    let (mut live_bytes, mut peak) = (0, 0);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        let mut s = Watched::new(alloc(), i, patterns);
        live_bytes += s.region.len();
        peak = peak.max(live_bytes);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        match keep {
            Some(keep) if rng.is_multiple_of(keep.one_in) => {
                if keep.split {
                    s.split(false);
                }
                kept.push_back(s);
            }
            _ => young.push_back(s),
        }
        let kept_life = keep.map_or(0, |keep| keep.life);
        for (list, life) in [(&mut young, window), (&mut kept, kept_life)] {
            while list.front().is_some_and(|w: &Watched| i - w.i >= life) {
                let w = list.pop_front().expect("there is a front");
                live_bytes -= w.region.len();
                w.drop_checked(patterns);
            }
        }
    }
    for w in young.into_iter().chain(kept) {
        w.drop_checked(patterns);
    }
    peak
}

/// A kept slice does not pin its buf: in a loop of 1500-byte slices (16
/// bytes of headroom), a window of 64 alive and one in 50 kept for
/// thousands of allocations, a `LocalAllocator` cuts new slices from the
/// dead parts of the 64 KiB bufs the kept ones hold, so that the bufs it
/// makes hold at most three times the most bytes alive at once, and three
/// bufs more (the one it cuts from and the two free ones it keeps), with
/// no slice written over another. So does an `Allocator`, from the dead
/// parts of the bufs it let go (the pool's orphans), once its probes have
/// seen slices live long (outside Miri: the probes need more bufs turned
/// over than Miri's shorter run has, so there only the bytes are checked).
/// The same loop with each kept slice split in two, which the record
/// cannot follow, makes more than that through either.
#[test]
fn a_kept_slice_does_not_pin_its_buf() {
    let (n, life) = if cfg!(miri) { (1000, 600) } else { (20_000, 3000) };
    // Under Miri, where every byte written and checked is slow, a quarter
    // of every size: the same slices to a buf, and segments to a slice.
    let (buf_size, len, reserve) = if cfg!(miri) { (16 * 1024, 375, 4) } else { (64 * 1024, 1500, 16) };
    let patterns = Patterns::new(reserve + len);
    let run = |local: bool, split: bool| {
        let pool = Pool::builder().buf_size(buf_size).build();
        let keep = Some(Keep { one_in: 50, life, split });
        let peak = if local {
            let mut alloc = pool.local_allocator(reserve);
            window_with_kept(&patterns, || alloc.alloc_for_overwrite(len), n, 64, keep)
        } else {
            let mut alloc = pool.allocator(reserve);
            window_with_kept(&patterns, || alloc.alloc_for_overwrite(len), n, 64, keep)
        };
        assert_all_returned(&pool);
        let made = pool.stats().bufs_created as usize * pool.buf_size();
        (made, 3 * peak + 3 * pool.buf_size())
    };
    for (local, name) in [(true, "a LocalAllocator"), (false, "an Allocator")] {
        let (made, bound) = run(local, false);
        assert!(
            made <= bound || (cfg!(miri) && !local),
            "{name} made {made} bytes of bufs, more than {bound}"
        );
        let (split, bound) = run(local, true);
        assert!(split > bound, "{name}, the kept slices split: {split} bytes of bufs, no more than {bound}");
    }
}

/// An `Allocator` whose every buf keeps a slice for good, so that no buf
/// ever comes back to the pool, still learns that slices live long, from
/// its probes' slices dying on its own thread, and cuts from the dead parts
/// of the bufs it let go: slices of 4,500 bytes, 14 to a 64 KiB buf, the
/// first of every 14 kept to the end and the rest dropped 20 allocations
/// after they were made. The bufs made hold at most three times the bytes
/// alive at the end, and eight bufs more; one buf per 14 slices (what
/// pinning would take) is several times that. Every slice keeps its bytes.
#[test]
fn an_allocator_learns_of_kept_slices_before_any_buf_comes_back() {
    let (n, len, buf_size) = if cfg!(miri) { (600, 1125, 16 * 1024) } else { (4200, 4500, 64 * 1024) };
    let pool = Pool::builder().buf_size(buf_size).build();
    let mut alloc = pool.allocator(0);
    let mut kept = Vec::new();
    let mut window = std::collections::VecDeque::new();
    for i in 0..n {
        let mut slice = alloc.alloc_for_overwrite(len);
        slice.fill(i as u8);
        if i % 14 == 0 {
            kept.push((i, slice));
        } else {
            window.push_back((i, slice));
            if window.len() > 20 {
                let (j, old) = window.pop_front().unwrap();
                assert!(old.iter().all(|&b| b == j as u8), "slice {j} was written over");
            }
        }
    }
    assert_eq!(pool.stats().bufs_idle, 0, "no buf came back");
    let live: usize = kept.iter().chain(&window).map(|(_, s)| s.len()).sum();
    for (i, slice) in kept.iter().chain(&window) {
        assert!(slice.iter().all(|&b| b == *i as u8), "slice {i} was written over");
    }
    let made = pool.stats().bufs_created as usize * buf_size;
    let bound = 3 * live + 8 * buf_size;
    assert!(made <= bound, "{made} bytes of bufs made for {live} bytes alive, more than {bound}");
    drop((kept, window, alloc));
    assert_all_returned(&pool);
}

/// A producer whose slices are all dropped on another thread never starts
/// tracking, however its bufs look to its probes: counting drops would cost
/// the consumer an atomic operation per slice. Batches of 64 slices of
/// 1500 bytes go through a channel of two to a thread that drops them,
/// the last batch's buf often keeping a few slices across the boundary
/// (mostly dead, as a long-lived slice would leave it). Bufs of another
/// allocator came back to the producing thread before: they say nothing of
/// where the producer's slices go.
#[test]
fn slices_dropped_on_another_thread_start_no_tracking() {
    let batches = if cfg!(miri) { 40 } else { 2000 };
    let pool = Pool::new();
    let mut before = pool.allocator(0);
    for _ in 0..8 {
        drop(before.alloc_for_overwrite(pool.buf_size()));
    }
    drop(before);
    let mut alloc = pool.allocator(0);
    let (tx, rx) = mpsc::sync_channel::<Vec<Slice>>(2);
    let consumer = thread::spawn(move || {
        for batch in rx {
            drop(batch);
        }
    });
    for _ in 0..batches {
        let batch: Vec<Slice> = (0..64).map(|_| alloc.alloc_for_overwrite(1500)).collect();
        tx.send(batch).unwrap();
        assert!(format!("{alloc:?}").contains("tracking: false"), "a producer started tracking: {alloc:?}");
    }
    drop(tx);
    consumer.join().unwrap();
    drop(alloc);
    assert_all_returned(&pool);
}

/// Bytes in a buf of the tile tests: under Miri, where every byte written
/// and checked is slow, a quarter as many.
const BUF: usize = if cfg!(miri) { 16 * 1024 } else { 64 * 1024 };
/// Bytes in a tile: a slice's headroom and data.
const TILE: usize = BUF / 16;
/// Tiles in a buf, end to end.
const TILES: usize = BUF / TILE;
/// What a fresh slice holds, headroom and data.
static ZEROS: [u8; 2 * TILE] = [0; 2 * TILE];
/// Tiles alive in [`Tiles::step`]'s window: more than a buf holds, so that
/// the allocator keeps looking for room in the bufs it has filled.
const TILE_WINDOW: usize = 24;
/// Steps of the window within which the allocator comes back to a buf
/// filled before them: it first cuts from the buf's dead parts about three
/// bufs' worth of tiles later, and this is twice that.
const STEPS: usize = 6 * TILES;

/// A `LocalAllocator` over bufs of `BUF` bytes cutting tiles, each checked
/// to be zero-filled when made (headroom and data), then filled with its own
/// bytes, which are checked again when it is dropped.
struct Tiles {
    pool: Pool,
    alloc: LocalAllocator,
    patterns: Patterns,
    made: u32,
    window: VecDeque<Watched>,
}

impl Tiles {
    /// Tiles with `reserve` bytes of headroom each.
    fn new(reserve: usize) -> Tiles {
        let pool = Pool::builder().buf_size(BUF).build();
        let alloc = pool.local_allocator(reserve);
        Tiles { pool, alloc, patterns: Patterns::new(2 * TILE), made: 0, window: VecDeque::new() }
    }

    /// A new tile, not in the window.
    fn tile(&mut self) -> Watched {
        self.tile_of(TILE)
    }

    /// A new tile of `bytes` bytes, headroom and data, not in the window.
    fn tile_of(&mut self, bytes: usize) -> Watched {
        let mut s = self.alloc.alloc(bytes - self.alloc.reserve());
        let zeroed = with_region(&mut s, |bytes| *bytes == ZEROS[..bytes.len()]);
        assert!(zeroed, "tile {} at {:x?} was not zero-filled", self.made, region(&s));
        self.made += 1;
        Watched::new(s, self.made - 1, &self.patterns)
    }

    /// Empties the window, then cuts tiles until `TILES` in a row lie end
    /// to end, which then fill a buf's data area (a tile of one buf never
    /// starts where one of another ends: a buf's header lies in front of
    /// its data): that area, and the tiles. The tiles cut before them are
    /// dropped.
    fn whole_buf(&mut self) -> (Range<usize>, Vec<Watched>) {
        self.drain_window();
        let mut run: Vec<Watched> = Vec::new();
        for _ in 0..8 * TILES {
            let tile = self.tile();
            if run.last().is_some_and(|last| last.region.end != tile.region.start) {
                run.drain(..).for_each(|old| old.drop_checked(&self.patterns));
            }
            run.push(tile);
            if run.len() == TILES {
                return (run[0].region.start..run[TILES - 1].region.end, run);
            }
        }
        panic!("no whole buf in {} tiles", 8 * TILES);
    }

    /// One more tile into the window, the oldest beyond `TILE_WINDOW`
    /// checked and dropped: the new tile's region.
    fn step(&mut self) -> Range<usize> {
        self.step_of(TILE)
    }

    /// [`step`](Tiles::step) with a tile of `bytes` bytes.
    fn step_of(&mut self, bytes: usize) -> Range<usize> {
        let tile = self.tile_of(bytes);
        let region = tile.region.clone();
        self.window.push_back(tile);
        if self.window.len() > TILE_WINDOW {
            self.window.pop_front().expect("the window is not empty").drop_checked(&self.patterns);
        }
        region
    }

    /// Keeps a tile alive in each of two whole bufs and goes on through the
    /// window, so that the allocator finds the older buf in use and mostly
    /// dead, and starts keeping segment records; drops the two.
    fn start_tracking(&mut self) {
        let mut kept = Vec::new();
        for _ in 0..2 {
            let (_, mut tiles) = self.whole_buf();
            kept.push(tiles.swap_remove(0));
            tiles.into_iter().for_each(|tile| tile.drop_checked(&self.patterns));
        }
        for _ in 0..2 * TILES {
            self.step();
        }
        kept.into_iter().for_each(|tile| tile.drop_checked(&self.patterns));
    }

    /// Drops the window's tiles, checked.
    fn drain_window(&mut self) {
        self.window.drain(..).for_each(|tile| tile.drop_checked(&self.patterns));
    }

    /// Drops every tile (checked) and the allocator: every buf goes back.
    fn finish(mut self) {
        self.drain_window();
        drop(self.alloc);
        assert_all_returned(&self.pool);
    }
}

/// `alloc` from a dead part of a buf a kept slice holds is zero-filled,
/// headroom and data, though those bytes held other slices' (never zero):
/// tiles are cut from the buf while its kept tile lives, and each was
/// checked zero-filled as made.
#[test]
fn alloc_from_a_dead_part_is_zero_filled() {
    let mut tiles = Tiles::new(32);
    tiles.start_tracking();
    let (buf, mut whole) = tiles.whole_buf();
    let kept = whole.swap_remove(7);
    whole.into_iter().for_each(|tile| tile.drop_checked(&tiles.patterns));
    // Until half a buf's worth of tiles are cut from it.
    let cut = (0..STEPS).filter(|_| overlap(&tiles.step(), &buf)).take(TILES / 2).count();
    assert!(cut > 0, "no tile was cut from the dead parts of the buf");
    kept.drop_checked(&tiles.patterns);
    tiles.finish();
}

/// A dead part is cut from only where the whole slice, headroom and data,
/// fits: in a buf whose every other tile is kept, a slice one byte larger
/// than a tile is never cut from the gaps between them (with no slice made
/// over a kept one), and one exactly a tile's size is.
#[test]
fn a_dead_part_is_cut_from_only_where_the_slice_fits() {
    let mut tiles = Tiles::new(16);
    tiles.start_tracking();
    let (buf, whole) = tiles.whole_buf();
    let (mut kept, mut gone) = (Vec::new(), Vec::new());
    for (k, tile) in whole.into_iter().enumerate() {
        if k.is_multiple_of(2) { kept.push(tile) } else { gone.push(tile) }
    }
    gone.into_iter().for_each(|tile| tile.drop_checked(&tiles.patterns));
    let larger = (0..STEPS).filter(|_| overlap(&tiles.step_of(TILE + 1), &buf)).count();
    assert_eq!(larger, 0, "slices a byte larger than the gaps were cut from them");
    let exact = (0..STEPS).any(|_| overlap(&tiles.step_of(TILE), &buf));
    assert!(exact, "no slice was cut from gaps of its exact size");
    kept.into_iter().for_each(|tile| tile.drop_checked(&tiles.patterns));
    tiles.finish();
}

/// How a kept tile is reshaped in [`a_reshaped_buf_is_reused_only_whole`].
#[derive(Debug, Clone, Copy)]
enum Reshape {
    /// Not at all: the control, whose buf is cut from.
    None,
    SplitOff,
    SplitTo,
    /// Joined with the tile after it.
    Join,
}

/// A buf in which a kept slice is split (`split_off`, `split_to`) or joined
/// (`try_join`) is never cut from while a slice of it lives, since the
/// record cannot follow the parts: no tile made meanwhile lies in it, and
/// the parts keep their bytes. The same buf with its kept tile left whole
/// is cut from, so the window does reach it.
#[test]
fn a_reshaped_buf_is_reused_only_whole() {
    let mut tiles = Tiles::new(0);
    tiles.start_tracking();
    for reshape in [Reshape::None, Reshape::SplitOff, Reshape::SplitTo, Reshape::Join] {
        let (buf, mut whole) = tiles.whole_buf();
        let next = whole.remove(6);
        let mut kept = whole.remove(5);
        match reshape {
            Reshape::None => whole.push(next),
            Reshape::SplitOff | Reshape::SplitTo => {
                kept.split(matches!(reshape, Reshape::SplitTo));
                whole.push(next);
            }
            Reshape::Join => kept.join(next, &tiles.patterns),
        }
        whole.into_iter().for_each(|tile| tile.drop_checked(&tiles.patterns));
        let cut = (0..STEPS).filter(|_| overlap(&tiles.step(), &buf)).count();
        kept.drop_checked(&tiles.patterns);
        match reshape {
            Reshape::None => assert!(cut > 0, "the control: no tile was cut from the buf"),
            _ => assert_eq!(cut, 0, "{reshape:?}: tiles were cut from the buf while its parts lived"),
        }
    }
    tiles.finish();
}

/// A kept tile sent to another thread and dropped there stays counted in
/// the record (a drop elsewhere does not touch it): tiles are cut from the
/// buf's dead parts on both sides of it, never over it, while another tile
/// keeps the buf. Once that one and the tiles cut since are gone, the buf
/// is reused whole, and a tile lies where the dropped one did.
#[test]
fn a_slice_dropped_elsewhere_stays_counted() {
    let mut tiles = Tiles::new(0);
    tiles.start_tracking();
    let (buf, mut whole) = tiles.whole_buf();
    let home = whole.remove(10);
    let mut away = whole.remove(3);
    whole.into_iter().for_each(|tile| tile.drop_checked(&tiles.patterns));
    away.check(&tiles.patterns);
    let gone = away.region.clone();
    thread::spawn(move || drop(away)).join().unwrap();
    // Until a tile is cut past it: the allocator went on from before it.
    let (mut before, mut after) = (0, 0);
    for _ in 0..STEPS {
        let r = tiles.step();
        assert!(!overlap(&r, &gone), "a tile at {r:x?} was cut over {gone:x?}, counted as live");
        before += usize::from(overlap(&r, &(buf.start..gone.start)));
        after += usize::from(overlap(&r, &(gone.end..buf.end)));
        if after > 0 {
            break;
        }
    }
    assert!(before > 0 && after > 0, "tiles cut from the buf: {before} before the gone one, {after} after");
    home.drop_checked(&tiles.patterns);
    let again = (0..STEPS).any(|_| overlap(&tiles.step(), &gone));
    assert!(again, "no tile was cut where the gone one was, once the buf's slices were gone");
    // Cut from the start of the buf on, end to end: the buf reused whole.
    let slot = (gone.start - buf.start) / TILE;
    let last: Vec<_> = tiles.window.iter().rev().take(slot + 1).map(|tile| tile.region.start).collect();
    let whole: Vec<_> = (0..=slot).rev().map(|k| buf.start + k * TILE).collect();
    assert_eq!(last, whole, "the tiles up to the gone one's place were not cut from the buf's start");
    tiles.finish();
}

/// Whether the allocator keeps segment records for the bufs it starts, as
/// its `Debug` output tells.
fn tracking(alloc: &LocalAllocator) -> bool {
    let shown = format!("{alloc:?}");
    assert!(shown.contains("tracking: "), "{shown}");
    shown.contains("tracking: true")
}

/// Records are kept only while slices are seen to live long: after a phase
/// with kept slices, a plain window turns them off again (once the oldest
/// spent buf has been found free for `TRACKED_BUFS` refills in a row), and
/// a later phase with kept slices turns them back on; every slice keeps its
/// bytes throughout, and every buf comes back in the end.
#[test]
fn records_turn_off_without_kept_slices() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.local_allocator(16);
    let patterns = Patterns::new(1024);
    let (n, life) = if cfg!(miri) { (400, 200) } else { (5000, 2000) };
    let tracked = LocalAllocator::TRACKED_BUFS as u32;
    // Four slices of 256 bytes (headroom and data) a buf: a buf a kept
    // slice holds alone is mostly dead.
    let keep = Some(Keep { one_in: 50, life, split: false });
    assert!(!tracking(&alloc));
    window_with_kept(&patterns, || alloc.alloc_for_overwrite(240), n, 64, keep);
    assert!(tracking(&alloc), "kept slices turned records on");
    // One slice a buf, so that every allocation is a refill, and a window
    // of four, so that the oldest spent buf is soon found free: then
    // `TRACKED_BUFS` refills in a row find it so.
    window_with_kept(&patterns, || alloc.alloc_for_overwrite(1000), tracked + 64, 4, None);
    assert!(!tracking(&alloc), "a plain window turned records off");
    window_with_kept(&patterns, || alloc.alloc_for_overwrite(240), n, 64, keep);
    assert!(tracking(&alloc), "kept slices turned records on again");
    drop(alloc);
    assert_all_returned(&pool);
}
