//! `PoolBuilder`: a pool's settings, and the arithmetic that turns them into
//! size classes and a split of the idle cap between the shared lists and the
//! per-thread caches, as pure functions.

use std::time::{Duration, Instant};

use crate::buf::MAX_POOLED_CAP;
use crate::cache::{self, SLOTS, Slot};
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex};

use super::state::State;
use super::{
    DEFAULT_BUF_SIZE, DEFAULT_MAX_POOLED_MULTIPLE, DEFAULT_THREAD_CACHE_BUFS, MAX_SIZE_CLASSES, OwnLines,
    Pool, PoolShared,
};

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

impl PoolBuilder {
    /// The data size of a standard buf, in bytes; 0 means the default,
    /// [`DEFAULT_BUF_SIZE`]. Larger requests get a larger size class.
    ///
    /// A size too large to lay out (near `isize::MAX`) is accepted, but then
    /// every request fails with [`AllocError::TooLarge`](crate::AllocError::TooLarge).
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
    /// release, or fails with [`AllocError::Exhausted`](crate::AllocError::Exhausted);
    /// a request larger than the whole budget fails with
    /// [`AllocError::TooLarge`](crate::AllocError::TooLarge). No budget by
    /// default.
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
        let max_bytes = self.max_bytes.unwrap_or(usize::MAX);
        let max_idle_bytes = self.max_idle_bytes.unwrap_or(usize::MAX);
        let wanted = self.thread_cache.unwrap_or(DEFAULT_THREAD_CACHE_BUFS);
        let IdleSplit { cache_bufs, shared_idle_cap } =
            split_idle_cap(max_idle_bytes, wanted, buf_size, SLOTS);
        let idle_timeout = self.idle_timeout.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let shared = PoolShared {
            buf_size,
            classes: class_count(buf_size, max_pooled),
            max_bytes,
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
            state: OwnLines(Mutex::new(State::new(max_bytes))),
            released: Condvar::new(),
            slots: core::array::from_fn(|_| Slot::default()),
            registry: Default::default(),
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

/// How many size classes a pool with standard bufs of `buf_size` bytes
/// keeps: `buf_size << k` for every `k` below it, up to the first class of
/// at least `max_pooled` bytes, at most [`MAX_SIZE_CLASSES`], and only
/// classes a buf can be laid out for (the standard one always counts).
fn class_count(buf_size: usize, max_pooled: usize) -> usize {
    let mut classes = 1;
    while classes < MAX_SIZE_CLASSES
        && (buf_size << (classes - 1)) < max_pooled
        && (buf_size << classes) <= MAX_POOLED_CAP
        && (buf_size << classes) >> classes == buf_size
    {
        classes += 1;
    }
    classes
}

/// How an idle cap is shared between the per-thread caches and the shared
/// lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdleSplit {
    /// Standard-size bufs each cache slot keeps; 0 turns caching off.
    cache_bufs: usize,
    /// Idle data bytes the shared lists keep.
    shared_idle_cap: usize,
}

/// Shares the idle cap `max_idle_bytes` (`usize::MAX` for none) between
/// `slots` caches of up to `wanted` bufs of `buf_size` bytes each and the
/// shared lists: the caches get at most half the cap, so that both together
/// stay within it without counting through a shared atomic.
fn split_idle_cap(max_idle_bytes: usize, wanted: usize, buf_size: usize, slots: usize) -> IdleSplit {
    if max_idle_bytes == usize::MAX {
        return IdleSplit { cache_bufs: wanted, shared_idle_cap: usize::MAX };
    }
    // Half the cap over every slot; the product is then at most half the
    // cap, so nothing overflows.
    let cache_bufs = wanted.min(max_idle_bytes / 2 / slots / buf_size);
    IdleSplit { cache_bufs, shared_idle_cap: max_idle_bytes - cache_bufs * slots * buf_size }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_run_up_to_the_largest_pooled_size() {
        assert_eq!(class_count(64, 64 * 16), 5, "64 B to 1 KiB");
        assert_eq!(class_count(64, 64 * 16 + 1), 6, "rounded up to a class");
        assert_eq!(class_count(64, 0), 1, "the standard size is always kept");
        assert_eq!(class_count(1, usize::MAX), MAX_SIZE_CLASSES, "at most 32 classes");
    }

    #[test]
    fn classes_stop_where_a_buf_cannot_be_laid_out() {
        assert_eq!(class_count(1 << 62, usize::MAX), 1, "2^63 is past isize::MAX");
        assert_eq!(class_count(usize::MAX, usize::MAX), 1);
        assert_eq!(class_count(1 << 60, usize::MAX), 3, "2^60, 2^61 and 2^62");
    }

    #[test]
    fn no_cap_leaves_the_caches_as_wanted() {
        let split = split_idle_cap(usize::MAX, 4, 4096, 64);
        assert_eq!(split, IdleSplit { cache_bufs: 4, shared_idle_cap: usize::MAX });
    }

    #[test]
    fn caches_get_at_most_half_the_cap() {
        // Half of 4 MiB over 64 slots is 8 bufs of 4 KiB each; 4 are wanted.
        let split = split_idle_cap(4 << 20, 4, 4096, 64);
        assert_eq!(split, IdleSplit { cache_bufs: 4, shared_idle_cap: (4 << 20) - 4 * 64 * 4096 });
        // Half of 1 MiB over 64 slots is 2 bufs.
        let split = split_idle_cap(1 << 20, 4, 4096, 64);
        assert_eq!(split, IdleSplit { cache_bufs: 2, shared_idle_cap: (1 << 20) - 2 * 64 * 4096 });
        assert!(split.cache_bufs * 64 * 4096 <= (1 << 20) / 2);
    }

    #[test]
    fn a_small_cap_turns_the_caches_off() {
        let split = split_idle_cap(127 * 4096, 4, 4096, 64);
        assert_eq!(split, IdleSplit { cache_bufs: 0, shared_idle_cap: 127 * 4096 });
        assert_eq!(split_idle_cap(0, 4, 4096, 64), IdleSplit { cache_bufs: 0, shared_idle_cap: 0 });
    }
}
