//! Arbitrary sequences of slice operations, checked step by step against the
//! plain model of `tests/model.rs` (the same code, included by path).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The tally's counters are read only by `tests/model.rs`, to show its random
// cases reach every outcome; here the fuzzer's coverage does that.
#[allow(dead_code)]
#[path = "../../tests/model/world.rs"]
mod world;

use world::{Fill, Op, run};

/// Most operations a case runs: longer inputs add little but time.
const MAX_OPS: usize = 300;

/// Reads the input a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn index(&mut self) -> usize {
        usize::from(self.byte() % 16)
    }

    /// A slice length, like the model test's: mostly short, sometimes over a
    /// buf, now and then far over.
    fn len(&mut self) -> usize {
        match self.byte() {
            b @ 0..=199 => usize::from(b % 40),
            b @ 200..=249 => 40 + usize::from(b - 200) * 2,
            _ => 1000 + usize::from(self.byte() % 100),
        }
    }

    fn fill(&mut self) -> Fill {
        match self.byte() % 3 {
            0 => Fill::Zeroed,
            1 => Fill::Overwrite(self.byte()),
            _ => Fill::CopyFrom(self.byte()),
        }
    }

    fn op(&mut self) -> Op {
        match self.byte() % 19 {
            0 => Op::Alloc(usize::from(self.byte() % 2), self.len(), self.fill()),
            1 => Op::FromVec(self.len() % 40, self.byte()),
            2 => Op::Empty,
            3 => Op::ExpandFront(self.index(), usize::from(self.byte() % 12)),
            4 => Op::Prepend(self.index(), usize::from(self.byte() % 12), self.byte()),
            5 => Op::TruncateFront(self.index(), usize::from(self.byte() % 24)),
            6 => Op::Truncate(self.index(), usize::from(self.byte() % 80)),
            7 => Op::SplitTo(self.index(), usize::from(self.byte())),
            8 => Op::SplitOff(self.index(), usize::from(self.byte())),
            9 => Op::ReleasePreviousOfLast(usize::from(self.byte() % 2)),
            10 => Op::ReleasePrevious(self.index(), self.index()),
            11 => Op::FreeEntirePrefix(self.index()),
            12 => Op::TryJoin(self.index(), self.index()),
            13 => Op::TryJoinNext(self.index()),
            14 => {
                let mask = u16::from_le_bytes([self.byte(), self.byte()]);
                let max = match self.byte() {
                    255 => usize::MAX,
                    b => usize::from(b % 150),
                };
                Op::Coalesce(mask, max)
            }
            15 => Op::Write(self.index(), self.byte()),
            16 => Op::DropSlice(self.index()),
            17 => Op::Read(self.len()),
            // Rarely: a closed pool refuses every allocation after it.
            _ if self.byte() < 16 => Op::Close,
            _ => Op::DropSlice(self.index()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let reserves = (usize::from(input.byte() % 9), usize::from(input.byte() % 9));
    let mut ops = Vec::new();
    while !input.0.is_empty() && ops.len() < MAX_OPS {
        ops.push(input.op());
    }
    run(reserves, &ops);
});
