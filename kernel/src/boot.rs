//! `pv_main` and `pvh_main`: the boot sequence, in the order the crate
//! docs give. The two differ only until a [`BootInfo`] exists; from
//! there on [`run`] is shared.

use crate::app::App;
use crate::boot_info::BootInfo;
use crate::boot_info::BootMode;
use crate::{console, events, logger, mm, platform, println, sched, shared_info, shutdown, time};
use pv_arch::abi::start_info::StartInfo;
use pv_arch::Errno;

unsafe extern "Rust" {
    /// Defined by `libos::entry!` in the application binary.
    fn __paravane_app() -> App;
}

/// The core PV interfaces, in dependency order: the shared info page,
/// traps and callbacks, event channels, time, tasks.
fn init_core(boot: &BootInfo) -> Result<(), BootError> {
    shared_info::init(boot).map_err(|e| BootError("mapping shared_info", e))?;
    mark("shared_info");
    // For the toolstack's `xl save` (PV); not fatal: only saving needs it.
    if let Err(why) = mm::p2m_frames::publish() {
        println!("Paravane: p2m frame list not published ({why}): xl save will refuse");
    }
    platform::install_traps()
        .map_err(|e| BootError("installing the trap table and callbacks", e))?;
    mark("p2m list and traps");
    events::init(boot).map_err(|e| BootError("setting up event channels", e))?;
    platform::enable_upcalls().map_err(|e| BootError("setting HVM_PARAM_CALLBACK_IRQ", e))?;
    time::init().map_err(|e| BootError("stopping the periodic timer", e))?;
    sched::init().map_err(|e| BootError("binding VIRQ_TIMER", e))?;
    mark("events and timer");
    // Notes `gnttab=`; the table is set up on its first use.
    crate::grant::init(boot);
    Ok(())
}

/// Records the end of a boot step ([`crate::boot_profile`]).
fn mark(step: &'static str) {
    crate::boot_profile::BOOT.mark(step, time::rdtsc());
}

/// A boot step that failed, and Xen's answer.
struct BootError(&'static str, Errno);

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

/// Boots the kernel as a PV guest and runs the application.
pub fn pv_main(start_info: &StartInfo) -> ! {
    mark("entry");
    platform::set_mode(BootMode::Pv);
    crate::suspend::record_start_info(start_info);
    let boot = match BootInfo::from_start_info(start_info) {
        Ok(boot) => boot,
        Err(why) => {
            // Before the console is set up: console_io is all we have.
            console::emergency_write_fmt(format_args!("Paravane: bad start_info: {why}\n"));
            shutdown::crash();
        }
    };
    run(boot)
}

/// Boots the kernel as a PVH guest and runs the application.
pub fn pvh_main(start_info_paddr: u64) -> ! {
    mark("entry");
    platform::set_mode(BootMode::Pvh);
    crate::arch::x86_64::pvh_paging::init();
    mark("page tables");
    // SAFETY: PVH runs us in ring 0, and the image (with the hypercall
    // page) is identity mapped.
    if let Err(why) = unsafe { pv_arch::hypercall::page::install_via_msr() } {
        // No hypercalls without the page: Xen's debug port is all we have.
        platform::debug_port_write_fmt(format_args!("Paravane: PVH hypercall page: {why}\n"));
        platform::halt_forever();
    }
    mark("hypercall page");
    let boot = match crate::pvh_boot::read(start_info_paddr) {
        Ok(boot) => boot,
        Err(why) => {
            platform::debug_port_write_fmt(format_args!("Paravane: bad PVH boot data: {why}\n"));
            console::emergency_write_fmt(format_args!("Paravane: bad PVH boot data: {why}\n"));
            shutdown::crash();
        }
    };
    run(boot)
}

/// Everything after the boot data is known, the same in both modes.
/// Never returns.
fn run(boot: BootInfo) -> ! {
    mark("boot data");
    if let Err(why) = console::init(&boot) {
        console::emergency_write_fmt(format_args!("Paravane: {why}\n"));
        shutdown::crash();
    }
    mark("console");
    if let Err(why) = mm::init(&boot) {
        console::emergency_write_fmt(format_args!("Paravane: memory: {why}\n"));
        shutdown::crash();
    }
    mark("memory");
    // After `mm::init`: its direct map maps every frame, the guard's too.
    if let Err(why) = crate::arch::x86_64::pv_entry::install_boot_stack_guard() {
        println!("Paravane: no guard page under the boot stack: {why}");
    }
    logger::init(boot.cmdline());
    if let Err(why) = init_core(&boot) {
        console::emergency_write_fmt(format_args!("Paravane: boot failed: {why}\n"));
        shutdown::crash();
    }

    println!(
        "Paravane {} (x86_64 {}) running as {}",
        env!("CARGO_PKG_VERSION"),
        boot.mode,
        boot.role
    );
    println!("{boot}");
    mark("banner");

    // SAFETY: `__paravane_app` is defined exactly once, by `libos::entry!`,
    // with this signature (a missing definition fails the link); it takes
    // nothing and returns plain data.
    let app = unsafe { __paravane_app() };
    let scale = shared_info::time_info();
    println!(
        "{}",
        crate::boot_profile::BOOT.render(|ticks| scale.tsc_delta_to_ns(ticks))
    );
    // The guest's own boot time, by Xen's accounting (the bench reads it).
    match crate::time::vcpu_life() {
        Ok(life) => println!("boot: app {} starts after {life}", app.name),
        Err(why) => println!("boot: no runstate for the boot time: {why}"),
    }
    let result = (app.main)(&boot);
    log_idle_stats();
    crate::app::exit(app.name, result)
}

/// One line on how the executor and the upcall fared: how often the
/// vCPU idled, and how often an upcall came before an idle `hlt` had
/// started (each a wake-up the idle routine's `hlt` skip saved; see
/// `platform::skip_idle_hlt`).
fn log_idle_stats() {
    let stats = crate::sched::stats();
    let (upcalls, stray) = crate::events::counters();
    log::info!(
        "executor: {} tasks, {} polls, {} idles, {} woken while running, {} nested block_on; \
         upcalls: {upcalls} ({stray} stray), {} before an idle hlt",
        stats.spawned,
        stats.polls,
        stats.idles,
        stats.woken_while_running,
        stats.nested_block_ons,
        crate::platform::upcalls_before_hlt()
    );
}
