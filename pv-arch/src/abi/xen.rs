//! Core definitions from `xen/xen.h`: hypercall numbers and basic types.

/// The interface version these definitions follow
/// (`__XEN_LATEST_INTERFACE_VERSION__` of Xen 4.17's headers).
///
/// Where a layout depends on `__XEN_INTERFACE_VERSION__` (the
/// `vcpu_time_info` flags byte, `grant_entry_v1` naming, guest handles
/// as structs), the Rust mirror follows this version.
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0e00;

/// Machine or pseudo-physical frame number (`xen_pfn_t` on x86_64).
pub type XenPfn = u64;
/// Xen's register-sized unsigned integer (`xen_ulong_t`, 64 bits here).
pub type XenUlong = u64;
/// Domain id (`domid_t`).
pub type DomId = u16;

/// `DOMID_FIRST_RESERVED`: ids from here up are not ordinary domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
/// `DOMID_SELF`: this domain.
pub const DOMID_SELF: DomId = 0x7ff0;
/// `DOMID_IO`: owner of I/O memory, for mapping it through `mmu_update`.
pub const DOMID_IO: DomId = 0x7ff1;
/// `DOMID_XEN`: owner of Xen's own pages that privileged domains may map.
pub const DOMID_XEN: DomId = 0x7ff2;
/// `DOMID_COW`: owner of shared (copy-on-write) pages.
pub const DOMID_COW: DomId = 0x7ff3;
/// `DOMID_INVALID`: no domain / unknown owner.
pub const DOMID_INVALID: DomId = 0x7ff4;
/// `DOMID_IDLE`: the idle domain.
pub const DOMID_IDLE: DomId = 0x7fff;
/// `DOMID_MASK`: the bits of a valid domain id.
pub const DOMID_MASK: DomId = 0x7fff;

/// `struct multicall_entry`: one hypercall inside `HYPERVISOR_multicall`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number (one of [`hypercall_nr`]).
    pub op: XenUlong,
    /// OUT: what that hypercall returned.
    pub result: XenUlong,
    /// Its arguments, in register order.
    pub args: [XenUlong; 6],
}

/// Hypercall numbers (`__HYPERVISOR_*`), the index of each 32-byte stub
/// in the hypercall page.
pub mod hypercall_nr {
    /// `__HYPERVISOR_set_trap_table`
    pub const SET_TRAP_TABLE: usize = 0;
    /// `__HYPERVISOR_mmu_update`
    pub const MMU_UPDATE: usize = 1;
    /// `__HYPERVISOR_set_gdt`
    pub const SET_GDT: usize = 2;
    /// `__HYPERVISOR_stack_switch`
    pub const STACK_SWITCH: usize = 3;
    /// `__HYPERVISOR_set_callbacks`
    pub const SET_CALLBACKS: usize = 4;
    /// `__HYPERVISOR_fpu_taskswitch`
    pub const FPU_TASKSWITCH: usize = 5;
    /// `__HYPERVISOR_sched_op_compat` (superseded by `sched_op`)
    pub const SCHED_OP_COMPAT: usize = 6;
    /// `__HYPERVISOR_platform_op`
    pub const PLATFORM_OP: usize = 7;
    /// `__HYPERVISOR_set_debugreg`
    pub const SET_DEBUGREG: usize = 8;
    /// `__HYPERVISOR_get_debugreg`
    pub const GET_DEBUGREG: usize = 9;
    /// `__HYPERVISOR_update_descriptor`
    pub const UPDATE_DESCRIPTOR: usize = 10;
    /// `__HYPERVISOR_memory_op`
    pub const MEMORY_OP: usize = 12;
    /// `__HYPERVISOR_multicall`
    pub const MULTICALL: usize = 13;
    /// `__HYPERVISOR_update_va_mapping`
    pub const UPDATE_VA_MAPPING: usize = 14;
    /// `__HYPERVISOR_set_timer_op`
    pub const SET_TIMER_OP: usize = 15;
    /// `__HYPERVISOR_event_channel_op_compat`
    pub const EVENT_CHANNEL_OP_COMPAT: usize = 16;
    /// `__HYPERVISOR_xen_version`
    pub const XEN_VERSION: usize = 17;
    /// `__HYPERVISOR_console_io`
    pub const CONSOLE_IO: usize = 18;
    /// `__HYPERVISOR_physdev_op_compat`
    pub const PHYSDEV_OP_COMPAT: usize = 19;
    /// `__HYPERVISOR_grant_table_op`
    pub const GRANT_TABLE_OP: usize = 20;
    /// `__HYPERVISOR_vm_assist`
    pub const VM_ASSIST: usize = 21;
    /// `__HYPERVISOR_update_va_mapping_otherdomain`
    pub const UPDATE_VA_MAPPING_OTHERDOMAIN: usize = 22;
    /// `__HYPERVISOR_iret`
    pub const IRET: usize = 23;
    /// `__HYPERVISOR_vcpu_op`
    pub const VCPU_OP: usize = 24;
    /// `__HYPERVISOR_set_segment_base`
    pub const SET_SEGMENT_BASE: usize = 25;
    /// `__HYPERVISOR_mmuext_op`
    pub const MMUEXT_OP: usize = 26;
    /// `__HYPERVISOR_xsm_op`
    pub const XSM_OP: usize = 27;
    /// `__HYPERVISOR_nmi_op`
    pub const NMI_OP: usize = 28;
    /// `__HYPERVISOR_sched_op`
    pub const SCHED_OP: usize = 29;
    /// `__HYPERVISOR_callback_op`
    pub const CALLBACK_OP: usize = 30;
    /// `__HYPERVISOR_xenoprof_op`
    pub const XENOPROF_OP: usize = 31;
    /// `__HYPERVISOR_event_channel_op`
    pub const EVENT_CHANNEL_OP: usize = 32;
    /// `__HYPERVISOR_physdev_op`
    pub const PHYSDEV_OP: usize = 33;
    /// `__HYPERVISOR_hvm_op`
    pub const HVM_OP: usize = 34;
    /// `__HYPERVISOR_sysctl`
    pub const SYSCTL: usize = 35;
    /// `__HYPERVISOR_domctl`
    pub const DOMCTL: usize = 36;
    /// `__HYPERVISOR_kexec_op`
    pub const KEXEC_OP: usize = 37;
    /// `__HYPERVISOR_tmem_op` (removed from Xen; the number stays taken)
    pub const TMEM_OP: usize = 38;
    /// `__HYPERVISOR_argo_op`
    pub const ARGO_OP: usize = 39;
    /// `__HYPERVISOR_xenpmu_op`
    pub const XENPMU_OP: usize = 40;
    /// `__HYPERVISOR_dm_op`
    pub const DM_OP: usize = 41;
    /// `__HYPERVISOR_hypfs_op`
    pub const HYPFS_OP: usize = 42;
    /// `__HYPERVISOR_arch_0`: first architecture-specific hypercall
    /// (`arch_n` is this plus `n`, up to 7); on x86 it is the
    /// machine-check hypercall, `__HYPERVISOR_mca`.
    pub const ARCH_0: usize = 48;
}
