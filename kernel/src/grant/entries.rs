//! Reading and writing our grant entries in the frames Xen shares with us.
//!
//! Xen reads an entry when another domain maps or copies it and writes
//! the in-use bits (`GTF_reading`/`GTF_writing`: in the entry's `flags`
//! for version 1, in a separate status frame for version 2), so every
//! access here is atomic; nothing hands out a reference into the frames.
//!
//! The order of writes is the protocol: an entry becomes valid when its
//! `flags` say `GTF_permit_access`, so the frame and domid are written
//! first, then (after a release barrier) the flags; to end a grant the
//! flags are cleared only if the other side is not using it.

use super::error::GrantError;
use super::GrantVersion;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, Ordering};
use pv_arch::abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING};
use pv_arch::abi::xen::DomId;

/// Bytes in a page.
pub const PAGE_SIZE: usize = 4096;
/// Version 1 entries (8 bytes) per frame.
pub const V1_PER_FRAME: usize = PAGE_SIZE / 8;
/// Version 2 entries (16 bytes) per frame.
pub const V2_PER_FRAME: usize = PAGE_SIZE / 16;
/// Version 2 status words (2 bytes) per status frame.
pub const STATUS_PER_FRAME: usize = PAGE_SIZE / 2;
/// Most table frames we map.
pub const MAX_FRAMES: usize = 4;
/// Most entries a table of [`MAX_FRAMES`] holds (version 1).
pub const MAX_ENTRIES: usize = MAX_FRAMES * V1_PER_FRAME;

/// Status frames a version 2 table of `frames` table frames has.
pub const fn status_frames_for(frames: usize) -> usize {
    (frames * V2_PER_FRAME).div_ceil(STATUS_PER_FRAME)
}

/// Our mapped grant table: its frames, its version and, for version 2,
/// its status frame.
pub struct SharedEntries {
    version: GrantVersion,
    frames: [Option<NonNull<u8>>; MAX_FRAMES],
    nr_frames: usize,
    status: Option<NonNull<u8>>,
}

// SAFETY: the pointers name frames shared with Xen for the guest's
// lifetime (see `new`); every access through them is atomic, so moving
// the table between contexts (it lives in a Mutex) is sound.
unsafe impl Send for SharedEntries {}

impl SharedEntries {
    /// Wraps a mapped table.
    ///
    /// # Safety
    ///
    /// Each of `frames` (at most [`MAX_FRAMES`]) and `status` must be a
    /// page-aligned, writable mapping of 4096 bytes that stays mapped and
    /// is accessed only atomically (by us and by Xen) as long as the
    /// returned value or anything built from it is used; `status` must
    /// be `Some` for version 2 with at least [`status_frames_for`] frames
    /// (one page, which covers up to 8 table frames).
    pub unsafe fn new(
        version: GrantVersion,
        frames: &[NonNull<u8>],
        status: Option<NonNull<u8>>,
    ) -> Self {
        let mut table = SharedEntries {
            version,
            frames: [None; MAX_FRAMES],
            nr_frames: frames.len().min(MAX_FRAMES),
            status: if version == GrantVersion::V2 {
                status
            } else {
                None
            },
        };
        for (slot, frame) in table.frames.iter_mut().zip(frames) {
            *slot = Some(*frame);
        }
        if version == GrantVersion::V2 && table.status.is_none() {
            table.nr_frames = 0;
        }
        table
    }

    /// The version the entries are laid out in.
    pub fn version(&self) -> GrantVersion {
        self.version
    }

    /// Frames mapped.
    pub fn nr_frames(&self) -> usize {
        self.nr_frames
    }

    /// Entries in the mapped frames.
    pub fn nr_entries(&self) -> u32 {
        let per_frame = match self.version {
            GrantVersion::V1 => V1_PER_FRAME,
            GrantVersion::V2 => V2_PER_FRAME,
        };
        (self.nr_frames * per_frame) as u32
    }

    /// Address of entry `gref` (8 or 16 bytes, aligned to its size).
    fn entry(&self, gref: u32) -> Result<NonNull<u8>, GrantError> {
        if gref >= self.nr_entries() {
            return Err(GrantError::BadRef(gref));
        }
        let (per_frame, size) = match self.version {
            GrantVersion::V1 => (V1_PER_FRAME, 8),
            GrantVersion::V2 => (V2_PER_FRAME, 16),
        };
        let index = gref as usize;
        let frame = self.frames[index / per_frame].ok_or(GrantError::NotReady)?;
        // SAFETY: `index % per_frame * size` < 4096, inside the frame.
        Ok(unsafe { frame.add(index % per_frame * size) })
    }

    /// The entry's `flags` word.
    fn flags(&self, gref: u32) -> Result<&AtomicU16, GrantError> {
        let entry = self.entry(gref)?;
        // SAFETY: offset 0 of an 8- or 16-byte aligned entry is an aligned
        // u16 in a mapped frame that lives as long as `self` (`new`'s
        // contract) and that everyone accesses atomically.
        Ok(unsafe { AtomicU16::from_ptr(entry.cast::<u16>().as_ptr()) })
    }

    /// The version 2 status word of `gref`.
    fn status_word(&self, gref: u32) -> Result<&AtomicU16, GrantError> {
        let status = self.status.ok_or(GrantError::NotReady)?;
        let index = gref as usize;
        if gref >= self.nr_entries() || index >= STATUS_PER_FRAME {
            return Err(GrantError::BadRef(gref));
        }
        // SAFETY: `index` < 2048 words, inside the one status page, which
        // stays mapped as long as `self` (`new`'s contract) and is only
        // accessed atomically.
        Ok(unsafe { AtomicU16::from_ptr(status.cast::<u16>().as_ptr().add(index)) })
    }

    /// Fills entry `gref` to let `domid` access `frame`, and only then
    /// (after a release barrier) makes it valid.
    ///
    /// # Safety
    ///
    /// From the call on, `domid` may map `frame` (and write it unless
    /// `readonly`): the caller must own the frame and keep it out of any
    /// other use until [`Self::end`] has succeeded.
    pub unsafe fn grant(
        &self,
        gref: u32,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<(), GrantError> {
        let entry = self.entry(gref)?;
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        match self.version {
            GrantVersion::V1 => {
                let frame = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge(frame))?;
                // SAFETY: the v1 entry is { u16 flags, u16 domid, u32 frame }
                // at an 8-byte aligned address in a live mapped frame;
                // domid (offset 2) and frame (offset 4) are aligned, and
                // only accessed atomically.
                unsafe {
                    AtomicU32::from_ptr(entry.add(4).cast::<u32>().as_ptr())
                        .store(frame, Ordering::Relaxed);
                    AtomicU16::from_ptr(entry.add(2).cast::<u16>().as_ptr())
                        .store(domid, Ordering::Relaxed);
                }
            }
            GrantVersion::V2 => {
                // SAFETY: the v2 full_page arm is { u16 flags, u16 domid,
                // u32 pad, u64 frame } at a 16-byte aligned address in a
                // live mapped frame; every field is aligned and only
                // accessed atomically.
                unsafe {
                    AtomicU64::from_ptr(entry.add(8).cast::<u64>().as_ptr())
                        .store(frame, Ordering::Relaxed);
                    AtomicU32::from_ptr(entry.add(4).cast::<u32>().as_ptr())
                        .store(0, Ordering::Relaxed);
                    AtomicU16::from_ptr(entry.add(2).cast::<u16>().as_ptr())
                        .store(domid, Ordering::Relaxed);
                }
            }
        }
        // The write barrier: Xen must never see the flags before the
        // frame and domid they vouch for.
        fence(Ordering::Release);
        self.flags(gref)?.store(flags, Ordering::Release);
        Ok(())
    }

    /// Ends the grant in entry `gref` unless the other side is using it.
    ///
    /// Version 1: the flags are cleared by compare-and-swap only while
    /// neither `GTF_reading` nor `GTF_writing` is set, so Xen cannot pin
    /// the entry in between; if one is, the entry is left as it is.
    /// Version 2: the flags are cleared first (no new mapping can start),
    /// then the status word decides; an entry in use is left invalid,
    /// and a later call checks again.
    pub fn end(&self, gref: u32) -> Result<(), GrantError> {
        let flags = self.flags(gref)?;
        match self.version {
            GrantVersion::V1 => {
                let mut current = flags.load(Ordering::Acquire);
                loop {
                    if current & (GTF_READING | GTF_WRITING) != 0 {
                        return Err(GrantError::InUse);
                    }
                    match flags.compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Ok(()),
                        Err(now) => current = now,
                    }
                }
            }
            GrantVersion::V2 => {
                let status = self.status_word(gref)?;
                flags.store(0, Ordering::SeqCst);
                // Xen sets the status bits and then re-reads the flags;
                // this full barrier pairs with its own so that either it
                // sees our cleared flags or we see its status bits.
                fence(Ordering::SeqCst);
                if status.load(Ordering::Acquire) & (GTF_READING | GTF_WRITING) != 0 {
                    Err(GrantError::InUse)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The in-use bits (`GTF_reading | GTF_writing`) of entry `gref`.
    pub fn in_use_bits(&self, gref: u32) -> Result<u16, GrantError> {
        let word = match self.version {
            GrantVersion::V1 => self.flags(gref)?,
            GrantVersion::V2 => self.status_word(gref)?,
        };
        Ok(word.load(Ordering::Acquire) & (GTF_READING | GTF_WRITING))
    }

    /// The entry's `flags` as we or Xen last wrote them.
    pub fn entry_flags(&self, gref: u32) -> Result<u16, GrantError> {
        Ok(self.flags(gref)?.load(Ordering::Acquire))
    }
}

impl super::owned::GrantEntries for SharedEntries {
    unsafe fn grant(
        &self,
        gref: u32,
        domid: DomId,
        frame: crate::mm::Gfn,
        readonly: bool,
    ) -> Result<(), GrantError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { SharedEntries::grant(self, gref, domid, frame.raw(), readonly) }
    }

    fn end(&self, gref: u32) -> Result<(), GrantError> {
        SharedEntries::end(self, gref)
    }
}

#[cfg(test)]
mod tests {
    /// Grants through `table` in a test: the frames are made-up numbers
    /// that only the test's own memory (standing in for Xen) ever sees.
    fn grant(
        table: &SharedEntries,
        gref: u32,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<(), GrantError> {
        // SAFETY: nothing maps the test table's entries; the frame
        // numbers are never dereferenced.
        unsafe { table.grant(gref, domid, frame, readonly) }
    }

    use super::*;
    use alloc::boxed::Box;

    #[repr(C, align(4096))]
    struct Page([u8; PAGE_SIZE]);

    /// Heap pages standing in for the frames Xen shares.
    fn pages<const K: usize>() -> Box<[Page; K]> {
        Box::new(core::array::from_fn(|_| Page([0; PAGE_SIZE])))
    }

    /// Pointers to each page, all taken from one borrow of the array.
    fn ptrs<const K: usize>(pages: &mut [Page; K]) -> [NonNull<u8>; K] {
        let base = pages.as_mut_ptr();
        // SAFETY: `i < K`, in bounds of the array.
        core::array::from_fn(|i| NonNull::new(unsafe { base.add(i) }.cast::<u8>()).unwrap())
    }

    fn read_u16(page: &Page, offset: usize) -> u16 {
        u16::from_ne_bytes([page.0[offset], page.0[offset + 1]])
    }

    fn read_u32(page: &Page, offset: usize) -> u32 {
        u32::from_ne_bytes(page.0[offset..offset + 4].try_into().unwrap())
    }

    fn read_u64(page: &Page, offset: usize) -> u64 {
        u64::from_ne_bytes(page.0[offset..offset + 8].try_into().unwrap())
    }

    #[test]
    fn v1_layout_and_end() {
        let mut frames = pages::<2>();
        let frame_ptrs = ptrs(&mut frames);
        // SAFETY: the pages outlive `table` and are only used through it
        // until the raw reads after it is done with them.
        let table = unsafe { SharedEntries::new(GrantVersion::V1, &frame_ptrs, None) };
        assert_eq!(table.nr_entries(), 1024);
        grant(&table, 513, 7, 0x1234_5678, true).unwrap();
        assert_eq!(
            grant(&table, 1024, 7, 1, false),
            Err(GrantError::BadRef(1024))
        );
        assert_eq!(
            grant(&table, 9, 7, 1 << 32, false),
            Err(GrantError::FrameTooLarge(1 << 32))
        );
        assert_eq!(table.entry_flags(513), Ok(GTF_PERMIT_ACCESS | GTF_READONLY));
        // Xen marks it mapped: ending is refused and changes nothing.
        table
            .flags(513)
            .unwrap()
            .fetch_or(GTF_READING, Ordering::SeqCst);
        assert_eq!(table.in_use_bits(513), Ok(GTF_READING));
        assert_eq!(table.end(513), Err(GrantError::InUse));
        assert_eq!(
            table.entry_flags(513),
            Ok(GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING)
        );
        table
            .flags(513)
            .unwrap()
            .fetch_and(!GTF_READING, Ordering::SeqCst);
        assert_eq!(table.end(513), Ok(()));
        // Done with `table`; now read the raw bytes Xen would see.
        let second = &frames[1];
        assert_eq!(read_u16(second, 8), 0);
        assert_eq!(read_u16(second, 10), 7);
        assert_eq!(read_u32(second, 12), 0x1234_5678);
    }

    #[test]
    fn v2_layout_and_status() {
        let mut frames = pages::<2>();
        let mut status = pages::<1>();
        let frame_ptrs = ptrs(&mut frames);
        let [status_ptr] = ptrs(&mut status);
        // SAFETY: as in `v1_layout_and_end`.
        let table = unsafe { SharedEntries::new(GrantVersion::V2, &frame_ptrs, Some(status_ptr)) };
        assert_eq!(table.nr_entries(), 512);
        grant(&table, 300, 3, 0xab_cdef_0123, false).unwrap();
        assert_eq!(table.entry_flags(300), Ok(GTF_PERMIT_ACCESS));
        table
            .status_word(300)
            .unwrap()
            .store(GTF_READING | GTF_WRITING, Ordering::SeqCst);
        assert_eq!(table.in_use_bits(300), Ok(GTF_READING | GTF_WRITING));
        // In use: the flags are withdrawn anyway, the answer is InUse.
        assert_eq!(table.end(300), Err(GrantError::InUse));
        assert_eq!(table.entry_flags(300), Ok(0));
        table.status_word(300).unwrap().store(0, Ordering::SeqCst);
        assert_eq!(table.end(300), Ok(()));
        // Done with `table`; now read the raw bytes Xen would see.
        let entry = (300 - 256) * 16;
        assert_eq!(read_u16(&frames[1], entry + 2), 3);
        assert_eq!(read_u64(&frames[1], entry + 8), 0xab_cdef_0123);
        assert_eq!(read_u16(&status[0], 600), 0);
    }

    #[test]
    fn v2_without_status_maps_nothing() {
        let mut frames = pages::<1>();
        let frame_ptrs = ptrs(&mut frames);
        // SAFETY: as in `v1_layout_and_end`.
        let table = unsafe { SharedEntries::new(GrantVersion::V2, &frame_ptrs, None) };
        assert_eq!(table.nr_entries(), 0);
        assert_eq!(grant(&table, 8, 0, 1, false), Err(GrantError::BadRef(8)));
    }

    #[test]
    fn status_frames() {
        assert_eq!(status_frames_for(1), 1);
        assert_eq!(status_frames_for(8), 1);
        assert_eq!(status_frames_for(9), 2);
    }
}
