//! A minimal virtio-blk driver over the virtio-mmio transport: the one virtqueue of
//! [`crate::virtqueue`], no features but VIRTIO_F_VERSION_1 where the transport is modern.
//! `test=spis` keeps one one-sector read in flight at a time ([`VirtioBlk::submit_read`]: three
//! descriptors, header, one sector of data, status); `test=dma-flood` keeps up to
//! [`MAX_SLOTS`](crate::virtqueue::MAX_SLOTS) large requests in flight at once in buffers of its own
//! ([`VirtioBlk::queue`], one chain of three descriptors per slot).
//!
//! QEMU presents its `virtio-mmio` transports as legacy (version 1: `force-legacy` is on by
//! default, and the tests start QEMU that way); with `-global virtio-mmio.force-legacy=false` they
//! are modern (version 2). Both are driven: the legacy queue is one page-aligned block given to the
//! device by page number (QueuePFN), the modern one three addresses and QueueReady. The queue lies
//! in the cell's own RAM and the device reaches it by DMA (see [`crate::virtqueue`]).

use crate::gic::{read32, write32};
use crate::virtio_mmio::*;
use crate::virtqueue::{
    self, FEATURE_WORD1_VERSION_1, LEGACY_PAGE, QUEUE_SIZE, RequestBuffers, Virtqueue,
};

/// virtio-blk configuration: `capacity` (sectors), a little-endian u64.
const CONFIG_CAPACITY: u64 = 0x100;

/// "virt", little-endian.
const MAGIC: u32 = 0x7472_6976;
/// virtio device ID of a block device.
const DEVICE_ID_BLOCK: u32 = 2;
/// The shared device status bits ([`virtqueue`]) as the 32-bit Status register holds them.
const STATUS_ACKNOWLEDGE: u32 = virtqueue::STATUS_ACKNOWLEDGE as u32;
const STATUS_DRIVER: u32 = virtqueue::STATUS_DRIVER as u32;
const STATUS_DRIVER_OK: u32 = virtqueue::STATUS_DRIVER_OK as u32;
const STATUS_FEATURES_OK: u32 = virtqueue::STATUS_FEATURES_OK as u32;

/// Why [`VirtioBlk::probe`] refused a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// MagicValue is not "virt".
    NotVirtio(u32),
    /// Version is neither 1 (legacy) nor 2 (modern).
    Version(u32),
    /// DeviceID is not a block device (0: an empty transport).
    NotABlockDevice(u32),
    /// The device refused the features (modern: FEATURES_OK did not stick).
    FeaturesRefused,
    /// Queue 0 does not exist or is smaller than [`QUEUE_SIZE`].
    QueueTooSmall(u32),
    /// Queue 0 is already set up (its PFN or ready bit is not 0 after a reset).
    QueueInUse,
}

/// A virtio-blk device on a virtio-mmio transport, driven by one vCPU at a time.
pub struct VirtioBlk {
    base: u64,
    version: u32,
    capacity: u64,
    queue: Virtqueue,
}

impl VirtioBlk {
    /// Resets and sets up the device whose transport is at `base`: features, queue 0, DRIVER_OK.
    pub fn probe(base: u64) -> Result<Self, ProbeError> {
        let register = |offset: u64| read32(base + offset);
        let set = |offset: u64, value: u32| write32(base + offset, value);
        let magic = register(MAGIC_VALUE);
        if magic != MAGIC {
            return Err(ProbeError::NotVirtio(magic));
        }
        let version = register(VERSION);
        if version != 1 && version != 2 {
            return Err(ProbeError::Version(version));
        }
        let device = register(DEVICE_ID);
        if device != DEVICE_ID_BLOCK {
            return Err(ProbeError::NotABlockDevice(device));
        }
        set(STATUS, 0);
        let queue = Virtqueue::new();
        set(STATUS, STATUS_ACKNOWLEDGE);
        set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        if version == 1 {
            set(GUEST_PAGE_SIZE, LEGACY_PAGE);
            // No feature is needed.
            set(DRIVER_FEATURES_SEL, 0);
            set(DRIVER_FEATURES, 0);
        } else {
            set(DEVICE_FEATURES_SEL, 1);
            let offered = register(DEVICE_FEATURES);
            for (word, value) in [(0, 0), (1, offered & FEATURE_WORD1_VERSION_1)] {
                set(DRIVER_FEATURES_SEL, word);
                set(DRIVER_FEATURES, value);
            }
            set(
                STATUS,
                STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
            );
            if register(STATUS) & STATUS_FEATURES_OK == 0 {
                return Err(ProbeError::FeaturesRefused);
            }
        }
        set(QUEUE_SEL, 0);
        let in_use = if version == 1 {
            register(QUEUE_PFN)
        } else {
            register(QUEUE_READY)
        };
        if in_use != 0 {
            return Err(ProbeError::QueueInUse);
        }
        let maximum = register(QUEUE_NUM_MAX);
        if maximum < u32::from(QUEUE_SIZE) {
            return Err(ProbeError::QueueTooSmall(maximum));
        }
        set(QUEUE_NUM, u32::from(QUEUE_SIZE));
        let rings = virtqueue::ring_addresses();
        if version == 1 {
            set(QUEUE_ALIGN, LEGACY_PAGE);
            set(
                QUEUE_PFN,
                (rings.descriptors / u64::from(LEGACY_PAGE)) as u32,
            );
        } else {
            for (low, high, address) in [
                (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, rings.descriptors),
                (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, rings.driver),
                (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, rings.device),
            ] {
                set(low, address as u32);
                set(high, (address >> 32) as u32);
            }
            set(QUEUE_READY, 1);
        }
        let status = if version == 1 {
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK
        } else {
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK
        };
        set(STATUS, status);
        let capacity =
            u64::from(register(CONFIG_CAPACITY)) | u64::from(register(CONFIG_CAPACITY + 4)) << 32;
        Ok(Self {
            base,
            version,
            capacity,
            queue,
        })
    }

    /// The transport's version: 1 (legacy) or 2 (modern).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The disk's size in sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Puts a read of `sector` on the queue and notifies the device. Call it only when the
    /// previous request completed (its used-ring entry is there).
    pub fn submit_read(&mut self, sector: u64) {
        self.queue.queue_read(sector);
        self.notify();
    }

    /// Puts request `slot` on the queue without notifying the device (see [`Virtqueue::queue`]).
    pub fn queue(&mut self, slot: u16, write: bool, sector: u64, buffers: &RequestBuffers) {
        self.queue.queue(slot, write, sector, buffers);
    }

    /// Tells the device that requests were queued (QueueNotify).
    pub fn notify(&self) {
        write32(self.base + QUEUE_NOTIFY, 0);
    }

    /// The slot ([`VirtioBlk::queue`]) of used-ring entry `index` (modulo the ring size).
    pub fn used_slot(index: u16) -> u16 {
        virtqueue::used_slot(index)
    }

    /// How many requests the device has completed (the used ring's index).
    pub fn used_index() -> u16 {
        virtqueue::used_index()
    }

    /// The status byte of the last [`VirtioBlk::submit_read`]: [`virtqueue::BLK_S_OK`] once it
    /// succeeded.
    pub fn last_status() -> u8 {
        virtqueue::last_status()
    }

    /// The device's InterruptStatus register at `base`.
    pub fn interrupt_status(base: u64) -> u32 {
        read32(base + INTERRUPT_STATUS)
    }

    /// Acknowledges the interrupt causes `bits` at `base` (InterruptACK): the device lowers its
    /// line once none is left.
    pub fn acknowledge_interrupt(base: u64, bits: u32) {
        write32(base + INTERRUPT_ACK, bits);
    }

    /// The transport's address.
    pub fn base(&self) -> u64 {
        self.base
    }
}
