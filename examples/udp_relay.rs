//! A UDP relay on loopback: datagrams are received with `fill_with` straight
//! into pool memory that keeps room in front, get an 8-byte relay header
//! prepended in place with `expand_front`, and are forwarded to a second
//! port. A source and a sink in this process drive it and check that every
//! datagram arrives intact and in order.
//!
//! ```sh
//! cargo run --release --example udp_relay -- --datagrams 100000 --duration 10
//! ```
//!
//! Options: `--datagrams N` (default 100000), `--duration SECONDS` (default
//! 10), `--window N`, the datagrams in flight at once (default 32),
//! `--rcvbuf BYTES`, a receive buffer size to ask for instead of the one the
//! window needs (4 KiB a datagram), and `--size N`, one payload size for
//! every datagram in place of mixed sizes. `udp_relay_uring` takes the same
//! options and ends with the same line.
//!
//! The receive buffers are sized for the window, and the sizes the kernel
//! granted are printed; where they are smaller (Linux caps them at
//! `net.core.rmem_max`), it says so, since UDP then drops datagrams. A lost
//! datagram is counted and reported, not an error: UDP does not promise
//! delivery. A corrupted one, which matches no datagram sent, makes the
//! demo exit non-zero.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::args;
use common::relay::{self, RelayOpts};

/// A UDP relay on loopback that prepends its header in place, driven by a
/// source and a sink that check every datagram.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "udp_relay")]
pub struct Args {
    #[command(flatten)]
    pub relay: RelayOpts,
}

fn main() -> ExitCode {
    args::run_main("udp_relay", |args: Args| {
        relay::run_and_report("udp_relay", &args.relay.config(), relay::relay).map(drop)
    })
}
