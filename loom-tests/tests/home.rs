//! A `LocalAllocator`'s bufs: drops on the home thread counted without an
//! atomic operation, drops elsewhere on the atomic count, and the two
//! joined when the allocator lets the buf go; and the allocator cutting
//! from the dead parts of a buf while another thread uses, splits or drops
//! the slice that keeps it alive.
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{Outcomes, Probe, assert_recycled_with, assert_stats, run_model, write_and_drop_on_thread};
use refbuf::{LocalAllocator, Pool, Slice};

/// The last two slices of a home buf: one dropped at home while the home
/// allocator still holds the buf, one written and dropped on another thread,
/// racing both that drop and the allocator's drop, which joins the counts.
/// Whichever goes last recycles the buf once, with both writes visible.
#[test]
fn home_drop_races_remote_drop_of_the_last_two_slices() {
    run_model("home: home and remote drops of the last two slices", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let mut a = alloc.alloc_for_overwrite(2);
        let b = alloc.alloc_for_overwrite(2);

        let tb = write_and_drop_on_thread(b, b"bb");
        a.copy_from_slice(b"aa");
        drop(a);
        drop(alloc);
        tb.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
        assert_recycled_with(&pool, b"aabb");
    });
}

/// The home allocator lets its buf go while a slice of it lives on another
/// thread, and the home thread then drops another slice of it: once the buf
/// has left home, that drop is atomic too, so whichever of the two drops
/// comes last recycles the buf.
#[test]
fn drop_at_home_after_the_buf_left_home() {
    run_model("home: a drop at home after the allocator let go", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let mut a = alloc.alloc_for_overwrite(2);
        let b = alloc.alloc_for_overwrite(2);
        drop(alloc);

        let tb = write_and_drop_on_thread(b, b"bb");
        a.copy_from_slice(b"aa");
        drop(a);
        tb.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
        assert_recycled_with(&pool, b"aabb");
    });
}

/// The last drop on the remote side, with the home thread alive or already
/// exited: a thread makes a home allocator, drops one slice at home, lets
/// the allocator go and ends; the other slice, sent out, is dropped on the
/// main thread, before or after that thread's end.
#[test]
fn last_drop_remote_with_home_thread_alive_or_exited() {
    run_model("home: the last drop remote, home thread alive or gone", || {
        let pool = Pool::builder().buf_size(64).build();
        let (tx, rx) = loom::sync::mpsc::channel();
        let home = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut alloc = pool.local_allocator(0);
                let mut a = alloc.alloc_for_overwrite(2);
                let mut b = alloc.alloc_for_overwrite(2);
                b.copy_from_slice(b"bb");
                tx.send(b).unwrap();
                a.copy_from_slice(b"aa");
                drop(a);
                drop(alloc);
            })
        };
        let mut b = rx.recv().unwrap();
        assert_eq!(&b[..], b"bb");
        b.copy_from_slice(b"BB");
        drop(b);
        home.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
        assert_recycled_with(&pool, b"aaBB");
    });
}

/// A home allocator checks, with room left, whether every slice of its buf
/// is gone (its count, plus the drops made at home, against the atomic
/// count) while a slice drops elsewhere and one at home; see the helper.
#[test]
fn rewind_at_home_races_remote_drop() {
    loom_tests::rewind_with_room_left_races_remote_drop("home: a rewind racing a remote drop", |pool| {
        pool.local_allocator(0)
    });
}

/// A slice made at home is split on another thread (a reference made
/// remotely), one part written there and sent back home, where it is
/// dropped (counted at home), the other part written and dropped remotely;
/// meanwhile the home allocator checks for a rewind. Whichever way, the
/// check must see both remote writes, and the buf comes back once.
#[test]
fn remote_split_released_at_home_races_rewind() {
    run_model("home: a remote split, part dropped at home, racing a rewind", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let mut a = alloc.alloc_for_overwrite(16);
        let (tx, rx) = loom::sync::mpsc::channel();
        let t = thread::spawn(move || {
            let mut back = a.split_off(8);
            back.copy_from_slice(b"BBBBBBBB");
            a.copy_from_slice(b"AAAAAAAA");
            tx.send(a).unwrap();
            drop(back);
        });
        let a = rx.recv().unwrap();
        assert_eq!(&a[..], b"AAAAAAAA");
        drop(a);
        let mut c = alloc.alloc_for_overwrite(16);
        c.copy_from_slice(b"cccccccccccccccc");
        drop(c);
        drop(alloc);
        t.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
    });
}

/// The home allocator lets go while the last other slice drops on another
/// thread, which then takes the buf back from the pool into a home
/// allocator of its own. The old home must clear its mark before its last
/// decrement, or it would clear the new home's mark and strand the bias:
/// with the two swapped, this model ends with the buf in use.
#[test]
fn leave_home_races_a_new_home_elsewhere() {
    run_model("home: leaving home racing a new home elsewhere", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let a = alloc.alloc_for_overwrite(16);
        let b = alloc.alloc_for_overwrite(16);
        let p = pool.clone();
        let t = thread::spawn(move || {
            drop(b);
            let mut there = p.local_allocator(0);
            drop(there.alloc_for_overwrite(16));
            drop(there);
        });
        drop(a);
        drop(alloc);
        t.join().unwrap();
        let stats = pool.stats();
        assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0), "{stats:?}");
    });
}

/// A buf the home allocator has filled and moved on from (kept as spent)
/// is cut from again once its slices are gone. Its last slice, written and
/// dropped on another thread, races the allocator's check when the next
/// buf runs out: where the check finds it free, the new slice starts where
/// the remote one did and the remote write happens before (loom reports a
/// race otherwise); where not, the slice comes from a fresh buf. Both
/// outcomes are reached, and every buf comes back once.
#[test]
fn spent_buf_reused_races_remote_drop() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Outcome counters across executions: plain std atomics, outside the model.
    let outcomes = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let counted = Arc::clone(&outcomes);
    run_model("home: a spent buf reused racing a remote drop", move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let a = alloc.alloc_for_overwrite(64);
        let a_at = a.as_ptr().addr();
        // The first buf is full, its slice alive: it is kept as spent, and
        // a second made.
        let b = alloc.alloc_for_overwrite(64);
        let ta = write_and_drop_on_thread(a, &[b'a'; 64]);
        // The second is full too, and its slice alive.
        let c = alloc.copy_from_slice(&[b'c'; 64]);
        assert_eq!(&c[..], &[b'c'; 64]);
        let reused = c.as_ptr().addr() == a_at;
        counted[usize::from(reused)].fetch_add(1, Ordering::Relaxed);
        drop((b, c, alloc));
        ta.join().unwrap();
        let made = if reused { 2 } else { 3 };
        assert_stats(&pool, made, 0, made as usize);
    });
    assert!(outcomes[0].load(Ordering::Relaxed) > 0, "no execution took a fresh buf");
    assert!(outcomes[1].load(Ordering::Relaxed) > 0, "no execution reused the spent buf");
}

// ===== Cutting from the dead parts of a buf at home =====
//
// The models below reach, through the allocator's own policy (see
// `allocator.rs`, `refill`), a buf with a segment record in which one slice
// is alive between two dead parts, and race the home allocator's look at
// those dead parts against what another thread does with that slice. Under
// loom a buf is 64 bytes in 64 segments of one byte; the allocator keeps
// two spent bufs, or four while it tracks dead parts, and a refill looks
// at up to four.

/// What [`keep_a_slice_in_a_tracked_buf`] leaves behind.
struct Tracked {
    /// A slice filling each of the other three bufs, of `a`, `b` and `e`,
    /// alive to the end (see [`assert_held`]): the first two keep those
    /// bufs in use, so that a refill turns them over to reach the third;
    /// the last fills the current (fourth) buf, so that the next allocation
    /// refills.
    held: [Slice; 3],
    /// 16 bytes of `K` at bytes 16..32 of the third buf, which has a segment
    /// record and is kept as spent. Bytes 0..16 and 32..64 were carved,
    /// filled with `d` and dropped at home: the record counts them dead.
    kept: Slice,
}

/// Drives a fresh home allocator of a pool of 64-byte bufs into keeping
/// segment records, and leaves it with one slice alive in a spent buf that
/// has a record, between two dead parts; see [`Tracked`].
///
/// The allocator takes each buf fresh from the pool, in this order:
/// 1. the first, filled by a slice that stays;
/// 2. the second, filled by another that stays; the first is kept as spent;
/// 3. the third, for a request of 16: the refill finds the oldest spent buf
///    in use by one slice, so mostly dead for 16 bytes (`1 * 16 * 4 <= 64`),
///    which starts tracking: the first goes to the back of the list, which
///    may now hold four, and the third buf is leased with a record. Its
///    bytes are carved as 0..16, 16..32 (the kept slice) and 32..64, and
///    the first and last of these are dropped at home;
/// 4. the fourth, for a request of 64, more than the third buf's dead parts
///    hold: the third goes to the spent list behind the first two, and the
///    fourth gets a record too.
fn keep_a_slice_in_a_tracked_buf(alloc: &mut LocalAllocator) -> Tracked {
    let mut first = alloc.alloc_for_overwrite(64);
    first.fill(b'a');
    let mut second = alloc.alloc_for_overwrite(64);
    second.fill(b'b');
    let mut before = alloc.alloc_for_overwrite(16);
    let mut kept = alloc.alloc_for_overwrite(16);
    let mut after = alloc.alloc_for_overwrite(32);
    let start = before.as_ptr().addr();
    assert_eq!(
        (kept.as_ptr().addr(), after.as_ptr().addr()),
        (start + 16, start + 32),
        "the third buf is carved in order"
    );
    before.fill(b'd');
    kept.fill(b'K');
    after.fill(b'd');
    drop((before, after));
    let mut fourth = alloc.alloc_for_overwrite(64);
    assert!(!in_buf_at(start, &fourth), "the fourth slice is not cut from the third buf");
    fourth.fill(b'e');
    Tracked { held: [first, second, fourth], kept }
}

/// Checks that the slices [`Tracked::held`] still show their own bytes
/// alone: no new slice was cut over them.
#[track_caller]
fn assert_held(held: &[Slice; 3]) {
    for (slice, byte) in held.iter().zip([b'a', b'b', b'e']) {
        assert_eq!(&slice[..], &[byte; 64], "a slice held all along shows its own bytes alone");
    }
}

/// Whether any byte of `slice` lies in the 64-byte data area at `start`.
fn in_buf_at(start: usize, slice: &Slice) -> bool {
    let at = slice.as_ptr().addr();
    at < start + 64 && at + slice.len() > start
}

/// Splits `kept` on another thread: its back 8 bytes are written there and
/// dropped there, after the check of their bytes; its front 8 are sent
/// back. The thread's result says whether the check came after `written`
/// was passed.
fn split_on_a_thread(
    mut kept: Slice,
    written: Probe,
) -> (loom::thread::JoinHandle<bool>, loom::sync::mpsc::Receiver<Slice>) {
    let (tx, rx) = loom::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let mut back = kept.split_off(8);
        back.fill(b'r');
        tx.send(kept).unwrap();
        let after = written.passed();
        assert_eq!(&back[..], &[b'r'; 8], "the back part shows its own bytes alone");
        drop(back);
        after
    });
    (t, rx)
}

/// The home allocator cuts a new slice from the dead part of a spent buf
/// next to a live slice, while that slice, sent to another thread, is
/// written and dropped there. A remote drop leaves the segment record as
/// it is, so the allocator's look at the buf (the sole-holder check, then
/// the record) races only the atomic count: where the drop came first, the
/// buf is free and rewound, and the new slice starts at its start, showing
/// the remote write (loom reports a race unless the check's `Acquire` sees
/// it); where not, the new slice is cut from 32..64, the dead part after
/// the live slice (0..16, before it, is too small: its end is the live
/// slice's start), and must not touch the live slice. Both outcomes are
/// reached, and so is the remote slice's last check after the home
/// thread's write. Every byte is checked: the remote slice shows the home
/// thread's bytes and then its own alone, the new slice the bytes last
/// written there and then its own alone. Every buf comes back once.
#[test]
fn dead_part_reused_while_a_remote_drop_frees_its_neighbour() {
    let outcomes = Outcomes::new([
        "buf rewound after the remote drop",
        "new slice cut from the dead part",
        "remote check after the home thread's write",
    ]);
    let counted = outcomes.clone();
    run_model("home: a dead part reused while a remote drop frees its neighbour", move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let Tracked { held, mut kept } = keep_a_slice_in_a_tracked_buf(&mut alloc);
        let start = kept.as_ptr().addr() - 16;

        let probe = Probe::default();
        let written = probe.clone();
        let t = thread::spawn(move || {
            assert_eq!(&kept[..], &[b'K'; 16], "the kept slice shows the home thread's bytes alone");
            kept.fill(b'r');
            let after = written.passed();
            assert_eq!(&kept[..], &[b'r'; 16], "the kept slice shows its own bytes alone");
            drop(kept);
            after
        });
        let mut new = alloc.alloc_for_overwrite(32);
        let outcome = match new.as_ptr().addr() {
            at if at == start => {
                assert_eq!(&new[..16], &[b'd'; 16], "the rewound buf shows the home thread's bytes");
                assert_eq!(
                    &new[16..],
                    &[b'r'; 16],
                    "a slice at the buf's start shows the remote write: a rewind comes after the remote drop"
                );
                0
            }
            at if at == start + 32 => {
                assert_eq!(&new[..], &[b'd'; 32], "the dead part shows the bytes dropped at home");
                1
            }
            at => {
                panic!("the new slice is at {at:#x}, neither at the buf's start {start:#x} nor its dead part")
            }
        };
        new.fill(b'n');
        probe.pass();
        let checked_after = t.join().unwrap();
        assert_eq!(&new[..], &[b'n'; 32], "the new slice shows its own bytes alone");
        counted.hit(outcome);
        if checked_after {
            counted.hit(2);
        }
        assert_held(&held);
        drop((held, new, alloc));
        assert_stats(&pool, 4, 0, 4);
    });
    outcomes.assert_each_reached();
}

/// The kept slice is split on another thread, which sends the front part
/// (whose region starts where the kept slice's did) home and keeps the back
/// part in use before dropping it. Dropped at home, the front part takes
/// the kept slice's count off the segment record, which then calls the
/// whole buf dead though the back part may live: only the buf's reshaped
/// mark keeps the allocator off it. The split happens before the front
/// part arrives, so before the look, whose `Relaxed` load of the mark must
/// see it. The look races the back part's remote drop: where the drop came
/// first, the buf is free and rewound, and the new slice shows every
/// earlier write (loom checks the ordering); where not, the allocator must
/// leave the buf alone and take a fifth from the pool. Both outcomes are
/// reached, and so is the back part's check after the home thread's write
/// of its new slice; the back part shows only its own bytes, the new slice
/// only its own. Every buf comes back once.
#[test]
fn remote_split_dropped_at_home_races_the_look_at_dead_parts() {
    let outcomes = Outcomes::new([
        "buf rewound after the back part's drop",
        "buf left alone with the back part alive, a fresh one taken",
        "remote check after the home thread's write",
    ]);
    let counted = outcomes.clone();
    run_model("home: a remote split, part dropped at home, racing the look at dead parts", move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let Tracked { held, kept } = keep_a_slice_in_a_tracked_buf(&mut alloc);
        let start = kept.as_ptr().addr() - 16;

        let probe = Probe::default();
        let (t, rx) = split_on_a_thread(kept, probe.clone());
        let front = rx.recv().unwrap();
        assert_eq!(&front[..], &[b'K'; 8], "the front part shows the home thread's bytes");
        drop(front);
        let mut new = alloc.alloc_for_overwrite(32);
        let outcome = if new.as_ptr().addr() == start {
            let earlier = [[b'd'; 16].as_slice(), &[b'K'; 8], &[b'r'; 8]].concat();
            assert_eq!(&new[..], &earlier[..], "the rewound buf shows every earlier write");
            0
        } else {
            assert!(!in_buf_at(start, &new), "a slice cut from a reshaped buf in use");
            1
        };
        new.fill(b'n');
        probe.pass();
        let checked_after = t.join().unwrap();
        assert_eq!(&new[..], &[b'n'; 32], "the new slice shows its own bytes alone");
        counted.hit(outcome);
        if checked_after {
            counted.hit(2);
        }
        assert_held(&held);
        drop((held, new, alloc));
        let made = if outcome == 0 { 4 } else { 5 };
        assert_stats(&pool, made, 0, made as usize);
    });
    outcomes.assert_each_reached();
}

/// As in the model above, but the split races the look itself. The look
/// reads the reshaped mark with a `Relaxed` load, which may miss the split,
/// and then cuts from 0..16, the dead part before the kept slice: sound,
/// since the record still counts the kept slice, whose region covers both
/// parts. Or it sees the mark and takes a fifth buf. Both outcomes are
/// reached. Then the front part comes home and is dropped there, and where
/// the allocator cut from the buf it looks there again, past its cursor,
/// for 32 bytes: the record now calls 16..64 dead, but the split happens
/// before the front part's arrival, so this second look must see the mark
/// and leave the buf alone. The back part shows only its own bytes (its
/// check after the home thread's writes is reached), and the new slices
/// only their own. Every buf comes back once.
#[test]
fn remote_split_races_the_look_at_dead_parts() {
    let outcomes = Outcomes::new([
        "first look cut from the dead part, missing the split",
        "first look saw the split, a fresh buf taken",
        "remote check after the home thread's writes",
    ]);
    let counted = outcomes.clone();
    run_model("home: a remote split racing the look at dead parts", move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.local_allocator(0);
        let Tracked { held, kept } = keep_a_slice_in_a_tracked_buf(&mut alloc);
        let start = kept.as_ptr().addr() - 16;

        let probe = Probe::default();
        let (t, rx) = split_on_a_thread(kept, probe.clone());
        let mut first = alloc.alloc_for_overwrite(16);
        let outcome = if first.as_ptr().addr() == start {
            assert_eq!(&first[..], &[b'd'; 16], "the dead part shows the bytes dropped at home");
            0
        } else {
            assert!(!in_buf_at(start, &first), "a slice cut from the buf, but not from its dead part");
            1
        };
        first.fill(b'1');
        let front = rx.recv().unwrap();
        assert_eq!(&front[..], &[b'K'; 8], "the front part shows the home thread's bytes");
        drop(front);
        let mut second = alloc.alloc_for_overwrite(32);
        assert!(!in_buf_at(start, &second), "a slice cut from a reshaped buf in use");
        second.fill(b'2');
        probe.pass();
        let checked_after = t.join().unwrap();
        assert_eq!(&first[..], &[b'1'; 16], "the first new slice shows its own bytes alone");
        assert_eq!(&second[..], &[b'2'; 32], "the second new slice shows its own bytes alone");
        counted.hit(outcome);
        if checked_after {
            counted.hit(2);
        }
        assert_held(&held);
        drop((held, first, second, alloc));
        assert_stats(&pool, 5, 0, 5);
    });
    outcomes.assert_each_reached();
}
