//! Segments: which parts of a buf at home may still hold a live slice, so
//! that a `LocalAllocator` can cut from the dead parts of a buf that a few
//! long-lived slices keep alive, rather than let one slice pin a whole buf.
//!
//! # The record
//!
//! A buf that a `LocalAllocator` leases at home gets a [`Segments`] record,
//! owned by the allocator and named in the buf's header (home-only, like
//! the home count). The data area is split into [`SEGMENTS`] equal
//! segments, each `1 << shift` bytes. For each segment the record keeps:
//!
//! - `live`: slices carved starting in it (a slice's *region* is its
//!   headroom and data, `[ptr - headroom, ptr + len)`), less those of them
//!   dropped on the home thread;
//! - `first` and `end`: the lowest start and the highest end of the regions
//!   carved starting in it since `live` was last zero.
//!
//! Only the home thread touches the record: the allocator when it carves,
//! and a slice's drop on the home thread, which subtracts one from the
//! segment its region starts in. A drop anywhere else leaves the record as
//! it is, so its segment stays "live" until the whole buf is found free
//! (then the record starts over).
//!
//! # Why a dead part is free
//!
//! The allocator cuts from `[a, e)` in a buf that slices still use only
//! where no live region can overlap it: `a` is past the `end` of every live
//! segment before it, and `e` is at most the `first` of the next live
//! segment; every segment in between has `live == 0` (see
//! [`Segments::free_run`]). That is sound where every live slice is counted
//! in the segment its region starts in, and its region lies within that
//! segment's `first..end`. Both hold for a slice as carved, and stay true
//! while its region starts where it was carved and only shrinks: through
//! `expand_front`, `truncate_front`, `truncate`, `prepend`, moves, and
//! conversion to `Bytes`. A slice dropped on another thread was counted and
//! is never subtracted: the record errs on the live side.
//!
//! Every other change to a region (`split_to`, `split_off`, `try_join`,
//! `release_previous`, `free_entire_prefix`, `coalesce`) can make a slice
//! that the record does not count, or move a region's start. Each marks the
//! buf *reshaped* first (`Header::reshape`), and the allocator cuts only
//! from the dead parts of a buf that is not: a reshaped buf is reused only
//! once no slice of it is alive, as before. The mark is an atomic flag,
//! since the operation may run on any thread; it orders itself:
//!
//! - an operation on the home thread is sequenced before the allocator's
//!   next look at the flag;
//! - an operation elsewhere can upset the record only through a slice it
//!   made or changed being dropped on the home thread, and that slice got
//!   there after the operation (it was sent, so the operation happens
//!   before its arrival). So the flag's store happens before the drop that
//!   upsets the record, and the allocator, which reads the flag after it,
//!   sees it (a `Relaxed` load reads no value older than one that happens
//!   before it). Where no such slice is dropped on the home thread, the
//!   record still counts every slice of the operation's making as the
//!   slice it came from, which is not subtracted, and whose region covers
//!   theirs.
//!
//! The record and the flag start over (all zero) only when the allocator's
//! lease is the buf's sole holder: no slice of it is alive, so none can be
//! dropped into the new record.
//!
//! # Counting every drop
//!
//! An `Allocator` that may move between threads has no home: its slices may
//! be dropped on any thread, and the allocator may be on another one by
//! then. While it tracks (it has seen slices live long), each buf it starts
//! cutting from is *counting*: its header holds `COUNTED` in place of a
//! home thread, and it has a record of its own ([`Segments::counting`]),
//! made the first time and freed with the buf, so that a drop can reach it
//! however late. In such a record `live` counts the regions carved and is
//! never decremented; every drop of a slice of the buf, on whatever thread,
//! first adds one to `dropped` for its region's segment with a `Release`
//! increment ([`Segments::dropped_anywhere`]), then gives up its reference.
//! A segment may hold a live region where `live - dropped` is not zero,
//! with `dropped` read with `Acquire` in `free_run`. The marks (`live`,
//! `first`, `end`) are touched by whoever cuts from the buf alone: the
//! allocator whose lease it is, or one that takes the buf over from the
//! pool's orphans (`pool/orphans.rs`), under the pool's lock, which orders
//! one cutter's accesses before the next one's.
//!
//! The argument above holds with "dropped on the home thread" read as
//! "counted in `dropped`", and with the flag read after `free_run`: an
//! operation that reshapes can upset the record only through a slice it
//! made or changed being counted, which happens after the operation; the
//! `Acquire` load that reads the increment makes the flag's store happen
//! before the allocator's look at the flag that follows. A run found free
//! stays free: only its cutter carves, and a drop cannot bring a region
//! back. The record, the drops and the flag start over only when the
//! cutter's lease is the buf's sole holder, as above; the `Acquire` load of
//! the reference count that says so orders every drop's increment (made
//! before the drop's `Release` decrement) before the counts are reset.

use core::ptr::NonNull;

use crate::sync::{AtomicUsize, HomeCell, Ordering};

/// Segments per buf. A 64 KiB buf has 1 KiB segments.
pub(crate) const SEGMENTS: usize = 64;

/// What the home thread knows of one buf's segments; see the module docs.
pub(crate) struct Segments {
    /// Each segment is `1 << shift` bytes.
    shift: u32,
    /// Bytes in the buf's data area.
    cap: usize,
    /// Touched by the home thread alone, or, in a record its buf owns, by
    /// whoever cuts from the buf.
    marks: HomeCell<Marks>,
    /// In a record its buf owns (see "Counting every drop" in the module
    /// docs): per segment, the slices whose region starts in it dropped on
    /// any thread. `None` in a home record, whose drops at home come off
    /// `live` instead.
    dropped: Option<[AtomicUsize; SEGMENTS]>,
}

/// The per-segment record.
struct Marks {
    /// Regions carved starting in the segment, less those dropped at home
    /// (wrapping: a reshaped buf may take more off than it put on).
    live: [usize; SEGMENTS],
    /// The lowest region start carved in the segment since `live` was zero.
    first: [u32; SEGMENTS],
    /// The highest region end carved in the segment since `live` was zero.
    end: [u32; SEGMENTS],
}

impl Segments {
    /// A record for a buf of `cap` bytes; `None` where offsets into it do
    /// not fit the record's 32 bits.
    pub(crate) fn new(cap: usize) -> Option<Segments> {
        Segments::with_drops(cap, None)
    }

    /// A record for a buf of `cap` bytes that counts every drop, for the
    /// buf to own; `None` as for [`new`](Segments::new).
    pub(crate) fn counting(cap: usize) -> Option<Segments> {
        Segments::with_drops(cap, Some(core::array::from_fn(|_| AtomicUsize::new(0))))
    }

    fn with_drops(cap: usize, dropped: Option<[AtomicUsize; SEGMENTS]>) -> Option<Segments> {
        u32::try_from(cap).ok()?;
        // The fewest bytes per segment that cover `cap` with `SEGMENTS`.
        let per = cap.div_ceil(SEGMENTS).next_power_of_two();
        let marks = Marks { live: [0; SEGMENTS], first: [0; SEGMENTS], end: [0; SEGMENTS] };
        Some(Segments { shift: per.trailing_zeros(), cap, marks: HomeCell::new(marks), dropped })
    }

    /// The regions counted in segment `k` that may still be alive: those
    /// carved, less those dropped. `order` is that of the load of the drops
    /// counted on any thread, where the record counts them.
    #[inline(always)]
    fn live(&self, marks: &Marks, k: usize, order: Ordering) -> usize {
        match &self.dropped {
            Some(dropped) => marks.live[k].wrapping_sub(dropped[k].load(order)),
            None => marks.live[k],
        }
    }

    /// The segment a region starting `at` bytes into the data area counts
    /// in. A region that starts at the very end (an empty slice with no
    /// headroom) counts in the last segment.
    #[inline(always)]
    fn segment(&self, at: usize) -> usize {
        (at >> self.shift).min(SEGMENTS - 1)
    }

    /// Records a region carved at `start..end` (offsets into the data area).
    ///
    /// # Safety
    /// The caller is the home thread of the buf this record serves (or owns
    /// the record while no buf names it).
    #[inline(always)]
    pub(crate) unsafe fn carved(&self, start: usize, end: usize) {
        let k = self.segment(start);
        // Offsets fit 32 bits: `new` checked the data area's size.
        let (start, end) = (start as u32, end as u32);
        // SAFETY: the caller is the only thread touching the record.
        unsafe {
            self.marks.with_mut(|m| {
                // Relaxed: starting the segment's span over needs no more
                // than a count of drops some of which may be stale. A stale
                // one keeps the old span in the new one (too wide, never
                // too narrow), and `free_run` reads the drops again.
                if self.live(m, k, Ordering::Relaxed) == 0 {
                    (m.first[k], m.end[k]) = (start, end);
                } else {
                    // A region carved in a segment with live ones comes
                    // after them, but for a dead part that ends inside it,
                    // before its first live region.
                    m.first[k] = m.first[k].min(start);
                    m.end[k] = m.end[k].max(end);
                }
                m.live[k] = m.live[k].wrapping_add(1);
            });
        }
    }

    /// Records the drop, on the home thread, of a slice whose region starts
    /// `start` bytes into the data area.
    ///
    /// # Safety
    /// As for [`carved`](Segments::carved).
    #[inline(always)]
    pub(crate) unsafe fn dropped(&self, start: usize) {
        let k = self.segment(start);
        // SAFETY: the caller is the only thread touching the record.
        unsafe { self.marks.with_mut(|m| m.live[k] = m.live[k].wrapping_sub(1)) };
    }

    /// Records the drop, on any thread, of a slice whose region starts
    /// `start` bytes into the data area, in a record that counts every
    /// drop (does nothing in a home record). The caller gives up the
    /// slice's reference only after this.
    #[inline]
    pub(crate) fn dropped_anywhere(&self, start: usize) {
        if let Some(dropped) = &self.dropped {
            // Release: pairs with the `Acquire` load in `free_run`, so that
            // every access through the slice happens before its bytes are
            // cut again.
            dropped[self.segment(start)].fetch_add(1, Ordering::Release);
        }
    }

    /// Forgets every region: for a buf no slice uses.
    ///
    /// # Safety
    /// As for [`carved`](Segments::carved).
    pub(crate) unsafe fn clear(&self) {
        // SAFETY: the caller is the only thread touching the record.
        unsafe { self.marks.with_mut(|m| m.live = [0; SEGMENTS]) };
        for dropped in self.dropped.iter().flatten() {
            // Relaxed: no slice of the buf is alive, and the caller's check
            // that none is (an `Acquire` load of the reference count, which
            // each drop gave up after counting itself here) orders every
            // drop's increment before this store.
            dropped.store(0, Ordering::Relaxed);
        }
    }

    /// The first run of at least `need` bytes, ending past `from`, that no
    /// live region can overlap, as offsets `(start, end)` with `start >=
    /// from`; see the module docs for why such a run is free. `end` is the
    /// start of the next live region, or the end of the data area.
    ///
    /// The walk starts at `from`'s segment, so that one pass of a cursor
    /// over a buf walks each segment about once however many runs it asks
    /// for.
    ///
    /// # Safety
    /// As for [`carved`](Segments::carved). Every live region counted in a
    /// segment before `from`'s ends at or before `from`, as before an
    /// allocator's cursor (it carves only at the cursor, within a run found
    /// free; see [`ends_by`](Segments::ends_by)). The run is free only
    /// where the buf is not reshaped: found so before the call for a home
    /// record, and after it for a counting one.
    pub(crate) unsafe fn free_run(&self, from: usize, need: usize) -> Option<(usize, usize)> {
        let fits = |start: usize, end: usize| {
            let start = start.max(from);
            (end > start && end - start >= need).then_some((start, end))
        };
        let skipped = self.segment(from);
        // SAFETY: the caller is the only thread touching the record.
        unsafe {
            self.marks.with_mut(|m| {
                // Where the live regions of the segments so far may reach.
                let mut covered = from;
                // The start of the free stretch being walked, if any.
                let mut start = None;
                for k in skipped..SEGMENTS {
                    let seg_start = k << self.shift;
                    if seg_start >= self.cap {
                        break;
                    }
                    // Acquire: pairs with the `Release` increment of each
                    // drop counted, so that its slice's accesses happen
                    // before the run is cut again.
                    if self.live(m, k, Ordering::Acquire) != 0 {
                        if let Some(run) = start.take().and_then(|a| fits(a, m.first[k] as usize)) {
                            return Some(run);
                        }
                        covered = covered.max(m.end[k] as usize);
                    } else if start.is_none() {
                        let seg_end = ((k + 1) << self.shift).min(self.cap);
                        let a = covered.max(seg_start);
                        start = (a < seg_end).then_some(a);
                    }
                }
                start.and_then(|a| fits(a, self.cap))
            })
        }
    }

    /// Whether every live region counted in a segment before `from`'s ends
    /// at or before `from`: [`free_run`](Segments::free_run)'s condition,
    /// for debug builds to check. Meaningful only where the buf is found
    /// not reshaped after the call.
    ///
    /// # Safety
    /// As for [`carved`](Segments::carved).
    pub(crate) unsafe fn ends_by(&self, from: usize) -> bool {
        // SAFETY: the caller is the only thread touching the record.
        unsafe {
            self.marks.with_mut(|m| {
                // Acquire: as in `free_run`, so that a flag read after it
                // that says "not reshaped" vouches for the counts.
                (0..self.segment(from))
                    .all(|k| self.live(m, k, Ordering::Acquire) == 0 || m.end[k] as usize <= from)
            })
        }
    }
}

/// The segment records of one allocator: every record it has made, each
/// named by the header of one of its bufs or free. Made once each, reused
/// from then on, and freed with the allocator, after its bufs have left
/// home (an allocator drops its leases before this), so no header names a
/// freed record.
#[derive(Default)]
pub(crate) struct Records {
    /// Every record made, owned: each made by `Box::leak`, freed in `drop`.
    all: Vec<NonNull<Segments>>,
    /// The records no buf names.
    free: Vec<NonNull<Segments>>,
}

// SAFETY: the records are owned by one allocator, and their state is
// touched by the home thread of the buf that names each, alone. Only an
// allocator at home hands records out, and it never leaves its thread (it
// lives inside a `LocalAllocator`); an `Allocator` that may move has none.
unsafe impl Send for Records {}

impl Records {
    /// Room for `n` records in all, so that making them allocates nothing
    /// but the records themselves.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.all.reserve_exact(n.saturating_sub(self.all.len()));
        self.free.reserve_exact(n.saturating_sub(self.free.len()));
    }

    /// A record for a buf of `cap` bytes: a free one (all records of an
    /// allocator are for its standard size), or a new one; `None` where
    /// a buf that large gets none.
    pub(crate) fn take(&mut self, cap: usize) -> Option<NonNull<Segments>> {
        if let Some(free) = self.free.pop() {
            return Some(free);
        }
        let record = NonNull::from(Box::leak(Box::new(Segments::new(cap)?)));
        self.all.push(record);
        Some(record)
    }

    /// Takes back a record no buf names any more.
    pub(crate) fn give_back(&mut self, record: Option<NonNull<Segments>>) {
        self.free.extend(record);
    }

    /// Whether some buf names one of these records.
    #[inline(always)]
    pub(crate) fn in_use(&self) -> bool {
        self.all.len() != self.free.len()
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        for record in self.all.drain(..) {
            // SAFETY: made by `Box::leak` in `take`, and freed once, here.
            // No header names it any more (see the type's docs).
            drop(unsafe { Box::from_raw(record.as_ptr()) });
        }
    }
}
