//! Code shared by the tokio examples (`tokio_echo`, `tokio_load`) and by
//! `tests/tokio_net.rs`, which runs the same server and load client
//! in-process.
//!
//! - `args`, `frame` and `outcome`: the blocking examples' own modules
//!   (`examples/common/`), mounted here too: the shared `main`, the
//!   `--duration` parser and the options both echo servers take; the wire
//!   format (4-byte big-endian length, then the payload); and what an echo
//!   server reports (`ConnEnd`, `Summary`);
//! - `server`: the echo server on a tokio runtime, in refbuf and
//!   `--baseline` (`tokio_util`'s `LengthDelimitedCodec`) modes;
//! - `load`: the load client: many connections, frames pipelined on each,
//!   every echo checked, round-trip latency percentiles.

#![allow(
    dead_code,
    reason = "each example uses a different part of this module, so in any one of them the rest is unused"
)]

#[path = "../common/args.rs"]
pub mod args;
#[path = "../common/frame.rs"]
pub mod frame;
pub mod load;
#[path = "../common/outcome.rs"]
pub mod outcome;
pub mod server;
