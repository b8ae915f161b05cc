//! What an echo server reports, the blocking one (`server.rs`) and the one
//! on tokio (`tokio_common/server.rs`, which mounts this file too): a
//! `ConnEnd` as each connection ends, and a `Summary` once it stops.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// How one connection ended.
#[derive(Debug)]
pub struct ConnEnd {
    pub peer: SocketAddr,
    /// Frames echoed on it.
    pub frames: u64,
    /// `Ok` for a clean end between frames; otherwise why it was closed.
    pub result: io::Result<()>,
}

/// As the servers' `main`s report it on stderr: `PEER: closed after N
/// frames`, then `: ` and the error where it did not end cleanly.
impl fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: closed after {} frames", self.peer, self.frames)?;
        match &self.result {
            Ok(()) => Ok(()),
            Err(e) => write!(f, ": {e}"),
        }
    }
}

/// What the server did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub connections: u64,
    pub frames: u64,
    /// Frames answered with the header in the payload's headroom (blocking)
    /// or with the header slice joined to the payload (tokio).
    pub in_place: u64,
    /// Frames answered with a header slice in front of the payload's: one
    /// pushed in front (blocking) or the request's own (tokio).
    pub header_slices: u64,
    /// Write calls that carried the replies: one `write_to` or `write_all`
    /// per frame (blocking), one `write_all_async` or flush per batch of
    /// frames (tokio).
    pub writes: u64,
}
