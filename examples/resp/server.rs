//! The server: an accept loop on a tokio runtime, one task per connection,
//! in refbuf and `--baseline` modes.
//!
//! In refbuf mode a connection reads with an `AsyncReader` into pool
//! memory. The `Parser` looks at `buffer()` for the end of the next
//! request; the request is then taken whole with `read(len)` (at once: its
//! bytes are buffered) and run, its values cut out of it as slices. The
//! replies to every request already buffered are copied into pool memory
//! through an allocator of the batch's own (`Replies`), except stored
//! values a `GET` sends, which the replies share, and go out together in
//! vectored writes: usually one per read.
//!
//! In `--baseline` mode it is written as one would without refbuf:
//! `tokio_util`'s `FramedRead` with a decoder that splits each request off
//! its `BytesMut` and freezes it, values kept as `Bytes`, and replies
//! written into a `BytesMut`, sent once per batch.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use refbuf::{Allocator, Pool, Slice};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::codec::{Decoder, FramedRead};

use super::command::{self, Flow, Out, Request};
use super::parse::{ArgRanges, Parser, ProtocolError};
use super::store::{BytesValues, PooledValue, PooledValues, Store};
use super::tokio_common::server::runtime;

/// Replies to requests already buffered are gathered into one write up to
/// about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// The most a connection may have buffered of requests not yet answered,
/// as redis-server's `client-query-buffer-limit`; raised to hold one
/// request with a bulk string of the largest length accepted.
const QUERY_LIMIT: usize = 1 << 30;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Runtime worker threads; 1 runs a current-thread runtime.
    pub threads: usize,
    /// The budget of the stored values, in bytes.
    pub maxmemory: usize,
    /// The longest array or bulk string accepted.
    pub max_bulk_len: usize,
    /// Values at least this long are kept in the read buf (refbuf mode).
    pub keep_from: usize,
    /// `BytesMut` and `tokio_util` instead of refbuf.
    pub baseline: bool,
}

/// The state every connection shares: the pools and the keyspace.
pub struct Service {
    /// Requests are read, and replies written, into this pool's bufs.
    pub read_pool: Pool,
    /// Small values are copied into this pool's bufs; its budget is
    /// `--maxmemory`.
    pub value_pool: Pool,
    /// The keys and values, kept as the mode keeps them.
    keyspace: Keyspace,
    /// The longest array or bulk string accepted.
    max_bulk_len: usize,
}

/// The keyspace of the mode the server runs in.
enum Keyspace {
    /// Values as slices (boxed: the store holds an `Allocator`, which is
    /// larger than the baseline's whole store).
    Refbuf(Box<Store<PooledValues>>),
    /// Values as `Bytes`.
    Baseline(Store<BytesValues>),
}

impl Service {
    /// The pools and an empty keyspace for `config`.
    pub fn new(config: &Config) -> Service {
        let read_pool = Pool::new();
        let value_pool = Pool::builder().max_bytes(config.maxmemory).build();
        let keyspace = if config.baseline {
            Keyspace::Baseline(Store::new(BytesValues, config.maxmemory))
        } else {
            Keyspace::Refbuf(Box::new(Store::new(
                PooledValues::new(&value_pool, config.keep_from),
                config.maxmemory,
            )))
        };
        Service { read_pool, value_pool, keyspace, max_bulk_len: config.max_bulk_len }
    }

    /// The longest request buffered before the connection is dropped.
    fn query_limit(&self) -> usize {
        QUERY_LIMIT.max(self.max_bulk_len.saturating_add(1 << 16))
    }
}

/// A running server.
pub struct Server {
    /// The address it listens on.
    addr: SocketAddr,
    /// The pools and keyspace, shared with the connections.
    service: Arc<Service>,
    /// Told to stop the accept loop.
    stop: Arc<Notify>,
    /// The thread running the runtime.
    thread: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port) and starts serving on
    /// a runtime of `config.threads` workers, run by a thread of its own.
    pub fn start(config: &Config) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind(config.addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = runtime(config.threads)?;
        let service = Arc::new(Service::new(config));
        let stop = Arc::new(Notify::new());
        let (stop_flag, serving) = (Arc::clone(&stop), Arc::clone(&service));
        let thread = thread::Builder::new().name("resp_server".into()).spawn(move || {
            let result = runtime.block_on(accept_loop(listener, serving, &stop_flag));
            // Waits for the workers, which flushes their pool caches.
            drop(runtime);
            result
        })?;
        Ok(Server { addr, service, stop, thread })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pools and keyspace.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Waits until the server stops: on an accept error, or never.
    pub fn wait(self) -> io::Result<()> {
        self.thread.join().expect("the server thread panicked")
    }

    /// Stops the server now, dropping every connection, and waits for it.
    pub fn stop(self) -> io::Result<()> {
        self.stop.notify_one();
        self.wait()
    }
}

/// Accepts connections, each served by a task of its own, until told to
/// stop; then cancels every connection's task.
async fn accept_loop(
    listener: std::net::TcpListener,
    service: Arc<Service>,
    stop: &Notify,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                stream.set_nodelay(true)?;
                tasks.spawn(serve(stream, Arc::clone(&service)));
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            () = stop.notified() => break,
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// Serves one connection. Its end, clean or not, concerns it alone, and is
/// not reported.
async fn serve(mut stream: TcpStream, service: Arc<Service>) {
    let (input, output) = stream.split();
    let _ = serve_connection(input, output, &service).await;
}

/// Serves requests from `input`, replies to `output`, in the service's
/// mode, until the peer closes cleanly between requests or sends `QUIT`.
///
/// # Errors
/// A protocol error (answered before it is returned), a request cut off by
/// the end of the input, a query over the limit, or an IO error.
pub async fn serve_connection<R, W>(input: R, output: W, service: &Service) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match &service.keyspace {
        Keyspace::Refbuf(store) => serve_refbuf(input, output, service, store).await,
        Keyspace::Baseline(store) => serve_baseline(input, output, service, store).await,
    }
}

/// A request read whole into one slice, its values cut out of it in order.
struct SliceRequest {
    /// The request from `base` on.
    rest: Slice,
    /// The offset in the request at which `rest` starts.
    base: usize,
}

impl Request for SliceRequest {
    type Value = PooledValue;

    fn arg(&self, range: &Range<usize>) -> &[u8] {
        &self.rest[range.start - self.base..range.end - self.base]
    }

    /// The value where it was read, handed to `Bytes` without a copy, with
    /// the `$len\r\n` in front of it and the `\r\n` after it where the
    /// request has them (not in an inline command).
    fn cut(&mut self, range: Range<usize>) -> PooledValue {
        let (start, end) = (range.start - self.base, range.end - self.base);
        let mut line = [0; 24];
        let mut cursor = io::Cursor::new(&mut line[..]);
        write!(cursor, "${}\r\n", range.len()).expect("24 bytes hold any length's line");
        let written = cursor.position() as usize;
        let line = &line[..written];
        let framed = self.rest[..start].ends_with(line) && self.rest.get(end..end + 2) == Some(&b"\r\n"[..]);
        let (header, from, to) =
            if framed { (line.len(), start - line.len(), end + 2) } else { (0, start, end) };
        let mut value = self.rest.split_off(from);
        self.rest = value.split_off(to - from);
        self.base += to;
        PooledValue::Kept { bytes: value.into_bytes(), header }
    }
}

/// A piece of a batch's replies.
enum Part {
    /// Replies copied into pool memory.
    Pooled(Slice),
    /// A stored value a `GET` sends, shared with the keyspace.
    Shared(Bytes),
}

impl Part {
    /// The bytes still to send.
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Pooled(slice) => slice,
            Part::Shared(bytes) => bytes,
        }
    }

    /// Drops the first `n` bytes, sent.
    fn advance(&mut self, n: usize) {
        match self {
            Part::Pooled(slice) => slice.truncate_front(n),
            Part::Shared(bytes) => bytes.advance(n),
        }
    }
}

/// The replies of one batch, in order: copied through the batch's
/// allocator, each copy joined to the one before where they touch, with
/// stored values shared between them.
struct Replies<'a> {
    /// Cuts the copies from the read pool.
    alloc: Allocator,
    /// The copies since the last shared value, one slice while they touch.
    tail: Option<Slice>,
    /// Everything before `tail`; the connection's, kept across batches.
    parts: &'a mut VecDeque<Part>,
    /// Bytes in `parts` and `tail`.
    len: usize,
}

impl Replies<'_> {
    /// Bytes of replies gathered.
    fn len(&self) -> usize {
        self.len
    }

    /// Moves the copies made since the last shared value into `parts`.
    fn close_tail(&mut self) {
        if let Some(tail) = self.tail.take() {
            self.parts.push_back(Part::Pooled(tail));
        }
    }
}

impl Out for Replies<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        // Never waits for the read pool, which has no budget.
        let copy = self.alloc.try_copy_from_slice(bytes).map_err(io::Error::from)?;
        self.len += bytes.len();
        match self.tail.as_mut() {
            None => self.tail = Some(copy),
            Some(tail) => {
                if let Err(apart) = tail.try_join(copy) {
                    self.close_tail();
                    self.tail = Some(apart);
                }
            }
        }
        Ok(())
    }

    fn put_shared(&mut self, bytes: &Bytes) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.close_tail();
        self.parts.push_back(Part::Shared(bytes.clone()));
        self.len += bytes.len();
        Ok(())
    }
}

/// Sends `parts` whole, in vectored writes of up to 64 parts each.
async fn write_parts<W: AsyncWrite + Unpin>(parts: &mut VecDeque<Part>, output: &mut W) -> io::Result<()> {
    while !parts.is_empty() {
        let mut iov = [IoSlice::new(&[]); 64];
        let mut n = 0;
        for (slot, part) in iov.iter_mut().zip(parts.iter()) {
            *slot = IoSlice::new(part.bytes());
            n += 1;
        }
        let mut sent = output.write_vectored(&iov[..n]).await?;
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while sent > 0 {
            let front = parts.front_mut().expect("no more sent than offered");
            let len = front.bytes().len();
            if sent < len {
                front.advance(sent);
                break;
            }
            sent -= len;
            parts.pop_front();
        }
    }
    output.flush().await
}

/// The error a connection ends with after a protocol error, which has been
/// answered.
fn protocol_error(e: ProtocolError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("Protocol error: {e}"))
}

/// Answers a protocol error: `-ERR Protocol error: <what>`.
fn reply_protocol_error(out: &mut impl Out, e: ProtocolError) -> io::Result<()> {
    out.error(format!("Protocol error: {e}").as_bytes())
}

/// `serve_connection` in refbuf mode: requests read with an `AsyncReader`
/// over `input` into the read pool, values stored as slices, replies
/// written to `output` with one `write_all_async` per batch.
async fn serve_refbuf<R, W>(
    input: R,
    mut output: W,
    service: &Service,
    store: &Store<PooledValues>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = service.read_pool.async_reader(input).with_max_frame_len(service.query_limit());
    let mut parser = Parser::new(service.max_bulk_len);
    // Made once per connection, so that a batch allocates nothing.
    let mut parts = VecDeque::with_capacity(16);
    loop {
        // An allocator per batch: once the batch is sent its buf goes back
        // to the pool, so a connection waiting for its peer holds none for
        // replies, and the next batch, of any connection on this thread,
        // takes it back from the thread's cache, still in the CPU's cache.
        let alloc = service.read_pool.allocator(0);
        let mut out = Replies { alloc, tail: None, parts: &mut parts, len: 0 };
        let mut flow = Flow::Continue;
        let mut failed = None;
        // Whether the batch stopped at its size, requests perhaps still
        // buffered.
        let mut more = false;
        loop {
            if out.len() >= BATCH_BYTES {
                more = true;
                break;
            }
            let frame = match parser.parse(reader.buffer()) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    reply_protocol_error(&mut out, e)?;
                    failed = Some(e);
                    break;
                }
            };
            let rest = reader.read(frame.len).await?;
            if frame.argc == 0 {
                continue;
            }
            flow = command::execute(&mut SliceRequest { rest, base: 0 }, parser.args(), store, &mut out)?;
            if flow == Flow::Quit {
                break;
            }
        }
        out.close_tail();
        drop(out);
        write_parts(&mut parts, &mut output).await?;
        if let Some(e) = failed {
            return Err(protocol_error(e));
        }
        if flow == Flow::Quit {
            return Ok(());
        }
        if !more && reader.fill().await? == 0 {
            return match reader.buffered() {
                0 => Ok(()),
                n => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{n} bytes of a request cut off"),
                )),
            };
        }
    }
}

/// The baseline's decoder: whole requests, each split off the read buffer
/// and frozen.
struct RespCodec {
    /// Finds each request's end and arguments.
    parser: Parser,
    /// The most bytes buffered without a whole request.
    query_limit: usize,
}

/// Why the baseline's decoder stopped.
#[derive(Debug)]
enum DecodeError {
    /// The request cannot be read: answered, then the connection closes.
    Protocol(ProtocolError),
    /// The source failed, or the query outgrew its limit.
    Io(io::Error),
}

impl From<io::Error> for DecodeError {
    fn from(e: io::Error) -> DecodeError {
        DecodeError::Io(e)
    }
}

impl Decoder for RespCodec {
    type Item = (ArgRanges, Bytes);
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(ArgRanges, Bytes)>, DecodeError> {
        match self.parser.parse(src).map_err(DecodeError::Protocol)? {
            Some(frame) => Ok(Some((self.parser.args().into(), src.split_to(frame.len).freeze()))),
            None if src.len() > self.query_limit => {
                Err(io::Error::new(io::ErrorKind::InvalidData, "query buffer over the limit").into())
            }
            None => Ok(None),
        }
    }
}

/// A request frozen whole; a value cut from it shares its memory.
struct BytesRequest(Bytes);

impl Request for BytesRequest {
    type Value = Bytes;

    fn arg(&self, range: &Range<usize>) -> &[u8] {
        &self.0[range.clone()]
    }

    fn cut(&mut self, range: Range<usize>) -> Bytes {
        self.0.slice(range)
    }
}

impl Out for BytesMut {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// `serve_connection` in baseline mode, on `FramedRead` and `BytesMut`.
async fn serve_baseline<R, W>(
    input: R,
    mut output: W,
    service: &Service,
    store: &Store<BytesValues>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let codec = RespCodec { parser: Parser::new(service.max_bulk_len), query_limit: service.query_limit() };
    let mut requests = FramedRead::new(input, codec);
    let mut out = BytesMut::new();
    while let Some(request) = requests.next().await {
        let mut next = Some(request);
        let mut flow = Flow::Continue;
        let mut failed = None;
        while let Some(request) = next.take() {
            let (args, bytes) = match request {
                Ok(request) => request,
                Err(DecodeError::Protocol(e)) => {
                    reply_protocol_error(&mut out, e)?;
                    failed = Some(e);
                    break;
                }
                Err(DecodeError::Io(e)) => return Err(e),
            };
            if !args.is_empty() {
                flow = command::execute(&mut BytesRequest(bytes), &args, store, &mut out)?;
                if flow == Flow::Quit {
                    break;
                }
            }
            // The next request where it is buffered (or can be read at once).
            if out.len() < BATCH_BYTES {
                next = requests.next().now_or_never().flatten();
            }
        }
        output.write_all_buf(&mut out).await?;
        if let Some(e) = failed {
            return Err(protocol_error(e));
        }
        if flow == Flow::Quit {
            return Ok(());
        }
    }
    Ok(())
}
