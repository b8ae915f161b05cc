//! Where the memory went: `Pool::report`, with the
//! `diagnostics` feature.
//!
//! With the feature on, every buf counts its live slices and the bytes they
//! own ([`Usage`]), and the pool links its bufs in use into a list
//! ([`InUse`]). Both cost a few relaxed atomic operations per slice and a
//! lock per buf taken, which is why the feature is off by default. Off, both
//! types are empty and their methods do nothing, so the rest of the crate
//! calls them without a `cfg` of its own, and [`ENABLED`] lets it skip the
//! work that only feeds them (reading the clock, taking the pool's lock).

#[cfg(feature = "diagnostics")]
use core::fmt;
use core::ptr::NonNull;
#[cfg(feature = "diagnostics")]
use std::time::Duration;

use crate::buf::Header;
#[cfg(feature = "diagnostics")]
use crate::free_list::FreeList;
#[cfg(feature = "diagnostics")]
use crate::sync::{AtomicUsize, Ordering};

/// Whether the `diagnostics` feature is on.
pub(crate) const ENABLED: bool = cfg!(feature = "diagnostics");

/// What the `diagnostics` feature tracks about a buf in use; empty without
/// it. The counters are statistics read while other threads change them, so
/// every access is `Relaxed`: they publish no other data and pair with
/// nothing.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    /// Live slices into the buf.
    #[cfg(feature = "diagnostics")]
    holders: AtomicUsize,
    /// Bytes those slices own, headroom included.
    #[cfg(feature = "diagnostics")]
    live_bytes: AtomicUsize,
    /// Leases on the buf: one while an allocator or reader holds it, and
    /// two for the moment between an allocator taking a buf off its pool's
    /// orphans and the lease that put it there finishing letting go.
    #[cfg(feature = "diagnostics")]
    leases: AtomicUsize,
}

impl Usage {
    /// Records `holders` slices and `bytes` owned, gained (positive) or
    /// given up.
    #[inline(always)]
    pub(crate) fn track(&self, holders: isize, bytes: isize) {
        #[cfg(feature = "diagnostics")]
        {
            // Relaxed: statistics; see the type.
            self.holders.fetch_add(holders as usize, Ordering::Relaxed);
            self.live_bytes.fetch_add(bytes as usize, Ordering::Relaxed);
        }
        #[cfg(not(feature = "diagnostics"))]
        let _ = (holders, bytes);
    }

    /// Starts the record of a buf an allocator or reader has just taken.
    /// A buf with no references has no slices, so both counts are zero;
    /// they are reset all the same, so that a miscount never passes to the
    /// buf's next user.
    #[inline]
    pub(crate) fn start_lease(&self) {
        #[cfg(feature = "diagnostics")]
        {
            // Relaxed: statistics; see the type.
            let holders = self.holders.swap(0, Ordering::Relaxed);
            let live_bytes = self.live_bytes.swap(0, Ordering::Relaxed);
            debug_assert!(
                holders == 0 && live_bytes == 0,
                "internal: an idle buf counted {holders} slices owning {live_bytes} bytes"
            );
            self.leases.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a lease of a buf whose slices are alive: taken off its
    /// pool's orphans, its counts go on.
    #[inline]
    pub(crate) fn resume_lease(&self) {
        // Relaxed: statistics; see the type.
        #[cfg(feature = "diagnostics")]
        self.leases.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that no allocator or reader holds the buf any more.
    #[inline]
    pub(crate) fn end_lease(&self) {
        // Relaxed: statistics; see the type.
        #[cfg(feature = "diagnostics")]
        self.leases.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The bufs of a pool in use, for `Pool::report`:
/// linked through their idle links, which a buf in use does not otherwise
/// need, and stamped with when they were taken. It does not own them: a buf
/// leaves the list when its last holder lets go, before it is cached, kept
/// or freed. Empty without the `diagnostics` feature.
#[derive(Debug, Default)]
pub(crate) struct InUse {
    #[cfg(feature = "diagnostics")]
    list: FreeList,
}

impl InUse {
    /// An empty list.
    pub(crate) const EMPTY: InUse = InUse {
        #[cfg(feature = "diagnostics")]
        list: FreeList::EMPTY,
    };

    /// Adds `buf`, taken at `since` (nanoseconds on the pool's clock).
    ///
    /// # Safety
    /// `buf` was just leased, is in no list, and is not yet in this one;
    /// the caller holds the pool's lock.
    #[inline]
    pub(crate) unsafe fn add(&mut self, buf: NonNull<Header>, since: u64) {
        // SAFETY: as the caller guarantees; a buf in use has its idle links
        // free.
        #[cfg(feature = "diagnostics")]
        unsafe {
            self.list.push_newest(buf, since)
        };
        #[cfg(not(feature = "diagnostics"))]
        let _ = (buf, since);
    }

    /// Takes `buf` out, as its last holder lets go.
    ///
    /// # Safety
    /// `buf` is in this list, and the caller holds the pool's lock.
    #[inline]
    pub(crate) unsafe fn remove(&mut self, buf: NonNull<Header>) {
        // SAFETY: as the caller guarantees.
        #[cfg(feature = "diagnostics")]
        unsafe {
            self.list.unlink(buf)
        };
        #[cfg(not(feature = "diagnostics"))]
        let _ = buf;
    }

    /// A report of every buf in the list, oldest first, its age measured at
    /// `now`; the caller holds the pool's lock, which keeps them live.
    #[cfg(feature = "diagnostics")]
    pub(crate) fn report(&self, now: u64) -> PoolReport {
        let mut bufs = Vec::new();
        // SAFETY: every buf in the list is in use, and live while the
        // caller holds the pool's lock: its last holder takes it out, under
        // that lock, before the buf is cached, kept or freed.
        unsafe {
            self.list.for_each(|buf, since| {
                bufs.push(BufReport::of(buf, Duration::from_nanos(now.saturating_sub(since))))
            })
        };
        bufs.reverse();
        PoolReport { bufs }
    }
}

/// The bufs of a pool in use at one moment, oldest first; its `Display` is
/// a table.
#[cfg(feature = "diagnostics")]
///
/// # Pinning
///
/// A buf goes back to the pool only when its last slice drops, so one small
/// long-lived slice keeps a whole buf in use. The report flags such a buf as
/// *pinned*: its live slices own less than a quarter of it and no allocator
/// or reader is filling it. The fix is to copy long-lived small data out
/// into its own allocator (`long_lived.copy_from_slice(&slice)`), whose bufs
/// fill up with long-lived data only, and drop the original so its big buf
/// can return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// One entry per buf in use.
    pub bufs: Vec<BufReport>,
}

/// One buf in use.
#[cfg(feature = "diagnostics")]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufReport {
    /// Data bytes of the buf.
    pub size: usize,
    /// Bytes its live slices own, headroom included.
    pub live_bytes: usize,
    /// Live slices into it.
    pub holders: usize,
    /// Whether an allocator or reader holds it.
    pub leased: bool,
    /// How long ago it was taken from the pool.
    pub age: Duration,
}

#[cfg(feature = "diagnostics")]
impl BufReport {
    /// A snapshot of `buf`'s usage, `age` after it was taken.
    ///
    /// The caller must hold the pool's lock with `buf` in its [`InUse`]
    /// list, which keeps it live.
    fn of(buf: NonNull<Header>, age: Duration) -> BufReport {
        // SAFETY: the caller keeps `buf` live, as above.
        let (size, usage) = unsafe { (Header::cap(buf), Header::usage(buf)) };
        BufReport {
            size,
            // Relaxed: statistics; see `Usage`.
            live_bytes: usage.live_bytes.load(Ordering::Relaxed),
            holders: usage.holders.load(Ordering::Relaxed),
            leased: usage.leases.load(Ordering::Relaxed) > 0,
            age,
        }
    }

    /// Whether a few small slices keep this buf from its pool: they own less
    /// than a quarter of it, and no allocator or reader is using it.
    pub fn is_pinned(&self) -> bool {
        !self.leased && self.live_bytes < self.size / 4
    }
}

#[cfg(feature = "diagnostics")]
impl PoolReport {
    /// The pinned bufs; see [`BufReport::is_pinned`].
    pub fn pinned(&self) -> impl Iterator<Item = &BufReport> {
        self.bufs.iter().filter(|b| b.is_pinned())
    }
}

#[cfg(feature = "diagnostics")]
impl fmt::Display for PoolReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>10} {:>10} {:>6} {:>8} {:>7} {:>12}  note",
            "size", "live", "live%", "holders", "leased", "age"
        )?;
        for b in &self.bufs {
            let percent = b.live_bytes.saturating_mul(100).checked_div(b.size).unwrap_or(0);
            let note = if b.is_pinned() { "PINNED: copy long-lived data out" } else { "" };
            let leased = if b.leased { "yes" } else { "no" };
            let age = format!("{:.3?}", b.age);
            writeln!(
                f,
                "{:>10} {:>10} {percent:>5}% {:>8} {leased:>7} {age:>12}  {note}",
                b.size, b.live_bytes, b.holders
            )?;
        }
        let pinned: usize = self.pinned().map(|b| b.size).sum();
        write!(f, "{} bufs in use, {} pinned ({pinned} bytes)", self.bufs.len(), self.pinned().count())
    }
}
