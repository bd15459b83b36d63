//! Grant tables: our table's size and version, granting a page to
//! ourselves and mapping it, copying through a grant, and the refusals.
//!
//! A domain may map its own grants, which lets these tests run alone
//! (as dom0 or as a domU) with no backend: we grant a page of our image
//! to our own domain id, map it at the fixmap scratch slot and check what
//! Xen does. Tests that change the table version put it back.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::boot_info::{BootInfo, BootMode};
use crate::fixmap::{self, Slot};
use crate::grant::error::StatusName;
use crate::grant::{self, Grant, GrantError, GrantRef, GrantVersion};
use crate::mm::Gfn;
use crate::suite_fail;
use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};
use pv_arch::abi::event_channel::EvtchnBinding;
use pv_arch::abi::grant_table::*;
use pv_arch::abi::xen::{DomId, DOMID_SELF};
use pv_arch::hypercall::event_channel as evtchn;
use pv_arch::hypercall::grant_table::{self as op, GnttabError, Mapped};
use pv_arch::Errno;

/// A domain id no domain has.
const NO_SUCH_DOMAIN: DomId = 0x7000;
/// A handle no mapping has.
const NO_SUCH_HANDLE: GrantHandle = 0xffff_0000;
const PAGE_SIZE: usize = 4096;
const WORDS: usize = PAGE_SIZE / 8;

/// A page of our image to grant; atomics, since a mapping of it (or a
/// copy into it) changes it behind Rust's back.
#[repr(C, align(4096))]
struct SharedPage([AtomicU64; WORDS]);

static SOURCE: SharedPage = SharedPage([const { AtomicU64::new(0) }; WORDS]);
static DEST: SharedPage = SharedPage([const { AtomicU64::new(0) }; WORDS]);

impl SharedPage {
    fn fill(&self, seed: u64) {
        for (index, word) in self.0.iter().enumerate() {
            word.store(pattern(seed, index), Ordering::SeqCst);
        }
    }

    fn address(&self) -> usize {
        self as *const SharedPage as usize
    }

    /// Its machine frame, from our p2m.
    fn mfn(&self, boot: &BootInfo) -> Option<u64> {
        mfn_of(boot, self.address())
    }
}

fn pattern(seed: u64, index: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (index as u64).wrapping_mul(0x0101_0101_0101_0101)
}

/// The frame Xen knows virtual address `va` of our image by (machine
/// frame in PV, guest frame in PVH), through `mm`'s p2m: virtual
/// addresses of the image equal pseudo-physical ones.
fn mfn_of(boot: &BootInfo, va: usize) -> Option<u64> {
    let pfn = (va / PAGE_SIZE) as u64;
    if pfn >= boot.nr_pages {
        return None;
    }
    crate::mm::pfn_to_mfn(pfn)
}

/// Our own domain id: Xen resolves `DOMID_SELF` as the remote end of an
/// unbound port, and the port's status reports the real id.
fn self_domid() -> Result<DomId, Errno> {
    let port = evtchn::alloc_unbound(DOMID_SELF)?;
    let status = evtchn::status(port);
    evtchn::close(port)?;
    match status?.binding() {
        EvtchnBinding::Unbound { remote_dom } => Ok(remote_dom),
        _ => Err(Errno::EINVAL),
    }
}

/// A domain that is not us: dom0 from a domU, dom1 from dom0 (a domain
/// id that is valid whether or not it exists).
fn other_domid(me: DomId) -> DomId {
    if me == 0 {
        1
    } else {
        0
    }
}

/// A grant mapped at the scratch slot; unmapped when dropped.
struct ScratchMap {
    handle: GrantHandle,
    readonly: bool,
}

fn scratch_address() -> u64 {
    fixmap::address(Slot::GrantScratch) as u64
}

impl ScratchMap {
    /// Maps grant `gref` of `dom` at the scratch slot with `flags`
    /// (`GNTMAP_host_map` is the caller's to give, so refusals can be
    /// checked too).
    fn map(dom: DomId, gref: u32, flags: u32) -> Result<ScratchMap, GnttabError> {
        // SAFETY: the scratch slot is a fixmap page reserved for this
        // suite and never referenced from Rust; the tests run one at a
        // time and hold at most one `ScratchMap`, so replacing the
        // slot's mapping affects nothing else.
        let mapped: Mapped = unsafe { op::map_grant(scratch_address(), flags, dom, gref) }?;
        Ok(ScratchMap {
            handle: mapped.handle,
            readonly: flags & GNTMAP_READONLY != 0,
        })
    }

    /// Word `index` of the mapped page.
    fn read(&self, index: usize) -> u64 {
        assert!(index < WORDS);
        // SAFETY: the slot maps the granted page while `self` lives; an
        // aligned, in-bounds volatile read of memory shared with others.
        unsafe { (scratch_address() as *const u64).add(index).read_volatile() }
    }

    /// Writes word `index` of the mapped page.
    fn write(&self, index: usize, value: u64) {
        assert!(index < WORDS && !self.readonly);
        // SAFETY: as in `read`; the mapping is writable (not readonly).
        unsafe {
            (scratch_address() as *mut u64)
                .add(index)
                .write_volatile(value)
        }
    }

    fn unmap(self) -> Result<(), GnttabError> {
        let handle = self.handle;
        core::mem::forget(self);
        unmap_scratch(handle)
    }
}

impl Drop for ScratchMap {
    fn drop(&mut self) {
        let _ = unmap_scratch(self.handle);
    }
}

fn unmap_scratch(handle: GrantHandle) -> Result<(), GnttabError> {
    // SAFETY: nothing references the scratch slot (see `ScratchMap::map`);
    // Xen leaves it unmapped.
    unsafe { op::unmap_grant(scratch_address(), 0, handle) }
}

/// Checks that `result` is Xen's status `expected`.
fn expect_status<T: core::fmt::Debug>(result: Result<T, GnttabError>, expected: i16) -> Outcome {
    match result {
        Err(GnttabError::Status(status)) if status == expected => Outcome::Pass,
        Err(GnttabError::Status(status)) => suite_fail!(
            "expected {}, got {}",
            StatusName(expected),
            StatusName(status)
        ),
        Err(GnttabError::Errno(errno)) => {
            suite_fail!("expected {}, got errno {errno}", StatusName(expected))
        }
        Ok(value) => suite_fail!("expected {}, got Ok({value:?})", StatusName(expected)),
    }
}

/// What the suite needs for a self-grant: our domid and the source
/// page's frame.
fn self_grant_setup(ctx: &Ctx<'_>) -> Result<(DomId, Gfn), Outcome> {
    let me = self_domid().map_err(|e| suite_fail!("finding our domid: {e}"))?;
    let frame = SOURCE
        .mfn(ctx.boot)
        .ok_or_else(|| suite_fail!("no machine frame for the source page"))?;
    Ok((me, Gfn::new(frame)))
}

fn current_version() -> Result<GrantVersion, Outcome> {
    grant::info()
        .map(|info| info.version)
        .ok_or_else(|| suite_fail!("grant table not set up"))
}

/// Runs `body` with the table in `version`, then puts the old version back.
fn with_version(version: GrantVersion, body: impl FnOnce() -> Outcome) -> Outcome {
    let original = match current_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    if let Err(e) = grant::set_version(version) {
        return suite_fail!("switching to {version}: {e}");
    }
    let outcome = body();
    match grant::set_version(original) {
        Ok(()) => outcome,
        Err(e) => suite_fail!("switching back to {original}: {e} (after: {outcome:?})"),
    }
}

fn query_size_sane(_: &Ctx<'_>) -> Outcome {
    let Some(info) = grant::info() else {
        return suite_fail!("grant table not set up");
    };
    match op::query_size(DOMID_SELF) {
        Ok(size)
            if size.max_nr_frames > 0
                && size.nr_frames <= size.max_nr_frames
                && size.nr_frames as usize >= info.nr_frames =>
        {
            Outcome::Pass
        }
        other => suite_fail!("query_size: {other:?}, we set up {} frames", info.nr_frames),
    }
}

fn query_size_by_domid(_: &Ctx<'_>) -> Outcome {
    let me = match self_domid() {
        Ok(me) => me,
        Err(e) => return suite_fail!("finding our domid: {e}"),
    };
    match (op::query_size(DOMID_SELF), op::query_size(me)) {
        (Ok(a), Ok(b)) if a == b => Outcome::Pass,
        other => suite_fail!("DOMID_SELF vs d{me}: {other:?}"),
    }
}

fn query_size_missing_domain(_: &Ctx<'_>) -> Outcome {
    expect_status(op::query_size(NO_SUCH_DOMAIN), GNTST_BAD_DOMAIN)
}

fn query_size_other_domain(_: &Ctx<'_>) -> Outcome {
    expect_status(op::query_size(0), GNTST_PERMISSION_DENIED)
}

fn setup_table_same_frames(_: &Ctx<'_>) -> Outcome {
    let Some(info) = grant::info() else {
        return suite_fail!("grant table not set up");
    };
    let mut frames = [0u64; grant::MAX_FRAMES];
    let frames = &mut frames[..info.nr_frames];
    match op::setup_table(DOMID_SELF, frames) {
        Ok(()) if frames == &info.frames[..info.nr_frames] => Outcome::Pass,
        Ok(()) => suite_fail!("frames {frames:x?}, mapped {:x?}", info.frames),
        Err(e) => suite_fail!("setup_table: {e}"),
    }
}

fn setup_table_beyond_max(_: &Ctx<'_>) -> Outcome {
    let max = match op::query_size(DOMID_SELF) {
        Ok(size) => size.max_nr_frames,
        Err(e) => return suite_fail!("query_size: {e}"),
    };
    let mut frames = vec![0u64; max as usize + 1];
    let outcome = expect_status(
        op::setup_table(DOMID_SELF, &mut frames),
        GNTST_GENERAL_ERROR,
    );
    match op::query_size(DOMID_SELF) {
        Ok(size) if size.nr_frames < max + 1 => outcome,
        other => suite_fail!("table grew anyway: {other:?}"),
    }
}

fn setup_table_missing_domain(_: &Ctx<'_>) -> Outcome {
    expect_status(
        op::setup_table(NO_SUCH_DOMAIN, &mut [0u64; 1]),
        GNTST_BAD_DOMAIN,
    )
}

fn setup_table_other_domain(_: &Ctx<'_>) -> Outcome {
    expect_status(op::setup_table(0, &mut [0u64; 1]), GNTST_PERMISSION_DENIED)
}

fn setup_table_count_two(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::probe_command(GNTTABOP_SETUP_TABLE, 2), Errno::EINVAL)
}

fn unknown_command(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::probe_command(64, 1), Errno::ENOSYS)
}

fn continuation_bits_refused(ctx: &Ctx<'_>) -> Outcome {
    // Bits above the command are Xen's own continuation state; only
    // cache_flush may carry them. A PVH guest's grant_table_op first
    // goes through the HVM filter, which knows only plain commands and
    // answers ENOSYS for anything else.
    let expected = match ctx.boot.mode {
        BootMode::Pv => Errno::EINVAL,
        BootMode::Pvh => Errno::ENOSYS,
    };
    expect_errno(
        op::probe_command(GNTTABOP_QUERY_SIZE | 1 << 12, 1),
        expected,
    )
}

fn set_version_bad(_: &Ctx<'_>) -> Outcome {
    let before = op::get_version(DOMID_SELF);
    for bad in [0, 3, u32::MAX] {
        if let Outcome::Fail(why) = expect_errno(op::set_version(bad), Errno::EINVAL) {
            return suite_fail!("set_version({bad}): {why}");
        }
    }
    match (before, op::get_version(DOMID_SELF)) {
        (Ok(a), Ok(b)) if a == b => Outcome::Pass,
        other => suite_fail!("version before/after: {other:?}"),
    }
}

fn get_version_matches(_: &Ctx<'_>) -> Outcome {
    let version = match current_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let me = match self_domid() {
        Ok(me) => me,
        Err(e) => return suite_fail!("finding our domid: {e}"),
    };
    match (op::get_version(DOMID_SELF), op::get_version(me)) {
        (Ok(a), Ok(b)) if a == version.number() && b == a => Outcome::Pass,
        other => suite_fail!("expected {version} for DOMID_SELF and d{me}, got {other:?}"),
    }
}

fn get_version_missing_domain(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::get_version(NO_SUCH_DOMAIN), Errno::ESRCH)
}

fn get_version_other_domain(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::get_version(0), Errno::EPERM)
}

fn switch_versions(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let original = match current_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let (first, second) = match original {
        GrantVersion::V1 => (GrantVersion::V2, GrantVersion::V1),
        GrantVersion::V2 => (GrantVersion::V1, GrantVersion::V2),
    };
    for version in [first, second] {
        if let Err(e) = grant::set_version(version) {
            return suite_fail!("switching to {version}: {e}");
        }
        match op::get_version(DOMID_SELF) {
            Ok(n) if n == version.number() => {}
            other => return suite_fail!("after switching to {version}, get_version: {other:?}"),
        }
        // The table works in the new format: grant, map, end.
        // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
        let grant = match unsafe { Grant::new(me, frame, false) } {
            Ok(g) => g,
            Err(e) => return suite_fail!("granting in {version}: {e}"),
        };
        match ScratchMap::map(me, grant.gref().value(), GNTMAP_HOST_MAP) {
            Ok(map) => {
                if let Err(e) = map.unmap() {
                    return suite_fail!("unmapping in {version}: {e}");
                }
            }
            Err(e) => return suite_fail!("mapping in {version}: {e}"),
        }
        if let Err((_, e)) = grant.end() {
            return suite_fail!("ending in {version}: {e}");
        }
    }
    Outcome::Pass
}

fn switch_with_live_grant(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let other = match current_version() {
        Ok(GrantVersion::V1) => GrantVersion::V2,
        Ok(GrantVersion::V2) => GrantVersion::V1,
        Err(outcome) => return outcome,
    };
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, true) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let result = grant::set_version(other);
    drop(grant);
    match result {
        Err(GrantError::Busy) => Outcome::Pass,
        other => suite_fail!("expected Busy, got {other:?}"),
    }
}

fn switch_while_mapped(ctx: &Ctx<'_>) -> Outcome {
    // Bypassing our own check: Xen itself refuses to switch while an
    // entry (beyond the reserved ones) is mapped.
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let original = match current_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let other = original.other().number();
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let map = match ScratchMap::map(me, grant.gref().value(), GNTMAP_HOST_MAP) {
        Ok(m) => m,
        Err(e) => return suite_fail!("mapping: {e}"),
    };
    let result = op::set_version(other);
    let version_after = op::get_version(DOMID_SELF);
    drop(map);
    if result.is_ok() {
        // Put Xen back where our table state thinks it is.
        let _ = op::set_version(original.number());
    }
    drop(grant);
    match (result, version_after) {
        (Err(Errno::EBUSY), Ok(n)) if n == original.number() => Outcome::Pass,
        other => suite_fail!("expected EBUSY and no change, got {other:?}"),
    }
}

fn leaked_ref_blocks_switch(ctx: &Ctx<'_>) -> Outcome {
    // A grant dropped while mapped is leaked; our own check lets the
    // switch through (nothing live), Xen refuses it (the entry is still
    // pinned), and the reference must stay leaked. Once unmapped, the
    // switch goes through and the leaked reference is free again.
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let original = match current_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let other = original.other();
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let map = match ScratchMap::map(me, grant.gref().value(), GNTMAP_HOST_MAP) {
        Ok(m) => m,
        Err(e) => return suite_fail!("mapping: {e}"),
    };
    drop(grant);
    let leaked = grant::stats();
    let refused = grant::set_version(other);
    let still = grant::stats();
    let version = op::get_version(DOMID_SELF);
    drop(map);
    if refused != Err(GrantError::Hypercall(Errno::EBUSY))
        || still != leaked
        || version != Ok(original.number())
        || leaked.leaked == 0
    {
        return suite_fail!(
            "switch while a leaked ref is mapped: {refused:?}, stats {leaked:?} -> {still:?}, \
             version {version:?}"
        );
    }
    if let Err(e) = grant::set_version(other) {
        return suite_fail!("switching after the unmap: {e}");
    }
    let reclaimed = grant::stats();
    if let Err(e) = grant::set_version(original) {
        return suite_fail!("switching back: {e}");
    }
    if reclaimed.leaked != 0 || reclaimed.free != reclaimed.capacity {
        return suite_fail!("after the switch: {reclaimed:?}");
    }
    Outcome::Pass
}

fn self_map(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    SOURCE.fill(0x5eed);
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let gref = match unsafe { grant::grant_access(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("grant_access: {e}"),
    };
    let outcome = self_map_checks(me, gref);
    if outcome != Outcome::Pass {
        // Best effort; a ref still in use stays held (never reused).
        // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
        let _ = unsafe { grant::end_access(gref) };
        return outcome;
    }
    // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
    match unsafe { grant::end_access(gref) } {
        Ok(()) => Outcome::Pass,
        Err(e) => suite_fail!("end_access after unmap: {e}"),
    }
}

fn self_map_checks(me: DomId, gref: GrantRef) -> Outcome {
    let map = match ScratchMap::map(me, gref.value(), GNTMAP_HOST_MAP) {
        Ok(m) => m,
        Err(e) => return suite_fail!("map_grant_ref of our own grant {gref}: {e}"),
    };
    if let Some(index) = (0..WORDS).find(|&i| map.read(i) != pattern(0x5eed, i)) {
        return suite_fail!("mapped word {index} differs from the granted page");
    }
    map.write(17, 0xfeed_f00d);
    if SOURCE.0[17].load(Ordering::SeqCst) != 0xfeed_f00d {
        return suite_fail!("a write through the mapping did not reach the page");
    }
    match grant::in_use_bits(gref) {
        Ok(bits) if bits == GTF_READING | GTF_WRITING => {}
        other => return suite_fail!("in-use bits while mapped writable: {other:?}"),
    }
    // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
    match unsafe { grant::end_access(gref) } {
        Err(GrantError::InUse) => {}
        other => return suite_fail!("end_access while mapped: expected InUse, got {other:?}"),
    }
    if let Err(e) = map.unmap() {
        return suite_fail!("unmap: {e}");
    }
    match grant::in_use_bits(gref) {
        Ok(0) => Outcome::Pass,
        other => suite_fail!("in-use bits after unmap: {other:?}"),
    }
}

/// A domain named relative to us.
#[derive(Clone, Copy)]
enum Who {
    /// Our own id.
    Me,
    /// A domain that is not us (see [`other_domid`]).
    Other,
    /// This id exactly.
    Id(DomId),
}

impl Who {
    fn resolve(self, me: DomId) -> DomId {
        match self {
            Who::Me => me,
            Who::Other => other_domid(me),
            Who::Id(id) => id,
        }
    }
}

/// Grants the source page to `grantee` (read-only if `readonly`), maps
/// the grant at the scratch slot naming `granter` as its owner with
/// `flags`, unmaps any mapping made, ends the grant, and checks that
/// the map gave `expected`.
fn map_own_grant(
    ctx: &Ctx<'_>,
    grantee: Who,
    readonly: bool,
    granter: Who,
    flags: u32,
    expected: i16,
) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(grantee.resolve(me), frame, readonly) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let result = ScratchMap::map(granter.resolve(me), grant.gref().value(), flags).map(drop);
    match grant.end() {
        Ok(()) => expect_status(result, expected),
        Err((_, e)) => suite_fail!("ending the grant: {e} (map: {result:?})"),
    }
}

fn map_domid_self(ctx: &Ctx<'_>) -> Outcome {
    // DOMID_SELF means nothing to map_grant_ref: it wants a real id.
    let granter = Who::Id(DOMID_SELF);
    map_own_grant(
        ctx,
        Who::Me,
        false,
        granter,
        GNTMAP_HOST_MAP,
        GNTST_BAD_DOMAIN,
    )
}

fn map_missing_domain(ctx: &Ctx<'_>) -> Outcome {
    let granter = Who::Id(NO_SUCH_DOMAIN);
    map_own_grant(
        ctx,
        Who::Me,
        false,
        granter,
        GNTMAP_HOST_MAP,
        GNTST_BAD_DOMAIN,
    )
}

fn map_ref_beyond_table(_: &Ctx<'_>) -> Outcome {
    let me = match self_domid() {
        Ok(me) => me,
        Err(e) => return suite_fail!("finding our domid: {e}"),
    };
    let nr_entries = match op::query_size(DOMID_SELF) {
        Ok(size) => {
            let per_frame = match current_version() {
                Ok(GrantVersion::V1) => 512,
                Ok(GrantVersion::V2) => 256,
                Err(outcome) => return outcome,
            };
            size.nr_frames * per_frame
        }
        Err(e) => return suite_fail!("query_size: {e}"),
    };
    for gref in [nr_entries, u32::MAX] {
        let outcome = expect_status(
            ScratchMap::map(me, gref, GNTMAP_HOST_MAP).map(drop),
            GNTST_BAD_GNTREF,
        );
        if outcome != Outcome::Pass {
            return outcome;
        }
    }
    Outcome::Pass
}

fn map_without_host_or_device(ctx: &Ctx<'_>) -> Outcome {
    // Neither GNTMAP_host_map nor GNTMAP_device_map: Xen calls it a bad
    // reference.
    map_own_grant(
        ctx,
        Who::Me,
        false,
        Who::Me,
        GNTMAP_READONLY,
        GNTST_BAD_GNTREF,
    )
}

fn map_granted_to_other(ctx: &Ctx<'_>) -> Outcome {
    map_own_grant(
        ctx,
        Who::Other,
        false,
        Who::Me,
        GNTMAP_HOST_MAP,
        GNTST_GENERAL_ERROR,
    )
}

fn map_ended_grant(ctx: &Ctx<'_>) -> Outcome {
    // An entry whose flags are not GTF_permit_access (here: ended, so 0).
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let gref = match unsafe { grant::grant_access(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("grant_access: {e}"),
    };
    // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
    if let Err(e) = unsafe { grant::end_access(gref) } {
        return suite_fail!("end_access: {e}");
    }
    expect_status(
        ScratchMap::map(me, gref.value(), GNTMAP_HOST_MAP).map(drop),
        GNTST_GENERAL_ERROR,
    )
}

fn map_readonly_grant_writable(ctx: &Ctx<'_>) -> Outcome {
    map_own_grant(
        ctx,
        Who::Me,
        true,
        Who::Me,
        GNTMAP_HOST_MAP,
        GNTST_GENERAL_ERROR,
    )
}

fn map_readonly_grant_readonly(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    SOURCE.fill(0xfade);
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, true) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let map = match ScratchMap::map(me, grant.gref().value(), GNTMAP_HOST_MAP | GNTMAP_READONLY) {
        Ok(m) => m,
        Err(e) => return suite_fail!("read-only map of a read-only grant: {e}"),
    };
    let same = (0..WORDS).all(|i| map.read(i) == pattern(0xfade, i));
    let bits = grant::in_use_bits(grant.gref());
    drop(map);
    if !same {
        return suite_fail!("the read-only mapping shows other bytes");
    }
    if bits != Ok(GTF_READING) {
        return suite_fail!("in-use bits while mapped read-only: {bits:?}");
    }
    match grant.end() {
        Ok(()) => Outcome::Pass,
        Err((_, e)) => suite_fail!("ending after unmap: {e}"),
    }
}

fn unmap_bad_handle(_: &Ctx<'_>) -> Outcome {
    expect_status(unmap_scratch(NO_SUCH_HANDLE), GNTST_BAD_HANDLE)
}

fn unmap_twice(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let map = match ScratchMap::map(me, grant.gref().value(), GNTMAP_HOST_MAP) {
        Ok(m) => m,
        Err(e) => return suite_fail!("mapping: {e}"),
    };
    let handle = map.handle;
    if let Err(e) = map.unmap() {
        return suite_fail!("first unmap: {e}");
    }
    let outcome = expect_status(unmap_scratch(handle), GNTST_BAD_HANDLE);
    if let Err((_, e)) = grant.end() {
        return suite_fail!("ending: {e}");
    }
    outcome
}

fn unmap_wrong_address(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let map = match ScratchMap::map(me, grant.gref().value(), GNTMAP_HOST_MAP) {
        Ok(m) => m,
        Err(e) => return suite_fail!("mapping: {e}"),
    };
    // The handle is right but the address maps something else (the
    // destination page): Xen checks the PTE and refuses.
    // SAFETY: DEST is only accessed through atomics. Xen clears a PTE
    // only if it maps the granted frame, and the one at DEST maps DEST's
    // own frame, so nothing is unmapped (were Xen to clear it anyway,
    // later accesses to DEST would fault: a crash, not corruption).
    let wrong = unsafe { op::unmap_grant(DEST.address() as u64, 0, map.handle) };
    let outcome = expect_status(wrong, GNTST_GENERAL_ERROR);
    if let Err(e) = map.unmap() {
        return suite_fail!("the real unmap after the refused one: {e}");
    }
    if let Err((_, e)) = grant.end() {
        return suite_fail!("ending: {e}");
    }
    outcome
}

fn drop_while_mapped_leaks(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let before = grant::stats();
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let gref = grant.gref();
    let map = match ScratchMap::map(me, gref.value(), GNTMAP_HOST_MAP) {
        Ok(m) => m,
        Err(e) => return suite_fail!("mapping: {e}"),
    };
    drop(grant);
    let during = grant::stats();
    drop(map);
    let after = grant::stats();
    // The reference is not held any more (end_access refuses it), not
    // free either: it stays out of use until the next version switch.
    // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
    let ended = unsafe { grant::end_access(gref) };
    if during.leaked_total != before.leaked_total + 1
        || during.live != before.live
        || during.free + 1 != before.free
        || after != during
        || ended != Err(GrantError::BadRef(gref.value()))
    {
        return suite_fail!(
            "before {before:?}, during {during:?}, after {after:?}, end_access {ended:?}"
        );
    }
    Outcome::Pass
}

fn end_access_not_held(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    for gref in [0, 1, 7, u32::MAX] {
        // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
        match unsafe { grant::end_access(GrantRef::from_raw(gref)) } {
            Err(GrantError::BadRef(_)) => {}
            other => return suite_fail!("end_access({gref}): expected BadRef, got {other:?}"),
        }
    }
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let gref = match unsafe { grant::grant_access(me, frame, true) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("grant_access: {e}"),
    };
    // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
    match (unsafe { grant::end_access(gref) }, unsafe {
        grant::end_access(gref)
    }) {
        (Ok(()), Err(GrantError::BadRef(_))) => Outcome::Pass,
        other => suite_fail!("first and second end_access: {other:?}"),
    }
}

fn copy_through_grant(ctx: &Ctx<'_>) -> Outcome {
    let (me, _) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let (Some(source), Some(dest)) = (SOURCE.mfn(ctx.boot), DEST.mfn(ctx.boot)) else {
        return suite_fail!("no machine frames for the pages");
    };
    SOURCE.fill(0xc0b1);
    DEST.fill(0);
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let grant = match unsafe { Grant::new(me, Gfn::new(source), true) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("granting: {e}"),
    };
    let copy = |len: u16, dest_dom: DomId, dest_offset: u16| {
        let mut ops = [GnttabCopy {
            source: GnttabCopyPtr::from_gref(grant.gref().value(), me, 0),
            dest: GnttabCopyPtr::from_gmfn(dest, dest_dom, dest_offset),
            len,
            flags: GNTCOPY_SOURCE_GREF,
            status: 0,
        }];
        // SAFETY: the destination is DEST, a page Rust only accesses
        // through atomics.
        unsafe { op::copy(&mut ops) }.map(|()| ops[0].status)
    };
    // A frame (not a grant) may only be named as DOMID_SELF's, even
    // when the id given is our own.
    let by_own_id = copy(PAGE_SIZE as u16, me, 0);
    let full = copy(PAGE_SIZE as u16, DOMID_SELF, 0);
    let crossing = copy(PAGE_SIZE as u16, DOMID_SELF, 8);
    let ended = grant.end();
    if by_own_id != Ok(GNTST_PERMISSION_DENIED) {
        return suite_fail!(
            "frame named by our own id: expected GNTST_permission_denied, got {by_own_id:?}"
        );
    }
    if full != Ok(GNTST_OKAY) {
        return suite_fail!("page copy: {full:?}");
    }
    if let Some(index) =
        (0..WORDS).find(|&i| DEST.0[i].load(Ordering::SeqCst) != pattern(0xc0b1, i))
    {
        return suite_fail!("copied word {index} differs");
    }
    if crossing != Ok(GNTST_BAD_COPY_ARG) {
        return suite_fail!(
            "copy crossing the page end: expected GNTST_bad_copy_arg, got {crossing:?}"
        );
    }
    match ended {
        Ok(()) => Outcome::Pass,
        Err((_, e)) => suite_fail!("ending after the copies: {e}"),
    }
}

fn v1_has_no_status_frames(ctx: &Ctx<'_>) -> Outcome {
    with_version(GrantVersion::V1, || {
        let result = op::get_status_frames(DOMID_SELF, &mut [0u64; 1]);
        match ctx.boot.mode {
            BootMode::Pv => expect_status(result, GNTST_GENERAL_ERROR),
            // The HVM filter does not pass get_status_frames on at all:
            // a PVH guest places status frames with add_to_physmap.
            BootMode::Pvh => match result {
                Err(op::GnttabError::Errno(Errno::ENOSYS)) => Outcome::Pass,
                other => suite_fail!("expected ENOSYS, got {other:?}"),
            },
        }
    })
}

fn v2_status_frames(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    with_version(GrantVersion::V2, || {
        let Some(info) = grant::info() else {
            return suite_fail!("grant table not set up");
        };
        let mut status = [0u64; 1];
        match op::get_status_frames(DOMID_SELF, &mut status) {
            Ok(()) if Some(status[0]) == info.status_frame => {}
            other => {
                return suite_fail!("get_status_frames: {other:?} {status:x?}, mapped {info:x?}")
            }
        }
        // Asking for more status frames than exist is refused.
        let mut two = [0u64; 2];
        if let Outcome::Fail(why) = expect_status(
            op::get_status_frames(DOMID_SELF, &mut two),
            GNTST_GENERAL_ERROR,
        ) {
            return suite_fail!("two status frames: {why}");
        }
        // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
        let gref = match unsafe { grant::grant_access(me, frame, false) } {
            Ok(g) => g,
            Err(e) => return suite_fail!("grant_access: {e}"),
        };
        let map = match ScratchMap::map(me, gref.value(), GNTMAP_HOST_MAP) {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
                let _ = unsafe { grant::end_access(gref) };
                return suite_fail!("mapping in v2: {e}");
            }
        };
        // Xen reports use in the status frame, never in the entry.
        let status_bits = grant::in_use_bits(gref);
        // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
        let refused = unsafe { grant::end_access(gref) };
        drop(map);
        let after = grant::in_use_bits(gref);
        // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
        let ended = unsafe { grant::end_access(gref) };
        match (status_bits, refused, after, ended) {
            (Ok(bits), Err(GrantError::InUse), Ok(0), Ok(()))
                if bits == GTF_READING | GTF_WRITING =>
            {
                Outcome::Pass
            }
            other => suite_fail!("status while mapped, end, status after, end: {other:?}"),
        }
    })
}

/// Why the XSA-255 check is PV only (printed with its skip).
const PV_STATUS_MAPPING: &str =
    "a PVH guest's status frames sit in its physmap, which Xen empties \
     itself on the switch back to version 1, so no guest mapping can outlive them";

/// XSA-255 ("grant table v2 -> v1 transition may crash
/// Xen"): version 2 gives the guest status frames to map; going back to
/// version 1 frees them, and Xen did so without checking that the guest
/// still mapped them, leaving the guest a writable mapping of a freed
/// page (or hitting a BUG() in the reference counting). A patched Xen
/// refuses the switch with `EBUSY` and stays at version 2 while a PV
/// guest maps a status frame. Our table code unmaps the status frame
/// before it switches; here the raw op asks while it is still mapped.
fn xsa255_v2_to_v1_with_status_mapped(_: &Ctx<'_>) -> Outcome {
    with_version(GrantVersion::V2, || {
        if grant::info().and_then(|info| info.status_frame).is_none() {
            return suite_fail!("version 2 without a mapped status frame");
        }
        let result = op::set_version(1);
        let version = op::get_version(DOMID_SELF);
        if result.is_ok() {
            // Put Xen back where our table state thinks it is.
            let _ = op::set_version(2);
        }
        match (result, version) {
            (Err(Errno::EBUSY), Ok(2)) => Outcome::Pass,
            other => suite_fail!(
                "set_version(1) with the status frame mapped, then get_version: expected \
                 EBUSY and 2, got {other:?}"
            ),
        }
    })
}

/// XSA-227 ("x86: PV privilege escalation via map_grant_ref"):
/// with `GNTMAP_contains_pte`, `host_addr` is the machine address of the
/// PTE Xen is to write, and Xen did not check that it was aligned: a
/// misaligned address let the guest write a PTE of its choosing
/// straddling two real ones. A patched Xen refuses a misaligned address
/// with `GNTST_general_error` before it writes anything; the grant is
/// left unpinned (ending it succeeds) and the PTE is unchanged. The
/// address named is one byte into the L1 entry of a reserved window
/// slot, which nothing references.
fn xsa227_contains_pte_misaligned(ctx: &Ctx<'_>) -> Outcome {
    let (me, frame) = match self_grant_setup(ctx) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let slot = match crate::mm::reserve_slot() {
        Ok(slot) => slot,
        Err(e) => return suite_fail!("reserving a window slot: {e:?}"),
    };
    let va = slot.address() as u64;
    let pte = match crate::mm::lookup_pte(va) {
        Ok(Some(pte)) => pte,
        other => return suite_fail!("the window slot's PTE: {other:?}"),
    };
    // SAFETY: the suite grants only its own static pages (SOURCE, DEST), never freed, so a grant that outlives the check harms nothing.
    let gref = match unsafe { grant::grant_access(me, frame, false) } {
        Ok(g) => g,
        Err(e) => return suite_fail!("grant_access: {e}"),
    };
    let misaligned = pte.maddr() + 1;
    // SAFETY: a patched Xen refuses the misaligned address before it
    // writes; the entry it names maps the reserved window slot, which no
    // Rust reference points into.
    let result = unsafe {
        op::map_grant(
            misaligned,
            GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE,
            me,
            gref.value(),
        )
    };
    if let Ok(mapped) = result {
        // Best effort; the reference stays held (never reused).
        // SAFETY: as above; the slot is not used.
        let _ = unsafe { op::unmap_grant(misaligned, 0, mapped.handle) };
        return suite_fail!("a misaligned PTE address was accepted: {mapped:?}");
    }
    let entry_after = crate::mm::lookup_pte(va).map(|p| p.map(|p| p.entry));
    // SAFETY: ends only references this check made and holds (or, on purpose, ones it never held, which the table refuses).
    let ended = unsafe { grant::end_access(gref) };
    if entry_after != Ok(Some(pte.entry)) || ended.is_err() {
        return suite_fail!(
            "after the refusal: PTE {:#x} -> {entry_after:x?}, end_access {ended:?}",
            pte.entry
        );
    }
    expect_status(result, GNTST_GENERAL_ERROR)
}

macro_rules! test {
    ($name:literal, Pv, $run:expr) => {
        Test {
            group: "grant",
            name: $name,
            applies: Applies::Pv(super::PV_GRANT_MAPS),
            run: $run,
        }
    };
    ($name:literal, $applies:ident, $run:expr) => {
        Test {
            group: "grant",
            name: $name,
            applies: Applies::$applies,
            run: $run,
        }
    };
}

/// The `grant` group.
pub const TESTS: &[Test] = &[
    test!("query_size_sane", Both, query_size_sane),
    test!(
        "query_size_domid_self_equals_own_id",
        Both,
        query_size_by_domid
    ),
    test!(
        "query_size_missing_domain_bad_domain",
        Both,
        query_size_missing_domain
    ),
    test!(
        "query_size_dom0_permission_denied",
        DomUOnly,
        query_size_other_domain
    ),
    test!(
        "setup_table_returns_mapped_frames",
        Both,
        setup_table_same_frames
    ),
    test!(
        "setup_table_beyond_max_general_error",
        Both,
        setup_table_beyond_max
    ),
    test!(
        "setup_table_missing_domain_bad_domain",
        Both,
        setup_table_missing_domain
    ),
    test!(
        "setup_table_dom0_permission_denied",
        DomUOnly,
        setup_table_other_domain
    ),
    test!("setup_table_count_two_einval", Both, setup_table_count_two),
    test!("unknown_command_enosys", Both, unknown_command),
    test!("continuation_bits_einval", Both, continuation_bits_refused),
    test!("set_version_0_3_max_einval", Both, set_version_bad),
    test!("get_version_matches", Both, get_version_matches),
    test!(
        "get_version_missing_domain_esrch",
        Both,
        get_version_missing_domain
    ),
    test!("get_version_dom0_eperm", DomUOnly, get_version_other_domain),
    test!("self_map_shows_page_in_use_until_unmap", Pv, self_map),
    test!("map_domid_self_bad_domain", Pv, map_domid_self),
    test!("map_missing_domain_bad_domain", Pv, map_missing_domain),
    test!("map_ref_beyond_table_bad_gntref", Pv, map_ref_beyond_table),
    test!(
        "map_without_host_map_bad_gntref",
        Pv,
        map_without_host_or_device
    ),
    test!(
        "map_granted_to_other_domain_refused",
        Pv,
        map_granted_to_other
    ),
    test!("map_ended_grant_refused", Pv, map_ended_grant),
    test!(
        "map_readonly_grant_writable_refused",
        Pv,
        map_readonly_grant_writable
    ),
    test!(
        "map_readonly_grant_readonly",
        Pv,
        map_readonly_grant_readonly
    ),
    test!("unmap_bad_handle", Pv, unmap_bad_handle),
    test!("unmap_twice_bad_handle", Pv, unmap_twice),
    test!("unmap_wrong_address_refused", Pv, unmap_wrong_address),
    test!("end_access_not_held_bad_ref", Both, end_access_not_held),
    test!("drop_while_mapped_leaks_ref", Pv, drop_while_mapped_leaks),
    test!(
        "copy_from_grant_frame_needs_domid_self",
        Both,
        copy_through_grant
    ),
    test!(
        "set_version_refused_with_live_grant",
        Both,
        switch_with_live_grant
    ),
    test!("set_version_while_mapped_ebusy", Pv, switch_while_mapped),
    test!(
        "leaked_ref_blocks_switch_until_unmapped",
        Pv,
        leaked_ref_blocks_switch
    ),
    test!("switch_v1_v2_v1_get_version_follows", Pv, switch_versions),
    test!(
        "v1_get_status_frames_general_error",
        Both,
        v1_has_no_status_frames
    ),
    test!("v2_status_frames_show_mappings", Pv, v2_status_frames),
    Test {
        group: "grant",
        name: "xsa255_v2_to_v1_with_status_frame_mapped_ebusy",
        applies: Applies::Pv(PV_STATUS_MAPPING),
        run: xsa255_v2_to_v1_with_status_mapped,
    },
    test!(
        "xsa227_contains_pte_misaligned_general_error",
        Pv,
        xsa227_contains_pte_misaligned
    ),
];
