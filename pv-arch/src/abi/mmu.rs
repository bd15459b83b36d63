//! PV page-table operations and VM assists (`xen/xen.h`).
//!
//! A PV guest's page tables are read-only to it; it changes them through
//! `HYPERVISOR_mmu_update` (an array of [`MmuUpdate`]),
//! `HYPERVISOR_update_va_mapping` (one PTE, with `UVMF_*` TLB flags) and
//! `HYPERVISOR_mmuext_op` (an array of [`MmuextOp`]: pinning, switching
//! `%cr3`, TLB flushes, LDT). `HYPERVISOR_vm_assist` turns on the
//! `VMASST_TYPE_*` conveniences.

use crate::abi::xen::XenPfn;

/// `MMU_NORMAL_PT_UPDATE`: checked `*ptr = val` on a page-table entry.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `MMU_MACHPHYS_UPDATE`: set the M2P entry of the frame at `ptr` to `val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `MMU_PT_UPDATE_PRESERVE_AD`: as normal, but keep the entry's
/// accessed and dirty bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `MMU_PT_UPDATE_NO_TRANSLATE`: as normal, `val` is never translated.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// `struct mmu_update`: one request to `HYPERVISOR_mmu_update`.
///
/// The low two bits of `ptr` select the `MMU_*` command; the rest is the
/// machine address of the entry (page tables) or frame (M2P).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry, OR'd with an `MMU_*` command.
    pub ptr: u64,
    /// The new value.
    pub val: u64,
}

impl MmuUpdate {
    /// A checked page-table write: entry at machine address `pte_ma`.
    pub const fn normal(pte_ma: u64, val: u64) -> Self {
        MmuUpdate {
            ptr: pte_ma | MMU_NORMAL_PT_UPDATE,
            val,
        }
    }

    /// Set the M2P entry of machine frame `mfn` to guest frame `pfn`.
    pub const fn machphys(mfn: XenPfn, pfn: XenPfn) -> Self {
        MmuUpdate {
            ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE,
            val: pfn,
        }
    }
}

/// `MMUEXT_PIN_L1_TABLE`: validate and pin an L1 table (`arg1` = mfn).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `MMUEXT_PIN_L2_TABLE`: validate and pin an L2 table.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `MMUEXT_PIN_L3_TABLE`: validate and pin an L3 table.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `MMUEXT_PIN_L4_TABLE`: validate and pin an L4 table.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `MMUEXT_UNPIN_TABLE`: unpin a table of any level.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `MMUEXT_NEW_BASEPTR`: switch the kernel page-table base (`%cr3`).
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `MMUEXT_TLB_FLUSH_LOCAL`: flush this vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `MMUEXT_INVLPG_LOCAL`: flush one address from this vCPU's TLB.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `MMUEXT_TLB_FLUSH_MULTI`: flush the TLBs of a set of vCPUs.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `MMUEXT_INVLPG_MULTI`: flush one address on a set of vCPUs.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `MMUEXT_TLB_FLUSH_ALL`: flush every vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `MMUEXT_INVLPG_ALL`: flush one address on every vCPU.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `MMUEXT_FLUSH_CACHE`: write back and invalidate this CPU's caches.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `MMUEXT_SET_LDT`: set the LDT (linear address, entry count).
pub const MMUEXT_SET_LDT: u32 = 13;
/// `MMUEXT_NEW_USER_BASEPTR`: switch the user page-table base (x86_64).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `MMUEXT_CLEAR_PAGE`: zero a frame.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `MMUEXT_COPY_PAGE`: copy frame `arg2` into frame `arg1`.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `MMUEXT_FLUSH_CACHE_GLOBAL`: write back and invalidate all caches.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `MMUEXT_MARK_SUPER`: mark a frame as the head of a superpage.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `MMUEXT_UNMARK_SUPER`: undo [`MMUEXT_MARK_SUPER`].
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// `struct mmuext_op`: one request to `HYPERVISOR_mmuext_op`.
///
/// `arg1` and `arg2` are C unions of 8-byte members, kept as raw words;
/// the constructors put each command's arguments where Xen reads them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    /// One of the `MMUEXT_*` commands.
    pub cmd: u32,
    /// The C union `arg1`: `mfn` (pin, unpin, base pointers, clear/copy
    /// page, superpages) or `linear_addr` (invlpg, set LDT).
    pub arg1: u64,
    /// The C union `arg2`: `nr_ents` (set LDT, low 32 bits), `vcpumask`
    /// (multi-vCPU flushes, a guest handle to a bitmap), or `src_mfn`
    /// (copy page).
    pub arg2: u64,
}

impl MmuextOp {
    /// A command with only `arg1.mfn`: pin/unpin, base pointers, clear
    /// page, superpage marks.
    pub const fn with_mfn(cmd: u32, mfn: XenPfn) -> Self {
        MmuextOp {
            cmd,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// A command with only `arg1.linear_addr`: `INVLPG_LOCAL`, `INVLPG_ALL`.
    pub const fn with_linear_addr(cmd: u32, linear_addr: u64) -> Self {
        MmuextOp {
            cmd,
            arg1: linear_addr,
            arg2: 0,
        }
    }

    /// A command with no arguments (`TLB_FLUSH_LOCAL`, `TLB_FLUSH_ALL`,
    /// cache flushes).
    pub const fn bare(cmd: u32) -> Self {
        MmuextOp {
            cmd,
            arg1: 0,
            arg2: 0,
        }
    }

    /// `MMUEXT_SET_LDT`: `arg1.linear_addr` and `arg2.nr_ents`.
    pub const fn set_ldt(linear_addr: u64, nr_ents: u32) -> Self {
        MmuextOp {
            cmd: MMUEXT_SET_LDT,
            arg1: linear_addr,
            arg2: nr_ents as u64,
        }
    }

    /// `MMUEXT_COPY_PAGE`: `arg1.mfn` (destination), `arg2.src_mfn`.
    pub const fn copy_page(dest_mfn: XenPfn, src_mfn: XenPfn) -> Self {
        MmuextOp {
            cmd: MMUEXT_COPY_PAGE,
            arg1: dest_mfn,
            arg2: src_mfn,
        }
    }

    /// `TLB_FLUSH_MULTI` or `INVLPG_MULTI`: `arg1.linear_addr` (ignored
    /// for the full flush) and `arg2.vcpumask`, the guest address of a
    /// vCPU bitmap.
    pub const fn multi(cmd: u32, linear_addr: u64, vcpumask: u64) -> Self {
        MmuextOp {
            cmd,
            arg1: linear_addr,
            arg2: vcpumask,
        }
    }

    /// `arg2.nr_ents`.
    pub const fn nr_ents(&self) -> u32 {
        self.arg2 as u32
    }
}

/// `UVMF_NONE`: no TLB flush after `update_va_mapping`.
pub const UVMF_NONE: u64 = 0;
/// `UVMF_TLB_FLUSH`: flush the whole TLB(s).
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `UVMF_INVLPG`: flush only the updated address.
pub const UVMF_INVLPG: u64 = 2;
/// `UVMF_FLUSHTYPE_MASK`: the flush-type bits.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `UVMF_MULTI`: flush on the vCPUs in a bitmap whose address is OR'd in.
pub const UVMF_MULTI: u64 = 0;
/// `UVMF_LOCAL`: flush on this vCPU only.
pub const UVMF_LOCAL: u64 = 0;
/// `UVMF_ALL`: flush on every vCPU.
pub const UVMF_ALL: u64 = 1 << 2;

/// `VMASST_CMD_enable`: `vm_assist` command to turn an assist on.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `VMASST_CMD_disable`: `vm_assist` command to turn an assist off.
pub const VMASST_CMD_DISABLE: u32 = 1;
/// `VMASST_TYPE_4gb_segments`: 32-bit guests only.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// `VMASST_TYPE_4gb_segments_notify`: 32-bit guests only.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// `VMASST_TYPE_writable_pagetables`: let the guest write L1 entries
/// directly (Xen traps and emulates the write).
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// `VMASST_TYPE_pae_extended_cr3`: PAE guests only.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// `VMASST_TYPE_architectural_iopl`: sane virtual IOPL handling.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// `VMASST_TYPE_runstate_update_flag`: mark runstate updates with
/// `XEN_RUNSTATE_UPDATE`.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// `VMASST_TYPE_m2p_strict`: keep the M2P table out of user mode.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmu_update_command_in_low_bits() {
        let u = MmuUpdate::machphys(0x1234, 7);
        assert_eq!(u.ptr, 0x123_4000 | MMU_MACHPHYS_UPDATE);
        assert_eq!(u.val, 7);
        assert_eq!(MmuUpdate::normal(0x5008, 1).ptr & 3, MMU_NORMAL_PT_UPDATE);
    }

    #[test]
    fn set_ldt_puts_count_in_arg2() {
        let op = MmuextOp::set_ldt(0xffff_8000_0000_0000, 13);
        assert_eq!(op.nr_ents(), 13);
        assert_eq!(op.arg1, 0xffff_8000_0000_0000);
    }
}
