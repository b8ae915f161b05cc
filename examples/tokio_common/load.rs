//! The load client: `connections` connections, each keeping up to
//! `in_flight` frames sent and not yet echoed, with payloads of `min` to
//! `max` bytes; every echo is checked byte for byte, and each frame's round
//! trip (from just before its write to its whole echo read) is recorded.
//!
//! It uses plain tokio IO and `Vec` buffers so that it costs the same
//! whichever way the server runs. Frame `i` of connection `c` has a size and
//! contents that are a function of `(c, i)` alone, so the reading side
//! knows what to expect without being told, and a frame echoed out of turn
//! or into another connection is caught.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::frame;

/// How long to wait for an echo before calling the frame lost.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames are written in batches of at most this many bytes.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Payload contents are windows into a pattern this much longer than the
/// largest payload; a prime, so that neighbouring frames differ.
const PATTERN_OFFSETS: usize = 251;

/// What to send, and when to stop.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Frames sent and not yet echoed, per connection, at most.
    pub in_flight: usize,
    /// The smallest payload, in bytes.
    pub min: usize,
    /// The largest payload, in bytes.
    pub max: usize,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Stop sending after this many frames on each connection.
    pub frames: u64,
}

/// What the client measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Frames echoed intact.
    pub frames: u64,
    /// Payload bytes echoed intact.
    pub payload_bytes: u64,
    pub elapsed: Duration,
    /// Every frame's round trip, in nanoseconds, sorted.
    pub latencies: Vec<u64>,
}

impl Report {
    pub fn frames_per_sec(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes (10^6 bytes) echoed per second, each way.
    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    /// The round trip that a fraction `q` of frames took at most (the
    /// nearest-rank percentile), or zero without frames.
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        Duration::from_nanos(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }
}

/// The frames of every connection: sizes and contents.
struct Frames {
    min: usize,
    max: usize,
    pattern: Vec<u8>,
}

impl Frames {
    fn new(min: usize, max: usize) -> Frames {
        let pattern = (0..max + PATTERN_OFFSETS).map(|j| (j * 7 + j / PATTERN_OFFSETS) as u8).collect();
        Frames { min, max, pattern }
    }

    /// Frame `i` of connection `c`'s payload.
    fn payload(&self, c: usize, i: u64) -> &[u8] {
        let h = mix((c as u64) << 40 ^ i);
        let size = self.min + (h % (self.max - self.min + 1) as u64) as usize;
        let offset = ((h >> 32) % PATTERN_OFFSETS as u64) as usize;
        &self.pattern[offset..offset + size]
    }
}

/// SplitMix64's finaliser: a well-spread hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Opens every connection, sends and checks frames until the duration is up
/// or each has sent its count, waits for every echo, and reports.
///
/// # Errors
/// `InvalidInput` for `min > max` or no frames in flight; `InvalidData`
/// naming the connection, frame and byte on any corrupted echo; `TimedOut`
/// where an echo does not come within [`ECHO_TIMEOUT`]; `UnexpectedEof`
/// where the server closes a connection with frames unanswered; any
/// connection error.
pub async fn run(config: &Config) -> io::Result<Report> {
    if config.min > config.max || config.in_flight == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "need --min <= --max and at least one frame in flight",
        ));
    }
    let frames = Arc::new(Frames::new(config.min, config.max));
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut tasks = JoinSet::new();
    for c in 0..config.connections {
        let stream = TcpStream::connect(config.addr).await?;
        stream.set_nodelay(true)?;
        let (frames, config) = (Arc::clone(&frames), config.clone());
        tasks.spawn(async move { connection(stream, c, &frames, &config, deadline).await });
    }
    let mut report = Report::default();
    while let Some(done) = tasks.join_next().await {
        let one = done.map_err(io::Error::other)??;
        report.frames += one.frames;
        report.payload_bytes += one.payload_bytes;
        report.latencies.extend(one.latencies);
    }
    report.elapsed = start.elapsed();
    report.latencies.sort_unstable();
    Ok(report)
}

/// Runs one connection: a writer task sends frames while fewer than
/// `in_flight` are unanswered; this task reads and checks the echoes.
async fn connection(
    stream: TcpStream,
    c: usize,
    frames: &Arc<Frames>,
    config: &Config,
    deadline: Instant,
) -> io::Result<Report> {
    let (input, output) = stream.into_split();
    let permits = Arc::new(Semaphore::new(config.in_flight));
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_frames(
        output,
        c,
        Arc::clone(frames),
        Arc::clone(&permits),
        sent_tx,
        config.frames,
        deadline,
    ));
    let read = read_echoes(input, c, frames, &permits, sent_rx).await;
    // A failed read leaves the writer waiting for permits: stop it.
    writer.abort();
    match writer.await {
        Ok(Err(e)) if read.is_ok() => Err(e),
        _ => read,
    }
}

/// Sends frames `0, 1, …` until the count or the deadline, each once a
/// permit (a free place in flight) is had; frames that have permits at
/// once are written together. Each frame's send time goes to the reader
/// before its bytes go out.
async fn write_frames(
    mut out: OwnedWriteHalf,
    c: usize,
    frames: Arc<Frames>,
    permits: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<Instant>,
    count: u64,
    deadline: Instant,
) -> io::Result<()> {
    let mut batch = Vec::with_capacity(WRITE_BATCH_BYTES + frames.max + frame::HEADER_LEN);
    let mut i = 0;
    while i < count && Instant::now() < deadline {
        permits.acquire().await.map_err(io::Error::other)?.forget();
        let now = Instant::now();
        loop {
            let payload = frames.payload(c, i);
            batch.extend_from_slice(&frame::header(payload.len()));
            batch.extend_from_slice(payload);
            // The reader may be gone after an error; the write then fails.
            let _ = sent.send(now);
            i += 1;
            if i == count || batch.len() >= WRITE_BATCH_BYTES {
                break;
            }
            match permits.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
        }
        out.write_all(&batch).await?;
        batch.clear();
    }
    // Dropping `sent` tells the reader how many frames there were.
    Ok(())
}

/// Reads and checks the echo of every frame the writer sends, in order.
async fn read_echoes(
    input: OwnedReadHalf,
    c: usize,
    frames: &Frames,
    permits: &Semaphore,
    mut sent: mpsc::UnboundedReceiver<Instant>,
) -> io::Result<Report> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut echo = vec![0; frames.max];
    let mut report = Report::default();
    let mut i = 0;
    while let Some(sent_at) = sent.recv().await {
        let payload = frames.payload(c, i);
        let read = async {
            let mut header = [0; frame::HEADER_LEN];
            input.read_exact(&mut header).await?;
            let echoed = frame::payload_len(header);
            if echoed != payload.len() {
                return Err(corrupt(format!(
                    "connection {c}, frame {i}: sent {} bytes, the echo announces {echoed}",
                    payload.len()
                )));
            }
            input.read_exact(&mut echo[..echoed]).await
        };
        match tokio::time::timeout(ECHO_TIMEOUT, read).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection {c}, frame {i}: no echo within {ECHO_TIMEOUT:?}"),
                ));
            }
        }
        let latency = sent_at.elapsed();
        // One `memcmp` for the common case; the byte is looked for only
        // in a frame that differs.
        let echo = &echo[..payload.len()];
        if echo != payload {
            let at = echo.iter().zip(payload).position(|(a, b)| a != b).expect("they differ");
            return Err(corrupt(format!(
                "connection {c}, frame {i} ({} bytes): byte {at} came back changed",
                payload.len()
            )));
        }
        permits.add_permits(1);
        report.frames += 1;
        report.payload_bytes += payload.len() as u64;
        report.latencies.push(latency.as_nanos() as u64);
        i += 1;
    }
    Ok(report)
}

fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
