//! Reader semantics: exact frames, read-ahead, frames larger than a buf,
//! errors that lose nothing, buf reuse and accounting.

use std::collections::VecDeque;
use std::io::{self, Cursor, Read};

use refbuf::{AllocError, Pool, Slice, coalesce};

const BS: usize = 64;

fn pool() -> Pool {
    Pool::builder().buf_size(BS).build()
}

/// A deterministic, non-periodic byte stream.
fn stream(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i >> 8) as u8).collect()
}

/// A source that hands out `data` at most `chunk` bytes per call and records
/// the length of every buffer it is asked to fill.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    requests: Vec<usize>,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], chunk: usize) -> Self {
        Chunked { data, pos: 0, chunk, requests: Vec::new() }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.requests.push(buf.len());
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One step of a scripted source.
enum Step {
    Data(Vec<u8>),
    Fail(io::ErrorKind),
    Custom(&'static str),
    /// Claims `buf.len() + extra` bytes were read (a buggy `Read`).
    Lie(usize),
}

/// A source that plays a script; a data step larger than the buffer it is
/// given is delivered over several calls. Returns `Ok(0)` when done.
struct Script {
    steps: VecDeque<Step>,
    errors_returned: usize,
}

impl Script {
    fn new(steps: Vec<Step>) -> Self {
        Script { steps: steps.into(), errors_returned: 0 }
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.steps.pop_front() {
            None => Ok(0),
            Some(Step::Data(mut v)) => {
                let n = v.len().min(buf.len());
                buf[..n].copy_from_slice(&v[..n]);
                if n < v.len() {
                    self.steps.push_front(Step::Data(v.split_off(n)));
                }
                Ok(n)
            }
            Some(Step::Fail(kind)) => {
                self.errors_returned += 1;
                Err(kind.into())
            }
            Some(Step::Custom(msg)) => {
                self.errors_returned += 1;
                Err(io::Error::other(msg))
            }
            Some(Step::Lie(extra)) => Ok(buf.len().saturating_add(extra)),
        }
    }
}

fn alloc_error(e: &io::Error) -> Option<AllocError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<AllocError>()).copied()
}

fn concat(slices: &[Slice]) -> Vec<u8> {
    slices.iter().flat_map(|s| s.iter().copied()).collect()
}

/// `read(n)` returns exactly the next n bytes as one slice with no headroom.
#[test]
fn read_returns_exact_frames_without_headroom() {
    let data = stream(500);
    let pool = pool();
    let mut reader = pool.reader(&data[..]);
    let mut pos = 0;
    for n in [1, 4, 0, 17, 63, 64, 65, 2, 100] {
        let s = reader.read(n).unwrap();
        assert_eq!(s.len(), n);
        assert_eq!(s.headroom(), 0);
        assert_eq!(&s[..], &data[pos..pos + n]);
        pos += n;
    }
}

/// The reader reads ahead, asking the source for all the free room in its buf.
#[test]
fn read_ahead_asks_for_whole_buf() {
    let data = stream(100);
    let pool = pool();

    // A source that gives at most 5 bytes per call.
    let mut reader = pool.reader(Chunked::new(&data, 5));
    assert_eq!(&reader.read(3).unwrap()[..], &data[..3]);
    assert_eq!(reader.get_ref().requests, [BS], "first request is the whole buf");
    assert_eq!(reader.buffered(), 2);
    // Needs 4 with 2 buffered: asks for everything after the 5 bytes held.
    assert_eq!(&reader.read(4).unwrap()[..], &data[3..7]);
    assert_eq!(reader.get_ref().requests, [BS, BS - 5]);

    // A source that gives everything it can fills the buf in one call.
    let mut reader = pool.reader(Chunked::new(&data, usize::MAX));
    assert_eq!(&reader.read(3).unwrap()[..], &data[..3]);
    assert_eq!(reader.get_ref().requests, [BS]);
    assert_eq!(reader.buffered(), BS - 3);
    for i in 0..(BS - 3) {
        assert_eq!(reader.read(1).unwrap()[0], data[3 + i]);
    }
    assert_eq!(reader.get_ref().requests.len(), 1, "buffered bytes need no further source reads");
}

/// Frames larger than the buf (or than what is left of it) come back intact, as one slice.
#[test]
fn frames_larger_than_buf_come_back_whole() {
    let frames = [10, 3 * BS + 1, 5, BS, BS + 1, 2 * BS, 60, 200, 1, 3 * BS + 1];
    let total: usize = frames.iter().sum();
    let data = stream(total);
    for chunk in [1, 7, usize::MAX] {
        for hold in [false, true] {
            let pool = pool();
            let mut reader = pool.reader(Chunked::new(&data, chunk));
            let mut held = Vec::new();
            let mut pos = 0;
            for &n in &frames {
                let s = reader.read(n).unwrap();
                assert_eq!(s.len(), n, "chunk {chunk} hold {hold}");
                assert_eq!(s.headroom(), 0);
                assert_eq!(&s[..], &data[pos..pos + n], "chunk {chunk} hold {hold} frame {n} at {pos}");
                pos += n;
                if hold {
                    held.push(s);
                }
            }
            if hold {
                assert_eq!(concat(&held), data, "held slices stay intact while later frames are read");
            }
            assert_eq!(reader.buffered(), 0);
        }
    }
}

/// A frame too big for the rest of a buf still in use goes, with the unread bytes, to a new buf, which grows
/// by doubling with the bytes received (64, 128, then 256 bytes, the smallest class that fits the frame); the
/// bufs it grew out of are idle.
#[test]
fn frame_not_fitting_moves_unread_bytes_to_new_buf() {
    let data = stream(BS + 3 * BS + 1);
    let pool = pool();
    let mut reader = pool.reader(&data[..]);
    let first = reader.read(BS - 4).unwrap();
    assert_eq!(reader.buffered(), 4);
    let big = reader.read(3 * BS + 1).unwrap();
    assert_eq!(&first[..], &data[..BS - 4]);
    assert_eq!(&big[..], &data[BS - 4..BS - 4 + 3 * BS + 1]);
    let stats = pool.stats();
    assert_eq!(stats.bufs_created, 4);
    assert_eq!(stats.bufs_in_use, 2);
    assert_eq!(stats.bytes_in_use, BS + 4 * BS, "the last buf is the smallest class that fits");
    assert_eq!((stats.bufs_idle, stats.bytes_idle), (2, BS + 2 * BS), "the bufs it grew out of");
}

/// When the source ends first, the read fails with UnexpectedEof and the bytes stay buffered, in order.
#[test]
fn eof_keeps_buffered_bytes() {
    let data = stream(10);
    for chunk in [1, 3, usize::MAX] {
        let pool = pool();
        let mut reader = pool.reader(Chunked::new(&data, chunk));
        let e = reader.read(20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(reader.buffered(), 10);
        assert_eq!(reader.read(11).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(reader.buffered(), 10);
        assert_eq!(&reader.read(4).unwrap()[..], &data[..4]);
        assert_eq!(reader.buffered(), 6);
        assert_eq!(&reader.read(6).unwrap()[..], &data[4..]);
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.read(1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(reader.read(0).unwrap().len(), 0);
    }
}

/// `Interrupted` from the source is retried and never surfaces.
#[test]
fn interrupted_is_retried() {
    let data = stream(300);
    let mut steps = Vec::new();
    for chunk in data.chunks(7) {
        steps.push(Step::Fail(io::ErrorKind::Interrupted));
        steps.push(Step::Data(chunk.to_vec()));
    }
    steps.push(Step::Fail(io::ErrorKind::Interrupted));
    let pool = pool();
    let mut reader = pool.reader(Script::new(steps));
    let mut out = Vec::new();
    for n in [1, 13, 64, 65, 100, 57] {
        out.extend_from_slice(&reader.read(n).unwrap());
    }
    assert_eq!(out, data);
    assert_eq!(reader.read(1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert!(reader.get_ref().steps.is_empty());
    assert_eq!(reader.get_ref().errors_returned, data.len().div_ceil(7) + 1);
}

/// A non-blocking source returning WouldBlock between chunks loses, duplicates and reorders nothing.
#[test]
fn would_block_loses_nothing() {
    let data = stream(if cfg!(miri) { 400 } else { 2000 });
    // Chunks of varying size, with WouldBlock after each (sometimes twice).
    let mut steps = Vec::new();
    let (mut pos, mut i) = (0, 0usize);
    while pos < data.len() {
        let n = (1 + i * 37 % 90).min(data.len() - pos);
        steps.push(Step::Data(data[pos..pos + n].to_vec()));
        steps.push(Step::Fail(io::ErrorKind::WouldBlock));
        if i % 3 == 0 {
            steps.push(Step::Fail(io::ErrorKind::WouldBlock));
        }
        pos += n;
        i += 1;
    }
    let scripted_blocks = steps.iter().filter(|s| matches!(s, Step::Fail(_))).count();

    let pool = pool();
    let mut reader = pool.reader(Script::new(steps));
    let mut out = Vec::new();
    let mut blocks_seen = 0;
    let mut held = Vec::new();
    let mut f = 0usize;
    while out.len() < data.len() {
        let n = [1, 5, 64, 0, 130, 33, 200, 63][f % 8].min(data.len() - out.len());
        f += 1;
        let s = loop {
            match reader.read(n) {
                Ok(s) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocks_seen += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
        };
        assert_eq!(s.len(), n);
        out.extend_from_slice(&s);
        if f.is_multiple_of(2) {
            held.push(s);
        }
    }
    assert_eq!(out, data);
    assert!(blocks_seen > 0, "WouldBlock surfaced to the caller");
    assert!(blocks_seen <= scripted_blocks);
    assert_eq!(reader.buffered(), 0);
    // Slices held across WouldBlock retries are still intact.
    let mut check = 0;
    let mut f = 0usize;
    let mut hi = 0;
    while check < data.len() {
        let n = [1, 5, 64, 0, 130, 33, 200, 63][f % 8].min(data.len() - check);
        f += 1;
        if f.is_multiple_of(2) {
            assert_eq!(&held[hi][..], &data[check..check + n]);
            hi += 1;
        }
        check += n;
    }
}

/// A custom error mid-frame surfaces unchanged, and the reader then continues where it was.
#[test]
fn custom_error_mid_frame_then_continue() {
    let data = stream(40);
    let steps = vec![
        Step::Data(data[..5].to_vec()),
        Step::Custom("boom"),
        Step::Data(data[5..15].to_vec()),
        Step::Fail(io::ErrorKind::ConnectionReset),
        Step::Data(data[15..].to_vec()),
    ];
    let pool = pool();
    let mut reader = pool.reader(Script::new(steps));
    let e = reader.read(12).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
    assert_eq!(e.to_string(), "boom");
    assert_eq!(reader.buffered(), 5, "bytes read before the error are kept");
    let a = reader.read(12).unwrap();
    assert_eq!(&a[..], &data[..12]);
    let e = reader.read(10).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(reader.buffered(), 3);
    let b = reader.read(28).unwrap();
    assert_eq!(&b[..], &data[12..]);
    assert_eq!(&a[..], &data[..12], "the earlier slice is untouched");
}

/// A source claiming more bytes than it was given room for yields InvalidData, and the reader stays usable.
#[test]
fn lying_source_is_invalid_data() {
    let data = stream(30);
    for extra in [1, 1000, usize::MAX] {
        let steps = vec![Step::Data(data[..3].to_vec()), Step::Lie(extra), Step::Data(data[3..].to_vec())];
        let pool = pool();
        let mut reader = pool.reader(Script::new(steps));
        let e = reader.read(10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "extra {extra}");
        assert_eq!(reader.buffered(), 3, "the lie adds nothing to the buffer");
        assert_eq!(&reader.read(10).unwrap()[..], &data[..10]);
        assert_eq!(&reader.read(20).unwrap()[..], &data[10..]);
    }
    // A lie on the very first read.
    let pool = pool();
    let mut reader = pool.reader(Script::new(vec![Step::Lie(1), Step::Data(data.clone())]));
    assert_eq!(reader.read(1).unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert_eq!(reader.buffered(), 0);
    assert_eq!(&reader.read(30).unwrap()[..], &data[..]);
}

/// `read(0)` is an empty slice before the first read and later, and consumes nothing.
#[test]
fn read_zero_is_empty() {
    let data = stream(10);
    let pool = pool();
    let mut reader = pool.reader(Chunked::new(&data, usize::MAX));
    let s = reader.read(0).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.headroom(), 0);
    assert!(reader.get_ref().requests.is_empty(), "read(0) does not touch the source");
    assert_eq!(&reader.read(3).unwrap()[..], &data[..3]);
    let z = reader.read(0).unwrap();
    assert!(z.is_empty());
    assert_eq!(z.headroom(), 0);
    assert_eq!(reader.buffered(), 7);
    assert_eq!(&reader.read(7).unwrap()[..], &data[3..]);
    assert!(reader.read(0).unwrap().is_empty(), "read(0) at end of stream is not an error");
}

/// Consecutive slices read from one buf touch, and `coalesce` joins them into their concatenation.
#[test]
fn consecutive_slices_coalesce() {
    let data = stream(BS + 30);
    let pool = pool();
    let mut reader = pool.reader(&data[..]);
    // All of these come from the first buf, filled in one read.
    let mut parts: Vec<Slice> = [5, 10, 0, 20, 29].iter().map(|&n| reader.read(n).unwrap()).collect();
    assert_eq!(reader.buffered(), 0);
    let mut one = std::mem::take(&mut parts);
    coalesce(&mut one, usize::MAX);
    assert_eq!(one.len(), 1);
    assert_eq!(&one[0][..], &data[..BS]);

    // The next frame cannot fit in the buf still in use, so it comes from a new
    // buf: coalescing across the two gives two slices.
    parts = vec![one.pop().unwrap()];
    parts.push(reader.read(30).unwrap());
    coalesce(&mut parts, usize::MAX);
    assert_eq!(parts.iter().map(|s| s.len()).collect::<Vec<_>>(), [BS, 30]);
    assert_eq!(concat(&parts), data);
}

/// Reads `data` in frames of `frame` bytes from a source giving `chunk` bytes per call.
fn check_splits(data: &[u8], frame: usize, chunk: usize, hold: bool) {
    let pool = pool();
    let mut reader = pool.reader(Chunked::new(data, chunk));
    let mut held = Vec::new();
    let mut pos = 0;
    if frame == 0 {
        for _ in 0..3 {
            assert!(reader.read(0).unwrap().is_empty());
        }
    } else {
        while data.len() - pos >= frame {
            let s = reader.read(frame).unwrap();
            assert_eq!(&s[..], &data[pos..pos + frame], "frame {frame} chunk {chunk} hold {hold} at {pos}");
            pos += frame;
            if hold {
                held.push(s);
            }
        }
    }
    let rest = data.len() - pos;
    if rest > 0 && frame > 0 {
        let e = reader.read(frame).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(reader.buffered(), rest, "frame {frame} chunk {chunk}");
    }
    let last = reader.read(rest).unwrap();
    assert_eq!(&last[..], &data[pos..], "frame {frame} chunk {chunk} hold {hold} tail");
    assert_eq!(reader.read(1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    held.push(last);
    if hold {
        assert_eq!(concat(&held), data, "frame {frame} chunk {chunk}: held slices intact");
    }
    drop((held, reader));
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// Every frame size in 0..=3×buf_size, from 1-byte, 7-byte and all-at-once sources, reads the stream intact.
#[test]
fn exhaustive_splits() {
    let (data, frames): (Vec<u8>, Vec<usize>) = if cfg!(miri) {
        (stream(300), vec![0, 1, 2, 7, 63, 64, 65, 127, 129, 3 * BS])
    } else {
        (stream(3 * 1024 + 5), (0..=3 * BS).collect())
    };
    for &frame in &frames {
        for chunk in [1, 7, usize::MAX] {
            for hold in [false, true] {
                check_splits(&data, frame, chunk, hold);
            }
        }
    }
}

/// On a closed pool every read fails with Closed, idle bufs are freed, and buffered bytes are kept.
#[test]
fn closed_pool_read_errors() {
    let data = stream(200);
    let pool = pool();
    let mut alloc = pool.allocator(0);
    drop(alloc.alloc(10));
    drop(alloc);
    assert_eq!(pool.stats().bufs_idle, 1);

    // A reader that already holds a buf and needs a bigger one.
    let mut reader = pool.reader(&data[..]);
    let first = reader.read(4).unwrap();
    assert_eq!(reader.buffered(), BS - 4);
    pool.close();
    let stats = pool.stats();
    assert_eq!((stats.bufs_idle, stats.bytes_idle), (0, 0), "close frees the idle bufs");
    let e = reader.read(BS + 1).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
    assert_eq!(alloc_error(&e), Some(AllocError::Closed));
    assert_eq!(reader.buffered(), BS - 4, "nothing lost");
    // Refused even where the bytes are already buffered, and they stay.
    let e = reader.read(1).unwrap_err();
    assert_eq!(alloc_error(&e), Some(AllocError::Closed));
    assert_eq!(reader.buffered(), BS - 4, "nothing lost");

    // A fresh reader on the closed pool.
    let mut fresh = pool.reader(&data[..]);
    let e = fresh.read(4).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
    assert_eq!(alloc_error(&e), Some(AllocError::Closed));
    assert_eq!(fresh.buffered(), 0);
    assert_eq!(fresh.get_ref().len(), 200, "the source was not read");

    assert_eq!(&first[..], &data[..4]);
    drop((first, reader, fresh));
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bufs_idle, stats.bytes_in_use), (0, 0, 0));
}

/// A reader counts as a holder of its buf; once it and its slices are gone nothing is in use.
#[test]
fn reader_counts_as_holder() {
    let data = stream(100);
    let pool = pool();
    let mut reader = pool.reader(&data[..]);
    assert_eq!(pool.stats().bufs_in_use, 0, "no buf before the first read");
    let s = reader.read(10).unwrap();
    assert_eq!(pool.stats().bufs_in_use, 1);
    drop(s);
    assert_eq!(pool.stats().bufs_in_use, 1, "the reader still holds its buf");
    let s = reader.read(10).unwrap();
    drop(reader);
    assert_eq!(pool.stats().bufs_in_use, 1, "the slice still holds the buf");
    assert_eq!(&s[..], &data[10..20]);
    drop(s);
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use, stats.bufs_idle), (0, 0, 1));
}

/// Once every slice has been dropped the reader reuses its buf from the start: one buf for many frames.
#[test]
fn reuses_buf_when_slices_dropped() {
    let n = if cfg!(miri) { 600 } else { 20_000 };
    let data = stream(n);
    for chunk in [7, usize::MAX] {
        let pool = pool();
        let mut reader = pool.reader(Chunked::new(&data, chunk));
        let mut pos = 0;
        let mut i = 0usize;
        loop {
            let frame = 1 + (i * 13) % (BS - 1);
            if pos + frame > data.len() {
                break;
            }
            let s = reader.read(frame).unwrap();
            assert_eq!(&s[..], &data[pos..pos + frame]);
            pos += frame;
            i += 1;
        }
        assert_eq!(pool.stats().bufs_created, 1, "chunk {chunk}: {i} frames through one buf");
    }
}

/// With nothing buffered and no slice alive, the next read restarts at the top of its buf and fills it.
#[test]
fn empty_reader_restarts_at_top_of_buf() {
    let data = stream(200);
    let pool = pool();
    let mut reader = pool.reader(Chunked::new(&data, 60));
    let first = reader.read(60).unwrap();
    let top = first.as_ptr();
    assert_eq!(reader.buffered(), 0);
    drop(first);

    // Every slice is gone and nothing is buffered: back to the top, although
    // 4 bytes are still free at the end of the buf.
    let second = reader.read(3).unwrap();
    assert_eq!(second.as_ptr(), top, "reused from the start");
    assert_eq!(reader.get_ref().requests, [BS, BS], "asked for the whole buf again");
    assert_eq!(&second[..], &data[60..63]);

    // A slice is still alive: the reader carries on after it.
    assert_eq!(&reader.read(57).unwrap()[..], &data[63..120]);
    let third = reader.read(2).unwrap();
    assert_eq!(third.as_ptr() as usize, top as usize + 60);
    assert_eq!(reader.get_ref().requests, [BS, BS, BS - 60]);
    assert_eq!(&third[..], &data[120..122]);
    assert_eq!(&second[..], &data[60..63]);
    assert_eq!(pool.stats().bufs_created, 1);
}

/// `get_ref`, `get_mut`, `into_inner` and `pool` give access to the source and pool.
#[test]
fn source_accessors() {
    let data = stream(100);
    let pool = pool();
    let mut reader = pool.reader(Cursor::new(data.clone()));
    assert_eq!(reader.pool().buf_size(), BS);
    assert_eq!(&reader.read(1).unwrap()[..], &data[..1]);
    assert_eq!(reader.get_ref().position(), BS as u64, "read ahead a whole buf");
    // Moving the source skips nothing buffered: those bytes come first.
    reader.get_mut().set_position(90);
    assert_eq!(&reader.read(BS - 1).unwrap()[..], &data[1..BS]);
    assert_eq!(&reader.read(10).unwrap()[..], &data[90..]);
    reader.pool().close();
    assert!(pool.is_closed(), "reader.pool() is the same pool");
    let cursor = reader.into_inner();
    assert_eq!(cursor.position(), 100);
    assert_eq!(cursor.into_inner(), data);
}

/// A huge frame length is an InvalidInput error, never a panic or abort, and the reader stays usable.
#[test]
fn huge_length_is_invalid_input() {
    let data = stream(50);
    let pool = pool();
    // No frame limit of the reader's own: the pool's limits are under test.
    let mut reader = pool.reader(&data[..]).with_max_frame_len(usize::MAX);
    let huge = [usize::MAX, usize::MAX - BS, isize::MAX as usize, isize::MAX as usize + 1];
    for &n in &huge {
        let e = reader.read(n).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "read({n})");
        assert_eq!(alloc_error(&e), Some(AllocError::TooLarge));
    }
    assert_eq!(&reader.read(3).unwrap()[..], &data[..3]);
    for &n in &huge {
        assert_eq!(reader.read(n).unwrap_err().kind(), io::ErrorKind::InvalidInput, "read({n})");
        assert_eq!(reader.buffered(), 47, "nothing lost");
    }
    assert_eq!(&reader.read(47).unwrap()[..], &data[3..]);
}

/// A frame over the reader's max_frame_len is refused at once with InvalidData, before anything is read and
/// with nothing lost; the default is DEFAULT_MAX_FRAME_LEN, and a frame of exactly the maximum is read.
#[test]
fn frames_over_max_frame_len_are_refused_at_once() {
    let data = stream(300);
    let pool = pool();
    let reader = pool.reader(Chunked::new(&data, 7));
    assert_eq!(reader.max_frame_len(), refbuf::DEFAULT_MAX_FRAME_LEN);
    let mut reader = reader.with_max_frame_len(200);
    assert_eq!(reader.max_frame_len(), 200);
    assert_eq!(&reader.read(3).unwrap()[..], &data[..3]);
    let (buffered, requests) = (reader.buffered(), reader.get_ref().requests.len());
    for n in [201, 1 << 20, usize::MAX] {
        let e = reader.read(n).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "read({n})");
        assert_eq!(alloc_error(&e), None, "a limit of the reader's, not the pool's");
    }
    assert_eq!(
        (reader.buffered(), reader.get_ref().requests.len()),
        (buffered, requests),
        "nothing read or lost"
    );
    assert_eq!(&reader.read(200).unwrap()[..], &data[3..203]);
    assert_eq!(&reader.read(97).unwrap()[..], &data[203..]);
}

/// A claimed length far beyond the bytes that arrive takes memory for the bytes that arrived, not for the
/// claim: a 2^62-byte read over 50 bytes ends with UnexpectedEof, every byte kept, having taken one
/// standard buf.
#[test]
fn a_claim_far_beyond_the_data_takes_memory_for_the_data() {
    let data = stream(50);
    let pool = pool();
    let mut reader = pool.reader(&data[..]).with_max_frame_len(usize::MAX);
    let e = reader.read(1 << 62).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(reader.buffered(), 50);
    let stats = pool.stats();
    assert_eq!((stats.bufs_created, stats.bytes_in_use, stats.high_water_bytes), (1, BS, BS), "{stats:?}");
    assert_eq!(&reader.read(50).unwrap()[..], &data[..]);
}

/// A frame many bufs long grows by doubling as its bytes arrive, and holds at most about twice the bytes
/// received at any moment: here, a frame of 40 standard bufs ends in a buf of 64 standard bufs (the smallest
/// class holding it), after moving through bufs of 1, 2, 4, ... 32.
#[test]
fn a_long_frame_grows_by_doubling() {
    let data = stream(40 * BS + 5);
    let pool = Pool::builder().buf_size(BS).max_pooled_size(64 * BS).build();
    let mut reader = pool.reader(Chunked::new(&data, 100));
    let frame = reader.read(40 * BS).unwrap();
    assert_eq!(&frame[..], &data[..40 * BS]);
    let stats = pool.stats();
    assert_eq!(stats.bufs_created, 7, "1, 2, 4, 8, 16, 32 and 64 standard bufs: {stats:?}");
    assert_eq!(stats.bytes_in_use, 64 * BS, "{stats:?}");
    assert!(stats.high_water_bytes <= 3 * 64 * BS, "{stats:?}");
}

/// `buffer` shows what is read ahead and `fill` reads more: a line parser finds each delimiter, filling
/// past the end of a buf (the buffered bytes move to the front or to a larger buf), and takes each line
/// with `read`; `fill` returns 0 at the end of the source and the frame limit bounds it.
#[test]
fn buffer_and_fill_let_a_parser_look_first() {
    let mut text = Vec::new();
    for k in 0..30 {
        text.extend_from_slice(format!("{k}:{}\n", "y".repeat(k * 7)).as_bytes());
    }
    let pool = pool();
    let mut reader = pool.reader(Chunked::new(&text, 13));
    assert!(reader.buffer().is_empty());
    let mut lines = Vec::new();
    loop {
        match reader.buffer().iter().position(|&b| b == b'\n') {
            Some(at) => lines.push(reader.read(at + 1).unwrap()),
            None if reader.fill().unwrap() == 0 => break,
            None => {}
        }
    }
    let joined: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied()).collect();
    assert_eq!(joined, text);
    assert!(lines[29].len() > 3 * BS, "a line longer than three bufs");
    assert_eq!(reader.fill().unwrap(), 0);

    let mut limited = pool.reader(&text[..]).with_max_frame_len(10);
    while limited.buffered() < 10 {
        limited.fill().unwrap();
    }
    assert_eq!(limited.fill().unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert_eq!(&limited.buffer()[..10], &text[..10]);
}
