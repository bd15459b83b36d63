//! What a PVH guest needs from the HVM interface: the start-of-day
//! structure (`xen/arch-x86/hvm/start_info.h`), and the `HVMOP_*`
//! commands and `HVM_PARAM_*` indices (`xen/hvm/hvm_op.h`,
//! `xen/hvm/params.h`) through which it finds its xenstore and console
//! rings and sets up event delivery.
//!
//! A PVH guest starts in 32-bit protected mode with `%ebx` holding the
//! physical address of an [`HvmStartInfo`]; addresses in it are physical,
//! and 0 means "not provided".

use crate::abi::xen::DomId;

/// `XEN_HVM_START_MAGIC_VALUE`: [`HvmStartInfo::magic`] ("xEn3" with the
/// top bit of the `E` set).
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `XEN_HVM_MEMMAP_TYPE_RAM`: usable RAM.
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RESERVED`: reserved.
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// `XEN_HVM_MEMMAP_TYPE_ACPI`: ACPI tables, reclaimable once read.
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// `XEN_HVM_MEMMAP_TYPE_NVS`: ACPI non-volatile storage.
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// `XEN_HVM_MEMMAP_TYPE_UNUSABLE`: unusable (errors detected).
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// `XEN_HVM_MEMMAP_TYPE_DISABLED`: disabled.
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// `XEN_HVM_MEMMAP_TYPE_PMEM`: persistent memory.
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

/// `struct hvm_start_info`: start-of-day information for a PVH guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Structure version (1 has the memory map fields; later versions
    /// only add at the end).
    pub version: u32,
    /// `SIF_*` flags, as in `start_info`.
    pub flags: u32,
    /// Entries in the module list.
    pub nr_modules: u32,
    /// Physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP.
    pub rsdp_paddr: u64,
    /// Physical address of an array of [`HvmMemmapTableEntry`] (version 1+).
    pub memmap_paddr: u64,
    /// Entries in the memory map; 0 if none is given (version 1+).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_modlist_entry`: one module handed to a PVH guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its NUL-terminated command line.
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}

/// `struct hvm_memmap_table_entry`: one range of the PVH memory map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*`.
    pub type_: u32,
    /// Must be zero (version 1).
    pub reserved: u32,
}

/// `HVMOP_set_param`: argument is a [`XenHvmParam`].
pub const HVMOP_SET_PARAM: u32 = 0;
/// `HVMOP_get_param`: argument is a [`XenHvmParam`].
pub const HVMOP_GET_PARAM: u32 = 1;
/// `HVMOP_flush_tlbs`: flush every vCPU's TLB; no argument.
pub const HVMOP_FLUSH_TLBS: u32 = 5;
/// `HVMOP_pagetable_dying`: hint that a page table is being torn down.
pub const HVMOP_PAGETABLE_DYING: u32 = 9;
/// `HVMOP_get_time`: current Xen system time.
pub const HVMOP_GET_TIME: u32 = 10;
/// `HVMOP_set_evtchn_upcall_vector`: per-vCPU event delivery vector;
/// argument is a [`XenHvmEvtchnUpcallVector`].
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// IN: the domain (`DOMID_SELF`).
    pub domid: DomId,
    /// Padding.
    pub pad: u16,
    /// IN: an `HVM_PARAM_*` index.
    pub index: u32,
    /// IN (set) or OUT (get): the value.
    pub value: u64,
}

/// `struct xen_hvm_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmEvtchnUpcallVector {
    /// The vCPU.
    pub vcpu: u32,
    /// The interrupt vector event upcalls arrive on.
    pub vector: u8,
}

/// `HVM_PARAM_CALLBACK_IRQ`: how vCPU 0's event upcalls are delivered
/// (0: not at all; otherwise the type in bits 63:56, see
/// `HVM_PARAM_CALLBACK_TYPE_*`).
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`: the type bits of that value.
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xff00_0000_0000_0000;
/// `HVM_PARAM_CALLBACK_TYPE_GSI`: bits 55:0 are a GSI (not 0).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// `HVM_PARAM_CALLBACK_TYPE_PCI_INTX`: bits 55:0 name a PCI INTx line.
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: bits 7:0 are an interrupt vector
/// (needs `XENFEAT_hvm_callback_vector`).
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;
/// `HVM_PARAM_STORE_PFN`: guest frame of the xenstore ring.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`: event channel of the xenstore ring.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_TIMER_MODE`: how missed virtual timer ticks are handled.
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// `HVM_PARAM_CONSOLE_PFN`: guest frame of the PV console ring.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`: event channel of the PV console ring.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_NR_PARAMS`: one more than the largest parameter index.
pub const HVM_NR_PARAMS: u32 = 39;

/// `VCPU_HVM_MODE_32B`: `vcpu_hvm_context`'s 32-bit register form.
pub const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`: the 64-bit form: the vCPU starts in long mode,
/// Xen sets flat 64-bit code and data segments and a busy TSS itself.
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// `struct vcpu_hvm_x86_64`: the registers a PVH/HVM vCPU starts with in
/// long mode (`xen/hvm/hvm_vcpu.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmX86_64 {
    /// `%rax`.
    pub rax: u64,
    /// `%rcx`.
    pub rcx: u64,
    /// `%rdx`.
    pub rdx: u64,
    /// `%rbx`.
    pub rbx: u64,
    /// `%rsp`.
    pub rsp: u64,
    /// `%rbp`.
    pub rbp: u64,
    /// `%rsi`.
    pub rsi: u64,
    /// `%rdi`.
    pub rdi: u64,
    /// `%rip`: must be canonical.
    pub rip: u64,
    /// `%rflags`.
    pub rflags: u64,
    /// `%cr0`: must have PG (and so PE).
    pub cr0: u64,
    /// `%cr3`: the page-table root (a guest-physical address).
    pub cr3: u64,
    /// `%cr4`: must have PAE.
    pub cr4: u64,
    /// `EFER`: must have LME (Xen sets LMA).
    pub efer: u64,
}

/// The C union `cpu_regs` of `vcpu_hvm_context`, as the 64-bit form
/// Paravane uses, padded to the union's size (the 32-bit form, 120
/// bytes, is the larger).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmCpuRegs {
    /// `cpu_regs.x86_64`.
    pub x86_64: VcpuHvmX86_64,
    /// The rest of the union (only the 32-bit form reaches here).
    pub tail: [u64; 1],
}

/// `struct vcpu_hvm_context`: the argument of `VCPUOP_initialise` for a
/// PVH (or HVM) vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmContext {
    /// `VCPU_HVM_MODE_*`: which form `cpu_regs` holds.
    pub mode: u32,
    /// Must be 0 (Xen refuses anything else with `EINVAL`).
    pub pad: u32,
    /// The registers (the 64-bit form).
    pub cpu_regs: VcpuHvmCpuRegs,
}

/// The `HVM_PARAM_CALLBACK_IRQ` value that delivers upcalls on `vector`.
pub const fn hvm_callback_via_vector(vector: u8) -> u64 {
    HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | vector as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_vector_value() {
        let v = hvm_callback_via_vector(0xf3);
        assert_eq!(v & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK, 2 << 56);
        assert_eq!(v & 0xff, 0xf3);
    }
}
