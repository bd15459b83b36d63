//! x86_64-specific definitions (`xen/arch-x86/xen.h`,
//! `xen/arch-x86/xen-x86_64.h`): the virtual IDT entry, flat segment
//! selectors, the hypervisor's reserved address range, the `iret`
//! hypercall frame and the register context used to start a vCPU.
//!
//! `arch_vcpu_info` and `arch_shared_info`, also from these headers,
//! live with their containers in [`crate::abi::shared_info`].

/// `struct trap_info`: one entry of the virtual IDT given to
/// `HYPERVISOR_set_trap_table` (a zero `address` ends the array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: lowest privilege level allowed to raise it with `int`;
    /// bit 2: mask event upcalls on entry (an interrupt gate).
    pub flags: u8,
    /// Code segment selector of the handler.
    pub cs: u16,
    /// Handler address.
    pub address: u64,
}

impl TrapInfo {
    /// `TI_GET_DPL`: the privilege-level bits of `flags`.
    pub const fn dpl(&self) -> u8 {
        self.flags & 3
    }

    /// `TI_GET_IF`: whether entry masks event upcalls.
    pub const fn masks_events(&self) -> bool {
        self.flags & 4 != 0
    }

    /// `flags` for a gate reachable from privilege level `dpl`, masking
    /// events on entry if `mask_events` (`TI_SET_DPL`, `TI_SET_IF`).
    pub const fn make_flags(dpl: u8, mask_events: bool) -> u8 {
        (dpl & 3) | if mask_events { 4 } else { 0 }
    }
}

/// `FLAT_RING3_CS32`: flat 32-bit user code segment.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// `FLAT_RING3_CS64`: flat 64-bit code segment (Xen runs a 64-bit PV
/// kernel in ring 3 too, so this is also the kernel's).
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// `FLAT_RING3_DS32`: flat 32-bit data segment.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// `FLAT_RING3_DS64`: 64-bit data segment (the null selector).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// `FLAT_RING3_SS32`: flat 32-bit stack segment.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// `FLAT_RING3_SS64`: 64-bit stack segment.
pub const FLAT_RING3_SS64: u16 = 0xe02b;
/// `FLAT_KERNEL_CS`: the kernel's code segment (64-bit).
pub const FLAT_KERNEL_CS: u16 = FLAT_RING3_CS64;
/// `FLAT_KERNEL_DS`: the kernel's data segment (64-bit).
pub const FLAT_KERNEL_DS: u16 = FLAT_RING3_DS64;
/// `FLAT_KERNEL_SS`: the kernel's stack segment (64-bit).
pub const FLAT_KERNEL_SS: u16 = FLAT_RING3_SS64;
/// `FLAT_USER_CS`: user code segment (64-bit).
pub const FLAT_USER_CS: u16 = FLAT_RING3_CS64;
/// `FLAT_USER_DS`: user data segment (64-bit).
pub const FLAT_USER_DS: u16 = FLAT_RING3_DS64;
/// `FLAT_USER_SS`: user stack segment (64-bit).
pub const FLAT_USER_SS: u16 = FLAT_RING3_SS64;

/// `FIRST_RESERVED_GDT_PAGE`: GDT pages from here up belong to Xen.
pub const FIRST_RESERVED_GDT_PAGE: usize = 14;
/// `FIRST_RESERVED_GDT_BYTE`.
pub const FIRST_RESERVED_GDT_BYTE: usize = FIRST_RESERVED_GDT_PAGE * 4096;
/// `FIRST_RESERVED_GDT_ENTRY`: the first descriptor index Xen reserves.
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_BYTE / 8;

/// `HYPERVISOR_VIRT_START`: start of the virtual range Xen keeps for itself.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// `HYPERVISOR_VIRT_END`: end of that range.
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// `MACH2PHYS_VIRT_START`: where Xen maps the read-only M2P table.
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// `MACH2PHYS_VIRT_END`: end of the M2P table's range.
pub const MACH2PHYS_VIRT_END: u64 = 0xffff_8040_0000_0000;
/// `MACH2PHYS_NR_ENTRIES`: entries (8 bytes each) in that range.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// `SEGBASE_FS`: `set_segment_base` target: `%fs` base.
pub const SEGBASE_FS: u32 = 0;
/// `SEGBASE_GS_USER`: the user `%gs` base.
pub const SEGBASE_GS_USER: u32 = 1;
/// `SEGBASE_GS_KERNEL`: the kernel `%gs` base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `SEGBASE_GS_USER_SEL`: load the user `%gs` selector given in bits 15:0.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

/// `VGCF_i387_valid`: [`VcpuGuestContext::fpu_ctxt`] is valid.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`: the context is in kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_failsafe_disables_events`: mask events on failsafe entry.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `VGCF_syscall_disables_events`: mask events on syscall entry.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `VGCF_online`: the vCPU is online.
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `VGCF_in_syscall`: in an `iret` frame, return with `sysret`
/// (the guest entered through `syscall`).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// `xen_pfn_to_cr3`: the `%cr3` value for a top-level table frame.
pub const fn xen_pfn_to_cr3(pfn: u64) -> u64 {
    pfn << 12
}

/// `xen_cr3_to_pfn`: the frame a `%cr3` value names.
pub const fn xen_cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> 12
}

/// `struct iret_context`: the frame `HYPERVISOR_iret` pops, from the
/// top of the stack at the hypercall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IretContext {
    /// Saved `%rax` (clobbered by the hypercall).
    pub rax: u64,
    /// Saved `%r11`.
    pub r11: u64,
    /// Saved `%rcx`.
    pub rcx: u64,
    /// `VGCF_in_syscall` or 0.
    pub flags: u64,
    /// Return address.
    pub rip: u64,
    /// Return code segment.
    pub cs: u64,
    /// Return flags.
    pub rflags: u64,
    /// Return stack pointer.
    pub rsp: u64,
    /// Return stack segment.
    pub ss: u64,
}

/// `struct cpu_user_regs` (x86_64): a saved general register frame.
///
/// The C header declares each register as a union of its 64- and
/// 32-bit names; these are the 64-bit names.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUserRegs {
    /// `%r15`.
    pub r15: u64,
    /// `%r14`.
    pub r14: u64,
    /// `%r13`.
    pub r13: u64,
    /// `%r12`.
    pub r12: u64,
    /// `%rbp`.
    pub rbp: u64,
    /// `%rbx`.
    pub rbx: u64,
    /// `%r11`.
    pub r11: u64,
    /// `%r10`.
    pub r10: u64,
    /// `%r9`.
    pub r9: u64,
    /// `%r8`.
    pub r8: u64,
    /// `%rax`.
    pub rax: u64,
    /// `%rcx`.
    pub rcx: u64,
    /// `%rdx`.
    pub rdx: u64,
    /// `%rsi`.
    pub rsi: u64,
    /// `%rdi`.
    pub rdi: u64,
    /// Exception error code (Xen-private).
    pub error_code: u32,
    /// Exception vector (Xen-private).
    pub entry_vector: u32,
    /// `%rip`.
    pub rip: u64,
    /// `%cs`.
    pub cs: u16,
    /// Padding.
    pub _pad0: [u16; 1],
    /// Event mask saved on entry (`rflags.IF` is its inverse).
    pub saved_upcall_mask: u8,
    /// Padding.
    pub _pad1: [u8; 3],
    /// `%rflags`.
    pub rflags: u64,
    /// `%rsp`.
    pub rsp: u64,
    /// `%ss`.
    pub ss: u16,
    /// Padding.
    pub _pad2: [u16; 3],
    /// `%es`.
    pub es: u16,
    /// Padding.
    pub _pad3: [u16; 3],
    /// `%ds`.
    pub ds: u16,
    /// Padding.
    pub _pad4: [u16; 3],
    /// `%fs`.
    pub fs: u16,
    /// Padding.
    pub _pad5: [u16; 3],
    /// `%gs`.
    pub gs: u16,
    /// Padding.
    pub _pad6: [u16; 3],
}

/// `struct vcpu_guest_context` (x86_64): the whole state of a PV vCPU,
/// as given to `VCPUOP_initialise` to start a secondary vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VcpuGuestContext {
    /// FXSAVE image of the FPU state (C `struct { char x[512]; }`).
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*` flags.
    pub flags: u64,
    /// General registers.
    pub user_regs: CpuUserRegs,
    /// The virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// Machine frames of the GDT.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack segment (the virtual TSS's SS1).
    pub kernel_ss: u64,
    /// Kernel stack pointer (the virtual TSS's SP1).
    pub kernel_sp: u64,
    /// Control registers; `ctrlreg[3]` is the kernel page-table base and
    /// `ctrlreg[1]` the user one, in `xen_pfn_to_cr3` form.
    pub ctrlreg: [u64; 8],
    /// Debug registers.
    pub debugreg: [u64; 8],
    /// Event upcall entry point.
    pub event_callback_eip: u64,
    /// Failsafe entry point.
    pub failsafe_callback_eip: u64,
    /// 64-bit `syscall` entry point.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// `%fs` base.
    pub fs_base: u64,
    /// Kernel `%gs` base.
    pub gs_base_kernel: u64,
    /// User `%gs` base.
    pub gs_base_user: u64,
}

impl VcpuGuestContext {
    /// An all-zero context.
    pub const fn zeroed() -> Self {
        const REGS: CpuUserRegs = CpuUserRegs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            error_code: 0,
            entry_vector: 0,
            rip: 0,
            cs: 0,
            _pad0: [0; 1],
            saved_upcall_mask: 0,
            _pad1: [0; 3],
            rflags: 0,
            rsp: 0,
            ss: 0,
            _pad2: [0; 3],
            es: 0,
            _pad3: [0; 3],
            ds: 0,
            _pad4: [0; 3],
            fs: 0,
            _pad5: [0; 3],
            gs: 0,
            _pad6: [0; 3],
        };
        const TRAP: TrapInfo = TrapInfo {
            vector: 0,
            flags: 0,
            cs: 0,
            address: 0,
        };
        VcpuGuestContext {
            fpu_ctxt: [0; 512],
            flags: 0,
            user_regs: REGS,
            trap_ctxt: [TRAP; 256],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_flags() {
        let t = TrapInfo {
            vector: 3,
            flags: TrapInfo::make_flags(3, true),
            cs: FLAT_KERNEL_CS,
            address: 0x1000,
        };
        assert_eq!(t.dpl(), 3);
        assert!(t.masks_events());
        assert!(!TrapInfo::default().masks_events());
    }

    #[test]
    fn cr3_round_trip() {
        assert_eq!(xen_cr3_to_pfn(xen_pfn_to_cr3(0x1234)), 0x1234);
    }
}
