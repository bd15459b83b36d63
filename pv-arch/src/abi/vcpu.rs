//! Per-vCPU operations (`xen/vcpu.h`).
//!
//! The `VCPUOP_*` commands of `HYPERVISOR_vcpu_op(cmd, vcpu, arg)`:
//! starting and stopping vCPUs, one-shot and periodic timers, moving a
//! vCPU's `vcpu_info` out of the shared-info page, and runstate
//! accounting.

use crate::abi::xen::XenPfn;

/// `VCPUOP_initialise`: set a stopped vCPU's initial state (argument: a
/// `vcpu_guest_context`, see [`crate::abi::arch_x86::VcpuGuestContext`]).
pub const VCPUOP_INITIALISE: u32 = 0;
/// `VCPUOP_up`: start an initialised vCPU.
pub const VCPUOP_UP: u32 = 1;
/// `VCPUOP_down`: stop a vCPU.
pub const VCPUOP_DOWN: u32 = 2;
/// `VCPUOP_is_up`: returns 1 if the vCPU is running.
pub const VCPUOP_IS_UP: u32 = 3;
/// `VCPUOP_get_runstate_info`: copy out a [`VcpuRunstateInfo`].
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`: have Xen keep a
/// [`VcpuRunstateInfo`] up to date in guest memory.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// `VCPUOP_set_periodic_timer`: argument is a [`VcpuSetPeriodicTimer`].
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// `VCPUOP_stop_periodic_timer`: no argument.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `VCPUOP_set_singleshot_timer`: argument is a [`VcpuSetSingleshotTimer`].
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`: no argument.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `VCPUOP_register_vcpu_info`: argument is a [`VcpuRegisterVcpuInfo`].
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `VCPUOP_send_nmi`: send an NMI to the vCPU; no argument.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// `VCPUOP_get_physid`: argument is a [`VcpuGetPhysid`] (dom0).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`: have Xen keep a copy of the
/// vCPU's `vcpu_time_info` in guest memory.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;
/// `VCPUOP_register_runstate_phys_area` (Xen 4.18+; `XENFEAT_runstate_phys_area`):
/// like [`VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA`], but the
/// [`VcpuRegisterRunstateMemoryArea`]'s address is guest-physical (a
/// machine address for PV). The area may not cross a page boundary;
/// [`PHYS_AREA_UNREGISTER`] unregisters.
pub const VCPUOP_REGISTER_RUNSTATE_PHYS_AREA: u32 = 14;
/// `VCPUOP_register_vcpu_time_phys_area` (Xen 4.18+;
/// `XENFEAT_vcpu_time_phys_area`): the same for a `vcpu_time_info` copy.
pub const VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA: u32 = 15;
/// The address that unregisters a phys area (`~0`).
pub const PHYS_AREA_UNREGISTER: u64 = !0;

/// `RUNSTATE_running`: on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// `RUNSTATE_runnable`: ready, waiting for a physical CPU.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `RUNSTATE_blocked`: idle, waiting for an event.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `RUNSTATE_offline`: neither (down, or paused by the toolstack).
pub const RUNSTATE_OFFLINE: i32 = 3;

/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen updates a
/// registered runstate area (with `VMASST_TYPE_runstate_update_flag`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `struct vcpu_runstate_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// The current `RUNSTATE_*`.
    pub state: i32,
    /// System time (ns) the current state was entered.
    pub state_entry_time: u64,
    /// Nanoseconds spent in each `RUNSTATE_*`; they sum to system time.
    pub time: [u64; 4],
}

/// `struct vcpu_register_runstate_memory_area`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// The C union `addr`: the guest virtual address of a
    /// [`VcpuRunstateInfo`] (its `h`, `v` and `p` members are the same
    /// 64-bit value).
    pub addr: u64,
}

/// `struct vcpu_set_periodic_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// Period in nanoseconds.
    pub period_ns: u64,
}

/// `VCPU_SSHOTTMR_future`: fail with `ETIME` if the deadline has passed
/// (Xen may ignore this).
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Deadline, in absolute Xen system time (ns).
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*` flags.
    pub flags: u32,
}

/// `struct vcpu_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Frame to hold the vCPU's `vcpu_info`.
    pub mfn: XenPfn,
    /// Byte offset within that frame (the 64 bytes may not cross it).
    pub offset: u32,
    /// Unused.
    pub rsvd: u32,
}

/// `struct vcpu_get_physid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuGetPhysid {
    /// OUT: APIC id in bits 31:0, ACPI id in bits 63:32.
    pub phys_id: u64,
}

impl VcpuGetPhysid {
    /// `xen_vcpu_physid_to_x86_apicid`.
    pub const fn apic_id(&self) -> u32 {
        self.phys_id as u32
    }

    /// `xen_vcpu_physid_to_x86_acpiid`.
    pub const fn acpi_id(&self) -> u32 {
        (self.phys_id >> 32) as u32
    }
}

/// `struct vcpu_register_time_memory_area`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterTimeMemoryArea {
    /// The C union `addr`: the guest virtual address of a
    /// `vcpu_time_info` (all three members are the same 64-bit value).
    pub addr: u64,
}
