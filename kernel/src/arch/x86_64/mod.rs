//! x86_64 specifics: the PV entry point and the ELF notes Xen reads.

pub mod elf_notes;
pub mod pv_entry;
pub mod trap_entry;
