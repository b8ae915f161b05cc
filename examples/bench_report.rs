//! A quick side-by-side of refbuf against the buffers a network program would
//! otherwise use, printed as ratios against the project's speed targets.
//!
//! Run it with `cargo run --release --example bench_report` (about 40 s); add
//! `-- --svg docs/performance.svg` to also draw the speed-ups as a chart,
//! three bars per workload, one per allocator.
//!
//! Each allocation workload is compared with three allocators in the same
//! run: glibc's malloc (`std::alloc::System`), jemalloc
//! (`tikv_jemallocator::Jemalloc`) and mimalloc (`mimalloc::MiMalloc`). The
//! baselines call each allocator's `GlobalAlloc` methods directly, with the
//! buffer's length and an alignment of 1, and do the write, memset or memcpy
//! a `Vec<u8>` would: `alloc` and a one-byte write against
//! `alloc_for_overwrite`, `alloc_zeroed` (as `vec![0; len]` asks) against
//! `alloc`, and `alloc` and a copy against `copy_from_slice`. The global
//! allocator stays std's. Some workloads also have a baseline of their own:
//! `BytesMut`, std's `BufReader`, a copy into one reused buffer (the limit
//! for `Reader::read`), the memset or memcpy alone into one reused buffer
//! (the ceiling of any speed-up on zeroing and copying), and one thread
//! against two sharing a pool.
//!
//! The single-thread workloads (allocation, copy, the windows) run refbuf
//! through a `LocalAllocator`, the allocator for a thread that drops its
//! own slices, and also through an `Allocator`, which may move between
//! threads and so drops atomically: the row against "refbuf's Allocator
//! (Send)" is what the thread-bound one saves.
//!
//! Each workload runs its refbuf and baseline versions in interleaved rounds
//! in this one process; the table reports the median time per operation of
//! each and their ratio, which is what to compare on a shared, noisy machine,
//! and its last line counts the targets met and missed. The criterion benches
//! (`cargo bench --bench hot_paths`) measure the same workloads in more depth.

use std::alloc::{GlobalAlloc, System};
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
use mimalloc::MiMalloc;
use refbuf::{Pool, Slice, coalesce};
use tikv_jemallocator::Jemalloc;

#[path = "../benches/common/block.rs"]
mod block;
#[path = "../benches/common/start.rs"]
mod start;

use block::Block;
use start::StartLine;

/// The baseline of the rows that compare the single-thread workloads'
/// refbuf side, a `LocalAllocator`, with the same work through an
/// `Allocator`, which may move between threads and so drops atomically.
const SEND: &str = "refbuf's Allocator (Send)";

/// The baseline of the rows that compare zeroing and copying with the same
/// memset or memcpy into one buffer used again and again, with no
/// allocation at all: the ceiling any allocator's speed-up is under.
const MEMORY_ALONE: &str = "memset/memcpy alone, one buffer";

/// Alternating rounds per comparison; the median of each side is reported.
const ROUNDS: usize = 21;
/// Rough wall time of one round of one side.
const ROUND_TIME: Duration = Duration::from_millis(40);

/// refbuf against the buffers a network program would otherwise use (glibc,
/// jemalloc and mimalloc called directly, and more), as ratios against the
/// project's speed targets (about 40 s).
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
        let mut alloc = pool.local_allocator(0);
        let mut send = pool.allocator(0);
        let [refbuf, glibc, jemalloc, mimalloc, bytes_mut, send] = interleaved(
            1,
            [
                &mut looped(|| {
                    let mut s = alloc.alloc_for_overwrite(black_box(len));
                    s[0] = 1;
                    black_box(s);
                }),
                &mut looped(overwrite_baseline(&System, len)),
                &mut looped(overwrite_baseline(&Jemalloc, len)),
                &mut looped(overwrite_baseline(&MiMalloc, len)),
                &mut looped(|| {
                    let mut b = BytesMut::with_capacity(black_box(len));
                    b.extend_from_slice(&[1]);
                    black_box(b);
                }),
                &mut looped(|| {
                    let mut s = send.alloc_for_overwrite(black_box(len));
                    s[0] = 1;
                    black_box(s);
                }),
            ],
        );
        let targeted = matches!(len, 64 | 1500);
        let workload = format!("alloc_for_overwrite {len} B");
        let targets = if targeted { [Some(3.0), Some(2.0), Some(2.0)] } else { [None; 3] };
        rows.extend(Row::per_allocator(&workload, refbuf, [glibc, jemalloc, mimalloc], targets));
        let target = targeted.then_some(3.0);
        rows.push(Row::new(workload.clone(), "BytesMut::with_capacity", refbuf, bytes_mut, target));
        rows.push(Row::new(workload, SEND, refbuf, send, None));
    }

    {
        let mut alloc = pool.local_allocator(0);
        let mut send = pool.allocator(0);
        let mut reused = vec![1u8; 1500];
        let [refbuf, glibc, jemalloc, mimalloc, send, memset] = interleaved(
            1,
            [
                &mut looped(|| {
                    black_box(alloc.alloc(black_box(1500)));
                }),
                &mut looped(zeroed_baseline(&System, 1500)),
                &mut looped(zeroed_baseline(&Jemalloc, 1500)),
                &mut looped(zeroed_baseline(&MiMalloc, 1500)),
                &mut looped(|| {
                    black_box(send.alloc(black_box(1500)));
                }),
                &mut looped(|| black_box(&mut reused[..]).fill(0)),
            ],
        );
        let targets = [Some(1.5), Some(1.2), Some(1.2)];
        let workload = "alloc (zeroed) 1500 B";
        rows.extend(Row::per_allocator(workload, refbuf, [glibc, jemalloc, mimalloc], targets));
        rows.push(Row::new(workload.into(), SEND, refbuf, send, None));
        rows.push(Row::new(workload.into(), MEMORY_ALONE, refbuf, memset, None));
    }

    {
        let mut alloc = pool.local_allocator(0);
        let mut send = pool.allocator(0);
        let payload = vec![7u8; 1500];
        let mut reused = vec![1u8; 1500];
        let [refbuf, glibc, jemalloc, mimalloc, send, memcpy] = interleaved(
            1,
            [
                &mut looped(|| {
                    black_box(alloc.copy_from_slice(black_box(&payload)));
                }),
                &mut looped(copy_baseline(&System, &payload)),
                &mut looped(copy_baseline(&Jemalloc, &payload)),
                &mut looped(copy_baseline(&MiMalloc, &payload)),
                &mut looped(|| {
                    black_box(send.copy_from_slice(black_box(&payload)));
                }),
                &mut looped(|| black_box(&mut reused[..]).copy_from_slice(black_box(&payload))),
            ],
        );
        let targets = [Some(1.5), Some(1.2), Some(1.2)];
        let workload = "copy_from_slice 1500 B";
        rows.extend(Row::per_allocator(workload, refbuf, [glibc, jemalloc, mimalloc], targets));
        rows.push(Row::new(workload.into(), SEND, refbuf, send, None));
        rows.push(Row::new(workload.into(), MEMORY_ALONE, refbuf, memcpy, None));
    }

    for (workload, pool) in [
        ("window of 32 x 1500 B, 64 KiB bufs", Pool::new()),
        ("window of 32 x 1500 B, 4 KiB bufs", Pool::builder().buf_size(4096).build()),
    ] {
        const WINDOW: usize = 32;
        const LEN: usize = 1500;
        let mut alloc = pool.local_allocator(0);
        let mut window: VecDeque<Slice> = (0..WINDOW).map(|_| alloc.alloc_for_overwrite(LEN)).collect();
        let mut send = pool.allocator(0);
        let mut send_window: VecDeque<Slice> = (0..WINDOW).map(|_| send.alloc_for_overwrite(LEN)).collect();
        let [refbuf, glibc, jemalloc, mimalloc, send] = interleaved(
            1,
            [
                &mut looped(|| {
                    drop(window.pop_front());
                    let mut s = alloc.alloc_for_overwrite(LEN);
                    s[0] = 1;
                    window.push_back(s);
                }),
                &mut looped(window_baseline(&System, WINDOW, LEN)),
                &mut looped(window_baseline(&Jemalloc, WINDOW, LEN)),
                &mut looped(window_baseline(&MiMalloc, WINDOW, LEN)),
                &mut looped(|| {
                    drop(send_window.pop_front());
                    let mut s = send.alloc_for_overwrite(LEN);
                    s[0] = 1;
                    send_window.push_back(s);
                }),
            ],
        );
        let targets = [Some(3.0), Some(1.5), Some(1.5)];
        rows.extend(Row::per_allocator(workload, refbuf, [glibc, jemalloc, mimalloc], targets));
        rows.push(Row::new(workload.into(), SEND, refbuf, send, None));
    }

    {
        const BATCH: usize = 1000;
        const LEN: usize = 1500;
        let refbuf_batches = cross_thread(|| {
            let mut alloc = pool.allocator(0);
            move || (0..BATCH).map(|_| alloc.alloc_for_overwrite(LEN)).collect::<Vec<Slice>>()
        });
        let [refbuf, glibc, jemalloc, mimalloc] = interleaved(
            BATCH,
            [
                &mut looped(refbuf_batches),
                &mut looped(cross_thread_baseline(&System, BATCH, LEN)),
                &mut looped(cross_thread_baseline(&Jemalloc, BATCH, LEN)),
                &mut looped(cross_thread_baseline(&MiMalloc, BATCH, LEN)),
            ],
        );
        let targets = [Some(8.0), Some(5.0), Some(5.0)];
        rows.extend(Row::per_allocator(
            "cross-thread 1000 x 1500 B",
            refbuf,
            [glibc, jemalloc, mimalloc],
            targets,
        ));
    }

    {
        const FRAME: usize = 1500;
        const FRAMES: usize = 256;
        let stream = vec![5u8; FRAME * FRAMES];
        let mut reused = vec![0u8; FRAME];
        let [refbuf, buf_reader, limit] = interleaved(
            FRAMES,
            [
                &mut looped(|| {
                    let mut reader = pool.reader(&stream[..]);
                    for _ in 0..FRAMES {
                        black_box(reader.read(FRAME).expect("in-memory source"));
                    }
                }),
                &mut looped(|| {
                    let mut reader = BufReader::with_capacity(64 * 1024, &stream[..]);
                    for _ in 0..FRAMES {
                        let mut frame = vec![0u8; FRAME];
                        reader.read_exact(&mut frame).expect("in-memory source");
                        black_box(frame);
                    }
                }),
                &mut looped(|| {
                    let mut src = &stream[..];
                    for _ in 0..FRAMES {
                        let n = src.read(&mut reused).expect("in-memory source");
                        black_box(&reused[..n]);
                    }
                }),
            ],
        );
        let workload = "Reader::read 1500 B";
        rows.push(Row::new(workload.into(), "BufReader + vec! + read_exact", refbuf, buf_reader, Some(2.0)));
        rows.push(Row::new(workload.into(), "copy into one reused buffer", refbuf, limit, Some(0.8)));
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

/// A horizontal bar chart of every speed-up row, grouped by workload: one bar
/// per baseline, coloured by allocator, with 1x (break-even) and each target
/// marked.
fn svg_chart(rows: &[Row]) -> String {
    const LABEL: f64 = 300.0; // x of the bars' origin
    const SCALE: f64 = 40.0; // pixels per 1x of speed-up
    const BAR: f64 = 17.0; // pitch of one bar
    const HEADING: f64 = 20.0; // height of a workload's heading
    const TOP: f64 = 62.0; // title and legend
    const SHORT: &str = "#c0392b";
    let rows: Vec<(&Row, f64)> =
        rows.iter().filter_map(|r| Some((r, r.baseline_ns? / r.refbuf_ns))).collect();
    let groups: Vec<&[(&Row, f64)]> = rows.chunk_by(|a, b| a.0.workload == b.0.workload).collect();
    // Bars longer than the axis are cut at its end; their label gives the figure.
    const AXIS_MAX: f64 = 10.0;
    let widest = rows.iter().map(|&(r, x)| x.max(r.target.unwrap_or(0.0))).fold(1.0, f64::max).min(AXIS_MAX);
    let width = (LABEL + SCALE * widest.ceil() + 110.0).max(640.0);
    let bottom = TOP + HEADING * groups.len() as f64 + BAR * rows.len() as f64;
    let height = bottom + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"8\" y=\"20\" font-size=\"14\">refbuf speed-up over each baseline</text>\n\
         <text x=\"8\" y=\"56\" fill=\"#555\">dashed line: 1x (break-even); black tick: target; \
         <tspan fill=\"{SHORT}\">red figure: short of its target</tspan></text>\n"
    );
    let legend =
        Allocator::ALL.map(Baseline::Allocator).into_iter().chain([Baseline::Other("other baseline")]);
    for (i, baseline) in legend.enumerate() {
        let x = 8.0 + 120.0 * i as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.0}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.0}\" y=\"40\">{}</text>",
            baseline.colour(),
            x + 16.0,
            xml_escape(baseline.name())
        );
    }
    let mut y = TOP;
    for group in groups {
        let _ = writeln!(
            svg,
            "<text x=\"8\" y=\"{:.0}\" font-weight=\"bold\">{}</text>",
            y + 15.0,
            xml_escape(&group[0].0.workload)
        );
        y += HEADING;
        for &(row, ratio) in group {
            let short = row.target.is_some_and(|t| ratio < t);
            let (figure_colour, figure_note) = if short { (SHORT, " short") } else { ("black", "") };
            // The figure goes past the bar, its tick and the 1x line alike.
            let figure_x = LABEL + SCALE * ratio.max(row.target.unwrap_or(0.0)).max(1.0).min(widest) + 6.0;
            let _ = writeln!(
                svg,
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">vs {}</text>",
                LABEL - 8.0,
                y + BAR - 4.0,
                xml_escape(row.baseline.name())
            );
            let _ = writeln!(
                svg,
                "<rect x=\"{LABEL}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{:.0}\" fill=\"{}\"/>\
                 <text x=\"{figure_x:.1}\" y=\"{:.0}\" fill=\"{figure_colour}\">{ratio:.2}x{figure_note}</text>",
                y + 1.0,
                SCALE * ratio.min(widest),
                BAR - 3.0,
                row.baseline.colour(),
                y + BAR - 4.0
            );
            if let Some(t) = row.target {
                let x = LABEL + SCALE * t;
                let _ = writeln!(
                    svg,
                    "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.0}\" y2=\"{:.0}\" stroke=\"black\" \
                     stroke-width=\"2\"/>",
                    y - 1.0,
                    y + BAR
                );
            }
            y += BAR;
        }
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{bottom:.0}\" stroke=\"#555\" \
         stroke-dasharray=\"4 3\"/>",
        LABEL + SCALE
    );
    for x in 0..=widest.ceil() as usize {
        let px = LABEL + SCALE * x as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{px:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#555\">{x}x</text>",
            bottom + 18.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// An allocator the baselines call directly.
#[derive(Clone, Copy)]
enum Allocator {
    /// glibc's malloc, as `std::alloc::System`.
    Glibc,
    /// jemalloc, as `tikv_jemallocator::Jemalloc`.
    Jemalloc,
    /// mimalloc, as `mimalloc::MiMalloc`.
    Mimalloc,
}

impl Allocator {
    /// Every allocator, in the order of [`Row::per_allocator`]'s arrays.
    const ALL: [Allocator; 3] = [Allocator::Glibc, Allocator::Jemalloc, Allocator::Mimalloc];
}

/// What a row's refbuf time is compared with.
#[derive(Clone, Copy)]
enum Baseline {
    /// The same work done with an allocator called directly.
    Allocator(Allocator),
    /// Another baseline, as described; `-` for an absolute target.
    Other(&'static str),
}

impl Baseline {
    /// Its name in the table and the chart.
    fn name(self) -> &'static str {
        match self {
            Baseline::Allocator(Allocator::Glibc) => "glibc",
            Baseline::Allocator(Allocator::Jemalloc) => "jemalloc",
            Baseline::Allocator(Allocator::Mimalloc) => "mimalloc",
            Baseline::Other(name) => name,
        }
    }

    /// Its bars' colour in the chart.
    fn colour(self) -> &'static str {
        match self {
            Baseline::Allocator(Allocator::Glibc) => "#3a7bd5",
            Baseline::Allocator(Allocator::Jemalloc) => "#2a9d8f",
            Baseline::Allocator(Allocator::Mimalloc) => "#9b59b6",
            Baseline::Other(_) => "#999999",
        }
    }
}

/// One line of the report.
struct Row {
    workload: String,
    baseline: Baseline,
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
        Row {
            workload,
            baseline: Baseline::Other(baseline),
            refbuf_ns,
            baseline_ns: Some(baseline_ns),
            target,
        }
    }

    /// One workload's rows against each allocator, `baseline_ns` and
    /// `targets` in the order of [`Allocator::ALL`].
    fn per_allocator(
        workload: &str,
        refbuf_ns: f64,
        baseline_ns: [f64; 3],
        targets: [Option<f64>; 3],
    ) -> [Row; 3] {
        std::array::from_fn(|i| Row {
            workload: workload.into(),
            baseline: Baseline::Allocator(Allocator::ALL[i]),
            refbuf_ns,
            baseline_ns: Some(baseline_ns[i]),
            target: targets[i],
        })
    }

    fn absolute(workload: String, refbuf_ns: f64, max_ns: f64) -> Row {
        Row { workload, baseline: Baseline::Other("-"), refbuf_ns, baseline_ns: None, target: Some(max_ns) }
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

/// Prints the rows as a Markdown table, each column as wide as its widest
/// cell, then how many targets pass and how many fall short.
fn print_table(rows: &[Row]) {
    let header = ["workload", "baseline", "refbuf ns", "baseline ns", "speed-up", "target", ""];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let (figure, target, verdict) = row.verdict();
            [
                row.workload.clone(),
                row.baseline.name().into(),
                format!("{:.1}", row.refbuf_ns),
                row.baseline_ns.map_or("-".to_string(), |b| format!("{b:.1}")),
                figure,
                target,
                verdict.into(),
            ]
        })
        .collect();
    let widths: [usize; 7] = std::array::from_fn(|i| {
        cells.iter().map(|c| c[i].len()).chain([header[i].len(), 5]).max().unwrap_or(0)
    });
    // Text columns are aligned left, figures right.
    let line = |cells: [&str; 7]| {
        let mut out = String::from("|");
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let _ = match i {
                0 | 1 | 6 => write!(out, " {cell:<width$} |"),
                _ => write!(out, " {cell:>width$} |"),
            };
        }
        println!("{out}");
    };
    line(header);
    println!("|{}", widths.map(|w| format!("{:-<1$}|", "", w + 2)).concat());
    for row in &cells {
        line(row.each_ref().map(String::as_str));
    }
    let verdicts: Vec<&'static str> = rows.iter().map(|r| r.verdict().2).collect();
    let pass = verdicts.iter().filter(|&&v| v == "pass").count();
    let short = verdicts.iter().filter(|&&v| v == "short").count();
    println!("\nTargets: {pass} pass, {short} short, of {}.", pass + short);
}

/// Median nanoseconds per unit of each op, where each call of an op does
/// `units` units. Each op is calibrated to a round of about `ROUND_TIME`;
/// then the rounds interleave (round `r` of every op runs before round `r + 1`
/// of any), so a change in the machine's load hits every op alike. Each op
/// is given as [`looped`], which makes a given number of calls.
fn interleaved<const N: usize>(units: usize, mut ops: [&mut dyn FnMut(usize); N]) -> [f64; N] {
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

/// `op` in a loop of as many calls as it is asked for. The loop is compiled
/// for each op, with the op inlined into it, as criterion's `Bencher::iter`
/// does: timed through an indirect call each, every side would also pay
/// the call, a few nanoseconds that are no allocator's cost and that
/// narrow every ratio.
fn looped(mut op: impl FnMut()) -> impl FnMut(usize) {
    move |calls| {
        for _ in 0..calls {
            op();
        }
    }
}

/// How many calls of `op` take about `ROUND_TIME`.
fn calibrate(op: &mut dyn FnMut(usize)) -> usize {
    let mut calls = 1usize;
    loop {
        let t = time(calls, op);
        if t >= ROUND_TIME / 4 || calls > 1 << 30 {
            return ((ROUND_TIME.as_secs_f64() * calls as f64 / t.as_secs_f64()) as usize).max(1);
        }
        calls *= 4;
    }
}

fn time(calls: usize, op: &mut dyn FnMut(usize)) -> Duration {
    let start = Instant::now();
    op(calls);
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
/// millisecond on this project's machine) and its cold caches. The threads
/// meet at a spinning [`StartLine`], not a `Barrier`, for the same reason:
/// the thread asleep at a barrier started a millisecond after the other
/// (median of 21 rounds, this machine), a third of a run.
fn sharing(pool: &Pool, threads: usize, window: usize) -> Duration {
    let start = std::sync::Arc::new(StartLine::new(threads));
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

/// The baseline of `alloc_for_overwrite`: `len` bytes from `allocator`, the
/// first one written, then freed.
fn overwrite_baseline<G: GlobalAlloc>(allocator: &'static G, len: usize) -> impl FnMut() {
    move || {
        let mut block = Block::uninit(allocator, black_box(len));
        block.write_first(1);
        black_box(block);
    }
}

/// The baseline of the zeroed `alloc`: `len` zero bytes from `allocator`,
/// then freed.
fn zeroed_baseline<G: GlobalAlloc>(allocator: &'static G, len: usize) -> impl FnMut() {
    move || {
        black_box(Block::zeroed(allocator, black_box(len)));
    }
}

/// The baseline of `copy_from_slice`: a copy of `payload` in memory from
/// `allocator`, then freed.
fn copy_baseline<G: GlobalAlloc>(allocator: &'static G, payload: &[u8]) -> impl FnMut() {
    move || {
        black_box(Block::copy_of(allocator, black_box(payload)));
    }
}

/// The baseline of the window workload: of the last `window` blocks of `len`
/// bytes from `allocator`, free the oldest, then make one and write its
/// first byte.
fn window_baseline<G: GlobalAlloc>(allocator: &'static G, window: usize, len: usize) -> impl FnMut() {
    let mut blocks: VecDeque<Block<G>> = (0..window).map(|_| Block::uninit(allocator, len)).collect();
    move || {
        drop(blocks.pop_front());
        let mut block = Block::uninit(allocator, len);
        block.write_first(1);
        blocks.push_back(black_box(block));
    }
}

/// The baseline of the cross-thread workload: [`cross_thread`] with batches
/// of `batch` blocks of `len` bytes from `allocator`.
fn cross_thread_baseline<G: GlobalAlloc + Sync>(
    allocator: &'static G,
    batch: usize,
    len: usize,
) -> impl FnMut() {
    cross_thread(move || move || (0..batch).map(|_| Block::uninit(allocator, len)).collect::<Vec<_>>())
}
