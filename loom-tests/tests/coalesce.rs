//! `coalesce`'s batched release racing the drop of a sibling slice.
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{assert_recycled_with, assert_stats, run_model, write_and_drop_on_thread};
use refbuf::{Pool, coalesce};

/// The main thread coalesces three touching slices into one, giving back the
/// two absorbed references in one decrement, and drops the result, while
/// another thread writes and drops the fourth slice of the same buf. The buf
/// is recycled once, after both, with every write visible.
#[test]
fn coalesce_races_sibling_drop() {
    run_model("coalesce: batched release racing a sibling's drop", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let mut parts =
            vec![alloc.copy_from_slice(b"aa"), alloc.copy_from_slice(b"bb"), alloc.copy_from_slice(b"cc")];
        let d = alloc.alloc_for_overwrite(2);
        drop(alloc);

        let td = write_and_drop_on_thread(d, b"dd");
        coalesce(&mut parts, usize::MAX);
        assert_eq!(parts.len(), 1);
        assert_eq!(&parts[0][..], b"aabbcc");
        parts[0].copy_from_slice(b"AABBCC");
        drop(parts);
        td.join().unwrap();
        assert_stats(&pool, 1, 0, 1);

        assert_recycled_with(&pool, b"AABBCCdd");
    });
}

/// With a length limit, `coalesce` builds two runs and gives back each run's
/// absorbed reference as it closes the run, while a thread drops a sibling.
#[test]
fn coalesce_in_two_runs_races_sibling_drop() {
    run_model("coalesce: two runs racing a sibling's drop", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let mut parts: Vec<_> =
            [b"aa", b"bb", b"cc", b"dd"].iter().map(|p| alloc.copy_from_slice(*p)).collect();
        let e = alloc.alloc_for_overwrite(2);
        drop(alloc);

        let te = write_and_drop_on_thread(e, b"ee");
        coalesce(&mut parts, 4);
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[0][..], b"aabb");
        assert_eq!(&parts[1][..], b"ccdd");
        // The runs go on different threads.
        let second = parts.pop().unwrap();
        let tsecond = thread::spawn(move || drop(second));
        drop(parts);
        te.join().unwrap();
        tsecond.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
    });
}
