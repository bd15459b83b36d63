//! Where a vCPU's life has gone, from Xen's runstate accounting
//! (`VCPUOP_get_runstate_info`): the split the boot line prints, kept
//! apart from `time` so the host tests cover its arithmetic and wording.

use crate::duration::Ms;

/// Where vCPU 0's life has gone so far, from Xen's runstate accounting:
/// the four states' times sum to the time since Xen created the vCPU.
/// Before the guest's first instruction the vCPU is `offline` (the
/// toolstack builds the domain paused, then unpauses it); from then on
/// the guest's own time is running, runnable (waiting for a physical
/// CPU) and blocked. So [`VcpuLife::in_guest_ns`] at the app's start is
/// the guest's own boot time, and [`VcpuLife::since_creation_ns`] adds
/// what the toolstack took before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuLife {
    /// On a physical CPU.
    pub running_ns: u64,
    /// Ready, waiting for a physical CPU.
    pub runnable_ns: u64,
    /// Waiting for an event (idle).
    pub blocked_ns: u64,
    /// Neither: paused or down (at boot, while the toolstack built us).
    pub offline_ns: u64,
}

impl VcpuLife {
    /// The guest's own time: running, runnable and blocked.
    pub fn in_guest_ns(&self) -> u64 {
        self.running_ns
            .saturating_add(self.runnable_ns)
            .saturating_add(self.blocked_ns)
    }

    /// The time since Xen created the vCPU.
    pub fn since_creation_ns(&self) -> u64 {
        self.in_guest_ns().saturating_add(self.offline_ns)
    }
}

impl core::fmt::Display for VcpuLife {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} ms in the guest (running {}, runnable {}, blocked {}), {} ms since the vCPU was created ({} ms offline: built and paused by the toolstack)",
            Ms(self.in_guest_ns()),
            Ms(self.running_ns),
            Ms(self.runnable_ns),
            Ms(self.blocked_ns),
            Ms(self.since_creation_ns()),
            Ms(self.offline_ns),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::VcpuLife;

    #[test]
    fn the_split_adds_up_and_reads_in_milliseconds() {
        let life = VcpuLife {
            running_ns: 2_345_678,
            runnable_ns: 100_000,
            blocked_ns: 1_000_000,
            offline_ns: 40_000_000,
        };
        assert_eq!(life.in_guest_ns(), 3_445_678);
        assert_eq!(life.since_creation_ns(), 43_445_678);
        assert_eq!(
            format!("{life}"),
            "3.445 ms in the guest (running 2.345, runnable 0.100, blocked 1.000), 43.445 ms since the vCPU was created (40.000 ms offline: built and paused by the toolstack)"
        );
        let huge = VcpuLife {
            running_ns: u64::MAX,
            offline_ns: 5,
            ..VcpuLife::default()
        };
        assert_eq!(huge.since_creation_ns(), u64::MAX);
    }
}
