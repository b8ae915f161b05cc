//! The `main` the socket examples share, and the parser of their
//! `--duration SECONDS`. Each example declares its own options with clap.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

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
