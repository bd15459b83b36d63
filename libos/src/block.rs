//! A block device as a byte stream: [`BlockDevice`] implements
//! `embedded_io`'s `Read`, `Write` and `Seek` over anything that reads and
//! writes whole blocks ([`SectorDevice`]); in the guest that is
//! blkfront's `BlockFront` ([`open`] connects to the domain's disk).
//!
//! Aligned, whole-block transfers go straight to the device (as many
//! blocks as the buffer holds, in one pipelined call); a transfer that
//! starts or ends inside a block goes through one block of scratch
//! (read-modify-write for writes). Reads stop at the end of the disk
//! (`Ok(0)` there); writes past it fail with `WriteZero`-style errors
//! rather than grow the disk.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use drivers_pv::blkfront::BlockError;
use embedded_io::{ErrorKind, ErrorType, Read, Seek, SeekFrom, Write};

/// A device that moves whole blocks.
pub trait SectorDevice {
    /// The block size in bytes (a power of two, at least 512).
    fn block_size(&self) -> usize;
    /// The device's size in bytes (a multiple of the block size).
    fn size_bytes(&self) -> u64;
    /// Reads `buf.len()` bytes (whole blocks) at byte `offset` (block aligned).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `data` (whole blocks) at byte `offset` (block aligned).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Makes what was written durable.
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// blkfront's calls are async (the task awaits the event channel); a
/// [`BlockDevice`] is the blocking face synchronous apps use, so each
/// call here is the outermost `block_on`.
#[cfg(target_os = "none")]
impl SectorDevice for drivers_pv::blkfront::device::BlockFront {
    fn block_size(&self) -> usize {
        (self.info().sector_size as usize).max(512)
    }

    fn size_bytes(&self) -> u64 {
        self.info().bytes()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        kernel::sched::block_on(self.read(offset / 512, buf))
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        kernel::sched::block_on(self.write(offset / 512, data))
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        kernel::sched::block_on(drivers_pv::blkfront::device::BlockFront::flush(self))
    }
}

/// Connects to the domain's first virtual disk (connecting to xenstore
/// first if needed) and wraps it. Blocking: for an app's synchronous
/// entry (the outermost `block_on`). The command line may turn
/// persistent grants off (`blkfront.persistent=0`, see
/// `drivers_pv::blkfront::Options::from_cmdline`).
#[cfg(target_os = "none")]
pub fn open(
    env: &crate::Env<'_>,
) -> Result<BlockDevice<drivers_pv::blkfront::device::BlockFront>, BlockError> {
    drivers_pv::xenstore::guest::connect(env.boot()).map_err(|_| BlockError::NoDevice)?;
    let options = drivers_pv::blkfront::Options::from_cmdline(env.cmdline());
    let front = kernel::sched::block_on(drivers_pv::blkfront::device::BlockFront::connect_with(
        None, options,
    ))?;
    Ok(BlockDevice::new(front))
}

/// A block I/O error, as `embedded_io` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError(pub BlockError);

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl core::error::Error for IoError {}

impl embedded_io::Error for IoError {
    fn kind(&self) -> ErrorKind {
        match self.0 {
            BlockError::NoDevice => ErrorKind::NotFound,
            BlockError::ReadOnly => ErrorKind::PermissionDenied,
            BlockError::OutOfRange => ErrorKind::InvalidInput,
            BlockError::NotSupported => ErrorKind::Unsupported,
            BlockError::Timeout => ErrorKind::TimedOut,
            BlockError::NotConnected
            | BlockError::Xenbus(_)
            | BlockError::Detached
            | BlockError::Reset => ErrorKind::NotConnected,
            BlockError::Resources(_) => ErrorKind::OutOfMemory,
            BlockError::BadKey(_)
            | BlockError::Feature(_)
            | BlockError::Ring(_)
            | BlockError::BadResponse(_) => ErrorKind::InvalidData,
            BlockError::Xenstore(_) | BlockError::Io => ErrorKind::Other,
        }
    }
}

/// A [`SectorDevice`] with a byte position.
pub struct BlockDevice<D> {
    device: D,
    position: u64,
    scratch: Vec<u8>,
}

impl<D: SectorDevice> BlockDevice<D> {
    /// Wraps `device`, positioned at 0.
    pub fn new(device: D) -> Self {
        let scratch = vec![0; device.block_size()];
        BlockDevice {
            device,
            position: 0,
            scratch,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably (for block-level calls).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Gives the device back (to close it).
    pub fn into_inner(self) -> D {
        self.device
    }

    /// The current byte position.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The device's size in bytes.
    pub fn len(&self) -> u64 {
        self.device.size_bytes()
    }

    /// Whether the device has no blocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block size and the split of a transfer of `want` bytes at the
    /// current position: (block start, offset in block, whole-block
    /// bytes possible from here).
    fn geometry(&self, want: usize) -> (u64, usize, usize) {
        let block = self.scratch.len() as u64;
        let start = self.position - self.position % block;
        let within = (self.position - start) as usize;
        let remaining = self.len().saturating_sub(self.position);
        let limit = (want as u64).min(remaining);
        let whole = (limit - limit % block) as usize;
        (start, within, whole)
    }
}

impl<D> ErrorType for BlockDevice<D> {
    type Error = IoError;
}

impl<D: SectorDevice> Read for BlockDevice<D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let remaining = self.len().saturating_sub(self.position);
        if buf.is_empty() || remaining == 0 {
            return Ok(0);
        }
        let (start, within, whole) = self.geometry(buf.len());
        let n = if within == 0 && whole > 0 {
            self.device
                .read_at(self.position, &mut buf[..whole])
                .map_err(IoError)?;
            whole
        } else {
            self.device
                .read_at(start, &mut self.scratch)
                .map_err(IoError)?;
            let n = (self.scratch.len() - within)
                .min(buf.len())
                .min(remaining as usize);
            buf[..n].copy_from_slice(&self.scratch[within..within + n]);
            n
        };
        self.position += n as u64;
        Ok(n)
    }
}

impl<D: SectorDevice> Write for BlockDevice<D> {
    fn write(&mut self, data: &[u8]) -> Result<usize, IoError> {
        if data.is_empty() {
            return Ok(0);
        }
        let remaining = self.len().saturating_sub(self.position);
        if remaining == 0 {
            return Err(IoError(BlockError::OutOfRange));
        }
        let (start, within, whole) = self.geometry(data.len());
        let n = if within == 0 && whole > 0 {
            self.device
                .write_at(self.position, &data[..whole])
                .map_err(IoError)?;
            whole
        } else {
            self.device
                .read_at(start, &mut self.scratch)
                .map_err(IoError)?;
            let n = (self.scratch.len() - within)
                .min(data.len())
                .min(remaining as usize);
            self.scratch[within..within + n].copy_from_slice(&data[..n]);
            self.device
                .write_at(start, &self.scratch)
                .map_err(IoError)?;
            n
        };
        self.position += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.device.flush().map_err(IoError)
    }
}

impl<D: SectorDevice> Seek for BlockDevice<D> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, IoError> {
        let target = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target.ok_or(IoError(BlockError::OutOfRange))?;
        self.position = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk in a `Vec`, checking alignment like blkfront does.
    struct MemDisk {
        bytes: Vec<u8>,
        block: usize,
        flushes: usize,
    }

    impl SectorDevice for MemDisk {
        fn block_size(&self) -> usize {
            self.block
        }
        fn size_bytes(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
            let at = offset as usize;
            if !at.is_multiple_of(self.block)
                || !buf.len().is_multiple_of(self.block)
                || at + buf.len() > self.bytes.len()
            {
                return Err(BlockError::OutOfRange);
            }
            buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
            let at = offset as usize;
            if !at.is_multiple_of(self.block)
                || !data.len().is_multiple_of(self.block)
                || at + data.len() > self.bytes.len()
            {
                return Err(BlockError::OutOfRange);
            }
            self.bytes[at..at + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            self.flushes += 1;
            Ok(())
        }
    }

    fn disk() -> BlockDevice<MemDisk> {
        BlockDevice::new(MemDisk {
            bytes: (0..8192u32).map(|i| (i % 251) as u8).collect(),
            block: 512,
            flushes: 0,
        })
    }

    #[test]
    fn reads_unaligned_and_stops_at_the_end() {
        let mut dev = disk();
        dev.seek(SeekFrom::Start(100)).unwrap();
        let mut buf = [0u8; 1000];
        dev.read_exact(&mut buf).unwrap();
        let expect: Vec<u8> = (100..1100u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(&buf[..], &expect[..]);
        assert_eq!(dev.seek(SeekFrom::End(-10)).unwrap(), 8182);
        let mut tail = [0u8; 64];
        assert_eq!(dev.read(&mut tail).unwrap(), 10);
        assert_eq!(dev.read(&mut tail).unwrap(), 0);
        assert!(dev.seek(SeekFrom::Current(-9000)).is_err());
    }

    #[test]
    fn writes_read_modify_write_and_flush() {
        let mut dev = disk();
        dev.seek(SeekFrom::Start(510)).unwrap();
        dev.write_all(&[0xee; 1030]).unwrap();
        dev.flush().unwrap();
        assert_eq!(dev.device().flushes, 1);
        let bytes = &dev.device().bytes;
        assert_eq!(bytes[509], (509 % 251) as u8);
        assert!(bytes[510..1540].iter().all(|&b| b == 0xee));
        assert_eq!(bytes[1540], (1540 % 251) as u8);
        dev.seek(SeekFrom::End(0)).unwrap();
        let error = dev.write(&[1]).unwrap_err();
        assert_eq!(embedded_io::Error::kind(&error), ErrorKind::InvalidInput);
    }
}
