//! Emulated virtio devices, device side: the split virtqueue ([`queue`]), the virtio-mmio
//! transport ([`mmio`]) and the devices behind it ([`input`], [`vsock`]).
#![forbid(unsafe_code)]
//!
//! The model follows virtio 1.2 (the "modern" interface only: VIRTIO_F_VERSION_1, virtio-mmio
//! version 2, split virtqueues without VIRTIO_F_EVENT_IDX and without indirect descriptors).
//!
//! # Why this is written here
//!
//! rust-vmm's `virtio-queue` and `vm-memory` crates need `std` (and `vm-memory` assumes the VMM
//! can map guest memory into its own address space and hand out slices of it). cellvisor's EL2
//! code is `no_std`, and everything a guest places in its RAM — descriptor tables, ring indices,
//! buffer addresses and lengths — is untrusted input. So the device side here reads and writes
//! guest memory only through [`GuestMemory`], whose implementation bounds-checks every range
//! against the cell's RAM, and it never panics on anything a guest can write: every descriptor
//! index is checked against the queue size, chains are bounded by the queue size (which also
//! catches descriptor loops), address and length arithmetic is checked, and a ring index that
//! jumps further than the queue size is refused. A guest that breaks a queue gets a
//! [`VirtioError`]; the transport then sets DEVICE_NEEDS_RESET and serves no queue until the
//! driver resets the device.

pub mod input;
pub mod mmio;
pub mod queue;
pub mod vsock;

use core::fmt;

use crate::dev::mmio::AccessWidth;

pub use queue::{Chain, Segment, Virtqueue};

/// A guest-physical range that does not lie entirely in the cell's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRam;

/// The cell's RAM as its guest sees it (guest-physical addresses, IPAs).
///
/// An implementation must refuse (with [`OutsideRam`]) any range that does not lie entirely in
/// the cell's RAM, including one whose end overflows `u64`. The device model calls it in the
/// order the virtio specification requires (the available ring's index before the ring entries
/// and descriptors it covers; a used element before the used ring's index); an implementation on
/// weakly ordered hardware keeps that order as the guest observes it (a barrier between calls).
pub trait GuestMemory {
    /// Copies `buffer.len()` bytes of guest memory starting at `ipa` into `buffer`.
    fn read(&mut self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam>;
    /// Copies `bytes` into guest memory starting at `ipa`.
    fn write(&mut self, ipa: u64, bytes: &[u8]) -> Result<(), OutsideRam>;
}

/// Every way a guest (or its driver) can break a virtqueue or a device's use of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioError {
    /// A descriptor index (a chain head or a `next` field) is not below the queue size.
    DescriptorOutOfRange,
    /// A descriptor chain is longer than the queue size: a loop, or more descriptors than exist.
    ChainTooLong,
    /// The lengths of a chain's descriptors add up to more than `u32::MAX` bytes.
    ChainTooLarge,
    /// A ring, descriptor table or buffer is not entirely in the cell's RAM.
    OutsideRam,
    /// The available ring's index moved further than the queue size past the last one seen.
    AvailJump,
    /// A device-writable buffer where the device needs a readable one.
    UnexpectedWritable,
    /// A device-readable buffer where the device needs a writable one.
    UnexpectedReadable,
    /// A device-readable descriptor after a device-writable one in the same chain.
    ReadableAfterWritable,
    /// A descriptor with the INDIRECT flag (VIRTIO_F_INDIRECT_DESC is not offered).
    Indirect,
    /// A descriptor of length zero.
    ZeroLength,
    /// A chain whose buffers are too short for what the device must put there.
    BufferTooShort,
    /// A queue used (notified, or made ready) while not ready.
    QueueNotReady,
    /// A queue size that is zero, not a power of two, or above the maximum.
    QueueSize,
    /// A ring or descriptor table not aligned as the specification requires (16, 2, 4 bytes).
    QueueMisaligned,
    /// A notification for a queue the device does not have.
    NoSuchQueue,
}

impl fmt::Display for VirtioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DescriptorOutOfRange => "descriptor index out of range",
            Self::ChainTooLong => "descriptor chain longer than the queue (loop?)",
            Self::ChainTooLarge => "descriptor chain longer than 4 GiB",
            Self::OutsideRam => "buffer or ring outside the cell's ram",
            Self::AvailJump => "available index jumped more than the queue size",
            Self::UnexpectedWritable => "writable buffer where a readable one is needed",
            Self::UnexpectedReadable => "readable buffer where a writable one is needed",
            Self::ReadableAfterWritable => "readable descriptor after a writable one",
            Self::Indirect => "indirect descriptor (not offered)",
            Self::ZeroLength => "zero-length descriptor",
            Self::BufferTooShort => "buffer too short",
            Self::QueueNotReady => "queue not ready",
            Self::QueueSize => "bad queue size",
            Self::QueueMisaligned => "misaligned queue area",
            Self::NoSuchQueue => "no such queue",
        })
    }
}

impl core::error::Error for VirtioError {}

impl From<OutsideRam> for VirtioError {
    fn from(_: OutsideRam) -> Self {
        Self::OutsideRam
    }
}

/// VIRTIO_F_VERSION_1 (feature bit 32): the modern interface. The transport offers it itself.
pub const F_VERSION_1: u64 = 1 << 32;

/// The device-independent feature bits (24 to 40) that belong to the transport and queues; a
/// device's [`VirtioDevice::features`] must not claim them (the transport masks them out and
/// offers only [`F_VERSION_1`] of them).
pub const TRANSPORT_FEATURES: u64 = ((1 << 41) - 1) & !((1 << 24) - 1);

/// A device behind the virtio transport: its identity, configuration space and queue handling.
pub trait VirtioDevice {
    /// The virtio device ID (18: input; 19: socket).
    fn device_id(&self) -> u32;
    /// The device-specific feature bits offered (bits 0 to 23 and above 40); the transport adds
    /// [`F_VERSION_1`] itself.
    fn features(&self) -> u64;
    /// How many virtqueues the device has.
    fn queue_count(&self) -> usize;
    /// Reads `width` bytes of the device configuration space at `offset` (from its start, which
    /// the transport places at 0x100), little-endian; bytes beyond the device's configuration
    /// read as zero.
    fn config_read(&self, offset: u64, width: AccessWidth) -> u32;
    /// Writes the low `width` bytes of `value` to the configuration space at `offset`.
    fn config_write(&mut self, offset: u64, width: AccessWidth, value: u32);
    /// The driver notified queue `queue` (below [`VirtioDevice::queue_count`], and ready).
    /// `Ok(true)`: used buffers were added, the transport raises the used-buffer interrupt.
    fn notify(
        &mut self,
        queue: usize,
        queues: &mut [Virtqueue],
        memory: &mut dyn GuestMemory,
    ) -> Result<bool, VirtioError>;
    /// Returns the device to its initial state (a driver's reset, or a cell restart).
    fn reset(&mut self);
}

#[cfg(test)]
mod test_ram;
#[cfg(test)]
mod tests;
