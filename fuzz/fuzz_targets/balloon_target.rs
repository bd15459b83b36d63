//! The memory target the toolstack writes (`memory/target`,
//! `memory/static-max`, KiB as text) and the balloon's moves towards it,
//! over a simulated balloon that can refuse or return less than asked.
//!
//! What must hold: nothing panics; a value that parses is decimal KiB
//! that fits in bytes; the goal never exceeds static-max; each step
//! moves at most the step limit, and moves towards the goal.
#![no_main]

use arbitrary::Arbitrary;
use drivers_pv::balloon_target::{parse_kib, step, Balloon, Baseline, Progress};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    target: Vec<u8>,
    static_max: Option<Vec<u8>>,
    reservation: u64,
    ballooned_out: u64,
    free_frames: u64,
    maximum: Option<u64>,
    max_pages: u64,
    reserve: u64,
    /// How the simulated Xen answers each call (see `FakeBalloon`).
    answers: Vec<u8>,
}

/// A balloon whose answers come from the fuzzer: each call gives all,
/// part or none of what was asked, or fails.
struct FakeBalloon {
    reservation: u64,
    ballooned_out: u64,
    free_frames: u64,
    maximum: Option<u64>,
    answers: Vec<u8>,
}

impl FakeBalloon {
    fn answer(&mut self, asked: u64) -> Result<u64, &'static str> {
        match self.answers.pop().unwrap_or(0) % 4 {
            0 => Ok(asked),
            1 => Ok(asked / 2),
            2 => Ok(0),
            _ => Err("refused"),
        }
    }
}

impl Balloon for FakeBalloon {
    type Error = &'static str;
    fn reservation(&self) -> Result<u64, Self::Error> {
        Ok(self.reservation)
    }
    fn ballooned_out(&self) -> u64 {
        self.ballooned_out
    }
    fn free_frames(&self) -> u64 {
        self.free_frames
    }
    fn maximum(&self) -> Option<u64> {
        self.maximum
    }
    fn release(&mut self, pages: u64) -> Result<u64, Self::Error> {
        assert!(pages <= self.free_frames, "asked to give frames in use");
        let given = self.answer(pages)?;
        self.reservation -= given;
        self.free_frames -= given;
        self.ballooned_out = self.ballooned_out.saturating_add(given);
        Ok(given)
    }
    fn reclaim(&mut self, pages: u64) -> Result<u64, Self::Error> {
        assert!(pages <= self.ballooned_out, "asked for frames never given");
        let taken = self.answer(pages)?;
        self.reservation = self.reservation.saturating_add(taken);
        self.free_frames = self.free_frames.saturating_add(taken);
        self.ballooned_out -= taken;
        Ok(taken)
    }
}

fuzz_target!(|input: Input| {
    let Ok(target) = parse_kib(&input.target) else {
        return;
    };
    assert!(target <= u64::MAX / 1024);
    let static_max = input
        .static_max
        .as_deref()
        .and_then(|raw| parse_kib(raw).ok());
    let baseline = Baseline::new(static_max, input.reservation, input.ballooned_out);
    let goal = baseline.goal(target);
    assert!(goal.target_pages <= baseline.static_max_pages);
    let _ = baseline.target_pages_of(input.reservation);

    let mut balloon = FakeBalloon {
        reservation: input.reservation,
        ballooned_out: input.ballooned_out,
        free_frames: input.free_frames.min(input.reservation),
        maximum: input.maximum,
        answers: input.answers,
    };
    let max_pages = input.max_pages % 4096 + 1;
    for _ in 0..64 {
        let before = balloon.reservation;
        match step(&mut balloon, &goal, max_pages, input.reserve) {
            Progress::Moved { pages, out } => {
                assert!(pages <= max_pages);
                if out {
                    assert!(before > goal.reservation && balloon.reservation < before);
                } else {
                    assert!(before < goal.reservation && balloon.reservation > before);
                }
            }
            Progress::Done { shortfall, .. } => {
                if let Some(shortfall) = shortfall {
                    let _ = format!("{shortfall}");
                }
                break;
            }
        }
    }
});
