//! [`RegisteredArea`]: a page that Xen keeps a vCPU's runstate or time
//! info in, registered by guest-physical address (Xen 4.18's
//! `VCPUOP_register_{runstate,vcpu_time}_phys_area`).
//!
//! Once registered, Xen writes the page whenever the vCPU's runstate or
//! time changes, without asking: the page must stay ours and must not go
//! back to the allocator while Xen still names it. So the registration
//! owns the [`Page`]; dropping it unregisters first (address `~0`) and
//! frees the page only if Xen agreed, else keeps it out of the allocator
//! for good (the same rule as a granted page still mapped by a backend).
//! Reads are volatile copies, since Xen writes at any time.

use crate::mm::{MmError, Page};
use pv_arch::hypercall::vcpu::{self, PhysArea};
use pv_arch::Errno;

/// A page Xen writes one vCPU's [`PhysArea`] into.
pub struct RegisteredArea {
    area: PhysArea,
    vcpu: u32,
    offset: usize,
    /// `None` only inside `drop`.
    page: Option<Page>,
}

impl RegisteredArea {
    /// Registers `page`, from byte `offset`, as `vcpu`'s `area`. On
    /// refusal the page comes back with Xen's error.
    ///
    /// `offset` may be anything inside the page: Xen refuses an area that
    /// is misaligned or crosses the page's end (`ENXIO`), and a struct
    /// that would cross it is refused here first (`EINVAL`), so Xen never
    /// gets an address past the page we own.
    pub fn register(
        area: PhysArea,
        vcpu: u32,
        page: Page,
        offset: usize,
    ) -> Result<RegisteredArea, (Page, Errno)> {
        if offset + area_size(area) > crate::boot_info::PAGE_SIZE as usize {
            return Err((page, Errno::EINVAL));
        }
        let gaddr = (page.gfn().raw() << 12) + offset as u64;
        // SAFETY: the area lies inside `page` (checked above), which the
        // returned value owns and reads only with volatile reads; its
        // drop unregisters before the page can be freed, and leaks the
        // page if Xen will not unregister. On failure nothing is
        // registered and the page goes back to the caller.
        match unsafe { vcpu::register_phys_area(area, vcpu, gaddr) } {
            Ok(()) => Ok(RegisteredArea {
                area,
                vcpu,
                offset,
                page: Some(page),
            }),
            Err(errno) => Err((page, errno)),
        }
    }

    /// A `u64` of the area at byte `at` (volatile).
    pub fn read_u64(&self, at: usize) -> Result<u64, MmError> {
        match &self.page {
            Some(page) => page.read_u64(self.offset + at),
            None => Err(MmError::BadOffset(at)),
        }
    }

    /// A `u32` of the area at byte `at` (volatile).
    pub fn read_u32(&self, at: usize) -> Result<u32, MmError> {
        match &self.page {
            Some(page) => page.read_u32(self.offset + at),
            None => Err(MmError::BadOffset(at)),
        }
    }

    /// Unregisters and gives the page back; on Xen's refusal the area
    /// stays registered (and is returned with the error).
    pub fn unregister(mut self) -> Result<Page, (RegisteredArea, Errno)> {
        match vcpu::unregister_phys_area(self.area, self.vcpu) {
            Ok(()) => Ok(self.page.take().expect("page present until drop")),
            Err(errno) => Err((self, errno)),
        }
    }
}

/// The size of the struct Xen writes for `area`.
fn area_size(area: PhysArea) -> usize {
    match area {
        PhysArea::Runstate => core::mem::size_of::<pv_arch::abi::vcpu::VcpuRunstateInfo>(),
        PhysArea::VcpuTime => core::mem::size_of::<pv_arch::abi::shared_info::VcpuTimeInfo>(),
    }
}

impl Drop for RegisteredArea {
    fn drop(&mut self) {
        let Some(page) = self.page.take() else {
            return;
        };
        if let Err(errno) = vcpu::unregister_phys_area(self.area, self.vcpu) {
            // Xen may still write the page: it must never be reused.
            log::error!(
                "vcpu {}: unregistering {:?} failed ({errno}); its page is kept out of use",
                self.vcpu,
                self.area
            );
            core::mem::forget(page);
        }
    }
}
