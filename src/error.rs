//! Why an allocation failed.

use core::fmt;
use std::io;

/// Why a pool could not supply memory.
///
/// Every failure leaves the allocator, reader and pool usable: nothing is
/// taken, and the caller may try again with a smaller request (after
/// `TooLarge`) or later (after `Exhausted`).
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
    /// reserve is added, its buf would be larger than the pool's whole
    /// budget or than a buf can be laid out (`isize::MAX` bytes), or the
    /// system allocator refused a buf that size.
    TooLarge,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::Closed => "the pool is closed",
            AllocError::Exhausted => "the pool's memory budget is exhausted",
            AllocError::TooLarge => "the request is too large for any buf",
        })
    }
}

impl std::error::Error for AllocError {}

impl From<AllocError> for io::Error {
    /// Wraps the error so that `io::Error::get_ref` can downcast it back; the
    /// kind is `InvalidInput` for `TooLarge`, `OutOfMemory` for `Exhausted`
    /// and `Other` for `Closed`.
    fn from(e: AllocError) -> io::Error {
        let kind = match e {
            AllocError::Closed => io::ErrorKind::Other,
            AllocError::Exhausted => io::ErrorKind::OutOfMemory,
            AllocError::TooLarge => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
