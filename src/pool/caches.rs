//! The pool's side of the per-thread caches: leasing from and returning to
//! the current thread's slot, emptying slots into the shared lists, and the
//! idle timeout's sweep of them. The thread's side (which slot a thread
//! owns, the registry of pools, the flush at thread exit) is `crate::cache`.
//!
//! A standard-size buf whose last reference goes on a thread with a slot
//! goes into that slot, and the same thread's next lease of a standard-size
//! buf comes from it, each under the slot's lock alone: uncontended, since
//! one live thread owns each slot index. A lease from an empty slot skips
//! even that lock: the slot keeps its length where its own thread can read
//! it without the lock (`Slot::len`), and since only that thread adds bufs,
//! an empty slot read there is empty.
//!
//! Bufs move between a slot and the shared lists a slotful at a time, so
//! that a thread whose bufs other threads drop (a reader handing frames to
//! workers), or that drops other threads' bufs, takes the pool's lock once
//! for several bufs rather than for each: a return to a full slot first
//! spills the slot's older half into the shared lists
//! ([`PoolShared::spill`]), and a lease that finds the slot empty and takes
//! an idle buf from the shared lists moves the next newest into the slot
//! with it ([`PoolShared::fill_cache`]). Jemalloc's thread caches flush and
//! fill their bins in batches for the same reason. Each moved buf keeps the
//! time it went idle. The state counts a cached buf as in use (it is off
//! the shared lists, see `state.rs`), so the budget check is unchanged,
//! and whatever visits every slot reaches every cache:
//!
//! - **the budget**: a request that finds no room empties every slot before
//!   it fails or sleeps, and a release skips the caches while anyone waits;
//!   `budget.rs` argues why no waiter is missed;
//! - **the idle timeout**: [`PoolShared::sweep_caches_if_due`] frees expired
//!   cached bufs and sets `next_cache_sweep` to the earliest time a
//!   remaining one can expire. A buf returned to a cache later is stamped
//!   later, a slotful moved in from the shared lists brings the sweep
//!   forward to when its oldest can expire, and a release into a cache
//!   after that time goes to the shared lists instead, whose expiry sweeps
//!   again, so a thread that keeps hitting its cache still sees its old
//!   bufs expire;
//! - **the idle cap**: each slot keeps at most the share of the cap the
//!   builder gave it, and the shared lists the rest, with no shared counter
//!   on the cache path;
//! - **`trim` and `close`** empty every slot with the shared lists.
//!
//! With the `diagnostics` feature, bufs in use are registered under the
//! pool's lock, so the cache paths take it too.

use core::ptr::NonNull;

use crate::buf::{Header, Holder, Listed};
use crate::cache::{self, RegistryLinks, Slot, SlotGuard};
use crate::free_list::{Doomed, FreeList};
use crate::sync::{Ordering, lock};

use super::PoolShared;
use super::state::State;

impl PoolShared {
    /// The current thread's cache slot in this pool, where caching is on
    /// and the thread has one.
    #[inline]
    fn my_slot(&self) -> Option<&Slot> {
        if self.cache_bufs == 0 {
            return None;
        }
        cache::current_slot().map(|index| &self.slots[index])
    }

    /// How many standard-size bufs have come back to the current thread
    /// (their last reference dropped there) since it last asked; 0 where
    /// it has no cache.
    pub(crate) fn take_returns_here(&self) -> usize {
        self.my_slot().map_or(0, Slot::take_returns)
    }

    /// Leases the newest buf from the current thread's cache, if there is
    /// one. The caller owns it.
    #[inline(always)]
    pub(super) fn lease_cached(&self) -> Option<NonNull<Header>> {
        let slot = self.my_slot()?;
        if slot.len_hint() == 0 {
            // Empty: no lock to take (see `Slot::len`).
            return None;
        }
        let mut cached = slot.lock();
        // SAFETY: the slot owns its list's bufs and we hold its lock.
        let buf = unsafe { cached.list.pop_newest() }?;
        cached.len -= 1;
        Some(buf)
    }

    /// The first step in returning a buf whose last reference was just
    /// dropped (by `holder`: a slice's counts toward the thread's returns,
    /// see [`Slot::note_return`](crate::cache::Slot::note_return)): keeps a
    /// standard-size buf in the current thread's cache, where it may go
    /// (see [`PoolShared::lock_cache_for_return`]). Returns
    /// `false`, leaving the caller with `buf`, where it may not; the caller
    /// then hands it to [`PoolShared::return_shared`] through an `Arc`.
    ///
    /// Unlike `return_shared`, this takes no `Arc` to the pool: cloning and
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
    pub(crate) unsafe fn return_to_cache(
        this: NonNull<PoolShared>,
        buf: NonNull<Header>,
        class: u8,
        holder: Holder,
    ) -> bool {
        // SAFETY: `buf` is ours and holds an `Arc` to the pool, so the pool
        // is alive until `buf` is published below. `pool` is a local, not a
        // function argument, and is not used after that.
        let pool = unsafe { this.as_ref() };
        if crate::diagnostics::ENABLED {
            // SAFETY: `lease` added every buf it handed out, and `buf` is
            // ours; we hold the lock for the call.
            unsafe { lock(&pool.state).in_use.remove(buf) };
        }
        // SAFETY: `buf` is ours.
        if unsafe { Header::listed(buf) } != Listed::No {
            // Off its list first, under the pool's lock (see `orphans.rs`).
            // SAFETY: as above; the lock is held for the call.
            unsafe { lock(&pool.state).forget_listed(buf) };
        }
        if class != 0 {
            return false;
        }
        let slot = pool.my_slot();
        if let Some(slot) = slot
            && holder == Holder::Slice
        {
            slot.note_return();
        }
        let Some((mut cached, now)) = pool.lock_cache_for_return(slot) else { return false };
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

    /// The current thread's cache slot (`slot`), locked, with the time to
    /// stamp a returned buf with, if the buf may go there now: not if the
    /// thread has no slot, the pool is closed, a request is waiting for the
    /// budget (`closed` and `waiting` are read under the slot's lock, as
    /// `budget.rs` requires), or a cached buf may be past the idle timeout
    /// (the shared path sweeps the caches). A full slot first spills its
    /// older half into the shared lists (see [`PoolShared::spill`]).
    #[inline]
    fn lock_cache_for_return<'a>(&self, slot: Option<&'a Slot>) -> Option<(SlotGuard<'a>, u64)> {
        let slot = slot?;
        let mut spilled = false;
        loop {
            let mut cached = slot.lock();
            // Relaxed (both): ordered by the slot's lock; see `budget.rs`.
            if self.closed.load(Ordering::Relaxed) || self.waiting.load(Ordering::Relaxed) > 0 {
                return None;
            }
            // Read under the slot's lock, for the sweep.
            let now = self.idle_clock();
            // Relaxed: see `sweep_caches_if_due`.
            if self.idle_timeout.is_some() && now > self.next_cache_sweep.load(Ordering::Relaxed) {
                return None;
            }
            if cached.len < self.cache_bufs {
                return Some((cached, now));
            }
            if spilled {
                // Filled again meanwhile, which only this thread could do.
                return None;
            }
            let older = cached.take_oldest(self.cache_bufs.div_ceil(2));
            drop(cached);
            self.spill(older);
            spilled = true;
        }
    }

    /// Moves bufs taken out of a full cache slot into the shared lists, in
    /// one turn of the pool's lock: a thread that drops the slices of bufs
    /// another thread leases (a worker dropping a reader's frames) returns
    /// every one of them, and went to the lock for each once its slot was
    /// full.
    fn spill(&self, older: FreeList) {
        let mut doomed = Doomed::new();
        let mut state = lock(&self.state);
        self.unload_cached(&mut state, older, true, &mut doomed);
        self.finish(state, doomed);
    }

    /// Moves idle standard-size bufs from the shared lists into the current
    /// thread's cache slot, up to its size, where the slot is empty: the
    /// thread's next leases then come from the slot. For a thread whose
    /// lease just found its slot empty and took a buf from the shared
    /// lists: one whose bufs other threads drop (a reader handing frames to
    /// workers) never gets one back into its own slot, and went to the lock
    /// for every buf. Not while a request waits for the budget (it would
    /// find the bufs only by emptying every slot), nor after `close`. Each
    /// buf keeps its stamp, and the sweep of the slots is brought forward
    /// to when the oldest may expire.
    pub(super) fn fill_cache(&self, state: &mut State) {
        if state.closed || state.waiters > 0 {
            return;
        }
        let Some(slot) = self.my_slot() else { return };
        let mut cached = slot.lock();
        if cached.len > 0 {
            return;
        }
        let mut oldest = None;
        while cached.len < self.cache_bufs
            && let Some(buf) = state.take_idle(0, self.buf_size)
        {
            // SAFETY: `buf` came off the shared list, so it is ours; the
            // state's lock is held. It keeps the stamp it went idle with, or
            // the slot's oldest where that is older: the shared list is in
            // the order of its lock, and each return read the clock before
            // taking it, so a buf may be a little newer than the one before
            // it. It may then expire that much sooner, never later.
            let since = unsafe { Header::idle_links(buf) }.since.min(oldest.unwrap_or(u64::MAX));
            // SAFETY: as above, and we hold the slot's lock; `since` is no
            // newer than any of the slot's (it was empty).
            unsafe { cached.list.push_oldest(buf, since) };
            cached.len += 1;
            oldest = Some(since);
        }
        if let (Some(timeout), Some(since)) = (self.idle_timeout, oldest) {
            // Relaxed: written under the state's lock, held here, as in
            // `sweep_caches_if_due`.
            let due = since.saturating_add(timeout);
            if due < self.next_cache_sweep.load(Ordering::Relaxed) {
                self.next_cache_sweep.store(due, Ordering::Relaxed);
            }
        }
    }

    /// Empties every cache slot: into the shared lists where `keep` (bufs
    /// beyond the idle cap go to `doomed` and count as trimmed), else into
    /// `doomed`. Returns how many bufs the caches held.
    pub(super) fn drain_caches(&self, state: &mut State, keep: bool, doomed: &mut Doomed) -> usize {
        if self.cache_bufs == 0 {
            return 0;
        }
        let mut drained = 0;
        for slot in &self.slots {
            let (list, len) = slot.lock().empty_out();
            drained += len;
            self.unload_cached(state, list, keep, doomed);
        }
        drained
    }

    /// Moves bufs out of a cache into the shared lists (where `keep` and
    /// the idle cap allow; the rest count as trimmed) or into `doomed`.
    /// `list` holds standard-size bufs of this pool with no references,
    /// owned by the caller as a list taken out of a slot.
    fn unload_cached(&self, state: &mut State, mut list: FreeList, keep: bool, doomed: &mut Doomed) {
        // Oldest first, so that the shared list's newest end stays newest.
        // SAFETY: the caller owns `list` and its bufs.
        while let Some(buf) = unsafe { list.pop_oldest() } {
            // SAFETY: `buf` is ours: off the cache, in no list.
            let since = unsafe { Header::idle_links(buf) }.since;
            let cap = self.buf_size;
            if keep && !state.closed && state.bytes_idle() + cap <= self.shared_idle_cap {
                // SAFETY: `buf` is ours and in no list.
                unsafe { state.keep_idle_by_age(buf, cap, since) };
            } else {
                state.forget_in_use(cap, keep);
                // SAFETY: as above; we give it up.
                unsafe { doomed.push(buf) };
            }
        }
    }

    /// Empties the cache slot `index` into the shared lists, for a thread
    /// that is exiting; bufs beyond the idle cap go to `doomed`, for the
    /// caller to free once it has let go of the registry's lock.
    pub(crate) fn flush_slot(&self, index: usize, doomed: &mut Doomed) {
        let (list, len) = self.slots[index].lock().empty_out();
        if len == 0 {
            return;
        }
        let mut state = lock(&self.state);
        self.unload_cached(&mut state, list, true, doomed);
        self.finish(state, Doomed::new());
    }

    /// This pool's place in the registry of open pools with caches.
    pub(crate) fn registry_links(&self) -> &RegistryLinks {
        &self.registry
    }

    /// Where a cached buf may be due at `now`: moves the cached bufs idle
    /// longer than `timeout` into `doomed`, and sets `next_cache_sweep` to
    /// when the oldest one left can first be due.
    ///
    /// A buf cached after this sweep is stamped later than `now` (its
    /// return reads the clock under its slot's lock, after this sweep let
    /// go of it), so none can be due before `min(oldest left, now) +
    /// timeout`, and a return into a cache after that time goes to the
    /// shared lists instead, whose operations sweep again.
    pub(super) fn sweep_caches_if_due(&self, state: &mut State, now: u64, timeout: u64, doomed: &mut Doomed) {
        // Relaxed: written only under the state's lock, which we hold.
        if self.cache_bufs == 0 || now <= self.next_cache_sweep.load(Ordering::Relaxed) {
            return;
        }
        let mut oldest = now;
        for slot in &self.slots {
            let mut cached = slot.lock();
            // SAFETY: the slot owns its list's bufs and we hold its lock.
            while let Some(since) = unsafe { cached.list.oldest_since() } {
                if now.saturating_sub(since) <= timeout {
                    oldest = oldest.min(since);
                    break;
                }
                // SAFETY: as above.
                let Some(buf) = (unsafe { cached.list.pop_oldest() }) else { break };
                cached.len -= 1;
                state.forget_in_use(self.buf_size, true);
                // SAFETY: `buf` is off the slot and ours; we give it up.
                unsafe { doomed.push(buf) };
            }
        }
        // Relaxed: read under this lock by the next sweep, and by returns
        // into a cache as a hint: a stale, earlier value only sends a return
        // to the shared lists, where the sweep runs.
        self.next_cache_sweep.store(oldest.saturating_add(timeout), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::thread;
    use std::time::Duration;

    use crate::Pool;
    use crate::cache;
    use crate::sync::Ordering;

    /// Bufs that a take moves from the shared list into its thread's cache
    /// keep the stamps they went idle with, and the next sweep of the caches
    /// comes forward to when the oldest of them may expire: stamped when
    /// moved, or swept on the old schedule, they would outlive the idle
    /// timeout.
    #[test]
    fn a_filled_cache_keeps_the_stamps_of_its_bufs() {
        let timeout = Duration::from_secs(3600);
        let pool = Pool::builder().buf_size(64).idle_timeout(timeout).build();
        let user = pool.clone();
        // Three bufs cached on a thread, then flushed to the shared list as
        // it exits.
        thread::spawn(move || drop((0..3).map(|_| user.allocator(0).alloc(64)).collect::<Vec<_>>()))
            .join()
            .expect("the thread panicked");
        let shared = &pool.shared;
        let flushed = shared.clock();
        // As a sweep that found no cached buf would leave it.
        let later = flushed + 2 * timeout.as_nanos() as u64;
        shared.next_cache_sweep.store(later, Ordering::Relaxed);
        let taker = pool.clone();
        thread::spawn(move || {
            let taken = taker.allocator(0).alloc(64);
            let shared = &taker.shared;
            let slot = &shared.slots[cache::current_slot().expect("a slot for the thread")];
            let cached = slot.lock();
            assert_eq!(cached.len, 2, "the rest of the shared list moved over");
            // SAFETY: the slot's lock is held.
            let oldest = unsafe { cached.list.oldest_since() }.expect("a cached buf");
            drop(cached);
            assert!(oldest <= flushed, "stamped {oldest} when moved, after {flushed}");
            let due = oldest + timeout.as_nanos() as u64;
            assert_eq!(shared.next_cache_sweep.load(Ordering::Relaxed), due, "the sweep comes forward");
            drop(taken);
        })
        .join()
        .expect("the thread panicked");
    }
}
