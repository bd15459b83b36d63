//! The hostile personality's scripted attacks, one per run, by name.
//!
//! Most fire once, at the first read request at or past sector
//! [`TRIGGER_SECTOR`] (the guest has then connected, written, flushed and
//! read back its own data, so acknowledged data exists to be lost); the
//! xenbus ones act on the handshake. What each does is in [`Attack::describe`].

/// The sector whose first read arms the ring attacks.
pub const TRIGGER_SECTOR: u64 = 1024;

/// One attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// A response with an id never issued.
    UnknownId,
    /// The same response twice.
    DuplicateId,
    /// `rsp_prod` beyond the requests made.
    RspProdAhead,
    /// `rsp_prod` moved backwards.
    RspProdBackwards,
    /// A status outside `-2..=0`.
    StatusOutOfRange,
    /// The response names another operation.
    WrongOperation,
    /// A response rewritten after the frontend consumed it.
    RewriteAfterRead,
    /// The ring and a data page stay mapped after the frontend closed.
    GrantKeptAfterClose,
    /// Connected / Closing / Connected… while requests flow.
    StateFlap,
    /// `sector-size` 2^31.
    SectorSizeHuge,
    /// `sectors` 2^64-1.
    SectorsMax,
    /// `feature-max-indirect-segments` 2^32-1.
    MaxSegmentsAbsurd,
    /// The backend directory vanishes with requests outstanding.
    VanishMidRequest,
}

/// Every attack with its name, in the order the rig runs them.
pub const ALL: &[(&str, Attack)] = &[
    ("blk-unknown-id", Attack::UnknownId),
    ("blk-duplicate-id", Attack::DuplicateId),
    ("blk-rsp-prod-ahead", Attack::RspProdAhead),
    ("blk-rsp-prod-backwards", Attack::RspProdBackwards),
    ("blk-status-out-of-range", Attack::StatusOutOfRange),
    ("blk-wrong-operation", Attack::WrongOperation),
    ("blk-rewrite-after-read", Attack::RewriteAfterRead),
    ("blk-grant-kept-after-close", Attack::GrantKeptAfterClose),
    ("blk-state-flap", Attack::StateFlap),
    ("blk-sector-size-huge", Attack::SectorSizeHuge),
    ("blk-sectors-max", Attack::SectorsMax),
    ("blk-max-segments-absurd", Attack::MaxSegmentsAbsurd),
    ("blk-vanish-mid-request", Attack::VanishMidRequest),
];

impl Attack {
    /// The attack called `name`.
    pub fn by_name(name: &str) -> Option<Attack> {
        ALL.iter().find(|(n, _)| *n == name).map(|&(_, a)| a)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Whether it fires on the ring (at the trigger read) rather than
    /// in the handshake.
    pub fn on_ring(self) -> bool {
        !matches!(
            self,
            Attack::SectorSizeHuge | Attack::SectorsMax | Attack::MaxSegmentsAbsurd
        )
    }

    /// What it does, for the log.
    pub fn describe(self) -> &'static str {
        match self {
            Attack::UnknownId => "answers the trigger read with an id never issued",
            Attack::DuplicateId => "answers the trigger read twice",
            Attack::RspProdAhead => "publishes rsp_prod 7 beyond the responses written",
            Attack::RspProdBackwards => "moves rsp_prod 2 backwards instead of answering",
            Attack::StatusOutOfRange => "answers the trigger read with status 7",
            Attack::WrongOperation => "answers the trigger read as a write",
            Attack::RewriteAfterRead => "rewrites the trigger read's response once consumed",
            Attack::GrantKeptAfterClose => "keeps the ring and a data page mapped after the close",
            Attack::StateFlap => "flaps Closing/Connected at the trigger read",
            Attack::SectorSizeHuge => "offers sector-size 2147483648",
            Attack::SectorsMax => "offers sectors 18446744073709551615",
            Attack::MaxSegmentsAbsurd => "offers feature-max-indirect-segments 4294967295",
            Attack::VanishMidRequest => "removes its directory with the trigger read outstanding",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &(name, attack) in ALL {
            assert_eq!(Attack::by_name(name), Some(attack));
            assert_eq!(attack.name(), name);
        }
        assert_eq!(Attack::by_name("blk-nothing"), None);
        assert_eq!(ALL.len(), 13);
    }
}
