//! Guest entry points registered with Xen (`xen/callback.h`).
//!
//! A PV guest has no IDT of its own for Xen's upcalls: it tells Xen,
//! through `HYPERVISOR_callback_op(CALLBACKOP_register, ...)`, where to
//! enter for event delivery, for a failsafe return, for `syscall` from
//! user mode, and for NMIs.

/// `xen_callback_t` on x86_64: the entry point's virtual address.
pub type XenCallback = u64;

/// `CALLBACKTYPE_event`: event-channel upcalls.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// `CALLBACKTYPE_failsafe`: Xen could not restore guest state (bad
/// segment, bad iret frame) and enters here instead.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// `CALLBACKTYPE_syscall`: `syscall` from a 64-bit user process.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// `CALLBACKTYPE_sysenter_deprecated`: old number of the 32-bit
/// `sysenter` callback; do not use.
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// `CALLBACKTYPE_nmi`: NMI delivery.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// `CALLBACKTYPE_sysenter`: `sysenter` from a 32-bit user process.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// `CALLBACKTYPE_syscall32`: `syscall` from a 32-bit user process.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

/// `CALLBACKF_mask_events`: mask event upcalls on entry (like an
/// interrupt gate clearing IF).
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `CALLBACKOP_register`: argument is a [`CallbackRegister`].
pub const CALLBACKOP_REGISTER: u32 = 0;
/// `CALLBACKOP_unregister`: argument is a [`CallbackUnregister`].
pub const CALLBACKOP_UNREGISTER: u32 = 1;

/// `struct callback_register`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*` (C `type`).
    pub type_: u16,
    /// `CALLBACKF_*` flags.
    pub flags: u16,
    /// The entry point.
    pub address: XenCallback,
}

/// `struct callback_unregister`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*` (C `type`).
    pub type_: u16,
    /// Unused.
    pub _unused: u16,
}
