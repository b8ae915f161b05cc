//! The echo client: sends frames of mixed sizes, one at a time, and checks
//! every echoed byte.
//!
//! It uses plain `std` buffers so that it costs the same whichever way the
//! server runs.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::frame;

/// Payload sizes the client cycles through: empty, tiny, MTU-sized, and
/// larger than a 64 KiB pool buf.
pub const SIZES: [usize; 11] = [0, 1, 100, 1_000, 1_460, 4_096, 16_384, 60_000, 65_536, 100_000, 250_000];

/// How long to wait for an echo before calling the frame lost.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// What to send, and when to stop.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// Stop after this many round trips.
    pub frames: u64,
    /// Stop after this long.
    pub duration: Duration,
    /// Only send the sizes of `SIZES` up to this.
    pub max_payload: usize,
}

/// What the client measured.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub round_trips: u64,
    /// Payload bytes sent, and so echoed.
    pub payload_bytes: u64,
    pub elapsed: Duration,
}

impl Report {
    pub fn round_trips_per_sec(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes (10^6 bytes) echoed per second, each way.
    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Connects, sends frames until `config.frames` or `config.duration`, and
/// checks each echo byte for byte.
///
/// # Errors
/// `InvalidData` naming the frame and byte on any corrupted echo;
/// `WouldBlock`/`TimedOut` where an echo does not come within 10 s (a lost
/// frame); any connection error.
pub fn run(config: &Config) -> io::Result<Report> {
    let sizes: Vec<usize> = SIZES.into_iter().filter(|&size| size <= config.max_payload).collect();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    // Frame i sends `pattern[i % 251..][..size]`, so frames of one size
    // differ and a frame echoed out of turn is caught.
    let pattern: Vec<u8> = (0..largest + 251).map(|j| (j * 7 + j / 251) as u8).collect();
    let stream = frame::connect(config.addr)?;
    stream.set_read_timeout(Some(ECHO_TIMEOUT))?;
    let (mut out, mut input) = (&stream, &stream);
    let mut echo = Vec::with_capacity(largest);
    let mut report = Report { round_trips: 0, payload_bytes: 0, elapsed: Duration::ZERO };
    let start = Instant::now();
    for i in 0..config.frames {
        if start.elapsed() >= config.duration {
            break;
        }
        let size = sizes[i as usize % sizes.len()];
        let offset = (i % 251) as usize;
        let payload = &pattern[offset..offset + size];
        write_frame(&mut out, payload)?;

        let mut header = [0; frame::HEADER_LEN];
        input.read_exact(&mut header)?;
        let echoed = frame::payload_len(header);
        if echoed != size {
            return Err(corrupt(format!("frame {i}: sent {size} bytes, the echo announces {echoed}")));
        }
        echo.resize(size, 0);
        input.read_exact(&mut echo)?;
        if let Some(at) = echo.iter().zip(payload).position(|(a, b)| a != b) {
            return Err(corrupt(format!("frame {i} ({size} bytes): byte {at} came back changed")));
        }
        report.round_trips += 1;
        report.payload_bytes += size as u64;
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Writes a frame (header and payload) with vectored writes.
fn write_frame(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let header = frame::header(payload.len());
    let mut parts = [IoSlice::new(&header), IoSlice::new(payload)];
    let mut left = &mut parts[..];
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
