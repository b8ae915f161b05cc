//! `FreeList`: an intrusive, doubly-linked list of idle bufs of one size.
//!
//! The links live in each buf's header ([`IdleLinks`]), so keeping a buf
//! idle allocates nothing. The pool takes bufs back and hands them out at the
//! newest end, so a buf reused soon after it went idle is likely still in
//! cache, and trims expired bufs at the oldest end: both in constant time.
//! Every list is touched only under the lock that guards it: its pool's, or
//! that of the per-thread cache slot it belongs to. With the
//! `diagnostics` feature, the pool also links its bufs in use into a list of
//! this kind (their links are free while they are not idle).
//!
//! A list owns its bufs, so it is neither `Copy` nor `Clone`; bufs taken off
//! the pool to be freed go into a [`Doomed`], which frees them when dropped.

use core::ptr::NonNull;

use crate::buf::{Header, IdleLinks};

/// Idle bufs, newest first, linked through their headers.
#[derive(Debug, Default)]
pub(crate) struct FreeList {
    newest: Option<NonNull<Header>>,
    oldest: Option<NonNull<Header>>,
}

impl FreeList {
    /// An empty list.
    pub(crate) const EMPTY: FreeList = FreeList { newest: None, oldest: None };

    /// Whether the list holds no buf.
    pub(crate) fn is_empty(&self) -> bool {
        self.newest.is_none()
    }

    /// When the oldest buf went idle, if there is one.
    ///
    /// # Safety
    /// The list's bufs are owned by its holder, who holds the pool's lock.
    pub(crate) unsafe fn oldest_since(&self) -> Option<u64> {
        // SAFETY: the caller owns the list's bufs and holds the lock.
        self.oldest.map(|buf| unsafe { Header::idle_links(buf) }.since)
    }

    /// Adds `buf` at the newest end, stamped with `since`.
    ///
    /// # Safety
    /// `buf` is a live buf with no references and in no list, owned by the
    /// caller, who holds the pool's lock; the list's bufs are as for
    /// [`FreeList::oldest_since`].
    pub(crate) unsafe fn push_newest(&mut self, buf: NonNull<Header>, since: u64) {
        // SAFETY: the caller owns `buf` and holds the lock.
        *unsafe { Header::idle_links(buf) } = IdleLinks { newer: None, older: self.newest, since };
        match self.newest {
            // SAFETY: `newest` is one of the list's bufs.
            Some(newest) => unsafe { Header::idle_links(newest) }.newer = Some(buf),
            None => self.oldest = Some(buf),
        }
        self.newest = Some(buf);
    }

    /// Adds `buf` at the oldest end, stamped with `since`: for a buf that
    /// went idle no later than any in the list.
    ///
    /// # Safety
    /// As for [`FreeList::push_newest`].
    pub(crate) unsafe fn push_oldest(&mut self, buf: NonNull<Header>, since: u64) {
        debug_assert!(
            // SAFETY: the caller owns the list's bufs and holds the lock.
            unsafe { self.oldest_since() }.is_none_or(|oldest| since <= oldest),
            "a buf out of age order"
        );
        // SAFETY: the caller owns `buf` and holds the lock.
        *unsafe { Header::idle_links(buf) } = IdleLinks { newer: self.oldest, older: None, since };
        match self.oldest {
            // SAFETY: `oldest` is one of the list's bufs.
            Some(oldest) => unsafe { Header::idle_links(oldest) }.older = Some(buf),
            None => self.newest = Some(buf),
        }
        self.oldest = Some(buf);
    }

    /// Adds `buf`, stamped with `since`, in its place by age: newer than
    /// every buf stamped at or before `since`. Walks from the newest end, so
    /// a buf about as new as the newest costs a step or two. Keeps the list
    /// in age order when bufs come back from a per-thread cache.
    ///
    /// # Safety
    /// As for [`FreeList::push_newest`].
    pub(crate) unsafe fn insert_by_age(&mut self, buf: NonNull<Header>, since: u64) {
        let mut newer = None;
        let mut older = self.newest;
        while let Some(candidate) = older {
            // SAFETY: `candidate` is one of the list's bufs.
            let links = *unsafe { Header::idle_links(candidate) };
            if links.since <= since {
                break;
            }
            newer = Some(candidate);
            older = links.older;
        }
        // SAFETY: the caller owns `buf` and holds the lock.
        *unsafe { Header::idle_links(buf) } = IdleLinks { newer, older, since };
        match newer {
            // SAFETY: `newer` is one of the list's bufs.
            Some(newer) => unsafe { Header::idle_links(newer) }.older = Some(buf),
            None => self.newest = Some(buf),
        }
        match older {
            // SAFETY: `older` is one of the list's bufs.
            Some(older) => unsafe { Header::idle_links(older) }.newer = Some(buf),
            None => self.oldest = Some(buf),
        }
    }

    /// Takes the buf that went idle last.
    ///
    /// # Safety
    /// As for [`FreeList::oldest_since`]. The caller owns the returned buf.
    pub(crate) unsafe fn pop_newest(&mut self) -> Option<NonNull<Header>> {
        let buf = self.newest?;
        // SAFETY: `buf` is one of the list's bufs.
        let older = unsafe { Header::idle_links(buf) }.older;
        match older {
            // SAFETY: `older` is one of the list's bufs.
            Some(older) => unsafe { Header::idle_links(older) }.newer = None,
            None => self.oldest = None,
        }
        self.newest = older;
        Some(buf)
    }

    /// Takes the buf that has been idle longest.
    ///
    /// # Safety
    /// As for [`FreeList::pop_newest`].
    pub(crate) unsafe fn pop_oldest(&mut self) -> Option<NonNull<Header>> {
        let buf = self.oldest?;
        // SAFETY: `buf` is one of the list's bufs.
        let newer = unsafe { Header::idle_links(buf) }.newer;
        match newer {
            // SAFETY: `newer` is one of the list's bufs.
            Some(newer) => unsafe { Header::idle_links(newer) }.older = None,
            None => self.newest = None,
        }
        self.oldest = newer;
        Some(buf)
    }

    /// Takes `buf` out of the list, wherever it is.
    ///
    /// # Safety
    /// `buf` is in this list; otherwise as for [`FreeList::pop_newest`].
    #[cfg(feature = "diagnostics")]
    pub(crate) unsafe fn unlink(&mut self, buf: NonNull<Header>) {
        // SAFETY: `buf` is one of the list's bufs.
        let IdleLinks { newer, older, .. } = *unsafe { Header::idle_links(buf) };
        match newer {
            // SAFETY: `newer` is one of the list's bufs.
            Some(newer) => unsafe { Header::idle_links(newer) }.older = older,
            None => self.newest = older,
        }
        match older {
            // SAFETY: `older` is one of the list's bufs.
            Some(older) => unsafe { Header::idle_links(older) }.newer = newer,
            None => self.oldest = newer,
        }
    }

    /// Calls `f` with each buf and its timestamp, newest first.
    ///
    /// # Safety
    /// As for [`FreeList::oldest_since`]; `f` must not change the list.
    #[cfg(feature = "diagnostics")]
    pub(crate) unsafe fn for_each(&self, mut f: impl FnMut(NonNull<Header>, u64)) {
        let mut next = self.newest;
        while let Some(buf) = next {
            // SAFETY: `buf` is one of the list's bufs.
            let links = *unsafe { Header::idle_links(buf) };
            f(buf, links.since);
            next = links.older;
        }
    }
}

// SAFETY: the pointers are idle bufs owned by whoever owns the list and
// touched only under the lock that guards the list (the pool's, or a cache
// slot's), or by the list's sole owner once they are off the pool, so the
// list may move between threads.
unsafe impl Send for FreeList {}

/// Bufs taken off the pool (its lists, or a cache slot) to be freed, owned
/// outright: dropping this frees them. Drop it after the lock the bufs were
/// taken under is released, so that no buf is freed (and no pool torn down
/// by its last buf) under a lock; the pool's `finish` does that, in order.
#[derive(Debug, Default)]
pub(crate) struct Doomed {
    list: FreeList,
}

impl Doomed {
    /// Nothing to free yet.
    pub(crate) const fn new() -> Doomed {
        Doomed { list: FreeList::EMPTY }
    }

    /// Takes `buf`, to free it when dropped.
    ///
    /// # Safety
    /// `buf` is a live buf with no references and in no list, owned by the
    /// caller, who gives it up.
    pub(crate) unsafe fn push(&mut self, buf: NonNull<Header>) {
        // SAFETY: the caller gives us `buf`, in no list; the list is ours.
        unsafe { self.list.push_newest(buf, 0) };
    }

    /// Takes every buf of `list`, which the caller owns outright, to free
    /// them when dropped.
    pub(crate) fn push_all(&mut self, mut list: FreeList) {
        // SAFETY: the caller owns `list` and its bufs, as every holder of a
        // list does; once off it, each buf is ours and in no list.
        while let Some(buf) = unsafe { list.pop_newest() } {
            // SAFETY: as above.
            unsafe { self.push(buf) };
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        // SAFETY: every buf in the list was given up to us, off every other
        // list, with no references.
        while let Some(buf) = unsafe { self.list.pop_newest() } {
            // SAFETY: as above; nothing refers to `buf`.
            unsafe { Header::destroy(buf) };
        }
    }
}
