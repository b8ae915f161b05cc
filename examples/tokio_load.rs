//! A load client for `tokio_echo` (or `echo_server`): many connections,
//! frames pipelined on each, every echo checked byte for byte; prints
//! frames/s, MB/s and the round trip's p50, p99 and p99.9.
//!
//! ```sh
//! cargo run --release --features tokio --example tokio_load -- --addr 127.0.0.1:7878 --connections 64 --in-flight 16 --duration 10
//! ```
//!
//! Options: `--addr` (default 127.0.0.1:7878), `--connections C` (default
//! 64), `--in-flight P` (frames sent and not yet echoed per connection,
//! default 16), `--min BYTES` and `--max BYTES` (payload sizes, uniform
//! between them, default 64 to 16384), `--duration SECONDS` (default 10),
//! `--frames N` (per connection, default unbounded) and `--threads N`
//! (runtime workers, default one per CPU). It exits non-zero on any
//! corrupted or lost frame.

mod tokio_common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use clap::Parser;
use tokio_common::load::{self, Config};
use tokio_common::{args, server};

/// Drives an echo server with many connections and pipelined frames,
/// checks every echo, and reports throughput and round-trip latency.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "tokio_load")]
pub struct Args {
    /// The server's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// Connections to open.
    #[arg(long, value_name = "C", default_value_t = 64)]
    pub connections: usize,
    /// Frames sent and not yet echoed, per connection, at most.
    #[arg(long, value_name = "P", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub in_flight: u32,
    /// The smallest payload, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub min: usize,
    /// The largest payload, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024)]
    pub max: usize,
    /// Stop sending after this many seconds (fractions allowed), then wait
    /// for the echoes in flight.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = args::seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Stop sending after this many frames on each connection [default:
    /// unbounded].
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Runtime worker threads; 1 runs a current-thread runtime [default:
    /// one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

impl Args {
    /// The client's configuration, and its runtime's worker threads.
    pub fn config(self) -> (Config, usize) {
        let threads = match self.threads {
            Some(n) => usize::from(n),
            None => thread::available_parallelism().map_or(1, usize::from),
        };
        let config = Config {
            addr: self.addr,
            connections: self.connections,
            in_flight: self.in_flight as usize,
            min: self.min,
            max: self.max,
            duration: self.duration,
            frames: self.frames.unwrap_or(u64::MAX),
        };
        (config, threads)
    }
}

fn main() -> ExitCode {
    args::run_main("tokio_load", |args: Args| {
        let (config, threads) = args.config();
        run(&config, threads)
    })
}

fn run(config: &Config, threads: usize) -> io::Result<()> {
    let report = server::runtime(threads)?.block_on(load::run(config))?;
    let micros = |q| report.latency(q).as_secs_f64() * 1e6;
    println!(
        "{} connections x {} in flight, payloads {} to {} bytes: {} frames, {:.1} MB each way in {:.2?}",
        config.connections,
        config.in_flight,
        config.min,
        config.max,
        report.frames,
        report.payload_bytes as f64 / 1e6,
        report.elapsed
    );
    println!(
        "{:.0} frames/s, {:.1} MB/s; round trip p50 {:.0} us, p99 {:.0} us, p999 {:.0} us",
        report.frames_per_sec(),
        report.mb_per_sec(),
        micros(0.5),
        micros(0.99),
        micros(0.999)
    );
    Ok(())
}
