//! Parts of a split slice dropped on different threads.
#![cfg(loom)]

use loom_tests::{assert_recycled_with, assert_stats, run_model, write_and_drop_on_thread};
use refbuf::{Pool, Slice};

/// The main thread splits a pooled slice into three parts, each split taking
/// a new reference with a `Relaxed` increment, while the parts already split
/// off are written and dropped on two other threads. The buf is recycled
/// once, after the last part goes, showing every part's writes.
#[test]
fn split_parts_dropped_on_different_threads() {
    run_model("split: parts of a pooled slice dropped on different threads", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let mut rest = alloc.alloc_for_overwrite(6);
        drop(alloc);

        let front = rest.split_to(2);
        let tfront = write_and_drop_on_thread(front, b"ff");
        // Splits again while `front` may be going away.
        let back = rest.split_off(2);
        let tback = write_and_drop_on_thread(back, b"bb");
        rest.copy_from_slice(b"mm");
        drop(rest);
        tfront.join().unwrap();
        tback.join().unwrap();
        assert_stats(&pool, 1, 0, 1);

        assert_recycled_with(&pool, b"ffmmbb");
    });
}

/// A slice made with `Slice::from_vec` (its own header allocation, no pool)
/// split in two, the parts dropped on two threads: the header and the
/// `Vec`'s memory are freed exactly once, by whichever part goes last.
#[test]
fn from_vec_parts_dropped_on_different_threads() {
    run_model("split: parts of a from_vec slice dropped on different threads", || {
        let mut back = Slice::from_vec(b"headbody".to_vec());
        let front = back.split_to(4);
        let tfront = write_and_drop_on_thread(front, b"HEAD");
        back.copy_from_slice(b"BODY");
        drop(back);
        tfront.join().unwrap();
    });
}
