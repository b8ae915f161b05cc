//! Why an allocation failed.

use core::fmt;
use std::io;

/// Why a pool could not supply memory.
///
/// Every failure leaves the allocator, reader and pool usable: nothing is
/// taken, and the caller may try again with a smaller request (after
/// `TooLarge`) or later (after `Exhausted` or `OutOfMemory`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocError {
    /// The pool was closed, or every `Pool`, `Allocator` and `Reader` of it
    /// was dropped; it hands out no more memory.
    Closed,
    /// The pool's memory budget is used up: from a `try_` method, which
    /// never waits, or from `alloc_timeout` once its wait has passed.
    Exhausted,
    /// The request cannot be met at any time: its length overflows when the
    /// reserve is added, or its buf would be larger than the pool's whole
    /// budget or than a buf can be laid out (`isize::MAX` bytes).
    TooLarge,
    /// The system allocator refused the memory for a new buf. Unlike
    /// `TooLarge`, this says nothing about the request: the machine is out
    /// of memory (or the process is at its limit) right now, and the same
    /// request may succeed later.
    OutOfMemory,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::Closed => "the pool is closed",
            AllocError::Exhausted => "the pool's memory budget is exhausted",
            AllocError::TooLarge => "the request is too large for any buf",
            AllocError::OutOfMemory => "the system refused memory for a new buf",
        })
    }
}

impl std::error::Error for AllocError {}

impl From<AllocError> for io::Error {
    /// Wraps the error so that `io::Error::get_ref` can downcast it back; the
    /// kind is `InvalidInput` for `TooLarge` (the request itself is at
    /// fault), `OutOfMemory` for `Exhausted` (the pool's budget) and
    /// `OutOfMemory` (the system), and `Other` for `Closed`. Downcast to
    /// tell the two kinds of `OutOfMemory` apart.
    fn from(e: AllocError) -> io::Error {
        let kind = match e {
            AllocError::Closed => io::ErrorKind::Other,
            AllocError::Exhausted | AllocError::OutOfMemory => io::ErrorKind::OutOfMemory,
            AllocError::TooLarge => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
