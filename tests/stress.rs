//! Stress: many threads share one pool for a bounded time, each making
//! messages by every allocation path, reshaping them (split, join, coalesce,
//! prepend, `Chain`) and sending them to random other threads, which verify
//! and drop them; each thread also takes frames that a `Reader` of its own
//! reads from a pipe a feeder thread writes into. At the end every message
//! checked out intact, the pool has nothing in use and its counters balance,
//! and a counting global allocator shows that dropping the pool freed every
//! byte.
//!
//! Each shape (2 × cores and 16 threads, 64-byte and 4 KiB bufs) runs under
//! five memory policies: none, with per-thread caches off; none, with
//! caches (the default, as in every policy below); idle trimming alone (a 2 ms idle timeout, an
//! idle cap and `Pool::trim` calls from the workers); a budget
//! (`max_bytes`), tight enough that requests are refused and wait; and the
//! budget with idle trimming. Under a budget the pool must also never have
//! held more than the budget (`high_water_bytes`), and must have refused or
//! made wait some request; with trimming it must have trimmed.
//!
//! # Under a budget, nothing waits holding what others wait for
//!
//! Inboxes are unbounded, so a worker that waited for memory could wait for
//! bufs sitting in its own inbox, or in those of workers waiting too. So
//! under a budget a worker never waits without bound: it allocates with the
//! `try_` forms (`try_fill_with` included) and `alloc_timeout`, and makes
//! `Writer` writes, which have no `try_` form, only on an allocator given a
//! buf of its own beforehand (`secure`). On `Exhausted` it sheds what it
//! holds (its backlog, and everything in its inbox, verified) and tries
//! again.
//!
//! The `Reader` does wait for the budget, so each reader runs on a thread of
//! its own and hands its frames to its worker through a channel of one
//! slot, which the worker empties when it likes and drops when it stops.
//! See [`Config::max_bytes`] for why the budget cannot deadlock this.
//! Per-thread caches leave that argument as it is: a request the budget
//! cannot serve empties every thread's cache into the pool's shared lists
//! before it fails or waits, so cached bufs never stand in its way.
//!
//! `REFBUF_STRESS_SECS` sets the seconds per configuration of the CI test
//! (default 1.5; there are 20 configurations). The soak runs the same for
//! about ten minutes in all (`REFBUF_SOAK_SECS`, default 600):
//!
//! ```sh
//! cargo test --release --test stress -- --ignored
//! ```
//!
//! A watchdog aborts the process, printing the pool's stats, if a
//! configuration is still running two minutes after its deadline: a
//! deadlock fails the test rather than hang it.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use refbuf::{
    AllocError, Allocator, Chain, DEFAULT_MAX_POOLED_MULTIPLE, Pool, PoolStats, Reader, Slice, coalesce,
};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Keeps the two tests of this binary from running at once, so each sees
/// only its own allocations in `counting::live`.
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
    /// Panics unless the parts hold exactly the message's bytes, saying
    /// `when` (as made, or as received) and where the bad byte lies.
    fn verify(&self, when: &str) {
        let mut k = self.offset;
        for (p, part) in self.parts.iter().enumerate() {
            for (i, &b) in part.iter().enumerate() {
                assert_eq!(
                    b,
                    pattern(self.src, self.seq, k + i),
                    "message {}/{} byte {} {when}: byte {i} of part {p}, parts of {:?} bytes",
                    self.src,
                    self.seq,
                    k + i,
                    self.parts.iter().map(|part| part.len()).collect::<Vec<_>>()
                );
            }
            k += part.len();
        }
    }
}

/// A memory policy for the pool under stress.
#[derive(Debug, Clone, Copy)]
struct Policy {
    /// A budget: [`Config::max_bytes`].
    budget: bool,
    /// Idle trimming: an idle timeout of [`IDLE_TIMEOUT`], an idle cap, and
    /// workers calling [`Pool::trim`] now and then.
    idle: bool,
    /// Per-thread caches (the default); off, every take and release goes
    /// through the pool's lock.
    caches: bool,
}

/// Every policy, each run with every shape of [`run_all`].
const POLICIES: [Policy; 5] = [
    Policy { budget: false, idle: false, caches: false },
    Policy { budget: false, idle: false, caches: true },
    Policy { budget: false, idle: true, caches: true },
    Policy { budget: true, idle: false, caches: true },
    Policy { budget: true, idle: true, caches: true },
];

/// Configurations in a run: 5 policies × 2 thread counts × 2 buf sizes.
const CONFIGS: usize = 20;

/// The shape of a stress run.
#[derive(Debug, Clone, Copy)]
struct Config {
    threads: usize,
    buf_size: usize,
    policy: Policy,
    secs: f64,
}

/// Largest message a worker makes: several bufs at the smallest buf size.
const MAX_LEN: usize = 600;
/// Headroom of each worker's allocator, for prepending.
const RESERVE: usize = 16;
/// The most bytes `fill_with` is offered beyond the message it fills.
const FILL_SLACK: usize = 7;
/// How long `alloc_timeout` waits for the budget.
const ALLOC_WAIT: Duration = Duration::from_millis(1);
/// The idle timeout of the trimming policies.
const IDLE_TIMEOUT: Duration = Duration::from_millis(2);
/// How long a configuration may run past its deadline before the watchdog
/// declares it hung. Natively a run ends within milliseconds of its
/// deadline; this leaves room for valgrind.
const GRACE: Duration = Duration::from_secs(120);

/// The data size of the buf a request for `need` bytes gets: the smallest
/// size class, `buf_size` × 2^k, that holds it (as the README documents).
fn class_cap(buf_size: usize, need: usize) -> usize {
    let cap = buf_size * need.div_ceil(buf_size).max(1).next_power_of_two();
    assert!(cap <= buf_size * DEFAULT_MAX_POOLED_MULTIPLE, "{need} bytes would get an unpooled buf");
    cap
}

impl Config {
    /// The largest frame a reader is asked for.
    fn max_frame(&self) -> usize {
        3 * self.buf_size.min(MAX_LEN)
    }

    /// The budget, under a budget policy: `threads × (3 × R + W)` bytes,
    /// where `R` is the size of the largest buf a reader takes (the class of
    /// the largest frame) and `W` that of the largest buf a worker takes (the
    /// class of `RESERVE` + the largest `fill_with`). With 64-byte bufs that
    /// is 1792 bytes per thread, 28 bufs; with 4 KiB bufs 16 KiB, 4 bufs.
    ///
    /// # Why the run cannot deadlock
    ///
    /// - *Who waits.* Only reader threads wait for memory without bound, in
    ///   `Reader::read`. Workers never do (the module docs say how), and
    ///   feeders wait only for their pipe, which their reader empties or
    ///   drops.
    /// - *What a reader holds.* Its `Reader` holds at most one buf, two
    ///   while it moves buffered bytes into a new one, and waits holding at
    ///   most one (it lets go of an empty buf before taking another). Its
    ///   thread holds one frame in hand and its channel one more, each a
    ///   single slice. So a reader thread holds at most 3 bufs of at most
    ///   `R` bytes, and while it waits with its channel gone, at most one.
    /// - *Every run ends.* Workers never wait, so each reaches the deadline,
    ///   drops its frame channel (with any frame in it), its allocator and its
    ///   backlog, and then only verifies and drops what reaches its inbox
    ///   until every other worker has stopped too. Once all have, the only
    ///   memory in use is the readers', at most `R` per waiting reader. With
    ///   all `threads` readers waiting, `threads × R` bytes are in use, and
    ///   one more reader buf fits since the budget is at least
    ///   `(threads + 1) × R`. Idle bufs never stand in the way: a request
    ///   that does not fit frees idle bufs of other classes first (`Pool`'s
    ///   `make_room`; per-thread caches must keep that true, or this budget
    ///   must grow by what they can hold). Every release wakes every waiter,
    ///   so some reader gets its buf and reads on, to the end of its pipe
    ///   (the feeder closes it at the deadline) or to a send its worker no
    ///   longer takes; either way it returns, and so, one by one, do all.
    /// - *Workers make progress meanwhile.* Were every worker refused, each
    ///   would have shed its backlog and its inbox, leaving in use at most
    ///   the readers' `threads × 3 × R` bytes: `threads × W` would be free,
    ///   room for any worker's request. So some worker always gets its
    ///   memory.
    ///
    /// # Why it is tight
    ///
    /// Left alone, a worker holds its allocator's buf and up to 8 received
    /// messages, mostly in bufs of different senders: with 64-byte bufs,
    /// where a message's buf is 512 bytes on average, over 4 KiB; with 4 KiB
    /// bufs, where every buf is `W`, about 36 KiB. That is two to three times
    /// its share of the budget, so requests are refused (`exhausted`) and
    /// wait (`waits`, readers and `alloc_timeout`) tens of thousands of
    /// times a run, hundreds under valgrind; `stress` checks that some did.
    fn max_bytes(&self) -> Option<usize> {
        let reader_buf = class_cap(self.buf_size, self.max_frame());
        let worker_buf = class_cap(self.buf_size, RESERVE + MAX_LEN + FILL_SLACK);
        self.policy.budget.then(|| self.threads * (3 * reader_buf + worker_buf))
    }

    /// A pool with this configuration's buf size and policy.
    fn pool(&self) -> Pool {
        let mut builder = Pool::builder().buf_size(self.buf_size);
        if let Some(max) = self.max_bytes() {
            builder = builder.max_bytes(max);
        }
        if self.policy.idle {
            // Large enough that the caches get a share of it (a cap too
            // small to share out over every possible cache turns them off),
            // small enough for a burst to go over; the timeout and `trim`
            // do most of the trimming.
            builder = builder.idle_timeout(IDLE_TIMEOUT).max_idle_bytes(1024 * self.buf_size);
        }
        if !self.policy.caches {
            builder = builder.thread_cache(0);
        }
        builder.build()
    }
}

/// Gives `alloc` a buf of its own, taken without waiting, from which the
/// next `n` bytes after the reserve come without taking another; returns
/// where they will start. `Writer` writes wait for the budget and have no
/// `try_` form, so under a budget they run only after this.
///
/// A fresh allocator's first slice here fills its whole buf (`class_cap`),
/// so once it is dropped the allocator is the buf's sole holder with no room
/// left, and its next allocation rewinds to the buf's start rather than take
/// another from the pool. The caller checks that it did.
fn secure(alloc: &mut Allocator, n: usize) -> Result<*const u8, AllocError> {
    let pool = alloc.pool().clone();
    *alloc = pool.allocator(RESERVE);
    let whole = class_cap(pool.buf_size(), RESERVE + n);
    let probe = alloc.try_alloc_for_overwrite(whole - RESERVE)?;
    Ok(probe.as_ptr())
}

/// A copy of `data`, with `try_copy_from_slice` under a budget.
fn copy(alloc: &mut Allocator, data: &[u8], budget: bool) -> Result<Slice, AllocError> {
    if budget { alloc.try_copy_from_slice(data) } else { Ok(alloc.copy_from_slice(data)) }
}

/// Message `seq` of worker `src`, `len` bytes, made from `alloc` by one of
/// the allocation paths.
///
/// Without a budget this uses the forms that wait for memory, which then
/// never wait. Under one it uses only forms that never wait without bound:
/// the `try_` forms, `alloc_timeout`, and the `Writer` after [`secure`]; and
/// it fails, having made nothing, with `Exhausted` when the budget is used
/// up.
fn make(
    alloc: &mut Allocator,
    rng: &mut u64,
    src: usize,
    seq: u64,
    len: usize,
    budget: bool,
) -> Result<Vec<Slice>, AllocError> {
    Ok(match below(rng, 6) {
        0 => {
            let mut s = match (budget, below(rng, 2)) {
                (false, _) => alloc.alloc(len),
                (true, 0) => alloc.try_alloc(len)?,
                (true, _) => alloc.alloc_timeout(len, ALLOC_WAIT)?,
            };
            assert!(s.iter().all(|&b| b == 0), "alloc is zeroed");
            s.iter_mut().zip(pattern_range(src, seq, 0, len)).for_each(|(d, b)| *d = b);
            vec![s]
        }
        1 => {
            let mut s =
                if budget { alloc.try_alloc_for_overwrite(len)? } else { alloc.alloc_for_overwrite(len) };
            s.iter_mut().zip(pattern_range(src, seq, 0, len)).for_each(|(d, b)| *d = b);
            vec![s]
        }
        2 => {
            let data: Vec<u8> = pattern_range(src, seq, 0, len).collect();
            vec![copy(alloc, &data, budget)?]
        }
        3 => {
            let max = len + below(rng, FILL_SLACK + 1);
            let fill = |buf: &mut [u8]| {
                buf.iter_mut().zip(pattern_range(src, seq, 0, len)).for_each(|(d, b)| *d = b);
                Ok(len)
            };
            let filled = if budget { alloc.try_fill_with(max, fill) } else { alloc.fill_with(max, fill) };
            match filled {
                Ok(s) => vec![s],
                Err(e) => match e.get_ref().and_then(|e| e.downcast_ref::<AllocError>()) {
                    Some(&AllocError::Exhausted) => return Err(AllocError::Exhausted),
                    _ => panic!("fill_with: {e}"),
                },
            }
        }
        4 => {
            // A body, then its header prepended in place.
            let h = below(rng, RESERVE + 1).min(len);
            let body: Vec<u8> = pattern_range(src, seq, h, len).collect();
            let header: Vec<u8> = pattern_range(src, seq, 0, h).collect();
            let mut s = copy(alloc, &body, budget)?;
            assert!(s.prepend(&header), "the reserve holds the header");
            vec![s]
        }
        _ => {
            let data: Vec<u8> = pattern_range(src, seq, 0, len).collect();
            let at = if budget { Some(secure(alloc, len)?) } else { None };
            let mut w = alloc.writer();
            for piece in data.chunks(1 + below(rng, 100)) {
                w.write_all(piece).expect("write");
            }
            let mut chain = w.finish();
            if let Some(at) = at
                && len > 0
            {
                let parts: Vec<*const u8> = chain.iter().map(|part| part.as_ptr()).collect();
                assert_eq!(parts, [at], "the writer grew one slice in the secured buf, taking no other");
            }
            std::iter::from_fn(|| chain.pop_front()).collect()
        }
    })
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

/// Reads frames of random sizes from the pipe of feeder `src` and hands
/// them to its worker through `out`, until the pipe ends or the worker stops
/// taking them. A thread of its own, since `Reader::read` waits for the
/// budget, and a worker must not.
fn read_frames(mut reader: Reader<io::PipeReader>, src: usize, max_frame: usize, out: SyncSender<Msg>) {
    let mut rng = 0xF4A3_u64 ^ ((src as u64 + 1) << 24);
    let mut at = 0;
    loop {
        let n = below(&mut rng, max_frame + 1);
        let frame = match reader.read(n) {
            Ok(frame) => frame,
            Err(e) => {
                // The feeder stops at the deadline, which may cut a frame.
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                return;
            }
        };
        let msg = Msg { src, seq: 0, offset: at, parts: vec![frame] };
        at += n;
        if out.send(msg).is_err() {
            return; // the worker has stopped
        }
    }
}

/// Verifies and drops every message waiting in `inbox`; returns how many.
fn drain(inbox: &Receiver<Msg>) -> u64 {
    let mut n = 0;
    while let Ok(msg) = inbox.try_recv() {
        msg.verify("as received");
        n += 1;
    }
    n
}

/// One worker: makes, reshapes and sends messages, takes frames from its
/// reader and sends those too, verifies and drops what it receives (keeping
/// up to 8 a while, dropped in random order). Returns (messages sent,
/// messages verified, frames among those sent).
fn work(
    pool: Pool,
    tid: usize,
    config: Config,
    mut peers: Vec<Sender<Msg>>,
    inbox: Receiver<Msg>,
    frames: Receiver<Msg>,
    deadline: Instant,
) -> (u64, u64, u64) {
    let mut rng = 0x1234_5678_9ABC_DEF1 ^ ((tid as u64 + 1) << 32);
    let mut alloc = pool.allocator(RESERVE);
    let mut backlog: Vec<Msg> = Vec::new();
    let (mut sent, mut verified, mut framed) = (0, 0, 0);
    let mut seq = 0;
    'run: while Instant::now() < deadline {
        let frame = if below(&mut rng, 4) == 0 { frames.try_recv().ok() } else { None };
        let mut msg = match frame {
            Some(frame) => {
                framed += 1;
                frame
            }
            None => {
                seq += 1;
                let len = below(&mut rng, MAX_LEN + 1);
                loop {
                    match make(&mut alloc, &mut rng, tid, seq, len, config.policy.budget) {
                        Ok(parts) => break Msg { src: tid, seq, offset: 0, parts },
                        Err(AllocError::Exhausted) => {
                            // The budget is used up: let go of every message
                            // held here, so that none stays pinned by this
                            // worker while others are refused, then try again.
                            let drained = drain(&inbox);
                            verified += drained;
                            let shed = drained + backlog.len() as u64;
                            backlog.clear();
                            if Instant::now() >= deadline {
                                break 'run;
                            }
                            if shed == 0 {
                                thread::yield_now();
                            }
                        }
                        Err(e) => panic!("{config:?}: {e}"),
                    }
                }
            }
        };
        msg.verify("as made or read, before it was reshaped and sent");
        reshape(&mut msg.parts, &mut rng);
        let to = below(&mut rng, peers.len());
        peers[to].send(msg).expect("every worker receives until all senders are gone");
        sent += 1;
        if below(&mut rng, 64) == 0 {
            // Let go of the current buf now and then.
            alloc = pool.allocator(RESERVE);
        }
        if config.policy.idle && below(&mut rng, 128) == 0 {
            pool.trim();
        }
        while let Ok(msg) = inbox.try_recv() {
            msg.verify("as received");
            verified += 1;
            backlog.push(msg);
            while backlog.len() > 8 {
                drop(backlog.swap_remove(below(&mut rng, backlog.len())));
            }
        }
    }
    // The frame channel first: its reader stops at its next frame.
    drop((frames, alloc, backlog));
    peers.clear();
    for msg in inbox {
        msg.verify("as received");
        verified += 1;
    }
    (sent, verified, framed)
}

/// Aborts the process, printing the pool's stats, unless `done` reports
/// (or is dropped) within [`GRACE`] of the deadline: a deadlock fails the
/// test instead of hanging it. (A panic on this thread would not end the
/// run.)
fn watchdog(pool: &Pool, config: Config, deadline: Instant, done: Receiver<()>) {
    let limit = deadline.saturating_duration_since(Instant::now()) + GRACE;
    if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
        // Straight to stderr: `eprintln!` would go to the test's captured
        // output, which the abort throws away.
        let _ = writeln!(
            io::stderr(),
            "stress {config:?}: still running {GRACE:?} after its deadline, hung: {:?}",
            pool.stats()
        );
        std::process::abort();
    }
}

/// Spawns `f` on a thread of `scope` whose heap traffic counts in
/// `counting::live`, from the thread's start on.
fn spawn_counted<'scope, T: Send + 'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    scope.spawn(move || {
        counting::count_from_birth();
        f()
    })
}

/// Runs one configuration; returns the messages sent (all verified), the
/// frames among them, and the pool's stats at the end.
fn stress(config: Config) -> (u64, u64, PoolStats) {
    let pool = config.pool();
    let deadline = Instant::now() + Duration::from_secs_f64(config.secs);
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..config.threads).map(|_| channel::<Msg>()).unzip();
    let (done, done_rx) = channel::<()>();
    let (sent, verified, framed) = thread::scope(|scope| {
        let pool = &pool;
        let watchdog = spawn_counted(scope, move || watchdog(pool, config, deadline, done_rx));
        let (mut workers, mut helpers) = (Vec::new(), Vec::new());
        for (tid, inbox) in inboxes.into_iter().enumerate() {
            let (pipe_r, pipe_w) = io::pipe().expect("a pipe");
            let feeder = config.threads + tid;
            helpers.push(spawn_counted(scope, move || feed(pipe_w, feeder, deadline)));
            let (frames_in, frames) = sync_channel(1);
            let reader = pool.reader(pipe_r);
            helpers.push(spawn_counted(scope, move || {
                read_frames(reader, feeder, config.max_frame(), frames_in)
            }));
            let peers =
                senders.iter().enumerate().filter(|&(t, _)| t != tid).map(|(_, s)| s.clone()).collect();
            let pool = pool.clone();
            workers
                .push(spawn_counted(scope, move || work(pool, tid, config, peers, inbox, frames, deadline)));
        }
        drop(senders);
        let totals = workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
        // Joined, not left to the scope: a join waits for the thread to
        // exit, thread-local destructors included, so their memory is back
        // when the caller counts the heap.
        for helper in helpers {
            helper.join().expect("feeder or reader");
        }
        drop(done);
        watchdog.join().expect("watchdog");
        totals
    });
    assert_eq!(sent, verified, "{config:?}: every message sent was received and verified");
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0), "{config:?}: {stats:?}");
    assert_eq!(
        stats.bufs_created,
        stats.bufs_trimmed + stats.bufs_idle as u64,
        "{config:?}: every buf made is idle or was trimmed: {stats:?}"
    );
    if let Some(max) = config.max_bytes() {
        assert!(stats.high_water_bytes <= max, "{config:?}: over the budget of {max}: {stats:?}");
        assert!(
            stats.waits + stats.exhausted > 0,
            "{config:?}: no request waited or was refused, so the budget of {max} tested nothing: {stats:?}"
        );
    }
    if config.policy.idle {
        assert!(stats.bufs_trimmed > 0, "{config:?}: nothing was trimmed: {stats:?}");
    }
    assert_eq!(stats.bufs_cached, 0, "{config:?}: every thread has exited, flushing its cache: {stats:?}");
    (sent, framed, stats)
}

/// Seconds from an environment variable, or a default.
fn secs(var: &str, default: f64) -> f64 {
    std::env::var(var)
        .ok()
        .map_or(default, |s| s.parse().unwrap_or_else(|_| panic!("{var}={s}: not a number")))
}

/// Runs every configuration once, `secs` each, checks nothing stayed
/// allocated once the pools are gone, and prints what each run did (shown
/// with `--nocapture`).
fn run_all(secs: f64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    // This thread's claim on a per-thread cache slot lives (with whatever
    // std allocates to run its destructor at thread exit) until the thread
    // ends: make it before counting.
    drop(Pool::new().allocator(0).alloc(1));
    // Filled as the runs go and printed after the heap is counted: captured
    // test output is heap memory too.
    let mut runs = Vec::with_capacity(CONFIGS);
    counting::count_this_thread(true);
    let before = counting::live();
    for policy in POLICIES {
        for threads in [2 * cores, 16] {
            for buf_size in [64, 4096] {
                let config = Config { threads, buf_size, policy, secs };
                let (sent, framed, stats) = stress(config);
                assert!(sent > 0, "{config:?}: nothing was sent");
                runs.push((config, sent, framed, stats));
            }
        }
    }
    assert_eq!(counting::live(), before, "heap bytes still allocated after the pools were dropped");
    counting::count_this_thread(false);
    for (config, sent, framed, s) in runs {
        let Config { threads, buf_size, policy, .. } = config;
        let budget = config.max_bytes().map_or("none".to_string(), |max| max.to_string());
        println!(
            "{policy:?}, {threads} threads, {buf_size}-byte bufs: {sent} messages, {framed} of them frames; budget {budget}, \
             high water {}, waits {}, exhausted {}, bufs created {}, trimmed {}",
            s.high_water_bytes, s.waits, s.exhausted, s.bufs_created, s.bufs_trimmed
        );
    }
}

/// 2 x cores and 16 threads, small and large bufs, five memory policies (caches on and off), a few seconds each: every message intact, no buf in use, the budget kept, no heap byte leaked.
#[test]
#[cfg_attr(
    miri,
    ignore = "time-bounded and full speed; tests/threads.rs runs the same kind of traffic under Miri"
)]
fn stress_ci() {
    run_all(secs("REFBUF_STRESS_SECS", 1.5));
}

/// The same for about ten minutes in all (`REFBUF_SOAK_SECS`, default 600).
#[test]
#[ignore = "soak, about ten minutes: cargo test --release --test stress -- --ignored"]
fn soak() {
    run_all(secs("REFBUF_SOAK_SECS", 600.0) / CONFIGS as f64);
}
