//! The pool: where bufs come from and where they go back.
//!
//! `Pool` is a handle to a shared `PoolShared`. The shared state keeps one
//! intrusive free list of idle bufs per size and the counters behind
//! [`PoolStats`], all under one lock. The lock is taken only when a buf
//! changes hands (an allocator or reader takes one, or the last holder of a
//! buf lets go), never per slice.
//!
//! Every buf holds an `Arc` to the shared state, so a buf can always find its
//! way home, however long it outlives the handles. The handles are counted
//! apart from that `Arc`: when the last `Pool`, `Allocator` or `Reader` goes,
//! the pool closes itself, frees its idle bufs, and frees each buf still in
//! use when its last slice drops.

use core::fmt;
use core::ptr::NonNull;
use std::io::Read;

use crate::allocator::Allocator;
use crate::buf::{Header, Lease, MAX_POOLED_CAP};
use crate::error::AllocError;
use crate::reader::Reader;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, lock};

/// The data size of a buf when none is configured: 64 KiB.
pub const DEFAULT_BUF_SIZE: usize = 64 * 1024;

/// Bufs of up to this many times `buf_size` go back to a free list when
/// released; larger ones are freed, so that one outsized frame does not pin
/// its memory in the pool for good.
pub const POOLED_MULTIPLES: usize = 16;

/// A pool of ref-counted bufs.
///
/// `Pool` is a cheap handle: clones share one pool. It hands out memory
/// through [`Allocator`]s and [`Reader`]s, and takes each buf back the moment
/// its last slice, allocator or reader lets go of it.
///
/// # Sizes
///
/// A request for `n` bytes gets a buf whose data area is the smallest
/// multiple of `buf_size` that holds `n` (at least one `buf_size`), and the
/// data area is exactly that large: the bookkeeping lives in a separate
/// 64-byte header in front of it. Bufs up to [`POOLED_MULTIPLES`] ×
/// `buf_size` are kept for reuse, one free list per size; larger bufs are
/// freed when released.
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
}

/// The data size of a buf and the free list it belongs to, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeClass {
    cap: usize,
    class: Option<usize>,
}

/// The state every handle and every buf of one pool shares.
pub(crate) struct PoolShared {
    buf_size: usize,
    /// A copy of `State::closed` that the allocation fast path can read
    /// without the lock; `State::closed` decides.
    closed: AtomicBool,
    /// Live `Pool`, `Allocator` and `Reader` values of this pool.
    handles: AtomicUsize,
    state: Mutex<State>,
}

/// Everything behind the pool's lock.
struct State {
    closed: bool,
    /// One intrusive free list per multiple of `buf_size`: `idle[k]` holds
    /// bufs of `(k + 1) * buf_size` bytes, linked through their headers.
    idle: [Option<NonNull<Header>>; POOLED_MULTIPLES],
    stats: PoolStats,
}

// SAFETY: the raw pointers are idle bufs, owned by the state alone and
// touched only under the lock (or, once `close` has detached them, by the
// closing thread alone), so the state may move between threads.
unsafe impl Send for State {}

impl Pool {
    /// A pool of 64 KiB bufs with no memory limit.
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

    /// Closes the pool: frees its idle bufs at once, refuses every later
    /// allocation with [`AllocError::Closed`], and frees bufs in use as they
    /// are released instead of keeping them. Slices alive at close stay
    /// valid. Closing twice is harmless.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether [`Pool::close`] has been called.
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot of a flag that only ever goes from false to
        // true; it publishes no other data.
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// The size of buf that a request for `need` data bytes gets, or
    /// `TooLarge` where no such buf can be made.
    pub(crate) fn size_class(&self, need: usize) -> Result<SizeClass, AllocError> {
        self.shared.size_class(need)
    }

    /// Takes a buf of the given size for a new holder: an idle one if there
    /// is one, else a fresh one.
    pub(crate) fn take(&self, size: SizeClass) -> Result<Lease, AllocError> {
        PoolShared::take(&self.shared, size)
    }

    /// Whether the pool is closed, as a hint for the allocation fast path.
    /// An allocation on the thread that closed the pool always sees `true`.
    #[inline]
    pub(crate) fn is_closed_hint(&self) -> bool {
        // Relaxed: see `is_closed`. The authoritative check is made under the
        // lock whenever a buf is taken.
        self.shared.closed.load(Ordering::Relaxed)
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
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

impl PoolBuilder {
    /// The data size of a standard buf, in bytes; 0 means the default,
    /// [`DEFAULT_BUF_SIZE`]. Larger requests get a multiple of it.
    ///
    /// A size too large to lay out (near `isize::MAX`) is accepted, but then
    /// every request fails with [`AllocError::TooLarge`].
    pub fn buf_size(self, bytes: usize) -> PoolBuilder {
        PoolBuilder { buf_size: bytes }
    }

    /// Builds the pool.
    pub fn build(self) -> Pool {
        let buf_size = if self.buf_size == 0 { DEFAULT_BUF_SIZE } else { self.buf_size };
        let shared = PoolShared {
            buf_size,
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            state: Mutex::new(State {
                closed: false,
                idle: [None; POOLED_MULTIPLES],
                stats: PoolStats::default(),
            }),
        };
        Pool { shared: Arc::new(shared) }
    }
}

impl PoolShared {
    /// The size of buf for a request of `need` bytes.
    fn size_class(&self, need: usize) -> Result<SizeClass, AllocError> {
        let multiple = need.div_ceil(self.buf_size).max(1);
        let cap = multiple.checked_mul(self.buf_size).ok_or(AllocError::TooLarge)?;
        if cap > MAX_POOLED_CAP {
            return Err(AllocError::TooLarge);
        }
        let class = (multiple <= POOLED_MULTIPLES).then(|| multiple - 1);
        Ok(SizeClass { cap, class })
    }

    /// Takes a buf of `size`: an idle one if there is one, else a fresh one
    /// that keeps a clone of `this`.
    fn take(this: &Arc<PoolShared>, size: SizeClass) -> Result<Lease, AllocError> {
        let SizeClass { cap, class } = size;
        {
            let mut state = lock(&this.state);
            if state.closed {
                return Err(AllocError::Closed);
            }
            // Checked: `cap` can be nearly `isize::MAX` for a hostile request,
            // and two of those in flight at once would overflow the count.
            // Nothing has changed yet when this refuses.
            let Some(bytes_in_use) = state.stats.bytes_in_use.checked_add(cap) else {
                return Err(AllocError::TooLarge);
            };
            state.stats.bufs_in_use += 1;
            state.stats.bytes_in_use = bytes_in_use;
            if let Some(class) = class
                && let Some(buf) = state.idle[class]
            {
                // SAFETY: `buf` is idle and we hold the lock.
                state.idle[class] = unsafe { Header::next_idle(buf) };
                state.stats.bufs_idle -= 1;
                state.stats.bytes_idle -= cap;
                drop(state);
                // SAFETY: `buf` came off the free list, so it has no
                // references and is ours alone.
                return Ok(unsafe { Lease::adopt(buf) });
            }
            // Count the fresh buf now, so the counters never show less than
            // is in use; undone below if the system refuses.
            state.stats.bufs_created += 1;
        }
        match Header::new_pooled(Arc::clone(this), cap, class) {
            // SAFETY: a fresh buf has no references and nobody else has seen it.
            Ok(buf) => Ok(unsafe { Lease::adopt(buf) }),
            Err(e) => {
                let mut state = lock(&this.state);
                state.stats.bufs_in_use -= 1;
                state.stats.bytes_in_use -= cap;
                state.stats.bufs_created -= 1;
                Err(e)
            }
        }
    }

    /// Takes back a buf whose last reference was just dropped. Returns whether
    /// the pool kept it; if not, the caller frees it.
    ///
    /// # Safety
    /// `buf` is a buf of this pool with no references, owned by the caller.
    pub(crate) unsafe fn take_back(&self, buf: NonNull<Header>, class: Option<usize>) -> bool {
        // SAFETY: the caller owns `buf`.
        let cap = unsafe { Header::cap(buf) };
        let mut state = lock(&self.state);
        state.stats.bufs_in_use -= 1;
        state.stats.bytes_in_use -= cap;
        let Some(class) = class.filter(|_| !state.closed) else {
            return false;
        };
        // SAFETY: the caller owns `buf` and we hold the lock.
        unsafe { Header::set_next_idle(buf, state.idle[class]) };
        state.idle[class] = Some(buf);
        state.stats.bufs_idle += 1;
        state.stats.bytes_idle += cap;
        true
    }

    /// Closes the pool and frees its idle bufs.
    fn close(&self) {
        let idle = {
            let mut state = lock(&self.state);
            state.closed = true;
            // Relaxed: the flag is only a hint for the allocation fast path;
            // `state.closed` under the lock decides.
            self.closed.store(true, Ordering::Relaxed);
            state.stats.bufs_idle = 0;
            state.stats.bytes_idle = 0;
            core::mem::replace(&mut state.idle, [None; POOLED_MULTIPLES])
        };
        // Free outside the lock: nothing else can reach these bufs now.
        for mut next in idle {
            while let Some(buf) = next {
                // SAFETY: `buf` was idle and is now off every list: ours alone.
                next = unsafe { Header::next_idle(buf) };
                // SAFETY: as above; nothing refers to `buf` any more.
                unsafe { Header::destroy(buf) };
            }
        }
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        // Every idle buf holds an `Arc` to this state, so none can be left.
        let state = lock(&self.state);
        debug_assert!(state.idle.iter().all(Option::is_none), "internal: pool dropped with idle bufs");
    }
}
