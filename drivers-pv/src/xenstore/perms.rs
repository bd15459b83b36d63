//! Node permissions and their wire format (`XS_GET_PERMS`, `XS_SET_PERMS`).
//!
//! On the wire a permission list is one or more NUL-terminated entries,
//! each a letter and a decimal domid: `n` no access, `r` read, `w` write,
//! `b` both (`"b0\0r5\0"`). The first entry is special: its domid owns the
//! node (the owner, like dom0, may always read, write and change the
//! permissions) and its letter is the access every domain not listed after
//! it gets. [`Permissions`] keeps exactly that shape, parses what
//! xenstored sends (untrusted: any deviation is
//! [`Malformation::BadPermission`]) and formats what we send.

use alloc::vec::Vec;
use core::fmt;

use super::error::{Malformation, XsError};

/// What one domain may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The access a wire letter stands for.
    pub const fn from_letter(letter: u8) -> Option<Access> {
        match letter {
            b'n' => Some(Access::None),
            b'r' => Some(Access::Read),
            b'w' => Some(Access::Write),
            b'b' => Some(Access::Both),
            _ => None,
        }
    }

    /// The wire letter for this access.
    pub const fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    /// Whether this access allows reading.
    pub const fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this access allows writing.
    pub const fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One entry of a permission list: a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain the entry is about.
    pub domid: u16,
    /// What it may do.
    pub access: Access,
}

impl Perm {
    /// Parses one wire entry (without its NUL): a letter, then 1 to 5
    /// decimal digits naming a domid up to 65535.
    pub fn parse(entry: &[u8]) -> Result<Perm, XsError> {
        let bad = XsError::Malformed(Malformation::BadPermission);
        let (&letter, digits) = entry.split_first().ok_or(bad)?;
        let access = Access::from_letter(letter).ok_or(bad)?;
        let domid = parse_decimal_u16(digits).ok_or(bad)?;
        Ok(Perm { domid, access })
    }
}

/// Parses 1 to 5 ASCII digits into a `u16`, or `None`.
fn parse_decimal_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    let mut value: u32 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(digit - b'0');
    }
    u16::try_from(value).ok()
}

/// The permissions of a node: its owner, the access of everyone not
/// listed, and a list of per-domain exceptions (in wire order).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permissions {
    owner: u16,
    others: Access,
    entries: Vec<Perm>,
}

impl Permissions {
    /// A node owned by `owner`; every other domain gets `others`.
    pub fn new(owner: u16, others: Access) -> Permissions {
        Permissions {
            owner,
            others,
            entries: Vec::new(),
        }
    }

    /// Gives `domid` the access `access`, replacing an earlier entry for
    /// the same domain.
    pub fn with(mut self, domid: u16, access: Access) -> Permissions {
        self.set(domid, access);
        self
    }

    /// Gives `domid` the access `access`, replacing an earlier entry for
    /// the same domain.
    pub fn set(&mut self, domid: u16, access: Access) {
        match self.entries.iter_mut().find(|perm| perm.domid == domid) {
            Some(perm) => perm.access = access,
            None => self.entries.push(Perm { domid, access }),
        }
    }

    /// The owning domain.
    pub fn owner(&self) -> u16 {
        self.owner
    }

    /// Changes the owning domain.
    pub fn set_owner(&mut self, owner: u16) {
        self.owner = owner;
    }

    /// The access of domains neither owning the node nor listed.
    pub fn others(&self) -> Access {
        self.others
    }

    /// The per-domain entries after the first, in wire order.
    pub fn entries(&self) -> &[Perm] {
        &self.entries
    }

    /// What `domid` may do under these permissions, as xenstored decides
    /// for an unprivileged domain: the owner may do everything, the first
    /// entry naming the domain decides next, else [`Permissions::others`].
    /// (xenstored also lets dom0 do everything; that is its policy, not
    /// the list's.)
    pub fn access_for(&self, domid: u16) -> Access {
        if domid == self.owner {
            return Access::Both;
        }
        self.entries
            .iter()
            .find(|perm| perm.domid == domid)
            .map_or(self.others, |perm| perm.access)
    }

    /// Parses a wire permission list: one or more NUL-terminated entries.
    pub fn parse(payload: &[u8]) -> Result<Permissions, XsError> {
        let body = payload
            .strip_suffix(b"\0")
            .ok_or(XsError::Malformed(Malformation::MissingNul))?;
        let mut fields = body.split(|&byte| byte == 0);
        // `split` always yields at least one item; an empty first entry
        // fails to parse below.
        let first = Perm::parse(fields.next().unwrap_or_default())?;
        let entries = fields.map(Perm::parse).collect::<Result<Vec<_>, _>>()?;
        Ok(Permissions {
            owner: first.domid,
            others: first.access,
            entries,
        })
    }

    /// Appends the wire form (each entry NUL-terminated) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let first = Perm {
            domid: self.owner,
            access: self.others,
        };
        for perm in core::iter::once(&first).chain(self.entries.iter()) {
            out.push(perm.access.letter());
            push_decimal(out, u32::from(perm.domid));
            out.push(0);
        }
    }

    /// The wire form as a new vector.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends the decimal digits of `value` to `out`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut value: u32) {
    let mut digits = [0u8; 10];
    let mut count = 0;
    loop {
        digits[count] = b'0' + (value % 10) as u8;
        count += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[..count].iter().rev());
}

impl fmt::Display for Permissions {
    /// Comma-separated wire entries: `b0,r5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.others.letter() as char, self.owner)?;
        for perm in &self.entries {
            write!(f, ",{}{}", perm.access.letter() as char, perm.domid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parse_and_format_round_trip() {
        let wire = b"n0\0r5\0w7\0b65535\0";
        let perms = Permissions::parse(wire).unwrap();
        assert_eq!(perms.owner(), 0);
        assert_eq!(perms.others(), Access::None);
        assert_eq!(
            perms.entries(),
            &[
                Perm {
                    domid: 5,
                    access: Access::Read
                },
                Perm {
                    domid: 7,
                    access: Access::Write
                },
                Perm {
                    domid: 65535,
                    access: Access::Both
                },
            ]
        );
        assert_eq!(perms.to_wire(), wire);
        assert_eq!(perms.to_string(), "n0,r5,w7,b65535");
    }

    #[test]
    fn builder_replaces_entries() {
        let perms = Permissions::new(3, Access::Read)
            .with(0, Access::Both)
            .with(4, Access::None)
            .with(0, Access::Write);
        assert_eq!(perms.to_wire(), b"r3\0w0\0n4\0");
    }

    #[test]
    fn access_rules() {
        let perms = Permissions::parse(b"r3\0n5\0w9\0b5\0").unwrap();
        assert_eq!(perms.access_for(3), Access::Both);
        assert_eq!(perms.access_for(5), Access::None, "first entry wins");
        assert_eq!(perms.access_for(9), Access::Write);
        assert_eq!(perms.access_for(1), Access::Read);
        assert!(Access::Both.can_read() && Access::Both.can_write());
        assert!(!Access::Write.can_read() && !Access::Read.can_write());
    }

    #[test]
    fn rejects_bad_lists() {
        let bad = Err(XsError::Malformed(Malformation::BadPermission));
        assert_eq!(Permissions::parse(b"x0\0"), bad);
        assert_eq!(Permissions::parse(b"r\0"), bad);
        assert_eq!(Permissions::parse(b"r65536\0"), bad);
        assert_eq!(Permissions::parse(b"r123456\0"), bad);
        assert_eq!(Permissions::parse(b"r-1\0"), bad);
        assert_eq!(Permissions::parse(b"r1\0\0"), bad);
        assert_eq!(Permissions::parse(b"\0"), bad);
        assert_eq!(
            Permissions::parse(b"r1"),
            Err(XsError::Malformed(Malformation::MissingNul))
        );
        assert_eq!(
            Permissions::parse(b""),
            Err(XsError::Malformed(Malformation::MissingNul))
        );
    }

    #[test]
    fn decimal_formatting() {
        for value in [0u32, 7, 10, 65535, u32::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }
}
