//! A tiny command-line parser (`--name value` options and `--name` flags),
//! and the `main` every example shares.

use std::io;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// Runs an example: `parse` takes its options, `run` does the work. Any
/// error, or an argument left over, is printed after the example's `name`
/// and makes the exit status a failure.
pub fn run_main<C>(
    name: &str,
    parse: impl FnOnce(&mut Args) -> Result<C, String>,
    run: impl FnOnce(C) -> io::Result<()>,
) -> ExitCode {
    let mut args = Args::from_env();
    let config = parse(&mut args).and_then(|config| args.finish().map(|()| config));
    match config.and_then(|config| run(config).map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The arguments not yet taken.
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    /// The process's arguments, without the program name.
    pub fn from_env() -> Args {
        Args { rest: std::env::args().skip(1).collect() }
    }

    /// Whether `--name` was given.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|arg| arg != name);
        self.rest.len() != before
    }

    /// The value after `--name`, parsed, or `default` if absent.
    pub fn value<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        let Some(at) = self.rest.iter().position(|arg| arg == name) else {
            return Ok(default);
        };
        if at + 1 == self.rest.len() {
            return Err(format!("{name} needs a value"));
        }
        let value = self.rest.remove(at + 1);
        self.rest.remove(at);
        value.parse().map_err(|_| format!("{name}: cannot parse {value:?}"))
    }

    /// `--name SECONDS` (fractions allowed) as a duration.
    pub fn seconds(&mut self, name: &str, default: f64) -> Result<Duration, String> {
        let secs: f64 = self.value(name, default)?;
        Duration::try_from_secs_f64(secs).map_err(|e| format!("{name}: {e}"))
    }

    /// Fails if any argument was not taken.
    pub fn finish(self) -> Result<(), String> {
        match self.rest.first() {
            None => Ok(()),
            Some(arg) => Err(format!("unknown argument {arg:?}")),
        }
    }
}
