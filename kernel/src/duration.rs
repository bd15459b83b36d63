//! Durations printed as `N.NNN` milliseconds or seconds, with integer
//! arithmetic: formatting an `f64` links about 9 KiB of float-to-decimal
//! code into the image, which no line of ours needs.

use core::fmt;

/// Nanoseconds shown as `N.NNN` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ms(pub u64);

/// Nanoseconds shown as `N.NNN` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub u64);

/// `ns` in units of `unit` nanoseconds, three decimals, truncated.
fn three_decimals(f: &mut fmt::Formatter<'_>, ns: u64, unit: u64) -> fmt::Result {
    write!(f, "{}.{:03}", ns / unit, ns % unit / (unit / 1000))
}

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        three_decimals(f, self.0, 1_000_000)
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        three_decimals(f, self.0, 1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn three_decimals_truncated() {
        assert_eq!(format!("{}", Ms(0)), "0.000");
        assert_eq!(format!("{}", Ms(1_234_567)), "1.234");
        assert_eq!(format!("{}", Ms(999_999)), "0.999");
        assert_eq!(format!("{}", Secs(12_345_678_901)), "12.345");
        assert_eq!(format!("{}", Secs(1_000_000)), "0.001");
        assert_eq!(format!("{}", Secs(u64::MAX)), "18446744073.709");
    }
}
