//! What blkback tells us in xenstore, parsed: the virtual device id, the
//! features offered at `InitWait`, and the disk at `Connected`.
//!
//! `feature-persistent` is read at `Connected`, not `InitWait`: Linux's
//! blkback writes it only when it connects, as its answer to ours (it
//! uses persistent grants only if the frontend wrote
//! `feature-persistent=1` before it connected the rings).
//!
//! The guest driver reads the keys (asynchronously) and hands their raw
//! values to these pure functions, so every bound is host-tested: a
//! `sector-size` above [`MAX_SECTOR_SIZE`] (the driver sizes buffers from
//! it) is a clear [`BlockError::Feature`] error, and a `virtual-device` id
//! keeps all 32 bits (the extended encoding of `docs/misc/vbd-interface`
//! sets bit 28).

use core::fmt;

use super::{BlockError, DiskInfo, Persistent};
use crate::xenbus_state::{
    parse_u32, parse_u64, BackendFeatures, FeatureError, FeatureErrorKind, FeatureKey,
};

pub use crate::xenbus_state::MAX_SECTOR_SIZE;

/// The backend keys read at `InitWait` (what it offers for the rings).
pub const OFFER_KEYS: [FeatureKey; 2] = [
    FeatureKey::MaxRingPageOrder,
    FeatureKey::FeatureMaxIndirectSegments,
];

/// The backend keys read at `Connected` (the disk, and the backend's
/// answer on persistent grants).
pub const DISK_KEYS: [&str; 6] = [
    "sectors",
    "sector-size",
    "info",
    "feature-flush-cache",
    "feature-barrier",
    "feature-persistent",
];

/// The extended-encoding flag of a `virtual-device` id.
const EXTENDED: u32 = 1 << 28;

/// A virtual block device id (`virtual-device`, and the name of our
/// directory under `device/vbd`): all 32 bits of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualDevice(u32);

impl VirtualDevice {
    /// Parses a decimal id (digits only, up to `u32::MAX`).
    pub fn parse(raw: &[u8]) -> Result<VirtualDevice, BlockError> {
        parse_u32(raw)
            .map(VirtualDevice)
            .map_err(|_| BlockError::BadKey("virtual-device"))
    }

    /// The id as xenstore spells it.
    pub const fn id(self) -> u32 {
        self.0
    }

    /// Whether it uses the extended encoding (`1 << 28 | disk << 8 |
    /// partition`, for disks beyond the 16 the legacy `xvd` encoding
    /// names).
    pub const fn is_extended(self) -> bool {
        self.0 & EXTENDED != 0
    }

    /// The request `handle` of blkif: the ABI's `blkif_vdev_t` is 16
    /// bits, so this is the id's low 16 bits (as other frontends send;
    /// blkback routes by ring, not by handle). Only the ring field is
    /// narrowed; the device keeps its full [`VirtualDevice::id`].
    pub const fn ring_handle(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Display for VirtualDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_extended() {
            let disk = (self.0 & !EXTENDED) >> 8;
            let partition = self.0 & 0xff;
            write!(
                f,
                "{} (extended: disk {disk} partition {partition})",
                self.0
            )
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The features offered at `InitWait`; `lookup(key)` gives a key's raw
/// value or `None` when absent.
pub fn parse_offer<'v>(
    mut lookup: impl FnMut(&str) -> Option<&'v [u8]>,
) -> Result<BackendFeatures, BlockError> {
    let mut features = BackendFeatures::default();
    for key in OFFER_KEYS {
        if let Some(raw) = lookup(key.name()) {
            features.set(key, raw).map_err(BlockError::Feature)?;
        }
    }
    Ok(features)
}

/// The disk as blkback describes it at `Connected` (`sectors` required;
/// `sector-size` defaults to 512 and is bounded by [`MAX_SECTOR_SIZE`]),
/// with what was offered earlier. `asked`: we wrote
/// `feature-persistent=1`; persistent grants are on only if the backend
/// wrote its own `feature-persistent` as a true flag.
pub fn parse_disk_info<'v>(
    features: &BackendFeatures,
    asked: bool,
    mut lookup: impl FnMut(&str) -> Option<&'v [u8]>,
) -> Result<DiskInfo, BlockError> {
    let mut features = *features;
    let sectors = lookup("sectors").ok_or(BlockError::BadKey("sectors"))?;
    features
        .set(FeatureKey::Sectors, sectors)
        .map_err(BlockError::Feature)?;
    let sector_size = match lookup("sector-size") {
        Some(raw) => {
            features
                .set(FeatureKey::SectorSize, raw)
                .map_err(BlockError::Feature)?;
            features.sector_size.unwrap_or(512)
        }
        None => 512,
    };
    // Every size in bytes is `sectors` times the sector size: a backend
    // announcing 2^64-1 sectors is refused here, not found out at the
    // first access past the disk's real end.
    let sectors = features.sectors.unwrap_or(0);
    if sectors.checked_mul(u64::from(sector_size)).is_none() {
        return Err(BlockError::Feature(FeatureError {
            key: FeatureKey::Sectors,
            kind: FeatureErrorKind::OutOfRange,
        }));
    }
    let info = match lookup("info") {
        Some(raw) => parse_u64(raw)
            .ok()
            .and_then(|info| u32::try_from(info).ok())
            .ok_or(BlockError::BadKey("info"))?,
        None => 0,
    };
    let flag = |raw: Option<&[u8]>| matches!(raw, Some(b"1"));
    if let Some(raw) = lookup("feature-persistent") {
        features
            .set(FeatureKey::FeaturePersistent, raw)
            .map_err(BlockError::Feature)?;
    }
    let persistent = match (asked, features.persistent) {
        (false, _) => Persistent::TurnedOff,
        (true, true) => Persistent::On,
        (true, false) => Persistent::NotOffered,
    };
    Ok(DiskInfo {
        sectors,
        sector_size,
        info,
        flush: flag(lookup("feature-flush-cache")),
        barrier: flag(lookup("feature-barrier")),
        persistent,
        indirect_offered: features.max_indirect_segments,
        max_ring_page_order: features.max_ring_page_order,
        ring_pages: 1,
        indirect_segments: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'v>(pairs: &'v [(&str, &'v [u8])]) -> impl FnMut(&str) -> Option<&'v [u8]> + 'v {
        move |key| {
            pairs
                .iter()
                .find(|(known, _)| *known == key)
                .map(|(_, value)| *value)
        }
    }

    #[test]
    fn a_disk_whose_size_overflows_is_refused_at_connect() {
        let features = BackendFeatures::default();
        let max = u64::MAX.to_string();
        for (sectors, size) in [
            (max.as_bytes(), &b"512"[..]),
            (b"36028797018963968", b"512"),
        ] {
            let pairs = [("sectors", sectors), ("sector-size", size)];
            let error = parse_disk_info(&features, true, keys(&pairs)).unwrap_err();
            assert_eq!(
                alloc::string::ToString::to_string(&error),
                "blkfront: backend sectors: out of range"
            );
        }
        // The largest size that fits still connects.
        let fits = (u64::MAX / 4096).to_string();
        let pairs = [("sectors", fits.as_bytes()), ("sector-size", &b"4096"[..])];
        assert!(parse_disk_info(&features, true, keys(&pairs)).is_ok());
    }

    #[test]
    fn a_huge_sector_size_is_a_clear_error() {
        let features = BackendFeatures::default();
        for huge in [&b"2147483648"[..], b"8192", b"1048576"] {
            let pairs = [("sectors", &b"2048"[..]), ("sector-size", huge)];
            assert_eq!(
                parse_disk_info(&features, true, keys(&pairs)),
                Err(BlockError::Feature(FeatureError {
                    key: FeatureKey::SectorSize,
                    kind: FeatureErrorKind::OutOfRange,
                })),
                "{huge:?}"
            );
        }
        let error = parse_disk_info(
            &features,
            true,
            keys(&[("sectors", b"2048"), ("sector-size", b"2147483648")]),
        )
        .unwrap_err();
        assert_eq!(
            alloc::string::ToString::to_string(&error),
            "blkfront: backend sector-size: out of range"
        );
    }

    #[test]
    fn disk_info_from_the_keys() {
        let features = parse_offer(keys(&[
            ("max-ring-page-order", b"4"),
            ("feature-max-indirect-segments", b"256"),
        ]))
        .unwrap();
        let info = parse_disk_info(
            &features,
            true,
            keys(&[
                ("sectors", b"204800"),
                ("sector-size", b"4096"),
                ("info", b"4"),
                ("feature-flush-cache", b"1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                info.sectors,
                info.sector_size,
                info.readonly(),
                info.flush,
                info.barrier
            ),
            (204_800, 4096, true, true, false)
        );
        assert_eq!((info.indirect_offered, info.max_ring_page_order), (256, 4));
        // Defaults, and what is required.
        let info = parse_disk_info(&features, true, keys(&[("sectors", b"8")])).unwrap();
        assert_eq!((info.sector_size, info.info), (512, 0));
        assert_eq!(
            parse_disk_info(&features, true, keys(&[])),
            Err(BlockError::BadKey("sectors"))
        );
        assert_eq!(
            parse_disk_info(&features, true, keys(&[("sectors", b"8"), ("info", b"-1")])),
            Err(BlockError::BadKey("info"))
        );
        assert!(matches!(
            parse_offer(keys(&[("max-ring-page-order", b"99")])),
            Err(BlockError::Feature(_))
        ));
    }

    #[test]
    fn persistent_grants_need_our_ask_and_the_backends_answer_at_connected() {
        let features = BackendFeatures::default();
        let with = |asked: bool, answer: Option<&'static [u8]>| {
            let mut pairs = alloc::vec![("sectors", &b"8"[..])];
            if let Some(answer) = answer {
                pairs.push(("feature-persistent", answer));
            }
            parse_disk_info(&features, asked, keys(&pairs)).map(|info| info.persistent)
        };
        assert_eq!(with(true, Some(b"1")), Ok(Persistent::On));
        assert_eq!(with(true, Some(b"0")), Ok(Persistent::NotOffered));
        assert_eq!(with(true, None), Ok(Persistent::NotOffered));
        assert_eq!(with(false, Some(b"1")), Ok(Persistent::TurnedOff));
        assert!(matches!(
            with(true, Some(b"yes")),
            Err(BlockError::Feature(_))
        ));
        // Not read at InitWait any more (blkback has not written it then).
        assert!(!OFFER_KEYS.contains(&FeatureKey::FeaturePersistent));
        assert!(DISK_KEYS.contains(&"feature-persistent"));
    }

    #[test]
    fn extended_virtual_device_ids_keep_all_their_bits() {
        // xvdq, the seventeenth disk: 1 << 28 | 16 << 8.
        let xvdq = VirtualDevice::parse(b"268439552").unwrap();
        assert_eq!(xvdq.id(), 268_439_552);
        assert!(xvdq.is_extended());
        assert_eq!(xvdq.ring_handle(), 0x1000);
        assert_eq!(
            alloc::string::ToString::to_string(&xvdq),
            "268439552 (extended: disk 16 partition 0)"
        );
        // Two extended ids that share their low 16 bits stay distinct.
        let other = VirtualDevice::parse(b"268505088").unwrap();
        assert_eq!(other.ring_handle(), xvdq.ring_handle());
        assert_ne!(other, xvdq);
        assert_eq!(other.id(), 0x1001_1000);
        // xvda, legacy.
        let xvda = VirtualDevice::parse(b"51712").unwrap();
        assert!(!xvda.is_extended());
        assert_eq!(xvda.ring_handle(), 51712);
        for bad in [&b"4294967296"[..], b"-1", b"", b"0x10"] {
            assert_eq!(
                VirtualDevice::parse(bad),
                Err(BlockError::BadKey("virtual-device"))
            );
        }
    }
}
