//! `memstress`: allocates and frees far more memory than the domain has,
//! then balloons pages out to Xen and back.
//!
//! Checks that the heap returns every frame it takes (the free-frame
//! count after churning through four times the domain's memory equals
//! the count before), that an allocation larger than the domain fails
//! cleanly, and that ballooned-out pages come back usable.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod guest {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use libos::kernel::mm::{self, balloon, Page};
    use libos::{fail, println, AppResult, Env};

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
            "memstress: frames before {} after {}",
            before.free_frames, after.free_frames
        );
        if before.free_frames != after.free_frames || after.heap_bytes != before.heap_bytes {
            fail!(
                "memstress: leaked: free frames {} -> {}, heap bytes {} -> {}",
                before.free_frames,
                after.free_frames,
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
            before.free_frames, after.free_frames, reservation_after.current
        );
        if before.free_frames != after.free_frames
            || reservation_after.current != reservation_before.current
            || after.ballooned_out != before.ballooned_out
        {
            fail!("memstress: balloon round trip did not restore the domain");
        }
        Ok(())
    }

    fn main(env: &Env<'_>) -> AppResult {
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
