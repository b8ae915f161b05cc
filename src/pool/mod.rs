//! The pool: where bufs come from and where they go back.
//!
//! `Pool` is a handle to a shared `PoolShared`. The shared state keeps one
//! intrusive free list of idle bufs per size class and the counters behind
//! [`PoolStats`] and the budget, all under one lock (`State`), and a
//! condition variable where requests wait for the budget. The lock is taken
//! only when a buf changes hands (an allocator or reader takes one, or the
//! last holder of a buf lets go), never per slice, and not even then when
//! the current thread's cache can serve.
//!
//! Every buf holds an `Arc` to the shared state, so a buf can always find its
//! way home, however long it outlives the handles. The handles are counted
//! apart from that `Arc`: when the last `Pool`, `Allocator` or `Reader` goes,
//! the pool closes itself, frees its idle bufs, and frees each buf still in
//! use when its last slice drops.
//!
//! # Files
//!
//! - `mod.rs`: `Pool`, `PoolStats`, `PoolShared`; stats, close, report.
//! - `builder.rs`: `PoolBuilder`, and the size-class and idle-cap
//!   arithmetic.
//! - `state.rs`: `State`, behind the lock, and every move of a buf between
//!   its counters.
//! - `budget.rs`: leasing a buf and returning one, the budget, and the
//!   waiting protocol: the one place that argues why no waiter is missed.
//! - `idle.rs`: the clock, the idle timeout and trimming.
//! - `caches.rs`: the pool's side of the per-thread caches (the thread's
//!   side, the slot claims and the registry of pools, is `crate::cache`).
//! - `orphans.rs`: the list of bufs let go while slices still used them,
//!   which the pool does not hold, for allocators to cut from again.

mod budget;
mod builder;
mod caches;
mod idle;
mod orphans;
mod state;

use core::fmt;
use core::ptr::NonNull;
use std::io::Read;
use std::time::Instant;

pub(crate) use budget::{SizeClass, Ticket, Wait};
pub use builder::PoolBuilder;
pub(crate) use orphans::{Look, Seen};

use crate::allocator::Allocator;
use crate::buf::{Header, Lease};
use crate::cache::{self, RegistryLinks, SLOTS, Slot, SlotGuard};
use crate::error::AllocError;
use crate::free_list::Doomed;
use crate::reader::Reader;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, lock};
use state::State;

/// The data size of a buf when none is configured: 64 KiB.
pub const DEFAULT_BUF_SIZE: usize = 64 * 1024;

/// The largest pooled size class when none is configured, as a multiple of
/// `buf_size`: bufs of `buf_size` × 1, 2, 4, 8 and 16 go back to a free list
/// when released; larger ones are freed, so that one outsized frame does not
/// pin its memory in the pool for good.
pub const DEFAULT_MAX_POOLED_MULTIPLE: usize = 16;

/// The most size classes a pool can have: `buf_size` × 2^0 up to 2^31.
pub const MAX_SIZE_CLASSES: usize = 32;

/// Standard-size bufs each thread's cache keeps when none is configured; see
/// [`PoolBuilder::thread_cache`].
pub const DEFAULT_THREAD_CACHE_BUFS: usize = 4;

/// A pool of ref-counted bufs.
///
/// `Pool` is a cheap handle: clones share one pool. It hands out memory
/// through [`Allocator`]s and [`Reader`]s, and takes each buf back the moment
/// its last slice, allocator or reader lets go of it.
///
/// # Sizes
///
/// Bufs come in size classes: `buf_size` × 2^k, from `buf_size` itself up
/// to the largest pooled class ([`PoolBuilder::max_pooled_size`], by default
/// [`DEFAULT_MAX_POOLED_MULTIPLE`] × `buf_size`). A request for `n` bytes
/// gets a buf of the smallest class that holds `n`, and the data area is
/// exactly that large: the bookkeeping lives in a separate 64-byte header in
/// front of it. Each class has its own free list. A request above the
/// largest class gets an unpooled buf of the smallest multiple of `buf_size`
/// that holds it, freed when released.
///
/// # Memory policy
///
/// - **Budget.** With [`PoolBuilder::max_bytes`] the pool never holds more
///   data bytes than that, in use and idle together. A new buf that would go
///   over reuses an idle buf of its class or frees idle bufs of other
///   classes; if that is not enough, `alloc` and the [`Reader`] wait for a
///   release, `try_alloc` fails at once with [`AllocError::Exhausted`], and
///   [`Allocator::alloc_timeout`] waits at most a given time.
/// - **Idle memory.** [`PoolBuilder::max_idle_bytes`] caps the idle bytes
///   kept; [`PoolBuilder::idle_timeout`] frees bufs idle longer than a
///   duration, during later pool operations (no background thread); and
///   [`Pool::trim`] frees every idle buf at once.
/// - **Per-thread caches.** Each thread keeps a few idle standard-size bufs
///   of its own ([`PoolBuilder::thread_cache`]), so that a thread releasing
///   and taking bufs skips the pool's shared lock. Cached bufs are idle bufs
///   like any other: they count in [`Pool::stats`] (and
///   [`PoolStats::bufs_cached`]), within the budget and the idle cap, and
///   `trim`, the idle timeout, a request waiting for the budget and `close`
///   all reach them. A thread's cache is emptied into the pool when the
///   thread exits, and belongs to the pool, so it never outlives it.
///
/// # Lifetime
///
/// The pool stays open while any `Pool`, `Allocator` or `Reader` of it is
/// alive, or until [`Pool::close`]. Once closed, its idle memory is freed and
/// every buf still in use is freed when its last slice drops. Slices never
/// dangle: each keeps its own buf alive, whatever happens to the pool.
///
/// # Example
///
/// ```
/// let pool = refbuf::Pool::builder().buf_size(4096).build();
/// let mut alloc = pool.allocator(0);
/// let slice = alloc.copy_from_slice(b"hello");
/// assert_eq!(&slice[..], b"hello");
/// assert_eq!(pool.stats().bufs_in_use, 1);
/// drop((slice, alloc));
/// assert_eq!(pool.stats().bufs_idle, 1);
/// ```
pub struct Pool {
    shared: Arc<PoolShared>,
}

/// A snapshot of a pool's memory.
///
/// Byte counts are data bytes, without the 64-byte header of each buf. The
/// snapshot is exact whenever no other thread is taking or releasing a buf
/// at the same moment.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Fresh bufs ever taken from the system.
    pub bufs_created: u64,
    /// Bufs held by a slice, allocator or reader.
    pub bufs_in_use: usize,
    /// Bufs kept for reuse.
    pub bufs_idle: usize,
    /// Data bytes of the bufs in use.
    pub bytes_in_use: usize,
    /// Data bytes of the idle bufs.
    pub bytes_idle: usize,
    /// Requests that found the budget used up and waited for a release
    /// (each counted once, however long it waited).
    pub waits: u64,
    /// Requests refused with [`AllocError::Exhausted`].
    pub exhausted: u64,
    /// Bufs freed by the idle policy rather than kept: by [`Pool::trim`],
    /// the idle timeout, the idle cap, or to make room for a buf of another
    /// class under the budget.
    pub bufs_trimmed: u64,
    /// The most data bytes the pool has held at once, in use and idle.
    pub high_water_bytes: usize,
    /// Of the idle bufs, those sitting in per-thread caches.
    pub bufs_cached: usize,
}

/// One readable line: bufs and bytes in use and idle (sizes in B, KiB, MiB
/// or GiB), then the counters that are not zero.
///
/// ```
/// let pool = refbuf::Pool::builder().buf_size(4096).build();
/// let mut alloc = pool.allocator(0);
/// let slice = alloc.alloc(10);
/// assert_eq!(
///     pool.stats().to_string(),
///     "1 buf in use (4 KiB), 0 idle (0 B); 1 made, high water 4 KiB"
/// );
/// # drop(slice);
/// ```
impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.bufs_in_use == 1 { "" } else { "s" };
        write!(f, "{} buf{plural} in use ({}), ", self.bufs_in_use, Bytes(self.bytes_in_use))?;
        write!(f, "{} idle ({}", self.bufs_idle, Bytes(self.bytes_idle))?;
        if self.bufs_cached > 0 {
            write!(f, ", {} in thread caches", self.bufs_cached)?;
        }
        write!(f, "); {} made, high water {}", self.bufs_created, Bytes(self.high_water_bytes))?;
        for (count, what) in
            [(self.bufs_trimmed, "trimmed"), (self.waits, "waited"), (self.exhausted, "refused")]
        {
            if count > 0 {
                write!(f, ", {count} {what}")?;
            }
        }
        Ok(())
    }
}

/// A byte count for people: whole bytes below 1 KiB, else KiB, MiB or GiB
/// with at most one decimal.
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if value.fract() == 0.0 || value >= 100.0 {
            write!(f, "{value:.0} {}", UNITS[unit])
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// The state every handle and every buf of one pool shares.
pub(crate) struct PoolShared {
    buf_size: usize,
    /// Size classes with a free list: `buf_size << k` for `k < classes`.
    classes: usize,
    /// Data bytes the pool may hold; `usize::MAX` for no budget.
    max_bytes: usize,
    /// Idle data bytes the pool keeps; `usize::MAX` for no cap.
    max_idle_bytes: usize,
    /// Idle data bytes the shared lists keep: `max_idle_bytes` less what
    /// the caches may hold, so that both together stay within it.
    shared_idle_cap: usize,
    /// Standard-size bufs each cache slot keeps; 0 turns caching off.
    cache_bufs: usize,
    /// Bufs idle longer than this many nanoseconds are freed.
    idle_timeout: Option<u64>,
    /// The clock's zero for `IdleLinks::since`.
    epoch: Instant,
    /// A copy of `State::closed` that the allocation fast path can read
    /// without the lock; `State::closed` decides.
    closed: AtomicBool,
    /// Live `Pool`, `Allocator` and `Reader` values of this pool.
    handles: AtomicUsize,
    /// A copy of `State::waiters` that a release into a cache reads under
    /// its slot's lock; see `budget.rs`.
    waiting: AtomicUsize,
    /// No cached buf can be past the idle timeout before this time (in
    /// `idle_clock` nanoseconds); written under the lock by the cache
    /// sweep, read by releases into a cache (see `caches.rs`).
    next_cache_sweep: AtomicU64,
    /// On lines of its own: every turn of the lock writes them, and the
    /// fields above are read on hot paths (`closed` on every allocation).
    state: OwnLines<Mutex<State>>,
    /// Where requests wait for the budget; see `budget.rs`.
    released: Condvar,
    /// The per-thread caches, indexed by `cache::current_slot`.
    slots: [Slot; SLOTS],
    /// This pool's place in the registry of open pools with caches.
    registry: RegistryLinks,
}

/// A value alone on its cache lines: nothing else shares a line with it,
/// so that writes to it do not take lines from under readers of its
/// neighbours (false sharing). 128 bytes, as for the cache slots: some
/// CPUs fetch lines in pairs.
#[repr(align(128))]
struct OwnLines<T>(T);

impl<T> core::ops::Deref for OwnLines<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl Pool {
    /// A pool of 64 KiB bufs with no memory limit and no idle policy.
    pub fn new() -> Pool {
        Pool::builder().build()
    }

    /// Starts configuring a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// An allocator that leaves `reserve` bytes of zeroed headroom in front of
    /// every slice it hands out, for headers to be prepended in place with
    /// [`Slice::expand_front`](crate::Slice::expand_front).
    ///
    /// The allocator takes no memory until its first allocation, and keeps
    /// the pool open while it lives.
    pub fn allocator(&self, reserve: usize) -> Allocator {
        Allocator::new(self.clone(), reserve)
    }

    /// An allocator like [`allocator`](Pool::allocator)'s that stays on
    /// the calling thread, so that its slices dropped on this thread cost
    /// no atomic operation; see [`LocalAllocator`](crate::LocalAllocator).
    pub fn local_allocator(&self, reserve: usize) -> crate::LocalAllocator {
        crate::LocalAllocator::new(self.clone(), reserve)
    }

    /// A reader that fills slices from `src`, reading ahead into pool memory.
    ///
    /// The reader takes no memory until its first read, and keeps the pool
    /// open while it lives.
    pub fn reader<R: Read>(&self, src: R) -> Reader<R> {
        Reader::new(self.clone(), src)
    }

    /// The data size of a standard buf.
    pub fn buf_size(&self) -> usize {
        self.shared.buf_size
    }

    /// Whether the pool has a memory budget ([`PoolBuilder::max_bytes`]).
    pub(crate) fn has_budget(&self) -> bool {
        self.shared.max_bytes != usize::MAX
    }

    /// A snapshot of the pool's memory.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Frees every idle buf now, and returns how many data bytes that
    /// freed. Bufs in use are untouched.
    pub fn trim(&self) -> usize {
        self.shared.trim()
    }

    /// Closes the pool: frees its idle bufs at once, refuses every later
    /// allocation with [`AllocError::Closed`], wakes every request waiting
    /// for the budget with `Closed`, and frees bufs in use as they are
    /// released instead of keeping them. Slices alive at close stay valid.
    /// Closing twice is harmless.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether [`Pool::close`] has been called. A thread that closed the
    /// pool always sees `true`.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot of a flag that only ever goes from false to
        // true; it publishes no other data. The allocation fast path reads it
        // too, as a hint: the authoritative check is made under the lock
        // whenever a buf is taken.
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// The size of buf that a request for `need` data bytes gets, or
    /// `TooLarge` where no such buf can be made.
    pub(crate) fn size_class(&self, need: usize) -> Result<SizeClass, AllocError> {
        self.shared.size_class(need)
    }

    /// How long a request for a buf of `size` may usefully wait, from a
    /// caller that keeps `held` data bytes of other bufs alive meanwhile,
    /// which only it can give back: as `wait` says, unless those bytes and
    /// the new buf together exceed the whole budget. Then no release by
    /// anyone else could ever make room, and the request must not wait.
    pub(crate) fn useful_wait(&self, size: SizeClass, wait: Wait, held: usize) -> Wait {
        self.shared.useful_wait(size, wait, held)
    }

    /// Leases a standard-size buf from the current thread's cache, where it
    /// has one; see [`PoolShared::lease_standard_cached`].
    #[inline]
    pub(crate) fn lease_standard_cached(&self) -> Option<Lease> {
        self.shared.lease_standard_cached()
    }

    /// How many bufs have come back to the current thread since it last
    /// asked; see [`PoolShared::take_returns_here`].
    pub(crate) fn take_returns_here(&self) -> usize {
        self.shared.take_returns_here()
    }

    /// Puts the buf of `lease`, which slices still use, on the pool's list
    /// of orphans and lets go of it; see [`PoolShared::orphan`].
    pub(crate) fn orphan(&self, lease: Lease) {
        self.shared.orphan(lease);
    }

    /// Leases an orphan that `take` takes, among the `look` oldest, for a
    /// request of `need` bytes; see [`PoolShared::adopt_orphan`].
    pub(crate) fn adopt_orphan<T>(
        &self,
        look: usize,
        need: usize,
        take: impl FnMut(NonNull<Header>) -> Option<T>,
    ) -> Option<(Lease, T)> {
        self.shared.adopt_orphan(look, need, take)
    }

    /// Lists a probe and looks at the oldest; see
    /// [`PoolShared::exchange_probe`].
    pub(crate) fn exchange_probe(
        &self,
        probe: Option<(&Lease, bool)>,
        thread: usize,
        look: impl FnOnce(NonNull<Header>, usize, Seen) -> Look,
    ) {
        self.shared.exchange_probe(probe, thread, look);
    }

    /// Leases a buf of the given size to a new holder: an idle one if
    /// there is one, else a fresh one, waiting as `wait` allows for the
    /// budget.
    pub(crate) fn lease(&self, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        PoolShared::lease(&self.shared, size, wait)
    }

    /// [`Pool::lease`] for an async request, which waits for the budget
    /// through `cx`'s waker instead of blocking: `Pending` until a release
    /// can serve it. The caller keeps `ticket` across polls and cancels it
    /// with [`Pool::cancel_wait`] if it gives the request up.
    pub(crate) fn poll_lease(
        &self,
        size: SizeClass,
        cx: &mut core::task::Context<'_>,
        ticket: &mut Ticket,
    ) -> core::task::Poll<Result<Lease, AllocError>> {
        PoolShared::poll_lease(&self.shared, size, cx, ticket)
    }

    /// Gives up the async wait of `ticket`, if it has one.
    pub(crate) fn cancel_wait(&self, ticket: &mut Ticket) {
        self.shared.cancel_wait(ticket);
    }
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

impl Clone for Pool {
    fn clone(&self) -> Pool {
        // Relaxed: a plain count. The handle being cloned keeps the pool open,
        // and everything the count guards is under the lock.
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Pool { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Relaxed: the read-modify-write order alone makes exactly one
        // handle see the count reach zero; the shutdown it triggers
        // synchronises through the lock.
        if self.shared.handles.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.shared.close();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("buf_size", &self.shared.buf_size)
            .field("size_classes", &self.shared.classes)
            .field("max_bytes", &self.shared.max_bytes)
            .field("max_idle_bytes", &self.shared.max_idle_bytes)
            .field("idle_timeout_ns", &self.shared.idle_timeout)
            .field("thread_cache", &self.shared.cache_bufs)
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

impl PoolShared {
    /// A snapshot of the counters, with cached bufs counted as idle.
    fn stats(&self) -> PoolStats {
        let state = lock(&self.state);
        let mut stats = state.stats();
        if self.cache_bufs > 0 {
            // Every slot locked at once, in index order (no other path holds
            // two slot locks, so this cannot deadlock): read one at a time,
            // a buf could move from a slot already read to one not yet read,
            // by its thread taking it and another releasing it, without the
            // state's lock, and be counted twice.
            let slots: [SlotGuard<'_>; SLOTS] = core::array::from_fn(|i| self.slots[i].lock());
            let cached: usize = slots.iter().map(|slot| slot.len).sum();
            drop(slots);
            stats.bufs_cached = cached;
            stats.bufs_in_use -= cached;
            stats.bytes_in_use -= cached * self.buf_size;
            stats.bufs_idle += cached;
            stats.bytes_idle += cached * self.buf_size;
        }
        stats
    }

    /// Closes the pool, frees its idle bufs (cached ones too) and wakes
    /// every waiter.
    fn close(&self) {
        // First, so that no exiting thread flushes its cache into a closed
        // pool; the caches are emptied below instead.
        cache::unregister(self);
        let mut doomed = Doomed::new();
        let mut state = lock(&self.state);
        state.closed = true;
        // Relaxed: the flag is a hint for the allocation fast path, and
        // releases into a cache read it under a slot's lock, which
        // `doom_all_idle` takes after this store (see `budget.rs`);
        // `state.closed` under the lock decides.
        self.closed.store(true, Ordering::Relaxed);
        self.doom_all_idle(&mut state, &mut doomed);
        self.finish(state, doomed);
    }
}

#[cfg(feature = "diagnostics")]
impl Pool {
    /// Lists the pooled bufs in use, oldest first, and flags the pinned ones;
    /// only with the `diagnostics` feature. See [`PoolReport`].
    ///
    /// [`PoolReport`]: crate::PoolReport
    pub fn report(&self) -> crate::PoolReport {
        let now = self.shared.clock();
        lock(&self.shared.state).in_use.report(now)
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        // Every idle buf, cached or not, holds an `Arc` to this state, so
        // none can be left; and `close` unlinked the pool from the registry.
        let state = lock(&self.state);
        debug_assert!(state.lists_are_empty(), "internal: pool dropped with idle bufs");
        debug_assert!(
            self.slots.iter().all(|slot| slot.lock().len == 0),
            "internal: pool dropped with cached bufs"
        );
    }
}
