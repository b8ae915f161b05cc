//! An `Allocator` that may move between threads cutting from the dead parts
//! of its pool's orphans: bufs it let go while a slice still used them,
//! whose drops, on every thread, count themselves in the buf's own segment
//! record (see `segments.rs`, "Counting every drop", and `pool/orphans.rs`).
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{Outcomes, Probe, assert_stats, run_model};
use refbuf::{Allocator, Pool, Slice};

/// What [`orphan_a_kept_slice`] leaves behind.
struct Orphaned {
    /// A slice in each other buf the allocator filled on the way, alive to
    /// the end: of `p`, `t` and `x` (16 bytes each), and of `w` and `v`
    /// (64 bytes each), the last filling its current buf, so that the next
    /// allocation refills.
    held: [Slice; 5],
    /// 16 bytes of `K` at bytes 16..32 of a counting buf on the pool's list
    /// of orphans. Bytes 0..16 and 32..64 were carved, filled with `d` and
    /// dropped: the record counts them dead.
    kept: Slice,
}

/// Allocates a first slice of 16 bytes, filled with `byte` and returned,
/// then the rest of the allocator's current buf, dropped at once: the buf
/// then has one slice alive and no room.
fn one_slice_in_a_full_buf(alloc: &mut Allocator, byte: u8) -> Slice {
    let mut first = alloc.alloc_for_overwrite(16);
    first.fill(byte);
    drop(alloc.alloc_for_overwrite(48));
    first
}

/// A 64-byte slice filled with `byte`: a buf of its own.
fn a_full_buf(alloc: &mut Allocator, byte: u8) -> Slice {
    let mut slice = alloc.alloc_for_overwrite(64);
    slice.fill(byte);
    slice
}

/// Drives an `Allocator` of a pool of 64-byte bufs into tracking, and leaves
/// one of its counting bufs on the pool's list of orphans with one slice
/// alive between two dead parts; see [`Orphaned`].
///
/// Under loom the allocator probes at every refill, the pool keeps one
/// probe, and a buf has 64 segments of one byte. Each refill below lets
/// the current buf go and takes the next, in this order:
/// 1. buf 1, left with `p` and `q` alive;
/// 2. buf 2, left with `r` alive; buf 1 becomes the probe, with two
///    slices; `q` is then dropped;
/// 3. buf 3, left with `t` alive: the probe, buf 1, has lost a slice, so
///    it is put back, noting so; buf 2 is let go, and `r` then dropped, so
///    that it comes back to this thread's cache;
/// 4. buf 2 again, from the cache, left with `x` alive: buf 1 has lost a
///    slice at a second look, and a buf came back to this thread, so
///    tracking starts; buf 3 becomes the probe;
/// 5. buf 4, fresh, which counts its drops: carved as 0..16, 16..32 (the
///    kept slice) and 32..64, the first and last dropped; buf 3, with as
///    many slices as when it was let go, goes off the probes, and buf 2
///    becomes the probe;
/// 6. buf 5, for 64 bytes (`w`): buf 4 becomes the probe, and buf 2,
///    looked at (not mostly dead for 64 bytes), goes off the probes;
/// 7. buf 6, for 64 bytes (`v`): buf 4, looked at, goes on the list of
///    orphans; buf 5 becomes the probe.
fn orphan_a_kept_slice(alloc: &mut Allocator) -> Orphaned {
    let mut p = alloc.alloc_for_overwrite(16);
    p.fill(b'p');
    let q = one_slice_in_a_full_buf(alloc, b'q');
    assert_eq!(q.as_ptr().addr(), p.as_ptr().addr() + 16, "the first buf holds `p` and `q`");
    let r = one_slice_in_a_full_buf(alloc, b'r');
    drop(q);
    let t = one_slice_in_a_full_buf(alloc, b't');
    drop(r);
    let x = one_slice_in_a_full_buf(alloc, b'x');
    let mut before = alloc.alloc_for_overwrite(16);
    let mut kept = alloc.alloc_for_overwrite(16);
    let mut after = alloc.alloc_for_overwrite(32);
    let start = before.as_ptr().addr();
    assert_eq!(
        (kept.as_ptr().addr(), after.as_ptr().addr()),
        (start + 16, start + 32),
        "the fourth buf is carved in order"
    );
    before.fill(b'd');
    kept.fill(b'K');
    after.fill(b'd');
    drop((before, after));
    let w = a_full_buf(alloc, b'w');
    let v = a_full_buf(alloc, b'v');
    assert!(!in_buf_at(start, &w) && !in_buf_at(start, &v), "the full bufs are not cut from the fourth");
    assert!(format!("{alloc:?}").contains("tracking: true"), "the allocator tracks: {alloc:?}");
    Orphaned { held: [p, t, x, w, v], kept }
}

/// Checks that the slices [`Orphaned::held`] still show their own bytes
/// alone: no new slice was cut over them.
#[track_caller]
fn assert_held(held: &[Slice; 5]) {
    for (slice, byte) in held[..3].iter().zip([b'p', b't', b'x']) {
        assert_eq!(&slice[..], &[byte; 16], "a held slice shows its own bytes alone");
    }
    for (slice, byte) in held[3..].iter().zip([b'w', b'v']) {
        assert_eq!(&slice[..], &[byte; 64], "a held slice shows its own bytes alone");
    }
}

/// Checks that every buf the pool made, six in [`orphan_a_kept_slice`] and
/// perhaps a fresh one for the new slice, came back once.
#[track_caller]
fn assert_every_buf_back(pool: &Pool) {
    let made = pool.stats().bufs_created;
    assert!(made == 6 || made == 7, "{made} bufs made, for six or seven");
    assert_stats(pool, made, 0, made as usize);
}

/// Whether any byte of `slice` lies in the 64-byte data area at `start`.
fn in_buf_at(start: usize, slice: &Slice) -> bool {
    let at = slice.as_ptr().addr();
    at < start + 64 && at + slice.len() > start
}

/// The allocator moves to another thread and asks for 32 bytes there,
/// while the kept slice of the counting orphan is written and dropped on
/// the thread that made both. The refill looks at the orphan under the
/// pool's lock, racing the slice's counted drop and the last-drop path
/// that takes the buf off the list:
///
/// - where the drop came first, the orphan is passed over (its count is
///   zero) and goes back to the pool; the new slice comes from a fresh
///   buf, or from the orphan's, rewound once back in the pool;
/// - where the look came first and the drop after it, the allocator holds
///   the orphan and finds itself its sole holder: it rewinds. A new slice
///   at the buf's start shows the kept slice's last write (loom checks the
///   ordering);
/// - where the slice outlives the look, the new slice is cut from 32..64,
///   the dead part after it (0..16, before it, is too small), and must not
///   touch it.
///
/// Each outcome is reached, and so is the kept slice's last check after
/// the allocator's write. Every buf comes back once.
#[test]
fn orphan_cut_from_by_a_moved_allocator_while_its_kept_slice_drops() {
    let outcomes = Outcomes::new([
        "new slice from a fresh buf",
        "new slice at the orphan's start, after its last drop",
        "new slice cut from the orphan's dead part",
        "kept slice checked after the allocator's write",
    ]);
    let counted = outcomes.clone();
    run_model("counting: a moved allocator cuts from an orphan whose kept slice drops", move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let Orphaned { held, mut kept } = orphan_a_kept_slice(&mut alloc);
        let start = kept.as_ptr().addr() - 16;

        let probe = Probe::default();
        let written = probe.clone();
        let moved = thread::spawn(move || {
            let mut new = alloc.alloc_for_overwrite(32);
            let outcome = match new.as_ptr().addr() {
                at if at == start => {
                    assert_eq!(&new[..16], &[b'd'; 16], "the rewound buf shows the dropped bytes");
                    assert_eq!(&new[16..], &[b'x'; 16], "a rewind comes after the kept slice's last write");
                    1
                }
                at if at == start + 32 => {
                    assert_eq!(&new[..], &[b'd'; 32], "the dead part shows the dropped bytes");
                    2
                }
                _ => {
                    assert!(!in_buf_at(start, &new), "a slice cut from the orphan, but not where it may be");
                    0
                }
            };
            new.fill(b'n');
            written.pass();
            assert_eq!(&new[..], &[b'n'; 32], "the new slice shows its own bytes alone");
            drop(new);
            (alloc, outcome)
        });
        assert_eq!(&kept[..], &[b'K'; 16], "the kept slice shows its own bytes");
        kept.fill(b'x');
        let after = probe.passed();
        assert_eq!(&kept[..], &[b'x'; 16], "the kept slice shows its own bytes alone");
        drop(kept);
        let (alloc, outcome) = moved.join().unwrap();
        counted.hit(outcome);
        if after {
            counted.hit(3);
        }
        assert_held(&held);
        drop((held, alloc));
        assert_every_buf_back(&pool);
    });
    outcomes.assert_each_reached();
}

/// The kept slice of the counting orphan is split on another thread, whose
/// back part, starting in a segment the record counts dead, is written and
/// dropped there, while the front part is dropped on the allocator's
/// thread before it asks for 32 bytes. The record then counts every
/// segment dead though the back part may live: only the buf's reshaped
/// mark, read after the record's drops, keeps the allocator off it. The
/// split happens before the front part's drop, which the look reads. The
/// look races the back part's drop: where the drop came first, the orphan
/// goes back to the pool, and the new slice may be cut at its start,
/// showing every earlier write (loom checks the ordering); where not, the
/// allocator must leave it alone, and takes a fresh buf. Both outcomes are
/// reached; the back part shows only its own bytes, checked after the
/// allocator's write too. Every buf comes back once.
#[test]
fn remote_split_of_an_orphans_kept_slice_races_the_look() {
    let outcomes = Outcomes::new([
        "orphan's buf reused after the back part's drop",
        "orphan left alone, a fresh buf taken",
        "back part checked after the allocator's write",
    ]);
    let counted = outcomes.clone();
    run_model("counting: a remote split of an orphan's kept slice racing the look", move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let Orphaned { held, mut kept } = orphan_a_kept_slice(&mut alloc);
        let start = kept.as_ptr().addr() - 16;

        let probe = Probe::default();
        let written = probe.clone();
        let (tx, rx) = loom::sync::mpsc::channel();
        let t = thread::spawn(move || {
            let mut back = kept.split_off(8);
            back.fill(b's');
            tx.send(kept).unwrap();
            let after = written.passed();
            assert_eq!(&back[..], &[b's'; 8], "the back part shows its own bytes alone");
            drop(back);
            after
        });
        let front = rx.recv().unwrap();
        assert_eq!(&front[..], &[b'K'; 8], "the front part shows the kept slice's bytes");
        drop(front);
        let mut new = alloc.alloc_for_overwrite(32);
        let outcome = if new.as_ptr().addr() == start {
            let earlier = [[b'd'; 16].as_slice(), &[b'K'; 8], &[b's'; 8]].concat();
            assert_eq!(&new[..], &earlier[..], "the reused buf shows every earlier write");
            0
        } else {
            assert!(!in_buf_at(start, &new), "a slice cut from a reshaped orphan in use");
            1
        };
        new.fill(b'n');
        probe.pass();
        let after = t.join().unwrap();
        assert_eq!(&new[..], &[b'n'; 32], "the new slice shows its own bytes alone");
        counted.hit(outcome);
        if after {
            counted.hit(2);
        }
        assert_held(&held);
        drop((held, new, alloc));
        assert_every_buf_back(&pool);
    });
    outcomes.assert_each_reached();
}

/// The probe list's own race: the allocator lists a buf as the pool's
/// probe while its one slice lives, and that slice is then dropped on
/// another thread while the allocator's next refill looks at the probe.
/// The look reads the count under the pool's lock; the last drop finds the
/// buf listed and takes it off under that lock before the buf goes back.
/// Whether the look finds the slice alive (and lists the probe again), or
/// the count at zero (and takes it off itself), or the buf already gone,
/// every buf comes back once and none stays listed: the pool's counters
/// say so, and loom's leak check and access tracker stand behind them.
#[test]
fn probe_looked_at_while_its_last_slice_drops() {
    run_model("counting: a probe looked at while its last slice drops", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let p = one_slice_in_a_full_buf(&mut alloc, b'p');
        let r = one_slice_in_a_full_buf(&mut alloc, b'r');
        let t = thread::spawn(move || {
            assert_eq!(&p[..], &[b'p'; 16], "the probe's slice shows its own bytes alone");
            drop(p);
        });
        let s = one_slice_in_a_full_buf(&mut alloc, b's');
        t.join().unwrap();
        assert_eq!(
            (&r[..], &s[..]),
            (&[b'r'; 16][..], &[b's'; 16][..]),
            "held slices show their own bytes alone"
        );
        drop((r, s, alloc));
        let made = pool.stats().bufs_created;
        assert_stats(&pool, made, 0, made as usize);
    });
}
