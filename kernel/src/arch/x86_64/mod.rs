//! x86_64 specifics: the PV and PVH entry points, the ELF notes Xen
//! reads, the trap entry stubs of each mode, and PVH's own page tables.

pub mod elf_notes;
pub mod pv_entry;
pub mod pvh_entry;
pub mod pvh_paging;
pub mod pvh_trap_entry;
pub mod trap_entry;
