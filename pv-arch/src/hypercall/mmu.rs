//! `HYPERVISOR_mmu_update` and `HYPERVISOR_mmuext_op`: page-table writes,
//! pinning, base pointers and TLB flushes.
//!
//! A PV guest's page tables are read-only to it. It writes an entry with
//! [`mmu_update`] (a batch of [`MmuUpdate`] requests, each checked by Xen
//! against the frame's owner and type) and asks for everything else a
//! native kernel does with privileged instructions through
//! [`mmuext_op`]: pin a frame as a page table of some level, switch
//! `%cr3`, flush TLBs. Both calls process a batch in order and stop at the
//! first request Xen refuses, reporting how many succeeded.
//!
//! Operations that can change what a virtual address means (writing a
//! page-table entry, switching the base pointer, zeroing a frame) are
//! `unsafe`; pinning, unpinning and flushes cannot break Rust's view of
//! memory and are safe.

use super::raw::hypercall;
use crate::abi::mmu::{
    MmuUpdate, MmuextOp, MMUEXT_CLEAR_PAGE, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE,
};
use crate::abi::xen::{hypercall_nr, DomId, XenPfn, DOMID_SELF};
use crate::errno::Errno;
use core::fmt;

/// A batch Xen stopped part way: why, and how many requests it had done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// What Xen returned for the request it refused.
    pub errno: Errno,
    /// Requests completed before it (the `pdone` / `success_count` output).
    pub done: u32,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} requests", self.errno, self.done)
    }
}

impl From<BatchError> for Errno {
    fn from(error: BatchError) -> Errno {
        error.errno
    }
}

/// The largest batch: the top bit of the count is Xen's
/// `MMU_UPDATE_PREEMPTED` continuation flag, which a guest must not set.
const MAX_BATCH: usize = (1 << 31) - 1;

/// Page-table levels, for pinning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableLevel {
    /// Maps 4 KiB pages.
    L1,
    /// Points at L1 tables (2 MiB per entry).
    L2,
    /// Points at L2 tables (1 GiB per entry).
    L3,
    /// The root (`%cr3`), 512 GiB per entry.
    L4,
}

impl TableLevel {
    /// The `MMUEXT_PIN_Lx_TABLE` command for this level.
    pub const fn pin_cmd(self) -> u32 {
        match self {
            TableLevel::L1 => MMUEXT_PIN_L1_TABLE,
            TableLevel::L2 => MMUEXT_PIN_L2_TABLE,
            TableLevel::L3 => MMUEXT_PIN_L3_TABLE,
            TableLevel::L4 => MMUEXT_PIN_L4_TABLE,
        }
    }
}

/// Issues a batched call whose third argument is a `pdone` count.
///
/// # Safety
///
/// `nr` must be `MMU_UPDATE` or `MMUEXT_OP`, `ptr`/`len` an array of that
/// call's request type that Xen may read, and the requests must be safe
/// to carry out (see the public callers).
unsafe fn batched(nr: usize, ptr: u64, len: usize, foreign_dom: DomId) -> Result<u32, BatchError> {
    if len > MAX_BATCH {
        return Err(BatchError {
            errno: Errno::E2BIG,
            done: 0,
        });
    }
    let mut done: u32 = 0;
    // SAFETY: Xen reads `len` requests at `ptr` (the caller's contract)
    // and writes one `unsigned int` to `done`, alive on our stack.
    let result = unsafe {
        hypercall(
            nr,
            [
                ptr,
                len as u64,
                &raw mut done as u64,
                u64::from(foreign_dom),
                0,
            ],
        )
    };
    match result {
        Ok(_) => Ok(done),
        Err(errno) => Err(BatchError { errno, done }),
    }
}

/// `HYPERVISOR_mmu_update`: carries out `requests` in order, on page
/// tables owned by `foreign_dom` (normally `DOMID_SELF`). Returns the
/// number done, which is `requests.len()` on success.
///
/// # Safety
///
/// Each request rewrites a page-table entry (or an M2P entry). Xen checks
/// that the new entry is permitted, but not that it agrees with Rust: no
/// virtual page whose mapping changes (or disappears) may be referenced
/// by live Rust references, and a page mapped anew must be used only as
/// its owner allows.
pub unsafe fn mmu_update(requests: &[MmuUpdate], foreign_dom: DomId) -> Result<u32, BatchError> {
    // SAFETY: the slice is valid for reads of its length; what the
    // requests change is the caller's responsibility (`# Safety`).
    unsafe {
        batched(
            hypercall_nr::MMU_UPDATE,
            requests.as_ptr() as u64,
            requests.len(),
            foreign_dom,
        )
    }
}

/// `HYPERVISOR_mmuext_op`: carries out `ops` in order for `foreign_dom`
/// (normally `DOMID_SELF`). Returns the number done.
///
/// # Safety
///
/// The batch may contain any command, including ones that switch the
/// page-table base or zero frames: the caller must make sure none of them
/// changes memory that live Rust references rely on.
pub unsafe fn mmuext_op(ops: &[MmuextOp], foreign_dom: DomId) -> Result<u32, BatchError> {
    // SAFETY: the slice is valid for reads of its length; the commands'
    // effects are the caller's responsibility (`# Safety`).
    unsafe {
        batched(
            hypercall_nr::MMUEXT_OP,
            ops.as_ptr() as u64,
            ops.len(),
            foreign_dom,
        )
    }
}

/// Runs one command that cannot change what any virtual address maps to.
fn harmless_op(op: MmuextOp) -> Result<(), Errno> {
    // SAFETY: only called below with pin, unpin, TLB-flush and INVLPG
    // commands, which change frame types or the TLB, never the contents
    // or meaning of memory Rust can reach.
    unsafe { mmuext_op(&[op], DOMID_SELF) }
        .map(drop)
        .map_err(Errno::from)
}

/// `MMUEXT_PIN_Lx_TABLE`: validates frame `mfn` as a page table of
/// `level` and keeps it typed so even while unlinked. Xen refuses if the
/// frame is mapped writable anywhere or its entries are not permitted.
pub fn pin_table(level: TableLevel, mfn: XenPfn) -> Result<(), Errno> {
    harmless_op(MmuextOp::with_mfn(level.pin_cmd(), mfn))
}

/// `MMUEXT_UNPIN_TABLE`: drops a pin taken by [`pin_table`].
pub fn unpin_table(mfn: XenPfn) -> Result<(), Errno> {
    harmless_op(MmuextOp::with_mfn(MMUEXT_UNPIN_TABLE, mfn))
}

/// `MMUEXT_TLB_FLUSH_LOCAL`: flushes this vCPU's TLB.
pub fn tlb_flush_local() -> Result<(), Errno> {
    harmless_op(MmuextOp::bare(MMUEXT_TLB_FLUSH_LOCAL))
}

/// `MMUEXT_TLB_FLUSH_ALL`: flushes the TLBs of all of our vCPUs.
pub fn tlb_flush_all() -> Result<(), Errno> {
    harmless_op(MmuextOp::bare(MMUEXT_TLB_FLUSH_ALL))
}

/// `MMUEXT_INVLPG_LOCAL`: drops `va` from this vCPU's TLB.
pub fn invlpg_local(va: u64) -> Result<(), Errno> {
    harmless_op(MmuextOp::with_linear_addr(MMUEXT_INVLPG_LOCAL, va))
}

/// `MMUEXT_INVLPG_ALL`: drops `va` from the TLBs of all of our vCPUs.
pub fn invlpg_all(va: u64) -> Result<(), Errno> {
    harmless_op(MmuextOp::with_linear_addr(MMUEXT_INVLPG_ALL, va))
}

/// `MMUEXT_NEW_BASEPTR`: switches the kernel page-table root to `mfn`.
///
/// # Safety
///
/// Everything the running code uses (text, stack, data, every live
/// reference) must be mapped identically by the new root.
pub unsafe fn new_baseptr(mfn: XenPfn) -> Result<(), Errno> {
    // SAFETY: the caller guarantees the new root maps what we use.
    unsafe { mmuext_op(&[MmuextOp::with_mfn(MMUEXT_NEW_BASEPTR, mfn)], DOMID_SELF) }
        .map(drop)
        .map_err(Errno::from)
}

/// `MMUEXT_CLEAR_PAGE`: has Xen zero machine frame `mfn` (one of ours,
/// not a page table), whether or not it is mapped.
///
/// # Safety
///
/// No live Rust reference may point into the frame's contents.
pub unsafe fn clear_page(mfn: XenPfn) -> Result<(), Errno> {
    // SAFETY: the caller guarantees nothing relies on the old contents.
    unsafe { mmuext_op(&[MmuextOp::with_mfn(MMUEXT_CLEAR_PAGE, mfn)], DOMID_SELF) }
        .map(drop)
        .map_err(Errno::from)
}
