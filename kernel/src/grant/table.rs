//! Our grant table in the guest: set up, version switches, granting and
//! ending, behind one lock.

use super::entries::{status_frames_for, SharedEntries, MAX_ENTRIES, MAX_FRAMES};
use super::refs::{RefAllocator, RefState};
use super::{GrantError, GrantInfo, GrantRef, GrantStats, GrantVersion};
use crate::boot_info::BootInfo;
use crate::fixmap::{self, Slot};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use pv_arch::abi::memory::{XENMAPIDX_GRANT_TABLE_STATUS, XENMAPSPACE_GRANT_TABLE};
use pv_arch::abi::xen::{DomId, DOMID_SELF};
use pv_arch::hypercall::grant_table::{self as op, GnttabError};
use pv_arch::hypercall::va_mapping::update_va_mapping;
use spin::Mutex;

impl From<GnttabError> for GrantError {
    fn from(error: GnttabError) -> Self {
        match error {
            GnttabError::Errno(errno) => GrantError::Hypercall(errno),
            GnttabError::Status(status) => GrantError::Status(status),
        }
    }
}

/// Everything about the table, under [`STATE`].
struct State {
    /// The mapped entries; `None` before `init` or after a failed switch.
    entries: Option<SharedEntries>,
    refs: RefAllocator<MAX_ENTRIES>,
    frames: [u64; MAX_FRAMES],
    nr_frames: usize,
    status_frame: Option<u64>,
}

static STATE: Mutex<State> = Mutex::new(State {
    entries: None,
    refs: RefAllocator::new(),
    frames: [0; MAX_FRAMES],
    nr_frames: 0,
    status_frame: None,
});

/// References given up on since boot.
static LEAKED_TOTAL: AtomicUsize = AtomicUsize::new(0);

const TABLE_SLOTS: [Slot; MAX_FRAMES] = [
    Slot::GrantTable0,
    Slot::GrantTable1,
    Slot::GrantTable2,
    Slot::GrantTable3,
];

/// Sets up the grant table: the version the command line asks for
/// (`gnttab=v2`; version 1 otherwise, or if Xen refuses version 2), up
/// to [`MAX_FRAMES`] table frames, and for version 2 the status frame.
/// Called once at boot, after the scheduler.
pub fn init(boot: &BootInfo) -> Result<(), GrantError> {
    setup(boot).inspect_err(|error| log::error!("grant: setting up the table: {error}"))
}

fn setup(boot: &BootInfo) -> Result<(), GrantError> {
    let wanted = GrantVersion::from_cmdline(boot.cmdline());
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
    let mut state = STATE.lock();
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
    map_table(&mut state, version)?;
    reset_refs(&mut state);
    log::info!(
        "grant: {version} table, {nr_frames} of {} frames (had {}), {} references",
        size.max_nr_frames,
        size.nr_frames,
        state.refs.capacity()
    );
    Ok(())
}

/// Frees every reference: only once Xen has (re)initialised the table,
/// which it does only when no entry is mapped.
fn reset_refs(state: &mut State) {
    let nr_entries = state.entries.as_ref().map_or(0, SharedEntries::nr_entries);
    state.refs.reset(nr_entries);
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
            fixmap::map(TABLE_SLOTS[index], state.frames[index])?
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
                fixmap::map(Slot::GrantStatus, status[0])?
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
    let mut state = STATE.lock();
    let current = state
        .entries
        .as_ref()
        .map(SharedEntries::version)
        .ok_or(GrantError::NotReady)?;
    if current == version {
        return Ok(());
    }
    if state.refs.live_count() > 0 {
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
    // Xen switched, so nothing was mapped: leaked references are free.
    reset_refs(&mut state);
    log::info!("grant: switched to {version}");
    Ok(())
}

/// Lets `domid` map or copy machine frame `frame` (read-only if
/// `readonly`) and returns the reference to hand it.
///
/// The frame should be a page kept for sharing: the other domain may
/// write it (unless `readonly`) until [`end_access`] succeeds.
pub fn grant_access(domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
    let mut state = STATE.lock();
    let state = &mut *state;
    let entries = state.entries.as_ref().ok_or(GrantError::NotReady)?;
    let gref = state.refs.alloc().ok_or(GrantError::NoFreeRefs)?;
    match entries.grant(gref, domid, frame, readonly) {
        Ok(()) => Ok(GrantRef(gref)),
        Err(error) => {
            // The entry was not made valid: the reference is clean.
            let _ = state.refs.free(gref);
            Err(error)
        }
    }
}

/// Ends grant `gref` unless the other domain still maps it
/// ([`GrantError::InUse`]: try again later, and do not reuse the page);
/// the reference is free again only on success.
pub fn end_access(gref: GrantRef) -> Result<(), GrantError> {
    let mut state = STATE.lock();
    let state = &mut *state;
    let entries = state.entries.as_ref().ok_or(GrantError::NotReady)?;
    if state.refs.state(gref.0) != RefState::Live {
        return Err(GrantError::BadRef(gref.0));
    }
    entries.end(gref.0)?;
    state
        .refs
        .free(gref.0)
        .map_err(|_| GrantError::BadRef(gref.0))
}

/// Gives up on `gref` for good: ended while still in use.
fn leak(gref: GrantRef) {
    if STATE.lock().refs.leak(gref.0).is_ok() {
        LEAKED_TOTAL.fetch_add(1, Ordering::Relaxed);
        log::warn!("grant: reference {gref} still mapped when dropped; leaked");
    }
}

/// The in-use bits (`GTF_reading | GTF_writing`) Xen shows for `gref`
/// (from the entry in version 1, from the status frame in version 2).
pub fn in_use_bits(gref: GrantRef) -> Result<u16, GrantError> {
    let state = STATE.lock();
    state
        .entries
        .as_ref()
        .ok_or(GrantError::NotReady)?
        .in_use_bits(gref.0)
}

/// How the table is set up, if it is.
pub fn info() -> Option<GrantInfo> {
    let state = STATE.lock();
    let entries = state.entries.as_ref()?;
    Some(GrantInfo {
        version: entries.version(),
        frames: state.frames,
        nr_frames: state.nr_frames,
        status_frame: state.status_frame,
        nr_entries: entries.nr_entries(),
    })
}

/// How the references are used.
pub fn stats() -> GrantStats {
    let state = STATE.lock();
    GrantStats {
        capacity: state.refs.capacity(),
        free: state.refs.free_count(),
        live: state.refs.live_count(),
        leaked: state.refs.leaked_count(),
        leaked_total: LEAKED_TOTAL.load(Ordering::Relaxed),
    }
}

/// A grant we hold: ends itself when dropped.
///
/// Dropping it ends the grant if the other domain no longer maps the
/// page; if it still does, the reference is leaked (never handed out
/// again, counted in [`GrantStats`]) instead of being reused while busy.
/// Use [`Grant::end`] to find out and keep the grant when it is busy.
#[derive(Debug)]
pub struct Grant {
    gref: GrantRef,
    domid: DomId,
    frame: u64,
    readonly: bool,
}

impl Grant {
    /// Grants `domid` access to `frame` (see [`grant_access`]).
    pub fn new(domid: DomId, frame: u64, readonly: bool) -> Result<Grant, GrantError> {
        let gref = grant_access(domid, frame, readonly)?;
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
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Whether the grant is read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Ends the grant; if the other domain still maps the page, hands
    /// the grant back with the error so the caller can retry later.
    pub fn end(self) -> Result<(), (Grant, GrantError)> {
        match end_access(self.gref) {
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
        if end_access(self.gref).is_err() {
            leak(self.gref);
        }
    }
}
