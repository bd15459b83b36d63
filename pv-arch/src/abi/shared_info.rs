//! The shared-info page and per-vCPU time (`xen/xen.h`, with the x86_64
//! parts from `xen/arch-x86/xen.h` and `xen/arch-x86/xen-x86_64.h`).
//!
//! Xen maps one page of [`SharedInfo`] into every PV guest (its machine
//! address is `start_info.shared_info`). It holds a [`VcpuInfo`] slot for
//! each of the first [`XEN_LEGACY_MAX_VCPUS`] vCPUs, the 2-level event
//! channel pending and mask bitmaps, and the wall clock. Each vCPU's
//! [`VcpuTimeInfo`] turns a TSC reading into Xen system time; the
//! arithmetic lives here as pure functions so the host can test it.

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs with a slot in [`SharedInfo::vcpu_info`].
/// Others must register a `vcpu_info` elsewhere (`VCPUOP_register_vcpu_info`).
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// Bits in a `xen_ulong_t` (`sizeof(xen_ulong_t) * 8`): the length of the
/// 2-level pending/mask arrays, and the bits in a pending selector word.
pub const XEN_ULONG_BITS: usize = 64;

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: in [`VcpuTimeInfo::flags`], the TSC is
/// synchronised across vCPUs, so readings from different vCPUs compare.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`: in [`VcpuTimeInfo::flags`], the guest was
/// paused by the toolstack since the last update.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info`: Xen's per-vCPU clock parameters (32 bytes).
///
/// Xen bumps `version` to an odd value before an update and to the next
/// even value after; read it, copy the fields, and retry if `version`
/// was odd or has changed (a seqlock read).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Update counter; odd while Xen is writing.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC value when the fields below were last computed.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-ns multiplier, a 32.32 fixed-point fraction applied after
    /// the shift (see [`VcpuTimeInfo::tsc_delta_to_ns`]).
    pub tsc_to_system_mul: u32,
    /// Binary shift applied to a TSC delta before the multiply (may be
    /// negative: shift right).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags (interface version 0x040601 and later).
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

impl VcpuTimeInfo {
    /// Converts a TSC tick delta to nanoseconds with this vCPU's scale.
    ///
    /// The delta is first shifted by `tsc_shift` (left if positive, right
    /// if negative), then multiplied by `tsc_to_system_mul`; the result is
    /// bits 32..96 of the 96-bit product, i.e. the product divided by
    /// 2^32 and truncated to 64 bits, as Xen itself computes it. Bits
    /// shifted out at the top of the 64-bit delta are lost, as in C.
    pub const fn tsc_delta_to_ns(&self, delta: u64) -> u64 {
        scale_delta(delta, self.tsc_to_system_mul, self.tsc_shift)
    }

    /// Xen system time (ns since boot) at TSC reading `tsc`: `system_time`
    /// plus the scaled ticks since `tsc_timestamp`, the difference taken
    /// modulo 2^64 (an HVM guest's TSC starts near zero, so the stamp can
    /// be "negative"). A `tsc` before the stamp counts as no ticks: the C
    /// formula would scale the wrapped difference into a jump of
    /// centuries, and a timer armed from that time would never fire.
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let ticks = tsc.wrapping_sub(self.tsc_timestamp);
        let ticks = if (ticks as i64) < 0 { 0 } else { ticks };
        self.system_time.wrapping_add(self.tsc_delta_to_ns(ticks))
    }

    /// The TSC frequency these parameters describe, in Hz:
    /// `((10^9 << 32) / mul)`, then undo the shift. `None` if the
    /// multiplier is zero (not yet filled in).
    pub const fn tsc_frequency_hz(&self) -> Option<u64> {
        if self.tsc_to_system_mul == 0 {
            return None;
        }
        let hz = (1_000_000_000u128 << 32) / self.tsc_to_system_mul as u128;
        let shift = self.tsc_shift;
        let hz = if shift >= 0 {
            hz >> shift as u32
        } else {
            let left = shift.unsigned_abs() as u32;
            if hz.leading_zeros() < left {
                return None;
            }
            hz << left
        };
        if hz > u64::MAX as u128 {
            None
        } else {
            Some(hz as u64)
        }
    }
}

/// Xen's `scale_delta`: shift `delta` by `shift`, multiply by the 32.32
/// fraction `mul`, keep bits 32..96 of the product.
pub const fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 {
        match delta.checked_shl(shift as u32) {
            Some(d) => d,
            None => 0,
        }
    } else {
        match delta.checked_shr(shift.unsigned_abs() as u32) {
            Some(d) => d,
            None => 0,
        }
    };
    ((shifted as u128 * mul as u128) >> 32) as u64
}

/// `struct arch_vcpu_info` (x86_64): the architecture part of [`VcpuInfo`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault (a PV guest cannot read
    /// `%cr2`; Xen copies it here).
    pub cr2: u64,
    /// Padding (keeps `vcpu_info` at 64 bytes).
    pub pad: u64,
}

/// `struct vcpu_info`: one vCPU's event and time state (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Non-zero when Xen has an event upcall pending for this vCPU; the
    /// guest clears it before scanning `evtchn_pending_sel`.
    pub evtchn_upcall_pending: u8,
    /// Non-zero masks event upcalls to this vCPU (the PV "interrupt flag").
    pub evtchn_upcall_mask: u8,
    /// Selector: bit `n` set means word `n` of
    /// [`SharedInfo::evtchn_pending`] may have pending, unmasked ports.
    pub evtchn_pending_sel: u64,
    /// Architecture-specific state.
    pub arch: ArchVcpuInfo,
    /// This vCPU's clock parameters.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86_64): p2m bookkeeping the toolstack reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Number of valid entries in the p2m table.
    pub max_pfn: u64,
    /// Frame holding the list of frames listing the p2m frames (the old
    /// 3-level p2m tree); 0 if not set up, `!0` if invalid.
    pub pfn_to_mfn_frame_list_list: u64,
    /// Reason for the last NMI (dom0).
    pub nmi_reason: u64,
    /// `%cr3` value of the address space where `p2m_vaddr` is valid
    /// (0: the three fields below are unused).
    pub p2m_cr3: u64,
    /// Virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// Incremented around each p2m update (odd while updating).
    pub p2m_generation: u64,
}

/// `struct shared_info`: the page Xen shares with the whole domain.
///
/// The C definition warns that the size may vary between Xen versions;
/// only its fields, not its size, are an interface. It is far smaller
/// than a page.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SharedInfo {
    /// Per-vCPU state for vCPUs `0..XEN_LEGACY_MAX_VCPUS`.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level ABI pending bitmap: bit `p` is port `p`.
    pub evtchn_pending: [u64; XEN_ULONG_BITS],
    /// 2-level ABI mask bitmap: a set bit stops port `p` raising upcalls.
    pub evtchn_mask: [u64; XEN_ULONG_BITS],
    /// Wall-clock update counter, read like [`VcpuTimeInfo::version`].
    pub wc_version: u32,
    /// Wall-clock seconds (low 32 bits) at Xen system time 0.
    pub wc_sec: u32,
    /// Wall-clock nanoseconds at Xen system time 0.
    pub wc_nsec: u32,
    /// High 32 bits of the wall-clock seconds.
    pub wc_sec_hi: u32,
    /// Architecture-specific part.
    pub arch: ArchSharedInfo,
}

impl SharedInfo {
    /// An all-zero shared-info page (for tests and simulations).
    pub const fn zeroed() -> Self {
        const VCPU: VcpuInfo = VcpuInfo {
            evtchn_upcall_pending: 0,
            evtchn_upcall_mask: 0,
            evtchn_pending_sel: 0,
            arch: ArchVcpuInfo { cr2: 0, pad: 0 },
            time: VcpuTimeInfo {
                version: 0,
                pad0: 0,
                tsc_timestamp: 0,
                system_time: 0,
                tsc_to_system_mul: 0,
                tsc_shift: 0,
                flags: 0,
                pad1: [0; 2],
            },
        };
        SharedInfo {
            vcpu_info: [VCPU; XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; XEN_ULONG_BITS],
            evtchn_mask: [0; XEN_ULONG_BITS],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
            arch: ArchSharedInfo {
                max_pfn: 0,
                pfn_to_mfn_frame_list_list: 0,
                nmi_reason: 0,
                p2m_cr3: 0,
                p2m_vaddr: 0,
                p2m_generation: 0,
            },
        }
    }

    /// The wall-clock seconds as one 64-bit value (`wc_sec_hi:wc_sec`).
    pub const fn wc_sec_full(&self) -> u64 {
        (self.wc_sec_hi as u64) << 32 | self.wc_sec as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            ..VcpuTimeInfo::default()
        }
    }

    #[test]
    fn one_ghz_tsc_is_one_ns_per_tick() {
        // mul = 2^31 with shift +1 is exactly 1.0.
        let t = time(1 << 31, 1);
        assert_eq!(t.tsc_delta_to_ns(0), 0);
        assert_eq!(t.tsc_delta_to_ns(12_345), 12_345);
        assert_eq!(t.tsc_frequency_hz(), Some(1_000_000_000));
    }

    #[test]
    fn negative_shift_divides_first() {
        // 4 GHz: shift -1 halves the ticks, mul 0.5 halves them again.
        let t = time(1 << 31, -1);
        assert_eq!(t.tsc_delta_to_ns(4_000), 1_000);
        assert_eq!(t.tsc_frequency_hz(), Some(4_000_000_000));
        // The right shift drops the low bit before the multiply.
        assert_eq!(t.tsc_delta_to_ns(3), 0);
    }

    #[test]
    fn product_keeps_bits_32_to_96() {
        // A delta whose product overflows 64 bits still scales exactly:
        // (2^63 * (2^32 - 1)) >> 32 = 2^63 - 2^31.
        let t = time(u32::MAX, 0);
        assert_eq!(t.tsc_delta_to_ns(1 << 63), (1 << 63) - (1 << 31));
        // The same thing computed the long way.
        let delta = 0xdead_beef_1234_5678u64;
        let want = ((u128::from(delta) * u128::from(u32::MAX)) >> 32) as u64;
        assert_eq!(t.tsc_delta_to_ns(delta), want);
    }

    #[test]
    fn realistic_clock_matches_reference_formula() {
        // Parameters Xen computes for a 2.4 GHz TSC: shift -1, and
        // mul = 2^32 * 10^9 / (2.4e9 / 2).
        let mul = ((1_000_000_000u128 << 32) / 1_200_000_000) as u32;
        let t = VcpuTimeInfo {
            tsc_timestamp: 1_000_000,
            system_time: 5_000,
            ..time(mul, -1)
        };
        // One second of ticks later is ~one second of system time later.
        let ns = t.system_time_at(1_000_000 + 2_400_000_000);
        assert!((ns - 5_000).abs_diff(1_000_000_000) < 2, "{ns}");
        let hz = t.tsc_frequency_hz().unwrap();
        assert!(hz.abs_diff(2_400_000_000) < 5, "{hz}");
    }

    #[test]
    fn stamp_near_wrap_and_tsc_before_stamp() {
        let mul = ((1_000_000_000u128 << 32) / 1_200_000_000) as u32;
        // An HVM guest's stamp taken before its TSC reached zero.
        let t = VcpuTimeInfo {
            tsc_timestamp: 0u64.wrapping_sub(2_400_000_000),
            system_time: 7_000,
            ..time(mul, -1)
        };
        let ns = t.system_time_at(2_400_000_000);
        assert!((ns - 7_000).abs_diff(2_000_000_000) < 4, "{ns}");
        // A TSC a little before the stamp: the stamp's own time, no jump.
        let t = VcpuTimeInfo {
            tsc_timestamp: 5_000_000,
            system_time: 9_000,
            ..time(mul, -1)
        };
        assert_eq!(t.system_time_at(4_999_000), 9_000);
    }

    #[test]
    fn extreme_shifts_do_not_panic() {
        assert_eq!(scale_delta(u64::MAX, u32::MAX, -128), 0);
        assert_eq!(scale_delta(u64::MAX, u32::MAX, 127), 0);
        assert_eq!(scale_delta(1, 1 << 31, 63), 1 << 62);
        assert_eq!(time(0, 0).tsc_frequency_hz(), None);
        assert_eq!(time(1, -128).tsc_frequency_hz(), None);
        assert_eq!(time(1, 127).tsc_frequency_hz(), Some(0));
    }

    #[test]
    fn wall_clock_seconds_join() {
        let mut s = SharedInfo::zeroed();
        s.wc_sec = 0x8000_0000;
        s.wc_sec_hi = 1;
        assert_eq!(s.wc_sec_full(), 0x1_8000_0000);
    }
}
