//! No heap allocation once warm, and nothing left allocated once every handle
//! and slice is gone, proved with a counting global allocator
//! (`tests/common/counting.rs`).
//!
//! The counts are per thread, so tests running in parallel do not disturb
//! each other. Every test here frees on one thread what it allocates there,
//! except the cross-thread one, which counts allocations on both threads.

use std::io::{self, Read};

use refbuf::{Pool, Slice, coalesce};

#[path = "common/counting.rs"]
mod counting;

use counting::{allocations_in, thread_live};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// A source that never allocates: `data` over and over.
struct Cycle {
    data: &'static [u8],
    pos: usize,
}

impl Read for Cycle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos).min(13);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.data.len();
        Ok(n)
    }
}

static CYCLE: [u8; 97] = {
    let mut a = [0u8; 97];
    let mut i = 0;
    while i < a.len() {
        a[i] = (i * 7 + 3) as u8;
        i += 1;
    }
    a
};

const BS: usize = 256;

fn size(i: usize) -> usize {
    (i * 37) % 300
}

/// The counting allocator sees allocations, frees and live bytes, so the zero counts below mean something.
#[test]
fn counter_works() {
    let live = thread_live();
    let mut v: Vec<u8> = Vec::new();
    assert_eq!(allocations_in(|| v.reserve_exact(100)), 1);
    assert_eq!(thread_live() - live, 100);
    assert_eq!(allocations_in(|| v.reserve_exact(300)), 1, "realloc counts");
    assert_eq!(thread_live() - live, 300);
    drop(v);
    assert_eq!(thread_live(), live);
    // The pool's own first allocations are seen too.
    let pool = Pool::builder().buf_size(BS).build();
    let mut alloc = pool.allocator(0);
    assert_eq!(allocations_in(|| drop(alloc.alloc(1))), 1, "a fresh buf is one allocation");
    assert!(thread_live() - live >= BS as isize);
}

/// Once warm: alloc, copy_from_slice, slice surgery, Reader::read and coalesce make no heap allocation.
#[test]
fn steady_state_allocates_nothing() {
    let (warm, iters) = if cfg!(miri) { (300, 200) } else { (5000, 20_000) };
    let pool = Pool::builder().buf_size(BS).build();
    let mut plain = pool.allocator(0);
    let mut reserved = pool.allocator(16);
    let mut local = pool.local_allocator(8);
    let payload = [0xA5u8; 300];
    let mut reader = pool.reader(io::repeat(7));
    let mut cycle = pool.reader(Cycle { data: &CYCLE, pos: 0 });
    let mut ring: [Option<Slice>; 3] = Default::default();
    let mut parts: Vec<Slice> = Vec::with_capacity(16);

    // Runs every operation once; `i` varies the sizes.
    let mut step = |i: usize| {
        drop(plain.alloc(size(i)));
        drop(reserved.alloc(size(i + 1)));
        drop(plain.alloc_for_overwrite(size(i + 2)));
        let mut s = reserved.copy_from_slice(&payload[..size(i + 3)]);
        assert_eq!(s.len(), size(i + 3));
        assert!(s.prepend(&[1, 2, 3, 4]));
        let mut back = s.split_off(s.len() / 2);
        let front = s.split_to(2);
        back.truncate_front(1);
        assert!(back.expand_front(1));
        assert!(s.try_join(back).is_ok());
        drop(front);
        ring[i % 3] = Some(s);

        drop(local.alloc(size(i)));
        let mut kept = local.copy_from_slice(&payload[..size(i + 4)]);
        assert!(kept.prepend(&[9; 8]));
        parts.push(kept);
        parts.clear();

        let frame = reader.read(1 + i % 200).unwrap();
        assert!(frame.iter().all(|&b| b == 7));
        let f = 1 + (i * 7) % 100;
        let frame = cycle.read(f).unwrap();
        assert_eq!(frame.len(), f);
        // Held across the next few reads, so the reader needs fresh bufs.
        ring[(i + 1) % 3] = Some(frame);

        let mut total = 0;
        for k in 0..8 {
            let s = plain.alloc((i + k) % 40);
            total += s.len();
            parts.push(s);
        }
        coalesce(&mut parts, usize::MAX);
        assert!(!parts.is_empty() && parts.len() <= 8);
        assert_eq!(parts.iter().map(|s| s.len()).sum::<usize>(), total);
        parts.clear();
    };

    for i in 0..warm {
        step(i);
    }
    let created = pool.stats().bufs_created;
    let n = allocations_in(|| {
        for i in 0..iters {
            step(i);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {iters} warm iterations");
    assert_eq!(pool.stats().bufs_created, created, "no fresh bufs once warm");

    // Each operation alone, for a precise report if one regresses.
    for (which, name) in
        ["alloc + drop", "copy_from_slice", "Reader::read", "coalesce", "LocalAllocator::alloc + drop"]
            .into_iter()
            .enumerate()
    {
        let mut op = |i: usize| match which {
            0 => drop(plain.alloc(size(i))),
            1 => drop(reserved.copy_from_slice(&payload[..size(i)])),
            2 => drop(reader.read(1 + i % 300).unwrap()),
            4 => drop(local.alloc(size(i))),
            _ => {
                for k in 0..8 {
                    parts.push(plain.alloc((i + k) % 30));
                }
                coalesce(&mut parts, usize::MAX);
                parts.clear();
            }
        };
        for i in 0..warm {
            op(i);
        }
        let n = allocations_in(|| {
            for i in 0..iters {
                op(i);
            }
        });
        assert_eq!(n, 0, "{name}: {n} allocations in {iters} warm iterations");
    }
}

/// Dropping every handle and slice, in any order, frees all memory; the last handle frees the idle bufs.
#[test]
fn nothing_stays_allocated() {
    let baseline = thread_live();

    // Idle bufs are freed when the last handle, here an allocator, goes.
    let pool = Pool::builder().buf_size(BS).build();
    let mut alloc = pool.allocator(8);
    let held: Vec<Slice> = (0..50).map(|i| alloc.alloc(size(i))).collect();
    drop(held);
    assert!(pool.stats().bufs_idle > 1);
    drop(pool);
    let with_idle = thread_live();
    assert!(with_idle - baseline >= (2 * BS) as isize, "idle bufs are still held");
    drop(alloc);
    assert_eq!(thread_live(), baseline, "the last handle freed the idle bufs");

    // Slices outlive every handle; the bufs go when the slices do.
    let pool = Pool::builder().buf_size(BS).build();
    let mut alloc = pool.allocator(0);
    let mut reader = pool.reader(io::repeat(1));
    let a = alloc.copy_from_slice(b"outlives the pool");
    let b = reader.read(BS + 1).unwrap();
    drop(alloc.alloc(BS * 20)); // an unpooled, oversized buf
    drop((pool, alloc, reader));
    assert_ne!(thread_live(), baseline);
    assert_eq!(&a[..], b"outlives the pool");
    assert!(b.iter().all(|&x| x == 1));
    drop(b);
    drop(a);
    assert_eq!(thread_live(), baseline, "the last slices freed their bufs");

    // Closing first, then dropping in a mixed order.
    let pool = Pool::builder().buf_size(BS).build();
    let clone = pool.clone();
    let mut alloc = pool.allocator(4);
    let mut reader = clone.reader(&CYCLE[..]);
    let mut parts =
        vec![alloc.alloc(10), alloc.alloc(20), reader.read(30).unwrap(), reader.read(40).unwrap()];
    coalesce(&mut parts, usize::MAX);
    pool.close();
    drop(pool);
    drop(parts.pop());
    drop(reader);
    drop(clone);
    drop(parts);
    drop(alloc);
    assert_eq!(thread_live(), baseline);
}

/// `Slice::from_vec` makes one small allocation, and frees the Vec with its last slice.
#[test]
fn from_vec_frees_vec() {
    let baseline = thread_live();
    let v = vec![9u8; 1000];
    let mut s = None;
    assert_eq!(allocations_in(|| s = Some(Slice::from_vec(v))), 1, "one header allocation");
    let mut s = s.unwrap();
    assert!(thread_live() - baseline >= 1000);
    let back = s.split_off(600);
    let front = s.split_to(100);
    drop(s);
    assert!(thread_live() - baseline >= 1000, "still held by two slices");
    drop(back);
    assert_eq!(&front[..], &[9u8; 100][..]);
    drop(front);
    assert_eq!(thread_live(), baseline, "the Vec and the header are freed");

    // An empty Vec with capacity, and a Vec wrapped but never split.
    let s = Slice::from_vec(Vec::with_capacity(64));
    assert!(s.is_empty());
    drop(s);
    drop(Slice::from_vec(vec![1, 2, 3]));
    assert_eq!(thread_live(), baseline);
}

/// Once warm, the speed workloads' other patterns allocate nothing either: a window keeping the last 32
/// slices alive, and slices made on one thread and dropped on another (counted on both threads; batches
/// travel in reused `Vec`s over bounded channels, which allocate nothing per message).
#[test]
fn window_and_cross_thread_allocate_nothing() {
    let (warm, iters) = if cfg!(miri) { (100, 50) } else { (5000, 20_000) };
    let pool = Pool::builder().buf_size(BS).build();

    let mut alloc = pool.allocator(0);
    let mut window: std::collections::VecDeque<Slice> = (0..32).map(|_| alloc.alloc(1500)).collect();
    let mut slide = |n: usize| {
        for _ in 0..n {
            drop(window.pop_front());
            let mut s = alloc.alloc_for_overwrite(1500);
            s[0] = 1;
            window.push_back(s);
        }
    };
    slide(warm);
    assert_eq!(allocations_in(|| slide(iters)), 0, "window");

    const BATCH: usize = 100;
    // Three batch `Vec`s circulate, so at most three batches of slices are
    // alive at once. Growing the pool to four batches' worth first makes the
    // steady state independent of how the two threads are scheduled; the
    // first half of the batches then warms up the rest, and the second half
    // is counted.
    drop((0..4 * BATCH).map(|_| alloc.alloc_for_overwrite(1500)).collect::<Vec<_>>());
    let batches = if cfg!(miri) { 8 } else { 200 };
    let (to_dropper, full) = std::sync::mpsc::sync_channel::<Vec<Slice>>(2);
    let (to_maker, empty) = std::sync::mpsc::sync_channel::<Vec<Slice>>(4);
    for _ in 0..3 {
        to_maker.send(Vec::with_capacity(BATCH)).unwrap();
    }
    let dropper = std::thread::spawn(move || {
        let mut allocs = 0;
        for (i, mut batch) in full.into_iter().enumerate() {
            let n = allocations_in(|| batch.clear());
            if i >= batches / 2 {
                allocs += n;
            }
            if to_maker.send(batch).is_err() {
                break;
            }
        }
        allocs
    });
    let mut maker_allocs = 0;
    for i in 0..batches {
        let mut batch = empty.recv().unwrap();
        let n = allocations_in(|| batch.extend((0..BATCH).map(|_| alloc.alloc_for_overwrite(1500))));
        if i >= batches / 2 {
            maker_allocs += n;
        }
        to_dropper.send(batch).unwrap();
    }
    drop(to_dropper);
    let dropper_allocs = dropper.join().unwrap();
    assert_eq!((maker_allocs, dropper_allocs), (0, 0), "cross-thread: (making, dropping)");
}

/// A `LocalAllocator` is cheap to make: one small allocation, its short list
/// of spent bufs. Once it sees slices live long it makes room for its longer
/// list and its segment records, once; from then on, cutting from the dead
/// parts of the bufs kept slices hold allocates nothing.
#[test]
fn local_allocator_pays_for_kept_slices_once() {
    let pool = Pool::new();
    let live = thread_live();
    let mut local = None;
    assert_eq!(allocations_in(|| local = Some(pool.local_allocator(0))), 1, "the list of spent bufs");
    let made = thread_live() - live;
    assert!(made <= 1024, "a new LocalAllocator holds {made} bytes of heap");
    let mut local = local.unwrap();

    // A window of 64 slices of 1500 bytes; 1 in 20 is kept for the next 100
    // kept ones, about 2,000 allocations.
    let mut window = std::collections::VecDeque::with_capacity(64);
    let mut kept: [Option<Slice>; 100] = std::array::from_fn(|_| None);
    let mut step = |i: usize| {
        let s = local.alloc(1500);
        if i.is_multiple_of(20) {
            kept[i / 20 % kept.len()] = Some(s);
        } else {
            if window.len() == 64 {
                window.pop_front();
            }
            window.push_back(s);
        }
    };
    let (warm, iters) = if cfg!(miri) { (3000, 1000) } else { (20_000, 20_000) };
    let before = pool.stats().bufs_created;
    for i in 0..warm {
        step(i);
    }
    let created = pool.stats().bufs_created - before;
    // Were the kept slices to pin their bufs, the last 2,000 allocations'
    // bufs would all be alive: 47 of 64 KiB (an `Allocator` makes 48).
    assert!(created < 20, "{created} bufs made: the kept slices pin them");
    let n = allocations_in(|| {
        for i in warm..warm + iters {
            step(i);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {iters} warm iterations");
}
