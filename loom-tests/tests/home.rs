//! A `LocalAllocator`'s bufs: drops on the home thread counted without an
//! atomic operation, drops elsewhere on the atomic count, and the two
//! joined when the allocator lets the buf go.
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{assert_recycled_with, assert_stats, run_model, write_and_drop_on_thread};
use refbuf::Pool;

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
