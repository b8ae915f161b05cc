//! No stale data: memory recycled from a buf full of a marker byte never
//! shows that byte through a safe API, except `alloc_for_overwrite` and
//! `free_entire_prefix`, whose docs say they may (and the tests here show
//! they do, which proves the recycling really happened).
//!
//! Every API is checked on its data and on all of its headroom, claimed with
//! `expand_front`.

use std::io::{self, Read, Write};

use bytes::Buf;
use refbuf::{Chain, Pool, Slice};

const BS: usize = 64;
/// The byte an earlier user left in every recycled buf.
const MARKER: u8 = 0xA5;
/// Bufs poisoned per size class at the start of each test: more than any
/// test below holds at once.
const POISONED: usize = 8;
/// The size classes poisoned: 1 to 4 times `BS`.
const CLASSES: usize = 4;

/// A pool whose every idle buf (`POISONED` of each of the first `CLASSES`
/// sizes) is full of `MARKER`.
fn poisoned_pool() -> Pool {
    let pool = Pool::builder().buf_size(BS).build();
    let mut alloc = pool.allocator(0);
    let bufs: Vec<Slice> = (1..=CLASSES)
        .flat_map(|m| std::iter::repeat_n(m * BS, POISONED))
        .map(|len| {
            let mut s = alloc.alloc_for_overwrite(len);
            s.fill(MARKER);
            s
        })
        .collect();
    drop((bufs, alloc));
    let stats = pool.stats();
    assert_eq!(stats.bufs_idle, POISONED * CLASSES);
    pool
}

/// Proves every buf the test used was a poisoned one: the pool never had to
/// make a fresh buf.
#[track_caller]
fn assert_only_recycled(pool: &Pool) {
    assert_eq!(pool.stats().bufs_created, (POISONED * CLASSES) as u64, "a fresh buf was made");
}

/// Bytes that are never the marker.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|k| (k as u8).wrapping_mul(7).wrapping_add(seed) & 0x7f).collect()
}

/// Panics where `s`'s data or any byte of its headroom is the marker; the
/// slice comes back with its headroom claimed.
#[track_caller]
fn assert_clean(what: &str, mut s: Slice) -> Slice {
    assert!(!s.contains(&MARKER), "{what}: stale byte in the data");
    let headroom = s.headroom();
    assert!(s.expand_front(headroom));
    assert!(!s[..headroom].contains(&MARKER), "{what}: stale byte in the {headroom}-byte headroom");
    s
}

/// `alloc` zero-fills data and headroom, for every reserve and length that fits one recycled buf, across whole bufs.
#[test]
fn alloc_and_its_headroom_never_show_stale_bytes() {
    let pool = poisoned_pool();
    for reserve in [0, 1, 7, 16] {
        let mut alloc = pool.allocator(reserve);
        // Enough slices to walk through several whole bufs.
        for k in 0..3 * BS {
            assert_clean("alloc", alloc.alloc(k % (BS - reserve + 1)));
        }
    }
    assert_only_recycled(&pool);
}

/// `copy_from_slice` zero-fills the headroom in front of the copy.
#[test]
fn copy_from_slice_headroom_is_zeroed() {
    let pool = poisoned_pool();
    for reserve in [1, 9, 32] {
        let mut alloc = pool.allocator(reserve);
        for len in [0, 1, 5, BS - reserve] {
            let data = payload(len, reserve as u8);
            let s = assert_clean("copy_from_slice", alloc.copy_from_slice(&data));
            assert_eq!(&s[reserve..], &data[..]);
            assert!(s[..reserve].iter().all(|&b| b == 0));
        }
    }
    assert_only_recycled(&pool);
}

/// `fill_with` zero-fills the headroom and shows only the bytes the closure wrote, although the closure was handed stale memory.
#[test]
fn fill_with_shows_only_what_was_filled() {
    let pool = poisoned_pool();
    let mut saw_stale = false;
    for reserve in [0, 4, 20] {
        let mut alloc = pool.allocator(reserve);
        for n in [0, 1, 3, 10] {
            let data = payload(n, 3);
            let s = alloc
                .fill_with(BS - reserve, |buf| {
                    saw_stale |= buf.contains(&MARKER);
                    buf[..n].copy_from_slice(&data);
                    Ok(n)
                })
                .expect("fill_with");
            let s = assert_clean("fill_with", s);
            assert_eq!(&s[reserve..], &data[..]);
        }
    }
    assert!(saw_stale, "the closure was handed recycled memory: the pool really recycled");
}

/// A `Writer`'s chain (data and each part's headroom) and its `write_to` output hold only the bytes written, across several parts.
#[test]
fn writer_output_never_shows_stale_bytes() {
    let pool = poisoned_pool();
    for reserve in [0, 8] {
        let mut alloc = pool.allocator(reserve);
        let mut w = alloc.writer();
        let data = payload(3 * BS, 11);
        for piece in data.chunks(13) {
            w.write_all(piece).expect("write");
        }
        let mut chain = w.finish();
        assert!(chain.iter().count() > 1, "the writes spanned several bufs");
        let mut out = Vec::new();
        for part in chain.iter() {
            assert!(!part.contains(&MARKER));
        }
        chain.write_to(&mut out).expect("write_to a Vec");
        assert_eq!(out, data);

        let mut w = alloc.writer();
        w.write_all(&data).expect("write");
        let mut chain = w.finish();
        while let Some(part) = chain.pop_front() {
            assert_clean("Writer part", part);
        }
    }
    assert_only_recycled(&pool);
}

/// A `Chain` built from `alloc` and `copy_from_slice` slices reads back (as `io::Read` and `Buf`) only the bytes put in.
#[test]
fn chain_reads_back_only_its_bytes() {
    let pool = poisoned_pool();
    let mut alloc = pool.allocator(4);
    let mut chain = Chain::new();
    let mut expected = Vec::new();
    for k in 0..20 {
        let data = payload(k * 3, k as u8);
        expected.extend_from_slice(&data);
        chain.push_back(alloc.copy_from_slice(&data));
        let zeros = alloc.alloc(k);
        expected.extend_from_slice(&zeros);
        chain.push_back(zeros);
    }
    chain.coalesce(usize::MAX);
    let mut via_buf = vec![0; chain.remaining()];
    let mut copy: Chain = chain.iter().map(|s| pool.allocator(0).copy_from_slice(s)).collect();
    copy.copy_to_slice(&mut via_buf);
    let mut via_read = Vec::new();
    chain.read_to_end(&mut via_read).expect("read a chain");
    assert_eq!(via_read, expected);
    assert_eq!(via_buf, expected);
}

/// `into_bytes` of `alloc`ed and copied slices shows only zeros or the copied bytes.
#[test]
fn into_bytes_never_shows_stale_bytes() {
    let pool = poisoned_pool();
    let mut alloc = pool.allocator(6);
    for len in [1, 2, 17, BS - 6] {
        let b = alloc.alloc(len).into_bytes();
        assert!(b.iter().all(|&x| x == 0), "alloc({len}).into_bytes()");
        let data = payload(len, 5);
        assert_eq!(&alloc.copy_from_slice(&data).into_bytes()[..], &data[..]);
    }
    assert_only_recycled(&pool);
}

/// A source that hands out its bytes at most `chunk` at a time.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `Reader` slices hold exactly the source's bytes and have no headroom, for frames within one buf, straddling bufs and larger than a buf.
#[test]
fn reader_slices_never_show_stale_bytes() {
    let pool = poisoned_pool();
    for chunk in [1, 7, usize::MAX] {
        let data = payload(4 * BS, chunk as u8);
        let mut reader = pool.reader(Trickle { data: data.clone(), pos: 0, chunk });
        let mut at = 0;
        for n in [1, 10, BS - 3, 2 * BS, 5, 20] {
            let s = assert_clean("Reader::read", reader.read(n).expect("read"));
            assert_eq!(s.headroom(), 0);
            assert_eq!(&s[..], &data[at..at + n]);
            at += n;
        }
    }
    assert_only_recycled(&pool);
}

/// `alloc_for_overwrite` shows the recycled marker, and `free_entire_prefix` may show an earlier slice's bytes of the same buf, as their docs warn.
#[test]
fn free_entire_prefix_may_show_earlier_bytes() {
    let pool = poisoned_pool();
    let mut alloc = pool.allocator(0);
    let fresh = alloc.alloc_for_overwrite(10);
    assert_eq!(&fresh[..], &[MARKER; 10], "alloc_for_overwrite shows the recycled bytes");
    drop(fresh);
    let secret = alloc.copy_from_slice(&[MARKER; 10]);
    let mut reply = alloc.alloc(10);
    drop((secret, alloc));
    assert!(reply.free_entire_prefix());
    assert!(reply.expand_front(10));
    assert_eq!(&reply[..10], &[MARKER; 10]);
}

/// Server-style flow: one connection writes secrets into every slice it gets (by every way of getting one) and drops them, the other allocates replies with every safe API on the same pool; no reply ever shows a secret byte.
#[test]
fn secrets_of_one_connection_never_reach_another() {
    let pool = Pool::builder().buf_size(BS).build();
    let mut snooper = pool.allocator(3);
    let mut replier = pool.allocator(5);
    let rounds = if cfg!(miri) { 8 } else { 200 };
    for round in 0..rounds {
        let len = 1 + round % (BS - 5);
        // The secret-holding connection: every slice it touches is full of secrets.
        let mut s = snooper.alloc_for_overwrite(len);
        s.fill(MARKER);
        let mut t = snooper.copy_from_slice(&vec![MARKER; len / 2]);
        assert!(t.prepend(&[MARKER; 3]));
        let u = snooper
            .fill_with(len, |buf| {
                buf.fill(MARKER);
                Ok(buf.len())
            })
            .expect("fill_with");
        let mut w = snooper.writer();
        w.write_all(&vec![MARKER; 2 * len]).expect("write");
        let mut secret_reader = pool.reader(&[MARKER; BS][..]);
        let r = secret_reader.read(len).expect("read");
        // Dropped in a round-dependent order, so bufs return in varying order.
        match round % 3 {
            0 => drop((s, t, u, w, r, secret_reader)),
            1 => drop((r, w, u, t, s, secret_reader)),
            _ => drop((u, secret_reader, s, r, t, w)),
        }
        if round % 5 == 0 {
            // Let go of the snooper's current buf too, so replies get it.
            snooper = pool.allocator(3);
        }

        // The other connection's replies.
        let data = payload(len, round as u8);
        assert_clean("alloc", replier.alloc(len));
        let c = assert_clean("copy_from_slice", replier.copy_from_slice(&data));
        assert_eq!(&c[5..], &data[..]);
        let f = replier
            .fill_with(len, |buf| {
                buf[..len / 2].copy_from_slice(&data[..len / 2]);
                Ok(len / 2)
            })
            .expect("fill_with");
        assert_clean("fill_with", f);
        let mut w = replier.writer();
        w.write_all(&data).expect("write");
        let mut chain = w.finish();
        while let Some(part) = chain.pop_front() {
            assert_clean("Writer part", part);
        }
        assert!(!replier.alloc(len).into_bytes().contains(&MARKER));
        let mut reader = pool.reader(&data[..]);
        assert_clean("Reader::read", reader.read(len).expect("read"));
        if round % 7 == 0 {
            replier = pool.allocator(5);
        }
    }
    drop((snooper, replier));
    assert_eq!(pool.stats().bufs_in_use, 0);
}
