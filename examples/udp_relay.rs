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

use common::args::{self, Args};
use common::relay::{self, DemoConfig};

fn main() -> ExitCode {
    args::run_main("udp_relay", parse, run)
}

fn parse(args: &mut Args) -> Result<DemoConfig, String> {
    let recv_buffer: usize = args.value("--rcvbuf", 0)?;
    Ok(DemoConfig {
        datagrams: args.value("--datagrams", 100_000)?,
        duration: args.seconds("--duration", 10.0)?,
        window: args.value("--window", 32)?,
        recv_buffer: (recv_buffer > 0).then_some(recv_buffer),
    })
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
