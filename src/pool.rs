//! The pool: where bufs come from and where they go back.
//!
//! `Pool` is a handle to a shared `PoolShared`. The shared state keeps one
//! intrusive free list of idle bufs per size class, the counters behind
//! [`PoolStats`] and the budget, all under one lock, and a condition
//! variable where requests wait for the budget. The lock is taken only when
//! a buf changes hands (an allocator or reader takes one, or the last holder
//! of a buf lets go), never per slice.
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
use crate::error::AllocError;
use crate::free_list::FreeList;
use crate::reader::Reader;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, lock, wait_on, wait_timeout};

/// The data size of a buf when none is configured: 64 KiB.
pub const DEFAULT_BUF_SIZE: usize = 64 * 1024;

/// The largest pooled size class when none is configured, as a multiple of
/// `buf_size`: bufs of `buf_size` × 1, 2, 4, 8 and 16 go back to a free list
/// when released; larger ones are freed, so that one outsized frame does not
/// pin its memory in the pool for good.
pub const DEFAULT_MAX_POOLED_MULTIPLE: usize = 16;

/// The most size classes a pool can have: `buf_size` × 2^0 up to 2^31.
pub const MAX_SIZE_CLASSES: usize = 32;

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
    /// Bufs idle longer than this many nanoseconds are freed.
    idle_timeout: Option<u64>,
    /// The clock's zero for `IdleLinks::since`.
    epoch: Instant,
    /// A copy of `State::closed` that the allocation fast path can read
    /// without the lock; `State::closed` decides.
    closed: AtomicBool,
    /// Live `Pool`, `Allocator` and `Reader` values of this pool.
    handles: AtomicUsize,
    state: Mutex<State>,
    /// Where requests wait for the budget; see [`PoolShared::take`].
    released: Condvar,
}

/// Everything behind the pool's lock.
struct State {
    closed: bool,
    /// One free list per size class: `lists[k]` holds idle bufs of
    /// `buf_size << k` bytes. Lists at `classes` and above stay empty.
    lists: [FreeList; MAX_SIZE_CLASSES],
    /// Threads waiting on `PoolShared::released`.
    waiters: usize,
    /// Every pooled buf in use, stamped with when it was taken, for
    /// `Pool::report`.
    #[cfg(feature = "diagnostics")]
    in_use: FreeList,
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
        lock(&self.shared.state).stats
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
        let shared = PoolShared {
            buf_size,
            classes,
            max_bytes: self.max_bytes.unwrap_or(usize::MAX),
            max_idle_bytes: self.max_idle_bytes.unwrap_or(usize::MAX),
            idle_timeout: self.idle_timeout.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            state: Mutex::new(State {
                closed: false,
                lists: [FreeList::EMPTY; MAX_SIZE_CLASSES],
                waiters: 0,
                #[cfg(feature = "diagnostics")]
                in_use: FreeList::EMPTY,
                stats: PoolStats::default(),
            }),
            released: Condvar::new(),
        };
        Pool { shared: Arc::new(shared) }
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

    /// Nanoseconds since the pool was built, for idle timestamps; 0 when the
    /// pool has no idle timeout, so that it never reads the clock.
    fn idle_clock(&self) -> u64 {
        match self.idle_timeout {
            Some(_) => u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX),
            None => 0,
        }
    }

    /// Takes a buf of `size`: an idle one of its class if there is one, else
    /// a fresh one that keeps a clone of `this`, within the budget.
    ///
    /// # Waiting
    ///
    /// A fresh buf fits when the bytes held plus its size stay within
    /// `max_bytes`. If they do not but the bytes *in use* plus its size do,
    /// idle bufs of other classes are freed, oldest first, until it fits
    /// (its own class has none, or one would have been reused). Otherwise
    /// only a release can help, so the request waits on `released`, having
    /// counted itself in `waiters`, all under the lock. Every release
    /// (`take_back`) and `close` changes what the request checks under that
    /// same lock and then, if `waiters` is non-zero, notifies every waiter,
    /// which recheck: a waiter registered before the release's lock is
    /// taken is woken, so no wakeup is lost.
    fn take(this: &Arc<PoolShared>, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        let SizeClass { cap, class } = size;
        let now = this.idle_clock();
        let mut doomed = FreeList::EMPTY;
        let mut deadline = None;
        let mut waited = false;
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
                // refuses.
                let Some(bytes_in_use) = state.stats.bytes_in_use.checked_add(cap) else {
                    break Err(AllocError::TooLarge);
                };
                state.stats.bufs_in_use += 1;
                state.stats.bytes_in_use = bytes_in_use;
                state.stats.bufs_created += 1;
                state.stats.high_water_bytes = state.stats.high_water_bytes.max(state.bytes_held());
                break Ok(None);
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
            state.waiters += 1;
            state = match timeout {
                None => wait_on(&this.released, state),
                Some(timeout) => wait_timeout(&this.released, state, timeout),
            };
            state.waiters -= 1;
        };
        drop(state);
        // SAFETY: the bufs in `doomed` are off every list and ours alone.
        unsafe { doomed.destroy_all() };
        let lease = match taken? {
            // SAFETY: `buf` came off the free list, so it has no references
            // and is ours alone.
            Some(buf) => unsafe { Lease::adopt(buf) },
            None => match Header::new_pooled(Arc::clone(this), cap, class) {
                // SAFETY: a fresh buf has no references and nobody else has
                // seen it.
                Ok(buf) => unsafe { Lease::adopt(buf) },
                Err(e) => {
                    let mut state = lock(&this.state);
                    state.stats.bufs_in_use -= 1;
                    state.stats.bytes_in_use -= cap;
                    state.stats.bufs_created -= 1;
                    let waiters = state.waiters;
                    drop(state);
                    this.wake(waiters);
                    return Err(e);
                }
            },
        };
        #[cfg(feature = "diagnostics")]
        {
            let since = u64::try_from(this.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // SAFETY: the lease holds the buf, which is in no list; the
            // lock is held for the call.
            unsafe { lock(&this.state).in_use.push_newest(lease.buf(), since) };
        }
        Ok(lease)
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
    /// the oldest buf of each class only, so it costs a few comparisons when
    /// nothing is due.
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
    }

    /// Wakes every request waiting for the budget, if there are any.
    fn wake(&self, waiters: usize) {
        if waiters > 0 {
            self.released.notify_all();
        }
    }

    /// Takes back a buf whose last reference was just dropped: keeps it idle
    /// or frees it, and wakes any request waiting for the budget.
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
        // SAFETY: `take` registered every buf it handed out, and `buf` is
        // ours; we hold the lock.
        #[cfg(feature = "diagnostics")]
        unsafe {
            state.in_use.unlink(buf)
        };
        let pooled = usize::from(class) < self.classes && !state.closed;
        let keep = pooled && state.stats.bytes_idle + cap <= self.max_idle_bytes;
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

    /// Takes every idle buf off its list, for the caller to free, and
    /// returns them with their data bytes.
    fn take_all_idle(state: &mut State) -> ([FreeList; MAX_SIZE_CLASSES], usize) {
        let bytes = state.stats.bytes_idle;
        state.stats.bufs_idle = 0;
        state.stats.bytes_idle = 0;
        (core::mem::replace(&mut state.lists, [FreeList::EMPTY; MAX_SIZE_CLASSES]), bytes)
    }

    /// Frees every idle buf; returns the data bytes freed.
    fn trim(&self) -> usize {
        let (lists, bytes, waiters) = {
            let mut state = lock(&self.state);
            state.stats.bufs_trimmed += state.stats.bufs_idle as u64;
            let (lists, bytes) = PoolShared::take_all_idle(&mut state);
            (lists, bytes, state.waiters)
        };
        for list in lists {
            // SAFETY: the lists are off the pool: their bufs are ours alone.
            unsafe { list.destroy_all() };
        }
        // A waiter could have freed these bufs itself, so it is still
        // waiting for a release; waking it only makes it check again. Done
        // anyway, so that every path that lowers the bytes held wakes.
        self.wake(waiters);
        bytes
    }

    /// Closes the pool, frees its idle bufs and wakes every waiter.
    fn close(&self) {
        let (lists, waiters) = {
            let mut state = lock(&self.state);
            state.closed = true;
            // Relaxed: the flag is only a hint for the allocation fast path;
            // `state.closed` under the lock decides.
            self.closed.store(true, Ordering::Relaxed);
            (PoolShared::take_all_idle(&mut state).0, state.waiters)
        };
        for list in lists {
            // SAFETY: the lists are off the pool: their bufs are ours alone.
            unsafe { list.destroy_all() };
        }
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
        let now = u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut bufs = Vec::new();
        let state = lock(&shared.state);
        // SAFETY: the state owns its lists and we hold the lock, so every buf
        // in `in_use` stays live: `take_back` unlinks it before freeing it.
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
        // Every idle buf holds an `Arc` to this state, so none can be left.
        let state = lock(&self.state);
        debug_assert!(state.lists.iter().all(FreeList::is_empty), "internal: pool dropped with idle bufs");
    }
}
