//! Index arithmetic for Xen's byte rings (console, xenstore).
//!
//! Both ends keep free-running 32-bit indices (`prod`, `cons`) that only
//! ever grow and wrap at 2^32; the position in the buffer is the index
//! masked by the ring size (a power of two). The distance `prod - cons`
//! (wrapping) is the number of bytes in flight; it must never exceed the
//! ring size. The other end writes one of the two indices, so a distance
//! beyond the size means that end is broken or hostile: we report it
//! rather than trust it.

/// The other end's index is impossible (more in flight than the ring holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCorrupt {
    /// Producer index seen.
    pub prod: u32,
    /// Consumer index seen.
    pub cons: u32,
}

/// A snapshot of one direction of a byte ring of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRing {
    prod: u32,
    cons: u32,
    size: u32,
}

impl ByteRing {
    /// Checks a snapshot. `size` must be a power of two.
    pub fn new(prod: u32, cons: u32, size: u32) -> Result<ByteRing, RingCorrupt> {
        debug_assert!(size.is_power_of_two());
        if prod.wrapping_sub(cons) > size {
            return Err(RingCorrupt { prod, cons });
        }
        Ok(ByteRing { prod, cons, size })
    }

    /// Bytes written and not yet consumed.
    pub fn used(&self) -> u32 {
        self.prod.wrapping_sub(self.cons)
    }

    /// Bytes the producer may still write.
    pub fn free(&self) -> u32 {
        self.size - self.used()
    }

    /// Where the producer writes next, and how many bytes it may write
    /// there without wrapping: the free space up to the buffer's end.
    pub fn producer_chunk(&self) -> (usize, usize) {
        let start = self.prod & (self.size - 1);
        let until_end = self.size - start;
        (start as usize, until_end.min(self.free()) as usize)
    }

    /// Where the consumer reads next, and how many bytes lie there
    /// contiguously.
    pub fn consumer_chunk(&self) -> (usize, usize) {
        let start = self.cons & (self.size - 1);
        let until_end = self.size - start;
        (start as usize, until_end.min(self.used()) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_full() {
        let ring = ByteRing::new(5, 5, 16).unwrap();
        assert_eq!((ring.used(), ring.free()), (0, 16));
        assert_eq!(ring.producer_chunk(), (5, 11));
        let ring = ByteRing::new(21, 5, 16).unwrap();
        assert_eq!((ring.used(), ring.free()), (16, 0));
        assert_eq!(ring.producer_chunk(), (5, 0));
        assert_eq!(ring.consumer_chunk(), (5, 11));
    }

    #[test]
    fn indices_wrap_at_u32() {
        let ring = ByteRing::new(3, u32::MAX - 4, 16).unwrap();
        assert_eq!(ring.used(), 8);
        assert_eq!(ring.producer_chunk(), (3, 8));
        assert_eq!(ring.consumer_chunk(), (11, 5));
    }

    #[test]
    fn impossible_distance_is_reported() {
        assert_eq!(
            ByteRing::new(100, 50, 16),
            Err(RingCorrupt {
                prod: 100,
                cons: 50
            })
        );
        // A consumer ahead of the producer is just as impossible.
        assert!(ByteRing::new(50, 51, 16).is_err());
    }

    #[test]
    fn chunks_never_exceed_the_buffer() {
        for size in [16u32, 1024, 2048] {
            for prod in (0..3 * size).step_by(7) {
                for used in [0, 1, size / 2, size - 1, size] {
                    let cons = prod.wrapping_sub(used);
                    let ring = ByteRing::new(prod, cons, size).unwrap();
                    let (start, len) = ring.producer_chunk();
                    assert!(start + len <= size as usize);
                    assert!(len as u32 <= ring.free());
                    let (start, len) = ring.consumer_chunk();
                    assert!(start + len <= size as usize);
                    assert!(len as u32 <= ring.used());
                }
            }
        }
    }
}
