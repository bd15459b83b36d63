//! The guest's own accounting of what it holds: grant references,
//! frames, heap, event-channel ports, tasks and timers, in one line.
//!
//! A leak in a Xen guest is rarely a crash: it is a grant reference that
//! is never ended, a page quarantined for ever, a port never closed, a
//! task that never finishes. Each of these is counted somewhere in the
//! kernel; [`snapshot`] reads them all at once, and [`Accounting`]'s
//! `Display` prints them as `key=value` pairs that a tool in dom0 can
//! compare before and after a long run (`cargo xtask soak` does, by
//! asking for the line with `xl sysrq DOMAIN m`). Values that must come
//! back to where they were after devices come and go: every field but
//! `free_frames`, `map_tables` and `heap_bytes` exactly, and those too
//! once the same devices are connected again (the allocators hand back
//! what they were given), `free_frames` as a sum with `map_tables` (the
//! direct map grows with the allocator's high-water mark).

use core::fmt;

/// What the guest holds at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Grant references granted now.
    pub grants_live: usize,
    /// Pages held back because another domain still mapped their grant.
    pub grants_quarantined: usize,
    /// Grant references given up for lost (never ended).
    pub grants_leaked: usize,
    /// Frames free for allocation.
    pub free_frames: u64,
    /// Frames the direct map took for page tables as it grew after boot
    /// (PV): they leave `free_frames` for good, so what must hold is the
    /// sum of the two.
    pub map_tables: u64,
    /// Bytes the heap has handed out.
    pub heap_bytes: u64,
    /// Mapping-window slots in use.
    pub window_slots: u64,
    /// Frees refused as double or stray frees.
    pub bad_frees: u64,
    /// Event-channel ports bound.
    pub evtchn_ports: usize,
    /// Tasks alive in the executor.
    pub tasks: usize,
    /// Timers armed.
    pub timers: usize,
    /// Live small heap blocks by size class (16 B, 32 B, … 4 KiB):
    /// printed last as `heap_by_size=16:n,32:n,…`, not a counter that
    /// must hold, but what tells which size grew when `heap_bytes` did.
    pub heap_blocks: [u32; kernel::mm::heap::SIZE_CLASSES],
}

impl fmt::Display for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grants_live={} grants_quarantined={} grants_leaked={} free_frames={} map_tables={} \
             heap_bytes={} window_slots={} bad_frees={} evtchn_ports={} tasks={} timers={}",
            self.grants_live,
            self.grants_quarantined,
            self.grants_leaked,
            self.free_frames,
            self.map_tables,
            self.heap_bytes,
            self.window_slots,
            self.bad_frees,
            self.evtchn_ports,
            self.tasks,
            self.timers
        )?;
        f.write_str(" heap_by_size=")?;
        for (class, count) in self.heap_blocks.iter().enumerate() {
            let comma = if class == 0 { "" } else { "," };
            write!(f, "{comma}{}:{count}", kernel::mm::heap::class_limit(class))?;
        }
        Ok(())
    }
}

/// Reads every counter now.
#[cfg(target_os = "none")]
pub fn snapshot() -> Accounting {
    let grants = kernel::grant::stats();
    let mm = kernel::mm::stats();
    let executor = kernel::sched::snapshot();
    Accounting {
        grants_live: grants.live,
        grants_quarantined: grants.quarantined,
        grants_leaked: grants.leaked,
        free_frames: mm.free_frames,
        map_tables: mm.map_tables,
        heap_bytes: mm.heap_bytes,
        window_slots: mm.window_slots_used,
        bad_frees: mm.bad_frees,
        evtchn_ports: kernel::events::bound_ports(),
        tasks: executor.tasks.len(),
        timers: executor.timers,
        heap_blocks: mm.heap_blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn prints_every_counter_as_key_value() {
        let line = Accounting {
            grants_live: 1,
            grants_quarantined: 2,
            grants_leaked: 3,
            free_frames: 4,
            map_tables: 0,
            heap_bytes: 5,
            window_slots: 6,
            bad_frees: 7,
            evtchn_ports: 8,
            tasks: 9,
            timers: 10,
            heap_blocks: [1, 2, 3, 4, 5, 6, 7, 8, 9],
        }
        .to_string();
        assert_eq!(
            line,
            "grants_live=1 grants_quarantined=2 grants_leaked=3 free_frames=4 map_tables=0 \
             heap_bytes=5 window_slots=6 bad_frees=7 evtchn_ports=8 tasks=9 timers=10 \
             heap_by_size=16:1,32:2,64:3,128:4,256:5,512:6,1024:7,2048:8,4096:9"
        );
    }
}
