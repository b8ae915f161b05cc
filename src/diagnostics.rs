//! Where the memory went: [`Pool::report`](crate::Pool::report), with the
//! `diagnostics` feature.
//!
//! With the feature on, every buf counts its live slices and the bytes they
//! own (`buf::Usage`), and the pool links its bufs in use into a list. Both
//! cost a few relaxed atomic operations per slice and a lock per buf taken,
//! which is why the feature is off by default; off, none of it is compiled.

use core::fmt;
use core::ptr::NonNull;
use std::time::Duration;

use crate::buf::Header;
use crate::sync::Ordering;

/// The bufs of a pool in use at one moment, oldest first; its `Display` is
/// a table.
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

impl BufReport {
    /// A snapshot of `buf`'s usage, `age` after it was taken.
    ///
    /// The caller must hold the pool's lock with `buf` registered in use,
    /// which keeps it live.
    pub(crate) fn of(buf: NonNull<Header>, age: Duration) -> BufReport {
        // SAFETY: the caller keeps `buf` live, as above.
        let (size, usage) = unsafe { (Header::cap(buf), Header::usage(buf)) };
        BufReport {
            size,
            // Relaxed: statistics; see `Usage`.
            live_bytes: usage.live_bytes.load(Ordering::Relaxed),
            holders: usage.holders.load(Ordering::Relaxed),
            leased: usage.leased.load(Ordering::Relaxed),
            age,
        }
    }

    /// Whether a few small slices keep this buf from its pool: they own less
    /// than a quarter of it, and no allocator or reader is using it.
    pub fn is_pinned(&self) -> bool {
        !self.leased && self.live_bytes < self.size / 4
    }
}

impl PoolReport {
    /// The pinned bufs; see [`BufReport::is_pinned`].
    pub fn pinned(&self) -> impl Iterator<Item = &BufReport> {
        self.bufs.iter().filter(|b| b.is_pinned())
    }
}

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
