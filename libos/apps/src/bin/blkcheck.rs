//! `blkcheck`: reads, checks and writes the domain's first virtual disk.
//!
//! The disk is expected to hold the rig's pattern: 512-byte sector `s` is
//! 32 copies of the 16-byte line `sector SSSSSSSS\n` (`s` in 8 lowercase
//! hex digits). The app connects blkfront (printing the features the
//! backend offered and those in use: `indirect=32 (offered 256),
//! ring-pages=4 (max order offered 4)` against Linux's blkback), reads the whole disk through `libos::block::BlockDevice`
//! (embedded-io), checks every sector, prints the MD5 of the whole disk
//! (what dom0's `md5sum` prints for the image) and the read throughput,
//! then overwrites sectors `write_start..write_start + write_count`
//! (default 1024..2048) with the lines `written SSSSSSS\n` (7 hex
//! digits), flushes, reads them back, and prints `blkcheck: done`.
//! `bulk_write_mib=N` (the bench's write mode): after that, write the
//! `written` lines over the first N MiB of the disk in `chunk_kib`
//! requests, flush, and print the time the writes and the flush took
//! (`blkcheck: bulk write B bytes in T ms: R MiB/s`) and the MD5 of what
//! was written (`blkcheck: bulk write md5 …`), which dom0 compares with
//! the image once the guest is done.
//! `blkfront.persistent=0` turns blkfront's persistent grants off.
//! Command line: `write_start=N write_count=N chunk_kib=N`, and
//! `wait_ready=SECONDS` to wait first until sector 0 holds the pattern
//! (dom0 may still be filling the image).
//! `loop_seconds=SECONDS`: instead of the check, read the whole disk
//! again and again for that long (a line per pass with its MD5 and the
//! resume epochs it began and ended in; no pattern check, so any image
//! serves), so dom0 can save and restore the domain under the reads
//! (each pass's MD5 must stay the image's) or `xl block-detach` the
//! disk under a running app: the
//! detach shows as one `blkcheck: I/O error …` line (blkfront's
//! `Detached`), after which the app stops reading, closes the device
//! and ends normally.
//! `hold_check=SECONDS`: after the disconnect, if the kernel quarantined
//! pages the other side still maps (the rig's dom0 holds the ring page
//! with `loadgen gntmap`), say so, then wait up to SECONDS, one second at
//! a time (the executor reaps the quarantine each time it idles), until
//! the quarantine is empty: that proves the pages were held back while
//! mapped and returned once let go.
//! A shutdown request from the toolstack (`xl shutdown`, `xl reboot`)
//! stops it between chunks: it closes the disk, prints `blkcheck:
//! stopped on request, disk closed` and returns.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

/// The disk pattern and MD5, shared by the guest and the host tests.
#[allow(dead_code)]
mod check {
    /// Bytes in a sector of the pattern.
    pub const SECTOR: usize = 512;

    fn hex(out: &mut [u8], mut value: u64) {
        for byte in out.iter_mut().rev() {
            *byte = b"0123456789abcdef"[(value & 0xf) as usize];
            value >>= 4;
        }
    }

    /// Fills `out` (512 bytes) with the rig's pattern for sector `sector`.
    pub fn pattern(sector: u64, out: &mut [u8]) {
        let mut line = *b"sector 00000000\n";
        hex(&mut line[7..15], sector & 0xffff_ffff);
        for chunk in out.chunks_mut(16) {
            chunk.copy_from_slice(&line[..chunk.len()]);
        }
    }

    /// Fills `out` (512 bytes) with what the app writes to sector `sector`.
    pub fn written(sector: u64, out: &mut [u8]) {
        let mut line = *b"written 0000000\n";
        hex(&mut line[8..15], sector & 0xfff_ffff);
        for chunk in out.chunks_mut(16) {
            chunk.copy_from_slice(&line[..chunk.len()]);
        }
    }

    /// MD5 (RFC 1321), streaming.
    pub struct Md5 {
        state: [u32; 4],
        buffer: [u8; 64],
        buffered: usize,
        length: u64,
    }

    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];

    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];

    impl Default for Md5 {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Md5 {
        /// An empty digest.
        pub fn new() -> Self {
            Md5 {
                state: [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476],
                buffer: [0; 64],
                buffered: 0,
                length: 0,
            }
        }

        fn block(&mut self, block: &[u8]) {
            let mut m = [0u32; 16];
            for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            let [mut a, mut b, mut c, mut d] = self.state;
            for i in 0..64 {
                let (f, g) = match i / 16 {
                    0 => ((b & c) | (!b & d), i),
                    1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                    2 => (b ^ c ^ d, (3 * i + 5) % 16),
                    _ => (c ^ (b | !d), (7 * i) % 16),
                };
                let rotated = a
                    .wrapping_add(f)
                    .wrapping_add(K[i])
                    .wrapping_add(m[g])
                    .rotate_left(SHIFTS[i]);
                a = d;
                d = c;
                c = b;
                b = b.wrapping_add(rotated);
            }
            for (state, value) in self.state.iter_mut().zip([a, b, c, d]) {
                *state = state.wrapping_add(value);
            }
        }

        /// Adds `data`.
        pub fn update(&mut self, mut data: &[u8]) {
            self.length = self.length.wrapping_add(data.len() as u64);
            if self.buffered > 0 {
                let take = (64 - self.buffered).min(data.len());
                self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
                self.buffered += take;
                data = &data[take..];
                if self.buffered < 64 {
                    return;
                }
                let buffer = self.buffer;
                self.block(&buffer);
                self.buffered = 0;
            }
            let mut blocks = data.chunks_exact(64);
            for block in &mut blocks {
                self.block(block);
            }
            let rest = blocks.remainder();
            self.buffer[..rest.len()].copy_from_slice(rest);
            self.buffered = rest.len();
        }

        /// The digest.
        pub fn finish(mut self) -> [u8; 16] {
            let bits = self.length.wrapping_mul(8);
            let mut padding = [0u8; 72];
            padding[0] = 0x80;
            let pad = if self.buffered < 56 {
                56 - self.buffered
            } else {
                120 - self.buffered
            };
            self.update(&padding[..pad]);
            self.update(&bits.to_le_bytes());
            let mut out = [0u8; 16];
            for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
                bytes.copy_from_slice(&word.to_le_bytes());
            }
            out
        }
    }

    /// A digest as `md5sum` prints it.
    pub struct Hex(pub [u8; 16]);

    impl core::fmt::Display for Hex {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            for byte in self.0 {
                write!(f, "{byte:02x}")?;
            }
            Ok(())
        }
    }
}

#[cfg(target_os = "none")]
mod guest {
    use super::check::{pattern, written, Hex, Md5, SECTOR};
    use alloc::vec;
    use core::time::Duration;
    use libos::drivers_pv::blkfront::device::BlockFront;
    use libos::embedded_io::{Read, Seek, SeekFrom, Write};
    use libos::kernel::{sched, suspend, time};
    use libos::{block, fail, lifecycle, println, AppResult, Env};

    fn rate(bytes: u64, ns: u64) -> (u64, u64) {
        // MiB/s with two decimals.
        let hundredths = (bytes as u128 * 100 * 1_000_000_000) / ((ns.max(1) as u128) << 20);
        ((hundredths / 100) as u64, (hundredths % 100) as u64)
    }

    fn main(env: &Env<'_>) -> AppResult {
        let number = |key: &str, default: u64| {
            env.arg(key)
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        let write_start = number("write_start", 1024);
        let write_count = number("write_count", 1024);
        let chunk = (number("chunk_kib", 1024) as usize).clamp(1, 16384) * 1024;

        let mut disk = match block::open(env) {
            Ok(disk) => disk,
            Err(error) => fail!("cannot connect the disk: {error}"),
        };
        println!("{}", disk.device().info());
        // Whatever happened, hand the disk back to the backend.
        let wait_ready = number("wait_ready", 0);
        let loop_seconds = number("loop_seconds", 0);
        let bulk_mib = number("bulk_write_mib", 0);
        let result = if loop_seconds > 0 {
            read_for(&mut disk, loop_seconds, chunk)
        } else {
            wait_until_ready(&mut disk, wait_ready)
                .and_then(|()| exercise(&mut disk, write_start, write_count, chunk))
                .and_then(|()| bulk_write(&mut disk, bulk_mib, chunk))
        };
        match sched::block_on(disk.into_inner().close()) {
            Ok(()) => println!("blkcheck: disconnected"),
            Err(error) => println!("blkcheck: disconnect failed: {error}"),
        }
        // A page blkback still maps would show here as quarantined.
        println!("blkcheck: grants {}", libos::kernel::grant::stats());
        let hold_check = number("hold_check", 0);
        if hold_check > 0 && !lifecycle::is_stop_requested() {
            drain_quarantine(hold_check);
        }
        result?;
        if lifecycle::is_stop_requested() {
            println!("blkcheck: stopped on request, disk closed");
        } else {
            println!("blkcheck: done");
        }
        Ok(())
    }

    /// Reports the quarantine after the disconnect and waits up to
    /// `seconds` for it to empty (the other side lets go; the executor's
    /// idle reaps it). Only prints: the rig's checks read the lines.
    fn drain_quarantine(seconds: u64) {
        let held = libos::kernel::grant::stats().quarantined;
        if held == 0 {
            println!("blkcheck: quarantine empty after the disconnect (nothing still mapped)");
            return;
        }
        let noun = if held == 1 { "page" } else { "pages" };
        println!(
            "blkcheck: quarantine holds {held} {noun} still mapped by the other side (not freed)"
        );
        for waited in 1..=seconds {
            sched::block_on(sched::sleep(Duration::from_secs(1)));
            let stats = libos::kernel::grant::stats();
            if stats.quarantined == 0 {
                println!("blkcheck: quarantine drained after {waited} s: {stats}");
                return;
            }
        }
        println!(
            "blkcheck: quarantine still holds pages after {seconds} s: {}",
            libos::kernel::grant::stats()
        );
    }

    /// Reads the whole disk again and again for `seconds`, hashing each
    /// pass; an I/O error (the disk detached under us) is reported and
    /// ends the loop, not the app; a stop request ends it between chunks.
    fn read_for(
        disk: &mut block::BlockDevice<BlockFront>,
        seconds: u64,
        chunk: usize,
    ) -> AppResult {
        let size = disk.len();
        let mut buf = vec![0u8; chunk];
        let start = time::now_ns();
        let end = start.saturating_add(seconds.saturating_mul(1_000_000_000));
        println!("blkcheck: reading the disk in a loop for {seconds} s");
        let mut pass = 0u64;
        while time::now_ns() < end {
            pass += 1;
            let epoch = suspend::epoch();
            let mut md5 = Md5::new();
            let mut offset = 0u64;
            while offset < size {
                if lifecycle::is_stop_requested() {
                    println!("blkcheck: loop stopped on request in pass {pass} at byte {offset}");
                    return Ok(());
                }
                let n = (size - offset).min(chunk as u64) as usize;
                if let Err(error) =
                    sched::block_on(disk.device_mut().read(offset / 512, &mut buf[..n]))
                {
                    println!(
                        "blkcheck: I/O error in pass {pass} at byte {offset}: {error} (stopping the loop)"
                    );
                    return Ok(());
                }
                md5.update(&buf[..n]);
                offset += n as u64;
            }
            // The epochs say whether the pass spanned a resume (its
            // requests in flight re-issued to the new backend).
            println!(
                "blkcheck: pass {pass} read {size} bytes, md5 {}, epochs {epoch}..{} ({} ms in all)",
                Hex(md5.finish()),
                suspend::epoch(),
                (time::now_ns() - start) / 1_000_000
            );
        }
        println!("blkcheck: loop ended after {pass} passes, no error");
        Ok(())
    }

    /// Writes the `written` lines over the first `mib` MiB in `chunk`
    /// requests and flushes, timing only the writes and the flush (the
    /// pattern is made between them); prints the rate and the MD5 of
    /// the bytes written.
    fn bulk_write(disk: &mut block::BlockDevice<BlockFront>, mib: u64, chunk: usize) -> AppResult {
        if mib == 0 || lifecycle::is_stop_requested() {
            return Ok(());
        }
        let size = mib << 20;
        if size > disk.len() {
            fail!("bulk write of {mib} MiB is larger than the disk");
        }
        let chunk = chunk - chunk % SECTOR;
        let mut buf = vec![0u8; chunk];
        let mut md5 = Md5::new();
        let mut write_ns = 0u64;
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(chunk as u64) as usize;
            for (i, sector) in buf[..n].chunks_mut(SECTOR).enumerate() {
                written(offset / SECTOR as u64 + i as u64, sector);
            }
            md5.update(&buf[..n]);
            let start = time::now_ns();
            if let Err(error) = sched::block_on(disk.device_mut().write(offset / 512, &buf[..n])) {
                fail!("bulk write at byte {offset}: {error}");
            }
            write_ns += time::now_ns() - start;
            offset += n as u64;
        }
        let start = time::now_ns();
        if let Err(error) = sched::block_on(disk.device_mut().flush()) {
            fail!("flush after the bulk write: {error}");
        }
        write_ns += time::now_ns() - start;
        let (whole, frac) = rate(size, write_ns);
        println!(
            "blkcheck: bulk write {size} bytes in {} ms: {whole}.{frac:02} MiB/s",
            write_ns / 1_000_000
        );
        println!("blkcheck: bulk write md5 {}", Hex(md5.finish()));
        Ok(())
    }

    /// Waits up to `seconds` until sector 0 holds the pattern (dom0 fills
    /// the image while the guest starts, sector 0 last).
    fn wait_until_ready(disk: &mut block::BlockDevice<BlockFront>, seconds: u64) -> AppResult {
        if seconds == 0 {
            return Ok(());
        }
        let start = time::now_ns();
        let mut expect = [0u8; SECTOR];
        pattern(0, &mut expect);
        let mut sector = [0u8; SECTOR];
        loop {
            if let Err(error) = sched::block_on(disk.device_mut().read(0, &mut sector)) {
                fail!("read of sector 0: {error}");
            }
            let waited = time::now_ns() - start;
            if sector == expect {
                println!("blkcheck: disk ready after {} ms", waited / 1_000_000);
                return Ok(());
            }
            if lifecycle::is_stop_requested() {
                return Ok(());
            }
            if waited > seconds * 1_000_000_000 {
                fail!("sector 0 still lacks the pattern after {seconds} s");
            }
            sched::block_on(sched::sleep(Duration::from_millis(100)));
        }
    }

    /// Reads, checks and hashes the whole disk, then writes, flushes and
    /// reads back the region.
    fn exercise(
        disk: &mut block::BlockDevice<BlockFront>,
        write_start: u64,
        write_count: u64,
        chunk: usize,
    ) -> AppResult {
        let size = disk.len();
        let sectors = size / SECTOR as u64;

        // Read everything, check the pattern, hash it.
        let mut buf = vec![0u8; chunk];
        let mut expect = [0u8; SECTOR];
        let mut md5 = Md5::new();
        let mut bad = 0u64;
        let mut first_bad = None;
        let mut read_ns = 0u64;
        let mut offset = 0u64;
        while offset < size {
            // A shutdown request: stop between chunks (the caller closes
            // the disk).
            if lifecycle::is_stop_requested() {
                println!("blkcheck: stop requested after {offset} of {size} bytes");
                return Ok(());
            }
            let n = (size - offset).min(chunk as u64) as usize;
            let start = time::now_ns();
            if let Err(error) = disk.read_exact(&mut buf[..n]) {
                fail!("read at byte {offset}: {error:?}");
            }
            read_ns += time::now_ns() - start;
            md5.update(&buf[..n]);
            for (i, sector) in buf[..n].chunks(SECTOR).enumerate() {
                let number = offset / SECTOR as u64 + i as u64;
                pattern(number, &mut expect);
                if sector != &expect[..sector.len()] {
                    bad += 1;
                    first_bad.get_or_insert(number);
                }
            }
            offset += n as u64;
        }
        let (whole, frac) = rate(size, read_ns);
        println!(
            "blkcheck: read {size} bytes in {} ms: {whole}.{frac:02} MiB/s",
            read_ns / 1_000_000
        );
        println!("blkcheck: md5 {}", Hex(md5.finish()));
        match first_bad {
            None => println!("blkcheck: pattern ok in all {sectors} sectors"),
            Some(first) => {
                println!("blkcheck: pattern wrong in {bad} of {sectors} sectors, first {first}")
            }
        }

        // Write the region, flush, read it back.
        let end = write_start.saturating_add(write_count);
        if lifecycle::is_stop_requested() {
            println!("blkcheck: stop requested, no write");
        } else if write_count > 0 && end <= sectors {
            let mut region = vec![0u8; write_count as usize * SECTOR];
            for (i, sector) in region.chunks_mut(SECTOR).enumerate() {
                written(write_start + i as u64, sector);
            }
            let start = time::now_ns();
            if let Err(error) = disk.seek(SeekFrom::Start(write_start * SECTOR as u64)) {
                fail!("seek: {error:?}");
            }
            if let Err(error) = disk.write_all(&region) {
                fail!("write: {error:?}");
            }
            if let Err(error) = disk.flush() {
                fail!("flush: {error:?}");
            }
            let write_ns = time::now_ns() - start;
            let (whole, frac) = rate(region.len() as u64, write_ns);
            println!(
                "blkcheck: wrote sectors {write_start}..{end} and flushed in {} ms: {whole}.{frac:02} MiB/s",
                write_ns / 1_000_000
            );
            let mut back = vec![0u8; region.len()];
            let _ = disk.seek(SeekFrom::Start(write_start * SECTOR as u64));
            if let Err(error) = disk.read_exact(&mut back) {
                fail!("read back: {error:?}");
            }
            if back != region {
                fail!("read back differs from what was written");
            }
            println!("blkcheck: read back ok");
        } else {
            println!("blkcheck: no write (region {write_start}..{end} of {sectors} sectors)");
        }
        if bad > 0 {
            fail!("{bad} sectors did not hold the pattern");
        }
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("blkcheck is a Xen guest: build it with `cargo xtask build --app blkcheck`");
}

#[cfg(test)]
mod tests {
    use super::check::*;

    fn md5(data: &[u8]) -> String {
        let mut digest = Md5::new();
        digest.update(data);
        Hex(digest.finish()).to_string()
    }

    #[test]
    fn md5_matches_rfc_1321() {
        assert_eq!(md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        // Fed in odd pieces.
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut digest = Md5::new();
        for piece in data.chunks(7) {
            digest.update(piece);
        }
        assert_eq!(Hex(digest.finish()).to_string(), md5(&data));
    }

    #[test]
    fn pattern_is_what_dom0_writes() {
        let mut sector = [0u8; SECTOR];
        pattern(0x1234abcd, &mut sector);
        assert_eq!(&sector[..16], b"sector 1234abcd\n");
        assert_eq!(&sector[496..], b"sector 1234abcd\n");
        written(1024, &mut sector);
        assert_eq!(&sector[..16], b"written 0000400\n");
        // The first MiB of the image dom0's awk makes (md5sum of `head -c 1048576`).
        let mut digest = Md5::new();
        for s in 0..2048 {
            pattern(s, &mut sector);
            digest.update(&sector);
        }
        assert_eq!(
            Hex(digest.finish()).to_string(),
            "a7125583c8f3ff9bc85ca2dbe5b46948"
        );
    }
}
