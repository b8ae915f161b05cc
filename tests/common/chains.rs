//! Chain builders and readers, and a scripted writer, shared by
//! `tests/chain.rs` and `tests/chain_async.rs`, each of which includes this
//! file with `#[path]`.
#![allow(dead_code, reason = "each test binary that includes this module uses a part of it")]

use std::io::{self, IoSlice, Write};

use refbuf::{Chain, Pool};

/// A pool of 64-byte bufs.
pub fn pool64() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// The chain's bytes, in order, read through its parts.
pub fn contents(chain: &Chain) -> Vec<u8> {
    chain.iter().flat_map(|part| part.iter().copied()).collect()
}

/// Lengths of the chain's parts, in order.
pub fn part_lens(chain: &Chain) -> Vec<usize> {
    chain.iter().map(|part| part.len()).collect()
}

/// A chain of parts that never touch (reserve 1 keeps them apart), with the
/// given lengths and the byte pattern `i as u8` over the whole chain.
pub fn chain_of(pool: &Pool, lens: &[usize]) -> (Chain, Vec<u8>) {
    let mut alloc = pool.allocator(1);
    let mut chain = Chain::new();
    let mut all = Vec::new();
    for &len in lens {
        let part: Vec<u8> = (all.len()..all.len() + len).map(|i| i as u8).collect();
        chain.push_back(alloc.copy_from_slice(&part));
        all.extend_from_slice(&part);
    }
    (chain, all)
}

/// One scripted response of a [`ScriptedWriter`].
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// Accept up to this many bytes.
    Accept(usize),
    /// Accept nothing for now: `Pending` (waking the waker at once) as an
    /// `AsyncWrite`, `WouldBlock` as a `Write`.
    Pending,
    /// Fail with this kind, accepting nothing.
    Fail(io::ErrorKind),
    /// Claim to have written this many bytes, whatever was offered.
    Claim(usize),
}

/// A writer, blocking (`Write`) and async (`AsyncWrite`, feature `tokio`),
/// that answers each vectored write with the next step of its script
/// (repeating the last step) and records what it received.
pub struct ScriptedWriter {
    script: Vec<Step>,
    pub calls: usize,
    pub received: Vec<u8>,
    /// Number of IoSlices offered in each call.
    pub iovecs: Vec<usize>,
}

impl ScriptedWriter {
    pub fn new(script: &[Step]) -> ScriptedWriter {
        ScriptedWriter { script: script.to_vec(), calls: 0, received: Vec::new(), iovecs: Vec::new() }
    }

    /// The next step's answer to an offer of `bufs`; `None` for
    /// [`Step::Pending`].
    fn answer(&mut self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        let step = self.script[self.calls.min(self.script.len() - 1)];
        self.calls += 1;
        self.iovecs.push(bufs.len());
        match step {
            Step::Accept(max) => {
                let before = self.received.len();
                for buf in bufs {
                    let room = max - (self.received.len() - before);
                    self.received.extend_from_slice(&buf[..buf.len().min(room)]);
                }
                Some(Ok(self.received.len() - before))
            }
            Step::Pending => None,
            Step::Fail(kind) => Some(Err(io::Error::new(kind, "scripted failure"))),
            Step::Claim(n) => Some(Ok(n)),
        }
    }
}

impl Write for ScriptedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.answer(bufs).unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncWrite for ScriptedWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut().answer(bufs) {
            Some(result) => std::task::Poll::Ready(result),
            None => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
