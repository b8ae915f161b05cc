//! Leasing bufs and returning them: size classes, the budget, and the
//! waiting protocol.
//!
//! # Leasing a buf
//!
//! [`PoolShared::lease`] serves a request for a buf of one size class: from
//! the current thread's cache for the standard size (see `caches.rs`), else
//! under the lock, in this order: refuse if closed; reuse the newest idle
//! buf of the class; make a fresh buf if the bytes held plus its size fit
//! the budget, first freeing idle bufs of other classes, oldest first, where
//! the bytes *in use* plus its size fit; otherwise fail (`Wait::Never`), or
//! wait. A request larger than the whole budget never gets this far:
//! [`PoolShared::size_class`] answers `TooLarge`. A request waits only where
//! someone else's release can help: [`PoolShared::useful_wait`] turns a wait
//! into an immediate refusal where what the caller itself keeps plus the new
//! buf exceed the whole budget.
//!
//! # The waiting protocol
//!
//! A waiter's condition depends only on state behind the lock (`closed`, its
//! class's free list and `bytes_in_use`), so it is the textbook condition
//! variable pattern:
//!
//! 1. the waiter checks under the lock, and if it must wait, increments
//!    `State::waiters` and calls `Condvar::wait`, which releases the lock
//!    atomically; on waking it checks again;
//! 2. everything that changes that state for the better (a release to the
//!    shared lists, a fresh buf the system refused, a flush of a cache,
//!    `trim`, `close`) does so under the lock, reads `waiters`, and ends
//!    through [`PoolShared::finish`]: release the lock, free what it took
//!    off the pool, then notify every waiter if `waiters` was non-zero.
//!
//! A waiter registered before the releaser took the lock is notified; one
//! that registers after it sees the release's effect in its check. So no
//! wakeup is lost, and a release with nobody waiting pays one field read.
//! Bufs are freed before the notification, so that a woken waiter's fresh
//! buf does not coexist with the memory it replaces.
//!
//! # Async waiters
//!
//! An async request (`Allocator::poll_ready`, the `AsyncReader`) that must
//! wait does not sleep on `released`: [`PoolShared::poll_lease`] leaves its
//! waker in `State::wakers` under the id of its [`Ticket`], counted in
//! `State::waiters` like a blocked waiter, and returns `Pending`. `finish`
//! takes every waker out of the list under the lock (uncounting them), and
//! wakes them after it has released the lock and freed what it took, exactly
//! where it notifies `released`; a woken request polls again, and registers
//! again if it still finds no room. So the argument above holds for both
//! kinds: an async waiter registered before a release's lock is woken by it,
//! one that registers after sees its effect. Wakers are called and dropped
//! outside the lock, since either may run a task's code, which may return a
//! buf to this pool. A request given up (its future dropped) takes its entry
//! off the list ([`PoolShared::cancel_wait`]); a wakeup it was sent and did
//! not act on is lost to nobody else, because every release wakes every
//! waiter, as `notify_all` does.
//!
//! # Waiters and the per-thread caches
//!
//! A release into a cache takes no lock but its slot's, so it cannot read
//! `State::waiters`. Instead:
//!
//! - a request that finds no room registers as a waiter, and
//!   [`PoolShared::count_waiters`] mirrors the count into the atomic
//!   `PoolShared::waiting`, under the state's lock; then it empties every
//!   slot into the shared lists, taking each slot's lock in turn, and checks
//!   again before it fails or sleeps;
//! - a release into a cache reads `waiting` (and `closed`) under its slot's
//!   lock, and goes to the shared lists instead, which wakes the waiter,
//!   where either is set.
//!
//! So each release into a cache either holds its slot's lock before the
//! waiter does, and its buf is found when the waiter empties that slot, or
//! after, and then reads a non-zero count through that lock's release and
//! acquire. `close` relies on the same ordering for `closed`. The loom
//! models `budget.rs` (a lost wakeup, with the notification removed) and
//! `cache.rs` (a request reaching a buf in another live thread's cache,
//! with the `waiting` check removed) in `loom-tests` check both halves.

use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::buf::{Header, Lease, MAX_POOLED_CAP, UNPOOLED};
use crate::error::AllocError;
use crate::free_list::Doomed;
use crate::sync::{Arc, MutexGuard, Ordering, lock, wait_on, wait_timeout};

use super::PoolShared;
use super::state::State;

/// The data size of a buf and the free list it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeClass {
    cap: usize,
    /// Index into the state's lists, or [`UNPOOLED`].
    class: u8,
}

/// An async request's place among the pool's waiters: empty until it first
/// has to wait. Its holder cancels it when it gives the request up.
#[derive(Debug, Default)]
pub(crate) struct Ticket {
    id: Option<u64>,
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

impl PoolShared {
    /// The size of buf for a request of `need` bytes: the smallest class
    /// that holds it, or an unpooled multiple of `buf_size` above the
    /// largest class.
    pub(super) fn size_class(&self, need: usize) -> Result<SizeClass, AllocError> {
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

    /// How long a request for a buf of `size` may usefully wait, from a
    /// caller that keeps `held` data bytes of other bufs alive meanwhile,
    /// which only it can give back: as `wait` says, unless those bytes and
    /// the new buf together exceed the whole budget. Then no release by
    /// anyone else could ever make room, and the request must not wait.
    pub(super) fn useful_wait(&self, size: SizeClass, wait: Wait, held: usize) -> Wait {
        if held.saturating_add(size.cap) > self.max_bytes { Wait::Never } else { wait }
    }

    /// Leases a buf of `size` to a new holder: from the current thread's
    /// cache if it has one of that size, else from the shared lists (see
    /// [`PoolShared::lease_shared`]).
    pub(super) fn lease(this: &Arc<PoolShared>, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        if size.class == 0
            && let Some(lease) = this.lease_standard_cached()
        {
            return Ok(lease);
        }
        let lease = PoolShared::lease_shared(this, size, wait)?;
        Ok(this.note_in_use(lease))
    }

    /// Leases a standard-size buf from the current thread's cache, where it
    /// has one: no lock but the slot's, no budget check (a cached buf
    /// counts as in use already) and no wait.
    #[inline]
    pub(super) fn lease_standard_cached(&self) -> Option<Lease> {
        let buf = self.lease_cached()?;
        // SAFETY: `buf` came out of a cache, so it has no references and is
        // ours alone.
        let lease = unsafe { Lease::adopt(buf) };
        Some(self.note_in_use(lease))
    }

    /// Adds a new lease's buf to the list of bufs in use, for
    /// `Pool::report`; nothing without the `diagnostics` feature.
    fn note_in_use(&self, lease: Lease) -> Lease {
        if crate::diagnostics::ENABLED {
            let since = self.clock();
            // SAFETY: the lease holds the buf, which is in no list; the lock
            // is held for the call.
            unsafe { lock(&self.state).in_use.add(lease.buf(), since) };
        }
        lease
    }

    /// One look under the lock at what a request for `size` can have now:
    /// the pool's refusal, an idle buf, or room for a fresh one (counted
    /// already); `None` where it must wait or give up. Bufs trimmed to make
    /// room go to `doomed`.
    #[inline]
    fn try_lease_locked(
        &self,
        state: &mut State,
        size: SizeClass,
        doomed: &mut Doomed,
    ) -> Option<Result<Option<NonNull<Header>>, AllocError>> {
        let SizeClass { cap, class } = size;
        if state.closed {
            return Some(Err(AllocError::Closed));
        }
        if let Some(buf) = state.take_idle(usize::from(class), cap) {
            return Some(Ok(Some(buf)));
        }
        if self.make_room(state, cap, doomed) {
            // Counted now, so that the budget holds while the buf is made
            // outside the lock; undone in `adopt_taken` if the system
            // refuses. The high-water mark waits until the buf exists.
            return Some(if state.reserve_fresh(cap) { Ok(None) } else { Err(AllocError::TooLarge) });
        }
        None
    }

    /// Makes what [`PoolShared::try_lease_locked`] granted into a lease,
    /// outside the lock: adopts an idle buf, or makes the fresh one.
    #[inline]
    fn adopt_taken(
        this: &Arc<PoolShared>,
        size: SizeClass,
        taken: Option<NonNull<Header>>,
    ) -> Result<Lease, AllocError> {
        let SizeClass { cap, class } = size;
        match taken {
            // SAFETY: `buf` came off the free list, so it has no references
            // and is ours alone.
            Some(buf) => Ok(unsafe { Lease::adopt(buf) }),
            None => match Header::new_pooled(Arc::clone(this), cap, class) {
                Ok(buf) => {
                    // Raised only now, so that a buf the system refused never
                    // counts. The bytes held may include other fresh bufs
                    // still being made, as any snapshot taken while other
                    // threads take bufs may.
                    lock(&this.state).note_high_water();
                    // SAFETY: a fresh buf has no references and nobody else
                    // has seen it.
                    Ok(unsafe { Lease::adopt(buf) })
                }
                Err(e) => {
                    let mut state = lock(&this.state);
                    state.unreserve_fresh(cap);
                    this.finish(state, Doomed::new());
                    Err(e)
                }
            },
        }
    }

    /// Leases a buf of `size` under the lock: an idle one of its class if
    /// there is one, else a fresh one that keeps a clone of `this`, within
    /// the budget, waiting on `released` as `wait` allows (see the module
    /// docs).
    fn lease_shared(this: &Arc<PoolShared>, size: SizeClass, wait: Wait) -> Result<Lease, AllocError> {
        let now = this.idle_clock();
        let mut doomed = Doomed::new();
        let mut deadline = None;
        let mut waited = false;
        let mut registered = false;
        let mut state = lock(&this.state);
        this.expire(&mut state, now, &mut doomed);
        let taken = loop {
            if let Some(taken) = this.try_lease_locked(&mut state, size, &mut doomed) {
                break taken;
            }
            if !registered {
                registered = true;
                this.count_waiters(&mut state, 1);
                if this.drain_caches(&mut state, true, &mut doomed) > 0 {
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
                state.count_exhausted();
                break Err(AllocError::Exhausted);
            };
            if !waited {
                waited = true;
                state.count_wait();
            }
            state = match timeout {
                None => wait_on(&this.released, state),
                Some(timeout) => wait_timeout(&this.released, state, timeout),
            };
        };
        if registered {
            this.count_waiters(&mut state, -1);
        } else if size.class == 0 && matches!(taken, Ok(Some(_))) {
            // An idle standard buf, for a thread whose cache was empty.
            this.fill_cache(&mut state);
        }
        drop(state);
        // Freed outside the lock: bufs trimmed to make room, or expired.
        drop(doomed);
        PoolShared::adopt_taken(this, size, taken?)
    }

    /// Leases a buf of `size` for an async request: as
    /// [`PoolShared::lease_shared`], but where it would wait, it leaves the
    /// waker of `cx` among the pool's async waiters under `ticket` and
    /// returns `Pending`; the next release wakes it (see the module docs).
    /// Poll again with the same ticket, and cancel it
    /// ([`PoolShared::cancel_wait`]) if the request is given up.
    pub(super) fn poll_lease(
        this: &Arc<PoolShared>,
        size: SizeClass,
        cx: &mut Context<'_>,
        ticket: &mut Ticket,
    ) -> Poll<Result<Lease, AllocError>> {
        if size.class == 0
            && ticket.id.is_none()
            && let Some(buf) = this.lease_cached()
        {
            // SAFETY: `buf` came out of a cache, so it has no references and
            // is ours alone.
            return Poll::Ready(Ok(this.note_in_use(unsafe { Lease::adopt(buf) })));
        }
        let now = this.idle_clock();
        let mut doomed = Doomed::new();
        let mut state = lock(&this.state);
        this.expire(&mut state, now, &mut doomed);
        let mut drained = false;
        let taken = loop {
            if let Some(taken) = this.try_lease_locked(&mut state, size, &mut doomed) {
                break taken;
            }
            let first = ticket.id.is_none();
            let id = *ticket.id.get_or_insert_with(|| {
                state.next_ticket += 1;
                state.next_ticket
            });
            match state.wakers.iter_mut().find(|(waiter, _)| *waiter == id) {
                Some((_, waker)) => waker.clone_from(cx.waker()),
                None => {
                    // New, or woken since its last poll: (re-)registered,
                    // then the caches emptied, as a blocking waiter does.
                    state.wakers.push((id, cx.waker().clone()));
                    this.count_waiters(&mut state, 1);
                    if first {
                        state.count_wait();
                    }
                    if !drained {
                        drained = true;
                        if this.drain_caches(&mut state, true, &mut doomed) > 0 {
                            continue;
                        }
                    }
                }
            }
            drop(state);
            drop(doomed);
            return Poll::Pending;
        };
        let gone = this.unregister_waker(&mut state, ticket);
        drop(state);
        drop((doomed, gone));
        Poll::Ready(PoolShared::adopt_taken(this, size, taken?).map(|lease| this.note_in_use(lease)))
    }

    /// Takes the async waiter of `ticket` off the list, for a request given
    /// up or granted; returns its waker, to be dropped outside the lock.
    fn unregister_waker(&self, state: &mut State, ticket: &mut Ticket) -> Option<Waker> {
        let id = ticket.id.take()?;
        let at = state.wakers.iter().position(|(waiter, _)| *waiter == id)?;
        self.count_waiters(state, -1);
        Some(state.wakers.swap_remove(at).1)
    }

    /// Gives up the async wait of `ticket`, if it has one. A wakeup it was
    /// sent and did not act on is not lost: every release wakes every
    /// waiter.
    pub(super) fn cancel_wait(&self, ticket: &mut Ticket) {
        if ticket.id.is_none() {
            return;
        }
        let mut state = lock(&self.state);
        let gone = self.unregister_waker(&mut state, ticket);
        drop(state);
        drop(gone);
    }

    /// Adds `delta` to the requests waiting for the budget, and to its
    /// mirror `waiting`, which releases into a cache read (see the module
    /// docs).
    fn count_waiters(&self, state: &mut State, delta: isize) {
        state.waiters = state.waiters.wrapping_add_signed(delta);
        // Relaxed: written under the state's lock, read under a slot's
        // lock; the module docs argue the order.
        self.waiting.store(state.waiters, Ordering::Relaxed);
    }

    /// Whether a fresh buf of `cap` bytes fits the budget, after moving idle
    /// bufs into `doomed`, oldest first, if that makes it fit.
    fn make_room(&self, state: &mut State, cap: usize, doomed: &mut Doomed) -> bool {
        let fits = |state: &State| state.bytes_held().saturating_add(cap) <= self.max_bytes;
        if fits(state) {
            return true;
        }
        if state.bytes_in_use().saturating_add(cap) > self.max_bytes {
            return false;
        }
        for class in 0..self.classes {
            while !fits(state) && state.trim_oldest(class, doomed) {}
        }
        debug_assert!(fits(state), "internal: freeing every idle buf makes room");
        true
    }

    /// Returns a buf whose last reference was just dropped, and that
    /// [`PoolShared::return_to_cache`] did not keep, to the shared lists, or
    /// frees it, and wakes any request waiting for the budget.
    ///
    /// # Safety
    /// `buf` is a buf of this pool of class `class`, with no references,
    /// owned by the caller, who gives it up.
    pub(crate) unsafe fn return_shared(&self, buf: NonNull<Header>, class: u8) {
        // SAFETY: the caller owns `buf`.
        let cap = unsafe { Header::cap(buf) };
        let now = self.idle_clock();
        let mut doomed = Doomed::new();
        let mut state = lock(&self.state);
        // SAFETY: the caller owns `buf`, with no references.
        unsafe { state.forget_listed(buf) };
        let pooled = usize::from(class) < self.classes && !state.closed;
        if pooled && state.bytes_idle() + cap <= self.shared_idle_cap {
            // SAFETY: the caller gives us `buf`, in no list.
            unsafe { state.keep_idle(buf, usize::from(class), cap, now) };
        } else {
            state.forget_in_use(cap, pooled);
            // SAFETY: the caller gives us `buf`, and the pool does not keep it.
            unsafe { doomed.push(buf) };
        }
        self.expire(&mut state, now, &mut doomed);
        self.finish(state, doomed);
    }

    /// Ends a change to the state that may help a waiter, in the order the
    /// module docs give: releases the lock, frees `doomed`, then wakes every
    /// request waiting for the budget, if there are any. Async waiters leave
    /// the list as they are woken, and register again if they still find
    /// no room.
    pub(super) fn finish(&self, state: MutexGuard<'_, State>, doomed: Doomed) {
        if !state.wakers.is_empty() {
            return self.finish_waking(state, doomed);
        }
        let waiters = state.waiters;
        drop(state);
        drop(doomed);
        if waiters > 0 {
            self.released.notify_all();
        }
    }

    /// [`PoolShared::finish`] where async waiters are registered.
    #[cold]
    #[inline(never)]
    fn finish_waking(&self, mut state: MutexGuard<'_, State>, doomed: Doomed) {
        let woken = core::mem::take(&mut state.wakers);
        self.count_waiters(&mut state, -(woken.len() as isize));
        let blocked = state.waiters;
        drop(state);
        drop(doomed);
        if blocked > 0 {
            self.released.notify_all();
        }
        for (_, waker) in woken {
            waker.wake();
        }
    }
}
