//! Our grant table in the guest: set up, version switches, granting and
//! ending, the quarantine, behind one lock.

use super::entries::{status_frames_for, SharedEntries, MAX_ENTRIES, MAX_FRAMES};
use super::owned::{GrantBook, GrantTable};
use super::{GrantError, GrantInfo, GrantRef, GrantStats, GrantVersion};
use crate::boot_info::BootInfo;
use crate::fixmap::{self, Slot};
use crate::mm::{Gfn, Page};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use pv_arch::abi::memory::{XENMAPIDX_GRANT_TABLE_STATUS, XENMAPSPACE_GRANT_TABLE};
use pv_arch::abi::xen::{DomId, DOMID_SELF};
use pv_arch::hypercall::grant_table::{self as op, GnttabError};
use pv_arch::hypercall::va_mapping::update_va_mapping;
use spin::{Mutex, MutexGuard};

impl From<GnttabError> for GrantError {
    fn from(error: GnttabError) -> Self {
        match error {
            GnttabError::Errno(errno) => GrantError::Hypercall(errno),
            GnttabError::Status(status) => GrantError::Status(status),
        }
    }
}

/// Everything about the table, under [`state`].
struct State {
    /// The mapped entries; `None` before `init` or after a failed switch.
    entries: Option<SharedEntries>,
    /// The references and the quarantined pages.
    book: GrantBook<Page, MAX_ENTRIES>,
    frames: [u64; MAX_FRAMES],
    nr_frames: usize,
    status_frame: Option<u64>,
    /// Set by [`suspend`]: the version to map again on [`resume`].
    suspended: Option<GrantVersion>,
    /// Whether [`setup`] has succeeded (the table is set up on first
    /// use, see [`ready`]).
    set_up: bool,
}

/// The table's state, built on first use: a `Once` of it is all zeros
/// until then, so the roughly 10 KB it holds (the reference arrays) sit
/// in `.bss` rather than in every guest's image.
static STATE_ONCE: spin::Once<Mutex<State>> = spin::Once::new();

/// [`STATE_ONCE`], built if this is its first use.
fn state() -> &'static Mutex<State> {
    STATE_ONCE.call_once(|| {
        Mutex::new(State {
            entries: None,
            book: GrantBook::new(),
            frames: [0; MAX_FRAMES],
            nr_frames: 0,
            status_frame: None,
            suspended: None,
            set_up: false,
        })
    })
}

/// The version `gnttab=` on the command line asks for (its number; 0
/// before [`init`]).
static WANTED: AtomicU32 = AtomicU32::new(0);

/// The table's state, set up first if this is the first use that needs
/// a table (a grant, a version switch, a query of its shape). While
/// suspended it stays as it is: its entries are `None` until `resume`.
fn ready() -> Result<MutexGuard<'static, State>, GrantError> {
    let mut state = state().lock();
    if !state.set_up {
        setup(&mut state)
            .inspect_err(|error| log::error!("grant: setting up the table: {error}"))?;
        state.set_up = true;
    }
    Ok(state)
}

const TABLE_SLOTS: [Slot; MAX_FRAMES] = [
    Slot::GrantTable0,
    Slot::GrantTable1,
    Slot::GrantTable2,
    Slot::GrantTable3,
];

/// Notes the version the command line asks for (`gnttab=v2`; version 1
/// otherwise). Called once at boot. The table itself is set up on first
/// use ([`ready`]): a guest that never grants (`hello`) neither spends
/// its boot on it nor carries the code, and one that does pays when its
/// first device connects.
pub fn init(boot: &BootInfo) {
    let wanted = GrantVersion::from_cmdline(boot.cmdline());
    WANTED.store(wanted.number(), Ordering::Relaxed);
}

/// Sets up the grant table: the version [`init`] noted (or version 1 if
/// Xen refuses it), up to [`MAX_FRAMES`] table frames, and for version 2
/// the status frame.
fn setup(state: &mut State) -> Result<(), GrantError> {
    let wanted =
        GrantVersion::from_number(WANTED.load(Ordering::Relaxed)).unwrap_or(GrantVersion::V1);
    let size = op::query_size(DOMID_SELF)?;
    let nr_frames = (size.max_nr_frames as usize).min(MAX_FRAMES);
    if nr_frames == 0 {
        return Err(GrantError::NotReady);
    }
    let version = match op::set_version(wanted.number()) {
        Ok(_) => wanted,
        Err(errno) => {
            let now = op::get_version(DOMID_SELF)?;
            let now = GrantVersion::from_number(now).ok_or(GrantError::NotReady)?;
            log::warn!("grant: set_version({wanted}) refused ({errno}); staying at {now}");
            now
        }
    };
    let mut frames = [0u64; MAX_FRAMES];
    if crate::platform::is_pvh() {
        // A translated guest places the frames itself (`map_table`);
        // they are at our slots' guest frames.
        for (frame, slot) in frames.iter_mut().zip(TABLE_SLOTS).take(nr_frames) {
            *frame = (fixmap::address(slot) / 4096) as u64;
        }
    } else {
        op::setup_table(DOMID_SELF, &mut frames[..nr_frames])?;
    }
    state.frames = frames;
    state.nr_frames = nr_frames;
    map_table(state, version)?;
    reset_refs(state);
    log::info!(
        "grant: {version} table, {nr_frames} of {} frames (had {}), {} references",
        size.max_nr_frames,
        size.nr_frames,
        state.book.stats().capacity
    );
    Ok(())
}

/// Frees every reference and every quarantined page: only once Xen has
/// (re)initialised the table, which it does only when no entry is
/// mapped.
fn reset_refs(state: &mut State) {
    let nr_entries = state.entries.as_ref().map_or(0, SharedEntries::nr_entries);
    state.book.reset(nr_entries);
}

/// Maps the table frames (and for version 2 the status frame) as a
/// `version` table. The references are left as they are.
fn map_table(state: &mut State, version: GrantVersion) -> Result<(), GrantError> {
    state.entries = None;
    let mut mapped = [NonNull::dangling(); MAX_FRAMES];
    let pvh = crate::platform::is_pvh();
    for (index, pointer) in mapped.iter_mut().enumerate().take(state.nr_frames) {
        *pointer = if pvh {
            fixmap::place(TABLE_SLOTS[index], XENMAPSPACE_GRANT_TABLE, index as u64)?
        } else {
            // SAFETY: the frame is one of our grant-table frames, which
            // Xen named in `setup_table` and shares with us for good;
            // the slot is reserved for it.
            unsafe { fixmap::map(TABLE_SLOTS[index], Gfn::new(state.frames[index]))? }
        };
    }
    let status = match version {
        GrantVersion::V1 => {
            state.status_frame = None;
            None
        }
        GrantVersion::V2 => {
            let mut status = [0u64; 1];
            debug_assert_eq!(status_frames_for(state.nr_frames), 1);
            let page = if pvh {
                let idx = XENMAPIDX_GRANT_TABLE_STATUS;
                let page = fixmap::place(Slot::GrantStatus, XENMAPSPACE_GRANT_TABLE, idx)?;
                status[0] = (page.as_ptr() as usize / 4096) as u64;
                page
            } else {
                op::get_status_frames(DOMID_SELF, &mut status)?;
                // SAFETY: the status frame Xen just named for our table;
                // the slot is reserved for it.
                unsafe { fixmap::map(Slot::GrantStatus, Gfn::new(status[0]))? }
            };
            state.status_frame = Some(status[0]);
            Some(page)
        }
    };
    // SAFETY: the table slots and the status slot are fixmap pages
    // reserved for the grant table, now mapped to the frames Xen shares
    // with us for the domain's lifetime; only `SharedEntries` accesses
    // them, atomically. The status slot is unmapped only in
    // `set_version`, after this `SharedEntries` is dropped.
    let entries = unsafe { SharedEntries::new(version, &mapped[..state.nr_frames], status) };
    state.entries = Some(entries);
    Ok(())
}

/// Unmaps the status slot (Xen refuses to go back to version 1 while
/// we map a status frame).
fn unmap_status() -> Result<(), GrantError> {
    if crate::platform::is_pvh() {
        // Xen takes the status frames out of a translated guest's
        // physmap itself when the version goes back to 1.
        return Ok(());
    }
    // SAFETY: the status slot is a fixmap page reserved for the grant
    // table; the caller dropped the `SharedEntries` that used it, so no
    // one accesses it any more. A zero PTE leaves it not present.
    unsafe { update_va_mapping(fixmap::address(Slot::GrantStatus), 0, 0) }?;
    Ok(())
}

/// Switches the table to `version`. Refused with [`GrantError::Busy`]
/// while any reference is live; references leaked earlier come back,
/// since Xen switches only when no entry is mapped (it answers `EBUSY`
/// otherwise) and clears every entry but the reserved ones.
pub fn set_version(version: GrantVersion) -> Result<(), GrantError> {
    let mut state = ready()?;
    let current = state
        .entries
        .as_ref()
        .map(SharedEntries::version)
        .ok_or(GrantError::NotReady)?;
    if current == version {
        return Ok(());
    }
    if state.book.live() > 0 {
        return Err(GrantError::Busy);
    }
    state.entries = None;
    if current == GrantVersion::V2 {
        if let Err(error) = unmap_status() {
            map_table(&mut state, current)?;
            return Err(error);
        }
    }
    if let Err(errno) = op::set_version(version.number()) {
        // Nothing changed on Xen's side (an `EBUSY` may mean a leaked
        // reference is still mapped: it stays leaked): map the old
        // table back.
        map_table(&mut state, current)?;
        return Err(GrantError::Hypercall(errno));
    }
    if let Err(error) = map_table(&mut state, version) {
        // Without the status frame we cannot run version 2: go back.
        state.entries = None;
        if version == GrantVersion::V2 {
            let _ = unmap_status();
        }
        if op::set_version(current.number()).is_ok() {
            map_table(&mut state, current)?;
            reset_refs(&mut state);
        }
        return Err(error);
    }
    // Xen switched, so nothing was mapped: leaked references are free,
    // and so are quarantined pages.
    reset_refs(&mut state);
    log::info!("grant: switched to {version}");
    Ok(())
}

/// Before a suspend: forgets the mapped table and, in PV, unmaps its
/// frames (the toolstack refuses to save page tables that name Xen's
/// frames). Grants fail with [`GrantError::NotReady`] until [`resume`].
/// The references stay as they are: pages granted now are still owned
/// by their holders, who end them after the resume.
pub fn suspend() -> Result<(), GrantError> {
    let mut state = state().lock();
    let Some(version) = state.entries.as_ref().map(SharedEntries::version) else {
        return Ok(());
    };
    state.entries = None;
    state.suspended = Some(version);
    if crate::platform::is_pvh() {
        return Ok(());
    }
    for slot in TABLE_SLOTS.iter().take(state.nr_frames) {
        // SAFETY: the grant-table slots are fixmap pages reserved for the
        // table; the `SharedEntries` that used them was just dropped. A
        // zero PTE leaves them not present.
        unsafe { update_va_mapping(fixmap::address(*slot), 0, 0) }?;
    }
    if version == GrantVersion::V2 {
        unmap_status()?;
    }
    Ok(())
}

/// After a suspend: maps the table again. In a new domain
/// (`new_domain`) Xen's table is a fresh, empty one: it is set up again
/// (`setup_table` in PV, placed again in PVH) at the version we used.
/// Every entry granted before is zero now, so a holder that ends its old
/// grant succeeds (and frees the reference) and quarantined pages come
/// free at the next reap; the reserved entries (console, xenstore) were
/// seeded by the toolstack.
pub fn resume(new_domain: bool) -> Result<(), GrantError> {
    let mut state = state().lock();
    let Some(version) = state.suspended.take() else {
        return Ok(());
    };
    if new_domain {
        if version != GrantVersion::V1 {
            op::set_version(version.number())?;
        }
        if !crate::platform::is_pvh() {
            let nr_frames = state.nr_frames;
            let mut frames = [0u64; MAX_FRAMES];
            op::setup_table(DOMID_SELF, &mut frames[..nr_frames])?;
            state.frames = frames;
        }
    }
    map_table(&mut state, version)
}

/// Lets `domid` map or copy frame `frame` (read-only if `readonly`) and
/// returns the reference to hand it. Runs the reaper first.
///
/// # Safety
///
/// The other domain may write the frame (unless `readonly`) until
/// [`end_access`] succeeds: the caller must own it and keep it from any
/// other use (and from the allocator) until then, for good if that never
/// happens. Drivers use [`super::GrantedPage`], which does all this.
pub unsafe fn grant_access(
    domid: DomId,
    frame: Gfn,
    readonly: bool,
) -> Result<GrantRef, GrantError> {
    let mut state = ready()?;
    let state = &mut *state;
    let entries = state.entries.as_ref().ok_or(GrantError::NotReady)?;
    // SAFETY: the caller's promise, passed on.
    unsafe { state.book.grant(entries, domid, frame, readonly) }
}

/// Ends grant `gref` unless the other domain still maps it
/// ([`GrantError::InUse`]: try again later, and do not reuse the page);
/// the reference is free again only on success.
///
/// # Safety
///
/// `gref` must be a reference the caller got from [`grant_access`] and
/// has not ended: ending someone else's frees their reference for reuse
/// while they still believe they hold it.
pub unsafe fn end_access(gref: GrantRef) -> Result<(), GrantError> {
    let mut state = state().lock();
    let state = &mut *state;
    let entries = state.entries.as_ref().ok_or(GrantError::NotReady)?;
    state.book.end(entries, gref)
}

/// Gives up on `gref` for good: ended while still in use.
fn leak(gref: GrantRef) {
    if state().lock().book.leak(gref) {
        log::warn!("grant: reference {gref} still mapped when dropped; leaked");
    }
}

/// Tries to end every quarantined grant again and frees the pages whose
/// grants ended; returns how many. Also runs at the start of every grant.
pub fn reap() -> usize {
    let mut state = state().lock();
    let state = &mut *state;
    match state.entries.as_ref() {
        Some(entries) => state.book.reap(entries),
        None => 0,
    }
}

/// Xen's grant table and our frame allocator, as [`GrantedPage`]s use
/// them.
///
/// [`GrantedPage`]: super::GrantedPage
#[derive(Clone, Copy, Debug, Default)]
pub struct XenGrants;

impl GrantTable for XenGrants {
    type Page = Page;

    fn alloc_page(&self) -> Result<Page, GrantError> {
        Page::new().map_err(|_| GrantError::NoMemory)
    }

    unsafe fn grant(
        &self,
        domid: DomId,
        frame: Gfn,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { grant_access(domid, frame, readonly) }
    }

    unsafe fn end_or_quarantine(&self, gref: GrantRef, page: Page) {
        let mut state = state().lock();
        let state = &mut *state;
        let before = state.book.stats().quarantined;
        state
            .book
            .end_or_quarantine(state.entries.as_ref(), gref, page);
        if state.book.stats().quarantined > before {
            log::warn!("grant: reference {gref} still mapped when dropped; page quarantined");
        }
    }

    fn reap(&self) -> usize {
        reap()
    }

    fn stats(&self) -> GrantStats {
        stats()
    }
}

/// The in-use bits (`GTF_reading | GTF_writing`) Xen shows for `gref`
/// (from the entry in version 1, from the status frame in version 2).
pub fn in_use_bits(gref: GrantRef) -> Result<u16, GrantError> {
    let state = ready()?;
    state
        .entries
        .as_ref()
        .ok_or(GrantError::NotReady)?
        .in_use_bits(gref.value())
}

/// How the table is set up (setting it up if this is the first use), if
/// it could be.
pub fn info() -> Option<GrantInfo> {
    let state = ready().ok()?;
    let entries = state.entries.as_ref()?;
    Some(GrantInfo {
        version: entries.version(),
        frames: state.frames,
        nr_frames: state.nr_frames,
        status_frame: state.status_frame,
        nr_entries: entries.nr_entries(),
    })
}

/// How the references are used, quarantine included.
pub fn stats() -> GrantStats {
    state().lock().book.stats()
}

/// A raw grant of a frame the holder owns some other way (the suite's
/// static pages): ends itself when dropped.
///
/// Dropping it ends the grant if the other domain no longer maps the
/// page; if it still does, the reference is leaked (never handed out
/// again, counted in [`GrantStats`]) instead of being reused while busy,
/// and the frame stays granted. Use [`Grant::end`] to find out and keep
/// the grant when it is busy. Drivers use [`super::GrantedPage`].
#[derive(Debug)]
pub struct Grant {
    gref: GrantRef,
    domid: DomId,
    frame: Gfn,
    readonly: bool,
}

impl Grant {
    /// Grants `domid` access to `frame` (see [`grant_access`]).
    ///
    /// # Safety
    ///
    /// As for [`grant_access`]: the caller owns `frame` and keeps it from
    /// any other use while the grant lives, and for good if dropping it
    /// leaks the reference (a frame that is never freed, such as a static
    /// page, is the safe choice).
    pub unsafe fn new(domid: DomId, frame: Gfn, readonly: bool) -> Result<Grant, GrantError> {
        // SAFETY: the caller's promise, passed on.
        let gref = unsafe { grant_access(domid, frame, readonly) }?;
        Ok(Grant {
            gref,
            domid,
            frame,
            readonly,
        })
    }

    /// The reference to hand to the other domain.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The domain granted access.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The frame granted.
    pub fn frame(&self) -> Gfn {
        self.frame
    }

    /// Whether the grant is read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Ends the grant; if the other domain still maps the page, hands
    /// the grant back with the error so the caller can retry later.
    pub fn end(self) -> Result<(), (Grant, GrantError)> {
        // SAFETY: `gref` is this grant's own, not ended yet (ending
        // consumes or forgets `self`).
        match unsafe { end_access(self.gref) } {
            Ok(()) => {
                core::mem::forget(self);
                Ok(())
            }
            Err(error) => Err((self, error)),
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        // SAFETY: as in `end`; this is the grant's last use.
        if unsafe { end_access(self.gref) }.is_err() {
            leak(self.gref);
        }
    }
}
