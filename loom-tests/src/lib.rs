//! [loom] models of refbuf's reference counting and pool state.
//!
//! Under `--cfg loom`, refbuf's `sync` shim swaps every atomic, `Arc`,
//! `Mutex`, `Condvar` and `alloc_zeroed`/`dealloc` for loom's twin, and
//! gives each buf a loom-only access tracker: every holder makes a shared
//! access just before its `Release` decrement, and whoever takes the whole
//! buf (to recycle, reuse or free it) makes an exclusive one. Each model in `tests/` runs a
//! tiny scenario (one pool of 64-byte bufs, a few slices, a few threads) through every interleaving loom explores,
//! so that:
//!
//! - a too-weak ordering in the reference count shows up as a loom data race
//!   on that tracker;
//! - a buf leaked, or freed twice, shows up as loom's "Allocation leaked" or
//!   "pointer not tracked", and a leaked pool as "Arc leaked";
//! - the pool's counters ([`refbuf::PoolStats`]) are checked after the
//!   threads are joined.
//!
//! The models:
//!
//! - `recycle`: two threads drop the last two slices of one buf at once;
//! - `cross_thread_drop`: an allocator and its slices dropped on different
//!   threads, and its check for a rewind with room left racing a drop;
//! - `close`: `Pool::close` racing the release of the last slice;
//! - `pool_drop`: the last pool handle dropped while a slice is dropped;
//! - `reader`: a reader reusing its buf while the slices it handed out are
//!   dropped on other threads;
//! - `free_entire_prefix`: `Slice::free_entire_prefix` racing the drop of a
//!   sibling slice;
//! - `coalesce`: `coalesce`'s batched release racing the drop of a sibling;
//! - `split`: the parts of a split slice (pooled, and from `Slice::from_vec`)
//!   dropped on different threads;
//! - `budget`: a request waiting for the memory budget, woken by a release
//!   on another thread (a lost wakeup shows up as loom's deadlock report)
//!   or by `close`, two waiters served in turn by one buf, `trim` racing a
//!   release, and the byte accounting under concurrent takes and releases
//!   (never over the budget, never below zero);
//! - `async_budget`: an async request (`Allocator::ready`, driven by loom's
//!   `future::block_on`) woken by a release on another thread, a waiter
//!   given up while a release races it (the other waiter is still served),
//!   and `close` waking an async waiter;
//! - `home`: a `LocalAllocator`'s bufs, counted in plain memory on its
//!   thread: home and remote drops of the last slices, a drop at home after
//!   the buf left home, the last drop remote with the home thread alive or
//!   gone, a rewind at home racing a remote drop or a part split remotely,
//!   leaving home racing a new home elsewhere, a spent buf reused racing
//!   the remote drop of its last slice, and a dead part cut from while the
//!   live slice beside it is dropped, or split (reshaping the buf), on
//!   another thread;
//! - `counting`: an `Allocator` that may move, tracking, cutting from the
//!   dead parts of its pool's orphans: moved to another thread while the
//!   orphan's kept slice is written and dropped on the first (the orphan
//!   passed over, or taken and rewound, or cut from beside the live
//!   slice), and while the kept slice, split on another thread, is
//!   dropped in two places (the reshaped mark keeps the allocator off);
//! - `regions`: a `BufRing`'s regions without the kernel: last slices
//!   dropped on other threads racing the owner taking the return list (the
//!   region's next user sees the last holder's writes), and racing the
//!   owner closing it (the buf goes back to the pool once, after every
//!   holder's last use), a region going round twice while another's push
//!   races it, and the owner moving to another thread;
//! - `cache`: a thread's exit flushing its per-thread cache, alone and
//!   racing the pool's close; a request for the budget reaching a buf in
//!   another live thread's cache; and the stats counting a buf that moves
//!   between two caches once (this one needs `LOOM_MAX_PREEMPTIONS=4`, which
//!   `.ci/run` uses for this file).
//!
//! # Running
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
//!
//! A separate `--target-dir` keeps the `--cfg loom` build from evicting the
//! ordinary one. `LOOM_MAX_PREEMPTIONS` bounds the thread preemptions per
//! execution; unset, loom explores every interleaving, which for these
//! models is still a matter of seconds. The other `LOOM_*` variables loom's
//! `Builder` reads (`LOOM_LOG`, `LOOM_LOCATION`, `LOOM_CHECKPOINT_FILE`,
//! `LOOM_MAX_BRANCHES`, ...) work too. Add `-- --nocapture` to see each
//! model's execution count and time.
//!
//! A failing model usually aborts its whole test binary ("panic in a
//! destructor during cleanup"): while the failure unwinds, loom 0.7 drops its
//! record of the bufs still allocated outside the model, which panics again.
//! The finding is the message printed before that; to see every model's
//! verdict, add `--no-fail-fast`, or run one model at a time with
//! `--test FILE -- --exact NAME`.
//!
//! Without `--cfg loom` this crate and its tests compile to nothing, so a
//! plain `cargo test --workspace` passes them trivially.
//!
//! [loom]: https://docs.rs/loom/0.7

#[cfg(loom)]
use refbuf::Pool;

/// Checks `f` under loom, with a [`loom::model::Builder`] configured from
/// the `LOOM_*` environment variables, and prints the model's name, its
/// preemption bound, and how many executions it took.
///
/// # Panics
/// Where loom finds a failure in any execution: a panic in `f`, a data
/// race, a deadlock, or a leaked allocation or `Arc`.
#[cfg(loom)]
pub fn run_model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        // A counting buf's segment record is 64 atomics, each cleared and
        // read in turn: a few hundred branches per buf, where loom's
        // default allows 1000 per execution.
        builder.max_branches = 20_000;
    }
    match builder.preemption_bound {
        Some(bound) => println!("loom model `{name}`: at most {bound} preemptions"),
        None => println!("loom model `{name}`: unbounded preemptions"),
    }
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&executions);
    let start = Instant::now();
    let f = Arc::new(f);
    builder.check(move || {
        // A plain std counter, outside what loom models.
        counter.fetch_add(1, Ordering::Relaxed);
        // On a thread of its own, so that it ends with refbuf's thread-exit
        // flush (see `thread::spawn`) while loom's statics are alive.
        let f = Arc::clone(&f);
        thread::spawn(move || f()).join().expect("the model's thread panicked");
    });
    println!(
        "loom model `{name}`: {} executions in {:.2?}",
        executions.load(Ordering::Relaxed),
        start.elapsed()
    );
}

/// Asserts `pool`'s counters, for a pool whose bufs are all of the standard
/// size: `created` bufs ever made, `in_use` held, `idle` kept for reuse, and
/// byte counts to match.
#[cfg(loom)]
#[track_caller]
pub fn assert_stats(pool: &Pool, created: u64, in_use: usize, idle: usize) {
    let stats = pool.stats();
    let size = pool.buf_size();
    assert_eq!(
        (stats.bufs_created, stats.bufs_in_use, stats.bufs_idle),
        (created, in_use, idle),
        "(bufs_created, bufs_in_use, bufs_idle) in {stats:?}"
    );
    assert_eq!(
        (stats.bytes_in_use, stats.bytes_idle),
        (in_use * size, idle * size),
        "(bytes_in_use, bytes_idle) in {stats:?}"
    );
}

/// Asserts that the pool's one idle buf comes back to a new allocator as it
/// was left, starting with `expected`: the writes of every earlier holder are
/// visible to the next user. Leaves the buf idle again.
#[cfg(loom)]
#[track_caller]
pub fn assert_recycled_with(pool: &Pool, expected: &[u8]) {
    let mut alloc = pool.allocator(0);
    let reused = alloc.alloc_for_overwrite(expected.len());
    assert_eq!(&reused[..], expected, "the recycled buf shows every earlier write");
    drop((reused, alloc));
    assert_stats(pool, 1, 0, 1);
}

/// Spawns a model thread that writes `bytes` over all of `slice` and then
/// drops it: a holder that uses its bytes and lets go on another thread.
///
/// # Panics
/// The spawned thread panics where `bytes` is not as long as `slice`.
#[cfg(loom)]
pub fn write_and_drop_on_thread(mut slice: refbuf::Slice, bytes: &'static [u8]) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        slice.copy_from_slice(bytes);
        drop(slice);
    })
}

/// A meeting point for loom: the allocator's thread passes it once it has
/// written its new slice, the remote thread just before it checks the
/// bytes of the slice it still holds. Loom runs two dependent atomic
/// operations in both orders, so the check runs both before and after the
/// allocator's write; its answer differs only where the two slices
/// overlap. (A
/// `yield_now` in its place would not do: loom does not go back to a
/// yielded thread to try it first, and misses interleavings.)
#[cfg(loom)]
#[derive(Clone, Default)]
pub struct Probe(loom::sync::Arc<loom::sync::atomic::AtomicBool>);

#[cfg(loom)]
impl Probe {
    /// The allocator's thread has written its new slice.
    pub fn pass(&self) {
        self.0.store(true, loom::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the allocator's thread had written its new slice.
    pub fn passed(&self) -> bool {
        self.0.load(loom::sync::atomic::Ordering::Relaxed)
    }
}

/// How often each outcome of a race was reached across a model's
/// executions: plain std atomics, outside what loom models.
#[cfg(loom)]
#[derive(Clone)]
pub struct Outcomes<const N: usize> {
    names: [&'static str; N],
    hits: std::sync::Arc<[std::sync::atomic::AtomicUsize; N]>,
}

#[cfg(loom)]
impl<const N: usize> Outcomes<N> {
    /// No outcome reached yet, of those `names` names.
    pub fn new(names: [&'static str; N]) -> Outcomes<N> {
        Outcomes { names, hits: std::sync::Arc::new(std::array::from_fn(|_| Default::default())) }
    }

    /// Counts an execution that reached `outcome`.
    pub fn hit(&self, outcome: usize) {
        self.hits[outcome].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Prints each outcome's count, and panics where one was never reached.
    #[track_caller]
    pub fn assert_each_reached(&self) {
        for (name, hits) in self.names.iter().zip(self.hits.iter()) {
            let hits = hits.load(std::sync::atomic::Ordering::Relaxed);
            println!("  {name}: {hits} executions");
            assert!(hits > 0, "no execution reached: {name}");
        }
    }
}

/// Threads for the models: use this module's `spawn`, not loom's.
#[cfg(loom)]
pub mod thread {
    pub use loom::thread::JoinHandle;

    /// `loom::thread::spawn`, ending the thread with refbuf's thread-exit
    /// flush of its per-thread caches ([`refbuf::loom_thread_exit`]).
    ///
    /// A real thread runs that flush in a thread-local destructor, before
    /// `join` returns. Loom runs its threads' local destructors after the
    /// join may already have returned, and possibly after the model's main
    /// function has returned and loom has dropped its statics (refbuf's
    /// registry of pools among them), so the models run the flush where a
    /// real thread would.
    pub fn spawn<F, T>(f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        loom::thread::spawn(move || {
            let out = f();
            refbuf::loom_thread_exit();
            out
        })
    }
}

/// What the rewind models need of an allocator: `Allocator` and
/// `LocalAllocator` alike.
#[cfg(loom)]
pub trait Carve {
    /// As `Allocator::alloc_for_overwrite`.
    fn carve(&mut self, len: usize) -> refbuf::Slice;
    /// As `Allocator::copy_from_slice`.
    fn copy(&mut self, bytes: &[u8]) -> refbuf::Slice;
}

#[cfg(loom)]
impl Carve for refbuf::Allocator {
    fn carve(&mut self, len: usize) -> refbuf::Slice {
        self.alloc_for_overwrite(len)
    }
    fn copy(&mut self, bytes: &[u8]) -> refbuf::Slice {
        self.copy_from_slice(bytes)
    }
}

#[cfg(loom)]
impl Carve for refbuf::LocalAllocator {
    fn carve(&mut self, len: usize) -> refbuf::Slice {
        self.alloc_for_overwrite(len)
    }
    fn copy(&mut self, bytes: &[u8]) -> refbuf::Slice {
        self.copy_from_slice(bytes)
    }
}

/// The allocator `make` returns checks, with room left in its buf, whether
/// every slice of it is gone (it does so every 16 bytes under loom), while
/// the first slice is written and dropped on another thread and the second
/// is dropped here. Where the remote drop came first, the allocator rewinds
/// and the next slice reuses the first one's bytes (its `Acquire` check
/// must see that thread's writes, or loom reports the race); otherwise it
/// carries on after the second slice. Both outcomes must occur, and either
/// way one buf serves all three slices.
#[cfg(loom)]
pub fn rewind_with_room_left_races_remote_drop<A: Carve + 'static>(name: &str, make: fn(&Pool) -> A) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Outcome counters across executions: plain std atomics, outside the model.
    let outcomes = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let counted = Arc::clone(&outcomes);
    run_model(name, move || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = make(&pool);
        let a = alloc.carve(16);
        let a_at = a.as_ptr().addr();
        let mut b = alloc.carve(16);
        let b_at = b.as_ptr().addr();

        let ta = write_and_drop_on_thread(a, b"aaaaaaaaaaaaaaaa");
        b.fill(b'b');
        drop(b);
        let c = alloc.copy(b"cccccccccccccccc");
        assert_eq!(&c[..], b"cccccccccccccccc");
        let outcome = match c.as_ptr().addr() {
            at if at == a_at => 0,
            at if at == b_at + 16 => 1,
            at => panic!("the third slice is at {at:#x}, neither the buf's start nor after the second"),
        };
        counted[outcome].fetch_add(1, Ordering::Relaxed);
        drop(c);
        drop(alloc);
        ta.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
    });
    assert!(outcomes[0].load(Ordering::Relaxed) > 0, "{name}: no execution rewound with room left");
    assert!(outcomes[1].load(Ordering::Relaxed) > 0, "{name}: no execution carried on in the buf");
}
