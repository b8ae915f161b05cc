//! A length-prefixed echo server over TCP: refbuf's `Reader`, headroom and
//! `Chain::write_to`, or `--baseline` with `Vec` and `read_exact`.
//!
//! ```sh
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7878 --duration 60
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7878 --duration 60 --baseline
//! ```
//!
//! Options: `--addr` (default 127.0.0.1:7878), `--max-frame BYTES` (default
//! 16 MiB), `--baseline`, `--frames N` (stop after N frames echoed, default
//! unbounded) and `--duration SECONDS` (default 60). Each connection's end is
//! reported on stderr: a clean close, a refused oversize frame, or a
//! truncated final frame.

mod common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use common::args;
use common::server::{Config, Server};

/// A length-prefixed echo server over TCP, on refbuf or, with
/// `--baseline`, on `Vec` and `read_exact`.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "echo_server")]
pub struct Args {
    // `--addr` and `--max-frame`, as `tokio_echo` takes them.
    #[command(flatten)]
    pub listen: args::Listen,
    /// Echo with `Vec` and `read_exact` instead of refbuf.
    #[arg(long)]
    pub baseline: bool,
    // `--frames` and `--duration`, as `tokio_echo` takes them.
    #[command(flatten)]
    pub stop: args::Stop,
}

impl Args {
    /// The server's configuration.
    pub fn config(self) -> Config {
        Config {
            addr: self.listen.addr,
            max_frame: self.listen.max_frame,
            baseline: self.baseline,
            frames: self.stop.frame_limit(),
            duration: self.stop.duration,
        }
    }
}

fn main() -> ExitCode {
    args::run_main("echo_server", |args: Args| run(args.config()))
}

fn run(config: Config) -> io::Result<()> {
    let mode = if config.baseline { "baseline (Vec + read_exact)" } else { "refbuf" };
    let server = Server::start(config.clone())?;
    println!(
        "echo_server ({mode}) listening on {}; max frame {} bytes; stops after {:?}",
        server.addr(),
        config.max_frame,
        config.duration
    );
    for end in server.events() {
        eprintln!("{end}");
    }
    let summary = server.wait()?;
    println!(
        "served {} connections, {} frames ({} with the header in headroom, {} with a header slice)",
        summary.connections, summary.frames, summary.in_place, summary.header_slices
    );
    Ok(())
}
