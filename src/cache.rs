//! Per-thread caches: a few idle standard-size bufs kept where the thread
//! that released them can take them again without the pool's lock.
//!
//! # Where a cache lives
//!
//! The caches belong to the pool, not to the threads: every pool has
//! [`SLOTS`] cache slots, each a small lock over a [`FreeList`], aligned so
//! that no two share a cache line. A thread claims a slot *index* the first
//! time it touches any pool's cache (one index per thread, the same in every
//! pool) and gives it back when it exits, so while it lives no other thread
//! uses its slots, and their locks are uncontended except when the pool
//! itself visits every slot (the budget, `trim`, `stats`, the idle sweep,
//! `close`). A thread that finds every index taken does without a cache.
//!
//! Because the slots are the pool's, a cache can never outlive its pool:
//! `close`, which runs when the last handle goes, empties every slot, and a
//! cached buf holds its pool's state alive as any idle buf does.
//!
//! # Flushing at thread exit
//!
//! A thread's exit empties its slot in every open pool into the pool's
//! shared lists, so nothing sits in a cache nobody will use. To find the open
//! pools without allocating, every pool links itself into a process-wide
//! intrusive list, the registry, when it is built, and unlinks itself as it
//! closes. The exiting thread walks the list under the registry's lock;
//! a pool in the list is alive, because it unlinks itself (under that lock)
//! before its last handle lets go of it.
//!
//! Lock order: the registry, then a pool's state, then a slot. The walk
//! takes a slot's lock and then the state's one after the other, never
//! nested; the pool nests a slot inside its state.

use core::cell::Cell;
use core::ptr::{self, NonNull};

use crate::buf::Header;
use crate::free_list::{Doomed, FreeList};
use crate::pool::PoolShared;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, lock, thread_local};

/// Cache slots per pool, and so threads that can have a cache at once.
#[cfg(not(loom))]
pub(crate) const SLOTS: usize = 64;
/// Under loom, enough for the few threads a model runs.
#[cfg(loom)]
pub(crate) const SLOTS: usize = 4;

const _: () = assert!(SLOTS <= 64, "slot indices are bits of one `u64`");

/// One thread's cache in one pool: idle standard-size bufs, newest first.
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Slot {
    cached: Mutex<Cached>,
    /// How many bufs `cached` holds, as last written under its lock (by
    /// [`SlotGuard`]). Only the thread that owns the slot index adds bufs;
    /// every other thread only takes them out. So where the owner reads 0
    /// the slot is empty, and a lease may skip its lock; a larger value
    /// read may be stale, and the lease then finds out under the lock.
    /// Nothing is published through it.
    len: AtomicUsize,
    /// Bufs whose last reference, a slice's, was dropped on the owner
    /// thread since that thread last took the count, counted by it alone
    /// whether or not they went into the slot: a sign that slices are
    /// dropped there (see `Allocator::look_at_probe`). A lease's last
    /// reference does not count: an allocator whose slices are all dropped
    /// on another thread drops the last reference of each buf whose slices
    /// went before it let go. Nothing is published through it.
    returns: AtomicUsize,
}

impl Slot {
    /// Locks the slot.
    pub(crate) fn lock(&self) -> SlotGuard<'_> {
        SlotGuard { len: &self.len, cached: lock(&self.cached) }
    }

    /// How many bufs the slot holds, as a hint; see the field.
    #[inline]
    pub(crate) fn len_hint(&self) -> usize {
        // Relaxed: a hint, as argued on the field.
        self.len.load(Ordering::Relaxed)
    }

    /// Counts a buf whose last reference, a slice's, the owner thread
    /// dropped; for the owner thread only.
    #[inline]
    pub(crate) fn note_return(&self) {
        // Relaxed, and a load and a store rather than a read-modify-write:
        // only the owner thread writes the count, and nothing is published
        // through it.
        self.returns.store(self.returns.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// Takes the owner thread's count of returns, leaving 0; for the
    /// owner thread only. See the field.
    #[inline]
    pub(crate) fn take_returns(&self) -> usize {
        // Relaxed, and a load and a store: as in `note_return`.
        let returns = self.returns.load(Ordering::Relaxed);
        self.returns.store(0, Ordering::Relaxed);
        returns
    }
}

/// A slot's lock, held: what it guards, and on unlocking the count the
/// slot's thread reads without it.
pub(crate) struct SlotGuard<'a> {
    len: &'a AtomicUsize,
    cached: MutexGuard<'a, Cached>,
}

impl core::ops::Deref for SlotGuard<'_> {
    type Target = Cached;

    fn deref(&self) -> &Cached {
        &self.cached
    }
}

impl core::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Cached {
        &mut self.cached
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        // Still under the lock, which is released after this, as the guard
        // fields drop: the unlock stays the last access to the slot.
        // Relaxed: a hint; see `Slot::len`.
        self.len.store(self.cached.len, Ordering::Relaxed);
    }
}

/// What a slot's lock guards.
#[derive(Debug, Default)]
pub(crate) struct Cached {
    /// The idle bufs, each stamped with when it went idle.
    pub(crate) list: FreeList,
    /// How many bufs `list` holds.
    pub(crate) len: usize,
}

impl Cached {
    /// Takes the `n` oldest bufs out of the slot (all, where it holds no
    /// more), as a list of their own.
    pub(crate) fn take_oldest(&mut self, n: usize) -> FreeList {
        let mut older = FreeList::EMPTY;
        for _ in 0..n.min(self.len) {
            // SAFETY: the slot's lock is held (`&mut self` is reached only
            // through it), and its bufs are the slot's; each taken goes to
            // `older` at once, newer than those taken before it.
            let Some(buf) = (unsafe { self.list.pop_oldest() }) else { break };
            // SAFETY: as above.
            let since = unsafe { Header::idle_links(buf) }.since;
            // SAFETY: as above.
            unsafe { older.push_newest(buf, since) };
            self.len -= 1;
        }
        older
    }

    /// Empties the slot, handing over its bufs and how many there were.
    pub(crate) fn empty_out(&mut self) -> (FreeList, usize) {
        (core::mem::take(&mut self.list), core::mem::take(&mut self.len))
    }
}

/// The slot index of the current thread, if it has one: `None` when every
/// index is taken, or while the thread's locals are being destroyed.
#[inline]
pub(crate) fn current_slot() -> Option<usize> {
    THREAD_SLOT.try_with(|slot| slot.index.get()).ok().flatten()
}

/// Runs the current thread's exit flush now, as its thread-local's
/// destructor would: for loom, whose `join` can return before a thread's
/// locals are destroyed (and its statics with them), so the models call
/// this at the end of each thread instead. Afterwards the thread has no
/// cache.
#[cfg(loom)]
pub(crate) fn leave_thread() {
    // An `Err` means the destructor has already run or is running.
    let _ = THREAD_SLOT.try_with(ThreadSlot::leave);
}

thread_local! {
    static THREAD_SLOT: ThreadSlot = ThreadSlot::claim();
}

/// A thread's claim on a slot index, given back when the thread exits.
struct ThreadSlot {
    /// `None` where every index was taken, or once the thread has left.
    index: Cell<Option<usize>>,
}

impl ThreadSlot {
    /// Claims the lowest free index.
    fn claim() -> ThreadSlot {
        let taken = taken_slots();
        // Relaxed: the bits only keep live threads on distinct indices. No
        // data is published through them: each slot's contents are guarded
        // by its own lock, which stays correct even if two threads shared
        // an index.
        let mut bits = taken.load(Ordering::Relaxed);
        loop {
            let free = !bits & ALL_SLOTS;
            if free == 0 {
                return ThreadSlot { index: Cell::new(None) };
            }
            let index = free.trailing_zeros() as usize;
            // Relaxed: as above.
            match taken.compare_exchange_weak(bits, bits | 1 << index, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return ThreadSlot { index: Cell::new(Some(index)) },
                Err(now) => bits = now,
            }
        }
    }

    /// Flushes this thread's slot in every open pool, then gives the index
    /// back.
    fn leave(&self) {
        let Some(index) = self.index.take() else { return };
        let mut doomed = Doomed::new();
        {
            let registry = lock(registry());
            let mut next = registry.head;
            while let Some(pool) = next {
                // SAFETY: a pool in the registry is alive: it unlinks itself,
                // under the lock we hold, before its last handle goes (see
                // `Registry`).
                let pool = unsafe { pool.as_ref() };
                pool.flush_slot(index, &mut doomed);
                next = pool.registry_links().next();
            }
        }
        // Freed outside the registry's lock: freeing a buf drops its `Arc` to
        // its pool, and no pool's teardown may run under that lock.
        drop(doomed);
        // Relaxed: as in `claim`.
        taken_slots().fetch_and(!(1 << index), Ordering::Relaxed);
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Every slot index bit.
const ALL_SLOTS: u64 = if SLOTS == 64 { u64::MAX } else { (1 << SLOTS) - 1 };

/// Every open pool, linked through [`RegistryLinks`].
///
/// **Invariant:** a pool is linked from just after it is built until its
/// `close`, which runs while a handle still holds the pool, so every pool
/// the list reaches is alive while the registry's lock is held.
#[derive(Debug)]
pub(crate) struct Registry {
    head: Option<NonNull<PoolShared>>,
}

// SAFETY: the list holds pointers to pools, which are `Sync`; they are
// followed only under the registry's lock, while the pools are alive.
unsafe impl Send for Registry {}

/// A pool's place in the registry. Both pointers are read and written only
/// under the registry's lock, which orders every access; they are atomics
/// only so that the pool stays `Sync` without a cell.
#[derive(Debug, Default)]
pub(crate) struct RegistryLinks {
    prev: AtomicPtr<PoolShared>,
    next: AtomicPtr<PoolShared>,
}

impl RegistryLinks {
    fn next(&self) -> Option<NonNull<PoolShared>> {
        // Relaxed: under the registry's lock; see the type.
        NonNull::new(self.next.load(Ordering::Relaxed))
    }

    fn prev(&self) -> Option<NonNull<PoolShared>> {
        // Relaxed: under the registry's lock; see the type.
        NonNull::new(self.prev.load(Ordering::Relaxed))
    }

    fn set_prev(&self, prev: Option<NonNull<PoolShared>>) {
        // Relaxed: under the registry's lock; see the type.
        self.prev.store(prev.map_or(ptr::null_mut(), NonNull::as_ptr), Ordering::Relaxed);
    }

    fn set_next(&self, next: Option<NonNull<PoolShared>>) {
        // Relaxed: under the registry's lock; see the type.
        self.next.store(next.map_or(ptr::null_mut(), NonNull::as_ptr), Ordering::Relaxed);
    }
}

/// Links `pool` into the registry.
///
/// # Safety
/// `pool` is alive and not linked, and stays alive until [`unregister`].
pub(crate) unsafe fn register(pool: &PoolShared) {
    let mut registry = lock(registry());
    let this = NonNull::from(pool);
    pool.registry_links().set_prev(None);
    pool.registry_links().set_next(registry.head);
    if let Some(head) = registry.head {
        // SAFETY: `head` is linked, so alive while we hold the lock.
        unsafe { head.as_ref() }.registry_links().set_prev(Some(this));
    }
    registry.head = Some(this);
}

/// Unlinks `pool` from the registry, if it is linked.
pub(crate) fn unregister(pool: &PoolShared) {
    let mut registry = lock(registry());
    let this = NonNull::from(pool);
    let links = pool.registry_links();
    let (prev, next) = (links.prev(), links.next());
    if prev.is_none() && registry.head != Some(this) {
        return;
    }
    match prev {
        // SAFETY: `prev` is linked, so alive while we hold the lock.
        Some(prev) => unsafe { prev.as_ref() }.registry_links().set_next(next),
        None => registry.head = next,
    }
    if let Some(next) = next {
        // SAFETY: `next` is linked, so alive while we hold the lock.
        unsafe { next.as_ref() }.registry_links().set_prev(prev);
    }
    links.set_prev(None);
    links.set_next(None);
}

#[cfg(not(loom))]
fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry { head: None });
    &REGISTRY
}

#[cfg(not(loom))]
fn taken_slots() -> &'static AtomicU64 {
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    &TAKEN
}

#[cfg(loom)]
loom::lazy_static! {
    static ref REGISTRY: Mutex<Registry> = Mutex::new(Registry { head: None });
    static ref TAKEN: AtomicU64 = AtomicU64::new(0);
}

#[cfg(loom)]
fn registry() -> &'static Mutex<Registry> {
    &REGISTRY
}

#[cfg(loom)]
fn taken_slots() -> &'static AtomicU64 {
    &TAKEN
}
