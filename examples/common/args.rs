//! The `main` the socket examples share, and the parser of their
//! `--duration SECONDS`. Each example declares its own options with clap;
//! the options both echo servers take (`echo_server` and `tokio_echo`) are
//! declared here once, in `Listen` and `Stop`, and flattened into each.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use super::frame::DEFAULT_MAX_FRAME;

/// Runs an example: parses its command line into `A`, then `run` does the
/// work. `--help` prints the usage and succeeds. A usage error is printed
/// by clap, and an error from `run` after the example's `name`; either makes
/// the exit status 1 (clap alone would exit 2 on a usage error).
pub fn run_main<A: Parser>(name: &str, run: impl FnOnce(A) -> io::Result<()>) -> ExitCode {
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // A failed print, to a closed stdout or stderr, has nowhere
            // left to be reported.
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A number of seconds, fractions allowed, as a duration: the value parser
/// of the `--duration` options.
pub fn seconds(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg.parse().map_err(|_| format!("{arg:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// An echo server's options for where it listens and which frames it
/// accepts; the first of its options.
#[derive(Debug, clap::Args)]
pub struct Listen {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// Refuse a frame announcing more payload bytes than this, and close
    /// its connection.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
}

/// An echo server's options for when it stops; the last of its options.
#[derive(Debug, clap::Args)]
pub struct Stop {
    /// Stop after this many frames echoed, over all connections [default:
    /// unbounded].
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds, allow_negative_numbers = true)]
    pub duration: Duration,
}

impl Stop {
    /// The frame count the server stops at: `u64::MAX` without `--frames`.
    pub fn frame_limit(&self) -> u64 {
        self.frames.unwrap_or(u64::MAX)
    }
}
