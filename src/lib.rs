//! Pooled, ref-counted IO buffers for network protocol code.
//!
//! refbuf hands out byte slices carved from large pooled bufs, so framing,
//! proxying and packet code stops paying `malloc`, `free` and a copy on every
//! frame. It follows the design of Vanadium's Go package `iobuf`, without its
//! per-slice heap object.
//!
//! # The pieces
//!
//! - A [`Pool`] supplies large bufs. Each buf counts its holders and goes
//!   back to the pool the moment the last one lets go.
//! - An [`Allocator`] bump-allocates consecutive [`Slice`]s out of its
//!   current buf, leaving `reserve` bytes of headroom in front of each, so a
//!   protocol header can later be prepended in place with
//!   [`Slice::expand_front`], with no copy of the payload.
//! - [`coalesce`] joins slices that touch in memory, without copying.
//! - A [`Reader`] fills slices from any [`std::io::Read`], reading ahead.
//! - The pool's memory policy ([`PoolBuilder`]): bufs come in size classes
//!   (`buf_size` × 2^k); a budget (`max_bytes`) makes allocations wait, or
//!   fail with [`AllocError::Exhausted`], instead of growing; idle memory is
//!   capped (`max_idle_bytes`), freed after a timeout (`idle_timeout`) or on
//!   demand ([`Pool::trim`]). [`Pool::stats`] says where the memory is, and
//!   the `diagnostics` feature adds `Pool::report`, which lists bufs in use
//!   and flags those pinned by a few small slices.
//!
//! # Example
//!
//! ```
//! use refbuf::Pool;
//!
//! let pool = Pool::builder().buf_size(16 * 1024).build();
//!
//! // Payloads with 4 bytes of headroom for a length prefix.
//! let mut alloc = pool.allocator(4);
//! let mut frame = alloc.copy_from_slice(b"hello");
//! let len = u32::try_from(frame.len()).unwrap().to_be_bytes();
//! assert!(frame.prepend(&len)); // in place: the payload does not move
//! assert_eq!(&frame[..], b"\0\0\0\x05hello");
//!
//! // Read the frame back through a Reader.
//! let mut reader = pool.reader(&frame[..]);
//! let header = reader.read(4)?;
//! let body = reader.read(u32::from_be_bytes(header[..].try_into().unwrap()) as usize)?;
//! assert_eq!(&body[..], b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Safety and correctness
//!
//! - A slice owns its bytes and its headroom alone: no two live slices ever
//!   overlap, which is what makes `DerefMut` sound.
//! - Memory from [`Allocator::alloc`] is zero-filled, headroom included, so a
//!   recycled buf never shows one user's bytes to another by accident. Only
//!   [`Allocator::alloc_for_overwrite`] and [`Slice::free_entire_prefix`]
//!   can expose earlier contents, and their docs say so.
//! - The reference count follows std `Arc`'s protocol; the loom models in
//!   `loom-tests/` check it, and the test suite runs under Miri.
//!
//! `ARCHITECTURE.md` in the repository describes the design in full.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, clippy::undocumented_unsafe_blocks)]

mod allocator;
mod buf;
mod coalesce;
#[cfg(feature = "diagnostics")]
mod diagnostics;
mod error;
mod free_list;
mod pool;
mod reader;
mod slice;
mod sync;

pub use allocator::Allocator;
pub use coalesce::coalesce;
#[cfg(feature = "diagnostics")]
pub use diagnostics::{BufReport, PoolReport};
pub use error::AllocError;
pub use pool::{
    DEFAULT_BUF_SIZE, DEFAULT_MAX_POOLED_MULTIPLE, MAX_SIZE_CLASSES, Pool, PoolBuilder, PoolStats,
};
pub use reader::Reader;
pub use slice::Slice;

/// Compiles and runs the README's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
