//! Chain builders and readers shared by `tests/chain.rs` and
//! `tests/chain_async.rs`, each of which includes this file with `#[path]`.

use refbuf::{Chain, Pool};

/// A pool of 64-byte bufs.
pub fn pool64() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// The chain's bytes, in order, read through its parts.
pub fn contents(chain: &Chain) -> Vec<u8> {
    chain.iter().flat_map(|part| part.iter().copied()).collect()
}

/// Lengths of the chain's parts, in order.
pub fn part_lens(chain: &Chain) -> Vec<usize> {
    chain.iter().map(|part| part.len()).collect()
}

/// A chain of parts that never touch (reserve 1 keeps them apart), with the
/// given lengths and the byte pattern `i as u8` over the whole chain.
pub fn chain_of(pool: &Pool, lens: &[usize]) -> (Chain, Vec<u8>) {
    let mut alloc = pool.allocator(1);
    let mut chain = Chain::new();
    let mut all = Vec::new();
    for &len in lens {
        let part: Vec<u8> = (all.len()..all.len() + len).map(|i| i as u8).collect();
        chain.push_back(alloc.copy_from_slice(&part));
        all.extend_from_slice(&part);
    }
    (chain, all)
}
