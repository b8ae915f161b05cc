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
use std::process::ExitCode;

use common::args::{self, Args};
use common::client::{self, Config};
use common::frame::DEFAULT_MAX_FRAME;

fn main() -> ExitCode {
    args::run_main("echo_client", parse, run)
}

fn parse(args: &mut Args) -> Result<Config, String> {
    Ok(Config {
        addr: args.value("--addr", "127.0.0.1:7878".parse().expect("a valid address"))?,
        frames: args.value("--frames", 10_000)?,
        duration: args.seconds("--duration", 10.0)?,
        max_payload: args.value("--max-payload", DEFAULT_MAX_FRAME)?,
    })
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
