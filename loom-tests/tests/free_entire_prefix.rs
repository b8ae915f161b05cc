//! `Slice::free_entire_prefix` racing the drop of a sibling slice.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

use loom_tests::thread;
use loom_tests::{assert_stats, run_model, write_and_drop_on_thread};
use refbuf::Pool;

/// Executions in which `free_entire_prefix` answered `true` and `false`.
/// Plain std atomics, outside the model.
static FREED: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// The same for the second model.
static FREED_2: AtomicUsize = AtomicUsize::new(0);
static REFUSED_2: AtomicUsize = AtomicUsize::new(0);

/// The main thread asks for the whole prefix of `b` while another thread
/// writes and drops `a`, the slice in front of it. Either the answer is
/// `false` and nothing changes, or it is `true`, `a`'s drop happened before
/// (loom's access tracker fails the execution otherwise), and `b` can grow
/// over `a`'s bytes, which show what `a` wrote.
#[test]
fn free_entire_prefix_races_sibling_drop() {
    run_model("free_entire_prefix: racing a sibling's drop", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let a = alloc.alloc_for_overwrite(4);
        let mut b = alloc.copy_from_slice(b"bbbb");
        drop(alloc);

        let ta = write_and_drop_on_thread(a, b"aaaa");
        if b.free_entire_prefix() {
            FREED.fetch_add(1, Ordering::Relaxed);
            assert_eq!(b.headroom(), 4);
            assert!(b.expand_front(4));
            assert_eq!(&b[..], b"aaaabbbb");
            // The prefix is b's now: write over it.
            b[..4].copy_from_slice(b"hdr:");
        } else {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            assert_eq!(b.headroom(), 0);
            assert_eq!(&b[..], b"bbbb");
        }
        drop(b);
        ta.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
    });
    // Both answers must have been explored for the model to mean anything.
    assert!(FREED.load(Ordering::Relaxed) > 0, "free_entire_prefix never returned true");
    assert!(REFUSED.load(Ordering::Relaxed) > 0, "free_entire_prefix never returned false");
}

/// As above, but the allocator is still alive too, and is dropped on a third
/// thread: `free_entire_prefix` may only answer `true` once the allocator's
/// whole batch of references and the sibling's one are both given back.
#[test]
fn free_entire_prefix_races_allocator_and_sibling_drops() {
    run_model("free_entire_prefix: racing an allocator's and a sibling's drop", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let a = alloc.alloc_for_overwrite(4);
        let mut b = alloc.copy_from_slice(b"bbbb");

        let talloc = thread::spawn(move || {
            // Behind `b`, so not part of its prefix.
            let c = alloc.copy_from_slice(b"cccc");
            drop(alloc);
            drop(c);
        });
        let ta = write_and_drop_on_thread(a, b"aaaa");
        if b.free_entire_prefix() {
            FREED_2.fetch_add(1, Ordering::Relaxed);
            assert!(b.expand_front(4));
            assert_eq!(&b[..], b"aaaabbbb");
            b[..4].copy_from_slice(b"hdr:");
        } else {
            REFUSED_2.fetch_add(1, Ordering::Relaxed);
            assert_eq!(b.headroom(), 0);
        }
        drop(b);
        talloc.join().unwrap();
        ta.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
    });
    assert!(FREED_2.load(Ordering::Relaxed) > 0, "free_entire_prefix never returned true");
    assert!(REFUSED_2.load(Ordering::Relaxed) > 0, "free_entire_prefix never returned false");
}
