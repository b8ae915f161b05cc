//! The client for `echo_server`: sends length-prefixed frames of mixed sizes
//! (0 bytes to 250 KB), checks every echoed byte, and reports round trips
//! per second and MB/s.
//!
//! ```sh
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7878 --frames 20000 --duration 10
//! ```
//!
//! Options: `--addr` (default 127.0.0.1:7878), `--frames N` (default
//! 10000), `--duration SECONDS` (default 10) and `--max-payload BYTES`
//! (default 16 MiB: send every size). It exits non-zero on any corrupted or
//! lost frame.

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::args;
use common::client::{self, Config};
use common::frame::DEFAULT_MAX_FRAME;

/// Sends length-prefixed frames of mixed sizes to `echo_server`, checks
/// every echoed byte, and reports round trips per second and MB/s.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "echo_client")]
pub struct Args {
    /// The server's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// Stop after this many round trips.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub frames: u64,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = args::seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Send only the frame sizes up to this many payload bytes (the default
    /// sends every size).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_payload: usize,
}

impl Args {
    /// The client's configuration.
    pub fn config(self) -> Config {
        Config {
            addr: self.addr,
            frames: self.frames,
            duration: self.duration,
            max_payload: self.max_payload,
        }
    }
}

fn main() -> ExitCode {
    args::run_main("echo_client", |args: Args| run(args.config()))
}

fn run(config: Config) -> io::Result<()> {
    let report = client::run(&config)?;
    println!(
        "{} round trips, {:.1} MB of payload each way, in {:.2?}: {:.0} round trips/s, {:.1} MB/s",
        report.round_trips,
        report.payload_bytes as f64 / 1e6,
        report.elapsed,
        report.round_trips_per_sec(),
        report.mb_per_sec()
    );
    Ok(())
}
