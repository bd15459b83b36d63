//! The console device: the global sink behind `print!`.

use super::ring::{ConsolePage, RingWriteError, RingWriter};
use super::{ConsoleStats, LostOutput, LostReason};
use crate::boot_info::{BootInfo, ConsoleLocation};
use crate::fixmap::{self, Slot};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, Ordering};
use pv_arch::abi::console::XenconsInterface;
use pv_arch::hypercall::{
    console::console_io_write, event_channel::evtchn_send, sched::sched_yield,
};
use pv_arch::Errno;
use spin::Mutex;

/// The shared console page, mapped in the fixmap, plus its event channel.
struct SharedConsolePage {
    page: NonNull<XenconsInterface>,
    evtchn: u32,
}

// SAFETY: the page pointer refers to a mapping that lives for the rest of
// the guest's life; access is serialised by the `CONSOLE` mutex.
unsafe impl Send for SharedConsolePage {}

impl SharedConsolePage {
    /// Reads `out_prod` as the page holds it (ours to write, but after a
    /// resume the toolstack may have reset it).
    fn out_prod(&self) -> u32 {
        // SAFETY: `page` points at the mapped console page (see `init`); a
        // volatile read of an aligned u32 field.
        unsafe { (&raw const (*self.page.as_ptr()).out_prod).read_volatile() }
    }
}

impl ConsolePage for SharedConsolePage {
    fn out_cons(&self) -> u32 {
        // SAFETY: `page` points at the mapped console page (see `init`);
        // a volatile read of an aligned u32 field the backend may change.
        unsafe { (&raw const (*self.page.as_ptr()).out_cons).read_volatile() }
    }

    fn write_out(&mut self, offset: usize, bytes: &[u8]) {
        for (i, &byte) in bytes.iter().enumerate() {
            // SAFETY: the ring code keeps `offset + bytes.len()` within
            // `output` (see `ByteRing::producer_chunk`); the index below is
            // bounds checked as well. Volatile: the backend reads it.
            unsafe {
                (&raw mut (*self.page.as_ptr()).output[offset + i]).write_volatile(byte);
            }
        }
    }

    fn publish_out_prod(&mut self, prod: u32) {
        // x86 does not reorder stores with stores; only the compiler must
        // be kept from moving the data writes after the index.
        compiler_fence(Ordering::Release);
        // SAFETY: as in `out_cons`; we are the only writer of `out_prod`.
        unsafe { (&raw mut (*self.page.as_ptr()).out_prod).write_volatile(prod) }
    }

    fn notify(&mut self) {
        // A failed notify is harmless here: the backend also polls, and
        // the flush budget bounds how long we wait for it.
        let _ = evtchn_send(self.evtchn);
    }

    fn wait(&mut self) {
        let _ = sched_yield();
    }

    fn now_ns(&self) -> Option<u64> {
        crate::shared_info::is_mapped().then(crate::time::now_ns)
    }
}

enum Sink {
    /// `HYPERVISOR_console_io` (dom0, and everyone before `init`).
    Hypervisor,
    /// The PV console ring.
    Ring(RingWriter<SharedConsolePage>),
}

struct Console {
    sink: Sink,
    /// What could not be written, and whether that was reported.
    lost: LostOutput,
}

impl Console {
    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), (usize, LostReason)> {
        match &mut self.sink {
            Sink::Hypervisor => console_io_write(bytes)
                .map(drop)
                .map_err(|e| (bytes.len(), LostReason::Refused(e))),
            Sink::Ring(writer) => writer.write(bytes).map_err(|e| {
                let unwritten = match e {
                    RingWriteError::Stalled { unwritten } => unwritten,
                    RingWriteError::Corrupt(_) => bytes.len(),
                };
                (unwritten, LostReason::Ring(e))
            }),
        }
    }

    /// Whether output is being dropped without trying (a stalled ring
    /// whose backend has not read since).
    fn dropping(&mut self) -> bool {
        match &mut self.sink {
            Sink::Ring(writer) => {
                // `resumed` clears the stall once the backend reads again;
                // the loss is then reported by `report_lost`.
                writer.resumed();
                writer.is_stalled()
            }
            Sink::Hypervisor => false,
        }
    }

    fn report_lost(&mut self) {
        let Some(report) = self.lost.report() else {
            return;
        };
        let mut line = LineBuf::new();
        let _ = write!(line, "{report}");
        match self.write_raw(line.as_bytes()) {
            Ok(()) => self.lost.reported(),
            // Still failing: the report itself is lost too.
            Err((n, why)) => self.lost.record(n, why),
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.dropping() {
            // Costs nothing: the stalled backend was already waited for
            // once; keep counting until it reads again.
            let why = LostReason::Ring(RingWriteError::Stalled { unwritten: s.len() });
            self.lost.record(s.len(), why);
            return Ok(());
        }
        self.report_lost();
        if let Err((n, why)) = self.write_raw(s.as_bytes()) {
            self.lost.record(n, why);
        }
        Ok(())
    }
}

/// A small stack buffer for one formatted line.
struct LineBuf {
    bytes: [u8; 96],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            bytes: [0; 96],
            len: 0,
        }
    }
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    sink: Sink::Hypervisor,
    lost: LostOutput::new(),
});

/// Why the console could not be set up.
#[derive(Clone, Copy, Debug)]
pub enum ConsoleError {
    /// Mapping the console ring's frame failed.
    Map(Errno),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::Map(errno) => write!(f, "cannot map the console ring: {errno}"),
        }
    }
}

/// Switches the console to where `start_info` says it is.
pub fn init(boot: &BootInfo) -> Result<(), ConsoleError> {
    match boot.console {
        ConsoleLocation::Hypervisor => Ok(()),
        ConsoleLocation::Ring { mfn, evtchn } => {
            // SAFETY: `start_info` (or the HVM parameter) names the
            // console ring, a page shared with xenconsoled that Rust
            // owns nothing of; the console slot is reserved for it.
            let page = unsafe { fixmap::map(Slot::Console, crate::mm::Gfn::new(mfn)) }
                .map_err(ConsoleError::Map)?
                .cast::<XenconsInterface>();
            let mut shared = SharedConsolePage { page, evtchn };
            // SAFETY: `page` was just mapped to the console frame; read the
            // producer index libxc left there (zero on a fresh domain).
            let prod = unsafe { (&raw const (*page.as_ptr()).out_prod).read_volatile() };
            shared.notify();
            CONSOLE.lock().sink = Sink::Ring(RingWriter::new(shared, prod));
            Ok(())
        }
    }
}

/// After a resume in a new domain: the ring is the same page (its pfn
/// is kept and the restored page tables map its new frame) but the
/// backend's event channel is new, and so may be its indices: a PV
/// guest's page travels with its memory, indices and all, but an HVM or
/// PVH restore hands the guest its console page afresh (both indices 0;
/// seen in the rig with Xen 4.17's xl: a writer that went on from its
/// old index made xenconsoled read thousands of stale bytes as blank
/// lines). So the writer starts again from the index in the page. A
/// no-op for the hypervisor console.
pub fn resume(evtchn: u32) {
    let mut console = CONSOLE.lock();
    if let Sink::Ring(writer) = &mut console.sink {
        writer.page_mut().evtchn = evtchn;
        let prod = writer.page_mut().out_prod();
        writer.restart_at(prod);
        writer.page_mut().notify();
    }
}

/// Writes formatted text (what `print!` expands to), then notifies the
/// backend once for the whole of it.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut console = CONSOLE.lock();
    let _ = console.write_fmt(args);
    if let Sink::Ring(writer) = &mut console.sink {
        writer.kick();
    }
}

/// Waits until the backend has taken everything written so far.
pub fn flush() {
    let mut console = CONSOLE.lock();
    if let Sink::Ring(writer) = &mut console.sink {
        // Bytes still in the ring are not lost (the backend may read them
        // yet); a stalled backend makes this return at once.
        let _ = writer.flush();
    }
}

/// Lost output and backend stalls since boot.
pub fn stats() -> ConsoleStats {
    let console = CONSOLE.lock();
    let (stalls, stalled) = match &console.sink {
        Sink::Ring(writer) => (writer.stalls(), writer.is_stalled()),
        Sink::Hypervisor => (0, false),
    };
    ConsoleStats {
        lost_bytes: console.lost.total(),
        stalls,
        stalled,
    }
}

/// Writes from a context that may have interrupted a console writer (the
/// panic handler): takes the lock by force if it is held.
pub fn emergency_write_fmt(args: fmt::Arguments<'_>) {
    if CONSOLE.is_locked() {
        // SAFETY: there is one vCPU and event delivery stays masked, so a
        // held lock means the code holding it is the one that panicked
        // and will never run again; taking over its console is the only
        // way left to report the panic.
        unsafe { CONSOLE.force_unlock() };
    }
    write_fmt(args);
}
