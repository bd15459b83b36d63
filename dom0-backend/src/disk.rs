//! The RAM disk: 4 MiB holding the rig's pattern (what the `blkcheck`
//! guest expects: sector `s` is 32 copies of `sector SSSSSSSS\n`), and
//! the check after the guest is gone that every sector holds either the
//! pattern or, where the guest wrote, its `written SSSSSSS\n` lines.

/// Bytes per sector.
pub const SECTOR: usize = 512;
/// Sectors in the disk (4 MiB).
pub const SECTORS: u64 = 8192;

fn line(prefix: &str, digits: usize, sector: u64) -> Vec<u8> {
    let text = format!("{prefix}{:0digits$x}\n", sector & ((1 << (4 * digits)) - 1));
    text.into_bytes().repeat(SECTOR / 16)
}

/// What sector `sector` holds before the guest writes.
pub fn pattern(sector: u64) -> Vec<u8> {
    line("sector ", 8, sector)
}

/// What the guest writes to sector `sector`.
pub fn written(sector: u64) -> Vec<u8> {
    line("written ", 7, sector)
}

/// A fresh disk.
pub fn fresh() -> Vec<u8> {
    (0..SECTORS).flat_map(pattern).collect()
}

/// The disk after the guest: sectors holding neither line, and how many
/// hold the written one. `Err` names the first bad sector.
pub fn check(disk: &[u8]) -> Result<u64, String> {
    let mut written_count = 0;
    let mut bad = 0u64;
    let mut first_bad = None;
    for (sector, bytes) in disk.chunks(SECTOR).enumerate() {
        let sector = sector as u64;
        if bytes == pattern(sector).as_slice() {
            continue;
        }
        if bytes == written(sector).as_slice() {
            written_count += 1;
            continue;
        }
        bad += 1;
        first_bad.get_or_insert(sector);
    }
    match first_bad {
        None => Ok(written_count),
        Some(first) => Err(format!(
            "{bad} sectors hold neither the pattern nor the written lines, first {first}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_blkcheck() {
        assert_eq!(&pattern(0x1234abcd)[..16], b"sector 1234abcd\n");
        assert_eq!(&written(1024)[..16], b"written 0000400\n");
        assert_eq!(pattern(3).len(), SECTOR);
    }

    #[test]
    fn the_check_counts_written_sectors_and_finds_garbage() {
        let mut disk = fresh();
        assert_eq!(disk.len(), 4 << 20);
        assert_eq!(check(&disk), Ok(0));
        disk[SECTOR * 5..SECTOR * 6].copy_from_slice(&written(5));
        assert_eq!(check(&disk), Ok(1));
        disk[SECTOR * 9] = 0;
        assert!(check(&disk).unwrap_err().ends_with("first 9"));
    }
}
