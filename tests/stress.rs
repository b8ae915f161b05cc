//! Stress: many threads share one pool for a bounded time, each making
//! messages by every allocation path, reshaping them (split, join, coalesce,
//! prepend, `Chain`) and sending them to random other threads, which verify
//! and drop them; each thread also reads frames from a pipe that a feeder
//! thread writes into. At the end every message checked out intact, the pool
//! has nothing in use, and a counting global allocator shows that dropping
//! the pool freed every byte.
//!
//! `REFBUF_STRESS_SECS` sets the seconds per configuration of the CI test
//! (default 2; there are four configurations). The soak runs the same for
//! about ten minutes (`REFBUF_SOAK_SECS`, default 600):
//!
//! ```sh
//! cargo test --release --test stress -- --ignored
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use refbuf::{Allocator, Chain, Pool, Reader, Slice, coalesce};

/// Live heap bytes of the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly, and returns `System`'s result; the
// bookkeeping is one atomic add, which neither allocates, unwinds nor touches
// the memory being managed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract
        // (non-zero size), which is `System::alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` was allocated by this allocator,
        // that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller guarantees `ptr` came from `System` with `layout`
        // and that `new_size` is valid, as `System::realloc` requires.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Keeps the two tests of this binary from running at once, so each sees
/// only its own allocations in `LIVE`.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A random number below `n`.
fn below(rng: &mut u64, n: usize) -> usize {
    (xorshift(rng) % n as u64) as usize
}

/// Byte `k` of stream `seq` of source `src` (a worker's messages or a
/// feeder's pipe).
fn pattern(src: usize, seq: u64, k: usize) -> u8 {
    let x = (src as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x.wrapping_add(k as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
}

/// The bytes from `from` to `to` of stream `seq` of `src`.
fn pattern_range(src: usize, seq: u64, from: usize, to: usize) -> impl Iterator<Item = u8> {
    (from..to).map(move |k| pattern(src, seq, k))
}

/// A message: bytes `offset..offset + len` of stream `seq` of `src`, in
/// any number of slices.
struct Msg {
    src: usize,
    seq: u64,
    offset: usize,
    parts: Vec<Slice>,
}

impl Msg {
    /// Panics unless the parts hold exactly the message's bytes.
    fn verify(&self) {
        let mut k = self.offset;
        for part in &self.parts {
            for (i, &b) in part.iter().enumerate() {
                assert_eq!(
                    b,
                    pattern(self.src, self.seq, k + i),
                    "message {}/{} byte {}",
                    self.src,
                    self.seq,
                    k + i
                );
            }
            k += part.len();
        }
    }
}

/// The shape of a stress run.
#[derive(Debug, Clone, Copy)]
struct Config {
    threads: usize,
    buf_size: usize,
    secs: f64,
}

/// Largest message a worker makes: several bufs at the smallest buf size.
const MAX_LEN: usize = 600;
/// Headroom of each worker's allocator, for prepending.
const RESERVE: usize = 16;

/// Message `seq` of worker `src`, `len` bytes, made from `alloc` by one of
/// the allocation paths.
fn make(alloc: &mut Allocator, rng: &mut u64, src: usize, seq: u64, len: usize) -> Vec<Slice> {
    match below(rng, 6) {
        0 => {
            let mut s = alloc.alloc(len);
            assert!(s.iter().all(|&b| b == 0), "alloc is zeroed");
            s.iter_mut().zip(pattern_range(src, seq, 0, len)).for_each(|(d, b)| *d = b);
            vec![s]
        }
        1 => {
            let mut s = alloc.alloc_for_overwrite(len);
            s.iter_mut().zip(pattern_range(src, seq, 0, len)).for_each(|(d, b)| *d = b);
            vec![s]
        }
        2 => {
            let data: Vec<u8> = pattern_range(src, seq, 0, len).collect();
            vec![alloc.copy_from_slice(&data)]
        }
        3 => {
            let s = alloc
                .fill_with(len + below(rng, 8), |buf| {
                    buf.iter_mut().zip(pattern_range(src, seq, 0, len)).for_each(|(d, b)| *d = b);
                    Ok(len)
                })
                .expect("fill_with");
            vec![s]
        }
        4 => {
            // A body, then its header prepended in place.
            let h = below(rng, RESERVE + 1).min(len);
            let body: Vec<u8> = pattern_range(src, seq, h, len).collect();
            let header: Vec<u8> = pattern_range(src, seq, 0, h).collect();
            let mut s = alloc.copy_from_slice(&body);
            assert!(s.prepend(&header), "the reserve holds the header");
            vec![s]
        }
        _ => {
            let data: Vec<u8> = pattern_range(src, seq, 0, len).collect();
            let mut w = alloc.writer();
            for piece in data.chunks(1 + below(rng, 100)) {
                w.write_all(piece).expect("write");
            }
            let mut chain = w.finish();
            std::iter::from_fn(|| chain.pop_front()).collect()
        }
    }
}

/// Reshapes the parts without changing their bytes: splits, joins,
/// `coalesce`, a trip through a `Chain`, or a front truncated and restored.
fn reshape(parts: &mut Vec<Slice>, rng: &mut u64) {
    for _ in 0..below(rng, 4) {
        if parts.is_empty() {
            return;
        }
        let i = below(rng, parts.len());
        match below(rng, 6) {
            0 => {
                let at = below(rng, parts[i].len() + 1);
                let front = parts[i].split_to(at);
                parts.insert(i, front);
            }
            1 => {
                let at = below(rng, parts[i].len() + 1);
                let back = parts[i].split_off(at);
                parts.insert(i + 1, back);
            }
            2 if i + 1 < parts.len() => {
                let next = parts.remove(i + 1);
                if let Err(next) = parts[i].try_join(next) {
                    parts.insert(i + 1, next);
                }
            }
            3 => coalesce(parts, [usize::MAX, 100][below(rng, 2)]),
            4 => {
                let mut chain: Chain = parts.drain(..).collect();
                chain.coalesce(usize::MAX);
                parts.extend(std::iter::from_fn(|| chain.pop_front()));
            }
            _ => {
                let n = below(rng, parts[i].len() + 1);
                parts[i].truncate_front(n);
                assert!(parts[i].expand_front(n));
            }
        }
    }
}

/// Writes stream `src` into a pipe in chunks of random sizes until the
/// deadline, then closes it; stops early where the reader has gone.
fn feed(mut pipe: io::PipeWriter, src: usize, deadline: Instant) {
    let mut rng = 0x5EED ^ src as u64;
    let mut at = 0;
    let mut chunk = Vec::new();
    while Instant::now() < deadline {
        let n = 1 + below(&mut rng, 700);
        chunk.clear();
        chunk.extend(pattern_range(src, 0, at, at + n));
        if let Err(e) = pipe.write_all(&chunk) {
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
            return;
        }
        at += n;
    }
}

/// One worker: makes, reshapes and sends messages, reads frames from its
/// pipe and sends those too, verifies and drops what it receives. Returns
/// (messages sent, messages verified).
fn work(
    pool: Pool,
    tid: usize,
    config: Config,
    mut peers: Vec<Sender<Msg>>,
    inbox: Receiver<Msg>,
    mut reader: Reader<io::PipeReader>,
    deadline: Instant,
) -> (u64, u64) {
    let mut rng = 0x1234_5678_9ABC_DEF1 ^ ((tid as u64 + 1) << 32);
    let mut alloc = pool.allocator(RESERVE);
    let mut backlog: Vec<Msg> = Vec::new();
    let (mut sent, mut verified) = (0, 0);
    let mut seq = 0;
    let mut pipe_at = 0;
    let mut pipe_open = true;
    let feeder = config.threads + tid;
    let mut receive = |msg: Msg, backlog: &mut Vec<Msg>, rng: &mut u64| {
        msg.verify();
        verified += 1;
        backlog.push(msg);
        while backlog.len() > 8 {
            drop(backlog.swap_remove(below(rng, backlog.len())));
        }
    };
    while Instant::now() < deadline {
        let mut msg = if pipe_open && below(&mut rng, 4) == 0 {
            let n = below(&mut rng, 3 * config.buf_size.min(MAX_LEN) + 1);
            match reader.read(n) {
                Ok(frame) => {
                    let msg = Msg { src: feeder, seq: 0, offset: pipe_at, parts: vec![frame] };
                    pipe_at += n;
                    msg
                }
                Err(e) => {
                    // The feeder stops at the deadline, which may cut a frame.
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                    pipe_open = false;
                    continue;
                }
            }
        } else {
            seq += 1;
            let len = below(&mut rng, MAX_LEN + 1);
            Msg { src: tid, seq, offset: 0, parts: make(&mut alloc, &mut rng, tid, seq, len) }
        };
        msg.verify();
        reshape(&mut msg.parts, &mut rng);
        let to = below(&mut rng, peers.len());
        peers[to].send(msg).expect("every worker receives until all senders are gone");
        sent += 1;
        if below(&mut rng, 64) == 0 {
            // Let go of the current buf now and then.
            alloc = pool.allocator(RESERVE);
        }
        while let Ok(msg) = inbox.try_recv() {
            receive(msg, &mut backlog, &mut rng);
        }
    }
    peers.clear();
    drop((alloc, reader));
    for msg in inbox {
        receive(msg, &mut backlog, &mut rng);
    }
    drop(backlog);
    (sent, verified)
}

/// Runs one configuration; returns the messages sent (all verified).
fn stress(config: Config) -> u64 {
    let pool = Pool::builder().buf_size(config.buf_size).build();
    let deadline = Instant::now() + Duration::from_secs_f64(config.secs);
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..config.threads).map(|_| channel::<Msg>()).unzip();
    let (sent, verified) = thread::scope(|scope| {
        let mut workers = Vec::new();
        for (tid, inbox) in inboxes.into_iter().enumerate() {
            let (pipe_r, pipe_w) = io::pipe().expect("a pipe");
            let feeder = config.threads + tid;
            scope.spawn(move || feed(pipe_w, feeder, deadline));
            let peers =
                senders.iter().enumerate().filter(|&(t, _)| t != tid).map(|(_, s)| s.clone()).collect();
            let reader = pool.reader(pipe_r);
            let pool = pool.clone();
            workers.push(scope.spawn(move || work(pool, tid, config, peers, inbox, reader, deadline)));
        }
        drop(senders);
        workers.into_iter().map(|w| w.join().expect("worker")).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!(sent, verified, "every message sent was received and verified");
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0), "{config:?}: {stats:?}");
    sent
}

/// Seconds from an environment variable, or a default.
fn secs(var: &str, default: f64) -> f64 {
    std::env::var(var)
        .ok()
        .map_or(default, |s| s.parse().unwrap_or_else(|_| panic!("{var}={s}: not a number")))
}

/// Runs every configuration once, `secs` each, and checks nothing stayed
/// allocated once the pools are gone.
fn run_all(secs: f64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    // This thread's claim on a per-thread cache slot lives (with whatever
    // std allocates to run its destructor at thread exit) until the thread
    // ends: make it before counting.
    drop(Pool::new().allocator(0).alloc(1));
    let before = LIVE.load(Ordering::SeqCst);
    for threads in [2 * cores, 16] {
        for buf_size in [64, 4096] {
            let sent = stress(Config { threads, buf_size, secs });
            assert!(sent > 0, "{threads} threads, buf_size {buf_size}: nothing was sent");
        }
    }
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        before,
        "heap bytes still allocated after the pools were dropped"
    );
}

/// 2 x cores and 16 threads, small and large bufs, a few seconds each: every message intact, no buf in use, no heap byte leaked.
#[test]
#[cfg_attr(
    miri,
    ignore = "time-bounded and full speed; tests/threads.rs runs the same kind of traffic under Miri"
)]
fn stress_ci() {
    run_all(secs("REFBUF_STRESS_SECS", 2.0));
}

/// The same for about ten minutes in all (`REFBUF_SOAK_SECS`, default 600).
#[test]
#[ignore = "soak, about ten minutes: cargo test --release --test stress -- --ignored"]
fn soak() {
    run_all(secs("REFBUF_SOAK_SECS", 600.0) / 4.0);
}
