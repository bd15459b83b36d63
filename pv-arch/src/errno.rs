//! Xen's error numbers (`xen/errno.h`).
//!
//! A hypercall returns a negative errno in `rax` on failure. [`Errno`]
//! carries the positive value; its `Display` prints the symbolic name so a
//! conformance failure reads `EINVAL`, not `-22`.

use core::fmt;

/// A Xen error number (positive; the hypercall returned its negation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// `EPERM` (1): Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// `ENOENT` (2): No such file or directory.
    pub const ENOENT: Errno = Errno(2);
    /// `ESRCH` (3): No such process.
    pub const ESRCH: Errno = Errno(3);
    /// `EINTR` (4): Interrupted system call.
    pub const EINTR: Errno = Errno(4);
    /// `EIO` (5): I/O error.
    pub const EIO: Errno = Errno(5);
    /// `ENXIO` (6): No such device or address.
    pub const ENXIO: Errno = Errno(6);
    /// `E2BIG` (7): Arg list too long.
    pub const E2BIG: Errno = Errno(7);
    /// `ENOEXEC` (8): Exec format error.
    pub const ENOEXEC: Errno = Errno(8);
    /// `EBADF` (9): Bad file number.
    pub const EBADF: Errno = Errno(9);
    /// `ECHILD` (10): No child processes.
    pub const ECHILD: Errno = Errno(10);
    /// `EAGAIN` (11): Try again.
    pub const EAGAIN: Errno = Errno(11);
    /// `EWOULDBLOCK` (11): Operation would block.  Aliases EAGAIN.
    pub const EWOULDBLOCK: Errno = Errno(11);
    /// `ENOMEM` (12): Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// `EACCES` (13): Permission denied.
    pub const EACCES: Errno = Errno(13);
    /// `EFAULT` (14): Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// `EBUSY` (16): Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// `EEXIST` (17): File exists.
    pub const EEXIST: Errno = Errno(17);
    /// `EXDEV` (18): Cross-device link.
    pub const EXDEV: Errno = Errno(18);
    /// `ENODEV` (19): No such device.
    pub const ENODEV: Errno = Errno(19);
    /// `ENOTDIR` (20): Not a directory.
    pub const ENOTDIR: Errno = Errno(20);
    /// `EISDIR` (21): Is a directory.
    pub const EISDIR: Errno = Errno(21);
    /// `EINVAL` (22): Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// `ENFILE` (23): File table overflow.
    pub const ENFILE: Errno = Errno(23);
    /// `EMFILE` (24): Too many open files.
    pub const EMFILE: Errno = Errno(24);
    /// `ENOSPC` (28): No space left on device.
    pub const ENOSPC: Errno = Errno(28);
    /// `EROFS` (30): Read-only file system.
    pub const EROFS: Errno = Errno(30);
    /// `EMLINK` (31): Too many links.
    pub const EMLINK: Errno = Errno(31);
    /// `EDOM` (33): Math argument out of domain of func.
    pub const EDOM: Errno = Errno(33);
    /// `ERANGE` (34): Math result not representable.
    pub const ERANGE: Errno = Errno(34);
    /// `EDEADLK` (35): Resource deadlock would occur.
    pub const EDEADLK: Errno = Errno(35);
    /// `EDEADLOCK` (35): Resource deadlock would occur. Aliases EDEADLK.
    pub const EDEADLOCK: Errno = Errno(35);
    /// `ENAMETOOLONG` (36): File name too long.
    pub const ENAMETOOLONG: Errno = Errno(36);
    /// `ENOLCK` (37): No record locks available.
    pub const ENOLCK: Errno = Errno(37);
    /// `ENOSYS` (38): Function not implemented.
    pub const ENOSYS: Errno = Errno(38);
    /// `ENOTEMPTY` (39): Directory not empty.
    pub const ENOTEMPTY: Errno = Errno(39);
    /// `ENODATA` (61): No data available.
    pub const ENODATA: Errno = Errno(61);
    /// `ETIME` (62): Timer expired.
    pub const ETIME: Errno = Errno(62);
    /// `EBADMSG` (74): Not a data message.
    pub const EBADMSG: Errno = Errno(74);
    /// `EOVERFLOW` (75): Value too large for defined data type.
    pub const EOVERFLOW: Errno = Errno(75);
    /// `EILSEQ` (84): Illegal byte sequence.
    pub const EILSEQ: Errno = Errno(84);
    /// `ERESTART` (85): Interrupted system call should be restarted.
    pub const ERESTART: Errno = Errno(85);
    /// `ENOTSOCK` (88): Socket operation on non-socket.
    pub const ENOTSOCK: Errno = Errno(88);
    /// `EMSGSIZE` (90): Message too large.
    pub const EMSGSIZE: Errno = Errno(90);
    /// `EOPNOTSUPP` (95): Operation not supported on transport endpoint.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// `EADDRINUSE` (98): Address already in use.
    pub const EADDRINUSE: Errno = Errno(98);
    /// `EADDRNOTAVAIL` (99): Cannot assign requested address.
    pub const EADDRNOTAVAIL: Errno = Errno(99);
    /// `ENOBUFS` (105): No buffer space available.
    pub const ENOBUFS: Errno = Errno(105);
    /// `EISCONN` (106): Transport endpoint is already connected.
    pub const EISCONN: Errno = Errno(106);
    /// `ENOTCONN` (107): Transport endpoint is not connected.
    pub const ENOTCONN: Errno = Errno(107);
    /// `ETIMEDOUT` (110): Connection timed out.
    pub const ETIMEDOUT: Errno = Errno(110);
    /// `ECONNREFUSED` (111): Connection refused.
    pub const ECONNREFUSED: Errno = Errno(111);
    /// `ESTALE` (116): Stale handle (Paravane: an event channel bound
    /// before the domain was suspended and resumed elsewhere).
    pub const ESTALE: Errno = Errno(116);
}

impl Errno {
    /// Turns a raw hypercall return value into `Ok(value)` or `Err(errno)`.
    ///
    /// Xen returns `-errno` for errors; values in `-4095..0` are errors, the
    /// same convention as Linux system calls.
    pub fn from_ret(ret: i64) -> Result<u64, Errno> {
        if (-4095..0).contains(&ret) {
            Err(Errno(-ret as i32))
        } else {
            Ok(ret as u64)
        }
    }

    /// The symbolic name (`"EINVAL"`), or `None` for a value Xen never defined.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            4 => "EINTR",
            5 => "EIO",
            6 => "ENXIO",
            7 => "E2BIG",
            8 => "ENOEXEC",
            9 => "EBADF",
            10 => "ECHILD",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            18 => "EXDEV",
            19 => "ENODEV",
            20 => "ENOTDIR",
            21 => "EISDIR",
            22 => "EINVAL",
            23 => "ENFILE",
            24 => "EMFILE",
            28 => "ENOSPC",
            30 => "EROFS",
            31 => "EMLINK",
            33 => "EDOM",
            34 => "ERANGE",
            35 => "EDEADLK",
            36 => "ENAMETOOLONG",
            37 => "ENOLCK",
            38 => "ENOSYS",
            39 => "ENOTEMPTY",
            61 => "ENODATA",
            62 => "ETIME",
            74 => "EBADMSG",
            75 => "EOVERFLOW",
            84 => "EILSEQ",
            85 => "ERESTART",
            88 => "ENOTSOCK",
            90 => "EMSGSIZE",
            95 => "EOPNOTSUPP",
            98 => "EADDRINUSE",
            99 => "EADDRNOTAVAIL",
            105 => "ENOBUFS",
            106 => "EISCONN",
            107 => "ENOTCONN",
            110 => "ETIMEDOUT",
            111 => "ECONNREFUSED",
            116 => "ESTALE",
            _ => return None,
        })
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "errno {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn negative_returns_are_errors() {
        assert_eq!(Errno::from_ret(-22), Err(Errno::EINVAL));
        assert_eq!(Errno::from_ret(0), Ok(0));
        assert_eq!(Errno::from_ret(7), Ok(7));
        // A large value (an address, a count) is not mistaken for an error.
        assert_eq!(Errno::from_ret(-5000), Ok((-5000i64) as u64));
    }

    #[test]
    fn names_are_symbolic() {
        assert_eq!(Errno::EAGAIN.to_string(), "EAGAIN");
        assert_eq!(Errno(4000).to_string(), "errno 4000");
    }
}
