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
