//! The p2m frame list: how the toolstack finds our p2m to save us.
//!
//! `xl save` and `xl migrate` of a PV guest copy its memory frame by
//! frame, and must know which machine frame backs each of our pfns. They
//! read it from the guest's own p2m list (`start_info.mfn_list`, our
//! [`super::p2m`]) through a three-level tree of machine frame numbers
//! the guest publishes in `shared_info.arch`: `pfn_to_mfn_frame_list_list`
//! names one page (the *list-list*) holding the mfns of the *frame-list*
//! pages, each of which holds the mfns of 512 pages of the p2m itself;
//! `max_pfn` says how many p2m entries are valid. Without it the save
//! fails at once with `Bad mfn 0 for p2m frame list list` (Xen's
//! `xg_sr_save_x86_pv.c`, `map_p2m_tree`). `xl dump-core` reads the
//! same tree, whenever it is run and without the guest's help, so it is
//! published at boot.
//!
//! The tree names the pages *of* the p2m, not its entries: the balloon
//! changes entries (a frame given back becomes `INVALID_MFN`) but never
//! moves the p2m, so the tree stays right while the balloon works. It
//! must be rebuilt after a resume in a new domain: every machine frame
//! changed (the restore rewrote the p2m's entries for us, but not the
//! tree), and the new shared info page has `pfn_to_mfn_frame_list_list`
//! zeroed. [`publish`] does both, at boot and after each resume.
//!
//! The layout arithmetic is pure and host-tested ([`FrameListShape`],
//! [`fill_tree`]); the guest part allocates the tree's pages once and
//! keeps them.

/// Machine frame numbers per page (8-byte entries, 4 KiB pages).
pub const ENTRIES_PER_PAGE: usize = 512;

/// How big the tree is for a p2m of `nr_entries` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameListShape {
    /// Pages of the p2m itself (leaves).
    pub p2m_pages: usize,
    /// Frame-list pages (mid level), each naming up to 512 p2m pages.
    pub list_pages: usize,
}

impl FrameListShape {
    /// The shape for `nr_entries` p2m entries; `None` if the list-list
    /// (one page, 512 frame-list pages, 2^27 pfns = 512 GiB) cannot name
    /// them all.
    pub fn new(nr_entries: u64) -> Option<FrameListShape> {
        let p2m_pages = usize::try_from(nr_entries.div_ceil(ENTRIES_PER_PAGE as u64)).ok()?;
        let list_pages = p2m_pages.div_ceil(ENTRIES_PER_PAGE).max(1);
        (list_pages <= ENTRIES_PER_PAGE).then_some(FrameListShape {
            p2m_pages,
            list_pages,
        })
    }
}

/// Why the tree could not be filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameListError {
    /// A page of the p2m (index given) has no machine frame.
    NoMfnForP2mPage(usize),
    /// The buffers do not match the shape.
    Shape,
}

/// Fills the tree: `lists[i][j]` is the mfn of p2m page `i * 512 + j`
/// (0 past the last one: the toolstack reads only as many as `max_pfn`
/// implies), `list_list[i]` the mfn of frame-list page `i` (0 past the
/// last). `p2m_page_mfn(i)` is the machine frame of p2m page `i`;
/// `list_mfns[i]` that of frame-list page `i`.
pub fn fill_tree(
    shape: FrameListShape,
    p2m_page_mfn: impl Fn(usize) -> Option<u64>,
    lists: &mut [[u64; ENTRIES_PER_PAGE]],
    list_mfns: &[u64],
    list_list: &mut [u64; ENTRIES_PER_PAGE],
) -> Result<(), FrameListError> {
    if lists.len() != shape.list_pages || list_mfns.len() != shape.list_pages {
        return Err(FrameListError::Shape);
    }
    for (list_index, list) in lists.iter_mut().enumerate() {
        for (slot, entry) in list.iter_mut().enumerate() {
            let page = list_index * ENTRIES_PER_PAGE + slot;
            *entry = if page < shape.p2m_pages {
                p2m_page_mfn(page).ok_or(FrameListError::NoMfnForP2mPage(page))?
            } else {
                0
            };
        }
    }
    list_list.fill(0);
    list_list[..shape.list_pages].copy_from_slice(list_mfns);
    Ok(())
}

#[cfg(target_os = "none")]
pub use guest::{publish, published};

#[cfg(target_os = "none")]
mod guest {
    use super::{fill_tree, FrameListError, FrameListShape, ENTRIES_PER_PAGE};
    use crate::boot_info::PAGE_SIZE;
    use crate::mm::{core, MmError, Page};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use spin::Mutex;

    /// The tree's pages, allocated on first [`publish`] and kept for good
    /// (the toolstack reads them whenever it saves us).
    struct Tree {
        list_list: Page,
        lists: Vec<Page>,
    }

    static TREE: Mutex<Option<Tree>> = Mutex::new(None);
    /// The list-list mfn last published (0: never), for diagnostics.
    static PUBLISHED: AtomicU64 = AtomicU64::new(0);

    impl From<FrameListError> for MmError {
        fn from(error: FrameListError) -> MmError {
            match error {
                FrameListError::NoMfnForP2mPage(_) => MmError::BadLayout("p2m page without an mfn"),
                FrameListError::Shape => MmError::BadLayout("p2m frame list shape"),
            }
        }
    }

    /// Builds (or rebuilds, with today's machine frames) the frame list
    /// of our p2m and publishes it in `shared_info` with `max_pfn`. PV
    /// only; PVH has no p2m of its own and returns at once.
    pub fn publish() -> Result<(), MmError> {
        if crate::platform::is_pvh() {
            return Ok(());
        }
        let core = core()?;
        let p2m = core.p2m();
        let (list_va, nr_entries) = core.p2m_location();
        if !list_va.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::BadLayout("p2m list not page aligned"));
        }
        let first_pfn = list_va / PAGE_SIZE;
        let shape = FrameListShape::new(nr_entries).ok_or(MmError::BadLayout("p2m too large"))?;
        let mut tree = TREE.lock();
        if tree.is_none() {
            let list_list = Page::new()?;
            let lists = (0..shape.list_pages)
                .map(|_| Page::new())
                .collect::<Result<Vec<_>, _>>()?;
            *tree = Some(Tree { list_list, lists });
        }
        let Some(tree) = tree.as_mut() else {
            return Err(MmError::NotInitialized);
        };
        // Today's machine frames of the tree's own pages (they change
        // with every resume in a new domain).
        let list_mfns: Vec<u64> = tree
            .lists
            .iter()
            .map(|page| {
                p2m.mfn(page.pfn().raw())
                    .ok_or(MmError::BadPfn(page.pfn().raw()))
            })
            .collect::<Result<_, _>>()?;
        let mut lists = alloc::vec![[0u64; ENTRIES_PER_PAGE]; shape.list_pages];
        let mut list_list = [0u64; ENTRIES_PER_PAGE];
        fill_tree(
            shape,
            |page| p2m.mfn(first_pfn + page as u64),
            &mut lists,
            &list_mfns,
            &mut list_list,
        )?;
        for (page, list) in tree.lists.iter_mut().zip(&lists) {
            write_entries(page, list);
        }
        write_entries(&mut tree.list_list, &list_list);
        let list_list_mfn = p2m
            .mfn(tree.list_list.pfn().raw())
            .ok_or(MmError::BadPfn(tree.list_list.pfn().raw()))?;
        crate::shared_info::publish_p2m(list_list_mfn, nr_entries);
        PUBLISHED.store(list_list_mfn, Ordering::Relaxed);
        Ok(())
    }

    fn write_entries(page: &mut Page, entries: &[u64; ENTRIES_PER_PAGE]) {
        for (chunk, entry) in page.as_mut_slice().chunks_exact_mut(8).zip(entries) {
            chunk.copy_from_slice(&entry.to_le_bytes());
        }
    }

    /// The machine frame of the list-list page last published (0 if
    /// never): what `shared_info.arch.pfn_to_mfn_frame_list_list` says.
    pub fn published() -> u64 {
        PUBLISHED.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_counts_leaves_and_mid_pages() {
        assert_eq!(
            FrameListShape::new(1),
            Some(FrameListShape {
                p2m_pages: 1,
                list_pages: 1
            })
        );
        // 32 MiB guest: 8192 frames, 16 p2m pages, one frame list.
        let shape = FrameListShape::new(8192).unwrap();
        assert_eq!((shape.p2m_pages, shape.list_pages), (16, 1));
        // 3 GiB and a frame: 1537 p2m pages, four frame lists.
        let shape = FrameListShape::new(512 * 512 * 3 + 1).unwrap();
        assert_eq!((shape.p2m_pages, shape.list_pages), (1537, 4));
        assert!(
            FrameListShape::new(512 * 512 * 512).is_some(),
            "512 GiB fits"
        );
        assert!(
            FrameListShape::new(512 * 512 * 512 + 1).is_none(),
            "beyond one list-list"
        );
    }

    #[test]
    fn tree_names_each_p2m_page_once_and_zero_after() {
        let shape = FrameListShape::new(3 * 512 + 7).unwrap();
        assert_eq!(shape.p2m_pages, 4);
        let mut lists = vec![[0xdead; ENTRIES_PER_PAGE]; 1];
        let mut list_list = [0xbeef; ENTRIES_PER_PAGE];
        fill_tree(
            shape,
            |page| Some(0x1000 + page as u64),
            &mut lists,
            &[0x77],
            &mut list_list,
        )
        .unwrap();
        assert_eq!(&lists[0][..5], &[0x1000, 0x1001, 0x1002, 0x1003, 0]);
        assert!(lists[0][4..].iter().all(|&e| e == 0));
        assert_eq!(list_list[0], 0x77);
        assert!(list_list[1..].iter().all(|&e| e == 0));
    }

    #[test]
    fn a_p2m_page_without_a_frame_or_a_wrong_shape_is_refused() {
        let shape = FrameListShape::new(1024).unwrap();
        let mut lists = vec![[0; ENTRIES_PER_PAGE]; 1];
        let mut list_list = [0; ENTRIES_PER_PAGE];
        let hole = |page: usize| (page != 1).then_some(5);
        assert_eq!(
            fill_tree(shape, hole, &mut lists, &[9], &mut list_list),
            Err(FrameListError::NoMfnForP2mPage(1))
        );
        assert_eq!(
            fill_tree(shape, |_| Some(1), &mut lists, &[], &mut list_list),
            Err(FrameListError::Shape)
        );
    }
}
