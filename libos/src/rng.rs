//! Randomness through `rand_core` (0.10: the `Rng`/`TryRng` traits).
//!
//! Two generators:
//!
//! - [`HwRng`]: the CPU's RDRAND, one instruction per word, through the
//!   `x86_64` crate's safe wrapper. It is a [`TryCryptoRng`]: Intel and AMD
//!   document RDRAND as the output of a conditioned, reseeded DRBG, and
//!   RDRAND can fail (an empty entropy buffer), so each draw is a
//!   `Result`; we retry a few times before giving up. It exists only when
//!   CPUID says the CPU has RDRAND (the rig's domUs do).
//! - [`Rng`]: xoshiro256** (Blackman and Vigna), fast and **not**
//!   cryptographic, for things that only need to be unpredictable to a
//!   casual observer: smoltcp's random seed (TCP initial sequence numbers,
//!   DHCP transaction ids) and ephemeral ports. [`Rng::new`] seeds it from
//!   RDRAND when there is one; without RDRAND it falls back to a mix of
//!   Xen's system time, the wall clock and the caller's salt (e.g. the MAC
//!   address), which is **guessable** by anyone who knows roughly when the
//!   guest booted. [`Rng::seed_source`] says which one was used.
//!
//! The generator itself is pure logic, tested on the host.

use core::convert::Infallible;
use core::fmt;

use rand_core::{TryCryptoRng, TryRng};

/// Where a generator's seed came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedSource {
    /// The CPU's RDRAND.
    RdRand,
    /// Time and a salt: unpredictable only to someone who cannot guess
    /// when the guest booted.
    Time,
    /// A seed the caller chose ([`Rng::from_seed`]).
    Fixed,
}

impl fmt::Display for SeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SeedSource::RdRand => "rdrand",
            SeedSource::Time => "time (guessable)",
            SeedSource::Fixed => "fixed",
        })
    }
}

/// RDRAND kept failing (Intel advises 10 retries before reporting that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdRandFailed;

impl fmt::Display for RdRandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RDRAND returned no value after 10 tries")
    }
}

impl core::error::Error for RdRandFailed {}

/// How often to retry a failed RDRAND (Intel's DRNG guide says 10).
const RDRAND_TRIES: usize = 10;

/// The CPU's random number generator (RDRAND).
#[derive(Clone, Copy, Debug)]
pub struct HwRng(x86_64::instructions::random::RdRand);

impl HwRng {
    /// `Some` if CPUID says the CPU has RDRAND.
    pub fn new() -> Option<HwRng> {
        x86_64::instructions::random::RdRand::new().map(HwRng)
    }

    fn word(&self) -> Result<u64, RdRandFailed> {
        (0..RDRAND_TRIES)
            .find_map(|_| self.0.get_u64())
            .ok_or(RdRandFailed)
    }
}

impl TryRng for HwRng {
    type Error = RdRandFailed;

    fn try_next_u32(&mut self) -> Result<u32, RdRandFailed> {
        self.word().map(|w| w as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, RdRandFailed> {
        self.word()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RdRandFailed> {
        for chunk in dst.chunks_mut(8) {
            let word = self.word()?.to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

// RDRAND is the CPU's DRBG output, not a software generator we seeded.
impl TryCryptoRng for HwRng {}

/// SplitMix64: spreads one word into many well-mixed ones (used to turn
/// a seed into xoshiro's state, which must not be all zero).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fast, non-cryptographic generator (xoshiro256**).
#[derive(Clone, Debug)]
pub struct Rng {
    state: [u64; 4],
    source: SeedSource,
}

impl Rng {
    /// A generator with exactly this state (an all-zero state, which
    /// xoshiro cannot leave, is replaced by a fixed non-zero one).
    pub fn from_state(state: [u64; 4]) -> Rng {
        let state = if state == [0; 4] {
            Rng::from_seed(0).state
        } else {
            state
        };
        Rng {
            state,
            source: SeedSource::Fixed,
        }
    }

    /// A generator whose state is spread from one word by SplitMix64.
    pub fn from_seed(seed: u64) -> Rng {
        let mut mix = seed;
        let state = [
            splitmix64(&mut mix),
            splitmix64(&mut mix),
            splitmix64(&mut mix),
            splitmix64(&mut mix),
        ];
        Rng {
            state,
            source: SeedSource::Fixed,
        }
    }

    /// A generator seeded from `entropy` words (mixed, so weak words do
    /// not make a weak state), recording where they came from.
    pub fn from_entropy(entropy: &[u64], source: SeedSource) -> Rng {
        let mut mix = 0u64;
        let mut state = [0u64; 4];
        for (i, word) in entropy.iter().enumerate() {
            mix ^= word.rotate_left((i as u32 * 17) % 64);
            state[i % 4] ^= splitmix64(&mut mix);
        }
        for word in &mut state {
            *word ^= splitmix64(&mut mix);
        }
        Rng {
            source,
            ..Rng::from_state(state)
        }
    }

    /// A generator seeded from RDRAND if the CPU has it, else from the
    /// time mixed with `salt` (see the module docs: guessable).
    pub fn new(salt: &[u8]) -> Rng {
        if let Some(mut hw) = HwRng::new() {
            let mut words = [0u64; 4];
            if words
                .iter_mut()
                .try_for_each(|w| hw.try_next_u64().map(|v| *w = v))
                .is_ok()
            {
                return Rng::from_entropy(&words, SeedSource::RdRand);
            }
        }
        let mut words = alloc::vec![time_entropy()];
        words.extend(salt.chunks(8).map(|chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            u64::from_le_bytes(word)
        }));
        Rng::from_entropy(&words, SeedSource::Time)
    }

    /// Where the seed came from.
    pub fn seed_source(&self) -> SeedSource {
        self.source
    }

    fn step(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A value in `low..=high` (by rejection, so without modulo bias).
    pub fn in_range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range");
        let span = high - low;
        if span == u64::MAX {
            return self.step();
        }
        let count = span + 1;
        // The largest multiple of `count` that fits: reject above it.
        let zone = u64::MAX - (u64::MAX - count + 1) % count;
        loop {
            let value = self.step();
            if value <= zone {
                return low + value % count;
            }
        }
    }

    /// An ephemeral port in IANA's dynamic range (49152..=65535).
    pub fn ephemeral_port(&mut self) -> u16 {
        self.in_range(49152, 65535) as u16
    }
}

impl TryRng for Rng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        // The high bits are xoshiro's best.
        Ok((self.step() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.step())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let word = self.step().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

/// The time as entropy: Xen's system time (ns since boot, which varies
/// with how long booting took) and the wall clock.
#[cfg(target_os = "none")]
fn time_entropy() -> u64 {
    let (secs, nanos) = kernel::time::wallclock();
    kernel::time::now_ns() ^ secs.rotate_left(32) ^ u64::from(nanos).rotate_left(17)
}

/// In host tests: the system clock.
#[cfg(all(test, not(target_os = "none")))]
fn time_entropy() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Host builds outside tests are only type-checked (the guest is the
/// target): no clock here.
#[cfg(all(not(test), not(target_os = "none")))]
fn time_entropy() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng as _;

    #[test]
    fn xoshiro_matches_the_reference_sequence() {
        // xoshiro256** from state [1, 2, 3, 4], per the reference C code.
        let mut rng = Rng::from_state([1, 2, 3, 4]);
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(first, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn the_all_zero_state_is_avoided() {
        let mut rng = Rng::from_state([0; 4]);
        assert_ne!(rng.next_u64() | rng.next_u64(), 0);
    }

    #[test]
    fn seeds_determine_the_sequence() {
        let a: Vec<u64> = (0..8)
            .scan(Rng::from_seed(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .scan(Rng::from_seed(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .scan(Rng::from_seed(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let d = Rng::from_entropy(&[1, 2], SeedSource::Time);
        let e = Rng::from_entropy(&[1, 3], SeedSource::Time);
        assert_ne!(d.state, e.state);
        assert_eq!(d.seed_source(), SeedSource::Time);
    }

    #[test]
    fn fill_bytes_is_the_words_little_endian() {
        let mut words = Rng::from_seed(42);
        let mut bytes = Rng::from_seed(42);
        let mut buf = [0u8; 13];
        bytes.fill_bytes(&mut buf);
        let w0 = words.next_u64().to_le_bytes();
        let w1 = words.next_u64().to_le_bytes();
        assert_eq!(buf[..8], w0);
        assert_eq!(buf[8..], w1[..5]);
    }

    #[test]
    fn ranges_are_respected_and_covered() {
        let mut rng = Rng::from_seed(1);
        let mut seen = [false; 6];
        for _ in 0..1000 {
            let v = rng.in_range(10, 15);
            assert!((10..=15).contains(&v));
            seen[(v - 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(rng.in_range(3, 3), 3);
        let _ = rng.in_range(0, u64::MAX);
        let ports: Vec<u16> = (0..100).map(|_| rng.ephemeral_port()).collect();
        assert!(ports.iter().all(|p| *p >= 49152));
        assert!(ports.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn new_reports_its_seed_source() {
        let rng = Rng::new(b"salt");
        let hw = HwRng::new();
        if std::arch::is_x86_feature_detected!("rdrand") {
            assert_eq!(rng.seed_source(), SeedSource::RdRand);
            let mut hw = hw.expect("CPUID says rdrand");
            let draws: Vec<u64> = (0..4).map(|_| hw.try_next_u64().unwrap()).collect();
            assert!(draws.windows(2).any(|w| w[0] != w[1]));
            let mut buf = [0u8; 11];
            hw.try_fill_bytes(&mut buf).unwrap();
        } else {
            assert!(hw.is_none());
            assert_eq!(rng.seed_source(), SeedSource::Time);
        }
    }
}
