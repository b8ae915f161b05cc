//! The echo server on a tokio runtime: answers every frame with the same
//! frame, one task per connection.
//!
//! In refbuf mode each connection reads frames with an `AsyncReader` into
//! pool memory: the header with `read(4)`, then the payload with
//! `read(len)`. The reply's header is the request's own (the payload length
//! is the same), so where the two slices touch in the reader's buf the
//! header slice is joined to the payload (`try_join`, no byte written or
//! copied); where the payload went into another buf (a frame larger than
//! what was left of the current one), the header slice goes into the chain
//! in front of it. Frames already buffered whole when one is read are
//! answered in the same chain, whose touching parts are coalesced, and the
//! chain goes out with `write_all_async`: usually one write for the lot.
//! Once everything buffered has been answered, the reader is rebuilt over
//! the socket once a byte has arrived (`peek`), so its buf goes back to the
//! pool meanwhile: a connection waiting for its peer holds no pool memory.
//!
//! In `--baseline` mode it is written as one would without refbuf:
//! `tokio_util`'s `Framed` with a `LengthDelimitedCodec` (`BytesMut`
//! buffers, the payload copied into the write buffer behind a fresh header),
//! with the same batching: frames already buffered are fed, then one flush.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use refbuf::{AsyncReader, Chain, Pool, Slice};
use tokio::io::AsyncRead;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::frame::{self, HEADER_LEN};
pub use super::outcome::{ConnEnd, Summary};

/// Replies to frames already buffered are gathered into one write up to
/// about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// How the server runs and when it stops.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// Frames announcing more payload bytes than this are refused.
    pub max_frame: usize,
    /// The pool's budget (`PoolBuilder::max_bytes`); `None` for none.
    pub max_bytes: Option<usize>,
    /// `Framed` + `LengthDelimitedCodec` instead of refbuf.
    pub baseline: bool,
    /// Runtime worker threads; 1 runs a current-thread runtime.
    pub threads: usize,
    /// Stop once this many frames have been echoed, over all connections.
    pub frames: u64,
    /// Stop after this long.
    pub duration: Duration,
}

impl Config {
    /// The pool the refbuf mode reads into: default bufs, under the
    /// budget where there is one.
    pub fn pool(&self) -> Pool {
        let builder = Pool::builder();
        match self.max_bytes {
            Some(max) => builder.max_bytes(max).build(),
            None => builder.build(),
        }
    }
}

/// Counters shared by the connection tasks.
#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    in_place: AtomicU64,
    header_slices: AtomicU64,
    writes: AtomicU64,
    /// Told once `frames` reaches the configured count.
    enough: Notify,
}

impl Counters {
    /// Counts `n` frames echoed in one write; tells the accept loop once
    /// `limit` is reached.
    fn echoed(&self, n: u64, limit: u64) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let before = self.frames.fetch_add(n, Ordering::Relaxed);
        if before < limit && before + n >= limit {
            self.enough.notify_one();
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    pool: Pool,
    stop: Arc<Notify>,
    events: Receiver<ConnEnd>,
    thread: JoinHandle<io::Result<Summary>>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port) and starts serving on
    /// a runtime of `config.threads` workers, run by a thread of its own.
    pub fn start(config: Config) -> io::Result<Server> {
        let pool = config.pool();
        Server::start_with_pool(config, pool)
    }

    /// As [`start`](Server::start), reading into `pool` (the refbuf mode's;
    /// `config.max_bytes` is not used).
    pub fn start_with_pool(config: Config, pool: Pool) -> io::Result<Server> {
        let listener = frame::listen(config.addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = runtime(config.threads)?;
        let stop = Arc::new(Notify::new());
        let (tx, events) = mpsc::channel();
        let (stop_flag, serving) = (Arc::clone(&stop), pool.clone());
        let thread = thread::Builder::new().name("tokio_echo".into()).spawn(move || {
            let summary = runtime.block_on(accept_loop(listener, &config, serving, &stop_flag, tx));
            // Waits for the workers to exit, which flushes their pool
            // caches, so that the pool's stats are settled once `wait`
            // returns.
            drop(runtime);
            summary
        })?;
        Ok(Server { addr, pool, stop, events, thread })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pool the refbuf mode reads into (unused in baseline mode).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// One `ConnEnd` per connection that ends by itself (connections still
    /// open when the server stops are dropped without one); disconnected
    /// once the server has stopped.
    pub fn events(&self) -> &Receiver<ConnEnd> {
        &self.events
    }

    /// Waits until the server stops by itself (frame count or duration).
    pub fn wait(self) -> io::Result<Summary> {
        self.thread.join().expect("the server thread panicked")
    }

    /// Stops the server now, dropping every connection (its task is
    /// cancelled wherever it waits), and waits for it.
    pub fn stop(self) -> io::Result<Summary> {
        self.stop.notify_one();
        self.wait()
    }
}

/// The runtime workers a `--threads` option asks for: the number given,
/// else one per CPU.
pub fn worker_threads(arg: Option<u16>) -> usize {
    match arg {
        Some(n) => usize::from(n),
        None => thread::available_parallelism().map_or(1, usize::from),
    }
}

/// A runtime of `threads` workers; 1 is a current-thread runtime.
pub fn runtime(threads: usize) -> io::Result<Runtime> {
    let mut builder = if threads <= 1 {
        Builder::new_current_thread()
    } else {
        let mut builder = Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

/// Accepts connections, each served by a task of its own, until told to
/// stop, the duration is up or enough frames were echoed; then cancels
/// every connection's task.
async fn accept_loop(
    listener: std::net::TcpListener,
    config: &Config,
    pool: Pool,
    stop: &Notify,
    events: Sender<ConnEnd>,
) -> io::Result<Summary> {
    let listener = TcpListener::from_std(listener)?;
    let counters = Arc::new(Counters::default());
    let deadline = tokio::time::sleep(config.duration);
    tokio::pin!(deadline);
    let mut tasks = JoinSet::new();
    let mut connections = 0;
    let (max_frame, baseline, limit) = (config.max_frame, config.baseline, config.frames);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                stream.set_nodelay(true)?;
                let (pool, counters, events) = (pool.clone(), Arc::clone(&counters), events.clone());
                tasks.spawn(async move {
                    let mut frames = 0;
                    let result = if baseline {
                        serve_baseline(stream, max_frame, &counters, limit, &mut frames).await
                    } else {
                        serve_refbuf(stream, &pool, max_frame, &counters, limit, &mut frames).await
                    };
                    // The receiver may be gone if nobody watches events.
                    let _ = events.send(ConnEnd { peer, frames, result });
                });
                connections += 1;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            () = stop.notified() => break,
            () = &mut deadline => break,
            () = counters.enough.notified() => break,
        }
    }
    tasks.shutdown().await;
    Ok(Summary {
        connections,
        frames: counters.frames.load(Ordering::Relaxed),
        in_place: counters.in_place.load(Ordering::Relaxed),
        header_slices: counters.header_slices.load(Ordering::Relaxed),
        writes: counters.writes.load(Ordering::Relaxed),
    })
}

/// Whether `buffered` starts with a whole frame of at most `max` payload
/// bytes, which can be read without waiting for the peer.
fn whole_frame_buffered(buffered: &[u8], max: usize) -> bool {
    let Some(header) = buffered.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    let len = frame::payload_len(*header);
    len <= max && buffered.len() - HEADER_LEN >= len
}

/// Echoes frames read with an `AsyncReader`; each batch of replies goes out
/// with one `write_all_async` of a `Chain`.
async fn serve_refbuf(
    mut stream: TcpStream,
    pool: &Pool,
    max_frame: usize,
    counters: &Counters,
    limit: u64,
    frames: &mut u64,
) -> io::Result<()> {
    let (input, mut out) = stream.split();
    // The reader's limit is a backstop (`read_frame` checks each length
    // first), and must let the 4-byte header through.
    let reader_max = max_frame.max(HEADER_LEN);
    let mut reader = pool.async_reader(input).with_max_frame_len(reader_max);
    let mut reply = Chain::new();
    while let Some((header, payload)) = read_frame(&mut reader, max_frame).await? {
        push_reply(&mut reply, header, payload, counters);
        let mut batch = 1;
        // A whole frame already buffered is read without waiting: its
        // `read`s complete at once.
        while reply.len() < BATCH_BYTES && whole_frame_buffered(reader.buffer(), max_frame) {
            let (header, payload) =
                read_frame(&mut reader, max_frame).await?.expect("a whole frame is buffered");
            push_reply(&mut reply, header, payload, counters);
            batch += 1;
        }
        // Consecutive frames of one buf touch: the batch becomes one part.
        reply.coalesce(usize::MAX);
        reply.write_all_async(&mut out).await?;
        *frames += batch;
        counters.echoed(batch, limit);
        if reader.buffered() == 0 {
            // Nothing buffered and every reply sent: the reader's buf goes
            // back to the pool until the peer sends more, so that a
            // connection waiting for its peer holds no pool memory and,
            // under a budget, the waiting connections get their turn.
            // `peek` waits until a byte has arrived (or the end), where
            // `readable` may still report the readiness the last read
            // consumed, and the new reader would then wait holding a buf.
            let mut input = reader.into_inner();
            input.peek(&mut [0; 1]).await?;
            reader = pool.async_reader(input).with_max_frame_len(reader_max);
        }
    }
    Ok(())
}

/// Appends the reply to a frame to `reply`: the request's header slice (the
/// same length) joined to its payload where they touch, else in front of it.
fn push_reply(reply: &mut Chain, mut header: Slice, payload: Slice, counters: &Counters) {
    match header.try_join(payload) {
        Ok(()) => {
            reply.push_back(header);
            counters.in_place.fetch_add(1, Ordering::Relaxed);
        }
        Err(payload) => {
            reply.push_back(header);
            reply.push_back(payload);
            counters.header_slices.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The next frame from `reader`, as its header and payload slices, or
/// `None` where the connection ended cleanly between frames; the errors of
/// the blocking `frame::read_frame`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut AsyncReader<R>,
    max: usize,
) -> io::Result<Option<(Slice, Slice)>> {
    let header = match reader.read(HEADER_LEN).await {
        Ok(header) => header,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && reader.buffered() == 0 => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(frame::truncated("header", Some(reader.buffered()), HEADER_LEN));
        }
        Err(e) => return Err(e),
    };
    let len = frame::payload_len(header[..].try_into().expect("the header is 4 bytes"));
    if len > max {
        return Err(frame::too_large(len, max));
    }
    match reader.read(len).await {
        Ok(payload) => Ok(Some((header, payload))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(frame::truncated("payload", Some(reader.buffered()), len))
        }
        Err(e) => Err(e),
    }
}

/// Echoes frames through `Framed` and a `LengthDelimitedCodec`: frames
/// already buffered are fed, then one flush.
async fn serve_baseline(
    stream: TcpStream,
    max_frame: usize,
    counters: &Counters,
    limit: u64,
    frames: &mut u64,
) -> io::Result<()> {
    let codec = LengthDelimitedCodec::builder().max_frame_length(max_frame).new_codec();
    let mut framed = Framed::new(stream, codec);
    while let Some(payload) = framed.next().await {
        framed.feed(payload?.freeze()).await?;
        let mut batch = 1;
        while framed.write_buffer().len() < BATCH_BYTES
            && whole_frame_buffered(framed.read_buffer(), max_frame)
        {
            let payload = framed.next().await.expect("a whole frame is buffered")?;
            framed.feed(payload.freeze()).await?;
            batch += 1;
        }
        SinkExt::<Bytes>::flush(&mut framed).await?;
        *frames += batch;
        counters.echoed(batch, limit);
    }
    Ok(())
}
