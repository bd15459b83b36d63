//! A writer for the `newc` cpio format, the one Linux unpacks as an
//! initramfs.
//!
//! The rig builds dom0's initramfs in Rust instead of calling `cpio(1)`, so a
//! fresh machine needs no extra host tool, and so the archive's contents do
//! not depend on the host's file owners or timestamps (every entry is owned by
//! root with mtime 0: the same inputs give the same bytes). Linux unpacks
//! concatenated archives one after the other, which is how a small per-run
//! archive is appended to the cached base one.

use std::collections::BTreeSet;

/// The kind of one archive entry, with its content.
enum Entry<'a> {
    Dir,
    File(&'a [u8]),
    Symlink(&'a str),
    CharDevice { major: u32, minor: u32 },
}

/// Builds one `newc` archive in memory.
///
/// Parent directories are created implicitly (once each) before the first
/// entry inside them, so callers only name the files they care about.
pub struct CpioWriter {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    next_inode: u32,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> Self {
        CpioWriter {
            out: Vec::new(),
            dirs: BTreeSet::new(),
            next_inode: 1,
        }
    }

    /// Adds a directory (and its parents) with mode 0755.
    pub fn dir(&mut self, path: &str) {
        let path = normalize(path);
        if path.is_empty() || self.dirs.contains(&path) {
            return;
        }
        self.parents(&path);
        self.dirs.insert(path.clone());
        self.entry(&path, 0o040_755, Entry::Dir);
    }

    /// Adds a regular file with the given permission bits (e.g. 0o755).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        let path = normalize(path);
        self.parents(&path);
        self.entry(&path, 0o100_000 | (perm & 0o7777), Entry::File(data));
    }

    /// Adds a symbolic link `path` pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = normalize(path);
        self.parents(&path);
        self.entry(&path, 0o120_777, Entry::Symlink(target));
    }

    /// Adds a character device node (e.g. `/dev/console`, 5:1).
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        let path = normalize(path);
        self.parents(&path);
        self.entry(
            &path,
            0o020_000 | (perm & 0o7777),
            Entry::CharDevice { major, minor },
        );
    }

    /// Writes the trailer and returns the archive's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, 0, 0, 0);
        self.out
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, path: &str, mode: u32, entry: Entry<'_>) {
        let inode = self.next_inode;
        self.next_inode += 1;
        match entry {
            Entry::Dir => self.header(path, inode, mode, 2, 0, 0),
            Entry::File(data) => {
                self.header(path, inode, mode, 1, data.len(), 0);
                self.out.extend_from_slice(data);
                self.pad();
            }
            Entry::Symlink(target) => {
                self.header(path, inode, mode, 1, target.len(), 0);
                self.out.extend_from_slice(target.as_bytes());
                self.pad();
            }
            Entry::CharDevice { major, minor } => {
                self.header(path, inode, mode, 1, 0, (major << 16) | (minor & 0xffff));
            }
        }
    }

    /// Writes one 110-byte header plus the NUL-terminated, padded name.
    /// `rdev` packs major in the high and minor in the low 16 bits.
    fn header(&mut self, name: &str, inode: u32, mode: u32, nlink: u32, size: usize, rdev: u32) {
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(size).expect("cpio entries are limited to 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev >> 16,
            rdev & 0xffff,
            u32::try_from(name.len() + 1).expect("name length fits"),
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

/// Archive paths are relative: no leading `/`, no trailing `/`.
fn normalize(path: &str) -> String {
    path.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: name, mode, (rdev major, minor), data.
    type Parsed = (String, u32, (u32, u32), Vec<u8>);

    /// Parses a newc archive back into its entries.
    fn parse(mut bytes: &[u8]) -> Vec<Parsed> {
        let mut entries = Vec::new();
        let start_len = bytes.len();
        loop {
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[6 + i * 8..14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let mode = field(1);
            let size = field(6) as usize;
            let rdev = (field(9), field(10));
            let namesize = field(11) as usize;
            let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(bytes[110 + namesize - 1], 0);
            let mut off = 110 + namesize;
            off = off.next_multiple_of(4);
            let data = bytes[off..off + size].to_vec();
            off += size;
            off = off.next_multiple_of(4);
            bytes = &bytes[off..];
            assert_eq!((start_len - bytes.len()) % 4, 0);
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty());
                return entries;
            }
            entries.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn round_trip_with_implicit_parents() {
        let mut w = CpioWriter::new();
        w.file("/bin/busybox", 0o755, b"\x7fELFhello");
        w.symlink("/bin/sh", "busybox");
        w.char_device("/dev/console", 0o600, 5, 1);
        w.dir("/bin");
        w.file("etc/x", 0o644, b"");
        let entries = parse(&w.finish());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/x"
            ]
        );
        assert_eq!(entries[1].1, 0o100_755);
        assert_eq!(entries[1].3, b"\x7fELFhello");
        assert_eq!(entries[2].1, 0o120_777);
        assert_eq!(entries[2].3, b"busybox");
        assert_eq!(entries[4].1, 0o020_600);
        assert_eq!(entries[4].2, (5, 1));
        assert_eq!(entries[0].1, 0o040_755);
    }

    #[test]
    fn concatenated_archives_stay_aligned() {
        let mut a = CpioWriter::new();
        a.file("a", 0o644, b"123");
        let mut bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        let mut b = CpioWriter::new();
        b.file("b", 0o644, b"12345");
        bytes.extend(b.finish());
        assert_eq!(bytes.len() % 4, 0);
    }
}
