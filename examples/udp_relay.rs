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
//! 10), `--window N`, the datagrams in flight at once (default 32), and
//! `--rcvbuf BYTES`, a receive buffer size to ask for instead of the one the
//! window needs (4 KiB a datagram).
//!
//! The receive buffers are sized for the window, and the sizes the kernel
//! granted are printed; where they are smaller (Linux caps them at
//! `net.core.rmem_max`), it says so, since UDP then drops datagrams. A lost
//! datagram is counted and reported, not an error: UDP does not promise
//! delivery. A corrupted one, which matches no datagram sent, makes the
//! demo exit non-zero.

mod common;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::args;
use common::relay::{self, DemoConfig};

/// A UDP relay on loopback that prepends its header in place, driven by a
/// source and a sink that check every datagram.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "udp_relay")]
pub struct Args {
    /// Datagrams to send.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub datagrams: u64,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = args::seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Datagrams in flight at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub window: u64,
    /// A receive buffer size to ask for instead of the one the window needs
    /// (4 KiB a datagram); 0 asks for the window's.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub rcvbuf: usize,
}

impl Args {
    /// The demo's configuration.
    pub fn config(self) -> DemoConfig {
        DemoConfig {
            datagrams: self.datagrams,
            duration: self.duration,
            window: self.window,
            recv_buffer: (self.rcvbuf > 0).then_some(self.rcvbuf),
        }
    }
}

fn main() -> ExitCode {
    args::run_main("udp_relay", |args: Args| run(args.config()))
}

fn run(config: DemoConfig) -> io::Result<()> {
    let report = relay::run_demo(&config)?;
    let buffers = report.buffers;
    println!(
        "socket buffers granted: receive {} bytes, send {} bytes; a window of {} needs {} bytes",
        buffers.recv, buffers.send, config.window, buffers.needed
    );
    if buffers.short() {
        eprintln!(
            "udp_relay: warning: the kernel granted receive buffers of {} bytes, less than the {} a window \
             of {} needs, so UDP may drop datagrams (raise net.core.rmem_max, or lower --window)",
            buffers.recv, buffers.needed, config.window
        );
    }
    println!(
        "{} of {} datagrams relayed intact, {} lost ({} of them after the relay); {} forwarded, \
         {:.1} MB of payload in {:.2?}: {:.0} datagrams/s",
        report.delivered,
        report.sent,
        report.lost,
        report.lost_after_relay,
        report.forwarded,
        report.payload_bytes as f64 / 1e6,
        report.elapsed,
        report.delivered as f64 / report.elapsed.as_secs_f64()
    );
    Ok(())
}
