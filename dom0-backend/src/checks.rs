//! The by-the-book checks of the frontend's side of blkif: each returns
//! the violations it found as one line of text each (the backend prints
//! them as `backend: violation: …` and counts them).

use std::collections::HashSet;

use crate::blkif::{
    Request, Segment, MAX_SEGMENTS, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE,
    OP_WRITE_BARRIER,
};

/// What the backend offered, which bounds what the frontend may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The disk's size in 512-byte sectors.
    pub sectors: u64,
    /// `feature-flush-cache`.
    pub flush: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-max-indirect-segments` (0: none offered).
    pub indirect_segments: u32,
}

/// Checks a request's operation, segment count and sector range (the
/// segments of an indirect request are checked with
/// [`check_segments`] once its pages are read). `outstanding` holds the
/// ids issued and not yet answered; the id is added to it.
pub fn check_request(
    request: &Request,
    offer: &Offer,
    outstanding: &mut HashSet<u64>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let id = request.id;
    if !outstanding.insert(id) {
        violations.push(format!("request id {id:#x} reused while still outstanding"));
    }
    match request.operation {
        OP_READ | OP_WRITE => {
            let n = request.nr_segments as usize;
            if n == 0 || n > MAX_SEGMENTS {
                violations.push(format!(
                    "request {id:#x}: {n} segments (1..={MAX_SEGMENTS} allowed)"
                ));
            } else {
                violations.extend(check_segments(request, &request.segments, offer));
            }
        }
        OP_INDIRECT => {
            let n = u32::from(request.nr_segments);
            if offer.indirect_segments == 0 {
                violations.push(format!("request {id:#x}: indirect request, none offered"));
            } else if n == 0 || n > offer.indirect_segments {
                violations.push(format!(
                    "request {id:#x}: indirect with {n} segments (1..={} offered)",
                    offer.indirect_segments
                ));
            }
            if !matches!(request.indirect_op, OP_READ | OP_WRITE) {
                violations.push(format!(
                    "request {id:#x}: indirect operation {}",
                    request.indirect_op
                ));
            }
        }
        OP_FLUSH_DISKCACHE if offer.flush => {}
        OP_WRITE_BARRIER if offer.barrier => {}
        other => violations.push(format!(
            "request {id:#x}: operation {other} not valid here (flush offered: {}, barrier offered: {})",
            offer.flush, offer.barrier
        )),
    }
    violations
}

/// Sectors the segments cover, and violations of their bounds: each
/// `first_sect <= last_sect <= 7`, the range inside the disk.
pub fn check_segments(request: &Request, segments: &[Segment], offer: &Offer) -> Vec<String> {
    let mut violations = Vec::new();
    let id = request.id;
    let mut total = 0u64;
    for (i, segment) in segments.iter().enumerate() {
        if segment.first_sect > segment.last_sect || segment.last_sect > 7 {
            violations.push(format!(
                "request {id:#x} segment {i}: sectors {}..={} not within one page",
                segment.first_sect, segment.last_sect
            ));
        } else {
            total += u64::from(segment.last_sect - segment.first_sect) + 1;
        }
    }
    match request.sector.checked_add(total) {
        Some(end) if end <= offer.sectors => {}
        _ => violations.push(format!(
            "request {id:#x}: sectors {}+{total} past the disk's end ({})",
            request.sector, offer.sectors
        )),
    }
    violations
}

/// The xenbus states (`XenbusState*`).
pub mod state {
    /// `Initialising`.
    pub const INITIALISING: u32 = 1;
    /// `InitWait`.
    pub const INIT_WAIT: u32 = 2;
    /// `Initialised`.
    pub const INITIALISED: u32 = 3;
    /// `Connected`.
    pub const CONNECTED: u32 = 4;
    /// `Closing`.
    pub const CLOSING: u32 = 5;
    /// `Closed`.
    pub const CLOSED: u32 = 6;
}

/// Whether the frontend may go from `old` to `new` (its states only move
/// forward: Initialising → Initialised → Connected → Closing → Closed,
/// closing allowed at any point, and Closed back to Initialising for a
/// reconnection).
pub fn check_front_transition(old: u32, new: u32) -> Option<String> {
    use state::*;
    let ok = old == new
        || matches!(
            (old, new),
            (_, CLOSING | CLOSED)
                | (INITIALISING, INITIALISED | CONNECTED)
                | (INITIALISED, CONNECTED)
                | (CLOSED, INITIALISING)
        );
    (!ok).then(|| format!("xenbus: frontend state went {old} -> {new}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blkif::OP_DISCARD;

    const OFFER: Offer = Offer {
        sectors: 8192,
        flush: true,
        barrier: false,
        indirect_segments: 0,
    };

    fn read(id: u64, sector: u64, segments: Vec<Segment>) -> Request {
        Request {
            operation: OP_READ,
            indirect_op: 0,
            nr_segments: segments.len() as u16,
            handle: 0,
            id,
            sector,
            segments,
            indirect_grefs: Vec::new(),
        }
    }

    fn page(gref: u32) -> Segment {
        Segment {
            gref,
            first_sect: 0,
            last_sect: 7,
        }
    }

    #[test]
    fn a_good_request_passes() {
        let mut outstanding = HashSet::new();
        let request = read(1, 8184, vec![page(5)]);
        assert!(check_request(&request, &OFFER, &mut outstanding).is_empty());
        assert!(outstanding.contains(&1));
    }

    #[test]
    fn each_violation_is_one_line() {
        let mut outstanding = HashSet::new();
        assert!(check_request(&read(1, 0, vec![page(5)]), &OFFER, &mut outstanding).is_empty());
        let reused = check_request(&read(1, 0, vec![page(6)]), &OFFER, &mut outstanding);
        assert_eq!(
            reused,
            vec!["request id 0x1 reused while still outstanding"]
        );
        let past = check_request(&read(2, 8185, vec![page(5)]), &OFFER, &mut outstanding);
        assert_eq!(
            past,
            vec!["request 0x2: sectors 8185+8 past the disk's end (8192)"]
        );
        let overflow = check_request(
            &read(3, u64::MAX - 2, vec![page(5)]),
            &OFFER,
            &mut outstanding,
        );
        assert_eq!(overflow.len(), 1, "{overflow:?}");
        let bad_sect = Segment {
            gref: 1,
            first_sect: 5,
            last_sect: 8,
        };
        let bad = check_request(&read(4, 0, vec![bad_sect]), &OFFER, &mut outstanding);
        assert_eq!(
            bad,
            vec!["request 0x4 segment 0: sectors 5..=8 not within one page"]
        );
        let none = check_request(&read(5, 0, vec![]), &OFFER, &mut outstanding);
        assert_eq!(none, vec!["request 0x5: 0 segments (1..=11 allowed)"]);
        let mut discard = read(6, 0, vec![page(1)]);
        discard.operation = OP_DISCARD;
        assert_eq!(check_request(&discard, &OFFER, &mut outstanding).len(), 1);
        let mut barrier = read(7, 0, vec![]);
        barrier.operation = OP_WRITE_BARRIER;
        assert_eq!(check_request(&barrier, &OFFER, &mut outstanding).len(), 1);
        let mut flush = read(8, 0, vec![]);
        flush.operation = OP_FLUSH_DISKCACHE;
        assert!(check_request(&flush, &OFFER, &mut outstanding).is_empty());
        let mut indirect = read(9, 0, vec![]);
        indirect.operation = OP_INDIRECT;
        indirect.nr_segments = 32;
        assert_eq!(check_request(&indirect, &OFFER, &mut outstanding).len(), 1);
    }

    #[test]
    fn frontend_states_only_move_forward() {
        use state::*;
        assert_eq!(check_front_transition(INITIALISING, INITIALISED), None);
        assert_eq!(check_front_transition(INITIALISED, CONNECTED), None);
        assert_eq!(check_front_transition(CONNECTED, CLOSING), None);
        assert_eq!(check_front_transition(CLOSING, CLOSED), None);
        assert_eq!(
            check_front_transition(CONNECTED, INITIALISED).as_deref(),
            Some("xenbus: frontend state went 4 -> 3")
        );
        assert!(check_front_transition(INITIALISING, INIT_WAIT).is_some());
    }
}
