//! How much memory long-lived slices pin, against `Vec` on the system
//! allocator, in mixed-lifetime workloads.
//!
//! ```text
//! cargo run --release --example retention
//! ```
//!
//! A pool hands out slices from large bufs (64 KiB by default). Through an
//! `Allocator` a buf is reused only when its last slice is dropped, so one
//! long-lived slice keeps its whole buf alive; a `LocalAllocator` cuts new
//! slices from the dead parts of such a buf. Each workload is a sequence of
//! allocations, each with a length and a lifetime (the number of
//! allocations after which it is dropped), drawn from a seeded PRNG, so
//! every run and every side see the same sequence:
//!
//! - `keep-1-in-100`: 1500 B slices, each dropped 64 allocations after it
//!   was made, but 1 in 100 kept for 20,000 allocations instead;
//! - `keep-1-in-20`: the same, 1 in 20 kept;
//! - `uniform`: lengths uniform over 64 B to 9000 B, lifetimes
//!   exponentially distributed with a mean of 1000 allocations.
//!
//! Each side makes every buffer with its bytes written, so that its pages
//! are really touched: refbuf with `alloc_for_overwrite` from `Pool::new()`'s
//! `local_allocator(0)` (side `refbuf`) or `allocator(0)` (side `Send`), the
//! baseline with `Vec::with_capacity` and a fill. The figures, for each
//! workload and side:
//!
//! - **live**: the bytes of the buffers alive at that moment, counted here;
//! - **held**: what the allocator holds for them. For refbuf that is the
//!   pool's data bytes in use and idle (`PoolStats::bytes_in_use +
//!   bytes_idle`; `stats` counts bufs in the thread caches among the idle
//!   ones, once). For `Vec` it is the growth of glibc's bytes in use,
//!   `mallinfo2`'s `uordblks + hblkhd` (chunks in the heaps, and mmapped
//!   ones), since the side started; the free chunks glibc keeps are not
//!   counted, though they show in RSS. Without glibc it is not known, and
//!   only RSS is reported for `Vec`;
//! - **RSS growth**: resident memory (`/proc/self/statm`) now, less what it
//!   was just before the side started; not known off Linux;
//! - **ns/slice**: the wall time of the side's run over its allocations,
//!   drops included; the median of `--rounds` runs (5 by default), the two
//!   sides taking turns, so that a change in the machine's load hits both
//!   alike. The memory figures are those of the first round (they differ
//!   little between rounds: the workload and the pool are deterministic).
//!
//! held/live and RSS growth/live are printed at the end of the run and, in
//! brackets, their maximum over samples taken every 1000 allocations in the
//! steady state (once the longest lifetime has passed, or after half the
//! run, whichever is first; the end is a sample too). The target is at most
//! 2x for both ratios, and a row passes only if both maxima meet it.
//!
//! The sides run one after the other in this one process, since RSS is
//! process-wide: each side's memory is freed when it ends (the pool closed,
//! every `Vec` dropped), then `malloc_trim(0)` hands glibc's free memory back
//! to the system before the next side reads its starting RSS. The drop
//! schedule is worked out before any side starts, and every side follows
//! it through the same code, so ns/slice compares like with like; the
//! samples are taken outside the timed stretches and allocate nothing.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use refbuf::{Allocator, LocalAllocator, Pool, Slice};

/// Allocations between two samples of held and resident memory.
const SAMPLE_EVERY: usize = 1000;
/// The most held/live and RSS growth/live may be.
const TARGET: f64 = 2.0;
/// The PRNG's seed: every run draws the same workloads.
const SEED: u64 = 0x7265_6662_7566_2121;
/// The byte written into every buffer.
const FILL: u8 = 0xa5;
/// How long a kept slice of the `keep-` workloads lives, in allocations.
const KEPT_LIFETIME: u32 = 20_000;
/// How long the other slices of the `keep-` workloads live, in allocations.
const WINDOW: u32 = 64;

/// The memory long-lived slices pin, against `Vec` on the system allocator,
/// in mixed-lifetime workloads (a few seconds).
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "retention")]
pub struct Args {
    /// Allocations per workload and side.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub allocations: usize,
    /// Run only this workload; without it, all three.
    #[arg(long, value_enum)]
    pub workload: Option<Workload>,
    /// Runs of each side per workload, taking turns; ns/slice is their
    /// median.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

/// The mixed-lifetime workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 1500 B slices, a window of 64, 1 in 100 kept for 20,000 allocations.
    #[value(name = "keep-1-in-100")]
    Keep1In100,
    /// 1500 B slices, a window of 64, 1 in 20 kept for 20,000 allocations.
    #[value(name = "keep-1-in-20")]
    Keep1In20,
    /// 64 B to 9000 B, uniform; lifetimes exponential, mean 1000.
    Uniform,
}

impl Workload {
    /// Every workload, in the order printed.
    const ALL: [Workload; 3] = [Workload::Keep1In100, Workload::Keep1In20, Workload::Uniform];

    /// The workload's name in the table.
    fn name(self) -> &'static str {
        match self {
            Workload::Keep1In100 => "1500 B, 1 in 100 kept",
            Workload::Keep1In20 => "1500 B, 1 in 20 kept",
            Workload::Uniform => "64-9000 B, exp. life",
        }
    }

    /// One allocation's length and lifetime (at least 1).
    fn draw(self, rng: &mut SplitMix64) -> (u32, u32) {
        let mut kept = |one_in| if rng.below(one_in) == 0 { KEPT_LIFETIME } else { WINDOW };
        match self {
            Workload::Keep1In100 => (1500, kept(100)),
            Workload::Keep1In20 => (1500, kept(20)),
            Workload::Uniform => {
                let len = 64 + rng.below(9000 - 64 + 1);
                // Inversion: -ln(1 - u) is exponential with mean 1 for u
                // uniform in [0, 1).
                let life = (-(1.0 - rng.unit()).ln() * 1000.0).round().max(1.0);
                (len, life as u32)
            }
        }
    }
}

/// Sebastiano Vigna's SplitMix64: small, fast and good enough to draw
/// workloads from.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (the modulo bias is negligible for small `n`).
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    /// A number uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A workload drawn in full: each allocation's length and the step at which
/// it is dropped, worked out before either side runs.
pub struct Plan {
    /// Each allocation's length, in order.
    lens: Vec<u32>,
    /// The allocations, each named by the step that made it, grouped by the
    /// step that drops them: those dropped at step `t` are
    /// `dying[starts[t]..starts[t + 1]]`. Allocations that outlive the run
    /// are in no group.
    dying: Vec<u32>,
    /// Where each step's group starts in `dying`, and where the last ends.
    starts: Vec<u32>,
    /// Slots in the ring of buffers alive: more than the longest lifetime,
    /// so allocation `t`'s slot, `t % ring`, is free again by step `t`.
    ring: usize,
    /// The first step of the steady state, sampled for the maxima.
    steady_from: usize,
}

impl Plan {
    /// `allocations` allocations of `workload`.
    pub fn new(workload: Workload, allocations: usize) -> Plan {
        assert!(allocations < u32::MAX as usize, "steps are counted in u32");
        let mut rng = SplitMix64(SEED);
        let (lens, lives): (Vec<u32>, Vec<u32>) = (0..allocations).map(|_| workload.draw(&mut rng)).unzip();
        let death = |birth: usize| birth + lives[birth] as usize;
        // A counting sort of the allocations by the step that drops them.
        let mut starts = vec![0u32; allocations + 1];
        for birth in 0..allocations {
            if death(birth) < allocations {
                starts[death(birth) + 1] += 1;
            }
        }
        for step in 0..allocations {
            starts[step + 1] += starts[step];
        }
        let mut next = starts.clone();
        let mut dying = vec![0u32; starts[allocations] as usize];
        for birth in 0..allocations {
            if death(birth) < allocations {
                dying[next[death(birth)] as usize] = birth as u32;
                next[death(birth)] += 1;
            }
        }
        let longest = lives.iter().copied().max().unwrap_or(1) as usize;
        Plan { lens, dying, starts, ring: longest + 1, steady_from: longest.min(allocations / 2) }
    }

    /// The allocations that step `step` drops, each named by the step that
    /// made it.
    fn dying_at(&self, step: usize) -> &[u32] {
        &self.dying[self.starts[step] as usize..self.starts[step + 1] as usize]
    }

    /// The bytes of the allocations that outlive the run.
    pub fn live_at_end(&self) -> usize {
        let made: usize = self.lens.iter().map(|&len| len as usize).sum();
        let dropped: usize = self.dying.iter().map(|&birth| self.lens[birth as usize] as usize).sum();
        made - dropped
    }
}

/// One side of the comparison: how it makes a buffer, and what its
/// allocator holds.
pub trait Side {
    /// The buffer it makes.
    type Buf: Deref<Target = [u8]>;

    /// A buffer of `len` bytes, every one of them written.
    fn make(&mut self, len: usize) -> Self::Buf;

    /// Bytes its allocator holds, in all, or `None` where that is not
    /// known.
    fn held(&self) -> Option<usize>;
}

/// refbuf: slices from a pool with the default settings.
pub struct Refbuf {
    /// The pool, for its stats.
    pool: Pool,
    /// The allocator the slices come from.
    alloc: Either,
}

/// A `LocalAllocator`, or an `Allocator`, which may move between threads.
enum Either {
    Local(LocalAllocator),
    Send(Allocator),
}

impl Refbuf {
    /// Slices from `pool`'s `LocalAllocator`, with no headroom.
    pub fn new(pool: Pool) -> Refbuf {
        let alloc = Either::Local(pool.local_allocator(0));
        Refbuf { pool, alloc }
    }

    /// Slices from `pool`'s `Allocator`, with no headroom.
    pub fn send(pool: Pool) -> Refbuf {
        let alloc = Either::Send(pool.allocator(0));
        Refbuf { pool, alloc }
    }
}

impl Side for Refbuf {
    type Buf = Slice;

    fn make(&mut self, len: usize) -> Slice {
        let mut slice = match &mut self.alloc {
            Either::Local(alloc) => alloc.alloc_for_overwrite(len),
            Either::Send(alloc) => alloc.alloc_for_overwrite(len),
        };
        slice.fill(FILL);
        slice
    }

    fn held(&self) -> Option<usize> {
        let stats = self.pool.stats();
        Some(stats.bytes_in_use + stats.bytes_idle)
    }
}

/// The baseline: a `Vec` per buffer, from the system allocator.
pub struct Malloc;

impl Side for Malloc {
    type Buf = Vec<u8>;

    fn make(&mut self, len: usize) -> Vec<u8> {
        let mut vec = Vec::with_capacity(len);
        vec.resize(len, FILL);
        vec
    }

    fn held(&self) -> Option<usize> {
        glibc::in_use()
    }
}

/// What one side measured in one workload.
#[derive(Debug)]
pub struct Outcome {
    /// Bytes of the buffers alive at the end.
    pub live: usize,
    /// held/live at the end, where held is known.
    pub held_per_live: Option<f64>,
    /// The most held/live of the steady state's samples.
    pub max_held_per_live: Option<f64>,
    /// RSS growth/live at the end, where RSS is known.
    pub rss_per_live: Option<f64>,
    /// The most RSS growth/live of the steady state's samples.
    pub max_rss_per_live: Option<f64>,
    /// Wall time per allocation, its drop included.
    pub ns_per_slice: f64,
}

impl Outcome {
    /// Whether both maxima are within the target; `None` where neither is
    /// known.
    fn passes(&self) -> Option<bool> {
        let known: Vec<f64> = [self.max_held_per_live, self.max_rss_per_live].into_iter().flatten().collect();
        (!known.is_empty()).then(|| known.iter().all(|&ratio| ratio <= TARGET))
    }
}

/// Runs `plan` on `side`, then frees all it made (the side too); see the
/// module docs for what is measured.
///
/// # Panics
/// If the bytes of the buffers left alive at the end are not the live
/// bytes counted along the way.
pub fn run<S: Side>(plan: &Plan, mut side: S) -> Outcome {
    let mut ring: Vec<Option<S::Buf>> = (0..plan.ring).map(|_| None).collect();
    glibc::release_freed();
    let rss_before = rss();
    let held_before = side.held();
    let sample = |side: &S, live: usize| {
        let ratio = |now: Option<usize>, before: Option<usize>| {
            Some(now?.saturating_sub(before?) as f64 / live.max(1) as f64)
        };
        (ratio(side.held(), held_before), ratio(rss(), rss_before))
    };
    let (mut max_held_per_live, mut max_rss_per_live) = (None, None);
    let mut live = 0;
    let mut elapsed = Duration::ZERO;
    let steps = plan.lens.len();
    let mut step = 0;
    while step < steps {
        let stretch = step..(step + SAMPLE_EVERY).min(steps);
        let started = Instant::now();
        for t in stretch.clone() {
            for &birth in plan.dying_at(t) {
                let buf = ring[birth as usize % plan.ring].take().expect("a buffer dies once");
                live -= buf.len();
            }
            let len = plan.lens[t] as usize;
            let slot = &mut ring[t % plan.ring];
            debug_assert!(slot.is_none(), "internal: the ring is longer than any lifetime");
            *slot = Some(side.make(len));
            live += len;
        }
        elapsed += started.elapsed();
        step = stretch.end;
        if step > plan.steady_from {
            let (held, rss) = sample(&side, live);
            (max_held_per_live, max_rss_per_live) =
                (larger(max_held_per_live, held), larger(max_rss_per_live, rss));
        }
    }
    let survivors: usize = ring.iter().flatten().map(|buf| buf.len()).sum();
    assert_eq!(survivors, live, "the live bytes counted are those of the buffers alive");
    let (held_per_live, rss_per_live) = sample(&side, live);
    Outcome {
        live,
        held_per_live,
        max_held_per_live,
        rss_per_live,
        max_rss_per_live,
        ns_per_slice: elapsed.as_secs_f64() * 1e9 / steps.max(1) as f64,
    }
}

/// The larger of two optional ratios, or the one that is known.
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Resident bytes of this process, or `None` without `/proc/self/statm`.
/// Reads into a buffer on the stack, so a sample allocates nothing.
fn rss() -> Option<usize> {
    let mut text = [0u8; 128];
    let mut file = File::open("/proc/self/statm").ok()?;
    let len = file.read(&mut text).ok()?;
    let pages: usize = std::str::from_utf8(&text[..len]).ok()?.split_whitespace().nth(1)?.parse().ok()?;
    // The page size is 4 KiB on every Linux this runs on.
    Some(pages * 4096)
}

/// glibc's own account of its memory, through its `malloc.h` extensions.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// glibc's `struct mallinfo2` (glibc 2.33 and later).
    #[allow(dead_code, reason = "declared whole for its layout; two fields are read")]
    #[repr(C)]
    struct MallInfo2 {
        /// Bytes of the heaps taken from the system (sbrk or mmap).
        arena: usize,
        /// Free chunks.
        ordblks: usize,
        /// Free fastbin chunks.
        smblks: usize,
        /// Chunks mmapped on their own.
        hblks: usize,
        /// Bytes of the chunks mmapped on their own.
        hblkhd: usize,
        /// Unused, always 0.
        usmblks: usize,
        /// Bytes of free fastbin chunks.
        fsmblks: usize,
        /// Bytes of the heaps' chunks in use.
        uordblks: usize,
        /// Bytes of the heaps' free chunks.
        fordblks: usize,
        /// Bytes at the top of the main heap that `malloc_trim` could free.
        keepcost: usize,
    }

    unsafe extern "C" {
        fn mallinfo2() -> MallInfo2;
        fn malloc_trim(pad: usize) -> i32;
    }

    /// Bytes of the chunks malloc has handed out and not had back, in its
    /// heaps and mmapped on their own.
    pub(crate) fn in_use() -> Option<usize> {
        // SAFETY: `mallinfo2` takes no arguments, only reads malloc's state
        // under its locks, and returns its struct by value, declared above
        // field for field as glibc's `malloc.h` has it.
        let info = unsafe { mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }

    /// Hands malloc's free memory back to the system where it can.
    pub(crate) fn release_freed() {
        // SAFETY: `malloc_trim` takes a plain number (the bytes to keep at
        // the top of the heap), works under malloc's locks and touches no
        // memory in use; its result says only whether anything was freed.
        unsafe { malloc_trim(0) };
    }
}

/// Without glibc, its account of its memory is not known.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    /// Not known.
    pub(crate) fn in_use() -> Option<usize> {
        None
    }

    /// Nothing to do.
    pub(crate) fn release_freed() {}
}

/// An optional ratio as printed: `-` where it is not known.
fn shown(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.2}x"))
}

fn main() {
    let Args { allocations, workload, rounds } = Args::parse();
    let started = Instant::now();
    let workloads = workload.map_or(Workload::ALL.to_vec(), |w| vec![w]);
    println!(
        "{allocations} allocations per workload and side, {} KiB bufs; maxima in brackets, \
         sampled every {SAMPLE_EVERY} allocations in the steady state",
        Pool::new().buf_size() / 1024
    );
    println!(
        "| {:<21} | {:<6} | {:>8} | {:>17} | {:>17} | {:>8} | {:>7} | {:<5} |",
        "workload", "side", "live KiB", "held/live", "RSS growth/live", "ns/slice", "target", ""
    );
    println!(
        "|{:-<23}|{:-<8}|{:->10}|{:->19}|{:->19}|{:->10}|{:->9}|{:-<7}|",
        "", "", "", "", "", "", "", ""
    );
    for workload in workloads {
        let plan = Plan::new(workload, allocations);
        let mut outcomes = [("refbuf", Vec::new()), ("Send", Vec::new()), ("Vec", Vec::new())];
        for _ in 0..rounds {
            outcomes[0].1.push(run(&plan, Refbuf::new(Pool::new())));
            outcomes[1].1.push(run(&plan, Refbuf::send(Pool::new())));
            outcomes[2].1.push(run(&plan, Malloc));
        }
        for (side, runs) in outcomes {
            let mut times: Vec<f64> = runs.iter().map(|outcome| outcome.ns_per_slice).collect();
            times.sort_by(f64::total_cmp);
            let ns_per_slice = times[times.len() / 2];
            let outcome = &runs[0];
            let verdict = match outcome.passes() {
                Some(true) => "pass",
                Some(false) => "short",
                None => "",
            };
            println!(
                "| {:<21} | {:<6} | {:>8.0} | {:>17} | {:>17} | {:>8.1} | {:>7} | {:<5} |",
                workload.name(),
                side,
                outcome.live as f64 / 1024.0,
                format!("{} ({})", shown(outcome.held_per_live), shown(outcome.max_held_per_live)),
                format!("{} ({})", shown(outcome.rss_per_live), shown(outcome.max_rss_per_live)),
                ns_per_slice,
                format!("<= {TARGET:.1}x"),
                verdict
            );
        }
    }
    println!(
        "\nns/slice: median of {rounds} runs per side, drops included; about {:.1?} in all.",
        started.elapsed()
    );
}
