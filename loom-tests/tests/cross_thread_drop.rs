//! An allocator and the slices it made, dropped on different threads.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

use loom_tests::thread;
use loom_tests::{assert_recycled_with, assert_stats, run_model, write_and_drop_on_thread};
use refbuf::Pool;

/// The allocator is dropped on the main thread while its two slices are
/// written and dropped on two others: whichever goes last (the allocator's
/// batch of references or a slice's one) recycles the buf.
#[test]
fn allocator_dropped_on_main_slices_on_threads() {
    run_model("cross_thread_drop: allocator on main, slices on threads", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let a = alloc.alloc_for_overwrite(2);
        let b = alloc.alloc_for_overwrite(2);

        let ta = write_and_drop_on_thread(a, b"aa");
        let tb = write_and_drop_on_thread(b, b"bb");
        // The allocator keeps cutting slices from the buf while the others
        // let go of theirs.
        let c = alloc.copy_from_slice(b"cc");
        drop(alloc);
        drop(c);
        ta.join().unwrap();
        tb.join().unwrap();
        assert_stats(&pool, 1, 0, 1);

        assert_recycled_with(&pool, b"aabbcc");
    });
}

/// The other way round: the allocator moves to a thread, cuts one more slice
/// there and is dropped there, while its earlier slices are dropped on the
/// main thread and on a third one.
#[test]
fn allocator_dropped_on_thread_slices_on_main_and_thread() {
    run_model("cross_thread_drop: allocator on a thread, slices elsewhere", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let a = alloc.alloc_for_overwrite(2);
        let mut b = alloc.alloc_for_overwrite(2);

        let talloc = thread::spawn(move || {
            let c = alloc.copy_from_slice(b"cc");
            drop(alloc);
            drop(c);
        });
        let ta = write_and_drop_on_thread(a, b"aa");
        b.copy_from_slice(b"bb");
        drop(b);
        talloc.join().unwrap();
        ta.join().unwrap();
        assert_stats(&pool, 1, 0, 1);

        assert_recycled_with(&pool, b"aabbcc");
    });
}

/// The allocator runs out of room on a thread while the first buf's slices
/// are dropped on the main thread and a third one. Where both were dropped
/// before the refill, the allocator, now the buf's sole holder, rewinds over
/// it (one buf made; its `Acquire` check must see both drops); otherwise it
/// lets go of the buf and takes a fresh one (two). Both outcomes must occur.
#[test]
fn allocator_refills_on_thread_while_slices_drop() {
    run_model("cross_thread_drop: allocator refill racing its slices' drops", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let mut a = alloc.alloc_for_overwrite(32);
        let mut b = alloc.alloc_for_overwrite(32);

        let talloc = thread::spawn(move || {
            // The first buf is full: this takes a second one.
            let c = alloc.copy_from_slice(b"cc");
            drop(alloc);
            drop(c);
        });
        let ta = thread::spawn(move || {
            a.fill(b'a');
            drop(a);
        });
        b.fill(b'b');
        drop(b);
        talloc.join().unwrap();
        ta.join().unwrap();
        let made = pool.stats().bufs_created;
        assert_stats(&pool, made, 0, made as usize);
        match made {
            1 => REWOUND.fetch_add(1, Ordering::Relaxed),
            2 => TOOK_FRESH.fetch_add(1, Ordering::Relaxed),
            _ => panic!("{made} bufs made for at most two bufs' worth of slices"),
        };
    });
    assert!(REWOUND.load(Ordering::Relaxed) > 0, "no execution rewound over the first buf");
    assert!(TOOK_FRESH.load(Ordering::Relaxed) > 0, "no execution took a fresh buf");
}

/// An `Allocator` checks, with room left, whether to rewind while a slice
/// drops elsewhere; see the helper.
#[test]
fn rewind_with_room_left_races_remote_drop() {
    loom_tests::rewind_with_room_left_races_remote_drop(
        "cross_thread_drop: rewind with room left racing a remote drop",
        |pool| pool.allocator(0),
    );
}

// Outcome counters across executions: plain std atomics, outside the model.
static REWOUND: AtomicUsize = AtomicUsize::new(0);
static TOOK_FRESH: AtomicUsize = AtomicUsize::new(0);
