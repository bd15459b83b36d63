//! The memory target: what `xl mem-set` asks of the domain, turned into
//! a number of pages the balloon works towards, and the balloon's moves
//! towards it.
//!
//! The toolstack writes `memory/target` (KiB) under the domain's home
//! and, once at creation, `memory/static-max` (KiB, the most the domain
//! may have). Xen counts the domain's reservation in pages, and that
//! count can differ from the target by a few pages the toolstack does
//! not count (PVH: Xen's special pages outside our RAM): [`Baseline`]
//! measures that difference once, from the reservation at the first
//! reading plus whatever is ballooned out then, against static-max, and
//! [`Baseline::goal`] applies it to every target, so that the target
//! equal to static-max means "all of our memory".
//!
//! Whatever is in xenstore is untrusted text: [`parse_kib`] takes plain
//! decimal only and says what was wrong; a target above static-max is
//! clamped to it and reported. [`step`] moves the balloon a bounded
//! number of pages towards a goal through the [`Balloon`] trait (the
//! guest's is `kernel::mm::balloon`), so a caller can yield between
//! steps, and says when it is done and what it could not do: frames in
//! use cannot be given, and only frames given earlier can be taken back.
//! No I/O here: host-tested with a simulated balloon.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// The target, relative to the domain's home.
pub const TARGET_PATH: &str = "memory/target";
/// The static maximum, relative to the domain's home.
pub const STATIC_MAX_PATH: &str = "memory/static-max";

/// KiB per page.
const KIB_PER_PAGE: u64 = 4;

/// Most characters of a bad value quoted back.
const QUOTE_LIMIT: usize = 32;

/// Why a value read from xenstore is not a usable size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// The node does not exist.
    Missing,
    /// It is empty (or only blanks).
    Empty,
    /// Not a plain decimal number; the value, cut and made printable.
    NotANumber(String),
    /// More KiB than a `u64` of bytes can hold.
    TooLarge,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Missing => f.write_str("missing"),
            BadValue::Empty => f.write_str("empty"),
            BadValue::NotANumber(text) => write!(f, "not a number: {text:?}"),
            BadValue::TooLarge => f.write_str("too large"),
        }
    }
}

/// Parses a size in KiB: decimal digits, optionally surrounded by
/// blanks or followed by NULs (as some writers leave them).
pub fn parse_kib(raw: &[u8]) -> Result<u64, BadValue> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = raw[..end].trim_ascii();
    if text.is_empty() {
        return Err(BadValue::Empty);
    }
    if !text.iter().all(u8::is_ascii_digit) {
        let shown: String = text
            .iter()
            .take(QUOTE_LIMIT)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '?'
                }
            })
            .collect();
        return Err(BadValue::NotANumber(shown));
    }
    let kib = text.iter().try_fold(0u64, |acc, &digit| {
        acc.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    });
    match kib {
        Some(kib) if kib <= u64::MAX / 1024 => Ok(kib),
        _ => Err(BadValue::TooLarge),
    }
}

/// The relation between the toolstack's KiB and Xen's page count,
/// measured once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// static-max in pages (our reservation at the first reading, if
    /// the toolstack wrote none).
    pub static_max_pages: u64,
    /// Pages Xen counts beyond the toolstack's figure (may be negative).
    pub slack: i64,
}

impl Baseline {
    /// From static-max (KiB, if readable), the reservation now and the
    /// pages ballooned out now.
    pub fn new(static_max_kib: Option<u64>, reservation: u64, ballooned_out: u64) -> Baseline {
        let full = reservation.saturating_add(ballooned_out);
        let static_max_pages = static_max_kib.map_or(full, |kib| kib / KIB_PER_PAGE);
        let slack = i64::try_from(full)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(static_max_pages).unwrap_or(i64::MAX));
        Baseline {
            static_max_pages,
            slack,
        }
    }

    /// The reservation (Xen's pages) to aim for at `target_kib`.
    pub fn goal(&self, target_kib: u64) -> Goal {
        let pages = target_kib / KIB_PER_PAGE;
        let clamped = pages > self.static_max_pages;
        let pages = pages.min(self.static_max_pages);
        let reservation = if self.slack >= 0 {
            pages.saturating_add(self.slack.unsigned_abs())
        } else {
            pages.saturating_sub(self.slack.unsigned_abs())
        };
        Goal {
            target_kib,
            target_pages: pages,
            reservation,
            clamped,
        }
    }

    /// The target pages a reservation stands for (the inverse of
    /// [`goal`](Self::goal)).
    pub fn target_pages_of(&self, reservation: u64) -> u64 {
        if self.slack >= 0 {
            reservation.saturating_sub(self.slack.unsigned_abs())
        } else {
            reservation.saturating_add(self.slack.unsigned_abs())
        }
    }
}

/// What the balloon works towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Goal {
    /// The target as written (KiB).
    pub target_kib: u64,
    /// The target in pages, at most static-max.
    pub target_pages: u64,
    /// Xen's reservation that matches it.
    pub reservation: u64,
    /// The target was above static-max and was cut to it.
    pub clamped: bool,
}

/// The balloon as [`step`] sees it.
pub trait Balloon {
    /// Why an operation failed.
    type Error: fmt::Display;
    /// Xen's count of our pages now.
    fn reservation(&self) -> Result<u64, Self::Error>;
    /// Pages given to Xen that we may take back.
    fn ballooned_out(&self) -> u64;
    /// Frames free for allocation.
    fn free_frames(&self) -> u64;
    /// Xen's maximum for our reservation (`xl mem-set` lowers it with
    /// the target), if it can be read: said when pages cannot be taken.
    fn maximum(&self) -> Option<u64>;
    /// Gives up to `pages` free frames to Xen; how many went.
    fn release(&mut self, pages: u64) -> Result<u64, Self::Error>;
    /// Takes back up to `pages` of the frames given; how many came.
    fn reclaim(&mut self, pages: u64) -> Result<u64, Self::Error>;
}

/// What kept the balloon from its goal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortfall {
    /// Pages that could not be given: the frames are in use (or are the
    /// reserve kept free for the kernel and the app).
    InUse(u64),
    /// Pages that could not be taken: we never gave them (the target is
    /// above what the domain started with).
    NeverGiven(u64),
    /// Pages Xen would not give or take, and why.
    Refused(u64, String),
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::InUse(pages) => write!(f, "could not give {pages} pages: frames in use"),
            Shortfall::NeverGiven(pages) => {
                write!(f, "could not take {pages} pages: not ballooned out")
            }
            Shortfall::Refused(pages, why) => write!(f, "Xen refused {pages} pages: {why}"),
        }
    }
}

/// One [`step`]'s result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Pages moved (given if `out`); call again.
    Moved {
        /// How many.
        pages: u64,
        /// Given to Xen (else taken back).
        out: bool,
    },
    /// Nothing more to do: the reservation now, and what could not be
    /// done, if anything.
    Done {
        /// Xen's reservation.
        reservation: u64,
        /// Why the goal was not reached.
        shortfall: Option<Shortfall>,
    },
}

/// Moves at most `max_pages` towards `goal`, keeping `reserve` frames
/// free (the balloon never takes the last frames the kernel and the app
/// need).
pub fn step<B: Balloon>(balloon: &mut B, goal: &Goal, max_pages: u64, reserve: u64) -> Progress {
    let reservation = match balloon.reservation() {
        Ok(pages) => pages,
        Err(why) => {
            return Progress::Done {
                reservation: 0,
                shortfall: Some(Shortfall::Refused(0, format!("current_reservation: {why}"))),
            }
        }
    };
    let done = |shortfall| Progress::Done {
        reservation,
        shortfall,
    };
    if reservation > goal.reservation {
        let excess = reservation - goal.reservation;
        let available = balloon.free_frames().saturating_sub(reserve);
        let want = excess.min(available).min(max_pages);
        if want == 0 {
            return done(Some(Shortfall::InUse(excess)));
        }
        match balloon.release(want) {
            Ok(0) => done(Some(Shortfall::InUse(excess))),
            Ok(pages) => Progress::Moved { pages, out: true },
            Err(why) => done(Some(Shortfall::Refused(excess, format!("{why}")))),
        }
    } else if reservation < goal.reservation {
        let missing = goal.reservation - reservation;
        let want = missing.min(balloon.ballooned_out()).min(max_pages);
        if want == 0 {
            return done(Some(Shortfall::NeverGiven(missing)));
        }
        let result = balloon.reclaim(want);
        let limit = balloon
            .maximum()
            .map(|max| format!(" (the domain's maximum is {max} pages)"))
            .unwrap_or_default();
        match result {
            Ok(0) => done(Some(Shortfall::Refused(
                missing,
                format!("no page came back{limit}"),
            ))),
            Ok(pages) => Progress::Moved { pages, out: false },
            Err(why) => done(Some(Shortfall::Refused(missing, format!("{why}{limit}")))),
        }
    } else {
        done(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_garbage_is_named() {
        assert_eq!(parse_kib(b"16384"), Ok(16384));
        assert_eq!(parse_kib(b" 32768\n"), Ok(32768));
        assert_eq!(parse_kib(b"32768\0\0"), Ok(32768));
        assert_eq!(parse_kib(b"0"), Ok(0));
        assert_eq!(parse_kib(b""), Err(BadValue::Empty));
        assert_eq!(parse_kib(b"  "), Err(BadValue::Empty));
        assert_eq!(parse_kib(b"lots"), Err(BadValue::NotANumber("lots".into())));
        assert_eq!(parse_kib(b"-5"), Err(BadValue::NotANumber("-5".into())));
        assert_eq!(
            parse_kib(b"12\x01k"),
            Err(BadValue::NotANumber("12?k".into()))
        );
        assert_eq!(
            parse_kib(b"99999999999999999999999"),
            Err(BadValue::TooLarge)
        );
        assert_eq!(parse_kib(b"18014398509481984"), Err(BadValue::TooLarge));
        let long = [b'x'; 200];
        match parse_kib(&long) {
            Err(BadValue::NotANumber(text)) => assert_eq!(text.len(), QUOTE_LIMIT),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn goals_keep_xen_s_extra_pages_and_stop_at_static_max() {
        // PV: 32 MiB, Xen counts exactly our pages.
        let pv = Baseline::new(Some(32768), 8192, 0);
        assert_eq!(pv.slack, 0);
        assert_eq!(pv.goal(16384).reservation, 4096);
        // PVH: Xen counts a few special pages beyond the RAM.
        let pvh = Baseline::new(Some(32768), 8197, 0);
        assert_eq!(pvh.slack, 5);
        let half = pvh.goal(16384);
        assert_eq!(
            (half.target_pages, half.reservation, half.clamped),
            (4096, 4101, false)
        );
        assert_eq!(pvh.target_pages_of(4101), 4096);
        // Measured while pages were out: the same baseline.
        assert_eq!(Baseline::new(Some(32768), 8097, 100), pvh);
        // Fewer pages than static-max (memory < maxmem).
        let small = Baseline::new(Some(32768), 8000, 0);
        assert_eq!(small.slack, -192);
        assert_eq!(small.goal(32768).reservation, 8000);
        assert_eq!(small.target_pages_of(8000), 8192);
        // Above static-max: clamped.
        let above = pv.goal(1 << 40);
        assert!(above.clamped);
        assert_eq!(above.reservation, 8192);
        // No static-max: what we had is the maximum.
        assert_eq!(Baseline::new(None, 8192, 0).goal(65536).reservation, 8192);
        assert_eq!(pv.goal(0).reservation, 0);
    }

    /// A balloon over `total` frames with `used` in use.
    struct Sim {
        total: u64,
        used: u64,
        out: u64,
        refuse: bool,
    }

    impl Balloon for Sim {
        type Error = &'static str;
        fn reservation(&self) -> Result<u64, &'static str> {
            Ok(self.total - self.out)
        }
        fn ballooned_out(&self) -> u64 {
            self.out
        }
        fn free_frames(&self) -> u64 {
            self.total - self.used - self.out
        }
        fn maximum(&self) -> Option<u64> {
            self.refuse.then_some(self.total - self.out)
        }
        fn release(&mut self, pages: u64) -> Result<u64, &'static str> {
            if self.refuse {
                return Err("EPERM");
            }
            let pages = pages.min(self.free_frames());
            self.out += pages;
            Ok(pages)
        }
        fn reclaim(&mut self, pages: u64) -> Result<u64, &'static str> {
            if self.refuse {
                return Err("ENOMEM");
            }
            let pages = pages.min(self.out);
            self.out -= pages;
            Ok(pages)
        }
    }

    fn run(sim: &mut Sim, goal: &Goal, reserve: u64) -> (u64, Progress) {
        let mut steps = 0;
        loop {
            match step(sim, goal, 100, reserve) {
                Progress::Moved { .. } => steps += 1,
                done => return (steps, done),
            }
            assert!(steps < 1000, "no end");
        }
    }

    #[test]
    fn down_to_half_and_back_in_bounded_steps() {
        let baseline = Baseline::new(Some(32768), 8192, 0);
        let mut sim = Sim {
            total: 8192,
            used: 1000,
            out: 0,
            refuse: false,
        };
        let (steps, done) = run(&mut sim, &baseline.goal(16384), 64);
        assert_eq!(steps, 41);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 4096,
                shortfall: None
            }
        );
        let (_, done) = run(&mut sim, &baseline.goal(32768), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 8192,
                shortfall: None
            }
        );
        assert_eq!(sim.out, 0);
    }

    #[test]
    fn what_cannot_be_done_is_reported() {
        let baseline = Baseline::new(Some(32768), 8192, 0);
        let mut sim = Sim {
            total: 8192,
            used: 6000,
            out: 0,
            refuse: false,
        };
        // Down to 4 MiB: 6000 frames in use and 64 kept free.
        let (_, done) = run(&mut sim, &baseline.goal(4096), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 6064,
                shortfall: Some(Shortfall::InUse(6064 - 1024))
            }
        );
        // Above static-max: clamped, all given back, nothing more.
        let (_, done) = run(&mut sim, &baseline.goal(1 << 30), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 8192,
                shortfall: None
            }
        );
        // A domain started below static-max cannot grow past its start.
        let grown = Baseline::new(Some(65536), 8192, 0);
        let (_, done) = run(&mut sim, &grown.goal(65536), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 8192,
                shortfall: None
            }
        );
        let baseline = Baseline {
            static_max_pages: 16384,
            slack: 0,
        };
        let (_, done) = run(&mut sim, &baseline.goal(65536), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 8192,
                shortfall: Some(Shortfall::NeverGiven(8192))
            }
        );
        sim.refuse = true;
        let (_, done) = run(&mut sim, &baseline.goal(16384), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 8192,
                shortfall: Some(Shortfall::Refused(4096, "EPERM".into()))
            }
        );
        // Taking back refused (xl mem-set lowered the maximum): says the
        // maximum.
        sim.refuse = false;
        run(&mut sim, &baseline.goal(16384), 64);
        sim.refuse = true;
        let (_, done) = run(&mut sim, &baseline.goal(32768), 64);
        assert_eq!(
            done,
            Progress::Done {
                reservation: 6064,
                shortfall: Some(Shortfall::Refused(
                    2128,
                    "ENOMEM (the domain's maximum is 6064 pages)".into()
                ))
            }
        );
    }
}
