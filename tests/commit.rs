//! Memory is committed as bytes arrive: a large buf costs resident memory
//! only for the pages written, so a length a peer claims but never sends,
//! or a slice never filled, takes address space and not memory. Measured
//! through `/proc/self/statm` (Linux).
//!
//! These tests measure the system allocator itself, so they are skipped
//! where another one stands in for it: under Miri, valgrind (`.ci/valgrind`
//! skips them by name) and the sanitizers (`.ci/sanitizers`, through
//! `cfg(refbuf_sanitizer)`).
#![cfg(target_os = "linux")]

use std::io::{self, Read};
use std::sync::Mutex;

use refbuf::Pool;

const GIB: usize = 1 << 30;

/// Well under this much resident memory may be added by a request that
/// writes next to nothing.
const LIMIT: usize = 64 << 20;

/// The two tests measure one process's resident memory, so they run one at
/// a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Resident bytes of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux has /proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).expect("resident pages").parse().expect("a number");
    // The page size is 4 KiB on every Linux this runs on.
    pages * 4096
}

/// A source that sends `left` bytes, then ends.
struct Trickle {
    left: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left);
        buf[..n].fill(0xab);
        self.left -= n;
        Ok(n)
    }
}

/// A 1 GiB frame claimed by a source that sends 1 byte and ends: the read
/// fails with UnexpectedEof, keeps the byte, and adds well under 64 MiB of
/// resident memory.
#[test]
#[cfg_attr(miri, ignore = "measures the system allocator; Miri has none")]
#[cfg_attr(
    refbuf_sanitizer,
    ignore = "measures the system allocator, which a sanitizer replaces with its own"
)]
fn a_claimed_gigabyte_that_never_arrives_commits_next_to_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::new();
    let before = rss();
    let mut reader = pool.reader(Trickle { left: 1 }).with_max_frame_len(usize::MAX);
    let e = reader.read(GIB).expect_err("only one byte arrives");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(reader.buffered(), 1);
    let grown = rss().saturating_sub(before);
    assert!(grown < LIMIT, "resident memory grew {grown} bytes for one byte received");
    assert!(pool.stats().high_water_bytes < LIMIT, "{:?}", pool.stats());
}

/// An untouched 1 GiB slice from `try_alloc_for_overwrite` adds well under
/// 64 MiB of resident memory: the buf is zeroed by the system's fresh pages,
/// not by writing to them; writing to it then commits what is written.
#[test]
#[cfg_attr(miri, ignore = "measures the system allocator; Miri has none")]
#[cfg_attr(
    refbuf_sanitizer,
    ignore = "measures the system allocator, which a sanitizer replaces with its own"
)]
fn an_untouched_gigabyte_commits_next_to_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::new();
    let mut alloc = pool.allocator(16);
    let before = rss();
    let mut slice = alloc.try_alloc_for_overwrite(GIB).expect("a gigabyte of address space");
    assert_eq!(slice.len(), GIB);
    let grown = rss().saturating_sub(before);
    assert!(grown < LIMIT, "resident memory grew {grown} bytes for an untouched slice");
    assert!(slice[..1 << 20].iter().all(|&b| b == 0), "a fresh buf reads as zeros");
    slice[GIB - 100..].fill(7);
    assert!(slice[GIB - 200..GIB - 100].iter().all(|&b| b == 0));
    let grown = rss().saturating_sub(before);
    assert!(grown < LIMIT, "resident memory grew {grown} bytes for 1 MiB read and 100 bytes written");
}
