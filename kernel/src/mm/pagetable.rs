//! x86_64 page-table entries as a PV guest writes them, and batches of
//! `mmu_update` requests.
//!
//! Four levels of 512 entries; an entry holds a machine frame number and
//! flag bits. Xen checks every entry a PV guest writes (it must not map a
//! page table writable, nor a frame that is not ours) and adds `USER` to
//! kernel mappings itself, since a 64-bit PV kernel runs in ring 3. This
//! module is pure: indices, entry encoding, and [`UpdateBatch`], which
//! gathers requests and hands them to a flush function in batches.

use pv_arch::abi::mmu::MmuUpdate;

/// Entries per table.
pub const ENTRIES: usize = 512;

/// Entry flag bits.
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-accessible (Xen sets it on kernel mappings of PV guests).
    pub const USER: u64 = 1 << 2;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// A large page (L2/L3), which PV guests may not use.
    pub const HUGE: u64 = 1 << 7;
    /// No-execute.
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// Bits of an entry holding the frame's machine address.
pub const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Flags of a data page mapped read-write.
pub const LEAF_WRITABLE: u64 = flags::PRESENT | flags::WRITABLE | flags::ACCESSED | flags::DIRTY;
/// Flags of a data page (or a page table) mapped read-only.
pub const LEAF_READ_ONLY: u64 = flags::PRESENT | flags::ACCESSED;
/// Flags of an entry pointing at a lower-level table.
pub const TABLE: u64 =
    flags::PRESENT | flags::WRITABLE | flags::USER | flags::ACCESSED | flags::DIRTY;

/// The index into the level-`level` table (1..=4) for virtual address `va`.
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// An entry mapping machine frame `mfn` with `flags`.
pub const fn entry(mfn: u64, flags: u64) -> u64 {
    ((mfn << 12) & ADDRESS_MASK) | flags
}

/// The machine frame an entry points at.
pub const fn entry_mfn(entry: u64) -> u64 {
    (entry & ADDRESS_MASK) >> 12
}

/// Whether an entry is present.
pub const fn is_present(entry: u64) -> bool {
    entry & flags::PRESENT != 0
}

/// Whether an entry maps its frame writable.
pub const fn is_writable(entry: u64) -> bool {
    entry & flags::WRITABLE != 0
}

/// The machine address of entry `index` of the table in frame `table_mfn`
/// (what `mmu_update` takes in `ptr`).
pub const fn entry_maddr(table_mfn: u64, index: usize) -> u64 {
    (table_mfn << 12) + index as u64 * 8
}

/// Requests gathered for one `mmu_update` call.
pub struct UpdateBatch<const N: usize> {
    requests: [MmuUpdate; N],
    len: usize,
    /// Requests flushed so far.
    pub flushed: u64,
}

impl<const N: usize> UpdateBatch<N> {
    /// An empty batch.
    pub const fn new() -> Self {
        UpdateBatch {
            requests: [MmuUpdate { ptr: 0, val: 0 }; N],
            len: 0,
            flushed: 0,
        }
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a request, flushing first with `flush` if the batch is full.
    pub fn push<E>(
        &mut self,
        request: MmuUpdate,
        flush: impl FnMut(&[MmuUpdate]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.len == N {
            self.flush(flush)?;
        }
        self.requests[self.len] = request;
        self.len += 1;
        Ok(())
    }

    /// Hands the waiting requests to `flush` (if any) and empties the
    /// batch; on error the requests are dropped.
    pub fn flush<E>(
        &mut self,
        mut flush: impl FnMut(&[MmuUpdate]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.len == 0 {
            return Ok(());
        }
        let len = core::mem::take(&mut self.len);
        flush(&self.requests[..len])?;
        self.flushed += len as u64;
        Ok(())
    }
}

impl<const N: usize> Default for UpdateBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_entries() {
        let va = 0x0000_4000_0020_3000u64;
        assert_eq!(index(va, 4), 128);
        assert_eq!(index(va, 3), 0);
        assert_eq!(index(va, 2), 1);
        assert_eq!(index(va, 1), 3);
        let e = entry(0x1234_5678, LEAF_WRITABLE | flags::NO_EXECUTE);
        assert_eq!(entry_mfn(e), 0x1234_5678);
        assert!(is_present(e) && is_writable(e));
        assert!(!is_writable(entry(1, LEAF_READ_ONLY)));
        assert_eq!(entry_maddr(0x10, 3), 0x10018);
    }

    #[test]
    fn batches_flush_when_full_and_on_demand() {
        let mut seen = Vec::new();
        let mut batch = UpdateBatch::<3>::new();
        for i in 0..7 {
            batch
                .push(MmuUpdate::normal(i * 8, i), |r: &[MmuUpdate]| {
                    seen.push(r.len());
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        batch
            .flush(|r: &[MmuUpdate]| {
                seen.push(r.len());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(seen, [3, 3, 1]);
        assert_eq!(batch.flushed, 7);
        assert!(batch.is_empty());
        assert_eq!(batch.flush(|_| Err(())), Ok(()), "empty flush is a no-op");
    }
}
