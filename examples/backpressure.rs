//! A producer faster than its consumer, under a memory budget.
//!
//! The producer allocates 1500-byte frames as fast as it can and sends them
//! over an unbounded channel; the consumer is slowed down on purpose. The
//! channel would grow without limit, but the pool's `max_bytes` makes the
//! producer wait in `alloc` instead: memory stays flat at the budget and
//! `waits` climbs. Every frame carries a sequence number that the consumer
//! checks, so nothing is lost or reordered. After the burst, the pool's
//! `idle_timeout` hands the idle memory back.
//!
//! ```text
//! cargo run --release --example backpressure -- --seconds 3
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use refbuf::{Pool, PoolStats};

const FRAME: usize = 1500;
const BUDGET: usize = 1024 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_millis(500);

/// A producer faster than its consumer, held to the pool's memory budget:
/// memory stays flat and nothing is lost.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "backpressure")]
pub struct Args {
    /// Seconds of producing.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub seconds: u64,
}

fn main() {
    let Args { seconds } = Args::parse();
    let pool = Pool::builder().buf_size(16 * 1024).max_bytes(BUDGET).idle_timeout(IDLE_TIMEOUT).build();
    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();

    let producer = {
        let pool = pool.clone();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut alloc = pool.allocator(0);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut frame = alloc.alloc(FRAME);
                frame[..8].copy_from_slice(&seq.to_le_bytes());
                tx.send(frame).expect("the consumer outlives the producer");
                seq += 1;
            }
            seq
        })
    };
    let consumer = {
        let consumed = Arc::clone(&consumed);
        thread::spawn(move || {
            let mut expected = 0u64;
            for frame in rx {
                let seq = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
                assert_eq!(seq, expected, "frames arrive complete and in order");
                expected += 1;
                consumed.store(expected, Ordering::Relaxed);
                if expected.is_multiple_of(64) {
                    // The slow part: a consumer that keeps up with a third
                    // of a millisecond per 64 frames.
                    thread::sleep(Duration::from_micros(300));
                }
            }
            expected
        })
    };

    println!("budget {BUDGET} bytes, {FRAME}-byte frames, {seconds} s of producing");
    println!("{:>4} {:>10} {:>10} {:>10} {:>8} {:>10}", "s", "in use", "idle", "high", "waits", "consumed");
    let start = Instant::now();
    for s in 1..=seconds {
        thread::sleep(Duration::from_secs(1));
        print_row(s, &pool.stats(), consumed.load(Ordering::Relaxed));
    }
    stop.store(true, Ordering::Relaxed);
    let produced = producer.join().expect("the producer does not panic");
    let received = consumer.join().expect("every frame is checked");
    assert_eq!(produced, received, "every frame produced was consumed");
    let stats = pool.stats();
    assert!(stats.high_water_bytes <= BUDGET, "the budget held: {stats:?}");
    println!(
        "burst over after {:.1?}: {produced} frames produced and checked, high water {} bytes of {BUDGET}",
        start.elapsed(),
        stats.high_water_bytes
    );

    println!("idle now: {} bytes in {} bufs", stats.bytes_idle, stats.bufs_idle);
    thread::sleep(IDLE_TIMEOUT * 2);
    // Any pool operation frees bufs idle past the timeout: no background
    // thread is involved. This one takes a buf and gives it back.
    drop(pool.allocator(0).alloc(1));
    let stats = pool.stats();
    println!(
        "after {IDLE_TIMEOUT:?} idle and one allocation: {} bytes idle, {} bufs trimmed",
        stats.bytes_idle, stats.bufs_trimmed
    );
    println!("trim() freed the last {} bytes", pool.trim());
}

fn print_row(s: u64, stats: &PoolStats, consumed: u64) {
    println!(
        "{s:>4} {:>10} {:>10} {:>10} {:>8} {consumed:>10}",
        stats.bytes_in_use, stats.bytes_idle, stats.high_water_bytes, stats.waits
    );
}
