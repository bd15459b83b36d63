//! Helpers the fuzz targets share: polling a future with no executor,
//! cutting a byte stream into fuzzer-chosen pieces, and names drawn from
//! small tables (so the fuzzer spends its time on what the other domain
//! sends, not on guessing our own request paths).
//!
//! Each target under `fuzz_targets/` drives the real, host-buildable
//! code of `kernel`, `drivers-pv` and `libos` with input an untrusted
//! domain could produce, and checks what must hold whatever that input
//! (no panic, no arithmetic overflow: the fuzz profile keeps overflow
//! checks on, plus each target's own invariants). Nothing here is part
//! of the product.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

/// Polls `future` until it is ready, at most `limit` times; `None` if it
/// was still pending (a target's simulated peer answers at once, so a
/// future that stays pending has nothing left to wait for).
pub fn poll_bounded<F: Future>(future: F, limit: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..limit {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
    }
    None
}

/// Cuts `data` into pieces whose lengths come from `sizes` (cycled; a
/// zero size is taken as one byte), so a decoder sees the stream in the
/// arbitrary pieces a ring delivers it in.
pub fn pieces<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = data;
    let mut at = 0usize;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = match sizes {
            [] => rest.len(),
            _ => usize::from(sizes[at % sizes.len()]).max(1),
        };
        at += 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// Picks one of `table` by a fuzzer-chosen index.
pub fn pick<T: Copy>(table: &[T], index: u8) -> T {
    table[usize::from(index) % table.len()]
}

/// Xenstore paths a frontend really uses (relative and absolute).
pub const PATHS: [&str; 8] = [
    "device/vif/0/state",
    "device/vbd/51712/backend",
    "/local/domain/0/backend/vif/1/0/state",
    "/local/domain/0/backend/vbd/1/51712/sectors",
    "control/shutdown",
    "memory/target",
    "domid",
    "name",
];

/// Watch tokens.
pub const TOKENS: [&str; 4] = ["0", "state", "control", "backend-7"];
