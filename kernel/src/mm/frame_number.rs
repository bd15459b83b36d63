//! Typed frame numbers: [`Pfn`], [`Mfn`] and [`Gfn`].
//!
//! A frame number is only a number, and the three kinds are easy to mix
//! up (a PV guest's pseudo-physical frame is not the machine frame Xen
//! maps, and a PVH guest has no machine frames at all), so where one has
//! to travel it travels typed. Making one is safe: a number grants no
//! access. What a number may *do* is the point: every function that
//! grants, maps or hands a frame to Xen by number is an `unsafe fn`,
//! and the safe API takes an owning value (a [`Page`](super::Page), a
//! [`GrantedPage`](crate::grant::GrantedPage)) instead.

use core::fmt;

macro_rules! frame_number {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// The frame numbered `raw`.
            pub const fn new(raw: u64) -> Self {
                $name(raw)
            }

            /// The number, for a hypercall argument or a log line.
            pub const fn raw(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

frame_number!(
    /// A pseudo-physical frame: our own numbering of our memory (PV), or
    /// a guest-physical frame of the identity map (PVH). Indexes the
    /// frame allocator and the direct map.
    Pfn
);

frame_number!(
    /// A machine frame: what PV page-table entries and the M2P hold.
    Mfn
);

frame_number!(
    /// A frame as Xen's grant, event-channel and memory interfaces name
    /// ours: the machine frame for a PV guest, the guest-physical frame
    /// for a translated (PVH) one.
    Gfn
);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn numbers_round_trip_and_print_in_hex() {
        assert_eq!(Mfn::new(0x1234).raw(), 0x1234);
        assert_eq!(Gfn::new(255).to_string(), "0xff");
        assert!(Pfn::new(1) < Pfn::new(2));
    }
}
