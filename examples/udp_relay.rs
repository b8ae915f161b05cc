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
//! 10) and `--window N`, the datagrams in flight at once (default 32). It
//! exits non-zero on any lost or corrupted datagram.

mod common;

use std::io;
use std::process::ExitCode;

use common::args::{self, Args};
use common::relay::{self, DemoConfig};

fn main() -> ExitCode {
    args::run_main("udp_relay", parse, run)
}

fn parse(args: &mut Args) -> Result<DemoConfig, String> {
    Ok(DemoConfig {
        datagrams: args.value("--datagrams", 100_000)?,
        duration: args.seconds("--duration", 10.0)?,
        window: args.value("--window", 32)?,
    })
}

fn run(config: DemoConfig) -> io::Result<()> {
    let report = relay::run_demo(&config)?;
    println!(
        "{} of {} datagrams relayed intact ({} forwarded, {:.1} MB of payload) in {:.2?}: {:.0} datagrams/s",
        report.delivered,
        report.sent,
        report.forwarded,
        report.payload_bytes as f64 / 1e6,
        report.elapsed,
        report.delivered as f64 / report.elapsed.as_secs_f64()
    );
    Ok(())
}
