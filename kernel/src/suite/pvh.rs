//! The `pvh` group: what only an HVM container has.
//!
//! A PVH guest finds its rings through HVM parameters, places Xen's
//! pages in its physmap with `XENMEM_add_to_physmap`, gets its hypercall
//! page through CPUID and an MSR, and takes event upcalls on an interrupt
//! vector. Each of those is checked here, with right and wrong
//! arguments; PV guests skip the group.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::arch::x86_64::pvh_trap_entry::CALLBACK_VECTOR;
use crate::boot_info::ConsoleLocation;
use crate::events::EventChannel;
use crate::fixmap::{self, Slot};
use crate::suite_fail;
use pv_arch::abi::hvm::*;
use pv_arch::abi::memory::XENMAPSPACE_GRANT_TABLE;
use pv_arch::abi::version::{
    XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_HVM_CALLBACK_VECTOR, XENFEAT_WRITABLE_PAGE_TABLES,
};
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::hvm::get_param;
use pv_arch::hypercall::xen_version as xv;
use pv_arch::Errno;

fn cpuid_leaves(_: &Ctx<'_>) -> Outcome {
    match pv_arch::hypercall::page::xen_cpuid_base() {
        Some((base, max)) if max >= base + 2 => {
            let pages = core::arch::x86_64::__cpuid(base + 2).eax;
            if pages == 1 {
                Outcome::Pass
            } else {
                suite_fail!("leaf {:#x} asks for {pages} hypercall pages", base + 2)
            }
        }
        other => suite_fail!("Xen CPUID leaves: {other:?}"),
    }
}

fn features(_: &Ctx<'_>) -> Outcome {
    let wanted = [
        XENFEAT_WRITABLE_PAGE_TABLES,
        XENFEAT_AUTO_TRANSLATED_PHYSMAP,
        XENFEAT_HVM_CALLBACK_VECTOR,
    ];
    match xv::features(0) {
        Ok(bits) if wanted.iter().all(|&bit| bits & (1 << bit) != 0) => Outcome::Pass,
        Ok(bits) => suite_fail!("features {bits:#x} lack one of bits {wanted:?}"),
        Err(e) => suite_fail!("XENVER_get_features: {e}"),
    }
}

fn rings_match_boot(ctx: &Ctx<'_>) -> Outcome {
    let read = |index| get_param(DOMID_SELF, index);
    let store = (read(HVM_PARAM_STORE_PFN), read(HVM_PARAM_STORE_EVTCHN));
    let console = (read(HVM_PARAM_CONSOLE_PFN), read(HVM_PARAM_CONSOLE_EVTCHN));
    let (Some(boot_store), ConsoleLocation::Ring { mfn, evtchn }) =
        (ctx.boot.store, ctx.boot.console)
    else {
        return suite_fail!("boot info has no rings");
    };
    let expected_store = (Ok(boot_store.mfn), Ok(u64::from(boot_store.evtchn)));
    if store == expected_store && console == (Ok(mfn), Ok(u64::from(evtchn))) {
        Outcome::Pass
    } else {
        suite_fail!("store {store:?}, console {console:?}")
    }
}

fn callback_is_our_vector(_: &Ctx<'_>) -> Outcome {
    match get_param(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ) {
        Ok(value) if value == hvm_callback_via_vector(CALLBACK_VECTOR) => Outcome::Pass,
        other => suite_fail!(
            "expected {:#x}, got {other:x?}",
            hvm_callback_via_vector(CALLBACK_VECTOR)
        ),
    }
}

fn param_out_of_range(_: &Ctx<'_>) -> Outcome {
    expect_errno(get_param(DOMID_SELF, HVM_NR_PARAMS), Errno::EINVAL)
}

fn param_of_missing_domain(_: &Ctx<'_>) -> Outcome {
    expect_errno(get_param(0x7000, HVM_PARAM_STORE_PFN), Errno::ESRCH)
}

fn upcall_arrives_on_vector(_: &Ctx<'_>) -> Outcome {
    let Ok(a) = EventChannel::bind_ipi() else {
        return suite_fail!("bind_ipi failed");
    };
    let (before, _) = crate::events::counters();
    if let Err(e) = a.notify() {
        return suite_fail!("send: {e}");
    }
    let fired = super::evtchn::fired_within(&a, 1000);
    let (after, _) = crate::events::counters();
    let spurious = crate::traps::spurious_interrupts();
    if fired && after > before && spurious == 0 {
        Outcome::Pass
    } else {
        suite_fail!("fired {fired}, upcalls {before} -> {after}, spurious interrupts {spurious}")
    }
}

fn place_grant_frame_again(_: &Ctx<'_>) -> Outcome {
    // Placing frame 0 where it already is changes nothing; the table
    // must still work afterwards (the rest of the suite relies on it).
    let before = crate::grant::stats();
    match fixmap::place(Slot::GrantTable0, XENMAPSPACE_GRANT_TABLE, 0) {
        Ok(page) if page.as_ptr() as usize == fixmap::address(Slot::GrantTable0) => {}
        other => return suite_fail!("add_to_physmap(grant_table 0): {other:?}"),
    }
    if crate::grant::stats() == before {
        Outcome::Pass
    } else {
        suite_fail!("grant stats changed")
    }
}

fn place_grant_frame_beyond_max(_: &Ctx<'_>) -> Outcome {
    let max = match pv_arch::hypercall::grant_table::query_size(DOMID_SELF) {
        Ok(size) => u64::from(size.max_nr_frames),
        Err(e) => return suite_fail!("query_size: {e:?}"),
    };
    expect_errno(
        fixmap::place(Slot::GrantScratch, XENMAPSPACE_GRANT_TABLE, max).map(|_| ()),
        Errno::EINVAL,
    )
}

fn place_unknown_space(_: &Ctx<'_>) -> Outcome {
    expect_errno(
        fixmap::place(Slot::GrantScratch, 0x7777, 0).map(|_| ()),
        Errno::EINVAL,
    )
}

macro_rules! test {
    ($name:literal, $run:expr) => {
        Test {
            group: "pvh",
            name: $name,
            applies: Applies::Pvh,
            run: $run,
        }
    };
}

/// The `pvh` group.
pub const TESTS: &[Test] = &[
    test!("cpuid_leaves_name_one_hypercall_page", cpuid_leaves),
    test!("features_translated_writable_callback_vector", features),
    Test {
        group: "pvh",
        name: "hvm_params_name_the_boot_rings",
        applies: Applies::PvhDomU,
        run: rings_match_boot,
    },
    test!(
        "hvm_param_callback_irq_is_our_vector",
        callback_is_our_vector
    ),
    test!("hvm_param_out_of_range_einval", param_out_of_range),
    test!("hvm_param_missing_domain_esrch", param_of_missing_domain),
    test!(
        "upcall_arrives_on_callback_vector",
        upcall_arrives_on_vector
    ),
    test!(
        "add_to_physmap_grant_frame_again_ok",
        place_grant_frame_again
    ),
    test!(
        "add_to_physmap_grant_frame_beyond_max_einval",
        place_grant_frame_beyond_max
    ),
    test!("add_to_physmap_unknown_space_einval", place_unknown_space),
];
