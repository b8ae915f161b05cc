//! The bump allocator: consecutive slices out of one buf at a time.

use core::fmt;
use core::ptr::NonNull;
use core::task::{Context, Poll};
use std::io;
use std::time::Duration;

use crate::buf::{Header, Lease};
use crate::error::AllocError;
use crate::pool::{Look, Pool, Ticket, Wait};
use crate::segments::{Records, Segments};
use crate::slice::Slice;
use crate::spent::SpentList;
use crate::sync::{take_slices_dropped, thread_id};
use crate::writer::Writer;

/// Bump-allocates consecutive [`Slice`]s out of its current buf, each with
/// `reserve` bytes of headroom in front.
///
/// Each allocation of `len` bytes takes `reserve + len` bytes from the
/// current buf: the slice's headroom, then its data. The next slice starts
/// right after, so with a reserve of 0 consecutive slices touch and
/// [`coalesce`](crate::coalesce) can join them; with a reserve of `r` they are
/// exactly `r` bytes apart. When the current buf has too little left, the
/// allocator lets go of it and takes another from the pool. Handing out a
/// slice takes no lock, no heap allocation and no atomic read-modify-write.
///
/// The allocator takes no buf until its first allocation. Dropping it lets go
/// of its buf; slices it made keep that buf alive on their own.
///
/// # Example
///
/// ```
/// let pool = refbuf::Pool::new();
/// let mut alloc = pool.allocator(4);
/// let mut frame = alloc.copy_from_slice(b"payload");
/// assert!(frame.prepend(&7u32.to_be_bytes()));
/// assert_eq!(&frame[..], b"\0\0\0\x07payload");
/// ```
pub struct Allocator {
    pool: Pool,
    reserve: usize,
    /// Whether each buf it leases gets the calling thread as its home, so
    /// that drops on this thread count without an atomic operation: only
    /// inside a [`LocalAllocator`](crate::LocalAllocator), which keeps it
    /// on one thread.
    home: bool,
    current: Option<Bump>,
    /// Standard-size bufs it has filled, oldest first, kept so that the
    /// first whose slices are all gone becomes the current buf again with
    /// no trip through the pool, and so that it can cut from the dead parts
    /// of those that long-lived slices keep; at most `list_cap`. Only an
    /// allocator at home keeps any; see [`Allocator::retire`].
    spent: SpentList,
    /// The most spent bufs it keeps while not tracking (`SPENT_BYTES` of
    /// them, at most `SPENT_BUFS`, at least one), and the most with no
    /// slice alive it keeps as it finds them while tracking; 0 where it
    /// keeps none.
    spent_cap: usize,
    /// Refills left in which the allocator neither looks at nor adds to its
    /// spent bufs: set when the oldest is found in use and full with the
    /// list full, a sign that its slices outlive what the list can hold.
    spent_skip: usize,
    /// Its segment records. After `current` and `spent`, so that it is
    /// dropped after them.
    records: Records,
    /// Whether the bufs it starts cutting from get a segment record: set
    /// when a refill finds its oldest spent buf (at home) in use with few
    /// slices alive, or a probe so twice (see
    /// [`look_at_probe`](Allocator::look_at_probe)), the sign of slices
    /// that live long; cleared after `TRACKED_BUFS` refills in a row find
    /// the oldest spent buf free (at home) or take no orphan (see
    /// [`reuse_orphan`](Allocator::reuse_orphan)). Keeping a record costs a
    /// few instructions per slice (and, for a buf that is not at home, an
    /// atomic increment per drop), which a loop whose slices die young
    /// need not pay.
    track: bool,
    /// Refills in a row that found no sign that tracking pays.
    free_streak: usize,
    /// Whether a buf it lets go while slices still use it is watched: put
    /// among the pool's probes at a probe (`probing`), else on the pool's
    /// list of orphans while it tracks. Never at home.
    watch: bool,
    /// Whether the buf this refill lets go is a probe (see
    /// [`look_at_probe`](Allocator::look_at_probe)).
    probing: bool,
    /// The bytes the refill that probes was asked for (at most
    /// `u32::MAX`).
    probe_need: u32,
    /// Refills until the next probe.
    probe_in: u32,
    /// Whether a buf came back to this thread (its last reference dropped
    /// here) since the allocator's first probe, or since it last started or
    /// stopped tracking: part of the sign a probe gives (see
    /// [`look_at_probe`](Allocator::look_at_probe)).
    came_back: bool,
    /// The thread of the last look at a probe ([`thread_id`]): a slice of a
    /// probe or of a counting buf dropped on it since is part of the sign,
    /// as `came_back` is.
    looked_on: usize,
    /// Probes left that come at every refill (see `EARLY_PROBES`).
    early_probes: u8,
    /// Its place among the pool's async waiters, while
    /// [`poll_ready`](Allocator::poll_ready) waits for the budget.
    ticket: Ticket,
}

/// A cursor position to come back to; see [`Allocator::rewind_to`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    buf: NonNull<Header>,
    next: NonNull<u8>,
}

/// Bytes an allocator hands out between two checks of whether every slice
/// of its buf is gone, where it then rewinds to the buf's start. Small
/// enough that a loop of alloc, use and drop keeps reusing memory still in
/// the L1 cache; large enough that the check (a load of the reference
/// count, whose cache line other threads' drops write to) is rare. Under
/// loom, smaller than the models' bufs.
const REUSE_CHECK: usize = if cfg!(loom) { 16 } else { 16 * 1024 };

/// The fewest slices of the size just asked for between two reuse checks,
/// so that large slices (a 9000-byte one overruns 16 KiB every other
/// allocation) do not pay the check on nearly every allocation. Under loom,
/// one, so that the models meet a check with room left.
const RUN_SLICES: usize = if cfg!(loom) { 1 } else { 8 };

/// The most bytes of filled standard-size bufs an allocator at home keeps
/// for reuse while no slice is seen to live long: two default bufs, or a
/// window of slices alive across up to `SPENT_BUFS` small ones; and the
/// most of those with no slice alive it keeps as it finds them while
/// tracking. Under loom, two of the models' bufs.
pub(crate) const SPENT_BYTES: usize = if cfg!(loom) { 128 } else { 128 * 1024 };

/// The most filled bufs an allocator at home keeps while no slice is seen
/// to live long, whatever their size.
pub(crate) const SPENT_BUFS: usize = 32;

/// The most filled bufs an allocator at home keeps while it tracks dead
/// parts (see [`Allocator::reuse_in_use`]): each has a slice that lives
/// long, whose buf would be pinned whole without the dead parts cut from
/// again. Under loom, a few more than it keeps otherwise.
pub(crate) const TRACKED_BUFS: usize = if cfg!(loom) { 4 } else { 256 };

/// The most spent bufs a refill looks at before it takes a buf from the
/// pool: each in use, and with no dead part large enough, goes to the back
/// of the list. Also the most orphans a refill looks at.
const SPENT_LOOK: usize = 4;

/// Bytes of bufs an allocator that may move turns over between two probes
/// (see [`Allocator::look_at_probe`]), after its first `EARLY_PROBES`:
/// two default bufs, so that a probe is looked at two refills after it was
/// let go, once the slices of a window as wide as a buf are gone. Each
/// costs the pool's lock once. Under loom, every refill.
const PROBE_BYTES: usize = if cfg!(loom) { 1 } else { 128 * 1024 };

/// Looks at a probe that find some of its slices gone, and others alive,
/// for the sign that slices live long (see [`Allocator::look_at_probe`]).
const GONE_LOOKS: u8 = 2;

/// The most looks a probe gets: one whose slices all live on past them
/// (a window wider than that many probes' worth of bufs) gives no sign,
/// and makes room for the next.
const PROBE_LOOKS: u8 = 16;

/// An allocator's first probes, which come at every refill rather than
/// every `PROBE_BYTES`: a buf pinned before the first sign stays with the
/// pool (idle once its slices go), so the sooner a new allocator learns
/// that slices live long, the less it keeps for good. Each costs the
/// pool's lock once, in an allocator's first few refills only.
const EARLY_PROBES: u8 = 8;

/// Whether `slices` alive in a buf of `cap` bytes, were each of `need`
/// bytes, would fill at most a quarter of it: the buf is *mostly dead*.
fn mostly_dead(slices: u64, need: usize, cap: usize) -> bool {
    slices.saturating_mul(need.max(1) as u64).saturating_mul(4) <= cap as u64
}

/// The buf an allocator is cutting slices from.
struct Bump {
    lease: Lease,
    /// The buf's segment record, where it has one: the record its header
    /// names, which the allocator owns (see `segments.rs`).
    segments: Option<NonNull<Segments>>,
    /// The first byte no slice has been given.
    next: NonNull<u8>,
    /// The address where the allocator next checks whether it can rewind:
    /// from `next` to `end`. The fast path carves within it, moving `next`
    /// alone. (Addresses, not lengths: a carve then writes one field.)
    run_end: usize,
    /// The address past the bytes from `next` that belong to the allocator:
    /// the end of the data area, or of the dead part it is cutting from.
    end: usize,
}

// SAFETY: `next` points into the buf the lease holds, at bytes no slice owns:
// they belong to the allocator, wherever it moves. `segments` names a home
// record only in an allocator at home, which never leaves its thread; in
// one that may move it names the record a counting buf owns, whose marks
// only the buf's cutter touches, wherever it is (see `segments.rs`).
unsafe impl Send for Bump {}

impl Bump {
    /// A cursor at the start of the lease's buf, which no slice uses and
    /// whose segment record, if any, is `segments`.
    fn new(lease: Lease, segments: Option<NonNull<Segments>>) -> Bump {
        let mut bump = Bump::parked_with(lease, segments);
        bump.rewind(0);
        bump
    }

    /// A cursor with no room, yet, in the lease's buf.
    fn parked(lease: Lease) -> Bump {
        let segments = lease.segments();
        Bump::parked_with(lease, segments)
    }

    /// [`parked`](Bump::parked), with `segments` as the record.
    fn parked_with(lease: Lease, segments: Option<NonNull<Segments>>) -> Bump {
        let next = NonNull::<u8>::dangling();
        let at = next.as_ptr().addr();
        Bump { lease, segments, next, run_end: at, end: at }
    }

    /// Bytes from `next` that belong to the allocator.
    #[inline]
    fn remaining(&self) -> usize {
        self.end - self.next.as_ptr().addr()
    }

    /// Bytes from `next` to the next check whether the allocator can
    /// rewind: at most [`remaining`](Bump::remaining).
    #[inline(always)]
    fn run(&self) -> usize {
        self.run_end - self.next.as_ptr().addr()
    }

    /// Whether `need` bytes fit in the current run.
    #[inline(always)]
    fn fits(&self, need: usize) -> bool {
        need <= self.run()
    }

    /// Moves the next check past `need` bytes from the cursor where it lies
    /// before them, so that they can be carved: `need <= remaining`.
    fn cover(&mut self, need: usize) {
        debug_assert!(need <= self.remaining(), "internal: a run past the allocator's bytes");
        self.run_end = self.run_end.max(self.next.as_ptr().addr() + need);
    }

    /// A cursor over the first dead part of the lease's buf with room for
    /// `need` bytes (see [`reuse_dead`](Bump::reuse_dead)), or the lease
    /// back where there is none.
    fn dead_part(lease: Lease, need: usize) -> Result<Bump, Lease> {
        let mut bump = Bump::parked(lease);
        if bump.reuse_dead(0, need) { Ok(bump) } else { Err(bump.lease) }
    }

    /// The buf's segment record.
    ///
    /// # Safety
    /// The caller is the buf's cutter: at home, the home thread (an
    /// allocator's cursor with a home record is at home there), using the
    /// record only there; else the allocator holding the lease of a
    /// counting buf.
    unsafe fn record(&self) -> Option<&Segments> {
        // SAFETY: a home record is the allocator's, which frees it only
        // after its bufs are gone; a counting buf's record lives as long as
        // the buf, which the lease holds.
        self.segments.map(|segments| unsafe { segments.as_ref() })
    }

    /// Where the cursor is, in bytes from the start of the data area.
    fn offset(&self) -> usize {
        // SAFETY: the lease holds its buf, whose data area `next` is in.
        self.next.as_ptr().addr() - unsafe { Header::data(self.lease.buf()) }.as_ptr().addr()
    }

    /// Moves the cursor to the first dead part of the buf, ending past
    /// `from` bytes in, that holds `need` bytes, and says whether there was
    /// one: never for a buf without a record, or reshaped.
    fn reuse_dead(&mut self, from: usize, need: usize) -> bool {
        // SAFETY: the allocator is the buf's cutter (see `record`).
        let Some(record) = (unsafe { self.record() }) else { return false };
        if self.lease.is_reshaped() {
            return false;
        }
        // SAFETY: as above, and the buf is not reshaped; `from` is 0, or
        // the cursor, before which every live region ends (the allocator
        // carves only at its cursor, within a run found free).
        let Some(run) = (unsafe { record.free_run(from, need) }) else { return false };
        // Read again after the record's drops, for a counting buf (see
        // "Counting every drop" in `segments.rs`).
        if self.lease.is_reshaped() {
            return false;
        }
        debug_assert!(
            // SAFETY: as above. The flag, read after, vouches for the counts.
            unsafe { record.ends_by(from) } || self.lease.is_reshaped(),
            "a live region before the cursor ends past it"
        );
        // SAFETY: the record found the run free, with the buf not reshaped.
        unsafe { self.cut_from(run, need) };
        true
    }

    /// Moves the cursor to the start of `run`, `(start, end)` in bytes
    /// into the data area.
    ///
    /// # Safety
    /// No live slice owns a byte of the run, as the buf's record found it
    /// (see `segments.rs`), and `start < end <= cap`.
    unsafe fn cut_from(&mut self, (start, end): (usize, usize), need: usize) {
        debug_assert!(start < end && end <= self.cap(), "a run within the data area");
        // SAFETY: the lease holds its buf.
        let data = unsafe { Header::data(self.lease.buf()) };
        // SAFETY: `start < end <= cap`: within the data area.
        self.next = unsafe { data.add(start) };
        self.end = data.as_ptr().addr() + end;
        self.extend_run(need);
    }

    /// Bytes in the buf's data area.
    fn cap(&self) -> usize {
        // SAFETY: the lease holds its buf.
        unsafe { Header::cap(self.lease.buf()) }
    }

    /// Moves the cursor to the start of the buf, handing the whole data area
    /// to the allocator, with a run of at least `need` bytes (where the buf
    /// holds that many). Only for a fresh lease, or one that is its buf's
    /// sole holder: then no slice owns any byte of it, and the segment
    /// record starts over.
    fn rewind(&mut self, need: usize) {
        // SAFETY: as in `reuse_dead`.
        if let Some(record) = unsafe { self.record() } {
            // SAFETY: as above; no slice of the buf is alive.
            unsafe { record.clear() };
            self.lease.clear_reshaped();
        }
        // SAFETY: the lease holds its buf.
        self.next = unsafe { Header::data(self.lease.buf()) };
        self.end = self.next.as_ptr().addr() + self.cap();
        self.extend_run(need);
    }

    /// Makes room for `need` bytes in this buf where it can, and says
    /// whether it did: rewinds to the start where no slice of the buf is
    /// alive and it is large enough, else moves the next check further where
    /// the rest of the buf has room.
    ///
    /// Rewinding reuses the memory most recently touched, still in the
    /// cache, and skips the pool's lock both ways: a loop that drops each
    /// slice before the next alloc keeps cycling through the first
    /// `REUSE_CHECK` bytes of one buf.
    fn make_room(&mut self, need: usize) -> bool {
        if self.cap() >= need && self.lease.is_sole_holder() {
            self.rewind(need);
        } else if need <= self.remaining() {
            self.extend_run(need);
        } else {
            return false;
        }
        true
    }

    /// Moves the next check `REUSE_CHECK` bytes past the cursor, or
    /// `RUN_SLICES` slices of `need` bytes where that is further, and at
    /// most to the end of the buf.
    fn extend_run(&mut self, need: usize) {
        let run = need.saturating_mul(RUN_SLICES).max(REUSE_CHECK).min(self.remaining());
        self.run_end = self.next.as_ptr().addr() + run;
    }

    /// The bytes no slice has been given yet, as found.
    #[inline]
    fn spare(&mut self) -> &mut [u8] {
        // SAFETY: the `remaining` bytes from `next` lie in the leased buf's
        // data area, are initialised (a buf is zero-filled when made) and
        // belong to the allocator alone; `&mut self` makes this borrow the
        // only access to them while it lasts.
        unsafe { core::slice::from_raw_parts_mut(self.next.as_ptr(), self.remaining()) }
    }

    /// Hands the next `front + len` bytes, as they are, to a new slice:
    /// `front` bytes of headroom, then `len` bytes of data, and notes them
    /// in the buf's segment record where it has one.
    ///
    /// # Safety
    /// `front + len <= run` (so `<= remaining`), without overflow. (A
    /// precondition rather than a check: this is the allocation fast path,
    /// and every caller has just established it.)
    #[inline(always)]
    unsafe fn carve(&mut self, front: usize, len: usize) -> Slice {
        if self.segments.is_some() {
            self.record_carve(front + len);
        }
        // SAFETY: the caller's guarantee.
        unsafe { self.carve_bytes(front, len) }
    }

    /// Notes in the buf's segment record the next `len` bytes, about to be
    /// carved. Out of line and called before any part of the slice exists,
    /// so that the usual carve, with no record, keeps the slice in
    /// registers: kept on the stack across a call, a slice stored whole
    /// from there (into a queue, say) reads back pieces just written, a
    /// stall measured at half the cost of a window of slices.
    #[inline(never)]
    fn record_carve(&self, len: usize) {
        // SAFETY: the lease holds its buf, whose data area `next` is in.
        let at = self.next.as_ptr().addr() - unsafe { Header::data(self.lease.buf()) }.as_ptr().addr();
        // SAFETY: as in `reuse_dead`.
        if let Some(record) = unsafe { self.record() } {
            // SAFETY: as in `reuse_dead`.
            unsafe { record.carved(at, at + len) };
        }
    }

    /// The bytes of [`carve`](Bump::carve), without the record.
    ///
    /// # Safety
    /// As for [`carve`](Bump::carve).
    #[inline(always)]
    unsafe fn carve_bytes(&mut self, front: usize, len: usize) -> Slice {
        debug_assert!(
            len <= self.run() && front <= self.run() - len,
            "internal: carved {front} + {len} bytes past the run, {} bytes",
            self.run()
        );
        let region = self.next;
        // SAFETY: `front + len <= run <= remaining`, so the new cursor stays within
        // the data area (or one past its end).
        self.next = unsafe { region.add(front + len) };
        let buf = self.lease.share();
        // SAFETY: `region + front` is within the region just carved; `buf` is
        // a reference just moved out of the lease, and the `front + len`
        // initialised bytes at `region` were the allocator's alone and are
        // now the slice's: headroom, then data.
        unsafe { Slice::from_raw_parts(buf, region.add(front), len, front) }
    }

    /// [`carve`](Bump::carve), with the slice's headroom and data zeroed.
    ///
    /// # Safety
    /// As for [`carve`](Bump::carve).
    #[inline(always)]
    unsafe fn carve_zeroed(&mut self, front: usize, len: usize) -> Slice {
        let region = self.next;
        // SAFETY: the caller's guarantee.
        let slice = unsafe { self.carve(front, len) };
        // SAFETY: the `front + len` bytes at `region` are the new slice's
        // alone, and the `remaining` bytes after them, from the cursor, are
        // still the allocator's: no slice owns any of them, so nothing else
        // reads or writes them. All lie in the buf's initialised data area.
        unsafe { zero_lines(region, front + len, self.remaining()) };
        slice
    }

    /// Whether `tail` ends exactly at the cursor, in this buf.
    #[inline]
    fn is_at_end_of(&self, tail: &Slice) -> bool {
        tail.ends_at(self.lease.buf(), self.next)
    }
}

/// The line [`zero_lines`] aligns its stores to: the cache line.
const LINE: usize = 64;

/// Zeroes the `len` bytes at `at`, with the bulk of the stores aligned to
/// cache lines. Where `len` is at least a line, the first line is zeroed
/// on its own, then the rest from the first line boundary past `at`, on to
/// the next boundary past the end where that lies within `slack` bytes.
///
/// glibc's `memset` of 1500 bytes at 1500-byte strides, as consecutive
/// slices lie, measured 14.4 to 14.8 ns against 11.1 to 11.4 ns split this
/// way, as fast as at 64-byte aligned starts (`memset` alone, interleaved,
/// medians of nine); aligning the start alone saved much less.
///
/// # Safety
/// The `len + slack` bytes at `at` are initialised, in one allocation, and
/// nothing else reads or writes them meanwhile; the `slack` bytes after
/// the `len` may hold anything afterwards.
#[inline(always)]
unsafe fn zero_lines(at: NonNull<u8>, len: usize, slack: usize) {
    if len < LINE {
        // SAFETY: the caller's guarantee.
        unsafe { core::ptr::write_bytes(at.as_ptr(), 0, len) };
        return;
    }
    // Past the first line boundary after `at`: 1 to `LINE` bytes in.
    let skip = LINE - at.as_ptr().addr() % LINE;
    let past_end = (LINE - (at.as_ptr().addr() + len) % LINE) % LINE;
    let end = if past_end <= slack { len + past_end } else { len };
    // SAFETY: the caller's guarantee: `LINE <= len`, and the second range,
    // from `skip <= LINE` to `end <= len + slack`, overlaps the first.
    unsafe {
        core::ptr::write_bytes(at.as_ptr(), 0, LINE);
        core::ptr::write_bytes(at.as_ptr().add(skip), 0, end - skip);
    }
}

impl Allocator {
    pub(crate) fn new(pool: Pool, reserve: usize) -> Allocator {
        Allocator {
            pool,
            reserve,
            home: false,
            current: None,
            spent: SpentList::with_capacity(0),
            spent_cap: 0,
            spent_skip: 0,
            records: Records::default(),
            track: false,
            free_streak: 0,
            watch: false,
            probing: false,
            probe_need: 0,
            probe_in: 1,
            came_back: false,
            looked_on: 0,
            early_probes: EARLY_PROBES,
            ticket: Ticket::default(),
        }
    }

    /// An allocator whose bufs get the calling thread as their home.
    ///
    /// # Safety
    /// The allocator, and every lease it takes, is used and dropped on the
    /// calling thread only.
    pub(crate) unsafe fn new_at_home(pool: Pool, reserve: usize) -> Allocator {
        let mut alloc = Allocator::new(pool, reserve);
        alloc.home = true;
        // A pool with a budget gets none: a buf kept here, free or not, would
        // be out of reach of a request waiting for memory on another thread.
        if !alloc.pool.has_budget() {
            alloc.spent_cap = (SPENT_BYTES / alloc.pool.buf_size()).clamp(1, SPENT_BUFS);
        }
        // Room for the list while nothing is tracked, made here so that no
        // allocation of a slice makes it; `start_tracking` makes the rest.
        alloc.spent = SpentList::with_capacity(alloc.spent_cap);
        alloc
    }

    /// A cursor at the start of a buf just leased, the buf made at home
    /// here where this allocator's bufs are, with a segment record where
    /// the allocator may keep it as spent.
    #[inline(always)]
    fn start(&mut self, mut lease: Lease) -> Bump {
        let segments = if self.home {
            self.make_home(&mut lease)
        } else if self.track {
            self.make_counting(&mut lease)
        } else {
            None
        };
        Bump::new(lease, segments)
    }

    /// Makes a fresh lease's buf counting, where it is of the standard
    /// size, and returns its record; see "Counting every drop" in
    /// `segments.rs`.
    #[cold]
    #[inline(never)]
    fn make_counting(&mut self, lease: &mut Lease) -> Option<NonNull<Segments>> {
        // SAFETY: the lease holds its buf.
        if unsafe { Header::cap(lease.buf()) } != self.pool.buf_size() {
            return None;
        }
        // SAFETY: an allocator that may move makes no home, and the lease is
        // fresh: its buf's sole holder.
        unsafe { lease.count_drops() }
    }

    /// Makes a fresh lease's buf at home here, with a segment record where
    /// the allocator keeps one, and returns the record the buf names.
    #[cold]
    #[inline(never)]
    fn make_home(&mut self, lease: &mut Lease) -> Option<NonNull<Segments>> {
        let record = self.new_record(lease);
        // SAFETY: `new_at_home`'s caller keeps this allocator, and so the
        // lease, on this thread; the lease is fresh. The record outlives the
        // buf's home: the allocator frees its records only when it is
        // dropped, after its leases.
        unsafe { lease.make_home(record) };
        // A thread late in its exit makes no home, and the buf names no
        // record: it goes back.
        let segments = lease.segments();
        if segments.is_none() {
            self.records.give_back(record);
        }
        segments
    }

    /// A segment record for `lease`'s buf, where the allocator keeps one
    /// for it: the buf is of the standard size, and slices are seen to
    /// live long (`track`).
    fn new_record(&mut self, lease: &Lease) -> Option<NonNull<Segments>> {
        // SAFETY: the lease holds its buf.
        let cap = unsafe { Header::cap(lease.buf()) };
        if !self.track || cap != self.pool.buf_size() {
            return None;
        }
        self.records.take(cap)
    }

    /// Gives a spent buf no slice uses, whose record is `old`, a segment
    /// record or rids it of one, as `track` says, and returns its record.
    #[cold]
    #[inline(never)]
    fn refit(&mut self, lease: &mut Lease, old: Option<NonNull<Segments>>) -> Option<NonNull<Segments>> {
        if !lease.is_home() {
            // Made by a thread late in its exit: it names no record.
            return None;
        }
        let new = if self.track { self.new_record(lease) } else { None };
        // SAFETY: the lease is at home here, on the thread this allocator
        // never leaves, and no slice of its buf is alive.
        unsafe { lease.set_segments(new) };
        self.records.give_back(old);
        new
    }

    /// Lets go of a buf, keeping its record for the next (at home), or
    /// watching it (see `watch`).
    #[inline(always)]
    fn let_go(&mut self, lease: Lease) {
        if self.records.in_use() {
            self.records.give_back(lease.segments());
        }
        if self.watch {
            self.let_go_watched(lease);
        } else {
            drop(lease);
        }
    }

    /// [`let_go`](Allocator::let_go) while watching: a buf of the standard
    /// size that slices still use is listed as a probe at a probe (see
    /// [`look_at_probe`](Allocator::look_at_probe)), else goes on the
    /// pool's list of orphans where it counts its drops.
    #[cold]
    #[inline(never)]
    fn let_go_watched(&mut self, lease: Lease) {
        // SAFETY: the lease holds its buf.
        let watched = unsafe { Header::cap(lease.buf()) } == self.pool.buf_size() && !lease.is_sole_holder();
        // Only a counting buf can be cut from again.
        // SAFETY: the lease holds its buf, and its holder is the cutter.
        let counting = watched && unsafe { Header::counting_record(lease.buf()) }.is_some();
        if self.probing {
            self.probing = false;
            if watched && !counting {
                lease.mark_probed();
            }
            self.look_at_probe(watched.then_some((&lease, counting)));
        } else if counting {
            self.pool.orphan(lease);
        }
        self.watch = self.track && !self.home;
    }

    /// A probe, for an allocator that may move: lists `probe` (the buf let
    /// go, where slices still use it; with whether it counts its drops) as
    /// the newest probe of the pool's set for this thread, and looks at the
    /// oldest of that set (see `pool/orphans.rs`), which is how the
    /// allocator learns that a few slices live long, and starts tracking.
    ///
    /// The sign is a probe found at `GONE_LOOKS` looks with fewer slices
    /// than when it was let go, and some still alive: some of its slices
    /// outlive others by that many probes' worth of bufs turned over,
    /// which is what pins a buf. Slices that die about in the order they
    /// were made, as a window's do, leave a probe whole, or gone (it is
    /// then off the list before the look). Until then a probe is listed
    /// again in place of `probe` (which goes on the list of orphans where
    /// it counts its drops), up to `PROBE_LOOKS` looks, and so is one that
    /// shows the sign before this thread was seen to drop the allocator's
    /// slices: it counts only once a slice of a probe (or of a counting
    /// buf) was dropped on this thread since the look before, on the same
    /// thread (the probe's `PROBED` mark has its drops note so, see
    /// `buf.rs`), or a buf came back to this thread (see `came_back`); and
    /// where a buf holds four slices of the size asked for. Slices handed
    /// to other threads would make every drop there pay an atomic
    /// operation more once counted (and the buf that straddles two batches
    /// sent to another thread, keeping a few slices of the second while
    /// the first is gone, would pass for the sign); and a buf that holds
    /// fewer slices than that pins little, while cutting from it costs a
    /// look at its record at nearly every slice. Evidence sooner than a buf
    /// coming back matters where most bufs keep a slice that lives long:
    /// few come back, and bufs pinned while the sign waits stay with the
    /// pool for good (for the same reason, returns count since tracking
    /// last changed, not only since the last probe).
    ///
    /// While the allocator tracks, the sign keeps it tracking: a probe
    /// *mostly dead* (its live slices, were each as large as the one asked
    /// for by the refill, would fill at most a quarter of it) with as many
    /// slices at two looks in a row, where a buf came back. Any other goes
    /// on the list of orphans at once, where its dead parts can be cut
    /// from (watched instead, every probe held more memory). A probe looked
    /// at goes on the list of orphans where it counts its drops and the
    /// allocator tracks, else off every list.
    fn look_at_probe(&mut self, probe: Option<(&Lease, bool)>) {
        let need = self.probe_need as usize;
        let cap = self.pool.buf_size();
        self.came_back |= self.pool.take_returns_here() > 0;
        // A number given where the thread has none: two threads without
        // one would read alike.
        let thread = thread_id();
        let dropped_here = take_slices_dropped() && thread == self.looked_on;
        self.looked_on = thread;
        let here = self.came_back || dropped_here;
        let mut sign = false;
        self.pool.exchange_probe(probe, thread, |oldest, slices, seen| {
            if self.track {
                if !mostly_dead(slices as u64, need, cap) {
                    return self.probe_done(oldest, false);
                }
                if !seen.steady(slices) {
                    return Look::Again(seen.looked(slices));
                }
                sign = here;
                return self.probe_done(oldest, sign);
            }
            if need.saturating_mul(4) > cap {
                return self.probe_done(oldest, false);
            }
            let seen = seen.looked(slices);
            if seen.gone_looks() >= GONE_LOOKS && here {
                sign = true;
                return self.probe_done(oldest, sign);
            }
            if seen.looks() >= PROBE_LOOKS {
                return self.probe_done(oldest, false);
            }
            Look::Again(seen)
        });
        if sign {
            self.track = true;
            self.free_streak = 0;
            self.came_back = false;
        }
    }

    /// What becomes of a probe looked at: on the list of orphans where it
    /// counts its drops and the allocator tracks (or is about to, `sign`),
    /// else off every list.
    fn probe_done(&self, probe: NonNull<Header>, sign: bool) -> Look {
        // SAFETY: `exchange_probe` hands over a live probe under the pool's
        // lock, which makes the caller its cutter.
        let counting = unsafe { Header::counting_record(probe) }.is_some();
        if (self.track || sign) && counting { Look::Orphan } else { Look::Forget }
    }

    /// The headroom, in bytes, in front of every slice this allocator makes.
    pub fn reserve(&self) -> usize {
        self.reserve
    }

    /// The pool this allocator takes bufs from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A slice of `len` zero bytes, with `reserve` zeroed bytes of headroom.
    ///
    /// Where the pool's budget ([`PoolBuilder::max_bytes`]) is used up, this
    /// blocks the thread until enough memory is released. In async code,
    /// wait with [`ready`](Allocator::ready) instead, which blocks nothing,
    /// and then use [`try_alloc`](Allocator::try_alloc); the same holds for
    /// every waiting method below.
    ///
    /// # Panics
    /// Where [`try_alloc`](Allocator::try_alloc) returns an error other
    /// than `Exhausted`: the pool is closed (also while waiting), or `len` is
    /// too large.
    ///
    /// [`PoolBuilder::max_bytes`]: crate::PoolBuilder::max_bytes
    #[inline]
    #[track_caller]
    pub fn alloc(&mut self, len: usize) -> Slice {
        let reserve = self.reserve;
        let bump = self.cursor_or_fail(len);
        // SAFETY: `cursor_or_fail` leaves at least `reserve + len` bytes in the run.
        unsafe { bump.carve_zeroed(reserve, len) }
    }

    /// [`alloc`](Allocator::alloc), waiting at most `wait` for the budget.
    ///
    /// # Errors
    /// As for [`try_alloc`](Allocator::try_alloc), with `Exhausted` only
    /// once `wait` has passed with the budget still used up.
    pub fn alloc_timeout(&mut self, len: usize, wait: Duration) -> Result<Slice, AllocError> {
        self.zeroed(len, Wait::For(wait))
    }

    /// A slice of `len` zero bytes, with `reserve` zeroed bytes of headroom,
    /// or why there is none.
    ///
    /// Recycled memory holds whatever an earlier user wrote, perhaps another
    /// connection's data, so the slice and its headroom are zero-filled, like
    /// `vec![0; len]`. Use [`alloc_for_overwrite`](Allocator::alloc_for_overwrite)
    /// to skip that when every byte will be written anyway.
    ///
    /// # Errors
    /// - [`AllocError::Closed`] once the pool is closed;
    /// - [`AllocError::Exhausted`] where a new buf is needed and the pool's
    ///   budget is used up (it never waits);
    /// - [`AllocError::TooLarge`] where `reserve + len` overflows, exceeds
    ///   the pool's whole budget, or no buf that large can be made.
    ///
    /// The allocator stays usable after an error.
    #[inline]
    pub fn try_alloc(&mut self, len: usize) -> Result<Slice, AllocError> {
        self.zeroed(len, Wait::Never)
    }

    /// A zero-filled slice, waiting for the budget as `wait` allows.
    #[inline(always)]
    fn zeroed(&mut self, len: usize, wait: Wait) -> Result<Slice, AllocError> {
        let reserve = self.reserve;
        let bump = self.cursor(reserve.checked_add(len).ok_or(AllocError::TooLarge)?, wait)?;
        // SAFETY: `cursor` leaves at least `reserve + len` bytes in the run.
        Ok(unsafe { bump.carve_zeroed(reserve, len) })
    }

    /// A slice of `len` bytes whose contents, headroom included, are whatever
    /// the memory last held.
    ///
    /// **The bytes may be another user's data**: a recycled buf is not
    /// cleared. Use this only where every byte will be written before it is
    /// read or sent, such as a receive buffer that is then truncated to the
    /// length received. The memory is always initialised, so reading it is
    /// safe, just not private.
    ///
    /// Blocks for the budget as [`alloc`](Allocator::alloc) does.
    ///
    /// # Panics
    /// As for [`alloc`](Allocator::alloc).
    #[inline]
    #[track_caller]
    pub fn alloc_for_overwrite(&mut self, len: usize) -> Slice {
        self.overwrite_or_fail(len)
    }

    /// [`alloc_for_overwrite`](Allocator::alloc_for_overwrite), returning
    /// errors instead of panicking or waiting; see
    /// [`try_alloc`](Allocator::try_alloc).
    #[inline]
    pub fn try_alloc_for_overwrite(&mut self, len: usize) -> Result<Slice, AllocError> {
        self.overwrite(len, Wait::Never)
    }

    /// A slice of `len` bytes as found, waiting for the budget as long as it
    /// takes, or the panic of [`alloc`](Allocator::alloc). Makes no
    /// `Result<Slice, _>`, which the compiler has been seen to assemble byte
    /// by byte on the stack and read back whole, a store-forwarding stall
    /// that cost a copy of 1500 bytes a quarter of its time.
    #[inline(always)]
    #[track_caller]
    fn overwrite_or_fail(&mut self, len: usize) -> Slice {
        let reserve = self.reserve;
        let bump = self.cursor_or_fail(len);
        // SAFETY: `cursor_or_fail` leaves at least `reserve + len` bytes in the run.
        unsafe { bump.carve(reserve, len) }
    }

    /// The cursor with room for `reserve + len` bytes, waiting for the
    /// budget as long as it takes, or the panic of
    /// [`alloc`](Allocator::alloc).
    ///
    /// Its common case, room in the current run, is inline and makes no
    /// `Result`: merged with the other paths', one was built on the stack
    /// and read back on every allocation.
    #[inline(always)]
    #[track_caller]
    fn cursor_or_fail(&mut self, len: usize) -> &mut Bump {
        // Saturating: a sum that overflows fits no run, and the slow path
        // reports it.
        if self.has_run_for(self.reserve.saturating_add(len)) {
            return self.current.as_mut().expect("the run is in the current buf");
        }
        self.cursor_past_run_or_fail(len)
    }

    /// [`cursor_or_fail`](Allocator::cursor_or_fail) past the current run.
    #[inline(never)]
    #[track_caller]
    fn cursor_past_run_or_fail(&mut self, len: usize) -> &mut Bump {
        let reserve = self.reserve;
        match reserve
            .checked_add(len)
            .ok_or(AllocError::TooLarge)
            .and_then(|need| self.past_run_or_refill(need, Wait::Forever, || 0))
        {
            Ok(bump) => bump,
            Err(e) => alloc_failed(e, len, reserve),
        }
    }

    /// A slice of `len` bytes as found, waiting for the budget as `wait`
    /// allows.
    #[inline(always)]
    fn overwrite(&mut self, len: usize, wait: Wait) -> Result<Slice, AllocError> {
        let reserve = self.reserve;
        let bump = self.cursor(reserve.checked_add(len).ok_or(AllocError::TooLarge)?, wait)?;
        // SAFETY: `cursor` leaves at least `reserve + len` bytes in the run.
        Ok(unsafe { bump.carve(reserve, len) })
    }

    /// A slice holding a copy of `data`, with `reserve` zeroed bytes of
    /// headroom (iobuf's `Copy`). Blocks for the budget as
    /// [`alloc`](Allocator::alloc) does.
    ///
    /// # Panics
    /// As for [`alloc`](Allocator::alloc).
    #[inline]
    #[track_caller]
    pub fn copy_from_slice(&mut self, data: &[u8]) -> Slice {
        // Carve, then write through the slice, as `copied` does.
        let mut slice = self.overwrite_or_fail(data.len());
        slice.zero_headroom();
        slice.copy_from_slice(data);
        slice
    }

    /// [`copy_from_slice`](Allocator::copy_from_slice), returning errors
    /// instead of panicking or waiting; see [`try_alloc`](Allocator::try_alloc).
    #[inline]
    pub fn try_copy_from_slice(&mut self, data: &[u8]) -> Result<Slice, AllocError> {
        self.copied(data, Wait::Never)
    }

    /// A copy of `data`, waiting for the budget as `wait` allows.
    #[inline(always)]
    fn copied(&mut self, data: &[u8], wait: Wait) -> Result<Slice, AllocError> {
        // Carve, then write through the slice: writing the bytes before the
        // carve's bookkeeping measured twice as slow for small copies.
        let mut slice = self.overwrite(data.len(), wait)?;
        slice.zero_headroom();
        slice.copy_from_slice(data);
        Ok(slice)
    }

    /// Receives straight into pool memory: hands `f` the `max` bytes that
    /// follow the reserve and returns the `n` bytes it says it filled, as a
    /// slice with the (zeroed) reserve as headroom.
    ///
    /// Only `reserve + n` bytes are taken from the buf: the unused tail
    /// stays with the allocator, so the next slice starts right after the
    /// filled bytes. This is the receive primitive, e.g.
    /// `alloc.fill_with(1500, |buf| socket.recv(buf))`.
    ///
    /// The buffer `f` is handed is initialised but **its contents are
    /// unspecified**: like [`alloc_for_overwrite`](Allocator::alloc_for_overwrite)
    /// it may hold earlier users' bytes, so `f` should only write to it. The
    /// returned slice shows only the first `n` bytes, the ones `f` filled.
    ///
    /// Where the pool's budget is used up, this blocks for memory as
    /// [`alloc`](Allocator::alloc) does, before calling `f`.
    ///
    /// # Errors
    /// No slice is made and no bytes are taken from the buf when:
    /// - `f` returns an error, which is passed on as is;
    /// - `f` returns `n > max`: `InvalidData`;
    /// - no memory is to be had ([`AllocError`], converted as its `From`
    ///   impl says); `f` is not called.
    ///
    /// (Where `reserve + max` did not fit the current buf, the allocator has
    /// moved to a new one all the same, and keeps it for the next slice.)
    ///
    /// # Example
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let pool = refbuf::Pool::new();
    /// let mut alloc = pool.allocator(2);
    /// let mut src = &b"datagram"[..];
    /// let mut packet = alloc.fill_with(1500, |buf| src.read(buf))?;
    /// assert_eq!(&packet[..], b"datagram");
    /// assert!(packet.prepend(b"\x01\x08")); // an encapsulation header, in place
    /// assert_eq!(&packet[..], b"\x01\x08datagram");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fill_with<F>(&mut self, max: usize, f: F) -> io::Result<Slice>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        self.filled(max, f, Wait::Forever)
    }

    /// [`fill_with`](Allocator::fill_with), failing at once rather than
    /// waiting where the pool's budget is used up: for a receive loop that
    /// must not block, such as one driven by readiness events.
    ///
    /// # Errors
    /// As for [`fill_with`](Allocator::fill_with), where a used-up budget is
    /// an error of kind `OutOfMemory` wrapping [`AllocError::Exhausted`]
    /// (counted in [`PoolStats::exhausted`](crate::PoolStats::exhausted)),
    /// and `f` is not called, so nothing is received and nothing is lost.
    ///
    /// # Example
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    ///
    /// let pool = refbuf::Pool::builder().buf_size(64).max_bytes(64).build();
    /// let mut alloc = pool.allocator(0);
    /// let held = alloc.alloc(64); // the whole budget
    /// let mut src = &b"datagram"[..];
    /// let err = alloc.try_fill_with(64, |buf| src.read(buf)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    /// assert_eq!(src, b"datagram"); // nothing was read
    /// drop(held);
    /// let packet = alloc.try_fill_with(64, |buf| src.read(buf))?;
    /// assert_eq!(&packet[..], b"datagram");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_fill_with<F>(&mut self, max: usize, f: F) -> io::Result<Slice>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        self.filled(max, f, Wait::Never)
    }

    /// The slice `f` fills, waiting for the budget as `wait` allows.
    fn filled<F>(&mut self, max: usize, f: F, wait: Wait) -> io::Result<Slice>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        let reserve = self.reserve;
        let bump = self.cursor(reserve.checked_add(max).ok_or(AllocError::TooLarge)?, wait)?;
        let (headroom, data) = bump.spare().split_at_mut(reserve);
        headroom.fill(0);
        // Nothing is carved until `f` has succeeded, so a failure takes nothing.
        let n = f(&mut data[..max])?;
        if n > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("fill_with: the closure claimed {n} bytes filled of the {max} it was given"),
            ));
        }
        // SAFETY: `cursor` left at least `reserve + max` bytes in the run, and `n <= max`.
        Ok(unsafe { bump.carve(reserve, n) })
    }

    /// Waits, without blocking the thread, until this allocator holds room
    /// for `len` bytes after its reserve; then [`try_alloc(len)`](Allocator::try_alloc),
    /// [`try_alloc_for_overwrite(len)`](Allocator::try_alloc_for_overwrite),
    /// [`try_copy_from_slice`](Allocator::try_copy_from_slice) of `len`
    /// bytes and [`try_fill_with(len, ..)`](Allocator::try_fill_with)
    /// succeed without waiting, until something else is taken from the
    /// allocator. Where the pool's budget is used up, the waker is woken by
    /// the release (on any thread) that makes room, or by
    /// [`Pool::close`](crate::Pool::close).
    ///
    /// This is the async counterpart of the waits in
    /// [`alloc`](Allocator::alloc) and its siblings, which block the thread:
    /// inside an async runtime, wait here and then use the `try_` forms.
    ///
    /// # Errors
    /// As for [`try_alloc`](Allocator::try_alloc), except `Exhausted`.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: dropping the future gives up its place
    /// among the waiters, loses no memory (a buf it was granted stays the
    /// allocator's current buf), and takes no other waiter's wakeup, since
    /// every release wakes every waiter.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let pool = refbuf::Pool::builder().buf_size(1024).max_bytes(1024).build();
    /// let mut alloc = pool.allocator(0);
    /// let held = alloc.alloc(1000); // the whole budget
    /// let releaser = async move {
    ///     tokio::task::yield_now().await;
    ///     drop(held); // on the same thread: a blocking wait would never end
    /// };
    /// let (ready, ()) = tokio::join!(alloc.ready(100), releaser);
    /// ready.unwrap();
    /// let slice = alloc.try_alloc(100).expect("room was made ready");
    /// assert_eq!(slice.len(), 100);
    /// # });
    /// ```
    pub async fn ready(&mut self, len: usize) -> Result<(), AllocError> {
        let ready = Ready { alloc: self, len };
        core::future::poll_fn(|cx| ready.alloc.poll_ready(cx, ready.len)).await
    }

    /// [`ready`](Allocator::ready) as a poll function: `Ready(Ok(()))` once
    /// the allocator holds room for `len` bytes after its reserve,
    /// `Pending` while it waits for the budget, with `cx`'s waker kept to be
    /// woken when memory is released. Between polls the allocator keeps its
    /// place among the waiters; it gives it up when the room is found, when
    /// it is dropped, or when [`ready`](Allocator::ready)'s future is.
    ///
    /// # Errors
    /// As for [`ready`](Allocator::ready).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<Result<(), AllocError>> {
        let result = self.poll_room(cx, len);
        if result.is_ready() {
            self.pool.cancel_wait(&mut self.ticket);
        }
        result
    }

    /// The work of [`poll_ready`](Allocator::poll_ready).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<Result<(), AllocError>> {
        if self.pool.is_closed() {
            return Poll::Ready(Err(AllocError::Closed));
        }
        let need = self.reserve.checked_add(len).ok_or(AllocError::TooLarge)?;
        // The current buf serves where it can, as for an allocation.
        if self.current.as_mut().is_some_and(|bump| bump.make_room(need)) {
            return Poll::Ready(Ok(()));
        }
        let size = self.pool.size_class(need)?;
        // The current buf goes first, as for any request that may wait.
        if let Some(bump) = self.current.take() {
            self.let_go(bump.lease);
        }
        let lease = core::task::ready!(self.pool.poll_lease(size, cx, &mut self.ticket))?;
        self.current = Some(self.start(lease));
        Poll::Ready(Ok(()))
    }

    /// A [`Writer`] that appends into pool memory from this allocator, one
    /// slice growing in place while its buf has room. It holds the allocator
    /// until it is finished or dropped.
    ///
    /// # Example
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let pool = refbuf::Pool::new();
    /// let mut alloc = pool.allocator(0);
    /// let mut w = alloc.writer();
    /// write!(w, "{}-{}", "pooled", 42)?;
    /// let chain = w.finish();
    /// assert_eq!(chain.iter().count(), 1); // the writes grew one slice
    /// assert_eq!(&chain.iter().next().unwrap()[..], b"pooled-42");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn writer(&mut self) -> Writer<'_> {
        Writer::new(self)
    }

    /// Where bytes appended after `tail` go: the rest of the current buf
    /// when `tail` ends at the cursor (so they would grow `tail` in place),
    /// else the room after `reserve` bytes of headroom in the current buf or
    /// a new one, waiting for the budget as `wait` allows. Never empty; the
    /// bytes are as found.
    ///
    /// `held` tells, where a new buf is needed, the data bytes of the bufs
    /// the caller's earlier parts keep alive; see [`Pool::useful_wait`].
    pub(crate) fn append_room(
        &mut self,
        tail: Option<&Slice>,
        wait: Wait,
        held: impl FnOnce() -> usize,
    ) -> Result<&mut [u8], AllocError> {
        let front = self.append_front(tail);
        self.cursor_holding(front.checked_add(1).ok_or(AllocError::TooLarge)?, wait, held)?;
        // Asked again, as `append_commit` will: finding room may have moved
        // the cursor to `tail`'s end (a dead part of its buf that starts
        // there), and the bytes then grow `tail`, with no headroom. That is
        // the only change there can be: where `tail` ends at the cursor with
        // room left, asking for one byte leaves the cursor where it is.
        let front = self.append_front(tail);
        let bump = self.current.as_mut().expect("room was found in the current buf");
        Ok(&mut bump.spare()[front..])
    }

    /// Hands the first `len` bytes of the room [`append_room`](Allocator::append_room)
    /// returns for `tail` to a new slice, with zeroed headroom in front where
    /// it does not grow `tail`.
    ///
    /// # Panics
    /// Where `len` is more than that room.
    pub(crate) fn append_commit(&mut self, tail: Option<&Slice>, len: usize) -> Slice {
        let front = self.append_front(tail);
        match self.current {
            Some(ref mut bump) if front <= bump.remaining() && len <= bump.remaining() - front => {
                bump.spare()[..front].fill(0);
                // Appended bytes may run past the check: it moves with them.
                bump.cover(front + len);
                // SAFETY: the guard checked `front + len <= remaining`, and
                // `cover` made the run that long.
                unsafe { bump.carve(front, len) }
            }
            _ => panic!("refbuf: cannot commit {len} bytes: more than the room handed out"),
        }
    }

    /// Where the next slice would be carved from: the current buf and the
    /// cursor in it; `None` without a buf.
    pub(crate) fn mark(&self) -> Option<Mark> {
        self.current.as_ref().map(|bump| Mark { buf: bump.lease.buf(), next: bump.next })
    }

    /// Moves the cursor back to `mark`, giving the bytes carved since back
    /// to the allocator, where it is still in the buf `mark` was taken in
    /// and has not rewound to before it; otherwise does nothing.
    ///
    /// # Safety
    /// No slice owns any byte that was carved after `mark` was taken: every
    /// slice made since has been dropped, or truncated back to bytes it
    /// owned before.
    pub(crate) unsafe fn rewind_to(&mut self, mark: Mark) {
        let Some(bump) = self.current.as_mut() else { return };
        // Not in a buf with a record: a counting buf may have gone on the
        // pool's orphans since `mark`, another allocator cut from it, and
        // this one taken it back, so the bytes past `mark` may be that
        // allocator's; and a cursor that cuts from dead parts may have
        // jumped past a live slice since `mark`. The bytes are dead parts
        // for the record anyway, once the slices made since drop.
        if bump.lease.buf() != mark.buf || mark.next > bump.next || bump.segments.is_some() {
            return;
        }
        // Both lie in the same buf's data area, `mark.next` first.
        // The bytes between go back to the run and to the allocator.
        bump.next = mark.next;
    }

    /// Headroom for bytes appended after `tail`: none where they grow it in
    /// place, else `reserve`.
    fn append_front(&self, tail: Option<&Slice>) -> usize {
        match (&self.current, tail) {
            (Some(bump), Some(tail)) if bump.remaining() > 0 && bump.is_at_end_of(tail) => 0,
            _ => self.reserve,
        }
    }

    /// The current buf, with at least `need` bytes left in its run: the one
    /// in use, or else a new one.
    #[inline(always)]
    fn cursor(&mut self, need: usize, wait: Wait) -> Result<&mut Bump, AllocError> {
        self.cursor_holding(need, wait, || 0)
    }

    /// [`cursor`](Allocator::cursor) for a caller that keeps `held()` data
    /// bytes of other bufs alive while it waits; see
    /// [`Pool::useful_wait`]. `held` is called only where a new buf is
    /// needed.
    #[inline(always)]
    fn cursor_holding(
        &mut self,
        need: usize,
        wait: Wait,
        held: impl FnOnce() -> usize,
    ) -> Result<&mut Bump, AllocError> {
        if self.has_run_for(need) {
            return Ok(self.current.as_mut().expect("the run is in the current buf"));
        }
        self.cursor_past_run(need, wait, held)
    }

    /// [`past_run_or_refill`](Allocator::past_run_or_refill), out of line.
    #[inline(never)]
    fn cursor_past_run(
        &mut self,
        need: usize,
        wait: Wait,
        held: impl FnOnce() -> usize,
    ) -> Result<&mut Bump, AllocError> {
        self.past_run_or_refill(need, wait, held)
    }

    /// Whether the pool is open and the current run has `need` bytes: the
    /// allocation fast path's one test.
    #[inline(always)]
    fn has_run_for(&self, need: usize) -> bool {
        !self.pool.is_closed() && self.current.as_ref().is_some_and(|bump| bump.fits(need))
    }

    /// The current buf with at least `need` bytes left in its run, where
    /// the current run has fewer: see [`cursor_holding`](Allocator::cursor_holding).
    /// Inlined into the two out-of-line paths that call it, so that a run
    /// turned over costs one call.
    #[inline(always)]
    fn past_run_or_refill(
        &mut self,
        need: usize,
        wait: Wait,
        held: impl FnOnce() -> usize,
    ) -> Result<&mut Bump, AllocError> {
        if self.pool.is_closed() {
            return Err(AllocError::Closed);
        }
        // Past the fast path's test, with the pool open: the current run,
        // if any, is too short (and where it were not, `past_run` would
        // still make room).
        let bump = if self.current.is_some() {
            self.past_run(need, wait, held)
        } else {
            self.refill(need, wait, held)
        }?;
        // A new buf's first run may be shorter than one large slice.
        bump.cover(need);
        Ok(bump)
    }

    /// Makes room for `need` bytes past the end of the current run: in the
    /// current buf where [`Bump::make_room`] can, else in a new one. Kept
    /// apart from [`refill`](Allocator::refill), which is cold: this runs
    /// every `REUSE_CHECK` bytes, inlined into the out-of-line paths of
    /// [`past_run_or_refill`](Allocator::past_run_or_refill).
    #[inline(always)]
    fn past_run(
        &mut self,
        need: usize,
        wait: Wait,
        held: impl FnOnce() -> usize,
    ) -> Result<&mut Bump, AllocError> {
        if self.current.as_mut().is_some_and(|bump| bump.make_room(need)) || self.turn_over(need) {
            return Ok(self.current.as_mut().expect("room was made in the current buf"));
        }
        self.refill(need, wait, held)
    }

    /// [`turn_over`](Allocator::turn_over) for an allocator that keeps no
    /// spent bufs, which turns over through the thread's cache instead:
    /// where the current buf is of the standard size and holds `need`
    /// bytes, and the cache has a buf, that buf becomes the current one and
    /// the filled one is let go (back to the cache once its slices are
    /// gone). Says whether it did.
    ///
    /// The first step of [`refill`](Allocator::refill), which is what the
    /// rest of it would do in that case, without the steps the case makes
    /// moot: such an allocator holds no other buf to look at, a buf of the
    /// standard size is the one the request gets, and a cached buf is
    /// counted as in use already, so there is no budget to check and
    /// nothing to wait for. (Not in `past_run` beside `turn_over`: there it
    /// cost every allocation through a `LocalAllocator` about one
    /// instruction, `past_run` saving more registers.)
    #[inline(always)]
    fn turn_over_cached(&mut self, need: usize) -> bool {
        if self.spent_cap != 0 {
            return false;
        }
        let Some(bump) = self.current.as_ref() else { return false };
        let cap = bump.cap();
        if cap < need || cap != self.pool.buf_size() {
            return false;
        }
        let Some(lease) = self.pool.lease_standard_cached() else { return false };
        let fresh = self.start(lease);
        if let Some(filled) = self.current.replace(fresh) {
            // What `retire` does for an allocator that keeps no spent bufs,
            // without its checks for a list it never has: through `retire`
            // this path took 36 instructions more per buf (callgrind).
            self.let_go(filled.lease);
        }
        true
    }

    /// The common case of [`reuse_held`](Allocator::reuse_held), in a few
    /// loads and stores: where the allocator tracks no dead parts and the
    /// oldest spent buf, as large as the current one, is free, that buf
    /// becomes the current one, rewound, and the current one goes to the
    /// back of the list. Says whether it did.
    ///
    /// This is what [`refill`](Allocator::refill) does in that case, without
    /// the checks the case makes moot: with the list no longer than
    /// `spent_cap`, none goes back to the pool, and a buf of the spent
    /// list's size is a standard-size one, which the list keeps. Small bufs
    /// with a window of slices alive take this path every few slices.
    #[inline(always)]
    fn turn_over(&mut self, need: usize) -> bool {
        let Some(bump) = self.current.as_mut() else { return false };
        if bump.segments.is_some() || self.track || self.spent_skip > 0 || self.spent.len() > self.spent_cap {
            return false;
        }
        let Some(oldest) = self.spent.front() else { return false };
        // SAFETY: the lease holds its buf.
        let cap = unsafe { Header::cap(oldest.buf()) };
        if cap != bump.cap() || cap < need || !oldest.is_sole_holder() || self.records.in_use() {
            return false;
        }
        // The oldest becomes the current lease, rewound as a fresh cursor
        // (it has no record either), and the filled one the newest spent.
        if !self.spent.swap_oldest(&mut bump.lease) {
            return false;
        }
        bump.rewind(0);
        true
    }

    /// Takes a buf with at least `need` bytes, where the current one (if
    /// any) cannot make room.
    ///
    /// An allocator without spent bufs first looks in the thread's cache
    /// (see [`turn_over_cached`](Allocator::turn_over_cached)); one at home
    /// looks for room in the bufs it holds (see
    /// [`reuse_held`](Allocator::reuse_held)). Else, where no slice of the
    /// current buf is alive, or the request may wait, the current buf goes
    /// first: its memory may be what the new buf needs, and a wait must not
    /// hold a buf whose slices may all be dropped meanwhile. A request that
    /// does not wait keeps a buf that slices still use until the new one is
    /// in hand, so that when it is refused the allocator carries on where it
    /// was. A request no buf size can hold fails before any of this and
    /// keeps the current buf too; any other failure leaves the allocator
    /// with no buf, and the next allocation takes one anew.
    ///
    /// `held` is the data bytes of other bufs the caller keeps alive while
    /// it waits; see [`Pool::useful_wait`].
    #[cold]
    #[inline(never)]
    fn refill(
        &mut self,
        need: usize,
        wait: Wait,
        held: impl FnOnce() -> usize,
    ) -> Result<&mut Bump, AllocError> {
        if self.reuse_current(need)
            || self.reuse_watched(need)
            || self.turn_over_cached(need)
            || self.reuse_held(need)
        {
            return Ok(self.current.as_mut().expect("room was found in a buf the allocator holds"));
        }
        let size = self.pool.size_class(need)?;
        let sole_holder = self.current.as_ref().is_some_and(|bump| bump.lease.is_sole_holder());
        let wait = self.pool.useful_wait(size, wait, held());
        let kept = match wait {
            Wait::Never if !sole_holder => self.current.take(),
            _ => {
                let filled = self.current.take();
                self.retire(filled);
                None
            }
        };
        match self.pool.lease(size, wait) {
            Ok(lease) => {
                self.retire(kept);
                let bump = self.start(lease);
                Ok(self.current.insert(bump))
            }
            Err(e) => {
                self.current = kept;
                Err(e)
            }
        }
    }

    /// Makes room for `need` bytes in a spent buf, where it can, and says
    /// whether it did: the spent buf becomes the current buf, the current
    /// one going to the spent list.
    ///
    /// The oldest spent buf is taken where its slices are all gone, and
    /// rewound to its start. Where it is in use, see
    /// [`reuse_in_use`](Allocator::reuse_in_use).
    #[inline(always)]
    fn reuse_held(&mut self, need: usize) -> bool {
        if self.spent_skip > 0 {
            self.spent_skip -= 1;
            return false;
        }
        let Some(oldest) = self.spent.front() else { return false };
        // SAFETY: the lease holds its buf.
        if unsafe { Header::cap(oldest.buf()) } < need {
            // A request for a larger buf, which no spent buf can serve.
            return false;
        }
        if !oldest.is_sole_holder() {
            return self.reuse_in_use(need);
        }
        let Some(free) = self.spent.pop_front() else { return false };
        self.reuse_free(free);
        true
    }

    /// Makes `free`, a spent buf no slice uses, the current buf; and, where
    /// more than `spent_cap` bufs are kept and the next oldest is free
    /// too, lets that one go back to the pool, so that free bufs do not
    /// pile up in the list after a burst.
    #[inline(always)]
    fn reuse_free(&mut self, mut free: Lease) {
        let mut segments = None;
        if self.track || self.records.in_use() {
            if self.track {
                self.free_streak += 1;
                self.track = self.free_streak <= TRACKED_BUFS;
            }
            segments = free.segments();
            if segments.is_some() != self.track {
                segments = self.refit(&mut free, segments);
            }
        }
        let filled = self.current.replace(Bump::new(free, segments));
        self.retire(filled);
        if self.spent.len() > self.spent_cap
            && self.spent.front().is_some_and(Lease::is_sole_holder)
            && let Some(next) = self.spent.pop_front()
        {
            self.let_go(next);
        }
    }

    /// [`reuse_held`](Allocator::reuse_held) where the oldest spent buf is
    /// in use.
    ///
    /// A spent buf in use whose live slices, were each as large as the one
    /// asked for, would fill at most a quarter of it is *mostly dead*: a
    /// few of its slices live long. That turns `track` on, so that bufs
    /// get segment records from then on. A buf with a record is cut from
    /// again where a dead part of it has room. Else, while `track` is on,
    /// or where the buf has a record or is mostly dead, it goes to the back
    /// of the list, and the next oldest is looked at, up to `SPENT_LOOK` of
    /// them. Any other buf in use ends the search: its slices are simply
    /// younger than the list (a window of slices wider than it), and
    /// turning the list over would only scramble its order.
    ///
    /// Where the oldest is in use with no room and the list full, the
    /// slices live longer than the list turns over: the oldest is pushed
    /// out, and for as many refills as the list holds, filled bufs go back
    /// to the pool as they would without it, at once, while their headers
    /// are still in the cache, rather than to the list only to be pushed
    /// out later. Measured side by side against an allocator that keeps no
    /// spent bufs, a window of 256 slices of 1500 bytes in 16 KiB bufs (and
    /// a list of eight) took 1.07x to 1.15x the time without the pause,
    /// 0.99x to 1.06x with it.
    #[cold]
    #[inline(never)]
    fn reuse_in_use(&mut self, need: usize) -> bool {
        for _ in 0..self.spent.len().min(SPENT_LOOK) {
            let Some(oldest) = self.spent.front() else { return false };
            // SAFETY: the lease holds its buf.
            let cap = unsafe { Header::cap(oldest.buf()) };
            if cap < need {
                return false;
            }
            if oldest.is_sole_holder() {
                let Some(free) = self.spent.pop_front() else { return false };
                self.reuse_free(free);
                return true;
            }
            let mostly_dead = mostly_dead(oldest.others() as u64, need, cap);
            if mostly_dead {
                self.start_tracking();
            }
            let full = self.spent.len() >= self.list_cap();
            let Some(in_use) = self.spent.pop_front() else { return false };
            let tracked = in_use.segments().is_some();
            let in_use = match Bump::dead_part(in_use, need) {
                Ok(bump) => {
                    let filled = self.current.replace(bump);
                    self.retire(filled);
                    return true;
                }
                Err(in_use) => in_use,
            };
            if full {
                self.let_go(in_use);
                self.spent_skip = self.list_cap();
                return false;
            }
            if !mostly_dead && !tracked && !self.track {
                self.spent.push_front(in_use);
                return false;
            }
            self.spent.push_back(in_use);
        }
        false
    }

    /// Makes room for `need` bytes in a dead part of the current buf past
    /// the cursor, where it has a segment record (see `segments.rs`), and
    /// says whether it did.
    #[inline(always)]
    fn reuse_current(&mut self, need: usize) -> bool {
        let Some(bump) = self.current.as_mut() else { return false };
        if bump.segments.is_none() {
            return false;
        }
        let from = bump.offset();
        bump.reuse_dead(from, need)
    }

    /// [`reuse_orphan`](Allocator::reuse_orphan) where the refill probes or
    /// the allocator tracks: a countdown and a flag for the others.
    #[inline(always)]
    fn reuse_watched(&mut self, need: usize) -> bool {
        if self.home {
            return false;
        }
        self.probe_in = self.probe_in.saturating_sub(1);
        (self.probe_in == 0 || self.track) && self.reuse_orphan(need)
    }

    /// Makes room for `need` bytes in a buf the pool keeps watch on, where
    /// it can, for an allocator that may move, and says whether it did:
    /// the buf becomes the current one, and the current one is let go.
    ///
    /// Once in `PROBE_BYTES` of bufs turned over (at every refill for the
    /// first `EARLY_PROBES`), the refill probes (see
    /// [`look_at_probe`](Allocator::look_at_probe)), which is how the
    /// allocator learns that a few slices live long, and starts tracking;
    /// here it only notes so, and the request's size. While it tracks, every
    /// buf it starts cutting from counts its drops, and every one it lets
    /// go while slices use it goes on the pool's list of orphans (see
    /// `pool/orphans.rs`, and "Counting every drop" in `segments.rs` for the
    /// record that finds the dead parts). A refill then looks at the oldest
    /// orphans, up to `SPENT_LOOK`, and takes the first with a dead part of
    /// `need` bytes; any other goes to the back of the list. Tracking stops
    /// after `TRACKED_BUFS` refills in a row take no orphan (or find no
    /// sign at a probe): an orphan taken is a buf some slices kept while
    /// others were gone.
    #[cold]
    #[inline(never)]
    fn reuse_orphan(&mut self, need: usize) -> bool {
        let cap = self.pool.buf_size();
        self.probing = self.probe_in == 0;
        if self.probing {
            if self.early_probes == EARLY_PROBES {
                // Bufs that came back to this thread before the allocator's
                // first probe were other allocators': they say nothing of
                // where this one's slices are dropped.
                self.pool.take_returns_here();
            }
            self.early_probes = self.early_probes.saturating_sub(1);
            self.probe_in = if self.early_probes > 0 {
                1
            } else {
                u32::try_from((PROBE_BYTES / cap).max(1)).unwrap_or(u32::MAX)
            };
        }
        if self.track {
            self.free_streak += 1;
        }
        if self.probing {
            self.probe_need = u32::try_from(need).unwrap_or(u32::MAX);
        }
        if self.track && self.free_streak > TRACKED_BUFS {
            self.track = false;
            self.came_back = false;
        }
        self.watch = self.track || self.probing;
        if !self.track || need > cap {
            return false;
        }
        let taken = self.pool.adopt_orphan(SPENT_LOOK, need, |buf| {
            // SAFETY: `adopt_orphan` hands over a live orphan under the
            // pool's lock, which makes the caller its cutter. An orphan is
            // counting: it went on the list while its allocator tracked.
            let record = unsafe { Header::counting_record(buf) }?;
            // SAFETY: as above.
            let run = unsafe { record.as_ref().free_run(0, need) }?;
            // The flag read after the record's drops, as `segments.rs`
            // requires. SAFETY: as above.
            (!unsafe { Header::is_reshaped(buf) }).then_some(run)
        });
        let Some((orphan, run)) = taken else { return false };
        // An orphan kept alive by some slices while others are gone: worth
        // tracking on for.
        self.free_streak = 0;
        let bump = if orphan.is_sole_holder() {
            // Its last slice went after it was taken: the whole buf is free.
            let segments = orphan.segments();
            Bump::new(orphan, segments)
        } else {
            let mut bump = Bump::parked(orphan);
            // SAFETY: the run was free when found, with the buf not
            // reshaped, and stays so: only the cutter carves, and a split
            // since can only make the record miss the pieces of a region
            // outside the run.
            unsafe { bump.cut_from(run, need) };
            bump
        };
        let filled = self.current.replace(bump);
        self.retire(filled);
        true
    }

    /// Lets go of a buf the allocator is done cutting from. An allocator at
    /// home keeps a standard-size one as spent, for
    /// [`refill`](Allocator::refill) to reuse once its slices are gone, or
    /// to cut from its dead parts while a few slices live long: turning
    /// over bufs that way takes no lock and no atomic read-modify-write.
    /// The oldest spent buf goes (back to the pool once its slices are
    /// gone) where more than `list_cap` would be kept.
    ///
    /// An [`Allocator`] that may move between threads keeps none: one per
    /// connection or task is common, and each would hold its spent bufs.
    /// Nor does one from a pool with a budget (see `new_at_home`).
    #[inline]
    fn retire(&mut self, filled: Option<Bump>) {
        let Some(bump) = filled else { return };
        if self.spent_cap == 0 || self.spent_skip > 0 || bump.cap() != self.pool.buf_size() {
            self.let_go(bump.lease);
            return;
        }
        while self.spent.len() >= self.list_cap()
            && let Some(oldest) = self.spent.pop_front()
        {
            self.let_go(oldest);
        }
        self.spent.push_back(bump.lease);
    }

    /// Turns tracking on, or keeps it on for `TRACKED_BUFS` more refills.
    /// The first time, it makes room for the longer list and for a record
    /// for each buf the list and the cursor can hold: an allocator that
    /// never sees slices live long never pays for them, and one that does
    /// allocates for them once, then never again (each record itself is
    /// allocated when first needed, and kept).
    fn start_tracking(&mut self) {
        self.track = true;
        self.free_streak = 0;
        self.spent.reserve(TRACKED_BUFS);
        self.records.reserve(TRACKED_BUFS + 1);
    }

    /// The most spent bufs it keeps now: `TRACKED_BUFS` while tracking,
    /// else `spent_cap`.
    fn list_cap(&self) -> usize {
        if self.track && self.spent_cap > 0 { TRACKED_BUFS } else { self.spent_cap }
    }
}

/// The future of [`Allocator::ready`], which gives up the allocator's place
/// among the waiters when dropped.
struct Ready<'a> {
    alloc: &'a mut Allocator,
    len: usize,
}

impl Drop for Ready<'_> {
    fn drop(&mut self) {
        self.alloc.pool.cancel_wait(&mut self.alloc.ticket);
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        self.pool.cancel_wait(&mut self.ticket);
        // A tracking allocator's last buf goes on the list of orphans; none
        // goes in the probe slot, which no probe of this allocator will
        // look at.
        self.watch = self.track && !self.home;
        self.probing = false;
        if let Some(bump) = self.current.take() {
            self.let_go(bump.lease);
        }
    }
}

impl fmt::Debug for Allocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allocator")
            .field("reserve", &self.reserve)
            .field("remaining", &self.current.as_ref().map_or(0, Bump::remaining))
            .field("spent", &self.spent.len())
            .field("tracking", &self.track)
            .finish_non_exhaustive()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn alloc_failed(e: AllocError, len: usize, reserve: usize) -> ! {
    panic!("refbuf: cannot allocate a slice of {len} bytes with {reserve} bytes of reserve: {e}")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::io::Write;

    use bytes::BufMut;
    use proptest::prelude::*;

    use super::Allocator;
    use crate::{Chain, Pool, Slice};

    /// Makes `alloc` act as an allocator that has seen a few slices live
    /// long: every buf it starts counts its drops, so its dead parts can be
    /// cut from. And it does not probe, so a buf it lets go in use is an
    /// orphan.
    fn track_without_probes(alloc: &mut Allocator) {
        alloc.start_tracking();
        (alloc.early_probes, alloc.probe_in) = (0, u32::MAX);
    }

    /// A `Writer` whose message fills a dead part of a buf up to a live
    /// slice, then grows after that slice dies: the room past the message's
    /// end is the dead slice's, so the message grows in place there, and
    /// every byte it holds is one that was written, in order.
    #[test]
    fn a_writer_grows_its_message_into_a_dead_part_it_ends_at() {
        let pool = Pool::builder().buf_size(1024).build();
        let mut alloc = pool.allocator(16);
        track_without_probes(&mut alloc);
        // A buf of three slices, headroom and data: [0, 100), [100, 300) and
        // [300, 1024).
        let first = alloc.alloc(84);
        let live = alloc.alloc(184);
        let rest = alloc.alloc(708);
        let at = first.as_ptr();
        drop(first);
        // Fills a second buf: the first is let go with a dead part.
        let other = alloc.alloc(1008);
        // The message's first part comes from the first buf's dead part,
        // through the pool's list of orphans, and fills it up to the live
        // slice; then that slice dies.
        let mut w = alloc.writer();
        let head: Vec<u8> = (1..=84).collect();
        w.write_all(&head).unwrap();
        drop(live);
        let body: Vec<u8> = (85..=200).collect();
        w.write_all(&body).unwrap();
        let chain = w.finish();
        let parts: Vec<_> = chain.iter().map(|part| (part.as_ptr(), part.len())).collect();
        assert_eq!(parts, [(at, 200)], "the message is cut where the first slice was, and grew in place");
        assert_eq!(bytes_of(&chain), [head, body].concat(), "the message holds what was written");
        drop((rest, other, chain));
    }

    /// What one step of [`writer_messages_and_slices_keep_their_bytes`] does.
    #[derive(Debug, Clone)]
    enum Step {
        /// A slice of `len` bytes from `alloc_for_overwrite`, filled from `seed`.
        Slice(usize, u8),
        /// A message: writes of these lengths, each filled from its seed,
        /// through `io::Write` or else through `BufMut`'s `chunk_mut`, and
        /// after each the drop of the held slice or message at that index,
        /// where there is one.
        Message(Vec<(usize, u8, bool, Option<usize>)>),
        /// Drops the held slice or message at this index, where there is one.
        Drop(usize),
        /// Starts tracking again, which stops after a run of refills that
        /// take no orphan.
        Track,
    }

    /// `len` bytes made from `seed`, none of them zero, so that zeroed
    /// headroom where a message's bytes belong shows.
    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|k| seed.wrapping_add((k % 251) as u8).wrapping_mul(3) | 1).collect()
    }

    /// What the test holds: a slice, or a finished message.
    enum Held {
        Slice(Slice),
        Message(Chain),
    }

    impl Held {
        fn bytes(&self) -> Vec<u8> {
            match self {
                Held::Slice(s) => s.to_vec(),
                Held::Message(chain) => bytes_of(chain),
            }
        }
    }

    /// A chain's bytes, its parts' in order.
    fn bytes_of(chain: &Chain) -> Vec<u8> {
        chain.iter().flat_map(|part| part.iter().copied()).collect()
    }

    /// Each held slice and message still has its bytes, checked after
    /// every step; `step` says which.
    fn check(held: &[(Held, Vec<u8>)], step: usize) {
        for (i, (item, want)) in held.iter().enumerate() {
            assert!(
                item.bytes() == *want,
                "after step {step}, held item {i} ({} bytes) lost its bytes",
                want.len()
            );
        }
    }

    fn step() -> impl Strategy<Value = Step> {
        let write = (1..400usize, any::<u8>(), any::<bool>(), prop::option::of(0..12usize));
        prop_oneof![
            8 => (1..300usize, any::<u8>()).prop_map(|(len, seed)| Step::Slice(len, seed)),
            4 => prop::collection::vec(write, 1..6).prop_map(Step::Message),
            8 => (0..12usize).prop_map(Step::Drop),
            1 => Just(Step::Track),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 2 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Slices and `Writer` messages made by an allocator that tracks
        /// (so that it cuts from the dead parts of bufs others keep, and a
        /// message may grow into the part a slice dropped mid-message
        /// leaves), in small bufs that turn over often: every byte of
        /// every one held is as written, whatever was dropped around it.
        #[test]
        fn writer_messages_and_slices_keep_their_bytes(
            buf_size in prop_oneof![Just(256usize), Just(512), Just(1024)],
            reserve in 0..24usize,
            steps in prop::collection::vec(step(), 1..if cfg!(miri) { 12 } else { 80 }),
        ) {
            let pool = Pool::builder().buf_size(buf_size).build();
            let mut alloc = pool.allocator(reserve);
            track_without_probes(&mut alloc);
            let mut held: Vec<(Held, Vec<u8>)> = Vec::new();
            for (at, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Slice(len, seed) => {
                        let mut s = alloc.alloc_for_overwrite(len);
                        let want = pattern(seed, len);
                        s.copy_from_slice(&want);
                        held.push((Held::Slice(s), want));
                    }
                    Step::Message(writes) => {
                        let mut w = alloc.writer();
                        let mut want = Vec::new();
                        for (len, seed, through_write, drop_at) in writes {
                            let bytes = pattern(seed, len);
                            if through_write {
                                w.write_all(&bytes).expect("an open pool without a budget has memory");
                            } else {
                                let mut rest = &bytes[..];
                                while !rest.is_empty() {
                                    let room = w.chunk_mut();
                                    let n = room.len().min(rest.len());
                                    room[..n].copy_from_slice(&rest[..n]);
                                    // SAFETY: the first `n` bytes of the room were just written.
                                    unsafe { w.advance_mut(n) };
                                    rest = &rest[n..];
                                }
                            }
                            want.extend_from_slice(&bytes);
                            if let Some(i) = drop_at.filter(|&i| i < held.len()) {
                                held.swap_remove(i);
                            }
                        }
                        held.push((Held::Message(w.finish()), want));
                    }
                    Step::Drop(i) => {
                        if i < held.len() {
                            held.swap_remove(i);
                        }
                    }
                    Step::Track => track_without_probes(&mut alloc),
                }
                check(&held, at);
            }
        }
    }
}
