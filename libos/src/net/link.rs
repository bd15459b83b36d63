//! The device slot under the smoltcp interface: the device while the
//! link is up, nothing while it is down.
//!
//! When the vif's backend closes (`xl network-detach`) or must be
//! connected anew (a resume, a restarted backend), the device is taken
//! out ([`Swappable::take`]) and, once connected again, a new one is put
//! in ([`Swappable::put`]): the interface (its MAC, addresses, neighbour
//! cache, routes) and every socket stay as they are, only the device
//! under them changes. While the link is down, frames smoltcp sends are
//! dropped (counted in [`Swappable::dropped`]), as a cable pulled out
//! would drop them: TCP retransmits once the link is back, with its
//! usual back-off, and no timer spins meanwhile. Nothing is received.
//! The capabilities stay those of the last device, so the MTU smoltcp
//! sizes segments by does not change under it.

use alloc::vec;

use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::time::Instant;

/// A device, or none while the link is down.
pub(crate) struct Swappable<D> {
    device: Option<D>,
    caps: DeviceCapabilities,
    dropped: u64,
    downs: u64,
}

impl<D: Device> Swappable<D> {
    /// The link up with `device`.
    pub(crate) fn new(device: D) -> Swappable<D> {
        Swappable {
            caps: device.capabilities(),
            device: Some(device),
            dropped: 0,
            downs: 0,
        }
    }

    /// Takes the device out: the link is down from now on (`None` if it
    /// already was).
    pub(crate) fn take(&mut self) -> Option<D> {
        let device = self.device.take();
        if device.is_some() {
            self.downs += 1;
        }
        device
    }

    /// Puts `device` in: the link is up (a device still in is dropped).
    pub(crate) fn put(&mut self, device: D) {
        self.caps = device.capabilities();
        self.device = Some(device);
    }

    /// The device, while the link is up.
    pub(crate) fn get(&self) -> Option<&D> {
        self.device.as_ref()
    }

    /// The device, mutably, while the link is up.
    pub(crate) fn get_mut(&mut self) -> Option<&mut D> {
        self.device.as_mut()
    }

    /// Whether the link is up.
    pub(crate) fn is_up(&self) -> bool {
        self.device.is_some()
    }

    /// Frames dropped while the link was down.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Times the link went down.
    pub(crate) fn downs(&self) -> u64 {
        self.downs
    }
}

/// Room to send: the device's, or the sink of a link that is down.
pub(crate) enum SwapTx<'a, T> {
    /// The device's token.
    Up(T),
    /// The link is down: the frame is built and dropped.
    Down(&'a mut u64),
}

impl<T: phy::TxToken> phy::TxToken for SwapTx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self {
            SwapTx::Up(token) => token.consume(len, f),
            SwapTx::Down(dropped) => {
                *dropped += 1;
                let mut frame = vec![0; len];
                f(&mut frame)
            }
        }
    }
}

impl<D: Device> Device for Swappable<D> {
    type RxToken<'a>
        = D::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = SwapTx<'a, D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.device.as_mut()?.receive(timestamp)?;
        Some((rx, SwapTx::Up(tx)))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        match &mut self.device {
            Some(device) => device.transmit(timestamp).map(SwapTx::Up),
            None => Some(SwapTx::Down(&mut self.dropped)),
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        match &self.device {
            Some(device) => device.capabilities(),
            None => self.caps.clone(),
        }
    }
}
