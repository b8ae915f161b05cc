//! Idle memory: the pool's clock, the idle timeout, and trimming.
//!
//! The shared lists are kept in age order, oldest at one end, so the idle
//! timeout looks at one timestamp per size class when nothing is due, and
//! the caches only once one of their bufs can be due (see `caches.rs`). With
//! no timeout the clock is never read. There is no background thread: the
//! timeout is applied as bufs are leased and returned, and `trim` frees
//! every idle buf on demand.

use crate::free_list::Doomed;
use crate::sync::lock;

use super::PoolShared;
use super::state::State;

impl PoolShared {
    /// Nanoseconds since the pool was built.
    pub(super) fn clock(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// [`PoolShared::clock`], for idle timestamps; 0 when the pool has no
    /// idle timeout, so that it never reads the clock.
    pub(super) fn idle_clock(&self) -> u64 {
        match self.idle_timeout {
            Some(_) => self.clock(),
            None => 0,
        }
    }

    /// Moves bufs idle longer than the idle timeout into `doomed`. Looks at
    /// the oldest buf of each class only, and at the caches only once one of
    /// their bufs can be due, so it costs a few comparisons when nothing is.
    pub(super) fn expire(&self, state: &mut State, now: u64, doomed: &mut Doomed) {
        let Some(timeout) = self.idle_timeout else { return };
        for class in 0..self.classes {
            while state.oldest_idle_since(class).is_some_and(|since| now.saturating_sub(since) > timeout) {
                state.trim_oldest(class, doomed);
            }
        }
        self.sweep_caches_if_due(state, now, timeout, doomed);
    }

    /// Moves every idle buf, cached ones included, off the pool into
    /// `doomed`, and returns how many and their data bytes.
    pub(super) fn doom_all_idle(&self, state: &mut State, doomed: &mut Doomed) -> (usize, usize) {
        let cached = self.drain_caches(state, false, doomed);
        let (bufs, bytes) = state.doom_all_idle(doomed);
        (bufs + cached, bytes + cached * self.buf_size)
    }

    /// Frees every idle buf; returns the data bytes freed.
    pub(super) fn trim(&self) -> usize {
        let mut doomed = Doomed::new();
        let mut state = lock(&self.state);
        let (bufs, bytes) = self.doom_all_idle(&mut state, &mut doomed);
        state.count_trimmed(bufs);
        // A waiter could have freed these bufs itself, so it is still
        // waiting for a release; waking it only makes it check again. Done
        // anyway, so that every path that lowers the bytes held wakes.
        self.finish(state, doomed);
        bytes
    }
}
