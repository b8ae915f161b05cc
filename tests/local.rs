//! `LocalAllocator`: its slices behave as any allocator's, wherever they
//! are dropped, and its bufs go back to the pool once the allocator has let
//! go and the last slice is gone.

use std::sync::mpsc;
use std::thread;

use refbuf::{Pool, Slice, coalesce};

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
