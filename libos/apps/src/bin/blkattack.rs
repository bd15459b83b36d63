//! `blkattack`: the guest of the rig's backend tests (`cargo xtask e2e
//! backend`), run against `dom0-backend`, by the book or hostile.
//!
//! It connects the first virtual disk (a failed connect is reported as
//! `blkattack: connect failed: …` and is not the app's failure: refusing a
//! hostile backend is the point), writes the `written SSSSSSS\n` lines to
//! sectors 64..72, flushes, reads them back, then reads the whole disk in
//! 64 KiB requests and checks the rig's pattern (`sector SSSSSSSS\n`;
//! the written sectors hold their lines). The first I/O error is one
//! line (`blkattack: read error at sector S: …`) and ends the I/O. Then
//! it closes the disk, prints the grant accounting (`blkattack: grants
//! …`) and, with `hold_check=SECONDS`, waits for the quarantine to empty
//! (pages the backend still mapped at the close), and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

/// The disk's lines, shared by the guest and the host tests.
#[allow(dead_code)]
mod lines {
    /// Bytes in a sector.
    pub const SECTOR: usize = 512;

    fn fill(out: &mut [u8], prefix: &[u8], digits: usize, value: u64) {
        let mut line = [b'0'; 16];
        line[..prefix.len()].copy_from_slice(prefix);
        let mut value = value;
        for i in (prefix.len()..prefix.len() + digits).rev() {
            line[i] = b"0123456789abcdef"[(value & 0xf) as usize];
            value >>= 4;
        }
        line[15] = b'\n';
        for chunk in out.chunks_mut(16) {
            chunk.copy_from_slice(&line[..chunk.len()]);
        }
    }

    /// Sector `sector` as the backend's disk starts.
    pub fn pattern(sector: u64, out: &mut [u8]) {
        fill(out, b"sector ", 8, sector & 0xffff_ffff)
    }

    /// What this app writes to sector `sector`.
    pub fn written(sector: u64, out: &mut [u8]) {
        fill(out, b"written ", 7, sector & 0xfff_ffff)
    }
}

#[cfg(target_os = "none")]
mod guest {
    use super::lines::{pattern, written, SECTOR};
    use alloc::vec;
    use core::time::Duration;
    use libos::drivers_pv::blkfront::device::BlockFront;
    use libos::kernel::{grant, sched};
    use libos::{block, println, AppResult, Env};

    /// The sectors written (and read back) before the reads.
    const WRITTEN: core::ops::Range<u64> = 64..72;
    /// Bytes per read.
    const CHUNK: usize = 64 * 1024;

    fn main(env: &Env<'_>) -> AppResult {
        let hold_check = env
            .arg("hold_check")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64);
        match block::open(env) {
            Err(error) => println!("blkattack: connect failed: {error}"),
            Ok(mut disk) => {
                println!("{}", disk.device().info());
                exercise(disk.device_mut());
                match sched::block_on(disk.into_inner().close()) {
                    Ok(()) => println!("blkattack: disconnected"),
                    Err(error) => println!("blkattack: disconnect failed: {error}"),
                }
            }
        }
        println!("blkattack: grants {}", grant::stats());
        drain_quarantine(hold_check);
        println!("blkattack: done");
        Ok(())
    }

    /// Writes, flushes, reads back, reads everything; stops at the first
    /// error, which it reports.
    fn exercise(disk: &mut BlockFront) {
        let count = (WRITTEN.end - WRITTEN.start) as usize;
        let mut data = vec![0u8; count * SECTOR];
        for (i, sector) in data.chunks_mut(SECTOR).enumerate() {
            written(WRITTEN.start + i as u64, sector);
        }
        if let Err(error) = sched::block_on(disk.write(WRITTEN.start, &data)) {
            println!("blkattack: write error: {error}");
            return;
        }
        if let Err(error) = sched::block_on(disk.flush()) {
            println!("blkattack: flush error: {error}");
            return;
        }
        let mut back = vec![0u8; data.len()];
        if let Err(error) = sched::block_on(disk.read(WRITTEN.start, &mut back)) {
            println!("blkattack: read-back error: {error}");
            return;
        }
        if back != data {
            println!("blkattack: read back differs from what was acknowledged");
            return;
        }
        println!(
            "blkattack: wrote, flushed and read back sectors {}..{}",
            WRITTEN.start, WRITTEN.end
        );
        let size = disk.info().sectors.saturating_mul(SECTOR as u64);
        let mut buf = vec![0u8; CHUNK];
        let mut expect = [0u8; SECTOR];
        let mut bad = 0u64;
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(CHUNK as u64) as usize;
            let first = offset / SECTOR as u64;
            if let Err(error) = sched::block_on(disk.read(first, &mut buf[..n])) {
                println!("blkattack: read error at sector {first}: {error}");
                return;
            }
            for (i, sector) in buf[..n].chunks(SECTOR).enumerate() {
                let number = first + i as u64;
                if WRITTEN.contains(&number) {
                    written(number, &mut expect);
                } else {
                    pattern(number, &mut expect);
                }
                if sector != &expect[..sector.len()] {
                    bad += 1;
                }
            }
            offset += n as u64;
        }
        if bad == 0 {
            println!("blkattack: read {size} bytes, all as expected");
        } else {
            println!("blkattack: read {size} bytes, {bad} sectors wrong");
        }
    }

    /// Waits up to `seconds` for pages the backend kept mapped to leave
    /// the quarantine (the executor reaps it when idle).
    fn drain_quarantine(seconds: u64) {
        let held = grant::stats().quarantined;
        if held == 0 || seconds == 0 {
            return;
        }
        println!(
            "blkattack: quarantine holds {held} pages still mapped by the backend (not freed)"
        );
        for waited in 1..=seconds {
            sched::block_on(sched::sleep(Duration::from_secs(1)));
            let stats = grant::stats();
            if stats.quarantined == 0 {
                println!("blkattack: quarantine drained after {waited} s: {stats}");
                return;
            }
        }
        println!(
            "blkattack: quarantine still holds pages after {seconds} s: {}",
            grant::stats()
        );
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("blkattack is a Xen guest: build it with `cargo xtask build --app blkattack`");
}

#[cfg(test)]
mod tests {
    use super::lines::*;

    #[test]
    fn lines_are_what_the_backend_expects() {
        let mut sector = [0u8; SECTOR];
        pattern(0x1234abcd, &mut sector);
        assert_eq!(&sector[..16], b"sector 1234abcd\n");
        assert_eq!(&sector[496..], b"sector 1234abcd\n");
        written(64, &mut sector);
        assert_eq!(&sector[..16], b"written 0000040\n");
    }
}
