//! Bounds-checked volatile access to a mapped frame, for code that may
//! not use `unsafe` and for memory another party writes concurrently
//! (a foreign frame mapped in the window). Writes need `&mut self`.
//!
//! [`volatile_accessors!`] gives a type with `fn base(&self) -> *mut u8`
//! (one mapped page) and `fn writable(&self) -> bool` the methods
//! `read_u8` … `read_u64`, `write_u8` … `write_u64` and `read_bytes` /
//! `write_bytes`. Offsets must lie inside the page and be aligned to the
//! value's size; anything else is [`MmError::BadOffset`](super::MmError).

use super::error::MmError;

/// Bytes in the page the accessors cover.
pub const SPAN: usize = 4096;

/// Checks that `len` bytes at `offset` fit the page, aligned to `align`.
pub fn check(offset: usize, len: usize, align: usize) -> Result<(), MmError> {
    match offset.checked_add(len) {
        Some(end) if end <= SPAN && offset.is_multiple_of(align) => Ok(()),
        _ => Err(MmError::BadOffset(offset)),
    }
}

/// Implements the accessors for a page handle type.
#[cfg(target_os = "none")]
macro_rules! volatile_accessors {
    ($ty:ty) => {
        $crate::mm::access::volatile_accessors!(@impl $ty,
            (read_u8, write_u8, u8),
            (read_u16, write_u16, u16),
            (read_u32, write_u32, u32),
            (read_u64, write_u64, u64));
    };
    (@impl $ty:ty, $(($read:ident, $write:ident, $int:ty)),*) => {
        impl $ty {
            $(
                #[doc = concat!("Reads a `", stringify!($int), "` at `offset` (volatile).")]
                pub fn $read(&self, offset: usize) -> Result<$int, $crate::mm::MmError> {
                    let size = core::mem::size_of::<$int>();
                    $crate::mm::access::check(offset, size, size)?;
                    // SAFETY: the page is mapped while `self` lives and
                    // `offset` is in bounds and aligned (checked above).
                    Ok(unsafe { self.base().add(offset).cast::<$int>().read_volatile() })
                }

                #[doc = concat!("Writes a `", stringify!($int), "` at `offset` (volatile).")]
                pub fn $write(&mut self, offset: usize, value: $int) -> Result<(), $crate::mm::MmError> {
                    let size = core::mem::size_of::<$int>();
                    $crate::mm::access::check(offset, size, size)?;
                    if !self.writable() {
                        return Err($crate::mm::MmError::ReadOnly);
                    }
                    // SAFETY: as for reads, and the mapping is writable.
                    unsafe { self.base().add(offset).cast::<$int>().write_volatile(value) };
                    Ok(())
                }
            )*

            /// Copies bytes at `offset` into `out` (volatile, byte by byte).
            pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), $crate::mm::MmError> {
                $crate::mm::access::check(offset, out.len(), 1)?;
                for (i, byte) in out.iter_mut().enumerate() {
                    // SAFETY: in bounds (checked above), page mapped.
                    *byte = unsafe { self.base().add(offset + i).read_volatile() };
                }
                Ok(())
            }

            /// Copies `bytes` to `offset` (volatile, byte by byte).
            pub fn write_bytes(&mut self, offset: usize, bytes: &[u8]) -> Result<(), $crate::mm::MmError> {
                $crate::mm::access::check(offset, bytes.len(), 1)?;
                if !self.writable() {
                    return Err($crate::mm::MmError::ReadOnly);
                }
                for (i, byte) in bytes.iter().enumerate() {
                    // SAFETY: in bounds (checked above), mapped writable.
                    unsafe { self.base().add(offset + i).write_volatile(*byte) };
                }
                Ok(())
            }
        }
    };
}
#[cfg(target_os = "none")]
pub(crate) use volatile_accessors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_alignment() {
        assert_eq!(check(0, 8, 8), Ok(()));
        assert_eq!(check(4088, 8, 8), Ok(()));
        assert_eq!(check(4089, 8, 8), Err(MmError::BadOffset(4089)));
        assert_eq!(check(4, 8, 8), Err(MmError::BadOffset(4)));
        assert_eq!(check(usize::MAX, 2, 1), Err(MmError::BadOffset(usize::MAX)));
        assert_eq!(check(0, 4096, 1), Ok(()));
        assert_eq!(check(1, 4096, 1), Err(MmError::BadOffset(1)));
    }
}
