//! `State`: everything behind the pool's lock, and every move of a buf
//! between the counters, each a method that keeps them and the lists in
//! step.
//!
//! # The counts
//!
//! A buf the pool made is counted in exactly one place at every moment the
//! lock is free:
//!
//! - **idle**: in one of `lists`, counted in `bufs_idle`/`bytes_idle`;
//! - **in use**: held by a lease or slices, *or* sitting in a per-thread
//!   cache (off the shared lists, so the state cannot tell the two apart;
//!   `PoolShared::stats` moves cached bufs over to idle when it reports),
//!   counted in `bufs_in_use`/`bytes_in_use`; a fresh buf is counted here
//!   from the moment its memory is reserved, before it is made outside the
//!   lock, so the budget holds throughout;
//! - **gone**: freed, having been counted once in `bufs_created`, and in
//!   `bufs_trimmed` where the idle policy freed it.
//!
//! `bytes_in_use + bytes_idle <= max_bytes` whenever the lock is free; each
//! method below checks what it can of this in debug builds.

use core::ptr::NonNull;
use core::task::Waker;

use crate::buf::Header;
use crate::diagnostics::InUse;
use crate::free_list::{Doomed, FreeList};

use super::orphans::{Orphans, Probes};
use super::{MAX_SIZE_CLASSES, PoolStats};

/// Everything behind the pool's lock.
pub(super) struct State {
    pub(super) closed: bool,
    /// One free list per size class: `lists[k]` holds idle bufs of
    /// `buf_size << k` bytes. Lists at the pool's class count and above stay
    /// empty.
    lists: [FreeList; MAX_SIZE_CLASSES],
    /// Requests waiting for the budget (on `PoolShared::released`, or
    /// about to, or in `wakers`), mirrored in `PoolShared::waiting`; see
    /// `budget.rs`.
    pub(super) waiters: usize,
    /// Async requests waiting for the budget, each with the id of its
    /// ticket and the waker to call; see `budget.rs`.
    pub(super) wakers: Vec<(u64, Waker)>,
    /// The id the next async waiter's ticket gets.
    pub(super) next_ticket: u64,
    /// Every pooled buf in use, for `Pool::report`; empty without the
    /// `diagnostics` feature.
    pub(super) in_use: InUse,
    /// Bufs in use that their allocator let go while slices still used
    /// them; see `orphans.rs`. Counted as in use.
    pub(super) orphans: Orphans,
    /// The probes; see `orphans.rs`. Counted as in use.
    pub(super) probes: Probes,
    /// The counters; see the module docs for what a cached buf counts as.
    stats: PoolStats,
    /// Data bytes the pool may hold, for the checks.
    max_bytes: usize,
}

impl State {
    pub(super) fn new(max_bytes: usize) -> State {
        State {
            closed: false,
            lists: [FreeList::EMPTY; MAX_SIZE_CLASSES],
            waiters: 0,
            wakers: Vec::new(),
            next_ticket: 0,
            in_use: InUse::EMPTY,
            orphans: Orphans::EMPTY,
            probes: Probes::EMPTY,
            stats: PoolStats::default(),
            max_bytes,
        }
    }

    /// The counters as kept: cached bufs count as in use.
    pub(super) fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Data bytes held, in use and idle: what the budget limits.
    pub(super) fn bytes_held(&self) -> usize {
        // Saturating: `bytes_in_use` may include a huge reservation in flight.
        self.stats.bytes_in_use.saturating_add(self.stats.bytes_idle)
    }

    /// Data bytes in use (cached bufs included).
    pub(super) fn bytes_in_use(&self) -> usize {
        self.stats.bytes_in_use
    }

    /// Data bytes idle in the shared lists.
    pub(super) fn bytes_idle(&self) -> usize {
        self.stats.bytes_idle
    }

    /// The oldest idle buf's timestamp in `class`, if it has one.
    pub(super) fn oldest_idle_since(&self, class: usize) -> Option<u64> {
        // SAFETY: the state owns its lists' bufs, and `&self` means its lock
        // is held.
        unsafe { self.lists[class].oldest_since() }
    }

    /// Idle to in use: takes the newest idle buf of `class`, of `cap` bytes,
    /// for a new holder. The caller owns it.
    pub(super) fn take_idle(&mut self, class: usize, cap: usize) -> Option<NonNull<Header>> {
        // SAFETY: the state owns its lists' bufs, and `&mut self` means its
        // lock is held.
        let buf = unsafe { self.lists.get_mut(class)?.pop_newest() }?;
        self.stats.bufs_idle -= 1;
        self.stats.bytes_idle -= cap;
        self.stats.bufs_in_use += 1;
        self.stats.bytes_in_use += cap;
        self.check();
        Some(buf)
    }

    /// Made: counts a fresh buf of `cap` bytes in use before it is made,
    /// so that the budget holds while it is made outside the lock. Returns
    /// `false`, changing nothing, where the count would overflow: without a
    /// budget `cap` can be nearly `isize::MAX` for a hostile request, and
    /// two of those in flight at once would overflow it.
    pub(super) fn reserve_fresh(&mut self, cap: usize) -> bool {
        let Some(bytes_in_use) = self.stats.bytes_in_use.checked_add(cap) else { return false };
        self.stats.bufs_in_use += 1;
        self.stats.bytes_in_use = bytes_in_use;
        self.stats.bufs_created += 1;
        self.check();
        true
    }

    /// Undoes [`State::reserve_fresh`] for a buf the system refused.
    pub(super) fn unreserve_fresh(&mut self, cap: usize) {
        self.stats.bufs_in_use -= 1;
        self.stats.bytes_in_use -= cap;
        self.stats.bufs_created -= 1;
        self.check();
    }

    /// Raises the high-water mark to the bytes held now, once a fresh buf
    /// exists.
    pub(super) fn note_high_water(&mut self) {
        self.stats.high_water_bytes = self.stats.high_water_bytes.max(self.bytes_held());
    }

    /// In use to idle: keeps `buf`, of class `class` and `cap` bytes, at the
    /// newest end of its list, stamped `since`.
    ///
    /// # Safety
    /// `buf` is a live pooled buf of this pool, with no references, in no
    /// list, owned by the caller, who gives it up.
    pub(super) unsafe fn keep_idle(&mut self, buf: NonNull<Header>, class: usize, cap: usize, since: u64) {
        self.stats.bufs_in_use -= 1;
        self.stats.bytes_in_use -= cap;
        // SAFETY: the caller gives us `buf`, in no list; `&mut self` means
        // the lock is held.
        unsafe { self.lists[class].push_newest(buf, since) };
        self.stats.bufs_idle += 1;
        self.stats.bytes_idle += cap;
        self.check();
    }

    /// A cached buf back to idle: a standard-size buf of `cap` bytes out of
    /// a per-thread cache (counted in use) into the standard list, in its
    /// place by age.
    ///
    /// # Safety
    /// As for [`State::keep_idle`], for a buf of class 0.
    pub(super) unsafe fn keep_idle_by_age(&mut self, buf: NonNull<Header>, cap: usize, since: u64) {
        self.stats.bufs_in_use -= 1;
        self.stats.bytes_in_use -= cap;
        // SAFETY: as for `keep_idle`.
        unsafe { self.lists[0].insert_by_age(buf, since) };
        self.stats.bufs_idle += 1;
        self.stats.bytes_idle += cap;
        self.check();
    }

    /// In use to gone: uncounts a buf of `cap` bytes that is being freed
    /// rather than kept (released beyond the idle cap, unpooled, after
    /// close, or out of a cache); `trimmed` where the idle policy freed it.
    pub(super) fn forget_in_use(&mut self, cap: usize, trimmed: bool) {
        self.stats.bufs_in_use -= 1;
        self.stats.bytes_in_use -= cap;
        self.stats.bufs_trimmed += u64::from(trimmed);
        self.check();
    }

    /// Idle to gone: moves the oldest idle buf of `class` into `doomed` and
    /// counts it as trimmed. Returns whether there was one.
    pub(super) fn trim_oldest(&mut self, class: usize, doomed: &mut Doomed) -> bool {
        // SAFETY: the state owns its lists' bufs, and `&mut self` means its
        // lock is held.
        let Some(buf) = (unsafe { self.lists[class].pop_oldest() }) else { return false };
        // SAFETY: `buf` is off the list and ours; nothing refers to it.
        let cap = unsafe { Header::cap(buf) };
        // SAFETY: as above; we give it up.
        unsafe { doomed.push(buf) };
        self.stats.bufs_idle -= 1;
        self.stats.bytes_idle -= cap;
        self.stats.bufs_trimmed += 1;
        self.check();
        true
    }

    /// Idle to gone, all of it: moves every idle buf of the shared lists
    /// into `doomed`, uncounted (the caller says whether they count as
    /// trimmed). Returns how many and their data bytes.
    pub(super) fn doom_all_idle(&mut self, doomed: &mut Doomed) -> (usize, usize) {
        let taken = (self.stats.bufs_idle, self.stats.bytes_idle);
        for list in &mut self.lists {
            doomed.push_all(core::mem::take(list));
        }
        self.stats.bufs_idle = 0;
        self.stats.bytes_idle = 0;
        self.check();
        taken
    }

    /// Counts `bufs` freed by the idle policy outside the methods above.
    pub(super) fn count_trimmed(&mut self, bufs: usize) {
        self.stats.bufs_trimmed += bufs as u64;
    }

    /// Counts a request that waited for the budget.
    pub(super) fn count_wait(&mut self) {
        self.stats.waits += 1;
    }

    /// Counts a request refused with `Exhausted`.
    pub(super) fn count_exhausted(&mut self) {
        self.stats.exhausted += 1;
    }

    /// Whether every shared list is empty.
    pub(super) fn lists_are_empty(&self) -> bool {
        self.lists.iter().all(FreeList::is_empty)
    }

    /// The invariants a method can check cheaply.
    fn check(&self) {
        debug_assert!(
            self.bytes_held() <= self.max_bytes,
            "internal: {} bytes held over the budget of {}",
            self.bytes_held(),
            self.max_bytes
        );
        debug_assert!(
            (self.stats.bufs_idle == 0) == (self.stats.bytes_idle == 0),
            "internal: {} idle bufs of {} bytes",
            self.stats.bufs_idle,
            self.stats.bytes_idle
        );
        debug_assert!(
            (self.stats.bufs_in_use == 0) == (self.stats.bytes_in_use == 0),
            "internal: {} bufs in use of {} bytes",
            self.stats.bufs_in_use,
            self.stats.bytes_in_use
        );
    }
}
