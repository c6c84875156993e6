//! A minimal modern (virtio 1.x) virtio-blk driver over the virtio-pci transport, on the one
//! virtqueue of [`crate::virtqueue`]. Polled unless the caller says otherwise: [`VirtioPci::probe`]
//! leaves INTx disabled (MSI-X is never enabled); a guest that takes the INTx clears the function's
//! INTx Disable bit itself and reads the ISR status ([`VirtioPci::acknowledge_interrupt`], or a
//! plain byte read of [`VirtioPci::isr_address`] from its handler) to lower the level line before
//! its EOI.
//!
//! [`VirtioPci::probe`] finds the function's virtio vendor capabilities (common configuration,
//! notification, ISR status, device configuration), makes sure the BARs they name hold addresses
//! ([`pci::ensure_bar`]: assigned from the host's 32-bit window where they read 0, as on plain
//! QEMU), turns on memory decode and Bus Master, and initialises the device: reset, ACKNOWLEDGE,
//! DRIVER, features (VIRTIO_F_VERSION_1, and VIRTIO_F_ACCESS_PLATFORM where offered: QEMU offers
//! it on a device started with `iommu_platform=on`, whose DMA then goes through the IOMMU, and
//! refuses a driver that declines it), FEATURES_OK, queue 0 of [`QUEUE_SIZE`], DRIVER_OK.
//!
//! A device that meets a buffer it cannot map (QEMU: an IOMMU fault, or memory that is not
//! there) stops and sets DEVICE_NEEDS_RESET in its status ([`VirtioPci::needs_reset`]); then, or
//! when a request never completes, [`VirtioPci::initialise`] resets it and sets it up again. Every
//! wait is bounded by the virtual counter.

use core::fmt;

use crate::mmio::{read8, read16, read32, write8, write16, write32};
use crate::pci::{self, Allocator, BarError, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, Host};
use crate::timer;
use crate::virtqueue::{
    self, FEATURE_WORD1_VERSION_1, QUEUE_SIZE, RequestBuffers, STATUS_ACKNOWLEDGE, STATUS_DRIVER,
    STATUS_DRIVER_OK, STATUS_FEATURES_OK, Virtqueue,
};

/// PCI vendor ID of virtio devices, and the modern (non-transitional) virtio-blk device ID
/// (0x1040 + virtio device ID 2).
pub const VENDOR_VIRTIO: u16 = 0x1AF4;
/// Device ID of a modern virtio-blk function.
pub const DEVICE_BLOCK: u16 = 0x1042;

/// Capability ID of a vendor-specific capability (virtio's `virtio_pci_cap`).
const CAPABILITY_VENDOR: u8 = 0x09;
/// `cfg_type` of the virtio capabilities used.
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

/// `virtio_pci_common_cfg` fields (byte offsets).
const DEVICE_FEATURE_SELECT: u64 = 0x00;
const DEVICE_FEATURE: u64 = 0x04;
const DRIVER_FEATURE_SELECT: u64 = 0x08;
const DRIVER_FEATURE: u64 = 0x0C;
const DEVICE_STATUS: u64 = 0x14;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_SIZE_FIELD: u64 = 0x18;
const QUEUE_ENABLE: u64 = 0x1C;
const QUEUE_NOTIFY_OFF: u64 = 0x1E;
const QUEUE_DESC: u64 = 0x20;
const QUEUE_DRIVER: u64 = 0x28;
const QUEUE_DEVICE: u64 = 0x30;
/// virtio-blk configuration: `capacity` (sectors), a little-endian u64.
const CONFIG_CAPACITY: u64 = 0x00;

/// Device status bits.
/// DEVICE_NEEDS_RESET: the device met an error it cannot recover from by itself.
pub const STATUS_NEEDS_RESET: u8 = 0x40;
/// Feature word 1 (features 32..63): VIRTIO_F_VERSION_1 (32), VIRTIO_F_ACCESS_PLATFORM (33).
const FEATURE_WORD1_ACCESS_PLATFORM: u32 = 1 << 1;
/// How long a reset may take to read back 0 (QEMU resets at once).
const RESET_WAIT_MS: u64 = 1000;

/// Why the device could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// A virtio capability the driver needs is missing.
    MissingCapability(&'static str),
    /// A BAR a capability names cannot be used.
    Bar(BarError),
    /// The device status did not read 0 after the reset.
    ResetTimeout(u8),
    /// The device does not offer VIRTIO_F_VERSION_1 (feature word 1 as offered).
    NotModern(u32),
    /// FEATURES_OK did not stick.
    FeaturesRefused,
    /// Queue 0 is missing or smaller than [`QUEUE_SIZE`].
    QueueTooSmall(u16),
    /// Queue 0 is already enabled after a reset.
    QueueInUse,
    /// The device set DEVICE_NEEDS_RESET during the set-up (status as read).
    NeedsReset(u8),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCapability(what) => write!(f, "no virtio {what} capability"),
            Self::Bar(error) => write!(f, "{error}"),
            Self::ResetTimeout(status) => {
                write!(
                    f,
                    "device status {status:#x} did not read 0 after the reset"
                )
            }
            Self::NotModern(word) => {
                write!(
                    f,
                    "no VIRTIO_F_VERSION_1 offered (features 32..63: {word:#x})"
                )
            }
            Self::FeaturesRefused => write!(f, "the device refused the features"),
            Self::QueueTooSmall(size) => write!(f, "queue 0 has {size} entries"),
            Self::QueueInUse => write!(f, "queue 0 is enabled after a reset"),
            Self::NeedsReset(status) => {
                write!(
                    f,
                    "the device needs a reset during set-up (status {status:#x})"
                )
            }
        }
    }
}

/// One virtio capability: the BAR it lies in and where.
#[derive(Clone, Copy)]
struct Capability {
    bar: u8,
    offset: u32,
    /// The notification capability's `notify_off_multiplier` (0 for the others).
    multiplier: u32,
}

/// What [`VirtioPci::probe`] found and did, for the report.
pub struct Setup {
    /// Whether the driver assigned at least one BAR (they read 0: nobody had).
    pub assigned_bars: bool,
    /// CPU address of the common configuration structure.
    pub common: u64,
    /// Feature word 1 as accepted.
    pub features_high: u32,
}

/// A modern virtio-blk device on the virtio-pci transport, polled.
pub struct VirtioPci {
    common: u64,
    notify_base: u64,
    multiplier: u32,
    isr: u64,
    device: u64,
    notify: u64,
    capacity: u64,
    features_high: u32,
    queue: Virtqueue,
}

impl VirtioPci {
    /// Sets up the virtio-blk `function` of `host`: BARs (assigned from `allocator` where they
    /// read 0), memory decode, Bus Master, INTx disabled, then [`VirtioPci::initialise`].
    pub fn probe(
        host: &Host,
        function: &pci::Function,
        allocator: &mut Option<Allocator>,
    ) -> Result<(Self, Setup), ProbeError> {
        let mut found: [Option<Capability>; 4] = [None; 4];
        for (offset, id) in function.capabilities() {
            if id != CAPABILITY_VENDOR {
                continue;
            }
            let kind = (function.read32(offset) >> 24) as u8;
            let bar = function.read8(offset + 4);
            let index = match kind {
                CFG_COMMON => 0,
                CFG_NOTIFY => 1,
                CFG_ISR => 2,
                CFG_DEVICE => 3,
                _ => continue,
            };
            if found[index].is_some() || bar >= 6 {
                continue;
            }
            found[index] = Some(Capability {
                bar,
                offset: function.read32(offset + 8),
                multiplier: if kind == CFG_NOTIFY {
                    function.read32(offset + 16)
                } else {
                    0
                },
            });
        }
        let names = [
            "common configuration",
            "notification",
            "ISR",
            "device configuration",
        ];
        let mut addresses = [0u64; 4];
        let mut assigned_bars = false;
        for ((capability, name), address) in found.iter().zip(names).zip(&mut addresses) {
            let capability = capability.ok_or(ProbeError::MissingCapability(name))?;
            let (bar, assigned) = pci::ensure_bar(host, function, capability.bar, allocator)
                .map_err(ProbeError::Bar)?;
            assigned_bars |= assigned;
            *address = bar + u64::from(capability.offset);
        }
        function.set_command(
            function.command() | pci::COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE,
        );
        let [common, notify_base, isr, device] = addresses;
        let mut disk = VirtioPci {
            common,
            notify_base,
            multiplier: found[1].map_or(0, |notify| notify.multiplier),
            isr,
            device,
            notify: notify_base,
            capacity: 0,
            features_high: 0,
            // Replaced after the reset in `initialise`; the device has not been given these rings.
            queue: Virtqueue::new(),
        };
        disk.initialise()?;
        let setup = Setup {
            assigned_bars,
            common,
            features_high: disk.features_high,
        };
        Ok((disk, setup))
    }

    /// Resets the device and sets it up again from scratch: features, queue 0 (its rings zeroed,
    /// nothing published), DRIVER_OK. Also what recovers a device that needs a reset.
    pub fn initialise(&mut self) -> Result<(), ProbeError> {
        if !self.reset() {
            return Err(ProbeError::ResetTimeout(self.status()));
        }
        self.queue = Virtqueue::new();
        self.set_status(STATUS_ACKNOWLEDGE);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write32(self.common + DEVICE_FEATURE_SELECT, 1);
        let offered = read32(self.common + DEVICE_FEATURE);
        if offered & FEATURE_WORD1_VERSION_1 == 0 {
            return Err(ProbeError::NotModern(offered));
        }
        self.features_high = offered & (FEATURE_WORD1_VERSION_1 | FEATURE_WORD1_ACCESS_PLATFORM);
        for (word, value) in [(0, 0), (1, self.features_high)] {
            write32(self.common + DRIVER_FEATURE_SELECT, word);
            write32(self.common + DRIVER_FEATURE, value);
        }
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if self.status() & STATUS_FEATURES_OK == 0 {
            return Err(ProbeError::FeaturesRefused);
        }
        write16(self.common + QUEUE_SELECT, 0);
        let maximum = read16(self.common + QUEUE_SIZE_FIELD);
        if maximum < QUEUE_SIZE {
            return Err(ProbeError::QueueTooSmall(maximum));
        }
        if read16(self.common + QUEUE_ENABLE) != 0 {
            return Err(ProbeError::QueueInUse);
        }
        write16(self.common + QUEUE_SIZE_FIELD, QUEUE_SIZE);
        let rings = virtqueue::ring_addresses();
        for (field, address) in [
            (QUEUE_DESC, rings.descriptors),
            (QUEUE_DRIVER, rings.driver),
            (QUEUE_DEVICE, rings.device),
        ] {
            write32(self.common + field, address as u32);
            write32(self.common + field + 4, (address >> 32) as u32);
        }
        let notify_off = read16(self.common + QUEUE_NOTIFY_OFF);
        self.notify = self.notify_base + u64::from(notify_off) * u64::from(self.multiplier);
        write16(self.common + QUEUE_ENABLE, 1);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        self.capacity = u64::from(read32(self.device + CONFIG_CAPACITY))
            | u64::from(read32(self.device + CONFIG_CAPACITY + 4)) << 32;
        let status = self.status();
        if status & STATUS_NEEDS_RESET != 0 {
            return Err(ProbeError::NeedsReset(status));
        }
        Ok(())
    }

    /// Writes 0 to the device status and waits (bounded) until it reads 0: the device has
    /// dropped its queues and finished with every request it had.
    pub fn reset(&self) -> bool {
        self.set_status(0);
        timer::wait_until(RESET_WAIT_MS, || self.status() == 0)
    }

    /// The device status.
    pub fn status(&self) -> u8 {
        read8(self.common + DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) {
        write8(self.common + DEVICE_STATUS, status);
    }

    /// Whether the device set DEVICE_NEEDS_RESET.
    pub fn needs_reset(&self) -> bool {
        self.status() & STATUS_NEEDS_RESET != 0
    }

    /// The disk's size in sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Puts a read of `sector` into the guest's own one-sector buffer on the queue and notifies
    /// the device (see [`Virtqueue::queue_read`]). Call it only when the previous request
    /// completed.
    pub fn submit_read(&mut self, sector: u64) {
        self.queue.queue_read(sector);
        self.notify();
    }

    /// Notifies the device that queue 0 has new requests (a 16-bit write of the queue index to
    /// its notification address).
    pub fn notify(&self) {
        write16(self.notify, 0);
    }

    /// Puts request `slot` on the queue and notifies the device (see [`Virtqueue::queue`]).
    pub fn submit(&mut self, slot: u16, write: bool, sector: u64, buffers: &RequestBuffers) {
        self.queue.queue(slot, write, sector, buffers);
        self.notify();
    }

    /// The used index the device reaches once it has completed everything submitted.
    pub fn published(&self) -> u16 {
        self.queue.published()
    }

    /// Reads (and so clears) the ISR status: the device's interrupt causes.
    pub fn acknowledge_interrupt(&self) -> u8 {
        read8(self.isr)
    }

    /// The CPU address of the ISR status byte: reading it returns and clears the device's
    /// interrupt causes, which lowers its INTx line.
    pub fn isr_address(&self) -> u64 {
        self.isr
    }
}
