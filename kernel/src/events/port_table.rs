//! [`PortTable`]: the bound ports' slots, kept sorted by port in one
//! vector.
//!
//! A domain binds a few ports to a few dozen (Xen hands out the lowest
//! free number), looks one up on every event and binds or closes one
//! rarely. A sorted vector with a binary search does that with a small
//! fraction of the code a `BTreeMap` brings into every image (about
//! 4 KiB of node splitting and merging, for `hello` a twentieth of the
//! whole). Its storage is kept exactly as large as the table: it grows
//! by one on a bind and gives the spare back on a close, so the heap the
//! table holds depends only on how many ports are bound, never on the
//! most ever bound (the soak's heap check counts on that; a `Vec`'s
//! high-water capacity once showed as a leak there).

use super::slot::Slot;
use alloc::vec::Vec;

/// Bound ports and their slots, in increasing port order.
#[derive(Default)]
pub struct PortTable {
    entries: Vec<(u32, Slot)>,
}

impl PortTable {
    /// An empty table (no storage until the first bind).
    pub const fn new() -> PortTable {
        PortTable {
            entries: Vec::new(),
        }
    }

    fn find(&self, port: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&port, |(p, _)| *p)
    }

    /// Sets `port`'s slot; returns the one it replaces, if any.
    pub fn insert(&mut self, port: u32, slot: Slot) -> Option<Slot> {
        match self.find(port) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, slot)),
            Err(i) => {
                self.entries.reserve_exact(1);
                self.entries.insert(i, (port, slot));
                None
            }
        }
    }

    /// `port`'s slot.
    pub fn get(&self, port: u32) -> Option<&Slot> {
        self.find(port).ok().map(|i| &self.entries[i].1)
    }

    /// `port`'s slot, to change.
    pub fn get_mut(&mut self, port: u32) -> Option<&mut Slot> {
        self.find(port).ok().map(|i| &mut self.entries[i].1)
    }

    /// Takes `port` out; its slot, if it was bound.
    pub fn remove(&mut self, port: u32) -> Option<Slot> {
        let i = self.find(port).ok()?;
        let (_, slot) = self.entries.remove(i);
        self.entries.shrink_to_fit();
        Some(slot)
    }

    /// How many ports are bound.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no port is bound.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the table (storage too) and returns every slot.
    pub fn take_all(&mut self) -> Vec<Slot> {
        core::mem::take(&mut self.entries)
            .into_iter()
            .map(|(_, slot)| slot)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raised(times: usize) -> Slot {
        let mut slot = Slot::default();
        for _ in 0..times {
            slot.raise();
        }
        slot
    }

    #[test]
    fn finds_each_port_in_any_insertion_order() {
        let mut table = PortTable::new();
        for port in [9, 3, 40, 1, 7] {
            assert!(table.insert(port, raised(port as usize)).is_none());
        }
        assert_eq!(table.len(), 5);
        for port in [1, 3, 7, 9, 40] {
            assert_eq!(table.get(port).map(Slot::count), Some(u64::from(port)));
        }
        assert!(table.get(2).is_none() && table.get(41).is_none() && table.get(0).is_none());
        let ports: Vec<u32> = table.entries.iter().map(|(p, _)| *p).collect();
        assert_eq!(ports, [1, 3, 7, 9, 40]);
    }

    #[test]
    fn insert_replaces_and_remove_takes_out() {
        let mut table = PortTable::new();
        table.insert(5, raised(2));
        let old = table.insert(5, raised(0)).expect("replaced");
        assert_eq!(old.count(), 2);
        assert_eq!(table.len(), 1);
        table.get_mut(5).expect("bound").raise();
        assert_eq!(table.remove(5).map(|s| s.count()), Some(1));
        assert!(table.remove(5).is_none());
        assert!(table.is_empty());
    }

    #[test]
    fn storage_follows_the_number_bound_not_the_most_ever() {
        let mut table = PortTable::new();
        for port in 0..20 {
            table.insert(port, Slot::default());
        }
        assert_eq!(table.entries.capacity(), 20);
        for port in 5..20 {
            table.remove(port);
        }
        assert_eq!(table.entries.capacity(), 5);
        // Churn at a steady count leaves the same storage.
        for round in 0..50 {
            table.insert(100 + round, Slot::default());
            table.remove(100 + round);
            assert_eq!(table.entries.capacity(), 5);
        }
        assert_eq!(table.take_all().len(), 5);
        assert_eq!(table.entries.capacity(), 0);
    }
}
