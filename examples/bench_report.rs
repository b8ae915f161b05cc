//! A quick side-by-side of refbuf against the buffers a network program would
//! otherwise use, printed as ratios against the project's speed targets.
//!
//! Run it with `cargo run --release --example bench_report` (about a minute);
//! add `-- --svg docs/performance.svg` to also draw the speed-ups as a chart.
//! Each workload runs its refbuf and baseline versions in interleaved rounds
//! in this one process; the table reports the median time per operation of
//! each and their ratio, which is what to compare on a shared, noisy machine.
//! The criterion benches (`cargo bench`) measure the same workloads in more
//! depth.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use refbuf::{Pool, Slice, coalesce};

/// Alternating rounds per comparison; the median of each side is reported.
const ROUNDS: usize = 21;
/// Rough wall time of one round of one side.
const ROUND_TIME: Duration = Duration::from_millis(40);

/// refbuf against the buffers a network program would otherwise use, as
/// ratios against the project's speed targets (about a minute).
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "bench_report")]
pub struct Args {
    /// Also draw the speed-ups as an SVG chart into this file.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
}

fn main() {
    let Args { svg: svg_path } = Args::parse();
    let started = Instant::now();
    let mut rows = Vec::new();
    let pool = Pool::new();

    for len in [64, 512, 1500, 9000] {
        let mut alloc = pool.allocator(0);
        let [refbuf, vec, bytes_mut] = interleaved(
            1,
            [
                &mut || {
                    let mut s = alloc.alloc_for_overwrite(black_box(len));
                    s[0] = 1;
                    black_box(s);
                },
                &mut || {
                    let mut v = Vec::<u8>::with_capacity(black_box(len));
                    v.push(1);
                    black_box(v);
                },
                &mut || {
                    let mut b = BytesMut::with_capacity(black_box(len));
                    b.extend_from_slice(&[1]);
                    black_box(b);
                },
            ],
        );
        let vec_target = match len {
            64 => Some(2.0),
            1500 => Some(3.0),
            _ => None,
        };
        rows.push(Row::new(
            format!("alloc_for_overwrite {len} B"),
            "Vec::with_capacity",
            refbuf,
            vec,
            vec_target,
        ));
        rows.push(Row::new(
            format!("alloc_for_overwrite {len} B"),
            "BytesMut::with_capacity",
            refbuf,
            bytes_mut,
            Some(3.0),
        ));
    }

    {
        let mut alloc = pool.allocator(0);
        let [refbuf, vec] = interleaved(
            1,
            [
                &mut || {
                    black_box(alloc.alloc(black_box(1500)));
                },
                &mut || {
                    black_box(vec![0u8; black_box(1500)]);
                },
            ],
        );
        rows.push(Row::new("alloc (zeroed) 1500 B".into(), "vec![0; len]", refbuf, vec, Some(1.3)));
    }

    {
        let mut alloc = pool.allocator(0);
        let payload = vec![7u8; 1500];
        let [refbuf, vec] = interleaved(
            1,
            [
                &mut || {
                    black_box(alloc.copy_from_slice(black_box(&payload)));
                },
                &mut || {
                    black_box(black_box(&payload[..]).to_vec());
                },
            ],
        );
        rows.push(Row::new("copy_from_slice 1500 B".into(), "<[u8]>::to_vec", refbuf, vec, None));
    }

    {
        const FRAME: usize = 1500;
        const FRAMES: usize = 256;
        let stream = vec![5u8; FRAME * FRAMES];
        let mut reused = vec![0u8; FRAME];
        let [refbuf, buf_reader, limit] = interleaved(
            FRAMES,
            [
                &mut || {
                    let mut reader = pool.reader(&stream[..]);
                    for _ in 0..FRAMES {
                        black_box(reader.read(FRAME).expect("in-memory source"));
                    }
                },
                &mut || {
                    let mut reader = BufReader::with_capacity(64 * 1024, &stream[..]);
                    for _ in 0..FRAMES {
                        let mut frame = vec![0u8; FRAME];
                        reader.read_exact(&mut frame).expect("in-memory source");
                        black_box(frame);
                    }
                },
                &mut || {
                    let mut src = &stream[..];
                    for _ in 0..FRAMES {
                        let n = src.read(&mut reused).expect("in-memory source");
                        black_box(&reused[..n]);
                    }
                },
            ],
        );
        rows.push(Row::new(
            "Reader::read 1500 B".into(),
            "BufReader + vec! + read_exact",
            refbuf,
            buf_reader,
            Some(2.0),
        ));
        rows.push(Row::new(
            "Reader::read 1500 B".into(),
            "copy into one reused buffer",
            refbuf,
            limit,
            Some(0.7),
        ));
    }

    {
        // Coalesce alone: prepare many runs of 16 touching slices, time
        // coalescing all of them, and drop them outside the clock.
        const RUNS: usize = 512;
        let mut alloc = pool.allocator(0);
        let mut samples: Vec<f64> = (0..ROUNDS * 4)
            .map(|_| {
                let mut runs: Vec<Vec<Slice>> =
                    (0..RUNS).map(|_| (0..16).map(|_| alloc.alloc_for_overwrite(1024)).collect()).collect();
                let start = Instant::now();
                for run in &mut runs {
                    coalesce(black_box(run), usize::MAX);
                }
                let ns = start.elapsed().as_nanos() as f64 / RUNS as f64;
                assert!(runs.iter().all(|run| run.len() <= 2), "16 x 1 KiB spans at most two 64 KiB bufs");
                ns
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        rows.push(Row::absolute("coalesce 16 x 1 KiB".into(), samples[samples.len() / 2], 50.0));
    }

    {
        const BATCH: usize = 1000;
        const LEN: usize = 1500;
        let mut refbuf_batches = cross_thread(|| {
            let mut alloc = pool.allocator(0);
            move || (0..BATCH).map(|_| alloc.alloc_for_overwrite(LEN)).collect::<Vec<Slice>>()
        });
        let mut vec_batches =
            cross_thread(|| || (0..BATCH).map(|_| Vec::<u8>::with_capacity(LEN)).collect::<Vec<Vec<u8>>>());
        let [refbuf, vec] = interleaved(BATCH, [&mut refbuf_batches, &mut vec_batches]);
        rows.push(Row::new("cross-thread 1000 x 1500 B".into(), "Vec", refbuf, vec, Some(8.0)));
    }

    {
        const WINDOW: usize = 32;
        const LEN: usize = 1500;
        let mut alloc = pool.allocator(0);
        let mut window: VecDeque<Slice> = (0..WINDOW).map(|_| alloc.alloc_for_overwrite(LEN)).collect();
        let mut vecs: VecDeque<Vec<u8>> = (0..WINDOW).map(|_| Vec::with_capacity(LEN)).collect();
        let [refbuf, vec] = interleaved(
            1,
            [
                &mut || {
                    drop(window.pop_front());
                    let mut s = alloc.alloc_for_overwrite(LEN);
                    s[0] = 1;
                    window.push_back(s);
                },
                &mut || {
                    drop(vecs.pop_front());
                    let mut v = Vec::with_capacity(LEN);
                    v.push(1);
                    vecs.push_back(black_box(v));
                },
            ],
        );
        rows.push(Row::new("window of 32 x 1500 B".into(), "Vec", refbuf, vec, Some(3.0)));
    }

    // Two threads sharing one pool against one thread doing the same work
    // alone: the speed-up is the ratio of their times per slice.
    for (workload, buf_size, window) in [
        ("2 threads, 1500 B, dropped at once", refbuf::DEFAULT_BUF_SIZE, 0),
        ("2 threads, 1500 B, 4 KiB bufs turning over", 4096, 64),
    ] {
        let shared = Pool::builder().buf_size(buf_size).build();
        let [two, one] = interleaved_sharing([(&shared, 2, window), (&shared, 1, window)]);
        rows.push(Row::new(workload.into(), "1 thread", two, one, Some(1.8)));
    }
    {
        // The per-thread caches against the pool's shared lock alone, on the
        // pool's own path.
        let cached = Pool::builder().buf_size(4096).build();
        let locked = Pool::builder().buf_size(4096).thread_cache(0).build();
        let [with, without] = interleaved_sharing([(&cached, 2, 64), (&locked, 2, 64)]);
        rows.push(Row::new("2 threads, 4 KiB bufs turning over".into(), "no caches", with, without, None));
    }

    print_table(&rows);
    println!("\n{} rounds per side, about {:.0?} in all.", ROUNDS, started.elapsed());
    if let Some(path) = svg_path {
        if let Err(e) = std::fs::write(&path, svg_chart(&rows)) {
            eprintln!("bench_report: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("chart written to {}", path.display());
    }
}

/// `text` with the characters XML gives meaning to escaped.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A horizontal bar chart of every speed-up row, with its target marked.
fn svg_chart(rows: &[Row]) -> String {
    const LABEL: f64 = 430.0;
    const SCALE: f64 = 40.0; // pixels per 1x of speed-up
    const BAR: f64 = 22.0;
    let rows: Vec<(&Row, f64)> =
        rows.iter().filter_map(|r| Some((r, r.baseline_ns? / r.refbuf_ns))).collect();
    // Bars longer than the axis are cut at its end; their label gives the figure.
    const AXIS_MAX: f64 = 10.0;
    let widest = rows.iter().map(|&(r, x)| x.max(r.target.unwrap_or(0.0))).fold(1.0, f64::max).min(AXIS_MAX);
    let width = LABEL + SCALE * widest.ceil() + 80.0;
    let height = 40.0 + BAR * rows.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"8\" y=\"20\" font-size=\"14\">refbuf speed-up over each baseline \
         (bar; black tick = target)</text>\n"
    );
    for (i, &(row, ratio)) in rows.iter().enumerate() {
        let y = 34.0 + BAR * i as f64;
        let colour = match row.target {
            Some(t) if ratio < t => "#d9822b",
            _ => "#3a7bd5",
        };
        let label = xml_escape(&format!("{} vs {}", row.workload, row.baseline));
        let _ = writeln!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{label}</text>",
            LABEL - 8.0,
            y + 15.0
        );
        let _ = writeln!(
            svg,
            "<rect x=\"{LABEL}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"{:.0}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\">{ratio:.2}x</text>",
            SCALE * ratio.min(widest),
            BAR - 4.0,
            LABEL + SCALE * ratio.min(widest) + 4.0,
            y + 15.0
        );
        if let Some(t) = row.target {
            let x = LABEL + SCALE * t;
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y:.0}\" y2=\"{:.0}\" stroke=\"black\" stroke-width=\"2\"/>",
                y + BAR - 4.0
            );
        }
    }
    let axis_y = 34.0 + BAR * rows.len() as f64 + 4.0;
    for x in 0..=widest.ceil() as usize {
        let px = LABEL + SCALE * x as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{px:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#555\">{x}x</text>",
            axis_y + 14.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// One line of the report.
struct Row {
    workload: String,
    baseline: &'static str,
    refbuf_ns: f64,
    /// Baseline time per operation; `None` for an absolute target.
    baseline_ns: Option<f64>,
    /// Speed-up over the baseline to reach, or for an absolute target, the
    /// most nanoseconds allowed.
    target: Option<f64>,
}

impl Row {
    fn new(
        workload: String,
        baseline: &'static str,
        refbuf_ns: f64,
        baseline_ns: f64,
        target: Option<f64>,
    ) -> Row {
        Row { workload, baseline, refbuf_ns, baseline_ns: Some(baseline_ns), target }
    }

    fn absolute(workload: String, refbuf_ns: f64, max_ns: f64) -> Row {
        Row { workload, baseline: "-", refbuf_ns, baseline_ns: None, target: Some(max_ns) }
    }

    /// The figure compared with the target, its text, and the target's text.
    fn verdict(&self) -> (String, String, &'static str) {
        match (self.baseline_ns, self.target) {
            (Some(base), target) => {
                let ratio = base / self.refbuf_ns;
                let target_text = target.map_or("-".to_string(), |t| format!(">= {t:.1}x"));
                let verdict = match target {
                    Some(t) if ratio >= t => "pass",
                    Some(_) => "short",
                    None => "",
                };
                (format!("{ratio:.2}x"), target_text, verdict)
            }
            (None, Some(max)) => {
                let verdict = if self.refbuf_ns <= max { "pass" } else { "short" };
                (format!("{:.1} ns", self.refbuf_ns), format!("<= {max:.0} ns"), verdict)
            }
            (None, None) => unreachable!("an absolute row always has a target"),
        }
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| {:<28} | {:<30} | {:>10} | {:>11} | {:>9} | {:>10} | {:<5} |",
        "workload", "baseline", "refbuf ns", "baseline ns", "speed-up", "target", ""
    );
    println!("|{:-<30}|{:-<32}|{:->12}|{:->13}|{:->11}|{:->12}|{:-<7}|", "", "", "", "", "", "", "");
    for row in rows {
        let (figure, target, verdict) = row.verdict();
        let base = row.baseline_ns.map_or("-".to_string(), |b| format!("{b:.1}"));
        println!(
            "| {:<28} | {:<30} | {:>10.1} | {:>11} | {:>9} | {:>10} | {:<5} |",
            row.workload, row.baseline, row.refbuf_ns, base, figure, target, verdict
        );
    }
}

/// Median nanoseconds per unit of each op, where each call of an op does
/// `units` units. Each op is calibrated to a round of about `ROUND_TIME`;
/// then the rounds interleave (round `r` of every op runs before round `r + 1`
/// of any), so a change in the machine's load hits every op alike.
fn interleaved<const N: usize>(units: usize, mut ops: [&mut dyn FnMut(); N]) -> [f64; N] {
    let calls = ops.each_mut().map(|op| calibrate(&mut **op));
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        for ((op, &calls), samples) in ops.iter_mut().zip(&calls).zip(&mut samples) {
            samples.push(time(calls, &mut **op).as_nanos() as f64 / (calls * units) as f64);
        }
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[ROUNDS / 2]
    })
}

/// How many calls of `op` take about `ROUND_TIME`.
fn calibrate(op: &mut dyn FnMut()) -> usize {
    let mut calls = 1usize;
    loop {
        let t = time(calls, op);
        if t >= ROUND_TIME / 4 || calls > 1 << 30 {
            return ((ROUND_TIME.as_secs_f64() * calls as f64 / t.as_secs_f64()) as usize).max(1);
        }
        calls *= 4;
    }
}

fn time(calls: usize, op: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        op();
    }
    start.elapsed()
}

/// Slices each run of [`sharing`] makes, over all its threads.
const SHARING_SLICES: usize = 200_000;

/// Median nanoseconds per slice of each `(pool, threads, window)` run of
/// [`sharing`], in interleaved rounds as in [`interleaved`].
fn interleaved_sharing<const N: usize>(runs: [(&Pool, usize, usize); N]) -> [f64; N] {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        for (&(pool, threads, window), samples) in runs.iter().zip(&mut samples) {
            samples.push(sharing(pool, threads, window).as_nanos() as f64 / SHARING_SLICES as f64);
        }
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[ROUNDS / 2]
    })
}

/// Has `threads` threads make `SHARING_SLICES` slices of 1500 bytes in all
/// from `pool`, each thread through its own allocator, keeping its last
/// `window` slices alive (none: each is dropped at once). Returns the time
/// from their common start to the last one's finish, as the criterion bench
/// does: thread start-up is not timed, nor a warm-up of a tenth as many
/// slices first, which each thread runs before the common start. The rounds
/// alternate between runs, so without it a run would also time the wake-up
/// of a virtual CPU left idle by the run before (a good part of a
/// millisecond on this project's machine) and its cold caches.
fn sharing(pool: &Pool, threads: usize, window: usize) -> Duration {
    let start = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, start) = (pool.clone(), std::sync::Arc::clone(&start));
            thread::spawn(move || {
                let mut alloc = pool.allocator(0);
                let mut kept = VecDeque::with_capacity(window + 1);
                let mut make = |slices: usize| {
                    for _ in 0..slices {
                        let mut s = alloc.alloc_for_overwrite(black_box(1500));
                        s[0] = 1;
                        if window > 0 {
                            kept.push_back(s);
                            if kept.len() > window {
                                black_box(kept.pop_front());
                            }
                        } else {
                            black_box(s);
                        }
                    }
                };
                make(SHARING_SLICES / threads / 10);
                start.wait();
                let began = Instant::now();
                make(SHARING_SLICES / threads);
                (began, Instant::now())
            })
        })
        .collect();
    let spans: Vec<(Instant, Instant)> =
        workers.into_iter().map(|w| w.join().expect("a sharing thread panicked")).collect();
    let began = spans.iter().map(|s| s.0).min().expect("at least one thread");
    let ended = spans.iter().map(|s| s.1).max().expect("at least one thread");
    ended - began
}

/// The cross-thread workload: the calling thread makes a batch with
/// `make()` and sends it; a second thread drops it. The returned closure does
/// one batch per call. The channel holds two batches, so the two threads run
/// side by side and the slower one sets the pace.
fn cross_thread<T: Send + 'static, M: FnMut() -> T>(setup: impl FnOnce() -> M) -> impl FnMut() {
    let (to_dropper, batches) = mpsc::sync_channel::<T>(2);
    thread::spawn(move || batches.into_iter().for_each(drop));
    let mut make = setup();
    move || to_dropper.send(make()).expect("the dropping thread lives as long as the sender")
}
