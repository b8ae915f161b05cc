//! The echo server: answers every frame with the same frame.
//!
//! In refbuf mode each connection reads frames with a `Reader` into pool
//! memory and answers with one vectored write of a `Chain`: the length
//! header goes into the payload's headroom where the header and payload
//! slices touch (`release_previous` hands the header's bytes to the
//! payload), or into a header slice pushed in front where they do not. In
//! `--baseline` mode it reads with `read_exact` into a fresh `Vec` per frame
//! (through a 64 KiB `BufReader`, so both modes read ahead) and writes the
//! `Vec` back.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use refbuf::{Chain, Pool};

use super::frame::{self, HEADER_LEN};
pub use super::outcome::{ConnEnd, Summary};

/// How the server runs and when it stops.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// Frames announcing more payload bytes than this are refused.
    pub max_frame: usize,
    /// `Vec` + `read_exact` instead of refbuf.
    pub baseline: bool,
    /// Stop once this many frames have been echoed, over all connections.
    pub frames: u64,
    /// Stop after this long.
    pub duration: Duration,
}

/// Counters shared by the connection threads.
#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    in_place: AtomicU64,
    header_slices: AtomicU64,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    events: Receiver<ConnEnd>,
    thread: JoinHandle<io::Result<Summary>>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port) and starts serving on
    /// a thread of its own, one more thread per connection.
    pub fn start(config: Config) -> io::Result<Server> {
        let listener = frame::listen(config.addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let stop_flag = Arc::clone(&stop);
        let thread = thread::spawn(move || accept_loop(&listener, &config, &stop_flag, &tx));
        Ok(Server { addr, stop, events, thread })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One `ConnEnd` per connection, as each ends; disconnected once the
    /// server has stopped.
    pub fn events(&self) -> &Receiver<ConnEnd> {
        &self.events
    }

    /// Waits until the server stops by itself (frame count or duration).
    pub fn wait(self) -> io::Result<Summary> {
        self.thread.join().expect("the accept thread panicked")
    }

    /// Stops the server now, closing every connection, and waits for it.
    pub fn stop(self) -> io::Result<Summary> {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }
}

/// Accepts connections until told to stop, the duration is up or enough
/// frames were echoed; then shuts every connection down and joins its
/// thread.
fn accept_loop(
    listener: &TcpListener,
    config: &Config,
    stop: &AtomicBool,
    events: &Sender<ConnEnd>,
) -> io::Result<Summary> {
    let deadline = Instant::now() + config.duration;
    let pool = Pool::new();
    let counters = Arc::new(Counters::default());
    let mut connections = 0;
    let mut live: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    while !stop.load(Ordering::Relaxed)
        && Instant::now() < deadline
        && counters.frames.load(Ordering::Relaxed) < config.frames
    {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false)?;
                frame::set_nodelay(&stream)?;
                let closer = stream.try_clone()?;
                let (pool, counters, events) = (pool.clone(), Arc::clone(&counters), events.clone());
                let (max_frame, baseline) = (config.max_frame, config.baseline);
                let handle = thread::spawn(move || {
                    let mut frames = 0;
                    let result = if baseline {
                        serve_baseline(&stream, max_frame, &counters, &mut frames)
                    } else {
                        serve_refbuf(&stream, &pool, max_frame, &counters, &mut frames)
                    };
                    // The receiver may be gone if nobody watches events.
                    let _ = events.send(ConnEnd { peer, frames, result });
                });
                live.push((closer, handle));
                connections += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e),
        }
        live.retain(|(_, handle)| !handle.is_finished());
    }
    for (stream, handle) in live {
        // Wakes a thread blocked reading; it may have just closed, so a
        // failure here means nothing.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        handle.join().expect("a connection thread panicked");
    }
    let frames = counters.frames.load(Ordering::Relaxed);
    Ok(Summary {
        connections,
        frames,
        in_place: counters.in_place.load(Ordering::Relaxed),
        header_slices: counters.header_slices.load(Ordering::Relaxed),
        // Each frame is answered with a write of its own.
        writes: frames,
    })
}

/// Echoes frames read with a `Reader`, each answered with one vectored
/// write of a `Chain`.
fn serve_refbuf(
    stream: &TcpStream,
    pool: &Pool,
    max_frame: usize,
    counters: &Counters,
    frames: &mut u64,
) -> io::Result<()> {
    let mut reader = pool.reader(stream);
    let mut headers = pool.allocator(0);
    let mut out = stream;
    let mut reply = Chain::new();
    while let Some((header, mut payload)) = frame::read_frame(&mut reader, max_frame)? {
        let len = frame::header(payload.len());
        // Where the header's bytes directly precede the payload, they become
        // its headroom; otherwise the header slice is simply dropped.
        payload.release_previous(header);
        if payload.prepend(&len) {
            reply.push_back(payload);
            counters.in_place.fetch_add(1, Ordering::Relaxed);
        } else {
            reply.push_back(payload);
            reply.push_front(headers.copy_from_slice(&len));
            counters.header_slices.fetch_add(1, Ordering::Relaxed);
        }
        reply.write_to(&mut out)?;
        *frames += 1;
        counters.frames.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Echoes frames read with `read_exact` into a `Vec` per frame.
fn serve_baseline(
    stream: &TcpStream,
    max_frame: usize,
    counters: &Counters,
    frames: &mut u64,
) -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    let mut out = stream;
    loop {
        let mut header = [0; HEADER_LEN];
        match frame::read_full(&mut input, &mut header)? {
            0 => return Ok(()),
            HEADER_LEN => {}
            got => return Err(frame::truncated("header", Some(got), HEADER_LEN)),
        }
        let len = frame::payload_len(header);
        if len > max_frame {
            return Err(frame::too_large(len, max_frame));
        }
        let mut reply = vec![0; HEADER_LEN + len];
        reply[..HEADER_LEN].copy_from_slice(&header);
        if let Err(e) = input.read_exact(&mut reply[HEADER_LEN..]) {
            return Err(match e.kind() {
                io::ErrorKind::UnexpectedEof => frame::truncated("payload", None, len),
                _ => e,
            });
        }
        out.write_all(&reply)?;
        *frames += 1;
        counters.frames.fetch_add(1, Ordering::Relaxed);
    }
}
