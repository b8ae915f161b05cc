//! Regions: one pool buf cut into equal parts, each counted as a buf of its
//! own, that come back to their owner through a lock-free return list when
//! their last slice drops. A [`BufRing`](crate::BufRing) hands them to the
//! kernel; the part that needs no kernel lives here, so that loom and Miri
//! can check it.
//!
//! # Layout
//!
//! The regions live in one buf leased from the pool, so they count against
//! its budget and show in its stats like any buf in use. Each region is a
//! [`Header`] on a 64-byte boundary and a data area of `reserve + len`
//! bytes behind it: a slice of a region holds a reference to the region's
//! header, not to the buf around it, so each region is alive or not on its
//! own.
//!
//! # The return list
//!
//! A region's count reaches zero on whichever thread drops its last slice.
//! That thread owns the region from then on, and pushes it onto `returned`,
//! a stack linked through the headers' `idle.newer` fields (regions are
//! never on a pool's free list, so the field is free), with a `Release`
//! compare-and-swap. Only the owner of the regions takes from the stack,
//! and it takes the whole stack at once with an `Acquire` swap, so a region
//! leaves the stack only through that swap and the ABA problem of a stack
//! with concurrent pops cannot arise.
//!
//! # Closing, and the last one out
//!
//! `held` is one for the owner plus one for each region taken and not yet
//! seen back on the stack. When the owner closes, it swaps a sentinel,
//! [`CLOSED`], into the stack's head: from then on a thread that drops a
//! region's last slice finds the sentinel instead of pushing, and takes one
//! off `held` itself. The owner takes one for itself and one for each
//! region it found on the stack. Whoever brings `held` to zero frees the
//! regions and gives the buf back to the pool: every region is back by
//! then, because each region taken either was on the stack when it closed
//! or was counted off by the thread that dropped its last slice.

use core::ptr::{self, NonNull};

use crate::buf::{HEADER_SIZE, Header, Lease};
use crate::error::AllocError;
use crate::pool::{Pool, Wait};
use crate::slice::Slice;
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};

/// The return list's head once the owner has closed it: not the address of
/// any header (headers are 64-byte aligned, and this is 1).
const CLOSED: *mut Header = ptr::without_provenance_mut(1);

/// Regions of one pool buf, and the list they come back on. Reached through
/// a raw pointer: the owner's [`Regions`] handle and every region's header
/// point at it, and whoever counts `held` to zero frees it.
pub(crate) struct Shared {
    /// The buf the regions are cut from.
    lease: Lease,
    /// How many regions there are.
    count: usize,
    /// Bytes from one region's header to the next one's.
    stride: usize,
    /// Headroom in front of the bytes of each region handed out to fill.
    reserve: usize,
    /// Bytes of each region handed out to fill.
    len: usize,
    /// The stack of regions whose slices are all gone, or [`CLOSED`].
    returned: AtomicPtr<Header>,
    /// One for the owner, and one for each region taken and not yet seen
    /// back on the stack.
    held: AtomicUsize,
}

/// The owner's handle on its regions: it takes them, sees them come back,
/// and closes them when dropped. Not `Sync`: the return list has one taker.
pub(crate) struct Regions {
    shared: NonNull<Shared>,
    /// Makes the handle `!Sync`; it stays `Send` (see below).
    _not_sync: core::marker::PhantomData<core::cell::Cell<()>>,
}

// SAFETY: the handle's state is in `Shared`, whose fields other threads
// touch only through atomics (`returned`, `held`) or after owning the last
// count of `held`. The owner's operations may run on any one thread at a
// time; the handle is `!Sync`, so never on two at once.
unsafe impl Send for Regions {}

impl Regions {
    /// Leases one buf of `pool`, without waiting for its budget, and cuts
    /// it into `count` regions of `reserve` bytes of headroom and `len`
    /// bytes to fill. Every region starts with the owner, untaken.
    ///
    /// # Errors
    /// `TooLarge` where the regions cannot be laid out, and the pool's
    /// errors for the buf (`Exhausted` where its budget has no room).
    pub(crate) fn new(pool: &Pool, count: usize, reserve: usize, len: usize) -> Result<Regions, AllocError> {
        let stride = HEADER_SIZE
            .checked_add(reserve)
            .and_then(|n| n.checked_add(len))
            .and_then(|n| n.checked_next_multiple_of(HEADER_ALIGN))
            .ok_or(AllocError::TooLarge)?;
        let size = stride.checked_mul(count).ok_or(AllocError::TooLarge)?;
        let lease = pool.lease(pool.size_class(size)?, Wait::Never)?;
        // SAFETY: the lease holds its buf.
        let base = unsafe { Header::data(lease.buf()) };
        let shared = Box::new(Shared {
            lease,
            count,
            stride,
            reserve,
            len,
            returned: AtomicPtr::new(ptr::null_mut()),
            held: AtomicUsize::new(1),
        });
        let shared = NonNull::from(Box::leak(shared));
        for i in 0..count {
            // SAFETY: `i * stride + stride <= size`, within the buf's data
            // area of at least `size` bytes, which starts on a 64-byte
            // boundary as `stride` is a multiple of 64: each header is
            // aligned, in bounds, and the buf's alone. `shared` outlives the
            // regions: it is freed only with `held` at zero, when every
            // region is back.
            unsafe { Header::new_region(base.add(i * stride), reserve + len, shared) };
        }
        Ok(Regions { shared, _not_sync: core::marker::PhantomData })
    }

    fn shared(&self) -> &Shared {
        // SAFETY: `held` counts the handle, so `shared` lives while it does.
        unsafe { self.shared.as_ref() }
    }

    /// How many regions there are.
    pub(crate) fn count(&self) -> usize {
        self.shared().count
    }

    /// Bytes of each region handed out to fill.
    pub(crate) fn len(&self) -> usize {
        self.shared().len
    }

    /// Headroom in front of each region's bytes to fill.
    pub(crate) fn reserve(&self) -> usize {
        self.shared().reserve
    }

    /// The memory all regions lie in: their buf's data area, as far as
    /// the last region reaches. For the kernel's registration; the loom
    /// build has no ring.
    #[cfg(not(loom))]
    pub(crate) fn memory(&self) -> (NonNull<u8>, usize) {
        let shared = self.shared();
        // SAFETY: the lease holds its buf.
        (unsafe { Header::data(shared.lease.buf()) }, shared.count * shared.stride)
    }

    /// Where the `len` bytes to fill of region `id` start.
    ///
    /// # Panics
    /// Where `id` is not below [`count`](Regions::count).
    pub(crate) fn fill_start(&self, id: usize) -> NonNull<u8> {
        assert!(id < self.count(), "region {id} of {}", self.count());
        // SAFETY: the header is in the owner's buf, which lives while the
        // handle does; its data pointer never changes.
        unsafe { Header::data(self.shared().header(id)).add(self.reserve()) }
    }

    /// Region `id` as a slice over the first `len` of its bytes to fill,
    /// with `reserve` bytes of zeroed headroom: the region is out until its
    /// last slice drops.
    ///
    /// # Safety
    /// - Region `id` is the owner's: never taken, or seen back since.
    /// - Its first `len` bytes to fill hold what the slice should show, and
    ///   nothing writes to the region any more (the kernel is done with it).
    ///
    /// # Panics
    /// Where `id` is not below `count`, or `len` is over the region's.
    pub(crate) unsafe fn take(&self, id: usize, len: usize) -> Slice {
        assert!(len <= self.len(), "{len} bytes taken from a region of {}", self.len());
        let reserve = self.reserve();
        let data = self.fill_start(id);
        let header = self.shared().header(id);
        // Relaxed: the handle counts itself in `held`, so the count cannot
        // reach zero here; as for `Arc::clone`, there is nothing to order.
        self.shared().held.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the region is the owner's (the caller's promise): it has
        // no references, and nobody else touches its header or data. Its
        // headroom is in its data area, in front of `data`.
        unsafe {
            Header::adopt_region(header);
            ptr::write_bytes(data.as_ptr().sub(reserve), 0, reserve);
            Slice::from_raw_parts(header, data, len, reserve)
        }
    }

    /// Calls `f` with the id of every region that came back since the last
    /// call, newest first; returns how many there were. Each region comes
    /// back once per time it was taken.
    pub(crate) fn take_returned(&self, mut f: impl FnMut(usize)) -> usize {
        // Acquire: pairs with the `Release` push of each region, so every
        // write made through its slices happens before it is reused.
        let mut head = self.shared().returned.swap(ptr::null_mut(), Ordering::Acquire);
        debug_assert!(head != CLOSED, "internal: the owner took from a closed list");
        let mut n = 0;
        while let Some(region) = NonNull::new(head) {
            // SAFETY: a region on the stack is the owner's again, and so is
            // its link, written before the push.
            head = unsafe { Header::return_link(region) };
            f(self.region_id(region));
            n += 1;
        }
        if n > 0 {
            // Release: the regions' last holders' writes, which this thread
            // acquired, happen before whoever frees the regions.
            self.shared().held.fetch_sub(n, Ordering::Release);
        }
        n
    }

    fn region_id(&self, region: NonNull<Header>) -> usize {
        let base = self.shared().lease.buf();
        // SAFETY: the lease holds its buf.
        let offset = region.addr().get() - unsafe { Header::data(base) }.addr().get();
        debug_assert!(offset.is_multiple_of(self.shared().stride), "internal: a region off its stride");
        offset / self.shared().stride
    }
}

impl Drop for Regions {
    /// Closes the return list. The regions and their buf go at once where
    /// every region is back, or else with the last slice still out.
    fn drop(&mut self) {
        // Acquire: as in `take_returned`.
        let mut head = self.shared().returned.swap(CLOSED, Ordering::Acquire);
        let mut back = 0;
        while let Some(region) = NonNull::new(head) {
            // SAFETY: as in `take_returned`.
            head = unsafe { Header::return_link(region) };
            back += 1;
        }
        // SAFETY: the handle's own count, and those of the regions it
        // found back, are its to give up.
        unsafe { Shared::count_off(self.shared, back + 1) };
    }
}

impl Shared {
    /// Takes a region whose last reference just went back: pushes it onto
    /// the return list, or, once the list is closed, counts it off.
    ///
    /// # Safety
    /// The caller owns `region`, a region of `this` with no references left,
    /// and touches neither again.
    pub(crate) unsafe fn give_back(this: NonNull<Shared>, region: NonNull<Header>) {
        // SAFETY: the region is counted in `held`, so `this` is alive until
        // it is pushed or counted off.
        let returned = unsafe { &this.as_ref().returned };
        // Relaxed: the compare-and-swap below checks the value.
        let mut head = returned.load(Ordering::Relaxed);
        loop {
            if head == CLOSED {
                // SAFETY: the region's count is the caller's to give up.
                unsafe { Shared::count_off(this, 1) };
                return;
            }
            // SAFETY: the caller owns the region; the link is read only by
            // whoever takes it off the stack, after the swap that pairs with
            // the push below.
            unsafe { Header::set_return_link(region, head) };
            // Release: every write made through the region's slices (whose
            // `Release` decrements this thread acquired) and the link
            // happen before the owner's `Acquire` swap takes the region.
            match returned.compare_exchange_weak(head, region.as_ptr(), Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes `n` counts off `held`; the last frees the regions and gives
    /// the buf back to the pool.
    ///
    /// # Safety
    /// The caller has `n` counts to give up, and touches `this` no more.
    unsafe fn count_off(this: NonNull<Shared>, n: usize) {
        // Release: pairs with the `Acquire` load below in whichever thread
        // counts last, so every region's last writes happen before the buf
        // goes back to the pool.
        // SAFETY: the caller's counts keep `this` alive.
        let old = unsafe { this.as_ref() }.held.fetch_sub(n, Ordering::Release);
        debug_assert!(old >= n, "internal: {n} counted off {old} regions held");
        if old != n {
            return;
        }
        // Acquire: pairs with the `Release` decrements above.
        // SAFETY: the count is zero: this thread owns `this`, and every
        // region is back, with no references.
        unsafe { this.as_ref() }.held.load(Ordering::Acquire);
        // SAFETY: this thread owns `this`; `this` came from `Box::leak` in `Regions::new`.
        let shared = unsafe { Box::from_raw(this.as_ptr()) };
        for i in 0..shared.count {
            // SAFETY: the region's header was written in `Regions::new`;
            // it is back, with no references, and nothing uses it any more.
            unsafe { Header::retire_region(shared.header(i)) };
        }
        // Dropping `shared` drops the lease: the buf goes back to the pool.
        drop(shared);
    }

    /// Region `i`'s header.
    fn header(&self, i: usize) -> NonNull<Header> {
        debug_assert!(i < self.count, "internal: region {i} of {}", self.count);
        // SAFETY: the lease holds its buf, inside whose data area region
        // `i` lies.
        unsafe { Header::data(self.lease.buf()).add(i * self.stride).cast() }
    }
}

/// Alignment of every region's header.
const HEADER_ALIGN: usize = align_of::<Header>();

/// Under `--cfg loom` only: regions without a kernel, for the models in
/// `loom-tests`. The owner's side keeps which regions are out, as a
/// `BufRing` does, so the models need no `unsafe`.
#[cfg(loom)]
pub(crate) mod loom_model {
    use super::Regions;
    use crate::{Pool, Slice};

    /// Regions of `len` bytes each (no headroom), all with the owner at
    /// first.
    #[allow(missing_debug_implementations, reason = "a model's scaffolding, compiled under loom only")]
    pub struct ModelRegions {
        regions: Regions,
        out: Vec<bool>,
    }

    impl ModelRegions {
        /// `count` regions of `len` bytes from one buf of `pool`.
        pub fn new(pool: &Pool, count: usize, len: usize) -> ModelRegions {
            let regions = Regions::new(pool, count, 0, len).expect("room for the regions");
            ModelRegions { regions, out: vec![false; count] }
        }

        /// Region `id`, whole, as a slice.
        ///
        /// # Panics
        /// Where the region is out.
        pub fn take(&mut self, id: usize) -> Slice {
            assert!(!self.out[id], "region {id} is out");
            self.out[id] = true;
            // SAFETY: the region is the owner's, and no kernel writes it.
            unsafe { self.regions.take(id, self.regions.len()) }
        }

        /// The regions that came back since the last call.
        ///
        /// # Panics
        /// Where a region comes back that was not out.
        pub fn take_returned(&mut self) -> Vec<usize> {
            let mut back = Vec::new();
            self.regions.take_returned(|id| back.push(id));
            for &id in &back {
                assert!(self.out[id], "region {id} came back without being out");
                self.out[id] = false;
            }
            back
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Regions;
    use crate::Pool;

    /// Regions taken, written on other threads and dropped there come back
    /// once each, with what was written; closing with regions out frees
    /// the buf when the last of them drops.
    #[test]
    fn regions_come_back_once_and_the_last_one_out_frees_the_buf() {
        let pool = Pool::new();
        let regions = Regions::new(&pool, 4, 8, 100).expect("regions");
        assert!(pool.stats().bytes_in_use > 0);
        let threads: Vec<_> = (0..4)
            .map(|id| {
                // SAFETY: region `id` is the owner's, never taken.
                let mut slice = unsafe { regions.take(id, 100) };
                assert_eq!(slice.headroom(), 8);
                std::thread::spawn(move || {
                    slice.fill(id as u8 + 1);
                    let half = slice.split_off(50);
                    drop(slice);
                    drop(half);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("dropper");
        }
        let mut back = Vec::new();
        assert_eq!(regions.take_returned(|id| back.push(id)), 4);
        back.sort_unstable();
        assert_eq!(back, [0, 1, 2, 3]);
        assert_eq!(regions.take_returned(|_| unreachable!("nothing more came back")), 0);
        // SAFETY: region 2 came back.
        let again = unsafe { regions.take(2, 100) };
        assert!(again.iter().all(|&b| b == 3), "the last writes are there");
        // SAFETY: region 0 came back.
        let other = unsafe { regions.take(0, 10) };
        drop(regions);
        assert!(pool.stats().bytes_in_use > 0, "two regions are still out");
        drop(again);
        assert!(pool.stats().bytes_in_use > 0, "one region is still out");
        std::thread::spawn(move || drop(other)).join().expect("dropper");
        assert_eq!(pool.stats().bytes_in_use, 0, "the last region out gave the buf back");
    }

    /// A handle closed with every region back frees the buf at once, and
    /// regions that do not fit are refused.
    #[test]
    fn closing_with_every_region_back_frees_at_once() {
        let pool = Pool::builder().buf_size(4096).max_bytes(4096).build();
        assert!(Regions::new(&pool, 64, 0, 100).is_err(), "over the budget");
        assert!(Regions::new(&pool, usize::MAX, 0, 100).is_err(), "cannot be laid out");
        let regions = Regions::new(&pool, 2, 0, 100).expect("regions");
        // SAFETY: region 1 is the owner's.
        drop(unsafe { regions.take(1, 100) });
        drop(regions);
        assert_eq!(pool.stats().bytes_in_use, 0);
    }
}
