//! `memstress`: allocates and frees far more memory than the domain has,
//! then balloons pages out to Xen and back.
//!
//! Checks that the heap returns every frame it takes (the free-frame
//! count after churning through four times the domain's memory equals
//! the count before), that an allocation larger than the domain fails
//! cleanly, and that ballooned-out pages come back usable.
//!
//! Two other modes, chosen on the command line:
//! - `watch=SECONDS [keep=MIB]`: follows the memory target. Starts the
//!   balloon task (`libos::balloon`), keeps a known pattern in `keep`
//!   MiB of pages (default an eighth of the domain) and checks it while
//!   `xl mem-set` moves the reservation, printing
//!   `memstress: reservation N pages = target N pages` each time the
//!   balloon finishes a target (and what it refused); stops when dom0
//!   writes `data/memstress-stop` in its xenstore home, or after
//!   SECONDS, with a last full check of the pattern.
//! - `fill=all`: takes every free frame but a reserve as pages, marks
//!   each, checks them and gives them back; reports the highest frame
//!   reached and how many lie above 4 GiB (PVH guests with more memory
//!   than fits below the MMIO hole).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod guest {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::time::Duration;
    use libos::drivers_pv::xenstore::guest::{within, xenstore, REPLY_TIMEOUT};
    use libos::drivers_pv::xenstore::TxId;
    use libos::kernel::mm::{self, balloon, Page};
    use libos::kernel::{sched, time};
    use libos::{fail, println, AppResult, Env};

    /// Free frames plus the page tables the direct map took as it grew
    /// (PV): what must come back after memory was used and released. The
    /// direct map follows the allocator's high-water mark, so a first
    /// churn through all of memory moves frames from free to tables.
    fn kept(stats: &mm::MmStats) -> u64 {
        stats.free_frames + stats.map_tables
    }

    /// [`kept`], now.
    fn kept_frames() -> u64 {
        mm::free_frames() + mm::map_tables()
    }

    /// Pages ballooned out and back.
    const BALLOON_PAGES: usize = 16;

    /// xorshift64, to vary sizes deterministically.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// One round: a mix of large buffers and many small boxes, all
    /// written and checked, then freed. Returns bytes allocated.
    fn churn(rng: &mut Rng, free_bytes: u64) -> Result<u64, &'static str> {
        let mut total = 0u64;
        let mut large: Vec<Vec<u8>> = Vec::new();
        let mut small: Vec<Box<[u64; 6]>> = Vec::new();
        // Large buffers: up to half of what is free, in pieces of 4 KiB .. 2 MiB.
        let mut budget = free_bytes / 2;
        while budget > 4096 {
            let size = ((rng.next() % (2 << 20)) + 4096).min(budget) as usize;
            let mut buffer = Vec::new();
            if buffer.try_reserve_exact(size).is_err() {
                break;
            }
            buffer.resize(size, (size % 251) as u8);
            total += size as u64;
            budget -= size as u64;
            large.push(buffer);
        }
        for i in 0..(rng.next() % 20_000 + 5_000) {
            small.push(Box::new([i; 6]));
            total += 48;
        }
        for buffer in &large {
            let tag = (buffer.len() % 251) as u8;
            if buffer.iter().any(|&b| b != tag) {
                return Err("large buffer corrupted");
            }
        }
        for (i, item) in small.iter().enumerate() {
            if item.iter().any(|&v| v != i as u64) {
                return Err("small box corrupted");
            }
        }
        // Free in a scrambled order.
        while !large.is_empty() {
            let i = (rng.next() as usize) % large.len();
            drop(large.swap_remove(i));
        }
        Ok(total)
    }

    fn stress(env: &Env<'_>) -> AppResult {
        let domain_bytes = env.nr_pages() * 4096;
        let before = mm::stats();
        println!(
            "memstress: {} frames, {} free, heap {} bytes in {} frames",
            before.total_frames, before.free_frames, before.heap_bytes, before.heap_frames
        );
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut total = 0u64;
        let mut rounds = 0;
        while total < 4 * domain_bytes {
            match churn(&mut rng, mm::free_frames() * 4096) {
                Ok(bytes) => total += bytes,
                Err(why) => fail!("memstress: round {rounds}: {why}"),
            }
            rounds += 1;
        }
        // More than the domain has: refused, not a crash.
        let mut huge: Vec<u8> = Vec::new();
        if huge.try_reserve_exact(2 * domain_bytes as usize).is_ok() {
            fail!("memstress: reserving twice the domain's memory succeeded");
        }
        let after = mm::stats();
        println!(
            "memstress: allocated {} MiB in {rounds} rounds ({}x the domain)",
            total >> 20,
            total / domain_bytes
        );
        println!(
            "memstress: frames before {} after {} (free, plus page tables the direct map took as it grew: free {} -> {}, tables {} -> {})",
            kept(&before),
            kept(&after),
            before.free_frames,
            after.free_frames,
            before.map_tables,
            after.map_tables
        );
        if kept(&before) != kept(&after) || after.heap_bytes != before.heap_bytes {
            fail!(
                "memstress: leaked: free frames (plus the direct map's new tables) {} -> {}, heap bytes {} -> {}",
                kept(&before),
                kept(&after),
                before.heap_bytes,
                after.heap_bytes
            );
        }
        Ok(())
    }

    fn balloon_round_trip() -> AppResult {
        let before = mm::stats();
        let reservation_before = match balloon::reservation() {
            Ok(r) => r,
            Err(why) => fail!("memstress: reservation: {why}"),
        };
        let mut pages = Vec::new();
        for i in 0..BALLOON_PAGES {
            let mut page = match Page::new() {
                Ok(page) => page,
                Err(why) => fail!("memstress: Page::new: {why}"),
            };
            page.as_mut_slice().fill(0xa0 + i as u8);
            pages.push(page);
        }
        let mut out = Vec::new();
        for page in pages.drain(..) {
            let old_mfn = page.mfn().raw();
            match page.balloon_out() {
                Ok(ballooned) => out.push((ballooned, old_mfn)),
                Err((_, why)) => fail!("memstress: balloon out: {why}"),
            }
        }
        let during = mm::stats();
        let reservation_during = match balloon::reservation() {
            Ok(r) => r,
            Err(why) => fail!("memstress: reservation: {why}"),
        };
        println!(
            "memstress: ballooned out {} pages: reservation {} -> {}, ballooned_out {}",
            out.len(),
            reservation_before.current,
            reservation_during.current,
            during.ballooned_out
        );
        if reservation_before.current - reservation_during.current != BALLOON_PAGES as u64
            || during.ballooned_out != before.ballooned_out + BALLOON_PAGES as u64
        {
            fail!("memstress: the reservation did not shrink by {BALLOON_PAGES}");
        }
        let mut moved = 0;
        for (i, (ballooned, old_mfn)) in out.drain(..).enumerate() {
            let pfn = ballooned.pfn();
            let mut page = match ballooned.reclaim() {
                Ok(page) => page,
                Err((_, why)) => fail!("memstress: reclaim pfn {pfn:#x}: {why}"),
            };
            if page.pfn().raw() != pfn || mm::pfn_to_mfn(pfn) != Some(page.mfn().raw()) {
                fail!("memstress: pfn {pfn:#x} came back inconsistent");
            }
            if mm::mfn_to_pfn(page.mfn().raw()) != Ok(pfn) {
                fail!(
                    "memstress: M2P of mfn {:#x} is not pfn {pfn:#x}",
                    page.mfn().raw()
                );
            }
            if page.as_slice().iter().any(|&b| b != 0) {
                fail!("memstress: reclaimed pfn {pfn:#x} not zeroed");
            }
            let pattern = 0x5a ^ i as u8;
            page.as_mut_slice().fill(pattern);
            if page.as_slice().iter().any(|&b| b != pattern) || page.read_u8(4095) != Ok(pattern) {
                fail!("memstress: reclaimed pfn {pfn:#x} does not hold a pattern");
            }
            moved += usize::from(page.mfn().raw() != old_mfn);
            pages.push(page);
        }
        drop(pages);
        let after = mm::stats();
        let reservation_after = match balloon::reservation() {
            Ok(r) => r,
            Err(why) => fail!("memstress: reservation: {why}"),
        };
        println!(
            "memstress: balloon frames before {} after {} ({moved} of {BALLOON_PAGES} on new mfns), reservation {}",
            kept(&before),
            kept(&after),
            reservation_after.current
        );
        if kept(&before) != kept(&after)
            || reservation_after.current != reservation_before.current
            || after.ballooned_out != before.ballooned_out
        {
            fail!("memstress: balloon round trip did not restore the domain");
        }
        Ok(())
    }

    /// The word at `word` of kept page `index`.
    fn pattern(index: usize, word: usize) -> u64 {
        0x6d65_6d73_0000_0000 ^ ((index as u64) << 12) ^ word as u64
    }

    fn write_pattern(index: usize, page: &mut Page) {
        for (word, bytes) in page.as_mut_slice().chunks_exact_mut(8).enumerate() {
            bytes.copy_from_slice(&pattern(index, word).to_le_bytes());
        }
    }

    /// The first kept page (and word) whose pattern is wrong.
    fn check_pattern(pages: &[Page]) -> Option<(usize, usize)> {
        pages.iter().enumerate().find_map(|(index, page)| {
            page.as_slice()
                .chunks_exact(8)
                .enumerate()
                .find(|(word, bytes)| {
                    let expected = pattern(index, *word).to_le_bytes();
                    *bytes != expected
                })
                .map(|(word, _)| (index, word))
        })
    }

    /// Whether dom0 wrote `data/memstress-stop`.
    async fn stop_requested() -> bool {
        let Ok(xs) = xenstore() else { return false };
        matches!(
            within(
                REPLY_TIMEOUT,
                xs.read_opt(TxId::NONE, "data/memstress-stop")
            )
            .await,
            Ok(Some(_))
        )
    }

    /// `watch=` mode: see the module docs.
    async fn watch_target(env: &Env<'_>, seconds: u64) -> AppResult {
        match libos::balloon::spawn(env.boot()) {
            Ok(()) | Err(libos::balloon::SpawnError::AlreadyRunning) => {}
            Err(why) => fail!("memstress: no balloon task: {why:?}"),
        }
        let keep_mib = match env.arg("keep").map(str::parse::<u64>) {
            Some(Ok(mib)) => mib,
            Some(Err(_)) => fail!("memstress: keep= is not a number of MiB"),
            None => (env.nr_pages() / 8) / 256,
        };
        let mut pages = Vec::new();
        for index in 0..(keep_mib * 256) as usize {
            let mut page = match Page::new() {
                Ok(page) => page,
                Err(why) => fail!("memstress: keeping page {index}: {why}"),
            };
            write_pattern(index, &mut page);
            pages.push(page);
        }
        let start = balloon::reservation().map(|r| r.current).unwrap_or(0);
        println!(
            "memstress: keeping a pattern in {} pages ({keep_mib} MiB); reservation {start} pages; watching for {seconds} s",
            pages.len()
        );
        let deadline = time::now_ns().saturating_add(seconds.saturating_mul(1_000_000_000));
        // From an empty status: the first target the balloon records
        // (the boot one, met) gets its line too.
        let mut seen = libos::balloon::Status::default();
        let mut ticks = 0u64;
        loop {
            sched::sleep(Duration::from_millis(250)).await;
            ticks += 1;
            // Some heap traffic while the reservation moves.
            let mut scratch: Vec<u64> = Vec::new();
            if scratch.try_reserve_exact(8192).is_ok() {
                scratch.extend((0..8192).map(|i| i ^ ticks));
                if scratch
                    .iter()
                    .enumerate()
                    .any(|(i, &v)| v != i as u64 ^ ticks)
                {
                    fail!("memstress: scratch buffer corrupted");
                }
            }
            drop(scratch);
            let status = libos::balloon::status();
            if status.changes != seen.changes {
                if status.refused != seen.refused {
                    if let Some(why) = &status.refused {
                        println!("memstress: balloon refused {why}");
                    }
                }
                if status.target_kib.is_some()
                    && (
                        status.target_kib,
                        status.reservation,
                        status.shortfall.as_deref(),
                    ) != (seen.target_kib, seen.reservation, seen.shortfall.as_deref())
                {
                    let relation = if status.reservation_as_target == status.target_pages {
                        "="
                    } else {
                        "!="
                    };
                    println!(
                        "memstress: reservation {} pages {relation} target {} pages (Xen: {} pages; memory/target {} KiB){}",
                        status.reservation_as_target,
                        status.target_pages,
                        status.reservation,
                        status.target_kib.unwrap_or(0),
                        status
                            .shortfall
                            .as_deref()
                            .map(|s| alloc::format!("; {s}"))
                            .unwrap_or_default()
                    );
                }
                if let Some((index, word)) = check_pattern(&pages) {
                    fail!("memstress: pattern broken in kept page {index} word {word}");
                }
                println!("memstress: pattern intact in {} pages", pages.len());
                seen = status;
            }
            if ticks.is_multiple_of(4) && stop_requested().await {
                println!("memstress: dom0 asked to stop");
                break;
            }
            if time::now_ns() >= deadline {
                println!("memstress: {seconds} s are up");
                break;
            }
        }
        if let Some((index, word)) = check_pattern(&pages) {
            fail!("memstress: pattern broken in kept page {index} word {word}");
        }
        let stats = mm::stats();
        println!(
            "memstress: done: pattern intact in {} pages; {} free, {} ballooned out, {} bad frees",
            pages.len(),
            stats.free_frames,
            stats.ballooned_out,
            stats.bad_frees
        );
        if stats.bad_frees != 0 {
            fail!("memstress: {} bad frees", stats.bad_frees);
        }
        Ok(())
    }

    /// `fill=all` mode: see the module docs.
    fn fill_all() -> AppResult {
        const RESERVE: u64 = 256;
        const FOUR_GIB_PFN: u64 = 1 << 20;
        let free = kept_frames();
        let want = free.saturating_sub(RESERVE);
        let started = time::now_ns();
        let mut pages = Vec::new();
        if pages.try_reserve_exact(want as usize).is_err() {
            fail!("memstress: no heap for {want} page handles");
        }
        let want = want.saturating_sub(kept_frames().abs_diff(free));
        for _ in 0..want {
            match Page::new() {
                Ok(mut page) => {
                    let mark = page.pfn().raw() ^ 0x6669_6c6c_0000_0000;
                    let _ = page.write_u64(0, mark);
                    let _ = page.write_u64(4088, !mark);
                    pages.push(page);
                }
                Err(_) => break,
            }
        }
        let highest = pages.iter().map(|p| p.pfn().raw()).max().unwrap_or(0);
        let above = pages
            .iter()
            .filter(|p| p.pfn().raw() >= FOUR_GIB_PFN)
            .count();
        let broken = pages.iter().find(|page| {
            let mark = page.pfn().raw() ^ 0x6669_6c6c_0000_0000;
            page.read_u64(0) != Ok(mark) || page.read_u64(4088) != Ok(!mark)
        });
        if let Some(page) = broken {
            fail!("memstress: frame {:#x} lost its mark", page.pfn().raw());
        }
        let millis = (time::now_ns() - started) / 1_000_000;
        println!(
            "memstress: filled {} frames ({} MiB) of {free} free in {millis} ms, highest pfn {highest:#x}, {above} frames above 4 GiB, marks intact",
            pages.len(),
            pages.len() / 256
        );
        drop(pages);
        let after = kept_frames();
        println!(
            "memstress: free frames {free} before, {after} after (free, plus the {} page tables the direct map took as it grew)",
            mm::map_tables()
        );
        if after != free {
            fail!("memstress: fill leaked {} frames", free.abs_diff(after));
        }
        Ok(())
    }

    fn main(env: &Env<'_>) -> AppResult {
        if let Some(seconds) = env.arg("watch") {
            let Ok(seconds) = seconds.parse::<u64>() else {
                fail!("memstress: watch= is not a number of seconds");
            };
            return sched::block_on(watch_target(env, seconds));
        }
        if env.arg("fill") == Some("all") {
            return fill_all();
        }
        stress(env)?;
        balloon_round_trip()?;
        let stats = mm::stats();
        println!(
            "memstress: done: {} free, {} page-table frames, {} bad frees",
            stats.free_frames, stats.page_table_frames, stats.bad_frees
        );
        if stats.bad_frees != 0 {
            fail!("memstress: {} bad frees", stats.bad_frees);
        }
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("memstress is a Xen guest: build it with `cargo xtask build --app memstress`");
}
