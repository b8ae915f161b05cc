//! A reader handing out slices that other threads drop while it reads on.
#![cfg(loom)]

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use loom_tests::thread;
use loom_tests::{assert_stats, run_model};
use refbuf::Pool;

/// Three 32-byte frames, each of its own byte, so that a frame overwritten
/// while still in use shows.
const FRAME: usize = 32;
const DATA: [u8; 3 * FRAME] = {
    let mut data = [0; 3 * FRAME];
    let mut i = 0;
    while i < data.len() {
        data[i] = b'a' + (i / FRAME) as u8;
        i += 1;
    }
    data
};

/// A source that returns at most one frame per `read`, so that the reader
/// goes back to it, and decides whether to reuse its buf, for every frame.
struct OneFrameAtATime(&'static [u8]);

impl Read for OneFrameAtATime {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(FRAME).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Executions that ended with one buf (the reader reused it) and with two
/// (it had to move on). Plain std atomics, outside the model.
static ONE_BUF: AtomicUsize = AtomicUsize::new(0);
static TWO_BUFS: AtomicUsize = AtomicUsize::new(0);

fn frame(i: usize) -> &'static [u8] {
    &DATA[i * FRAME..(i + 1) * FRAME]
}

/// The reader hands its first two frames to two threads that check and drop
/// them, and reads on meanwhile. Before each read from the source with
/// nothing buffered it asks `Lease::is_sole_holder` whether every slice is
/// gone, and if so refills its 64-byte buf from the top; at the third frame
/// the buf is full, so it either moves to the front of it (every slice gone)
/// or takes a second buf. Reusing the buf while a slice is alive would
/// overwrite that slice's frame; reusing it without the slices' drops
/// happening before is a data race on loom's access tracker.
#[test]
fn reader_reuses_its_buf_as_slices_drop_elsewhere() {
    run_model("reader: buf reuse while slices drop elsewhere", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut reader = pool.reader(OneFrameAtATime(&DATA));

        let f0 = reader.read(FRAME).unwrap();
        let t0 = thread::spawn(move || {
            assert_eq!(&f0[..], frame(0));
            drop(f0);
        });
        let f1 = reader.read(FRAME).unwrap();
        let t1 = thread::spawn(move || {
            assert_eq!(&f1[..], frame(1));
            drop(f1);
        });
        let f2 = reader.read(FRAME).unwrap();
        assert_eq!(&f2[..], frame(2));
        assert_eq!(reader.buffered(), 0);
        drop(f2);
        drop(reader);
        t0.join().unwrap();
        t1.join().unwrap();

        // One buf, or two where the reader had to move on.
        let created = pool.stats().bufs_created;
        match created {
            1 => ONE_BUF.fetch_add(1, Ordering::Relaxed),
            2 => TWO_BUFS.fetch_add(1, Ordering::Relaxed),
            _ => panic!("{created} bufs created"),
        };
        assert_stats(&pool, created, 0, created as usize);
    });
    // Both ways must have been explored for the model to mean anything.
    assert!(ONE_BUF.load(Ordering::Relaxed) > 0, "the reader never reused its buf");
    assert!(TWO_BUFS.load(Ordering::Relaxed) > 0, "the reader never took a second buf");
}
