//! The byte-ring transport over the shared xenstore page.
//!
//! The page (`struct xenstore_domain_interface`) holds two 1024-byte
//! rings: `req`, which the guest produces into and xenstored consumes, and
//! `rsp`, the other way round. Indices are free-running `u32`s masked with
//! the ring size; each side owns one index per ring (the guest owns
//! `req_prod` and `rsp_cons`). [`RingTransport`] keeps its own copies of
//! the two indices it owns and only reads the other side's, so a hostile
//! xenstored cannot make it rewind; a distance over 1024 between the two
//! is reported as [`XsError::RingCorrupt`], and the transport stays broken.
//!
//! The page itself is reached through [`XenstorePage`], a small trait the
//! kernel implements over the mapped page with volatile accesses and
//! fences (that `unsafe` lives in the kernel), and the tests implement
//! over a plain struct. Ordering is the trait's job, and the transport
//! calls it in the order the protocol needs: it writes request bytes,
//! then publishes `req_prod`; it reads `rsp_prod`, then the bytes, then
//! publishes `rsp_cons`; it notifies xenstored after each publication.

use kernel::ring_index::ByteRing;
use pv_arch::abi::xenstore::XENSTORE_RING_SIZE;

use super::blocking::Transport;
use super::error::XsError;

/// The shared xenstore page and its event channel, as the transport sees
/// them. Offsets passed in are below 1024 and `offset + len` never
/// exceeds 1024.
pub trait XenstorePage {
    /// Reads `req_cons` (xenstored's progress through our requests).
    fn req_cons(&self) -> u32;
    /// Reads `req_prod` (only at connection time; we own it after).
    fn req_prod(&self) -> u32;
    /// Publishes `req_prod`. The implementation must order every earlier
    /// [`XenstorePage::write_req`] before this store (a release fence).
    fn set_req_prod(&mut self, value: u32);
    /// Reads `rsp_cons` (only at connection time; we own it after).
    fn rsp_cons(&self) -> u32;
    /// Reads `rsp_prod`. The implementation must order this load before
    /// every later [`XenstorePage::read_rsp`] (an acquire fence).
    fn rsp_prod(&self) -> u32;
    /// Publishes `rsp_cons`. The implementation must order every earlier
    /// [`XenstorePage::read_rsp`] before this store (a full fence), so
    /// xenstored does not overwrite bytes still being read.
    fn set_rsp_cons(&mut self, value: u32);
    /// Copies `bytes` into `req` at `offset`.
    fn write_req(&mut self, offset: usize, bytes: &[u8]);
    /// Copies `buf.len()` bytes of `rsp` at `offset` into `buf`.
    fn read_rsp(&self, offset: usize, buf: &mut [u8]);
    /// Signals xenstored's event channel.
    fn notify(&mut self);
}

/// A page whose owner can wait for xenstored in place, for the blocking
/// [`Transport`] over the ring (host tests and the simulator). The guest
/// does not implement it: there the wait is a task awaiting the event
/// channel ([`super::shared`]), never a blocked vCPU.
pub trait BlockingPage: XenstorePage {
    /// Blocks until xenstored may have moved (returns at once if it did
    /// since the last call).
    fn wait(&mut self) -> Result<(), XsError>;
}

/// The ring size as the index arithmetic wants it.
const RING_SIZE: u32 = XENSTORE_RING_SIZE as u32;

/// Moves bytes between a [`super::Client`] and the shared page.
pub struct RingTransport<P: XenstorePage> {
    page: P,
    req_prod: u32,
    rsp_cons: u32,
    corrupt: bool,
}

impl<P: XenstorePage> RingTransport<P> {
    /// Takes over the page, starting from the indices it holds now (they
    /// need not be 0: a previous kernel may have used the ring).
    pub fn new(page: P) -> RingTransport<P> {
        let req_prod = page.req_prod();
        let rsp_cons = page.rsp_cons();
        RingTransport {
            page,
            req_prod,
            rsp_cons,
            corrupt: false,
        }
    }

    /// The page.
    pub fn page(&mut self) -> &mut P {
        &mut self.page
    }

    /// Gives the page back.
    pub fn into_inner(self) -> P {
        self.page
    }

    /// After a resume in a new domain, before anything is sent: takes the
    /// indices from the page again and drops whatever the response ring
    /// still holds (replies and watch events of the old connection,
    /// perhaps cut short: nobody waits for them, and the new xenstored
    /// starts its stream on a message boundary). Requests xenstored has
    /// not taken stay for the new one; if its indices make no sense
    /// against ours (it started the ring afresh), ours start from its.
    /// Returns the four indices as found: `[req_cons, req_prod,
    /// rsp_cons, rsp_prod]`.
    pub fn resync_after_resume(&mut self) -> [u32; 4] {
        let found = [
            self.page.req_cons(),
            self.page.req_prod(),
            self.page.rsp_cons(),
            self.page.rsp_prod(),
        ];
        let [req_cons, req_prod, _, rsp_prod] = found;
        self.corrupt = false;
        self.req_prod = if req_prod.wrapping_sub(req_cons) > RING_SIZE {
            self.page.set_req_prod(req_cons);
            req_cons
        } else {
            req_prod
        };
        self.rsp_cons = rsp_prod;
        self.page.set_rsp_cons(rsp_prod);
        found
    }

    /// Whether corrupt indices were seen (the transport refuses to go on).
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    fn snapshot(&mut self, prod: u32, cons: u32) -> Result<ByteRing, XsError> {
        if self.corrupt {
            return Err(XsError::RingCorrupt);
        }
        ByteRing::new(prod, cons, RING_SIZE).map_err(|_| {
            self.corrupt = true;
            XsError::RingCorrupt
        })
    }

    /// Writes as much of `bytes` as the request ring has room for, then
    /// publishes and notifies; returns how much went in (0 if full).
    pub fn write_some(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        let cons = self.page.req_cons();
        let mut written = 0;
        while written < bytes.len() {
            let ring = self.snapshot(self.req_prod, cons)?;
            let (start, room) = ring.producer_chunk();
            if room == 0 {
                break;
            }
            let count = room.min(bytes.len() - written);
            self.page.write_req(start, &bytes[written..written + count]);
            written += count;
            // count <= 1024.
            self.req_prod = self.req_prod.wrapping_add(count as u32);
        }
        if written > 0 {
            self.page.set_req_prod(self.req_prod);
            self.page.notify();
        }
        Ok(written)
    }

    /// Reads as much as has arrived (up to `buf.len()`), then publishes
    /// the new `rsp_cons` and notifies; returns how much (0 if nothing).
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let prod = self.page.rsp_prod();
        let mut read = 0;
        while read < buf.len() {
            let ring = self.snapshot(prod, self.rsp_cons)?;
            let (start, ready) = ring.consumer_chunk();
            if ready == 0 {
                break;
            }
            let count = ready.min(buf.len() - read);
            self.page.read_rsp(start, &mut buf[read..read + count]);
            read += count;
            // count <= 1024.
            self.rsp_cons = self.rsp_cons.wrapping_add(count as u32);
        }
        if read > 0 {
            self.page.set_rsp_cons(self.rsp_cons);
            self.page.notify();
        }
        Ok(read)
    }
}

impl<P: BlockingPage> Transport for RingTransport<P> {
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), XsError> {
        while !bytes.is_empty() {
            let count = self.write_some(bytes)?;
            bytes = &bytes[count..];
            if count == 0 {
                self.page.wait()?;
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        self.read_some(buf)
    }

    fn wait(&mut self) -> Result<(), XsError> {
        self.page.wait()
    }
}
