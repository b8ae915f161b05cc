//! The pool: where bufs come from and where they go back.
//!
//! `Pool` is a handle to a shared `PoolShared`. The shared state keeps one
//! intrusive free list of idle bufs per size class, the counters behind
//! [`PoolStats`] and the budget, all under one lock, and a condition
//! variable where requests wait for the budget. The lock is taken only when
//! a buf changes hands (an allocator or reader takes one, or the last holder
//! of a buf lets go), never per slice, and not even then when the current
//! thread's cache can serve: a standard-size buf released on a thread goes
//! to that thread's cache slot in the pool (see `cache.rs`), where the same
//! thread takes it again under the slot's own, uncontended lock.
//!
//! Every buf holds an `Arc` to the shared state, so a buf can always find its
//! way home, however long it outlives the handles. The handles are counted
//! apart from that `Arc`: when the last `Pool`, `Allocator` or `Reader` goes,
//! the pool closes itself, frees its idle bufs, and frees each buf still in
//! use when its last slice drops.

use core::fmt;
use core::ptr::NonNull;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::allocator::Allocator;
use crate::buf::{Header, Lease, MAX_POOLED_CAP, UNPOOLED};
use crate::cache::{self, Cached, RegistryLinks, SLOTS, Slot};
use crate::error::AllocError;
use crate::free_list::FreeList;
use crate::reader::Reader;
use crate::sync::{
    Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering, lock, wait_on,
    wait_timeout,
};

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

/// Configures a [`Pool`].
#[derive(Debug, Clone, Default)]
pub struct PoolBuilder {
    buf_size: usize,
    max_pooled_size: Option<usize>,
    max_bytes: Option<usize>,
    max_idle_bytes: Option<usize>,
    idle_timeout: Option<Duration>,
    thread_cache: Option<usize>,
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

/// The data size of a buf and the free list it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeClass {
    cap: usize,
    /// Index into `State::lists`, or [`UNPOOLED`].
    class: u8,
}

/// How long a request may wait for the budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: fail with `Exhausted`.
    Never,
    /// Until memory is released or the pool closes.
    Forever,
    /// At most this long, then fail with `Exhausted`.
    For(Duration),
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
    /// its slot's lock; see [`PoolShared::lock_cache_for_release`].
    waiting: AtomicUsize,
    /// No cached buf can be past the idle timeout before this time (in
    /// `idle_clock` nanoseconds); written under the lock by
    /// [`PoolShared::sweep_caches`], read by releases into a cache.
    next_cache_sweep: AtomicU64,
    state: Mutex<State>,
    /// Where requests wait for the budget; see [`PoolShared::take`].
    released: Condvar,
    /// The per-thread caches, indexed by `cache::current_slot`.
    slots: [Slot; SLOTS],
    /// This pool's place in the registry of open pools with caches.
    registry: RegistryLinks,
}

/// Everything behind the pool's lock.
struct State {
    closed: bool,
    /// One free list per size class: `lists[k]` holds idle bufs of
    /// `buf_size << k` bytes. Lists at `classes` and above stay empty.
    lists: [FreeList; MAX_SIZE_CLASSES],
    /// Requests waiting for the budget (on `PoolShared::released`, or
    /// about to), mirrored in `PoolShared::waiting`.
    waiters: usize,
    /// Every pooled buf in use, stamped with when it was taken, for
    /// `Pool::report`.
    #[cfg(feature = "diagnostics")]
    in_use: FreeList,
    /// The counters, except that a buf in a per-thread cache counts here as
    /// in use (it is off the shared lists) and `bufs_cached` is not kept:
    /// [`PoolShared::stats`] moves cached bufs over to idle.
    stats: PoolStats,
}

impl State {
    /// Data bytes held, in use and idle: what the budget limits.
    fn bytes_held(&self) -> usize {
        // Saturating: `bytes_in_use` may include a huge reservation in flight.
        self.stats.bytes_in_use.saturating_add(self.stats.bytes_idle)
    }

    /// Takes the oldest idle buf of `class` off its list into `doomed`, and
    /// counts it as trimmed. Returns whether there was one.
    ///
    /// # Safety
    /// `doomed` holds bufs owned by the caller, as the lists' bufs are owned
    /// by the state.
    unsafe fn trim_oldest(&mut self, class: usize, doomed: &mut FreeList) -> bool {
        // SAFETY: the state owns its lists' bufs and the caller holds its lock.
        let Some(buf) = (unsafe { self.lists[class].pop_oldest() }) else { return false };
        // SAFETY: `buf` is off the list and ours; nothing refers to it.
        let cap = unsafe { Header::cap(buf) };
        // SAFETY: `buf` is in no list; `doomed` is the caller's.
        unsafe { doomed.push_newest(buf, 0) };
        self.stats.bufs_idle -= 1;
        self.stats.bytes_idle -= cap;
        self.stats.bufs_trimmed += 1;
        true
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
        if held.saturating_add(size.cap) > self.shared.max_bytes { Wait::Never } else { wait }
    }

    /// Takes a buf of the given size for a new holder: an idle one if there
    /// is one, else a fresh one, waiting as `wait` allows for the budget.
    pub(crate) fn take(&self, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        PoolShared::take(&self.shared, size, wait)
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

impl PoolBuilder {
    /// The data size of a standard buf, in bytes; 0 means the default,
    /// [`DEFAULT_BUF_SIZE`]. Larger requests get a larger size class.
    ///
    /// A size too large to lay out (near `isize::MAX`) is accepted, but then
    /// every request fails with [`AllocError::TooLarge`].
    pub fn buf_size(self, bytes: usize) -> PoolBuilder {
        PoolBuilder { buf_size: bytes, ..self }
    }

    /// The largest buf kept for reuse, rounded up to a size class
    /// (`buf_size` × 2^k, at most 2^31); the standard size is always kept.
    /// Larger bufs are freed when released. The default is
    /// [`DEFAULT_MAX_POOLED_MULTIPLE`] × `buf_size`.
    pub fn max_pooled_size(self, bytes: usize) -> PoolBuilder {
        PoolBuilder { max_pooled_size: Some(bytes), ..self }
    }

    /// The budget: the most data bytes the pool holds at once, in bufs in
    /// use and idle bufs together. A request that would go over waits for a
    /// release, or fails with [`AllocError::Exhausted`]; a request larger
    /// than the whole budget fails with [`AllocError::TooLarge`]. No budget
    /// by default.
    pub fn max_bytes(self, bytes: usize) -> PoolBuilder {
        PoolBuilder { max_bytes: Some(bytes), ..self }
    }

    /// The most idle data bytes the pool keeps for reuse; a buf released
    /// beyond that is freed at once. No cap by default.
    pub fn max_idle_bytes(self, bytes: usize) -> PoolBuilder {
        PoolBuilder { max_idle_bytes: Some(bytes), ..self }
    }

    /// Frees bufs that have been idle longer than `d`. The check runs during
    /// later takes and releases of bufs, so no background thread is needed;
    /// a pool nobody uses keeps its idle bufs until [`Pool::trim`] or close.
    /// No timeout by default.
    pub fn idle_timeout(self, d: Duration) -> PoolBuilder {
        PoolBuilder { idle_timeout: Some(d), ..self }
    }

    /// Standard-size bufs each thread's cache keeps, at most; 0 turns the
    /// caches off, so that every take and release goes through the pool's
    /// shared lock. [`DEFAULT_THREAD_CACHE_BUFS`] by default.
    ///
    /// Up to 64 threads of the process have a cache at once (the first to
    /// use one); further threads go through the shared lock.
    ///
    /// With [`PoolBuilder::max_idle_bytes`], the caches get at most half of
    /// the idle cap, shared out over every possible thread's cache, and the
    /// shared lists the rest, so that a hard cap holds without the caches
    /// counting through a shared atomic: a cap too small for that turns
    /// the caches off.
    pub fn thread_cache(self, bufs: usize) -> PoolBuilder {
        PoolBuilder { thread_cache: Some(bufs), ..self }
    }

    /// Builds the pool.
    pub fn build(self) -> Pool {
        let buf_size = if self.buf_size == 0 { DEFAULT_BUF_SIZE } else { self.buf_size };
        let max_pooled = self.max_pooled_size.unwrap_or(buf_size.saturating_mul(DEFAULT_MAX_POOLED_MULTIPLE));
        let mut classes = 1;
        while classes < MAX_SIZE_CLASSES
            && (buf_size << (classes - 1)) < max_pooled
            && (buf_size << classes) <= MAX_POOLED_CAP
            && (buf_size << classes) >> classes == buf_size
        {
            classes += 1;
        }
        let max_idle_bytes = self.max_idle_bytes.unwrap_or(usize::MAX);
        let wanted = self.thread_cache.unwrap_or(DEFAULT_THREAD_CACHE_BUFS);
        let (cache_bufs, shared_idle_cap) = match max_idle_bytes {
            usize::MAX => (wanted, usize::MAX),
            // Half the cap over every slot; the product is then at most
            // half the cap, so nothing overflows.
            cap => {
                let bufs = wanted.min(cap / 2 / SLOTS / buf_size);
                (bufs, cap - bufs * SLOTS * buf_size)
            }
        };
        let idle_timeout = self.idle_timeout.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let shared = PoolShared {
            buf_size,
            classes,
            max_bytes: self.max_bytes.unwrap_or(usize::MAX),
            max_idle_bytes,
            shared_idle_cap,
            cache_bufs,
            idle_timeout,
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            waiting: AtomicUsize::new(0),
            // Nothing is cached yet, so nothing expires before a whole
            // timeout has passed.
            next_cache_sweep: AtomicU64::new(idle_timeout.unwrap_or(u64::MAX)),
            state: Mutex::new(State {
                closed: false,
                lists: [FreeList::EMPTY; MAX_SIZE_CLASSES],
                waiters: 0,
                #[cfg(feature = "diagnostics")]
                in_use: FreeList::EMPTY,
                stats: PoolStats::default(),
            }),
            released: Condvar::new(),
            slots: core::array::from_fn(|_| Slot::default()),
            registry: RegistryLinks::default(),
        };
        let shared = Arc::new(shared);
        if shared.cache_bufs > 0 {
            // SAFETY: the pool is alive and new, and `close`, which runs
            // before its last handle lets go of it, unlinks it.
            unsafe { cache::register(&shared) };
        }
        Pool { shared }
    }
}

impl PoolShared {
    /// The size of buf for a request of `need` bytes: the smallest class
    /// that holds it, or an unpooled multiple of `buf_size` above the
    /// largest class.
    fn size_class(&self, need: usize) -> Result<SizeClass, AllocError> {
        let multiple = need.div_ceil(self.buf_size).max(1);
        let pooled = multiple
            .checked_next_power_of_two()
            .map(|p| p.trailing_zeros() as usize)
            .filter(|&k| k < self.classes);
        let size = match pooled {
            // `k < classes`, and `build` checked that `buf_size << k` fits.
            Some(k) => SizeClass { cap: self.buf_size << k, class: k as u8 },
            None => SizeClass {
                cap: multiple.checked_mul(self.buf_size).ok_or(AllocError::TooLarge)?,
                class: UNPOOLED,
            },
        };
        if size.cap > MAX_POOLED_CAP || size.cap > self.max_bytes {
            return Err(AllocError::TooLarge);
        }
        Ok(size)
    }

    /// Nanoseconds since the pool was built.
    fn clock(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// [`PoolShared::clock`], for idle timestamps; 0 when the pool has no
    /// idle timeout, so that it never reads the clock.
    fn idle_clock(&self) -> u64 {
        match self.idle_timeout {
            Some(_) => self.clock(),
            None => 0,
        }
    }

    /// Takes a buf of `size` for a new holder: from the current thread's
    /// cache if it has one of that size, else from the shared lists (see
    /// [`PoolShared::take_shared`]).
    fn take(this: &Arc<PoolShared>, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        let cached = if size.class == 0 { this.pop_cached() } else { None };
        let lease = match cached {
            // SAFETY: `buf` came out of a cache, so it has no references and
            // is ours alone.
            Some(buf) => unsafe { Lease::adopt(buf) },
            None => PoolShared::take_shared(this, size, wait)?,
        };
        #[cfg(feature = "diagnostics")]
        {
            let since = this.clock();
            // SAFETY: the lease holds the buf, which is in no list; the
            // lock is held for the call.
            unsafe { lock(&this.state).in_use.push_newest(lease.buf(), since) };
        }
        Ok(lease)
    }

    /// Takes a buf of `size` under the lock: an idle one of its class if
    /// there is one, else a fresh one that keeps a clone of `this`, within
    /// the budget.
    ///
    /// # Waiting
    ///
    /// A fresh buf fits when the bytes held plus its size stay within
    /// `max_bytes`. If they do not but the bytes *in use* plus its size do,
    /// idle bufs of other classes are freed, oldest first, until it fits
    /// (its own class has none, or one would have been reused). Otherwise
    /// the request registers as a waiter (`State::waiters`, mirrored in
    /// `waiting`) and empties every per-thread cache into the shared lists,
    /// then checks again: a release that pushes into a cache checks
    /// `waiting` under its slot's lock, so it either comes before this
    /// request empties that slot (and its buf is found) or sees the waiter
    /// and releases to the shared lists instead. If that is still not
    /// enough, only a release can help, so the request waits on `released`.
    /// Every release to the shared lists (`take_back`) and `close` changes
    /// what the request checks under that same lock and then, if `waiters`
    /// is non-zero, notifies every waiter, which recheck: a waiter
    /// registered before the release's lock is taken is woken, so no wakeup
    /// is lost.
    fn take_shared(this: &Arc<PoolShared>, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        let SizeClass { cap, class } = size;
        let now = this.idle_clock();
        let mut doomed = FreeList::EMPTY;
        let mut deadline = None;
        let mut waited = false;
        let mut registered = false;
        let mut state = lock(&this.state);
        // SAFETY: `doomed` is ours and we hold the lock.
        unsafe { this.expire(&mut state, now, &mut doomed) };
        let taken = loop {
            if state.closed {
                break Err(AllocError::Closed);
            }
            // SAFETY: the state owns its lists' bufs and we hold the lock.
            if let Some(buf) = state.lists.get_mut(usize::from(class)).and_then(|l| unsafe { l.pop_newest() })
            {
                state.stats.bufs_idle -= 1;
                state.stats.bytes_idle -= cap;
                state.stats.bufs_in_use += 1;
                state.stats.bytes_in_use += cap;
                break Ok(Some(buf));
            }
            // SAFETY: `doomed` is ours and we hold the lock.
            if unsafe { this.make_room(&mut state, cap, &mut doomed) } {
                // Count the fresh buf now, so the budget holds while it is
                // made outside the lock; undone below if the system refuses.
                // Checked: without a budget, `cap` can be nearly `isize::MAX`
                // for a hostile request, and two of those in flight at once
                // would overflow the count. Nothing has changed yet when this
                // refuses. The high-water mark waits until the buf exists.
                let Some(bytes_in_use) = state.stats.bytes_in_use.checked_add(cap) else {
                    break Err(AllocError::TooLarge);
                };
                state.stats.bufs_in_use += 1;
                state.stats.bytes_in_use = bytes_in_use;
                state.stats.bufs_created += 1;
                break Ok(None);
            }
            if !registered {
                registered = true;
                this.count_waiters(&mut state, 1);
                // SAFETY: `doomed` is ours and we hold the lock.
                if unsafe { this.drain_caches(&mut state, true, &mut doomed) } > 0 {
                    continue;
                }
            }
            let timeout = match wait {
                Wait::Never => None,
                Wait::Forever => Some(None),
                Wait::For(d) => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now().checked_add(d));
                    match deadline {
                        None => Some(None),
                        Some(deadline) => deadline.checked_duration_since(Instant::now()).map(Some),
                    }
                }
            };
            let Some(timeout) = timeout else {
                state.stats.exhausted += 1;
                break Err(AllocError::Exhausted);
            };
            if !waited {
                waited = true;
                state.stats.waits += 1;
            }
            state = match timeout {
                None => wait_on(&this.released, state),
                Some(timeout) => wait_timeout(&this.released, state, timeout),
            };
        };
        if registered {
            this.count_waiters(&mut state, -1);
        }
        drop(state);
        // SAFETY: the bufs in `doomed` are off every list and ours alone.
        unsafe { doomed.destroy_all() };
        match taken? {
            // SAFETY: `buf` came off the free list, so it has no references
            // and is ours alone.
            Some(buf) => Ok(unsafe { Lease::adopt(buf) }),
            None => match Header::new_pooled(Arc::clone(this), cap, class) {
                Ok(buf) => {
                    // Raised only now, so that a buf the system refused never
                    // counts. The bytes held may include other fresh bufs
                    // still being made, as any snapshot taken while other
                    // threads take bufs may.
                    let mut state = lock(&this.state);
                    state.stats.high_water_bytes = state.stats.high_water_bytes.max(state.bytes_held());
                    drop(state);
                    // SAFETY: a fresh buf has no references and nobody else
                    // has seen it.
                    Ok(unsafe { Lease::adopt(buf) })
                }
                Err(e) => {
                    let mut state = lock(&this.state);
                    state.stats.bufs_in_use -= 1;
                    state.stats.bytes_in_use -= cap;
                    state.stats.bufs_created -= 1;
                    let waiters = state.waiters;
                    drop(state);
                    this.wake(waiters);
                    Err(e)
                }
            },
        }
    }

    /// Adds `delta` to the requests waiting for the budget, and to its
    /// mirror.
    fn count_waiters(&self, state: &mut State, delta: isize) {
        state.waiters = state.waiters.wrapping_add_signed(delta);
        // Relaxed: written under the state's lock, and read by a release
        // into a cache under a slot's lock. A waiter stores this before it
        // empties the slots, taking each slot's lock in turn, so each
        // release into a cache either holds its slot's lock before the
        // waiter does (and its buf is found there) or after, and then reads
        // a non-zero count through that lock's release and acquire.
        self.waiting.store(state.waiters, Ordering::Relaxed);
    }
    /// Whether a fresh buf of `cap` bytes fits the budget, after moving idle
    /// bufs into `doomed`, oldest first, if that makes it fit.
    ///
    /// # Safety
    /// `doomed` is the caller's list, and the caller holds the lock (`state`).
    unsafe fn make_room(&self, state: &mut State, cap: usize, doomed: &mut FreeList) -> bool {
        let fits = |state: &State| state.bytes_held().saturating_add(cap) <= self.max_bytes;
        if fits(state) {
            return true;
        }
        if state.stats.bytes_in_use.saturating_add(cap) > self.max_bytes {
            return false;
        }
        for class in 0..self.classes {
            // SAFETY: as for this function.
            while !fits(state) && unsafe { state.trim_oldest(class, doomed) } {}
        }
        debug_assert!(fits(state), "internal: freeing every idle buf makes room");
        true
    }

    /// Moves bufs idle longer than the idle timeout into `doomed`. Looks at
    /// the oldest buf of each class only, and at the caches only once one of
    /// their bufs can be due, so it costs a few comparisons when nothing is.
    ///
    /// # Safety
    /// As for [`PoolShared::make_room`].
    unsafe fn expire(&self, state: &mut State, now: u64, doomed: &mut FreeList) {
        let Some(timeout) = self.idle_timeout else { return };
        for class in 0..self.classes {
            // SAFETY: the state owns its lists' bufs and we hold the lock.
            while unsafe { state.lists[class].oldest_since() }
                .is_some_and(|since| now.saturating_sub(since) > timeout)
            {
                // SAFETY: as for this function.
                unsafe { state.trim_oldest(class, doomed) };
            }
        }
        // Relaxed: written only under the lock we hold.
        if self.cache_bufs > 0 && now > self.next_cache_sweep.load(Ordering::Relaxed) {
            // SAFETY: as for this function.
            unsafe { self.sweep_caches(state, now, timeout, doomed) };
        }
    }

    /// Moves the cached bufs idle longer than `timeout` into `doomed`, and
    /// sets `next_cache_sweep` to when the oldest one left can first be due.
    ///
    /// A buf cached after this sweep is stamped later than `now` (its
    /// release reads the clock under its slot's lock, after this sweep let
    /// go of it), so none can be due before `min(oldest left, now) +
    /// timeout`, and a release into a cache after that time goes to the
    /// shared lists instead, whose operations sweep again.
    ///
    /// # Safety
    /// As for [`PoolShared::make_room`].
    unsafe fn sweep_caches(&self, state: &mut State, now: u64, timeout: u64, doomed: &mut FreeList) {
        let mut oldest = now;
        for slot in &self.slots {
            let mut cached = lock(&slot.cached);
            // SAFETY: the slot owns its list's bufs and we hold its lock.
            while let Some(since) = unsafe { cached.list.oldest_since() } {
                if now.saturating_sub(since) <= timeout {
                    oldest = oldest.min(since);
                    break;
                }
                // SAFETY: as above.
                let Some(buf) = (unsafe { cached.list.pop_oldest() }) else { break };
                cached.len -= 1;
                // SAFETY: `buf` is off the slot and ours; `doomed` is the
                // caller's.
                unsafe { self.uncount_cached(state, buf, doomed) };
                state.stats.bufs_trimmed += 1;
            }
        }
        // Relaxed: read under this lock by `expire`, and by releases into a
        // cache as a hint: a stale, earlier value only sends a release to the
        // shared lists, where the sweep runs.
        self.next_cache_sweep.store(oldest.saturating_add(timeout), Ordering::Relaxed);
    }

    /// Counts a buf just taken out of a cache as no longer in use (the
    /// state counts cached bufs as in use) and moves it into `doomed`.
    ///
    /// # Safety
    /// `buf` is a live standard-size buf of this pool with no references,
    /// in no list, owned by the caller; `doomed` is the caller's.
    unsafe fn uncount_cached(&self, state: &mut State, buf: NonNull<Header>, doomed: &mut FreeList) {
        state.stats.bufs_in_use -= 1;
        state.stats.bytes_in_use -= self.buf_size;
        // SAFETY: as for this function.
        unsafe { doomed.push_newest(buf, 0) };
    }

    /// Wakes every request waiting for the budget, if there are any.
    fn wake(&self, waiters: usize) {
        if waiters > 0 {
            self.released.notify_all();
        }
    }

    /// The current thread's cache slot in this pool, where caching is on
    /// and the thread has one.
    #[inline]
    fn my_slot(&self) -> Option<&Slot> {
        if self.cache_bufs == 0 {
            return None;
        }
        cache::current_slot().map(|index| &self.slots[index])
    }

    /// Takes the newest buf from the current thread's cache, if there is
    /// one. The caller owns it.
    #[inline]
    fn pop_cached(&self) -> Option<NonNull<Header>> {
        let mut cached = lock(&self.my_slot()?.cached);
        // SAFETY: the slot owns its list's bufs and we hold its lock.
        let buf = unsafe { cached.list.pop_newest() }?;
        cached.len -= 1;
        Some(buf)
    }

    /// The first step in taking back a buf whose last reference was just
    /// dropped: keeps a standard-size buf in the current thread's cache,
    /// where it may go (see [`PoolShared::lock_cache_for_release`]).
    /// Returns `false`, leaving the caller with `buf`, where it may not; the
    /// caller then hands it to [`PoolShared::take_back`] through an `Arc`.
    ///
    /// Unlike `take_back`, this takes no `Arc` to the pool: cloning and
    /// dropping one would be two atomic read-modify-writes on a count every
    /// thread shares, for each buf.
    ///
    /// # Safety
    /// `this` is the pool of `buf`, which holds an `Arc` to it; `buf` has no
    /// references and is owned by the caller, who gives it up if this
    /// returns `true`. Then the caller must touch neither `buf` nor the pool
    /// again: once the slot's lock is released, another thread may take the
    /// buf, free it, and with it the pool. For the same reason no reference
    /// to either may be a function argument across this call, which is why
    /// `this` is a raw pointer.
    pub(crate) unsafe fn release_to_cache(
        this: NonNull<PoolShared>,
        buf: NonNull<Header>,
        class: u8,
    ) -> bool {
        // SAFETY: `buf` is ours and holds an `Arc` to the pool, so the pool
        // is alive until `buf` is published below. `pool` is a local, not a
        // function argument, and is not used after that.
        let pool = unsafe { this.as_ref() };
        // SAFETY: `take` registered every buf it handed out, and `buf` is
        // ours; we hold the lock for the call.
        #[cfg(feature = "diagnostics")]
        unsafe {
            lock(&pool.state).in_use.unlink(buf)
        };
        if class != 0 {
            return false;
        }
        let Some((mut cached, now)) = pool.lock_cache_for_release() else { return false };
        // SAFETY: the caller gives us `buf`, in no list; we hold the slot's
        // lock.
        unsafe { cached.list.push_newest(buf, now) };
        cached.len += 1;
        // Publishes `buf`. From here another thread may take it, free it,
        // and with it the pool: nothing below touches either. Unlocking is
        // the last access to the slot, as std's `Mutex` allows of a mutex
        // another thread frees as soon as it can lock it.
        drop(cached);
        true
    }

    /// The current thread's cache slot, locked, with the time to stamp a
    /// released buf with, if the buf may go there now: not if the thread
    /// has no slot, the slot is full, the pool is closed, a request is
    /// waiting for the budget (it has emptied the caches and must be woken
    /// by a release to the shared lists), or a cached buf may be past the
    /// idle timeout (the shared path sweeps the caches).
    ///
    /// `closed` and `waiting` are read under the slot's lock. `close` and a
    /// waiter set them under the state's lock and then take every slot's
    /// lock in turn to empty it, so a release either pushes before its slot
    /// is emptied (and the buf is found there) or reads the new value.
    #[inline]
    fn lock_cache_for_release(&self) -> Option<(MutexGuard<'_, Cached>, u64)> {
        let cached = lock(&self.my_slot()?.cached);
        // Relaxed (both): ordered by the slot's lock; see above.
        if cached.len >= self.cache_bufs
            || self.closed.load(Ordering::Relaxed)
            || self.waiting.load(Ordering::Relaxed) > 0
        {
            return None;
        }
        // Read under the slot's lock, for `sweep_caches`.
        let now = self.idle_clock();
        // Relaxed: see `sweep_caches`.
        if self.idle_timeout.is_some() && now > self.next_cache_sweep.load(Ordering::Relaxed) {
            return None;
        }
        Some((cached, now))
    }

    /// Empties every cache slot: into the shared lists where `keep` (bufs
    /// beyond the idle cap go to `doomed` and count as trimmed), else into
    /// `doomed`. Returns how many bufs the caches held.
    ///
    /// # Safety
    /// As for [`PoolShared::make_room`].
    unsafe fn drain_caches(&self, state: &mut State, keep: bool, doomed: &mut FreeList) -> usize {
        if self.cache_bufs == 0 {
            return 0;
        }
        let mut drained = 0;
        for slot in &self.slots {
            let (list, len) = lock(&slot.cached).take_all();
            drained += len;
            // SAFETY: the list's bufs are off the slot and ours; as for this
            // function otherwise.
            unsafe { self.adopt_cached(state, list, keep, doomed) };
        }
        drained
    }

    /// Takes bufs out of a cache into the shared lists (where `keep` and
    /// the idle cap allows; the rest count as trimmed) or into `doomed`.
    ///
    /// # Safety
    /// `list` holds standard-size bufs of this pool, owned by the caller,
    /// with no references; as for [`PoolShared::make_room`] otherwise.
    unsafe fn adopt_cached(&self, state: &mut State, mut list: FreeList, keep: bool, doomed: &mut FreeList) {
        // Oldest first, so that the shared list's newest end stays newest.
        // SAFETY: the caller owns `list` and its bufs.
        while let Some(buf) = unsafe { list.pop_oldest() } {
            // SAFETY: `buf` is ours: off the cache, in no list.
            let since = unsafe { Header::idle_links(buf) }.since;
            let cap = self.buf_size;
            if keep && !state.closed && state.stats.bytes_idle + cap <= self.shared_idle_cap {
                state.stats.bufs_in_use -= 1;
                state.stats.bytes_in_use -= cap;
                // SAFETY: `buf` is ours and in no list; we hold the lock.
                unsafe { state.lists[0].insert_by_age(buf, since) };
                state.stats.bufs_idle += 1;
                state.stats.bytes_idle += cap;
            } else {
                if keep {
                    state.stats.bufs_trimmed += 1;
                }
                // SAFETY: as above; `doomed` is the caller's.
                unsafe { self.uncount_cached(state, buf, doomed) };
            }
        }
    }

    /// Empties the cache slot `index` into the shared lists, for a thread
    /// that is exiting; bufs beyond the idle cap go to `doomed`.
    ///
    /// # Safety
    /// `doomed` is the caller's list.
    pub(crate) unsafe fn flush_slot(&self, index: usize, doomed: &mut FreeList) {
        let (list, len) = lock(&self.slots[index].cached).take_all();
        if len == 0 {
            return;
        }
        let mut state = lock(&self.state);
        // SAFETY: the list's bufs are off the slot and ours; we hold the
        // lock, and `doomed` is the caller's.
        unsafe { self.adopt_cached(&mut state, list, true, doomed) };
        let waiters = state.waiters;
        drop(state);
        self.wake(waiters);
    }

    /// This pool's place in the registry of open pools with caches.
    pub(crate) fn registry_links(&self) -> &RegistryLinks {
        &self.registry
    }

    /// A snapshot of the counters, with cached bufs counted as idle.
    fn stats(&self) -> PoolStats {
        let state = lock(&self.state);
        let mut stats = state.stats;
        if self.cache_bufs > 0 {
            // Every slot locked at once, in index order (no other path holds
            // two slot locks, so this cannot deadlock): read one at a time,
            // a buf could move from a slot already read to one not yet read,
            // by its thread taking it and another releasing it, without the
            // state's lock, and be counted twice.
            let slots: [MutexGuard<'_, Cached>; SLOTS] =
                core::array::from_fn(|i| lock(&self.slots[i].cached));
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

    /// Takes back a buf whose last reference was just dropped and that
    /// [`PoolShared::release_to_cache`] did not keep: keeps it idle in the
    /// shared lists or frees it, and wakes any request waiting for the
    /// budget.
    ///
    /// # Safety
    /// `buf` is a buf of this pool of class `class`, with no references,
    /// owned by the caller, who gives it up.
    pub(crate) unsafe fn take_back(&self, buf: NonNull<Header>, class: u8) {
        // SAFETY: the caller owns `buf`.
        let cap = unsafe { Header::cap(buf) };
        let now = self.idle_clock();
        let mut doomed = FreeList::EMPTY;
        let mut state = lock(&self.state);
        state.stats.bufs_in_use -= 1;
        state.stats.bytes_in_use -= cap;
        let pooled = usize::from(class) < self.classes && !state.closed;
        let keep = pooled && state.stats.bytes_idle + cap <= self.shared_idle_cap;
        if keep {
            // SAFETY: the caller gives us `buf`, in no list; we hold the lock.
            unsafe { state.lists[usize::from(class)].push_newest(buf, now) };
            state.stats.bufs_idle += 1;
            state.stats.bytes_idle += cap;
        } else if pooled {
            state.stats.bufs_trimmed += 1;
        }
        // SAFETY: `doomed` is ours and we hold the lock.
        unsafe { self.expire(&mut state, now, &mut doomed) };
        let waiters = state.waiters;
        drop(state);
        if !keep {
            // SAFETY: the caller gave us `buf`, and the pool did not keep it.
            unsafe { Header::destroy(buf) };
        }
        // SAFETY: the bufs in `doomed` are off every list and ours alone.
        unsafe { doomed.destroy_all() };
        self.wake(waiters);
    }

    /// Takes every idle buf, cached ones included, off the pool into
    /// `doomed`, and returns how many and their data bytes.
    ///
    /// # Safety
    /// As for [`PoolShared::make_room`].
    unsafe fn take_all_idle(&self, state: &mut State, doomed: &mut FreeList) -> (usize, usize) {
        // SAFETY: as for this function.
        let cached = unsafe { self.drain_caches(state, false, doomed) };
        let bufs = state.stats.bufs_idle + cached;
        let bytes = state.stats.bytes_idle + cached * self.buf_size;
        state.stats.bufs_idle = 0;
        state.stats.bytes_idle = 0;
        for class in 0..self.classes {
            // SAFETY: the state owns its lists' bufs and we hold the lock;
            // `doomed` is the caller's.
            while let Some(buf) = unsafe { state.lists[class].pop_newest() } {
                // SAFETY: as above.
                unsafe { doomed.push_newest(buf, 0) };
            }
        }
        (bufs, bytes)
    }

    /// Frees every idle buf; returns the data bytes freed.
    fn trim(&self) -> usize {
        let mut doomed = FreeList::EMPTY;
        let (bytes, waiters) = {
            let mut state = lock(&self.state);
            // SAFETY: `doomed` is ours and we hold the lock.
            let (bufs, bytes) = unsafe { self.take_all_idle(&mut state, &mut doomed) };
            state.stats.bufs_trimmed += bufs as u64;
            (bytes, state.waiters)
        };
        // SAFETY: the bufs in `doomed` are off the pool and ours alone.
        unsafe { doomed.destroy_all() };
        // A waiter could have freed these bufs itself, so it is still
        // waiting for a release; waking it only makes it check again. Done
        // anyway, so that every path that lowers the bytes held wakes.
        self.wake(waiters);
        bytes
    }

    /// Closes the pool, frees its idle bufs (cached ones too) and wakes
    /// every waiter.
    fn close(&self) {
        // First, so that no exiting thread flushes its cache into a closed
        // pool; the caches are emptied below instead.
        cache::unregister(self);
        let mut doomed = FreeList::EMPTY;
        let waiters = {
            let mut state = lock(&self.state);
            state.closed = true;
            // Relaxed: the flag is a hint for the allocation fast path, and
            // releases into a cache read it under a slot's lock, which
            // `take_all_idle` takes after this store (see `lock_cache_for_release`);
            // `state.closed` under the lock decides.
            self.closed.store(true, Ordering::Relaxed);
            // SAFETY: `doomed` is ours and we hold the lock.
            unsafe { self.take_all_idle(&mut state, &mut doomed) };
            state.waiters
        };
        // SAFETY: the bufs in `doomed` are off the pool and ours alone.
        unsafe { doomed.destroy_all() };
        self.wake(waiters);
    }
}

#[cfg(feature = "diagnostics")]
impl Pool {
    /// Lists the pooled bufs in use, oldest first, and flags the pinned ones;
    /// only with the `diagnostics` feature. See [`PoolReport`].
    ///
    /// [`PoolReport`]: crate::PoolReport
    pub fn report(&self) -> crate::PoolReport {
        let shared = &*self.shared;
        let now = shared.clock();
        let mut bufs = Vec::new();
        let state = lock(&shared.state);
        // SAFETY: the state owns its lists and we hold the lock, so every buf
        // in `in_use` stays live: `release_to_cache` unlinks it before the
        // buf is cached, kept or freed.
        unsafe {
            state.in_use.for_each(|buf, since| {
                bufs.push(crate::diagnostics::BufReport::of(
                    buf,
                    Duration::from_nanos(now.saturating_sub(since)),
                ))
            })
        };
        drop(state);
        bufs.reverse();
        crate::PoolReport { bufs }
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        // Every idle buf, cached or not, holds an `Arc` to this state, so
        // none can be left; and `close` unlinked the pool from the registry.
        let state = lock(&self.state);
        debug_assert!(state.lists.iter().all(FreeList::is_empty), "internal: pool dropped with idle bufs");
        debug_assert!(
            self.slots.iter().all(|slot| lock(&slot.cached).len == 0),
            "internal: pool dropped with cached bufs"
        );
    }
}
