//! The producer side of the PV console ring (`xen/io/console.h`).
//!
//! A domU's console is one shared page: a 2 KiB ring of bytes to the
//! backend (`out`, read by xenconsoled in dom0) and a 1 KiB ring back
//! (`in`). We produce into `out`: copy bytes, advance `out_prod` (after a
//! write barrier, so the backend never sees the index before the data),
//! then notify the backend's event channel. The backend advances
//! `out_cons`, which we re-read and check each time: it is the one value
//! here an untrusted party writes.
//!
//! The page access goes through [`ConsolePage`] so this logic runs the
//! same against the real shared page and against a simulated backend in
//! host tests.

use crate::ring_index::{ByteRing, RingCorrupt};
use pv_arch::abi::console::XENCONS_OUT_SIZE;

/// Access to the shared console page and its event channel.
pub trait ConsolePage {
    /// Reads `out_cons` (written by the backend).
    fn out_cons(&self) -> u32;
    /// Copies `bytes` into `out` at `offset` (no wrap: the caller splits).
    fn write_out(&mut self, offset: usize, bytes: &[u8]);
    /// Publishes `out_prod`, after a write barrier.
    fn publish_out_prod(&mut self, prod: u32);
    /// Notifies the backend.
    fn notify(&mut self);
    /// Lets the backend run while we wait for room (yield the vCPU).
    fn wait(&mut self);
}

/// Why bytes could not go into the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingWriteError {
    /// The backend did not make room within the wait budget.
    Stalled {
        /// Bytes that did not fit.
        unwritten: usize,
    },
    /// The backend's `out_cons` is impossible.
    Corrupt(RingCorrupt),
}

/// How many times a writer waits for room (or for a drain) before giving
/// up: generous, since the backend lives in another domain that may not
/// be scheduled for a while, but finite, so a dead backend cannot hang us.
pub const WAIT_BUDGET: u32 = 200_000;

/// The producer state for `out`.
pub struct RingWriter<P: ConsolePage> {
    page: P,
    /// Our own copy of `out_prod`: we are its only writer, so we never
    /// re-read it from shared memory.
    prod: u32,
}

impl<P: ConsolePage> RingWriter<P> {
    /// Starts producing at `prod` (the value in the page at boot).
    pub fn new(page: P, prod: u32) -> Self {
        RingWriter { page, prod }
    }

    fn snapshot(&self) -> Result<ByteRing, RingWriteError> {
        ByteRing::new(self.prod, self.page.out_cons(), XENCONS_OUT_SIZE as u32)
            .map_err(RingWriteError::Corrupt)
    }

    /// Writes all of `bytes`, waiting for room as needed, then notifies.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), RingWriteError> {
        let mut waits = 0;
        while !bytes.is_empty() {
            let (start, room) = self.snapshot()?.producer_chunk();
            if room == 0 {
                self.page.notify();
                if waits == WAIT_BUDGET {
                    return Err(RingWriteError::Stalled {
                        unwritten: bytes.len(),
                    });
                }
                waits += 1;
                self.page.wait();
                continue;
            }
            let n = room.min(bytes.len());
            self.page.write_out(start, &bytes[..n]);
            self.prod = self.prod.wrapping_add(n as u32);
            self.page.publish_out_prod(self.prod);
            bytes = &bytes[n..];
        }
        self.page.notify();
        Ok(())
    }

    /// Waits until the backend has consumed everything we wrote.
    pub fn flush(&mut self) -> Result<(), RingWriteError> {
        let mut waits = 0;
        while self.snapshot()?.used() != 0 {
            self.page.notify();
            if waits == WAIT_BUDGET {
                return Err(RingWriteError::Stalled {
                    unwritten: self.snapshot()?.used() as usize,
                });
            }
            waits += 1;
            self.page.wait();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated console backend: consumes `drain_per_wait` bytes each
    /// time the guest waits, and records what it consumed.
    struct SimPage {
        out: [u8; XENCONS_OUT_SIZE],
        prod: u32,
        cons: u32,
        drain_per_wait: u32,
        consumed: Vec<u8>,
        notifies: u32,
        cons_override: Option<u32>,
    }

    impl SimPage {
        fn new(drain_per_wait: u32) -> Self {
            SimPage {
                out: [0; XENCONS_OUT_SIZE],
                prod: 0,
                cons: 0,
                drain_per_wait,
                consumed: Vec::new(),
                notifies: 0,
                cons_override: None,
            }
        }
    }

    impl ConsolePage for &mut SimPage {
        fn out_cons(&self) -> u32 {
            self.cons_override.unwrap_or(self.cons)
        }
        fn write_out(&mut self, offset: usize, bytes: &[u8]) {
            self.out[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        fn publish_out_prod(&mut self, prod: u32) {
            self.prod = prod;
        }
        fn notify(&mut self) {
            self.notifies += 1;
        }
        fn wait(&mut self) {
            for _ in 0..self.drain_per_wait {
                if self.cons == self.prod {
                    break;
                }
                let byte = self.out[self.cons as usize % XENCONS_OUT_SIZE];
                self.consumed.push(byte);
                self.cons = self.cons.wrapping_add(1);
            }
        }
    }

    #[test]
    fn long_output_arrives_in_order_through_a_slow_backend() {
        let mut page = SimPage::new(100);
        let text: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        {
            let mut writer = RingWriter::new(&mut page, 0);
            writer.write(&text).unwrap();
            writer.flush().unwrap();
        }
        assert_eq!(page.consumed, text);
        assert!(page.notifies > 0);
    }

    #[test]
    fn indices_wrapping_at_u32_are_fine() {
        let mut page = SimPage::new(64);
        page.prod = u32::MAX - 10;
        page.cons = u32::MAX - 10;
        let start = page.prod;
        {
            let mut writer = RingWriter::new(&mut page, start);
            writer.write(&[7; 300]).unwrap();
            writer.flush().unwrap();
        }
        assert_eq!(page.consumed, vec![7; 300]);
    }

    #[test]
    fn a_dead_backend_stalls_instead_of_hanging() {
        let mut page = SimPage::new(0);
        let mut writer = RingWriter::new(&mut page, 0);
        let err = writer.write(&[1; XENCONS_OUT_SIZE + 5]).unwrap_err();
        assert_eq!(err, RingWriteError::Stalled { unwritten: 5 });
        assert!(matches!(
            writer.flush(),
            Err(RingWriteError::Stalled { .. })
        ));
    }

    #[test]
    fn a_hostile_consumer_index_is_reported() {
        let mut page = SimPage::new(0);
        page.cons_override = Some(9999);
        let mut writer = RingWriter::new(&mut page, 0);
        assert!(matches!(
            writer.write(b"x"),
            Err(RingWriteError::Corrupt(RingCorrupt {
                prod: 0,
                cons: 9999
            }))
        ));
    }
}
