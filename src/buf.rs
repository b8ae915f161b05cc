//! A buf: one block of memory, a header in front of it, and the reference
//! count that decides when it goes back to its pool.
//!
//! # Layout
//!
//! A pooled buf is one allocation: a 64-byte [`Header`], then the data area of
//! exactly `cap` bytes, so bookkeeping never eats into the data. A buf made by
//! `Slice::from_vec` keeps the `Vec`'s own allocation as its data area and has
//! a header allocated on its own.
//!
//! # Memory is committed as it is used
//!
//! A pooled buf is asked of the global allocator zeroed, with the alignment
//! `malloc` gives anyway ([`SYSTEM_ALIGN`]), and the header is placed at the
//! first 64-byte boundary inside it. With that alignment std's `System`
//! allocator serves `alloc_zeroed` with `calloc`, which takes fresh pages
//! from the kernel (already zero) without writing to them; asking for the
//! buf's own 64-byte alignment instead makes it `posix_memalign` plus a
//! `memset` of the whole block, which commits every page at once. So a large
//! buf costs resident memory only for the pages actually written: a frame
//! whose claimed length never arrives, or a slice never filled, takes
//! address space, not memory. jemalloc and mimalloc zero lazily at any
//! alignment; the slack of up to 48 bytes per buf costs them nothing else.
//!
//! # Reference counting
//!
//! `refs` counts references, and every holder (slice, allocator, reader) owns
//! at least one. The protocol is std `Arc`'s:
//!
//! - taking a new reference from an existing one is a `Relaxed` increment,
//!   because the holder's own reference already keeps the buf alive, and it
//!   aborts on overflow;
//! - dropping a reference is a `Release` decrement, so that every write made
//!   through it happens before the buf is reused;
//! - the holder that brings the count to zero does an `Acquire` load, pairing
//!   with those `Release` decrements, before it recycles or frees the buf.
//!
//! A [`Lease`] may own many references at once. The allocator and the reader
//! take a batch when they adopt a buf and move one to each slice they hand out,
//! so handing out a slice costs no atomic read-modify-write (one `fetch_add`
//! tops up each batch of 1024); they give back whatever they still hold when
//! they let the buf go.
//!
//! # Counting at home
//!
//! A lease held by a `LocalAllocator`, which never leaves its thread, makes
//! its buf *at home* there ([`Lease::make_home`]): drops on that thread add
//! to `home_released`, a plain count only it touches, instead of
//! decrementing `refs`; drops elsewhere decrement `refs` as always. `refs`
//! carries a bias of [`HOME_BIAS`] meanwhile, so no remote drop can take it
//! to zero. When the lease lets go, on the home thread, it clears
//! `home_thread` and gives back its references, the home count and the bias
//! in one `Release` decrement; after that the buf is counted as any other.
//! ARCHITECTURE.md argues why this is sound.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::diagnostics::Usage;
use crate::error::AllocError;
use crate::pool::PoolShared;
use crate::segments::Segments;
use crate::sync::{
    Arc, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, BufAccess, HomeCell, Ordering, alloc_zeroed, dealloc,
    known_thread_id, note_slice_dropped, thread_id,
};

/// Bytes in front of a pooled buf's data area: two 64-byte lines. Under
/// loom the header carries model state and is larger.
pub(crate) const HEADER_SIZE: usize = size_of::<Header>();

/// Alignment of a pooled buf's header, and so of its data area.
const BUF_ALIGN: usize = align_of::<Header>();

/// The alignment a pooled buf's memory is asked for with: the most `malloc`
/// guarantees on 64-bit platforms, so that zeroed memory comes from `calloc`
/// (see the module docs). The header goes at the first `BUF_ALIGN` boundary,
/// at most `BUF_ALIGN - SYSTEM_ALIGN` bytes in.
const SYSTEM_ALIGN: usize = 16;

/// The most references a buf may have. Above this, `retain` aborts, as
/// std `Arc` does: the count can only get there through leaked references,
/// and wrapping around would free a buf that is still in use.
const MAX_REFS: usize = isize::MAX as usize;

/// References a [`Lease`] takes at a time. Larger batches mean fewer atomic
/// operations; the value only has to stay far below `MAX_REFS`.
const LEASE_BATCH: usize = 1024;

/// Added to the count while a buf has a home thread. At home, `refs` is
/// always the bias plus the lease's references, the live ones, and those
/// released at home but not yet folded in: every reference released at home
/// was added to `refs` when it was made and is still there. So `refs` stays
/// above the bias, and no drop on another thread can take it to zero (or to
/// one, the last reference), however many references the home thread has
/// released since its last fold. (`refs` can only reach `MAX_REFS` after
/// about 2^62 references made and dropped at home without a fold, where
/// `retain` aborts as for leaked references.)
const HOME_BIAS: usize = 1 << (usize::BITS - 2);

const _: () = assert!(usize::BITS == 64, "the home bias needs a 64-bit count");

/// Set in `home_thread` beside the home thread's number while the buf has a
/// segment record, so that a drop at home finds out from the one load
/// whether it must take its slice off the record: a drop at home of a buf
/// without one costs what it did before there were records. No thread's
/// number has this bit (`thread_id` hands out numbers below it), so any
/// other thread, whatever value it reads, still compares unequal.
const TRACKED: usize = 1 << (usize::BITS - 1);

/// Held in `home_thread` in place of a home while the buf is counting (see
/// "Counting every drop" in `segments.rs`): its drops, on every thread,
/// take the atomic path and count themselves in the buf's own record
/// first. No thread has this number (`thread_id` hands out numbers below
/// it), with or without `TRACKED`.
pub(crate) const COUNTED: usize = TRACKED - 1;

/// Held in `home_thread` in place of a home while the buf is an
/// `Allocator`'s probe (see `Allocator::look_at_probe`) and not counting:
/// its drops, on every thread, take the atomic path and note on their
/// thread that a probe's slice was dropped there
/// (`sync::note_slice_dropped`), which tells the allocator whether the
/// thread it runs on drops its slices. No thread has this number either.
pub(crate) const PROBED: usize = COUNTED - 1;

/// The bookkeeping in front of every buf: what a drop and a free list touch
/// on the first 64-byte line; its size, who owns the memory and the
/// reshaped flag on the second.
#[repr(C, align(64))]
pub(crate) struct Header {
    /// The reference count; see the module docs.
    refs: AtomicUsize,
    /// The home thread's [`thread_id`], or 0 where the buf has none; see
    /// [`Lease::make_home`]; or `COUNTED` or `PROBED`. Written only by the
    /// home thread (and by whoever adopts the buf, who owns it alone, and
    /// by an `Allocator`'s lease marking its buf a probe as it lets go);
    /// read by every thread that drops a reference, which compares it with
    /// its own number. A thread reads
    /// its own number here only while it is the buf's home: it wrote it,
    /// and it clears it before the buf can be reused. So every other thread
    /// takes the atomic path, whatever value it reads.
    home_thread: AtomicUsize,
    /// References released on the home thread since its lease last folded
    /// them into `refs`. Touched only by the home thread.
    home_released: HomeCell<usize>,
    /// Start of the data area. Fixed for the buf's life.
    data: NonNull<u8>,
    /// Bytes in the data area. Fixed for the buf's life.
    cap: usize,
    /// The buf's place in a free list (its pool's, or a cache slot's). Read
    /// and written only while the buf is idle, under that list's lock.
    idle: IdleLinks,
    /// Who owns the memory and takes it back at the last release.
    owner: Owner,
    /// The home allocator's record of which segments of the buf are alive,
    /// where it keeps one (see `segments.rs`): set and cleared with the
    /// home, and touched only by the home thread.
    home_segments: HomeCell<Option<NonNull<Segments>>>,
    /// Set when a slice of the buf, while at home, is split or joined or
    /// its region otherwise moved, so that the home's segment record may be
    /// wrong: the allocator then cuts from the buf again only once no slice
    /// of it is alive. Cleared by the home thread when it is the sole
    /// holder. See `segments.rs`.
    reshaped: AtomicBool,
    /// Which of its pool's lists that hold no reference the buf is on (a
    /// [`Listed`]): written under the pool's lock by a holder of references,
    /// by the buf's owner, or by whoever finds the count at zero, and read
    /// by the thread that drops the last reference, which then takes the
    /// buf off the list under that lock. See `pool/orphans.rs`.
    listed: AtomicU8,
    /// The record of a counting buf (see "Counting every drop" in
    /// `segments.rs`): null until an `Allocator` that may move first counts
    /// drops in the buf, then the same record until the buf is freed, so
    /// that a drop on any thread, however late, finds it alive. Set by a
    /// sole holder; read by the drops of slices made after.
    counting: AtomicPtr<Segments>,
    /// The buf's place in its pool's list of orphans, or a probe's note,
    /// touched only under the pool's lock.
    orphan: HomeCell<IdleLinks>,
    /// Shows loom who uses the data area; zero-sized outside loom.
    access: BufAccess,
    /// Who holds the buf, for `Pool::report`; zero-sized without the
    /// `diagnostics` feature.
    usage: Usage,
}

/// A buf's links in a doubly-linked free list, and when it went idle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleLinks {
    /// The buf that went idle just after this one, towards the list's newest
    /// end.
    pub(crate) newer: Option<NonNull<Header>>,
    /// The buf that went idle just before this one, towards the oldest end.
    pub(crate) older: Option<NonNull<Header>>,
    /// When the buf went idle, in nanoseconds since its pool was built; 0
    /// when the pool has no idle timeout and does not read the clock.
    pub(crate) since: u64,
}

impl IdleLinks {
    const NONE: IdleLinks = IdleLinks { newer: None, older: None, since: 0 };
}

/// Which of its pool's lists that hold no reference a buf is on; see
/// `pool/orphans.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Listed {
    /// None.
    No = 0,
    /// The list of orphans.
    Orphan = 1,
    /// The probes.
    Probe = 2,
}

/// The `class` of a buf that goes back to no free list when released.
pub(crate) const UNPOOLED: u8 = u8::MAX;

#[cfg(not(any(loom, feature = "diagnostics")))]
const _: () = assert!(HEADER_SIZE == 128, "the header must fill exactly two 64-byte lines");
#[cfg(not(loom))]
const _: () = assert!(
    core::mem::offset_of!(Header, idle) + size_of::<IdleLinks>() <= 64,
    "a drop and a free list touch only the header's first line"
);
const _: () = assert!(BUF_ALIGN == 64, "data areas start on a cache line");
const _: () = assert!(
    SYSTEM_ALIGN <= BUF_ALIGN && BUF_ALIGN.is_multiple_of(SYSTEM_ALIGN),
    "the slack is a whole number of steps"
);

/// Who owns a buf's memory.
enum Owner {
    /// Header and data in one allocation made by `pool`. `class` is the
    /// index of the free list it returns to, or [`UNPOOLED`] for a buf too
    /// large to keep; the allocation starts `offset` bytes before the header.
    Pool { pool: Arc<PoolShared>, class: u8, offset: u8 },
    /// The data area is a `Vec<u8>`'s buffer of `len` bytes and `capacity`.
    Vec { capacity: usize },
    /// One of the regions `shared` cuts its buf into: the header and data
    /// lie inside that buf, and go back to `shared` at the last release.
    #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
    Region { shared: NonNull<crate::regions::Shared> },
}

impl Header {
    /// Allocates a zero-filled pooled buf with a data area of exactly `cap`
    /// bytes and no references yet; the caller adopts it with [`Lease::adopt`].
    ///
    /// The data area is zero-filled so that no byte of it is ever
    /// uninitialised: every byte a slice can show is initialised memory.
    ///
    /// # Errors
    /// `TooLarge` where no buf of `cap` bytes can be laid out, `OutOfMemory`
    /// where the system refuses the memory.
    pub(crate) fn new_pooled(
        pool: Arc<PoolShared>,
        cap: usize,
        class: u8,
    ) -> Result<NonNull<Header>, AllocError> {
        let layout = pooled_layout(cap).ok_or(AllocError::TooLarge)?;
        // SAFETY: `layout` has a non-zero size: it includes the header.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return Err(AllocError::OutOfMemory);
        }
        // `base` is `SYSTEM_ALIGN`-aligned, so this is a multiple of it below
        // `BUF_ALIGN`: within the slack `pooled_layout` adds.
        let offset = base.addr().wrapping_neg() & (BUF_ALIGN - 1);
        // SAFETY: `offset + HEADER_SIZE + cap` is at most the layout's size,
        // so both pointers are in bounds of the fresh allocation, whose
        // provenance they keep; neither is null, being inside it.
        let (header, data) = unsafe {
            let header = base.add(offset);
            (NonNull::new_unchecked(header.cast::<Header>()), NonNull::new_unchecked(header.add(HEADER_SIZE)))
        };
        let offset = u8::try_from(offset).expect("internal: the header offset is below BUF_ALIGN");
        let owner = Owner::Pool { pool, class, offset };
        // SAFETY: `header` is valid for writes of a `Header` (in bounds, as
        // above) and aligned to `BUF_ALIGN`.
        unsafe { header.write(Header::new(data, cap, owner, 0)) };
        Ok(header)
    }

    /// Wraps `v`'s buffer as a buf with one reference, owned by the caller.
    pub(crate) fn from_vec(v: Vec<u8>) -> NonNull<Header> {
        let mut v = core::mem::ManuallyDrop::new(v);
        let data = NonNull::new(v.as_mut_ptr()).expect("a Vec's pointer is never null");
        let owner = Owner::Vec { capacity: v.capacity() };
        let layout = Layout::new::<Header>();
        // SAFETY: a `Header` has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) }.cast::<Header>();
        let Some(header) = NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        // SAFETY: `header` is a fresh allocation with `Header`'s layout.
        unsafe { header.write(Header::new(data, v.len(), owner, 1)) };
        header
    }

    /// Writes the header of a region of `shared` at `at`, with a data area
    /// of `cap` bytes right behind it and no references.
    ///
    /// # Safety
    /// `at` is 64-byte aligned and valid for writes of the header and the
    /// `cap` bytes behind it, which are initialised and the caller's;
    /// `shared` outlives the region.
    #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
    pub(crate) unsafe fn new_region(at: NonNull<u8>, cap: usize, shared: NonNull<crate::regions::Shared>) {
        // SAFETY: the caller guarantees `at` is valid for the header and
        // the data area behind it.
        unsafe {
            let data = at.add(HEADER_SIZE);
            at.cast::<Header>().write(Header::new(data, cap, Owner::Region { shared }, 0));
        }
    }

    /// Gives a region that has no references its first one, for the slice
    /// the caller makes of it.
    ///
    /// # Safety
    /// The caller owns `this`, a region with no references.
    #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
    pub(crate) unsafe fn adopt_region(this: NonNull<Header>) {
        // SAFETY: the caller owns `this`.
        unsafe { Header::access(this) }.exclusive();
        // Relaxed: as in `Lease::adopt`; the region came back to the caller
        // through the return list's `Acquire` swap, or was never taken.
        // SAFETY: as above.
        unsafe { Header::refs(this) }.store(1, Ordering::Relaxed);
    }

    /// Ends a region's header, once its regions are being freed.
    ///
    /// # Safety
    /// The caller owns `this`, a region with no references, and nothing
    /// uses it afterwards.
    #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
    pub(crate) unsafe fn retire_region(this: NonNull<Header>) {
        // SAFETY: the caller owns `this`. The exclusive access shows loom
        // that every holder's last use happens before the memory goes.
        unsafe {
            Header::access(this).exclusive();
            ptr::drop_in_place(this.as_ptr());
        }
    }

    /// Links a region to the next one on a return list.
    ///
    /// # Safety
    /// The caller owns `this`, a region with no references.
    #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
    pub(crate) unsafe fn set_return_link(this: NonNull<Header>, next: *mut Header) {
        // SAFETY: the caller owns `this`; a region is never on a free list,
        // so its free-list link is free to serve the return list.
        unsafe { (*this.as_ptr()).idle.newer = NonNull::new(next) };
    }

    /// The region after this one on a return list.
    ///
    /// # Safety
    /// The caller owns `this`, a region it took off a return list.
    #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
    pub(crate) unsafe fn return_link(this: NonNull<Header>) -> *mut Header {
        // SAFETY: as for `set_return_link`.
        unsafe { (*this.as_ptr()).idle.newer }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    fn new(data: NonNull<u8>, cap: usize, owner: Owner, refs: usize) -> Header {
        Header {
            refs: AtomicUsize::new(refs),
            data,
            cap,
            owner,
            idle: IdleLinks::NONE,
            access: BufAccess::default(),
            usage: Usage::default(),
            home_thread: AtomicUsize::new(0),
            home_released: HomeCell::default(),
            home_segments: HomeCell::default(),
            reshaped: AtomicBool::new(false),
            listed: AtomicU8::new(Listed::No as u8),
            counting: AtomicPtr::new(ptr::null_mut()),
            orphan: HomeCell::new(IdleLinks::NONE),
        }
    }

    /// Start of the data area.
    ///
    /// # Safety
    /// `this` must be a live buf: the caller holds a reference to it, or owns
    /// it while it is idle.
    #[inline]
    pub(crate) unsafe fn data(this: NonNull<Header>) -> NonNull<u8> {
        // SAFETY: the caller guarantees `this` is live; `data` never changes.
        unsafe { (*this.as_ptr()).data }
    }

    /// Bytes in the data area.
    ///
    /// # Safety
    /// As for [`Header::data`].
    #[inline]
    pub(crate) unsafe fn cap(this: NonNull<Header>) -> usize {
        // SAFETY: the caller guarantees `this` is live; `cap` never changes.
        unsafe { (*this.as_ptr()).cap }
    }

    /// The reference counter alone, without creating a reference to the rest
    /// of the header.
    ///
    /// # Safety
    /// As for [`Header::data`], for as long as the returned reference is used.
    #[inline]
    unsafe fn refs<'a>(this: NonNull<Header>) -> &'a AtomicUsize {
        // SAFETY: the caller guarantees `this` is live for 'a.
        unsafe { &(*this.as_ptr()).refs }
    }

    /// The home thread's number alone.
    ///
    /// # Safety
    /// As for [`Header::refs`].
    #[inline(always)]
    unsafe fn home_thread<'a>(this: NonNull<Header>) -> &'a AtomicUsize {
        // SAFETY: the caller guarantees `this` is live for 'a.
        unsafe { &(*this.as_ptr()).home_thread }
    }

    /// The home thread's count of released references alone.
    ///
    /// # Safety
    /// As for [`Header::refs`].
    #[inline(always)]
    unsafe fn home_released<'a>(this: NonNull<Header>) -> &'a HomeCell<usize> {
        // SAFETY: the caller guarantees `this` is live for 'a.
        unsafe { &(*this.as_ptr()).home_released }
    }

    /// The loom access tracker alone.
    ///
    /// # Safety
    /// As for [`Header::refs`].
    #[inline(always)]
    unsafe fn access<'a>(this: NonNull<Header>) -> &'a BufAccess {
        // SAFETY: the caller guarantees `this` is live for 'a.
        unsafe { &(*this.as_ptr()).access }
    }

    /// Adds `n` references to a buf the caller already holds one of.
    ///
    /// # Safety
    /// The caller holds at least one reference to `this`.
    #[inline]
    pub(crate) unsafe fn retain(this: NonNull<Header>, n: usize) {
        // Relaxed: like `Arc::clone`, the caller's own reference keeps the buf
        // alive, so there is nothing to synchronise with here. The matching
        // `Release` comes when each of these references is dropped.
        // SAFETY: the caller holds a reference, so `this` is live.
        let old = unsafe { Header::refs(this) }.fetch_add(n, Ordering::Relaxed);
        if old > MAX_REFS - n {
            // Leaked references; wrapping around would free a live buf.
            std::process::abort();
        }
    }

    /// Drops `n` references; the last one recycles or frees the buf.
    ///
    /// # Safety
    /// The caller owns `n` references to `this` and gives them all up: it
    /// must not touch the buf or any memory in it afterwards.
    #[inline]
    pub(crate) unsafe fn release(this: NonNull<Header>, n: usize) {
        // SAFETY: the caller's guarantees.
        unsafe { Header::release_from(this, n, None) }
    }

    /// Drops a slice's one reference, as [`Header::release`] does; on the
    /// home thread, also takes the slice off the home's segment record,
    /// where there is one. The slice's region (headroom, then data) starts
    /// at `start`.
    ///
    /// # Safety
    /// As for [`Header::release`]; `start` lies in the data area.
    #[inline]
    pub(crate) unsafe fn release_slice(this: NonNull<Header>, start: NonNull<u8>) {
        // SAFETY: the caller's guarantees.
        unsafe { Header::release_from(this, 1, Some(start)) }
    }

    /// [`Header::release`] of `n` references, held by a slice whose region
    /// starts at `slice` where that is `Some`.
    ///
    /// # Safety
    /// As for [`Header::release_slice`].
    #[inline(always)]
    unsafe fn release_from(this: NonNull<Header>, n: usize, slice: Option<NonNull<u8>>) {
        // Relaxed: see `Header::home_thread`; a thread reads its own number
        // there only while it is the buf's home, having written it itself.
        // SAFETY: the caller owns a reference, so `this` is live.
        let home_thread = unsafe { Header::home_thread(this) }.load(Ordering::Relaxed);
        // A home mark only on the home thread, with or without `TRACKED`,
        // and never 0, `COUNTED` or `PROBED` (see `known_thread_id`).
        let me = known_thread_id();
        if home_thread == me {
            // SAFETY: as above.
            unsafe { Header::access(this) }.shared();
            // SAFETY: this is the home thread, the only one that touches
            // `released`. Its lease still holds references, so this is not
            // the last: counting is all there is to do.
            unsafe { Header::home_released(this).with_mut(|released| *released += n) };
            return;
        }
        // Tested after the plain home path, so that it pays nothing for them.
        if home_thread != 0 {
            if home_thread == me | TRACKED {
                // SAFETY: as above, and the buf has a segment record.
                unsafe { Header::release_tracked(this, n, slice) };
                return;
            }
            if let Some(start) = slice {
                if home_thread == COUNTED {
                    // SAFETY: as above.
                    unsafe { Header::count_drop(this, start) };
                } else if home_thread == PROBED {
                    note_slice_dropped();
                }
            }
        }
        // SAFETY: the caller owns the `n` references and gives them up.
        unsafe { Header::release_shared(this, n, Holder::Slice) }
    }

    /// [`Header::release_from`] on the home thread of a buf with a segment
    /// record: counts the references released at home and takes a slice's
    /// region off the record. Out of line, so that a slice's drop stays as
    /// small as before there were records (small enough to be inlined into
    /// the unwinding paths too, which otherwise keep every slice on the
    /// stack).
    ///
    /// # Safety
    /// As for [`Header::release_slice`]; the caller is the home thread of
    /// `this`, which has a segment record.
    #[inline(never)]
    unsafe fn release_tracked(this: NonNull<Header>, n: usize, slice: Option<NonNull<u8>>) {
        // SAFETY: the caller owns a reference, so `this` is live.
        unsafe { Header::access(this) }.shared();
        // SAFETY: this is the home thread, the only one that touches
        // `released` and `home_segments`. Its lease still holds references,
        // so this is not the last: counting is all there is to do. The
        // record is the home allocator's, which keeps it until the buf has
        // left home.
        unsafe {
            Header::home_released(this).with_mut(|released| *released += n);
            if let Some(start) = slice
                && let Some(segments) = (*this.as_ptr()).home_segments.with_mut(|s| *s)
            {
                let at = start.as_ptr().addr() - Header::data(this).as_ptr().addr();
                segments.as_ref().dropped(at);
            }
        }
    }

    /// Counts the drop of a slice whose region starts at `start` in a
    /// counting buf's record, before the drop gives up its reference. Out
    /// of line, as `release_tracked` is.
    ///
    /// # Safety
    /// As for [`Header::release_slice`]; the buf is counting, so it has a
    /// record (which lives as long as the buf).
    #[inline(never)]
    unsafe fn count_drop(this: NonNull<Header>, start: NonNull<u8>) {
        // Relaxed: the record was set before this slice was made, by the
        // sole holder of the buf, and reached this thread with the slice.
        // SAFETY: the caller holds a reference, so `this` is live.
        let record = unsafe { &(*this.as_ptr()).counting }.load(Ordering::Relaxed);
        // SAFETY: a counting buf has a record, freed only with the buf.
        let record = unsafe { &*record };
        // SAFETY: as above; `start` lies in the data area.
        let at = start.as_ptr().addr() - unsafe { Header::data(this) }.as_ptr().addr();
        record.dropped_anywhere(at);
        note_slice_dropped();
    }

    /// Marks the buf reshaped, where it is at home or counting: a slice of
    /// it is about to be split or joined, or its region moved, which the
    /// buf's segment record cannot follow (see `segments.rs`).
    ///
    /// # Safety
    /// The caller holds a reference to `this`.
    #[inline]
    pub(crate) unsafe fn reshape(this: NonNull<Header>) {
        // SAFETY: the caller holds a reference, so `this` is live.
        let header = unsafe { &*this.as_ptr() };
        // Relaxed, both loads and the store: the flag publishes nothing but
        // itself, and reaches the home thread in time by the happens-before
        // argued in `segments.rs`. A thread that finds no home (or the
        // flag already set) writes nothing, so slices split on other
        // threads do not contend for the line. The home a thread can see
        // while it holds a reference is the buf's one home while that
        // reference lives: it can only change after the buf is recycled.
        if header.home_thread.load(Ordering::Relaxed) != 0 && !header.reshaped.load(Ordering::Relaxed) {
            header.reshaped.store(true, Ordering::Relaxed);
        }
    }

    /// [`Header::release`] on the atomic count, by a `holder` of the
    /// references.
    ///
    /// # Safety
    /// As for [`Header::release`].
    #[inline]
    unsafe fn release_shared(this: NonNull<Header>, n: usize, holder: Holder) {
        // SAFETY: the caller owns a reference, so `this` is live.
        unsafe { Header::access(this) }.shared();
        // Release: every write this holder made to the buf happens before the
        // `Acquire` load below in whichever thread drops the last reference.
        // SAFETY: the caller owns a reference, so `this` is live.
        let old = unsafe { Header::refs(this) }.fetch_sub(n, Ordering::Release);
        debug_assert!(old >= n, "internal: released more references than held");
        if old != n {
            return;
        }
        // Acquire: pairs with the `Release` decrement of every other holder,
        // so their writes happen before the buf is reused or freed. A load
        // rather than a fence, as `bytes` does, because ThreadSanitizer does
        // not model fences.
        // SAFETY: the count just reached zero, so this thread owns the buf.
        unsafe { Header::refs(this) }.load(Ordering::Acquire);
        // SAFETY: as above.
        unsafe { Header::access(this) }.exclusive();
        // SAFETY: no references are left; this thread owns the buf.
        unsafe { Header::last_release(this, holder) };
    }

    /// Whether the caller's `held` references are all there are.
    ///
    /// A `true` answer stays true until the caller shares a reference: nobody
    /// else has a pointer to the buf from which to take one, unless the buf
    /// is on one of its pool's lists that hold no reference ([`Listed`]),
    /// from which a lease may be taken (`Lease::upgrade`). A lease lets go
    /// as soon as it lists its buf, and never asks after; a slice that asks
    /// checks [`Header::listed`] too.
    ///
    /// # Safety
    /// The caller holds `held` references to `this`.
    #[inline]
    pub(crate) unsafe fn is_held_only_by(this: NonNull<Header>, held: usize) -> bool {
        // Acquire: pairs with the `Release` decrement of every former holder,
        // so their writes to the buf happen before the caller takes the whole
        // buf for itself.
        // SAFETY: the caller holds a reference, so `this` is live.
        let sole = unsafe { Header::refs(this) }.load(Ordering::Acquire) == held;
        if sole {
            // SAFETY: as above.
            unsafe { Header::access(this) }.exclusive();
        }
        sole
    }

    /// Called once the count reaches zero, its last reference dropped by
    /// `holder`: hands a pooled buf back to its pool, or frees the buf.
    ///
    /// # Safety
    /// `this` has no references left and the caller owns it.
    #[cold]
    #[inline(never)]
    unsafe fn last_release(this: NonNull<Header>, holder: Holder) {
        // Relaxed: this thread owns the buf. A counting buf counts no more:
        // whoever takes it next starts afresh.
        // SAFETY: the caller owns `this`, so its header is valid to use.
        unsafe { Header::home_thread(this) }.store(0, Ordering::Relaxed);
        // SAFETY: as above. Each field is reached on its own (as below): a
        // thread looking at its pool's lists may still read the buf's
        // atomics under the pool's lock, where a reference to the whole
        // header would read its plain fields too.
        let (pool, class) = match unsafe { &(*this.as_ptr()).owner } {
            Owner::Pool { pool, class, .. } => (pool, *class),
            Owner::Vec { .. } => {
                // SAFETY: the caller owns `this`, which no pool can keep.
                unsafe { Header::destroy(this) };
                return;
            }
            #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
            Owner::Region { shared } => {
                // SAFETY: the caller owns `this`, a region of `shared` with
                // no references, and touches it no more.
                unsafe { crate::regions::Shared::give_back(*shared, this) };
                return;
            }
        };
        // SAFETY: `this` is ours, with no references, and holds an `Arc` to
        // `pool`. Once the call returns `true`, neither `this` nor `pool` (a
        // reference into the header) is touched again.
        if unsafe { PoolShared::return_to_cache(NonNull::from(&**pool), this, class, holder) } {
            return;
        }
        // A clone, so that no reference into the header (or, through it, to
        // the pool) is alive once `return_shared` has published the buf: from
        // then on another thread may reuse or free both, while
        // `return_shared` still wakes waiters through the pool.
        let pool = Arc::clone(pool);
        // SAFETY: the caller owns `this`, which has no references.
        unsafe { pool.return_shared(this, class) };
    }

    /// Frees the buf's memory.
    ///
    /// # Safety
    /// The caller owns `this`: it has no references and sits in no free list.
    /// Nothing may use it afterwards.
    pub(crate) unsafe fn destroy(this: NonNull<Header>) {
        // Relaxed: the caller owns the buf. SAFETY: as below.
        let record = unsafe { &(*this.as_ptr()).counting }.load(Ordering::Relaxed);
        // SAFETY: the caller owns the header, so it may move it out; the
        // memory is not read again as a `Header`.
        let header = unsafe { this.read() };
        match header.owner {
            Owner::Pool { offset, .. } => {
                let layout = pooled_layout(header.cap).expect("internal: a live buf's layout is valid");
                // SAFETY: `new_pooled` placed the header `offset` bytes into
                // the allocation it made with this layout, and `this` keeps
                // that allocation's provenance.
                unsafe { dealloc(this.as_ptr().cast::<u8>().sub(usize::from(offset)), layout) };
            }
            Owner::Vec { capacity } => {
                // SAFETY: `data`, `cap` and `capacity` came from a `Vec<u8>`
                // in `from_vec`, which gave up its ownership.
                drop(unsafe { Vec::from_raw_parts(header.data.as_ptr(), header.cap, capacity) });
                // SAFETY: `this` was allocated by `from_vec` with this layout.
                unsafe { dealloc(this.as_ptr().cast(), Layout::new::<Header>()) };
            }
            #[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
            Owner::Region { .. } => {
                unreachable!("internal: a region goes back to its regions, never to a free list")
            }
        }
        if !record.is_null() {
            // SAFETY: made by `Box::into_raw` in `Lease::count_drops`, once
            // for the buf, and freed once, here: no drop can reach it, the
            // buf having no references.
            drop(unsafe { Box::from_raw(record) });
        }
        // `header` drops here, and with it a pooled buf's `Arc` to its pool:
        // after the memory is gone, so the pool state outlives every buf.
        drop(header);
    }

    /// Records slices coming (`holders > 0`) or going, and bytes they own
    /// gained or given up, for `Pool::report`. Does nothing without the
    /// `diagnostics` feature.
    ///
    /// # Safety
    /// The caller holds a reference to `this`.
    #[inline(always)]
    pub(crate) unsafe fn track(this: NonNull<Header>, holders: isize, bytes: isize) {
        // SAFETY: the caller holds a reference, so `this` is live.
        unsafe { Header::usage(this) }.track(holders, bytes);
    }

    /// What the `diagnostics` feature knows about the buf's holders.
    ///
    /// # Safety
    /// `this` is live for `'a`: the caller holds a reference, owns the buf,
    /// or holds the pool's lock with the buf in its list of bufs in use.
    #[inline(always)]
    pub(crate) unsafe fn usage<'a>(this: NonNull<Header>) -> &'a Usage {
        // SAFETY: the caller guarantees `this` is live for 'a.
        unsafe { &(*this.as_ptr()).usage }
    }

    /// Whether a slice of the buf was reshaped since the buf was last found
    /// free, where it is at home or counting; see [`Header::reshape`].
    ///
    /// # Safety
    /// As for [`Header::listed`].
    pub(crate) unsafe fn is_reshaped(this: NonNull<Header>) -> bool {
        // Relaxed: see `segments.rs` for why this sees every reshaping that
        // could upset the buf's record.
        // SAFETY: the caller guarantees `this` is live.
        unsafe { &(*this.as_ptr()).reshaped }.load(Ordering::Relaxed)
    }

    /// Which of its pool's lists that hold no reference the buf is on.
    ///
    /// # Safety
    /// The caller holds a reference to `this` or owns it, or holds its
    /// pool's lock with `this` on one of those lists.
    pub(crate) unsafe fn listed(this: NonNull<Header>) -> Listed {
        // Relaxed: see `Header::listed`; its writers hold references (or
        // own the buf, or the pool's lock), so their stores reach whoever
        // drops the last reference, who reads the field again under the
        // lock before acting on it.
        // SAFETY: the caller guarantees `this` is live.
        match unsafe { &(*this.as_ptr()).listed }.load(Ordering::Relaxed) {
            0 => Listed::No,
            1 => Listed::Orphan,
            _ => Listed::Probe,
        }
    }

    /// Takes the buf off its pool's list that holds no reference, where
    /// the caller's one reference is still the only one, and says whether
    /// it was (see `PoolShared::unlist_sole`).
    ///
    /// # Safety
    /// The caller holds one reference to `this`, a pooled buf.
    pub(crate) unsafe fn unlist_sole(this: NonNull<Header>) -> bool {
        // SAFETY: the caller holds a reference, so the header is live.
        match unsafe { &(*this.as_ptr()).owner } {
            // SAFETY: as the caller guarantees.
            Owner::Pool { pool, .. } => unsafe { pool.unlist_sole(this) },
            _ => false,
        }
    }

    /// Marks the buf on one of its pool's lists that hold no reference, or
    /// on none.
    ///
    /// # Safety
    /// The caller holds the pool's lock, and a reference to `this`, or owns
    /// it, or has it on one of those lists.
    pub(crate) unsafe fn set_listed(this: NonNull<Header>, listed: Listed) {
        // Relaxed: as in `listed`.
        // SAFETY: the caller guarantees `this` is live.
        unsafe { &(*this.as_ptr()).listed }.store(listed as u8, Ordering::Relaxed);
    }

    /// Runs `f` on the buf's links in its pool's list of orphans (whose
    /// `since` holds a probe's note).
    ///
    /// # Safety
    /// The caller holds the pool's lock, and `this` is live: on one of the
    /// pool's lists, or held by the caller.
    pub(crate) unsafe fn with_orphan_links<R>(
        this: NonNull<Header>,
        f: impl FnOnce(&mut IdleLinks) -> R,
    ) -> R {
        // SAFETY: the pool's lock is held, and the links are touched only
        // under it; `f` cannot reach them again.
        unsafe { (*this.as_ptr()).orphan.with_mut(f) }
    }

    /// The references to the buf, as last seen: a hint, unless the caller
    /// knows that no holder can change them.
    ///
    /// # Safety
    /// As for [`Header::listed`].
    pub(crate) unsafe fn refs_hint(this: NonNull<Header>) -> usize {
        // Relaxed: a hint.
        // SAFETY: the caller guarantees `this` is live.
        unsafe { Header::refs(this) }.load(Ordering::Relaxed)
    }

    /// The record of a counting buf, where the buf is counting.
    ///
    /// # Safety
    /// As for [`Header::listed`], and the caller is the buf's cutter (it
    /// leases it, or holds the pool's lock with the buf on one of the
    /// pool's lists), so that nobody else can make the buf count or stop.
    pub(crate) unsafe fn counting_record(this: NonNull<Header>) -> Option<NonNull<Segments>> {
        // Relaxed: only the cutter writes either field, and the caller is
        // that cutter, or follows it under the pool's lock.
        // SAFETY: the caller guarantees `this` is live.
        if unsafe { Header::home_thread(this) }.load(Ordering::Relaxed) != COUNTED {
            return None;
        }
        // SAFETY: as above.
        NonNull::new(unsafe { &(*this.as_ptr()).counting }.load(Ordering::Relaxed))
    }

    /// The buf's free-list links.
    ///
    /// # Safety
    /// The caller owns `this` (it is idle or about to be) and holds the lock
    /// of the list it is in or goes into (its pool's, or a cache slot's), for
    /// as long as the returned reference is used.
    pub(crate) unsafe fn idle_links<'a>(this: NonNull<Header>) -> &'a mut IdleLinks {
        // SAFETY: the caller owns `this`, so nobody else reads or writes the
        // header; the reference covers the `idle` field alone.
        unsafe { &mut *ptr::addr_of_mut!((*this.as_ptr()).idle) }
    }
}

/// The layout of the allocation behind a pooled buf with `cap` data bytes:
/// room for the header at a `BUF_ALIGN` boundary, then the data. `None`
/// where it cannot be laid out (larger than `isize::MAX`).
fn pooled_layout(cap: usize) -> Option<Layout> {
    let size = (HEADER_SIZE + (BUF_ALIGN - SYSTEM_ALIGN)).checked_add(cap)?;
    Layout::from_size_align(size, SYSTEM_ALIGN).ok()
}

/// The largest data area a pooled buf can have: its allocation, header and
/// slack included, rounded up to `SYSTEM_ALIGN`, stays within `isize::MAX`.
pub(crate) const MAX_POOLED_CAP: usize = isize::MAX as usize - HEADER_SIZE - 2 * BUF_ALIGN;

/// Who dropped a buf's last reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A slice, or any holder of single references.
    Slice,
    /// The lease an allocator or reader held the buf by.
    Lease,
}

/// A holder's stake in one buf: `held` references, at least one, that it
/// hands out one at a time to the slices it makes.
pub(crate) struct Lease {
    buf: NonNull<Header>,
    held: usize,
}

// SAFETY: a `Lease` owns references, which any thread may give up: the
// reference count is atomic. A home lease ([`Lease::make_home`]) is tied to
// its thread, but only a `LocalAllocator` holds one, and it is not `Send`;
// the home paths check the thread in debug builds.
unsafe impl Send for Lease {}

impl Lease {
    /// Takes a buf that nobody else can reach (fresh from the system, or just
    /// taken off a free list), with a batch of references.
    ///
    /// # Safety
    /// `buf` is a live pooled buf with no references, owned by the caller.
    pub(crate) unsafe fn adopt(buf: NonNull<Header>) -> Lease {
        // Relaxed: the caller owns the buf, and whoever had it before handed
        // it over through the pool's lock or a cache slot's (or it is fresh
        // from the system), which orders their writes before ours.
        // SAFETY: the caller owns `buf`.
        unsafe { Header::access(buf) }.exclusive();
        // SAFETY: as above.
        unsafe { Header::refs(buf) }.store(LEASE_BATCH, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { Header::usage(buf) }.start_lease();
        Lease { buf, held: LEASE_BATCH }
    }

    /// Makes the calling thread the buf's home: from now until the lease
    /// lets go, references dropped on this thread are counted without an
    /// atomic operation. For a lease that has shared no reference yet. Does
    /// nothing where the thread has no number any more (late in its exit,
    /// see [`thread_id`]): every thread in that state answers the same.
    ///
    /// # Safety
    /// The lease is used, and dropped, on the calling thread only (its
    /// holder is a `LocalAllocator`, which is neither `Send` nor `Sync`),
    /// and has shared no reference yet.
    pub(crate) unsafe fn make_home(&mut self, segments: Option<NonNull<Segments>>) {
        debug_assert!(!self.is_home() && self.held == LEASE_BATCH, "internal: make_home on a lease in use");
        let home = thread_id();
        if home == usize::MAX {
            return;
        }
        // SAFETY: the lease holds its buf, and holds every reference to it:
        // nobody else can reach the count or the home fields.
        let (refs, thread) = unsafe { (Header::refs(self.buf), Header::home_thread(self.buf)) };
        // Relaxed: as in `adopt`, nobody else holds a reference; the next
        // holders get theirs from this thread, which orders these stores
        // before anything they do.
        refs.store(HOME_BIAS + self.held, Ordering::Relaxed);
        thread.store(if segments.is_some() { home | TRACKED } else { home }, Ordering::Relaxed);
        // SAFETY: as above; the caller's thread is the home from now on.
        unsafe {
            let header = &*self.buf.as_ptr();
            header.home_released.with_mut(|released| *released = 0);
            header.home_segments.with_mut(|s| *s = segments);
            header.reshaped.store(false, Ordering::Relaxed);
        }
    }

    /// Gives the buf another segment record, or none.
    ///
    /// # Safety
    /// The lease is a home lease, on its home thread, and is its buf's sole
    /// holder: no slice is alive to have been counted in the old record or
    /// left out of the new one.
    pub(crate) unsafe fn set_segments(&mut self, segments: Option<NonNull<Segments>>) {
        self.debug_assert_at_home();
        // SAFETY: the caller is on the home thread, the only one that
        // touches `home_segments`.
        let header = unsafe { &*self.buf.as_ptr() };
        // SAFETY: as above.
        unsafe { header.home_segments.with_mut(|s| *s = segments) };
        // Relaxed: only this thread compares the field with its own number
        // (see `Header::home_thread`), and it sees its own store.
        let home = header.home_thread.load(Ordering::Relaxed) & !TRACKED;
        header.home_thread.store(if segments.is_some() { home | TRACKED } else { home }, Ordering::Relaxed);
    }

    /// The buf's segment record, where it is at home with one.
    pub(crate) fn segments(&self) -> Option<NonNull<Segments>> {
        // SAFETY: the lease holds its buf, and its holder is the cutter.
        if let Some(record) = unsafe { Header::counting_record(self.buf) } {
            return Some(record);
        }
        if !self.is_home() {
            return None;
        }
        self.debug_assert_at_home();
        // SAFETY: a home lease is used on its home thread only, the one
        // that touches `home_segments`.
        unsafe { (*self.buf.as_ptr()).home_segments.with_mut(|s| *s) }
    }

    /// Whether the buf is at home and a slice of it has been reshaped
    /// since the buf was last found free; see [`Header::reshape`].
    #[inline]
    pub(crate) fn is_reshaped(&self) -> bool {
        // SAFETY: the lease holds its buf.
        unsafe { Header::is_reshaped(self.buf) }
    }

    /// Clears the reshaped mark, for a buf whose lease has just been found
    /// its sole holder ([`Lease::is_sole_holder`]): no slice of it is left
    /// to have been reshaped.
    pub(crate) fn clear_reshaped(&self) {
        // Relaxed: every thread that set the flag gave up its reference
        // since, with a `Release` decrement the sole-holder check's
        // `Acquire` load read, so this store comes after theirs.
        // SAFETY: the lease holds its buf.
        unsafe { (*self.buf.as_ptr()).reshaped.store(false, Ordering::Relaxed) };
    }

    /// Whether the buf has a home thread: this lease's, since only a lease
    /// makes its buf at home ([`Lease::make_home`]) and it clears the mark
    /// before letting go, so the next lease finds it clear. (Kept in the
    /// header rather than in the lease, so that a lease stays two words.)
    #[inline]
    pub(crate) fn is_home(&self) -> bool {
        // Relaxed: only this lease writes the field while it holds the buf;
        // the previous holder's clearing reached this thread with the buf.
        // SAFETY: the lease holds its buf.
        let home = unsafe { Header::home_thread(self.buf) }.load(Ordering::Relaxed);
        home != 0 && home != COUNTED && home != PROBED
    }

    /// Marks the buf a probe (`PROBED`), where it has no home and does not
    /// count its drops; see [`PROBED`]. For a lease about to let go of its
    /// buf: the mark lasts until the last reference is dropped.
    pub(crate) fn mark_probed(&self) {
        // SAFETY: the lease holds its buf.
        let home = unsafe { Header::home_thread(self.buf) };
        // Relaxed, the load and the store: only this lease writes the field
        // while it holds the buf; the drops that read it, racing with the
        // store, take the atomic path whichever value they read, and the
        // mark publishes nothing. A buf that is neither at home nor
        // counting holds 0 until its last release, which clears the mark.
        if home.load(Ordering::Relaxed) == 0 {
            home.store(PROBED, Ordering::Relaxed);
        }
    }

    /// Makes the buf counting (see "Counting every drop" in
    /// `segments.rs`), its record cleared, and returns the record; `None`
    /// where a buf that large gets none.
    ///
    /// # Safety
    /// The lease is not at home and is its buf's sole holder
    /// ([`Lease::is_sole_holder`] said so, or it is fresh): no slice is
    /// alive to have been left out of the record.
    pub(crate) unsafe fn count_drops(&mut self) -> Option<NonNull<Segments>> {
        debug_assert!(!self.is_home(), "internal: count_drops on a home lease");
        // SAFETY: the lease holds its buf, and every reference to it. Each
        // field is reached on its own (see `last_release`).
        let (counting, reshaped, cap) = unsafe {
            let header = self.buf.as_ptr();
            (&(*header).counting, &(*header).reshaped, Header::cap(self.buf))
        };
        // Relaxed, loads and stores: nobody else holds a reference; the
        // next holders get theirs from this lease, which orders these
        // stores before anything they do.
        let mut record = counting.load(Ordering::Relaxed);
        if record.is_null() {
            record = Box::into_raw(Box::new(Segments::counting(cap)?));
            counting.store(record, Ordering::Relaxed);
        }
        // SAFETY: the record is the buf's, and no slice is alive to count a
        // drop in it: the lease is its only user.
        unsafe { (*record).clear() };
        reshaped.store(false, Ordering::Relaxed);
        // SAFETY: the lease holds its buf.
        unsafe { Header::home_thread(self.buf) }.store(COUNTED, Ordering::Relaxed);
        NonNull::new(record)
    }

    /// Takes a batch of references to `buf`, an orphan of its pool, where
    /// it still has references: the orphan's slices keep it alive, and the
    /// lease joins them, as std's `Weak::upgrade` does. `None` where the
    /// last reference is gone (its thread is about to take the buf off the
    /// list).
    ///
    /// # Safety
    /// The caller holds the pool's lock, and `buf` is on the pool's list of
    /// orphans: it is live, since the thread that drops its last reference
    /// takes it off the list under that lock before anything else.
    pub(crate) unsafe fn upgrade(buf: NonNull<Header>) -> Option<Lease> {
        // SAFETY: the buf is live, as above.
        let refs = unsafe { Header::refs(buf) };
        // Relaxed: a guess that the exchange checks.
        let mut now = refs.load(Ordering::Relaxed);
        loop {
            if now == 0 {
                return None;
            }
            if now > MAX_REFS - LEASE_BATCH {
                // Leaked references, as in `retain`.
                std::process::abort();
            }
            // Acquire on success, as `Weak::upgrade`: pairs with the
            // `Release` decrements of the holders gone so far. Relaxed on
            // failure: the value read is only tried again.
            match refs.compare_exchange_weak(now, now + LEASE_BATCH, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        // SAFETY: the lease now holds the buf.
        unsafe { Header::usage(buf) }.resume_lease();
        Some(Lease { buf, held: LEASE_BATCH })
    }

    /// The buf this lease holds.
    #[inline]
    pub(crate) fn buf(&self) -> NonNull<Header> {
        self.buf
    }

    /// Moves one reference to the caller, who must give it to a new holder.
    ///
    /// The lease never gives away its last reference: where the one moved
    /// out was its last, it tops up before returning, while that reference,
    /// not yet given to its holder, keeps the buf alive. That keeps `held >=
    /// 1` whenever the lease can be asked, which `is_sole_holder` (and so the
    /// reader's and the allocator's reuse of the whole buf, and
    /// `Slice::free_entire_prefix` answering `false`) relies on. (Counting
    /// down first makes the test a flag of the decrement itself: two
    /// instructions on every allocation, where testing first took five.)
    #[inline]
    pub(crate) fn share(&mut self) -> NonNull<Header> {
        self.held -= 1;
        if self.held == 0 {
            self.top_up();
        }
        debug_assert!(self.held >= 1, "internal: a lease gave away its last reference");
        self.buf
    }

    /// Adds a batch of references to the lease, for [`share`](Lease::share)
    /// once it has moved out the last: the reference moved out, not yet
    /// given to its holder, keeps the buf alive meanwhile.
    #[cold]
    #[inline(never)]
    fn top_up(&mut self) {
        if self.is_home() {
            self.debug_assert_at_home();
            // SAFETY: a home lease is used on its home thread only.
            let released = unsafe { self.take_released() };
            // The references released at home leave the count as the new
            // batch enters it, in one step; the bias keeps it far above zero.
            let delta = LEASE_BATCH.wrapping_sub(released);
            // Relaxed: as in `retain`, the reference being shared keeps the
            // buf alive; the home thread's writes are published by the
            // `Release` decrement when the lease lets go.
            // SAFETY: the reference being shared keeps the buf live.
            let old = unsafe { Header::refs(self.buf) }.fetch_add(delta, Ordering::Relaxed);
            if old.wrapping_add(delta) > MAX_REFS {
                std::process::abort();
            }
        } else {
            // SAFETY: the reference being shared is one.
            unsafe { Header::retain(self.buf, LEASE_BATCH) };
        }
        self.held += LEASE_BATCH;
    }

    /// Checks, in debug builds, that a home lease is on its home thread.
    #[inline]
    fn debug_assert_at_home(&self) {
        if cfg!(debug_assertions) {
            // Relaxed: this lease wrote the field, on the thread it checks.
            // SAFETY: the lease holds its buf.
            let home = unsafe { Header::home_thread(self.buf) }.load(Ordering::Relaxed);
            assert_eq!(home & !TRACKED, thread_id(), "internal: a home lease used off its home thread");
        }
    }

    /// Takes the count of references released on the home thread.
    ///
    /// # Safety
    /// The lease is a home lease, on its home thread.
    unsafe fn take_released(&self) -> usize {
        // SAFETY: the lease holds its buf; the caller is on the home thread,
        // the only one that touches `released`.
        unsafe { Header::home_released(self.buf).with_mut(core::mem::take) }
    }

    /// How many references others hold (slices into the buf, mostly): a
    /// hint, exact only while nobody else is releasing one, and for
    /// nothing that soundness rests on.
    pub(crate) fn others(&self) -> usize {
        // Relaxed: a hint; see above.
        // SAFETY: the lease holds its buf.
        unsafe { Header::refs(self.buf) }.load(Ordering::Relaxed).saturating_sub(self.own())
    }

    /// The references in the count that are not others': the lease's own,
    /// and at home the bias and those already released at home.
    #[inline]
    fn own(&self) -> usize {
        if self.is_home() {
            self.debug_assert_at_home();
            // SAFETY: a home lease is used on its home thread only, the one
            // that writes `released`.
            let released = unsafe { Header::home_released(self.buf).with_mut(|released| *released) };
            HOME_BIAS + released + self.held
        } else {
            self.held
        }
    }

    /// References to the buf beyond the lease's own, as a hint (a `Relaxed`
    /// load): the slices that use it, where the lease is not at home.
    pub(crate) fn others_hint(&self) -> usize {
        // SAFETY: the lease holds a reference.
        unsafe { Header::refs_hint(self.buf) }.saturating_sub(self.own())
    }

    /// Whether this lease holds every reference to its buf: no slice into it
    /// is alive, so the whole buf is the lease's to reuse.
    #[inline]
    pub(crate) fn is_sole_holder(&self) -> bool {
        let expected = self.own();
        // SAFETY: the lease holds `held` references.
        unsafe { Header::is_held_only_by(self.buf, expected) }
    }
}

impl Drop for Lease {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the lease holds a reference.
        unsafe { Header::usage(self.buf) }.end_lease();
        if self.is_home() {
            self.leave_home();
        } else {
            // SAFETY: the lease owns `held` references and is going away. The
            // buf has no home (only a home lease gives it one), so the
            // atomic count is the whole count.
            unsafe { Header::release_shared(self.buf, self.held, Holder::Lease) };
        }
    }
}

impl Lease {
    /// Lets go of a home lease's buf: the home count and the lease's
    /// references join the atomic count.
    #[cold]
    #[inline(never)]
    fn leave_home(&mut self) {
        self.debug_assert_at_home();
        // The buf leaves home: later drops on this thread take the atomic
        // path. Relaxed: only this thread compares the field with its own
        // number (see `Header::home_thread`), and it sees its own store.
        // Before the decrement below, which may let the buf be recycled and
        // made at home on another thread: cleared after, it would erase that
        // thread's mark.
        // SAFETY: the lease holds a reference.
        unsafe { Header::home_thread(self.buf) }.store(0, Ordering::Relaxed);
        // The home's segment record goes with the home: no drop reads it
        // once the mark above is cleared.
        // SAFETY: a home lease is dropped on its home thread, the only one
        // that touches `home_segments`.
        unsafe { (*self.buf.as_ptr()).home_segments.with_mut(|s| *s = None) };
        // SAFETY: a home lease is dropped on its home thread.
        let released = unsafe { self.take_released() };
        // The lease's references, those released at home and the bias go
        // in one decrement, whose `Release` publishes every write made on
        // this thread through any of them.
        // SAFETY: the lease owns `held` references, and the home's count
        // and bias are its to give back.
        unsafe { Header::release_shared(self.buf, HOME_BIAS + released + self.held, Holder::Lease) };
    }
}
