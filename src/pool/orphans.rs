//! Orphans: bufs that a tracking `Allocator` let go while slices still used
//! them, listed by the pool so that an allocator (any of the pool's, on any
//! thread) can look at them again and cut from their dead parts; and the
//! probes, bufs listed so that an allocator that does not track can see
//! whether slices live long.
//!
//! The list holds no reference: a buf on it is kept alive by its slices
//! alone, and goes back to the pool when the last of them is dropped, as
//! any buf does. So the list never keeps memory that no slice uses, and an
//! idle allocator keeps nothing on it.
//!
//! # Why a buf on the list is live
//!
//! A buf is put on the list (and marked listed in its header) under the
//! pool's lock by a holder of references, before it gives them up. The
//! thread that drops its last reference reads the mark (after its `Acquire`
//! load of the count, which the holder's `Release` decrement published),
//! takes the buf off the list under the pool's lock before the buf goes
//! back, on either return path (`forget_listed`, from
//! `PoolShared::return_to_cache` or `PoolShared::return_shared`). So
//! whoever holds the lock finds on the list only bufs whose memory is
//! still there: alive, or with a last reference just dropped and a thread
//! waiting for the lock to take them off.
//!
//! So a listed buf's mark never reads "off every list" until it is off
//! every list for good: a buf moved within the list, or from the probes to
//! the list of orphans, keeps a mark that sends its last releaser to the
//! lock. Its references are no reason to think it alive: the count can
//! reach zero at any moment; only the mark and the lock keep it.
//!
//! A buf is taken from the list ([`PoolShared::adopt_orphan`]) under the
//! lock, by adding a batch of references to a count that is not zero, as
//! std's `Weak::upgrade` does ([`Lease::upgrade`]): a count that is zero
//! stays zero (no reference is left to make another from), so a buf whose
//! last reference is gone is left for its thread to take off. Once the
//! count is raised, the buf is the taker's to cut from, as if it had never
//! let it go. The marks of its segment record were written by the
//! allocator that put it on the list, before its unlock, and are read and
//! written by the next one after its lock.
//!
//! # The probes
//!
//! From time to time an `Allocator` lists a buf it lets go while slices
//! still use it as a probe, in the set of probes its thread's number picks
//! ([`PROBE_SETS`]), and looks at the probe listed before it in that set:
//! that is how it learns that a few slices live long, and starts tracking
//! (see `Allocator::look_at_probe`). The probes are listed as the
//! orphans are, holding no reference, with the same mark in the header and
//! the same argument for why a listed buf is live.

use core::ptr::NonNull;

use crate::buf::{Header, IdleLinks, Lease, Listed};
use crate::sync::lock;

use super::PoolShared;
use super::state::State;

/// The pool's orphans, oldest first, linked through their headers
/// (`Header::with_orphan_links`); see the module docs. Touched only under
/// the pool's lock.
pub(super) struct Orphans {
    oldest: Option<NonNull<Header>>,
    newest: Option<NonNull<Header>>,
}

// SAFETY: the list is reached only under the pool's lock, whichever thread
// holds it, and names bufs (kept alive by their slices, see the module
// docs), whose headers may be touched from any thread.
unsafe impl Send for Orphans {}

/// How many probes the pool lists: a probe is looked at once this many
/// more were listed (see `Allocator::look_at_probe`).
const PROBES: usize = 1;

/// How many sets of probes the pool keeps. A probe is listed in, and looks
/// at, the set its thread's number picks, so that threads probing at once
/// mostly look at bufs of their own: a look at a buf another thread is
/// cutting from reads and writes its header, cache lines that thread
/// holds. One under loom, whose models check the protocol, the same for
/// every set.
const PROBE_SETS: usize = if cfg!(loom) { 1 } else { 8 };

/// The pool's probes, in sets (see [`PROBE_SETS`]), each oldest first,
/// each probe with the note the last look at it left (in its header's
/// `since`). Listed as the orphans are; touched only under the pool's lock.
pub(super) struct Probes([[Option<NonNull<Header>>; PROBES]; PROBE_SETS]);

// SAFETY: as for `Orphans`.
unsafe impl Send for Probes {}

impl Probes {
    /// No probe.
    pub(super) const EMPTY: Probes = Probes([[None; PROBES]; PROBE_SETS]);

    /// Takes `buf` off the probes.
    fn remove(&mut self, buf: NonNull<Header>) {
        for set in &mut self.0 {
            if let Some(at) = set.iter().position(|&probe| probe == Some(buf)) {
                set[at..].rotate_left(1);
                set[PROBES - 1] = None;
                return;
            }
        }
    }
}

/// What becomes of the oldest probe, once looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// Listed again as the newest probe, with a note for the next look,
    /// in the place of the buf that would have been listed.
    Again(Seen),
    /// Onto the list of orphans.
    Orphan,
    /// Off every list: its slices keep it, and it goes back to the pool
    /// with the last of them, as any buf.
    Forget,
}

/// What the looks at a probe saw: how many slices used it when its
/// allocator let it go, how many at the last look (as many as then,
/// before the first), and how many looks found it so far, and found some
/// of its slices gone. Kept in its header's `since` while it is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    let_go: u32,
    last: u32,
    looks: u8,
    gone_looks: u8,
}

impl Seen {
    /// The most slices a note tells apart: more count as this many.
    const MOST: u32 = (1 << 24) - 1;

    /// A probe let go with `slices` alive.
    fn let_go(slices: usize) -> Seen {
        let slices = Seen::clamp(slices);
        Seen { let_go: slices, last: slices, looks: 0, gone_looks: 0 }
    }

    /// `slices` as a note holds it.
    fn clamp(slices: usize) -> u32 {
        u32::try_from(slices).map_or(Seen::MOST, |n| n.min(Seen::MOST))
    }

    /// The note after a look that found `slices` alive.
    pub(crate) fn looked(self, slices: usize) -> Seen {
        let gone = self.some_gone(slices);
        Seen {
            last: Seen::clamp(slices),
            looks: self.looks.saturating_add(1),
            gone_looks: self.gone_looks.saturating_add(u8::from(gone)),
            ..self
        }
    }

    /// Whether `slices` alive is as many as the last look found (as when
    /// let go, before the first).
    pub(crate) fn steady(self, slices: usize) -> bool {
        Seen::clamp(slices) == self.last
    }

    /// Whether `slices` alive is fewer than when the probe was let go:
    /// some of its slices are gone.
    fn some_gone(self, slices: usize) -> bool {
        Seen::clamp(slices) < self.let_go
    }

    /// The looks noted so far.
    pub(crate) fn looks(self) -> u8 {
        self.looks
    }

    /// The looks noted so far that found some of its slices gone.
    pub(crate) fn gone_looks(self) -> u8 {
        self.gone_looks
    }

    /// The note as kept in `since`.
    fn pack(self) -> u64 {
        u64::from(self.let_go) << 40
            | u64::from(self.last) << 16
            | u64::from(self.looks) << 8
            | u64::from(self.gone_looks)
    }

    /// The note kept in `since` by [`pack`](Seen::pack).
    fn unpack(since: u64) -> Seen {
        let field = |shift: u32, bits: u32| ((since >> shift) & ((1 << bits) - 1)) as u32;
        Seen {
            let_go: field(40, 24),
            last: field(16, 24),
            looks: field(8, 8) as u8,
            gone_looks: field(0, 8) as u8,
        }
    }
}

/// An orphan passed over: its references then, and the bytes asked for.
/// Kept in its header's `since` (0, as a buf just listed has it, for none)
/// with each number cut to 32 bits: a note that reads the same for other
/// numbers only skips an orphan a while longer.
#[derive(Debug, Clone, Copy)]
struct Passed {
    refs: usize,
    need: usize,
}

impl Passed {
    /// The note kept in `since`.
    fn note(self) -> u64 {
        (self.need as u32 as u64) << 32 | (self.refs as u32).wrapping_add(1) as u64
    }

    /// Whether an orphan with `since` noted was passed over with as many
    /// references as it has now, `refs`, for a request no larger than
    /// `need`: its slices are as they were then (a drop or a split changes
    /// the count), so its dead parts are too, and none held that request.
    fn skips(since: u64, refs: usize, need: usize) -> bool {
        let noted = since as u32;
        noted != 0 && noted == (refs as u32).wrapping_add(1) && need as u32 as u64 >= since >> 32
    }
}

impl Orphans {
    /// An empty list.
    pub(super) const EMPTY: Orphans = Orphans { oldest: None, newest: None };

    /// Adds `buf` at the newest end.
    ///
    /// # Safety
    /// The caller holds the pool's lock, and a reference to `buf`, or has
    /// just taken `buf` off the probes with its mark left as a probe's;
    /// `buf` is on no other list.
    unsafe fn push_newest(&mut self, buf: NonNull<Header>) {
        // SAFETY: as the caller guarantees.
        unsafe {
            self.attach_newest(buf);
            Header::set_listed(buf, Listed::Orphan);
        }
    }

    /// Links `buf` in at the newest end, leaving its mark.
    ///
    /// # Safety
    /// As for [`push_newest`](Orphans::push_newest), or `buf` was detached
    /// from this list under the same lock.
    unsafe fn attach_newest(&mut self, buf: NonNull<Header>) {
        let links = IdleLinks { newer: None, older: self.newest, since: 0 };
        // SAFETY: the caller holds the lock, and `buf` is live.
        unsafe { Header::with_orphan_links(buf, |l| *l = links) };
        match self.newest {
            // SAFETY: `newest` is on the list, so live (see the module docs).
            Some(newest) => unsafe { Header::with_orphan_links(newest, |l| l.newer = Some(buf)) },
            None => self.oldest = Some(buf),
        }
        self.newest = Some(buf);
    }

    /// Takes `buf` off the list.
    ///
    /// # Safety
    /// The caller holds the pool's lock, and holds a reference to `buf` or
    /// owns it; `buf` is on this list.
    pub(super) unsafe fn unlink(&mut self, buf: NonNull<Header>) {
        // SAFETY: as the caller guarantees.
        unsafe { self.detach(buf) };
        // SAFETY: as above.
        unsafe { Header::set_listed(buf, Listed::No) };
    }

    /// Moves `buf` to the newest end, its mark unchanged: a buf on the list
    /// must never read as off it (see the module docs).
    ///
    /// # Safety
    /// The caller holds the pool's lock, and `buf` is on this list.
    unsafe fn move_to_newest(&mut self, buf: NonNull<Header>) {
        // SAFETY: as the caller guarantees.
        unsafe {
            self.detach(buf);
            self.attach_newest(buf);
        }
    }

    /// Moves `buf` to the newest end, as
    /// [`move_to_newest`](Orphans::move_to_newest) (where it is not there
    /// already), noting that it was passed over with `refs` references for
    /// a request of `need` bytes.
    ///
    /// # Safety
    /// As for `move_to_newest`.
    unsafe fn pass_over(&mut self, buf: NonNull<Header>, refs: usize, need: usize) {
        // SAFETY: as the caller guarantees.
        unsafe {
            if self.newest != Some(buf) {
                self.move_to_newest(buf);
            }
            Header::with_orphan_links(buf, |l| l.since = Passed { refs, need }.note());
        }
    }

    /// Takes `buf` out of the list's links, leaving its mark.
    ///
    /// # Safety
    /// The caller holds the pool's lock; `buf` is on this list, so live.
    unsafe fn detach(&mut self, buf: NonNull<Header>) {
        // SAFETY: the caller holds the lock, and `buf` is live.
        let IdleLinks { newer, older, .. } = unsafe { Header::with_orphan_links(buf, |l| *l) };
        match newer {
            // SAFETY: `newer` is on the list, so live.
            Some(newer) => unsafe { Header::with_orphan_links(newer, |l| l.older = older) },
            None => self.newest = older,
        }
        match older {
            // SAFETY: as above.
            Some(older) => unsafe { Header::with_orphan_links(older, |l| l.newer = newer) },
            None => self.oldest = newer,
        }
    }
}

impl State {
    /// Takes `buf` off the list of orphans or the probes where it is on
    /// one: for the thread that dropped its last reference, before the buf
    /// goes idle or is freed, or for the holder of its only reference.
    ///
    /// # Safety
    /// The caller owns `buf`, which has no references, or holds its only
    /// reference (with the lock, as `&mut State` says, none can be taken
    /// from the list meanwhile).
    pub(super) unsafe fn forget_listed(&mut self, buf: NonNull<Header>) {
        // SAFETY: the caller owns `buf`, and holds the lock (`&mut State`).
        match unsafe { Header::listed(buf) } {
            Listed::No => {}
            // SAFETY: as above; the mark says it is on the list.
            Listed::Orphan => unsafe { self.orphans.unlink(buf) },
            Listed::Probe => {
                self.probes.remove(buf);
                // SAFETY: as above.
                unsafe { Header::set_listed(buf, Listed::No) };
            }
        }
    }
}

impl PoolShared {
    /// Puts the buf of `lease`, which slices still use, on the list of
    /// orphans, and lets go of it.
    pub(crate) fn orphan(&self, lease: Lease) {
        {
            let mut state = lock(&self.state);
            // SAFETY: the lock is held, the lease holds a reference, and a
            // leased buf is on no list (taken off when adopted).
            unsafe { state.orphans.push_newest(lease.buf()) };
        }
        // After the unlock: this may be the last reference, whose thread
        // takes the lock to take the buf off the list.
        drop(lease);
    }

    /// Looks at up to `look` orphans, oldest first, under the pool's lock,
    /// and leases the first that `take` takes (`Some`), with what `take`
    /// found in it; each it does not goes to the newest end, to be looked
    /// at after the others. `take` is given each orphan that still has
    /// references, and none passed over since with as many for a request
    /// of `need` bytes or fewer: its slices are as they were (a drop or a
    /// split changes the count), so its dead parts are too, but for drops
    /// that a split made up for, which only leave a dead part unseen a
    /// while longer. An orphan whose last reference is gone is passed over:
    /// its thread is taking it off.
    pub(crate) fn adopt_orphan<T>(
        &self,
        look: usize,
        need: usize,
        mut take: impl FnMut(NonNull<Header>) -> Option<T>,
    ) -> Option<(Lease, T)> {
        let mut state = lock(&self.state);
        let orphans = &mut state.orphans;
        let mut at = orphans.oldest;
        for _ in 0..look {
            let Some(buf) = at else { break };
            // SAFETY: the lock is held and `buf` is on the list, so live.
            at = unsafe { Header::with_orphan_links(buf, |l| l.newer) };
            // SAFETY: as above.
            let refs = unsafe { Header::refs_hint(buf) };
            if refs == 0 {
                continue;
            }
            // SAFETY: as above.
            let since = unsafe { Header::with_orphan_links(buf, |l| l.since) };
            if !Passed::skips(since, refs, need)
                && let Some(found) = take(buf)
            {
                // SAFETY: the lock is held and `buf` is on the list.
                if let Some(lease) = unsafe { Lease::upgrade(buf) } {
                    // SAFETY: the lease holds a reference.
                    unsafe { orphans.unlink(buf) };
                    return Some((lease, found));
                }
                continue;
            }
            // SAFETY: the lock is held and `buf` is on the list (its mark,
            // which keeps its last releaser waiting for the lock, is left
            // as it is).
            unsafe { orphans.pass_over(buf, refs, need) };
            if at.is_none() {
                // The newest already: the rest were looked at.
                break;
            }
        }
        None
    }

    /// Takes `buf` off the list it is on, where the caller's one reference
    /// is still its only one (no lease was taken from the list meanwhile;
    /// none can be once it is off), and says whether it was.
    ///
    /// # Safety
    /// The caller holds one reference to `buf`, a buf of this pool.
    pub(crate) unsafe fn unlist_sole(&self, buf: NonNull<Header>) -> bool {
        let mut state = lock(&self.state);
        // Under the lock, which every lease taken from a list holds: a
        // count of one now stays so until the caller shares its reference.
        // SAFETY: the caller's reference keeps `buf` live.
        if unsafe { Header::refs_hint(buf) } != 1 {
            return false;
        }
        // SAFETY: as above; the caller's reference is the only one, so the
        // buf is the caller's as `forget_listed` needs it: nobody else can
        // reach it but through the list, which the lock guards.
        unsafe { state.forget_listed(buf) };
        true
    }

    /// Lists `probe` (a buf slices still use, held by the caller's lease),
    /// where there is one, as the newest probe of the set `thread` (the
    /// caller's number) picks, after looking at the oldest where the set
    /// lists [`PROBES`] of them (the one listed that many listings ago).
    /// `look` is given the oldest, under the pool's lock, with its slices
    /// and what the looks before saw ([`Seen`]), and says what becomes of
    /// it ([`Look`]); where it is listed again, `probe` goes on the list of
    /// orphans if `orphan` is set, and on no list else. A probe whose last
    /// reference is gone is passed over: its thread is taking it off.
    pub(crate) fn exchange_probe(
        &self,
        probe: Option<(&Lease, bool)>,
        thread: usize,
        look: impl FnOnce(NonNull<Header>, usize, Seen) -> Look,
    ) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let mut put = probe.map(|(lease, orphan)| (lease.buf(), Seen::let_go(lease.others_hint()), orphan));
        #[cfg_attr(loom, expect(clippy::modulo_one, reason = "one set under loom"))]
        let probes = &mut state.probes.0[thread % PROBE_SETS];
        if let Some(oldest) = probes[PROBES - 1].and(probes[0]) {
            probes.rotate_left(1);
            probes[PROBES - 1] = None;
            // SAFETY: the lock is held and `oldest` was listed, so live.
            let slices = unsafe { Header::refs_hint(oldest) };
            if slices == 0 {
                // SAFETY: as above; its thread finds it off the list.
                unsafe { Header::set_listed(oldest, Listed::No) };
            } else {
                // SAFETY: as above.
                let seen = Seen::unpack(unsafe { Header::with_orphan_links(oldest, |l| l.since) });
                match look(oldest, slices, seen) {
                    Look::Again(note) => {
                        if let Some((buf, _, true)) = put.replace((oldest, note, false)) {
                            // SAFETY: the caller's lease holds `buf`, which
                            // is on no list.
                            unsafe { state.orphans.push_newest(buf) };
                        }
                    }
                    // SAFETY: as above; its mark goes from probe to orphan
                    // with no step off every list, so its last releaser
                    // still waits for the lock.
                    Look::Orphan => unsafe { state.orphans.push_newest(oldest) },
                    // SAFETY: as above.
                    Look::Forget => unsafe { Header::set_listed(oldest, Listed::No) },
                }
            }
        }
        if let Some((buf, note, _)) = put {
            let Some(free) = probes.iter_mut().find(|slot| slot.is_none()) else {
                unreachable!("a probe slot is free: the oldest was taken")
            };
            *free = Some(buf);
            // SAFETY: the lock is held, and `buf` is held by the caller's
            // lease, or was the oldest probe, whose mark stays `Probe`
            // throughout.
            unsafe {
                Header::with_orphan_links(buf, |l| l.since = note.pack());
                Header::set_listed(buf, Listed::Probe);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Look, PROBE_SETS, Passed, Seen};
    use crate::Pool;
    use crate::buf::{Header, Listed};
    use crate::pool::Wait;

    /// A probe is looked at by the next probe of its own set only, and a
    /// buf that leaves the probes with its last reference leaves its set
    /// empty, whichever set it was in. (Under loom there is one set.)
    #[test]
    #[cfg(not(loom))]
    fn a_probe_stays_in_its_set_until_looked_at_or_gone() {
        let pool = Pool::new();
        let size = pool.size_class(1).expect("a standard buf");
        let lease = || pool.lease(size, Wait::Never).expect("no budget");
        let (first, second) = (lease(), lease());
        pool.exchange_probe(Some((&first, false)), 1, |_, _, _| panic!("set 1 had no probe"));
        pool.exchange_probe(None, 2, |_, _, _| panic!("set 2 has no probe: the one listed is set 1's"));
        pool.exchange_probe(Some((&second, false)), 3, |_, _, _| panic!("set 3 had no probe"));
        let mut looked = None;
        pool.exchange_probe(None, 1 + PROBE_SETS, |oldest, _, _| {
            looked = Some(oldest);
            Look::Forget
        });
        assert_eq!(looked, Some(first.buf()), "a thread whose number picks set 1 looks at its probe");
        // SAFETY: `first` holds its buf.
        assert_eq!(unsafe { Header::listed(first.buf()) }, Listed::No, "forgotten: on no list");
        pool.exchange_probe(None, 1, |_, _, _| panic!("the probe looked at went off every list"));
        // Its last reference gone, the probe of set 3 goes off it: leased
        // again (the pool hands back the buf returned last), its
        // buf is not looked at as a probe.
        let buf = second.buf();
        // SAFETY: `second` holds its buf.
        assert_eq!(unsafe { Header::listed(buf) }, Listed::Probe, "listed in set 3");
        drop(second);
        let again = lease();
        assert_eq!(again.buf(), buf, "the pool hands back the buf returned last");
        // SAFETY: `again` holds its buf.
        assert_eq!(unsafe { Header::listed(buf) }, Listed::No, "taken off with its last reference");
        pool.exchange_probe(None, 3, |_, _, _| panic!("the probe whose buf went back left set 3"));
        drop((first, again));
    }

    #[test]
    fn a_passed_orphan_is_skipped_until_its_count_changes_or_less_is_asked() {
        let since = Passed { refs: 3, need: 1500 }.note();
        assert!(Passed::skips(since, 3, 1500), "as many references, as much asked");
        assert!(Passed::skips(since, 3, 9000), "more asked");
        assert!(!Passed::skips(since, 3, 64), "less asked may fit");
        assert!(!Passed::skips(since, 2, 1500), "a slice dropped since");
        assert!(!Passed::skips(since, 4, 1500), "a slice split since");
        assert!(!Passed::skips(0, 0, usize::MAX), "a buf just listed has no note");
        let wide = Passed { refs: usize::MAX, need: usize::MAX }.note();
        assert!(
            !Passed::skips(wide, usize::MAX, usize::MAX),
            "a count the note cannot hold is never skipped"
        );
    }

    #[test]
    fn a_note_survives_its_header_field() {
        let mut seen = Seen::let_go(usize::MAX);
        assert_eq!(Seen::unpack(seen.pack()), seen, "as let go, with more slices than a note holds");
        for _ in 0..300 {
            seen = seen.looked(3);
        }
        assert_eq!((seen.looks(), seen.gone_looks()), (u8::MAX, u8::MAX), "the counts stop at their most");
        assert_eq!(Seen::unpack(seen.pack()), seen);
        let zero = Seen::let_go(0);
        assert_eq!(Seen::unpack(zero.pack()), zero);
        assert_eq!(Seen::unpack(0), zero, "a header's `since` before any note reads as nothing seen");
    }

    #[test]
    fn looks_count_slices_gone_since_let_go() {
        let seen = Seen::let_go(5);
        assert!(seen.steady(5), "as many as when let go");
        let seen = seen.looked(5);
        assert_eq!((seen.looks(), seen.gone_looks()), (1, 0), "none gone");
        let seen = seen.looked(4);
        assert_eq!((seen.looks(), seen.gone_looks()), (2, 1));
        assert!(seen.steady(4) && !seen.steady(5), "steady against the last look");
        let seen = seen.looked(4);
        assert_eq!((seen.looks(), seen.gone_looks()), (3, 2), "still fewer than when let go");
        let split = Seen::let_go(2).looked(3);
        assert_eq!(split.gone_looks(), 0, "more slices (a split) is none gone");
    }
}
