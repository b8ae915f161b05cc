//! Two threads drop the last two slices of one buf at once.
#![cfg(loom)]

use loom_tests::{assert_stats, run_model, write_and_drop_on_thread};
use refbuf::Pool;

/// Whichever thread drops the last slice recycles the buf, exactly once, and
/// the next user of the buf sees what both threads wrote. The loom access
/// tracker checks that both writers' `Release` decrements happen before the
/// recycling thread's `Acquire` load.
#[test]
fn last_slices_dropped_at_once_recycle_the_buf_once() {
    run_model("recycle: last slices dropped at once", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let a = alloc.alloc_for_overwrite(4);
        let b = alloc.alloc_for_overwrite(4);
        // From here on the two slices are the buf's only holders.
        drop(alloc);

        let ta = write_and_drop_on_thread(a, b"aaaa");
        let tb = write_and_drop_on_thread(b, b"bbbb");
        ta.join().unwrap();
        tb.join().unwrap();
        assert_stats(&pool, 1, 0, 1);

        // The recycled buf is handed out as found, showing both writes.
        let mut alloc = pool.allocator(0);
        let reused = alloc.alloc_for_overwrite(8);
        assert_eq!(&reused[..], b"aaaabbbb");
        assert_stats(&pool, 1, 1, 0);
        drop((reused, alloc));
        assert_stats(&pool, 1, 0, 1);
    });
}
