//! The model behind `tests/model.rs` and the `slice_ops` fuzz target
//! (`fuzz/fuzz_targets/slice_ops.rs`, which includes this file by path): one
//! place that applies an operation to real slices and to a plain model, and
//! checks the two agree after every step.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};

use refbuf::{
    AllocError, Allocator, DEFAULT_MAX_POOLED_MULTIPLE, DEFAULT_THREAD_CACHE_BUFS, LocalAllocator,
    MAX_SIZE_CLASSES, Pool, Reader, Slice, coalesce,
};

const BS: usize = 64;
const MAX_LIVE: usize = 10;
/// The `LocalAllocator`'s index among the model's allocators.
const LOCAL: usize = 1;
/// Spent bufs a refill looks at, as in the crate.
const SPENT_LOOK: usize = 4;

/// How a new slice's bytes are set.
#[derive(Debug, Clone, Copy)]
pub enum Fill {
    /// `alloc`: zeroed data and headroom.
    Zeroed,
    /// `alloc_for_overwrite`, then every byte written from this seed.
    Overwrite(u8),
    /// `copy_from_slice` of bytes from this seed.
    CopyFrom(u8),
}

/// One step. Slice indices are taken modulo the number of live slices; a
/// pair of equal indices means the slice and its successor.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Allocator (mod 2: the `Allocator` or the `LocalAllocator`), length, fill.
    Alloc(usize, usize, Fill),
    /// `Slice::from_vec` of `len` bytes from a seed.
    FromVec(usize, u8),
    /// `Slice::new()`.
    Empty,
    ExpandFront(usize, usize),
    /// Slice, header length, seed.
    Prepend(usize, usize, u8),
    TruncateFront(usize, usize),
    Truncate(usize, usize),
    /// Slice, split point (mod len + 1).
    SplitTo(usize, usize),
    SplitOff(usize, usize),
    /// The allocator's last slice consumes the one allocated before it.
    ReleasePreviousOfLast(usize),
    /// `live[i].release_previous(live[j])`.
    ReleasePrevious(usize, usize),
    FreeEntirePrefix(usize),
    /// `live[i].try_join(live[j])`.
    TryJoin(usize, usize),
    /// `live[i].try_join(live[i + 1])`: neighbours in the list are often
    /// neighbours in memory.
    TryJoinNext(usize),
    /// Bit mask over live slices (in order), max_len.
    Coalesce(u16, usize),
    /// Overwrites every byte from a seed.
    Write(usize, u8),
    DropSlice(usize),
    /// `Reader::read` of this many bytes.
    Read(usize),
    Close,
}

fn gen_bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|k| (seed as usize * 131 + k * 29 + 7) as u8 ^ (k >> 8) as u8).collect()
}

/// Byte `k` of the reader's source.
fn stream_byte(k: usize) -> u8 {
    (k as u8).wrapping_mul(67) ^ (k >> 8) as u8
}

/// The reader's source: an endless stream that fills every buffer it is
/// given, so where each read lands is predictable.
struct Stream {
    delivered: usize,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for (k, b) in buf.iter_mut().enumerate() {
            *b = stream_byte(self.delivered + k);
        }
        self.delivered += buf.len();
        Ok(buf.len())
    }
}

/// The reader: its buf, and which bytes of it are buffered.
#[derive(Default)]
struct RModel {
    cur: Option<u64>,
    start: usize,
    end: usize,
}

impl BufModel {
    /// Learns where the buf lies from a slice that shows it, if no slice
    /// has yet.
    fn locate(&mut self, start: usize) {
        if self.start == UNLOCATED {
            self.start = start;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// From the pool; `class` is its free list, if it is kept.
    Pooled { class: Option<usize> },
    /// From `Slice::from_vec`; not counted by the pool.
    FromVec,
}

/// `BufModel::start` of a buf the reader took and grew out of within one
/// read, which no slice has shown yet.
const UNLOCATED: usize = usize::MAX;

/// A buf: where its data area is, and a shadow of all its bytes.
struct BufModel {
    /// Address of the data area, or [`UNLOCATED`].
    start: usize,
    cap: usize,
    kind: Kind,
    bytes: Vec<u8>,
    /// The `LocalAllocator`'s segment record of the buf, where it keeps one.
    record: Option<Box<RecordModel>>,
    /// Whether a slice of it was split or joined while the
    /// `LocalAllocator` held it, since it was last free.
    reshaped: bool,
}

/// Segments per buf, as in the crate.
const SEGMENTS: usize = 64;

/// The crate's segment record of a buf, kept the same way: per segment, the
/// regions carved starting in it less those dropped at home (every drop in
/// the model is), and the lowest start and highest end carved there since
/// it last had none.
#[derive(Clone)]
struct RecordModel {
    shift: u32,
    cap: usize,
    live: [usize; SEGMENTS],
    first: [usize; SEGMENTS],
    end: [usize; SEGMENTS],
}

impl RecordModel {
    fn new(cap: usize) -> RecordModel {
        let shift = cap.div_ceil(SEGMENTS).next_power_of_two().trailing_zeros();
        RecordModel { shift, cap, live: [0; SEGMENTS], first: [0; SEGMENTS], end: [0; SEGMENTS] }
    }

    fn segment(&self, at: usize) -> usize {
        (at >> self.shift).min(SEGMENTS - 1)
    }

    fn carved(&mut self, start: usize, end: usize) {
        let k = self.segment(start);
        if self.live[k] == 0 {
            (self.first[k], self.end[k]) = (start, end);
        } else {
            self.first[k] = self.first[k].min(start);
            self.end[k] = self.end[k].max(end);
        }
        self.live[k] = self.live[k].wrapping_add(1);
    }

    fn dropped(&mut self, start: usize) {
        let k = self.segment(start);
        self.live[k] = self.live[k].wrapping_sub(1);
    }

    /// The first run of `need` bytes no live region can overlap, ending
    /// past `from` and starting at or after it.
    fn free_run(&self, from: usize, need: usize) -> Option<(usize, usize)> {
        let fits = |start: usize, end: usize| {
            let start = start.max(from);
            (end > start && end - start >= need).then_some((start, end))
        };
        let mut covered = 0;
        let mut start = None;
        for k in 0..SEGMENTS {
            let seg_start = k << self.shift;
            if seg_start >= self.cap {
                break;
            }
            if self.live[k] != 0 {
                if let Some(run) = start.take().and_then(|a| fits(a, self.first[k])) {
                    return Some(run);
                }
                covered = covered.max(self.end[k]);
            } else if start.is_none() {
                let seg_end = ((k + 1) << self.shift).min(self.cap);
                let a = covered.max(seg_start);
                start = (a < seg_end).then_some(a);
            }
        }
        start.and_then(|a| fits(a, self.cap))
    }
}

/// A live slice.
#[derive(Clone)]
struct SModel {
    /// Stable identity, for `ReleasePreviousOfLast`.
    id: u64,
    /// Model buf; `None` for `Slice::new()`.
    buf: Option<u64>,
    /// Offset of the data in the buf.
    off: usize,
    len: usize,
    headroom: usize,
    data: Vec<u8>,
}

/// Leaves out the contents, which assertion messages show on their own.
impl std::fmt::Debug for SModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { id, buf, off, len, headroom, data: _ } = self;
        write!(f, "SModel {{ id: {id}, buf: {buf:?}, off: {off}, len: {len}, headroom: {headroom} }}")
    }
}

struct AModel {
    reserve: usize,
    /// Current buf, the offset of its first free byte, and the end of the
    /// bytes the allocator may cut from (the buf's, or a dead part's).
    cur: Option<(u64, usize, usize)>,
    /// Filled standard-size bufs kept for reuse, oldest first (the
    /// `LocalAllocator` only), and how many it keeps at most while not
    /// tracking (and free ones while tracking).
    spent: VecDeque<u64>,
    spent_cap: usize,
    /// Refills left before the oldest spent buf is looked at again, after
    /// it was found in use with the list full; meanwhile filled bufs are
    /// not kept.
    spent_skip: usize,
    /// Whether bufs get segment records, and the refills in a row that
    /// found the oldest spent buf free.
    track: bool,
    free_streak: usize,
    last: Option<u64>,
    prev: Option<u64>,
}

impl AModel {
    /// The most spent bufs it keeps now.
    fn list_cap(&self) -> usize {
        if self.track && self.spent_cap > 0 { LocalAllocator::TRACKED_BUFS } else { self.spent_cap }
    }
}

/// How often the adjacency-dependent operations actually did something, so
/// the random test can show it is not vacuous.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub joins: u64,
    pub releases_grew: u64,
    pub prefixes_freed: u64,
    pub coalesce_merges: u64,
    /// Reader reads that moved the buffered bytes to another buf, or to the
    /// front of their own.
    pub reader_moves: u64,
    pub recycled: u64,
    /// Allocations that cut from a spent buf of the `LocalAllocator` again.
    pub spent_reused: u64,
    /// Times the `LocalAllocator` found its oldest spent buf in use with
    /// its list full, and pushed it out.
    pub spent_pushed_out: u64,
    /// Allocations the `LocalAllocator` cut from a dead part of a buf some
    /// slices still use.
    pub dead_parts: u64,
    pub closes: u64,
}

struct World {
    pool: Pool,
    allocs: Vec<ModelAlloc>,
    amodels: Vec<AModel>,
    /// `None` once dropped, at the end of a case.
    reader: Option<Reader<Stream>>,
    rmodel: RModel,
    live: Vec<(Slice, SModel)>,
    bufs: HashMap<u64, BufModel>,
    /// The pool's free lists, top of stack last.
    idle: Vec<Vec<BufModel>>,
    /// This thread's cache in the pool: standard-size bufs, at most
    /// `DEFAULT_THREAD_CACHE_BUFS`, top of stack last. A released standard
    /// buf goes here while there is room, and a take looks here first.
    cached: Vec<BufModel>,
    closed: bool,
    created: u64,
    next_id: u64,
    tally: Tally,
}

/// The model's two allocators: an `Allocator`, and a `LocalAllocator`,
/// whose bufs count the drops made on its thread (all of them, here) apart
/// from the atomic count. Both must behave exactly alike.
enum ModelAlloc {
    Send(Allocator),
    Local(LocalAllocator),
}

/// Calls the same method on either kind of allocator.
macro_rules! on_alloc {
    ($alloc:expr, $method:ident($($arg:expr),*)) => {
        match $alloc {
            ModelAlloc::Send(a) => a.$method($($arg),*),
            ModelAlloc::Local(a) => a.$method($($arg),*),
        }
    };
}

/// Where the next allocation is expected to come from.
enum Source {
    Same(u64, usize),
    Recycled(BufModel),
    Fresh(usize, Option<usize>),
}

impl World {
    fn new(reserves: (usize, usize)) -> World {
        let pool = Pool::builder().buf_size(BS).build();
        let allocs = vec![
            ModelAlloc::Send(pool.allocator(reserves.0)),
            ModelAlloc::Local(pool.local_allocator(reserves.1)),
        ];
        let local_spent = (LocalAllocator::SPENT_BYTES / BS).clamp(1, LocalAllocator::SPENT_BUFS);
        let amodels = [(reserves.0, 0), (reserves.1, local_spent)]
            .map(|(reserve, spent_cap)| AModel {
                reserve,
                cur: None,
                spent: VecDeque::new(),
                spent_cap,
                spent_skip: 0,
                track: false,
                free_streak: 0,
                last: None,
                prev: None,
            })
            .into();
        let reader = Some(pool.reader(Stream { delivered: 0 }));
        World {
            pool,
            allocs,
            amodels,
            reader,
            rmodel: RModel::default(),
            live: Vec::new(),
            bufs: HashMap::new(),
            idle: (0..MAX_SIZE_CLASSES).map(|_| Vec::new()).collect(),
            cached: Vec::new(),
            closed: false,
            created: 0,
            next_id: 0,
            tally: Tally::default(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn holders(&self, buf: u64) -> usize {
        self.live.iter().filter(|(_, m)| m.buf == Some(buf)).count()
            + self.amodels.iter().filter(|a| a.cur.is_some_and(|(b, ..)| b == buf)).count()
            + self.amodels.iter().flat_map(|a| &a.spent).filter(|&&b| b == buf).count()
            + usize::from(self.rmodel.cur == Some(buf))
    }

    /// The model side of a holder letting go of `buf`.
    fn release_if_unheld(&mut self, buf: Option<u64>) {
        let Some(buf) = buf else { return };
        if self.holders(buf) > 0 {
            return;
        }
        let bm = self.bufs.remove(&buf).expect("model: released buf exists");
        if let Kind::Pooled { class: Some(class) } = bm.kind
            && !self.closed
        {
            if class == 0 {
                if self.cached.len() == DEFAULT_THREAD_CACHE_BUFS {
                    // A full cache spills its older half to the shared list.
                    let older = self.cached.drain(..DEFAULT_THREAD_CACHE_BUFS.div_ceil(2));
                    self.idle[0].extend(older);
                }
                self.cached.push(bm);
            } else {
                self.idle[class].push(bm);
            }
        }
    }

    /// The model side of taking an idle buf of `class`: the newest in this
    /// thread's cache for the standard size, else the newest in its free
    /// list; a standard one taken there brings a cacheful of the next
    /// newest into the empty cache, in their order.
    fn take_idle(&mut self, class: Option<usize>) -> Option<BufModel> {
        match class {
            Some(0) => self.cached.pop().or_else(|| {
                let taken = self.idle[0].pop()?;
                let shared = &mut self.idle[0];
                let moved = shared.len().min(DEFAULT_THREAD_CACHE_BUFS);
                self.cached = shared.split_off(shared.len() - moved);
                Some(taken)
            }),
            Some(c) => self.idle[c].pop(),
            None => None,
        }
    }

    /// Checks every live slice and the pool's stats against the model.
    fn check(&mut self, step: usize) {
        for (k, (s, m)) in self.live.iter_mut().enumerate() {
            let what = format!("step {step}, slice {k} {m:?}");
            assert_eq!(s.len(), m.len, "{what}: len");
            assert_eq!(s.headroom(), m.headroom, "{what}: headroom");
            assert_eq!(&s[..], &m.data[..], "{what}: contents");
            match m.buf {
                Some(b) => {
                    let bm = &self.bufs[&b];
                    assert_eq!(s.as_ptr() as usize, bm.start + m.off, "{what}: position");
                    assert!(m.headroom <= m.off && m.off + m.len <= bm.cap, "model: {what} out of its buf");
                    assert_eq!(&bm.bytes[m.off..m.off + m.len], &m.data[..], "model: {what} vs shadow");
                    // The headroom too: claimed and handed back, which leaves
                    // the slice exactly as it was.
                    let h = m.headroom;
                    assert!(s.expand_front(h), "{what}");
                    assert_eq!(&s[..h], &bm.bytes[m.off - h..m.off], "{what}: headroom bytes");
                    s.truncate_front(h);
                    assert_eq!(
                        (s.len(), s.headroom(), s.as_ptr() as usize),
                        (m.len, h, bm.start + m.off),
                        "{what}"
                    );
                }
                None => assert_eq!((m.len, m.headroom), (0, 0), "{what}"),
            }
        }
        // No two holders own the same byte: slices own headroom and data,
        // an allocator the rest of its buf.
        let mut owned: Vec<(u64, usize, usize)> = self
            .live
            .iter()
            .filter_map(|(_, m)| Some((m.buf?, m.off - m.headroom, m.off + m.len)))
            .chain(self.amodels.iter().filter_map(|a| a.cur))
            .chain(self.rmodel.cur.map(|b| (b, self.rmodel.start, self.bufs[&b].cap)))
            .filter(|&(_, lo, hi)| lo < hi)
            .collect();
        owned.sort_unstable();
        for w in owned.windows(2) {
            assert!(w[0].0 != w[1].0 || w[0].2 <= w[1].1, "step {step}: overlapping owners {w:?}");
        }

        let stats = self.pool.stats();
        let pooled: Vec<&BufModel> =
            self.bufs.values().filter(|b| matches!(b.kind, Kind::Pooled { .. })).collect();
        assert_eq!(stats.bufs_created, self.created, "step {step}: {stats:?}");
        assert_eq!(stats.bufs_in_use, pooled.len(), "step {step}: {stats:?}");
        assert_eq!(stats.bytes_in_use, pooled.iter().map(|b| b.cap).sum::<usize>(), "step {step}: {stats:?}");
        let idle = || self.idle.iter().flatten().chain(&self.cached);
        assert_eq!(stats.bufs_idle, idle().count(), "step {step}: {stats:?}");
        assert_eq!(stats.bytes_idle, idle().map(|b| b.cap).sum::<usize>(), "step {step}: {stats:?}");
        assert_eq!(stats.bufs_cached, self.cached.len(), "step {step}: {stats:?}");
        assert_eq!(self.pool.is_closed(), self.closed);
    }

    fn index(&self, i: usize) -> Option<usize> {
        (!self.live.is_empty()).then(|| i % self.live.len())
    }

    /// Two distinct indices, or `None` with fewer than two live slices.
    fn pair(&self, i: usize, j: usize) -> Option<(usize, usize)> {
        let n = self.live.len();
        if n < 2 {
            return None;
        }
        let (i, mut j) = (i % n, j % n);
        if i == j {
            j = (j + 1) % n;
        }
        Some((i, j))
    }

    /// Whether `buf` is at home with the `LocalAllocator`: its current buf
    /// or a spent one.
    fn at_home(&self, buf: u64) -> bool {
        let am = &self.amodels[LOCAL];
        am.cur.is_some_and(|(b, ..)| b == buf) || am.spent.contains(&buf)
    }

    /// The model side of a slice of `buf` split or joined: marked reshaped
    /// where it is at home.
    fn reshape(&mut self, buf: Option<u64>) {
        if let Some(b) = buf
            && self.at_home(b)
        {
            self.bufs.get_mut(&b).unwrap().reshaped = true;
        }
    }

    /// The model side of a slice dropped: taken off its buf's segment
    /// record, where the buf is at home with one.
    fn dropped(&mut self, m: &SModel) {
        if let Some(b) = m.buf
            && self.at_home(b)
            && let Some(record) = &mut self.bufs.get_mut(&b).unwrap().record
        {
            record.dropped(m.off - m.headroom);
        }
    }

    /// The dead part of `buf` that a refill needing `need` bytes would cut
    /// from, past `from`.
    fn dead_part(&self, buf: u64, from: usize, need: usize) -> Option<(usize, usize)> {
        let bm = &self.bufs[&buf];
        if bm.reshaped {
            return None;
        }
        bm.record.as_ref()?.free_run(from, need)
    }

    /// Whether a buf allocator `a` holds has a segment record.
    fn records_in_use(&self, a: usize) -> bool {
        let am = &self.amodels[a];
        am.cur
            .map(|(b, ..)| b)
            .into_iter()
            .chain(am.spent.iter().copied())
            .any(|b| self.bufs[&b].record.is_some())
    }

    /// The model side of an allocator letting go of `buf`: its record goes
    /// back to the allocator, and the buf to the pool if no slice holds it.
    fn let_go(&mut self, buf: u64) {
        self.bufs.get_mut(&buf).unwrap().record = None;
        self.release_if_unheld(Some(buf));
    }

    /// The model side of a refill finding room in a buf the allocator
    /// holds: a dead part of its current buf past the cursor, else its
    /// oldest spent buf where no slice of it is alive, else what
    /// [`reuse_in_use`](World::reuse_in_use) finds.
    fn reuse_held(&mut self, a: usize, need: usize) -> bool {
        if let Some((b, next, _)) = self.amodels[a].cur
            && let Some((start, end)) = self.dead_part(b, next, need)
        {
            self.amodels[a].cur = Some((b, start, end));
            self.tally.dead_parts += 1;
            return true;
        }
        let am = &mut self.amodels[a];
        if am.spent_skip > 0 {
            am.spent_skip -= 1;
            return false;
        }
        let Some(&oldest) = am.spent.front() else { return false };
        if self.bufs[&oldest].cap < need {
            return false;
        }
        if self.holders(oldest) > 1 {
            return self.reuse_in_use(a, need);
        }
        self.amodels[a].spent.pop_front();
        self.reuse_free(a, oldest);
        true
    }

    /// The model side of a free spent buf becoming the current one: given
    /// a record or rid of it as `track` says, rewound, the current buf
    /// retired; then, with more free bufs kept than `spent_free_cap`, the
    /// next oldest let go where it is free too.
    fn reuse_free(&mut self, a: usize, free: u64) {
        if self.amodels[a].track || self.records_in_use(a) {
            let am = &mut self.amodels[a];
            if am.track {
                am.free_streak += 1;
                am.track = am.free_streak <= LocalAllocator::TRACKED_BUFS;
            }
            let track = am.track;
            let bm = self.bufs.get_mut(&free).unwrap();
            if bm.record.is_some() != track {
                bm.record = track.then(|| Box::new(RecordModel::new(bm.cap)));
            }
        }
        let bm = self.bufs.get_mut(&free).unwrap();
        if let Some(record) = &mut bm.record {
            record.live = [0; SEGMENTS];
            bm.reshaped = false;
        }
        let cap = bm.cap;
        let old = self.amodels[a].cur.replace((free, 0, cap));
        self.retire_buf(a, old.map(|(b, ..)| b));
        self.tally.spent_reused += 1;
        let am = &self.amodels[a];
        if am.spent.len() > am.spent_cap
            && let Some(&next) = am.spent.front()
            && self.holders(next) == 1
        {
            self.amodels[a].spent.pop_front();
            self.let_go(next);
        }
    }

    /// The model side of a refill that finds the oldest spent buf in use:
    /// up to `SPENT_LOOK` of the oldest looked at in turn; a free one
    /// taken; one with a dead part that has room cut from; a mostly dead
    /// one turning `track` on; one looked at in vain going to the back of
    /// the list while tracking (or where it has a record or is mostly
    /// dead), else ending the search; with the list full, the oldest
    /// pushed out and the list left alone for as many refills as it holds.
    fn reuse_in_use(&mut self, a: usize, need: usize) -> bool {
        for _ in 0..self.amodels[a].spent.len().min(SPENT_LOOK) {
            let Some(&oldest) = self.amodels[a].spent.front() else { return false };
            let cap = self.bufs[&oldest].cap;
            if cap < need {
                return false;
            }
            let holders = self.holders(oldest);
            if holders == 1 {
                self.amodels[a].spent.pop_front();
                self.reuse_free(a, oldest);
                return true;
            }
            let mostly_dead = (holders - 1).saturating_mul(need.max(1)).saturating_mul(4) <= cap;
            let am = &mut self.amodels[a];
            if mostly_dead {
                am.track = true;
                am.free_streak = 0;
            }
            let full = am.spent.len() >= am.list_cap();
            am.spent.pop_front();
            let tracked = self.bufs[&oldest].record.is_some();
            if let Some((start, end)) = self.dead_part(oldest, 0, need) {
                let old = self.amodels[a].cur.replace((oldest, start, end));
                self.retire_buf(a, old.map(|(b, ..)| b));
                self.tally.dead_parts += 1;
                return true;
            }
            let am = &mut self.amodels[a];
            if full {
                am.spent_skip = am.list_cap();
                self.tally.spent_pushed_out += 1;
                self.let_go(oldest);
                return false;
            }
            if !mostly_dead && !tracked && !am.track {
                am.spent.push_front(oldest);
                return false;
            }
            am.spent.push_back(oldest);
        }
        false
    }

    /// The model side of an allocator letting go of its current buf: kept
    /// as spent where the allocator keeps standard-size ones (pushing out
    /// the oldest where it keeps its most) and is not leaving the list
    /// alone, else let go.
    fn retire(&mut self, a: usize) {
        let old = self.amodels[a].cur.take().map(|(b, ..)| b);
        self.retire_buf(a, old);
    }

    /// [`retire`](World::retire) of `old`, no longer the current buf.
    fn retire_buf(&mut self, a: usize, old: Option<u64>) {
        let Some(old) = old else { return };
        let am = &mut self.amodels[a];
        if am.spent_cap == 0 || am.spent_skip > 0 || self.bufs[&old].cap != BS {
            self.let_go(old);
            return;
        }
        while self.amodels[a].spent.len() >= self.amodels[a].list_cap()
            && let Some(oldest) = self.amodels[a].spent.pop_front()
        {
            self.let_go(oldest);
        }
        self.amodels[a].spent.push_back(old);
    }

    fn alloc(&mut self, a: usize, len: usize, fill: Fill) {
        let a = a % self.allocs.len();
        if self.live.len() >= MAX_LIVE {
            return;
        }
        let r = self.amodels[a].reserve;
        let need = r + len;
        let bytes = match fill {
            Fill::Zeroed => Vec::new(),
            Fill::Overwrite(seed) | Fill::CopyFrom(seed) => gen_bytes(seed, len),
        };
        if self.closed {
            let alloc = &mut self.allocs[a];
            let e = match fill {
                Fill::Zeroed => on_alloc!(alloc, try_alloc(len)),
                Fill::Overwrite(_) => on_alloc!(alloc, try_alloc_for_overwrite(len)),
                Fill::CopyFrom(_) => on_alloc!(alloc, try_copy_from_slice(&bytes)),
            };
            assert_eq!(e.unwrap_err(), AllocError::Closed);
            return;
        }
        let source = match self.amodels[a].cur {
            Some((b, next, end)) if need <= end - next => Source::Same(b, next),
            // No slice of the current buf is alive (the allocator is its only
            // holder) and it is large enough: the allocator rewinds to its
            // start, and its segment record starts over.
            Some((b, ..)) if need <= self.bufs[&b].cap && self.holders(b) == 1 => {
                let bm = self.bufs.get_mut(&b).unwrap();
                if let Some(record) = &mut bm.record {
                    record.live = [0; SEGMENTS];
                    bm.reshaped = false;
                }
                self.amodels[a].cur = Some((b, 0, bm.cap));
                Source::Same(b, 0)
            }
            _ => {
                if self.reuse_held(a, need) {
                    let (b, next, _) = self.amodels[a].cur.expect("room was found");
                    Source::Same(b, next)
                } else {
                    // The allocator lets go of its current buf before taking
                    // the next, so an old buf that goes idle is the one taken
                    // back.
                    self.retire(a);
                    let (cap, class) = size_class(need);
                    match self.take_idle(class) {
                        Some(bm) => Source::Recycled(bm),
                        None => Source::Fresh(cap, class),
                    }
                }
            }
        };
        let alloc = &mut self.allocs[a];
        let mut s = match fill {
            Fill::Zeroed => on_alloc!(alloc, alloc(len)),
            Fill::Overwrite(_) => on_alloc!(alloc, alloc_for_overwrite(len)),
            Fill::CopyFrom(_) => on_alloc!(alloc, copy_from_slice(&bytes)),
        };
        let ptr = s.as_ptr() as usize;
        let (b, region) = match source {
            Source::Same(b, next) => {
                assert_eq!(ptr, self.bufs[&b].start + next + r, "bumped from the current buf");
                (b, next)
            }
            Source::Recycled(mut bm) => {
                bm.locate(ptr - r);
                assert_eq!(ptr, bm.start + r, "took the most recently idled buf of its size");
                self.tally.recycled += 1;
                let id = self.id();
                self.bufs.insert(id, bm);
                (id, 0)
            }
            Source::Fresh(cap, class) => {
                self.created += 1;
                let id = self.id();
                let bm = BufModel {
                    start: ptr - r,
                    cap,
                    kind: Kind::Pooled { class },
                    bytes: vec![0; cap],
                    record: None,
                    reshaped: false,
                };
                self.bufs.insert(id, bm);
                (id, 0)
            }
        };
        let end = match self.amodels[a].cur {
            Some((cur, _, end)) if cur == b => end,
            // A buf just leased, made at home with a record where the
            // `LocalAllocator` is tracking.
            _ => {
                let bm = self.bufs.get_mut(&b).unwrap();
                let track = a == LOCAL && self.amodels[a].track && bm.cap == BS;
                bm.record = track.then(|| Box::new(RecordModel::new(bm.cap)));
                bm.reshaped = false;
                bm.cap
            }
        };
        self.amodels[a].cur = Some((b, region + need, end));
        let bm = self.bufs.get_mut(&b).unwrap();
        if let Some(record) = &mut bm.record {
            record.carved(region, region + need);
        }
        let off = region + r;
        match fill {
            Fill::Zeroed => {
                bm.bytes[region..off + len].fill(0);
                // A zeroed region of at least a line runs on to the next
                // 64-byte boundary, where the allocator's own bytes reach it.
                let past_end = (64 - (bm.start + off + len) % 64) % 64;
                if need >= 64 && past_end <= end - (off + len) {
                    bm.bytes[off + len..off + len + past_end].fill(0);
                }
            }
            Fill::CopyFrom(_) => {
                bm.bytes[region..off].fill(0);
                bm.bytes[off..off + len].copy_from_slice(&bytes);
            }
            Fill::Overwrite(_) => {
                assert_eq!(
                    &s[..],
                    &bm.bytes[off..off + len],
                    "alloc_for_overwrite shows what the memory held"
                );
                s.copy_from_slice(&bytes);
                bm.bytes[off..off + len].copy_from_slice(&bytes);
            }
        }
        let data = bm.bytes[off..off + len].to_vec();
        let id = self.id();
        self.live.push((s, SModel { id, buf: Some(b), off, len, headroom: r, data }));
        let am = &mut self.amodels[a];
        am.prev = am.last.replace(id);
    }

    /// `Reader::read(n)`, predicted step by step as the reader works: until
    /// `n` bytes are buffered, it makes room for the next step of the
    /// frame's growth (twice the bytes buffered, at least a standard buf, at
    /// most `n`) by rewinding, moving the buffered bytes to the front, or
    /// moving them to a new buf, unless a frame still growing has spare room
    /// left in its buf; then it reads once from the (ever-willing) source,
    /// which fills the rest of the buf.
    fn read(&mut self, n: usize) {
        let mut reader = self.reader.take().expect("the reader lives until the end of the case");
        self.read_from(&mut reader, n);
        self.reader = Some(reader);
    }

    fn read_from(&mut self, reader: &mut Reader<Stream>, n: usize) {
        if self.live.len() >= MAX_LIVE {
            return;
        }
        if self.closed {
            let e = reader.read(n).expect_err("a closed pool refuses every read");
            assert_eq!(e.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Closed));
            return;
        }
        let mut delivered = reader.get_ref().delivered;
        while self.rmodel.end - self.rmodel.start < n {
            let RModel { cur, start, end } = self.rmodel;
            let buffered = end - start;
            let sole = cur.is_some_and(|b| self.holders(b) == 1);
            if buffered == 0 && sole {
                (self.rmodel.start, self.rmodel.end) = (0, 0);
            }
            let want = n.min(BS.max(buffered * 2));
            let cap = cur.map_or(0, |b| self.bufs[&b].cap);
            let growing = want < n && self.rmodel.end < cap;
            if cap - self.rmodel.start < want && !growing {
                self.tally.reader_moves += 1;
                if cap >= want && sole {
                    let (start, end) = (self.rmodel.start, self.rmodel.end);
                    self.bufs.get_mut(&cur.expect("sole")).unwrap().bytes.copy_within(start..end, 0);
                } else {
                    if buffered == 0 {
                        // With nothing buffered the reader lets its buf go
                        // before taking the larger one, so that buf may be
                        // the idle one it takes.
                        self.rmodel.cur = None;
                        self.release_if_unheld(cur);
                    }
                    let (cap, class) = size_class(want);
                    let mut bm = self.take_idle(class).unwrap_or_else(|| {
                        self.created += 1;
                        // Where it lies is learnt from the first slice cut
                        // from it.
                        BufModel {
                            start: UNLOCATED,
                            cap,
                            kind: Kind::Pooled { class },
                            bytes: vec![0; cap],
                            record: None,
                            reshaped: false,
                        }
                    });
                    if let Some(old) = self.rmodel.cur {
                        bm.bytes[..buffered].copy_from_slice(&self.bufs[&old].bytes[start..end]);
                    }
                    let id = self.id();
                    self.bufs.insert(id, bm);
                    // The buf it moved from, or grew out of, goes once the
                    // bytes are across.
                    let old = self.rmodel.cur.replace(id);
                    self.release_if_unheld(old);
                }
                (self.rmodel.start, self.rmodel.end) = (0, buffered);
            }
            let b = self.rmodel.cur.expect("a buf to read into");
            let bm = self.bufs.get_mut(&b).unwrap();
            for (k, byte) in bm.bytes[self.rmodel.end..].iter_mut().enumerate() {
                *byte = stream_byte(delivered + k);
            }
            delivered += bm.cap - self.rmodel.end;
            self.rmodel.end = bm.cap;
        }
        let s = reader.read(n).expect("an open pool and an endless source");
        assert_eq!(reader.get_ref().delivered, delivered, "what the source was asked for");
        let Some(b) = self.rmodel.cur else {
            assert_eq!((s.len(), n), (0, 0), "no buf before the first read of a byte");
            let id = self.id();
            self.live.push((s, SModel { id, buf: None, off: 0, len: 0, headroom: 0, data: Vec::new() }));
            return;
        };
        let RModel { start, end, .. } = self.rmodel;
        let bm = self.bufs.get_mut(&b).unwrap();
        bm.locate(s.as_ptr() as usize - start);
        assert_eq!(s.as_ptr() as usize, bm.start + start, "the next buffered byte");
        assert_eq!(reader.buffered(), end - start - n);
        let data = bm.bytes[start..start + n].to_vec();
        let id = self.id();
        self.live.push((s, SModel { id, buf: Some(b), off: start, len: n, headroom: 0, data }));
        self.rmodel.start = start + n;
    }

    fn add_from_vec(&mut self, len: usize, seed: u8) {
        if self.live.len() >= MAX_LIVE {
            return;
        }
        let bytes = gen_bytes(seed, len);
        let s = Slice::from_vec(bytes.clone());
        let b = self.id();
        let bm = BufModel {
            start: s.as_ptr() as usize,
            cap: len,
            kind: Kind::FromVec,
            bytes: bytes.clone(),
            record: None,
            reshaped: false,
        };
        self.bufs.insert(b, bm);
        let id = self.id();
        self.live.push((s, SModel { id, buf: Some(b), off: 0, len, headroom: 0, data: bytes }));
    }

    fn release_previous(&mut self, i: usize, j: usize) {
        let (prev, pm) = self.live.remove(j);
        let i = if j < i { i - 1 } else { i };
        let (s, m) = &mut self.live[i];
        let grows = m.buf.is_some() && pm.buf == m.buf && pm.off + pm.len == m.off - m.headroom;
        s.release_previous(prev);
        if grows {
            m.headroom += pm.headroom + pm.len;
            self.tally.releases_grew += 1;
            let buf = m.buf;
            self.reshape(buf);
        }
        self.dropped(&pm);
        self.release_if_unheld(pm.buf);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Alloc(a, len, fill) => self.alloc(a, len, fill),
            Op::FromVec(len, seed) => self.add_from_vec(len, seed),
            Op::Empty => {
                if self.live.len() < MAX_LIVE {
                    let id = self.id();
                    let m = SModel { id, buf: None, off: 0, len: 0, headroom: 0, data: Vec::new() };
                    self.live.push((Slice::new(), m));
                }
            }
            Op::ExpandFront(i, n) => {
                let Some(i) = self.index(i) else { return };
                let (s, m) = &mut self.live[i];
                let ok = s.expand_front(n);
                assert_eq!(ok, n <= m.headroom, "expand_front({n}) with headroom {}", m.headroom);
                if ok {
                    m.off -= n;
                    m.len += n;
                    m.headroom -= n;
                    if let Some(b) = m.buf {
                        let exposed = &self.bufs[&b].bytes[m.off..m.off + n];
                        m.data.splice(0..0, exposed.iter().copied());
                    }
                }
            }
            Op::Prepend(i, n, seed) => {
                let Some(i) = self.index(i) else { return };
                let header = gen_bytes(seed, n);
                let (s, m) = &mut self.live[i];
                let ok = s.prepend(&header);
                assert_eq!(ok, n <= m.headroom, "prepend({n}) with headroom {}", m.headroom);
                if ok {
                    m.off -= n;
                    m.len += n;
                    m.headroom -= n;
                    m.data.splice(0..0, header.iter().copied());
                    if let Some(b) = m.buf {
                        self.bufs.get_mut(&b).unwrap().bytes[m.off..m.off + n].copy_from_slice(&header);
                    }
                }
            }
            Op::TruncateFront(i, n) => {
                let Some(i) = self.index(i) else { return };
                let (s, m) = &mut self.live[i];
                s.truncate_front(n);
                let n = n.min(m.len);
                m.off += n;
                m.len -= n;
                m.headroom += n;
                m.data.drain(..n);
            }
            Op::Truncate(i, len) => {
                let Some(i) = self.index(i) else { return };
                let (s, m) = &mut self.live[i];
                s.truncate(len);
                m.len = m.len.min(len);
                m.data.truncate(len);
            }
            Op::SplitTo(i, at) => {
                let Some(i) = self.index(i).filter(|_| self.live.len() < MAX_LIVE) else { return };
                let id = self.id();
                let (s, m) = &mut self.live[i];
                let at = at % (m.len + 1);
                let front = s.split_to(at);
                let buf = m.buf;
                let fm = SModel {
                    id,
                    buf: m.buf,
                    off: m.off,
                    len: at,
                    headroom: m.headroom,
                    data: m.data[..at].to_vec(),
                };
                m.off += at;
                m.len -= at;
                m.headroom = 0;
                m.data.drain(..at);
                self.live.insert(i, (front, fm));
                self.reshape(buf);
            }
            Op::SplitOff(i, at) => {
                let Some(i) = self.index(i).filter(|_| self.live.len() < MAX_LIVE) else { return };
                let id = self.id();
                let (s, m) = &mut self.live[i];
                let at = at % (m.len + 1);
                let back = s.split_off(at);
                let buf = m.buf;
                let bm = SModel {
                    id,
                    buf: m.buf,
                    off: m.off + at,
                    len: m.len - at,
                    headroom: 0,
                    data: m.data.split_off(at),
                };
                m.len = at;
                self.live.insert(i + 1, (back, bm));
                self.reshape(buf);
            }
            Op::ReleasePreviousOfLast(a) => {
                let am = &self.amodels[a % self.amodels.len()];
                let pos = |id: Option<u64>| self.live.iter().position(|(_, m)| Some(m.id) == id);
                if let (Some(i), Some(j)) = (pos(am.last), pos(am.prev))
                    && i != j
                {
                    self.release_previous(i, j);
                }
            }
            Op::ReleasePrevious(i, j) => {
                if let Some((i, j)) = self.pair(i, j) {
                    self.release_previous(i, j);
                }
            }
            Op::FreeEntirePrefix(i) => {
                let Some(i) = self.index(i) else { return };
                let sole = self.live[i].1.buf.is_some_and(|b| self.holders(b) == 1);
                let (s, m) = &mut self.live[i];
                assert_eq!(s.free_entire_prefix(), sole, "free_entire_prefix of {m:?}");
                if sole {
                    m.headroom = m.off;
                    self.tally.prefixes_freed += 1;
                }
            }
            Op::TryJoinNext(i) => self.apply(Op::TryJoin(i, i)),
            Op::TryJoin(i, j) => {
                let Some((i, j)) = self.pair(i, j) else { return };
                let (next, nm) = self.live.remove(j);
                let i = if j < i { i - 1 } else { i };
                let (s, m) = &mut self.live[i];
                let joins = m.buf.is_some() && m.buf == nm.buf && m.off + m.len == nm.off;
                match s.try_join(next) {
                    Ok(()) => {
                        assert!(joins, "try_join of {nm:?} onto {m:?} should fail");
                        m.len += nm.len;
                        m.data.extend_from_slice(&nm.data);
                        self.tally.joins += 1;
                        // `next` is dropped, after the buf was reshaped.
                        self.reshape(nm.buf);
                        self.dropped(&nm);
                    }
                    Err(next) => {
                        assert!(!joins, "try_join of {nm:?} onto {m:?} should succeed");
                        assert_eq!(
                            (next.len(), next.headroom()),
                            (nm.len, nm.headroom),
                            "handed back unchanged"
                        );
                        self.live.insert(j, (next, nm));
                    }
                }
            }
            Op::Coalesce(mask, max_len) => {
                let picked: Vec<usize> = (0..self.live.len()).filter(|&k| (mask >> k) & 1 == 1).collect();
                if picked.is_empty() {
                    return;
                }
                let mut taken: Vec<(Slice, SModel)> =
                    picked.iter().rev().map(|&k| self.live.remove(k)).collect();
                taken.reverse();
                let (mut slices, models): (Vec<Slice>, Vec<SModel>) = taken.into_iter().unzip();
                let mut expected: Vec<SModel> = Vec::new();
                // Bufs a merge reshapes; an absorbed slice is not dropped,
                // so its record is left as it was.
                let mut reshaped = Vec::new();
                for m in models {
                    if let Some(run) = expected.last_mut()
                        && run.buf.is_some()
                        && run.buf == m.buf
                        && run.off + run.len == m.off
                        && run.len.checked_add(m.len).is_some_and(|n| n <= max_len)
                    {
                        run.len += m.len;
                        run.data.extend_from_slice(&m.data);
                        self.tally.coalesce_merges += 1;
                        reshaped.push(m.buf);
                        continue;
                    }
                    expected.push(m);
                }
                coalesce(&mut slices, max_len);
                assert_eq!(slices.len(), expected.len(), "coalesce result count");
                reshaped.into_iter().for_each(|buf| self.reshape(buf));
                self.live.extend(slices.into_iter().zip(expected));
            }
            Op::Write(i, seed) => {
                let Some(i) = self.index(i) else { return };
                let (s, m) = &mut self.live[i];
                let bytes = gen_bytes(seed, m.len);
                s.copy_from_slice(&bytes);
                if let Some(b) = m.buf {
                    self.bufs.get_mut(&b).unwrap().bytes[m.off..m.off + m.len].copy_from_slice(&bytes);
                }
                m.data = bytes;
            }
            Op::DropSlice(i) => {
                let Some(i) = self.index(i) else { return };
                let (s, m) = self.live.remove(i);
                drop(s);
                self.dropped(&m);
                self.release_if_unheld(m.buf);
            }
            Op::Read(n) => self.read(n),
            Op::Close => {
                self.pool.close();
                self.closed = true;
                self.idle.iter_mut().for_each(Vec::clear);
                self.cached.clear();
                self.tally.closes += 1;
            }
        }
    }
}

/// Runs one case, checking the model after every step, then drops every
/// slice (in an order scrambled by the ops) and allocator and checks the
/// pool holds nothing.
pub fn run(reserves: (usize, usize), ops: &[Op]) -> Tally {
    let mut world = World::new(reserves);
    world.check(0);
    for (step, &op) in ops.iter().enumerate() {
        world.apply(op);
        world.check(step + 1);
    }
    let mut k = ops.len();
    while !world.live.is_empty() {
        k = k.wrapping_mul(31).wrapping_add(17);
        let (s, m) = world.live.remove(k % world.live.len());
        drop(s);
        world.dropped(&m);
        world.release_if_unheld(m.buf);
        world.check(usize::MAX);
    }
    while let Some(alloc) = world.allocs.pop() {
        let mut am = world.amodels.pop().unwrap();
        drop(alloc);
        // The current buf goes first, then the spent ones, oldest first.
        let cur = am.cur.take().map(|(b, ..)| b);
        world.release_if_unheld(cur);
        while let Some(b) = am.spent.pop_front() {
            world.release_if_unheld(Some(b));
        }
        world.check(usize::MAX);
    }
    drop(world.reader.take());
    let rm = std::mem::take(&mut world.rmodel);
    world.release_if_unheld(rm.cur);
    world.check(usize::MAX);
    let stats = world.pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0), "{stats:?}");
    assert!(world.bufs.is_empty());
    world.tally
}

/// The buf size and free list for a request of `need` bytes: the smallest
/// class `BS << k` that holds it, up to the largest pooled class; above it,
/// an unpooled multiple of `BS`.
fn size_class(need: usize) -> (usize, Option<usize>) {
    let multiple = need.div_ceil(BS).max(1);
    if multiple <= DEFAULT_MAX_POOLED_MULTIPLE {
        let class = multiple.next_power_of_two();
        (class * BS, Some(class.trailing_zeros() as usize))
    } else {
        (multiple * BS, None)
    }
}
