//! A minimal virtio-blk driver over the virtio-mmio transport: one virtqueue of [`QUEUE_SIZE`]
//! descriptors, no features but VIRTIO_F_VERSION_1 where the transport is modern. `test=spis`
//! keeps one one-sector read in flight at a time ([`VirtioBlk::submit_read`]: three descriptors,
//! header, one sector of data, status); `test=dma-flood` keeps up to [`MAX_SLOTS`] large requests
//! in flight at once in buffers of its own ([`VirtioBlk::queue`], one chain of three descriptors
//! per slot).
//!
//! QEMU presents its `virtio-mmio` transports as legacy (version 1: `force-legacy` is on by
//! default, and the tests start QEMU that way); with `-global virtio-mmio.force-legacy=false` they
//! are modern (version 2). Both are driven: the legacy queue is one page-aligned block given to the
//! device by page number (QueuePFN), the modern one three addresses and QueueReady.
//!
//! The device reads and writes the virtqueue and the request buffers by DMA, at physical
//! addresses, while the guest programs guest-physical ones: the cell must be identity-mapped
//! (cellvisor gives a DMA-capable device only to such a cell, see docs/security.md). The buffers
//! are statics of the image, so they lie in the cell's own RAM. With the guest's MMU off every
//! access is Device-nGnRnE: nothing is cached, so nothing needs cleaning for the device.

use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::ptr::{addr_of, addr_of_mut};

use crate::gic::{read32, write32};

/// Descriptors in the one virtqueue (a request uses three).
pub const QUEUE_SIZE: u16 = 64;
/// Requests that can be in flight at once ([`VirtioBlk::queue`]).
pub const MAX_SLOTS: u16 = QUEUE_SIZE / 3;
/// Bytes per sector.
pub const SECTOR_SIZE: usize = 512;

/// virtio-mmio registers (offsets in the transport's window).
const MAGIC_VALUE: u64 = 0x000;
const VERSION: u64 = 0x004;
const DEVICE_ID: u64 = 0x008;
const DEVICE_FEATURES: u64 = 0x010;
const DEVICE_FEATURES_SEL: u64 = 0x014;
const DRIVER_FEATURES: u64 = 0x020;
const DRIVER_FEATURES_SEL: u64 = 0x024;
/// Legacy only.
const GUEST_PAGE_SIZE: u64 = 0x028;
const QUEUE_SEL: u64 = 0x030;
const QUEUE_NUM_MAX: u64 = 0x034;
const QUEUE_NUM: u64 = 0x038;
/// Legacy only.
const QUEUE_ALIGN: u64 = 0x03C;
/// Legacy only.
const QUEUE_PFN: u64 = 0x040;
/// Modern only.
const QUEUE_READY: u64 = 0x044;
const QUEUE_NOTIFY: u64 = 0x050;
const INTERRUPT_STATUS: u64 = 0x060;
const INTERRUPT_ACK: u64 = 0x064;
const STATUS: u64 = 0x070;
/// Modern only: the three parts of the queue, low and high halves.
const QUEUE_DESC_LOW: u64 = 0x080;
const QUEUE_DESC_HIGH: u64 = 0x084;
const QUEUE_DRIVER_LOW: u64 = 0x090;
const QUEUE_DRIVER_HIGH: u64 = 0x094;
const QUEUE_DEVICE_LOW: u64 = 0x0A0;
const QUEUE_DEVICE_HIGH: u64 = 0x0A4;
/// virtio-blk configuration: `capacity` (sectors), a little-endian u64.
const CONFIG_CAPACITY: u64 = 0x100;

/// "virt", little-endian.
const MAGIC: u32 = 0x7472_6976;
/// virtio device ID of a block device.
const DEVICE_ID_BLOCK: u32 = 2;
/// Device status bits.
const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
/// VIRTIO_F_VERSION_1: bit 32, i.e. bit 0 of feature word 1.
const FEATURE_WORD1_VERSION_1: u32 = 1;
/// Page size of the legacy interface (GuestPageSize, QueueAlign, QueuePFN).
const LEGACY_PAGE: u32 = 4096;
/// Descriptor flags.
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
/// virtio-blk request type: read.
const BLK_T_IN: u32 = 0;
/// virtio-blk request type: write.
const BLK_T_OUT: u32 = 1;
/// virtio-blk status: success.
pub const BLK_S_OK: u8 = 0;
/// Written into the status byte before each request, so a request the device never completed is
/// not mistaken for a success.
const STATUS_UNSET: u8 = 0xFF;

#[repr(C)]
#[derive(Clone, Copy)]
struct Descriptor {
    address: u64,
    length: u32,
    flags: u16,
    next: u16,
}

#[repr(C)]
struct Available {
    flags: u16,
    index: u16,
    ring: [u16; QUEUE_SIZE as usize],
    used_event: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UsedElement {
    id: u32,
    length: u32,
}

#[repr(C)]
struct Used {
    flags: u16,
    index: u16,
    ring: [UsedElement; QUEUE_SIZE as usize],
    avail_event: u16,
}

/// The driver's part of the virtqueue: the descriptors and the available ring, alone in one page.
#[repr(C, align(4096))]
struct DriverArea {
    descriptors: [Descriptor; QUEUE_SIZE as usize],
    available: Available,
}

/// The virtqueue in the legacy layout: descriptors and available ring in the first page, the used
/// ring at the next [`LEGACY_PAGE`] boundary (the available ring's end aligned up to QueueAlign).
/// It meets the modern alignments too.
#[repr(C, align(4096))]
struct Rings {
    driver: DriverArea,
    used: Used,
}

const _: () = assert!(offset_of!(Rings, used) == LEGACY_PAGE as usize);
const _: () = assert!(offset_of!(DriverArea, available) == 16 * QUEUE_SIZE as usize);

/// One request: its header, the sector read into, the status the device writes.
#[repr(C, align(16))]
struct Request {
    kind: u32,
    reserved: u32,
    sector: u64,
    data: [u8; SECTOR_SIZE],
    status: u8,
}

/// Memory the device reaches by DMA: written by the guest and the device through raw pointers
/// only, with volatile accesses.
struct DmaCell<T>(UnsafeCell<T>);

// SAFETY: the contents are only ever accessed through volatile raw-pointer reads and writes by
// the protocol in `VirtioBlk` (vCPU 0 writes requests, vCPU 1 reads the used ring index), never
// through references.
unsafe impl<T> Sync for DmaCell<T> {}

static RINGS: DmaCell<Rings> = DmaCell(UnsafeCell::new(Rings {
    driver: DriverArea {
        descriptors: [Descriptor {
            address: 0,
            length: 0,
            flags: 0,
            next: 0,
        }; QUEUE_SIZE as usize],
        available: Available {
            flags: 0,
            index: 0,
            ring: [0; QUEUE_SIZE as usize],
            used_event: 0,
        },
    },
    used: Used {
        flags: 0,
        index: 0,
        ring: [UsedElement { id: 0, length: 0 }; QUEUE_SIZE as usize],
        avail_event: 0,
    },
}));

static REQUEST: DmaCell<Request> = DmaCell(UnsafeCell::new(Request {
    kind: 0,
    reserved: 0,
    sector: 0,
    data: [0; SECTOR_SIZE],
    status: 0,
}));

/// Where one request of [`VirtioBlk::queue`] lives: guest-physical (= physical) addresses of
/// its 16-byte header, its data and its status byte.
pub struct RequestBuffers {
    /// The header (type, reserved, sector): 16 bytes, 8-byte aligned.
    pub header: u64,
    /// The data.
    pub data: u64,
    /// Bytes of data (a multiple of [`SECTOR_SIZE`]).
    pub length: u32,
    /// The status byte the device writes.
    pub status: u64,
}

/// Guest-physical (= physical, in an identity-mapped cell) address of `pointer`.
fn dma_address<T>(pointer: *const T) -> u64 {
    pointer as u64
}

/// The used ring the device writes.
fn used_ring() -> *mut Used {
    // SAFETY: only computes the address of a field of the static; nothing is read or written.
    unsafe { addr_of_mut!((*RINGS.0.get()).used) }
}

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
    /// The next available-ring index to publish.
    next_available: u16,
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
        let rings = RINGS.0.get();
        // SAFETY: only addresses of fields of the static are computed.
        let (descriptors, available) = unsafe {
            (
                addr_of!((*rings).driver.descriptors) as u64,
                addr_of!((*rings).driver.available) as u64,
            )
        };
        let used = dma_address(used_ring());
        if version == 1 {
            set(QUEUE_ALIGN, LEGACY_PAGE);
            set(QUEUE_PFN, (descriptors / u64::from(LEGACY_PAGE)) as u32);
        } else {
            for (low, high, address) in [
                (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, descriptors),
                (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, available),
                (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, used),
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
            next_available: 0,
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
        let request = REQUEST.0.get();
        let rings = RINGS.0.get();
        let slot = self.next_available % QUEUE_SIZE;
        // SAFETY: the statics are only accessed through these raw pointers, volatile; the device
        // is idle (the previous request completed), so nothing else writes them now.
        unsafe {
            addr_of_mut!((*request).kind).write_volatile(BLK_T_IN);
            addr_of_mut!((*request).reserved).write_volatile(0);
            addr_of_mut!((*request).sector).write_volatile(sector);
            addr_of_mut!((*request).status).write_volatile(STATUS_UNSET);
            let chain = [
                (dma_address(request), 16, DESC_F_NEXT),
                (
                    dma_address(addr_of!((*request).data)),
                    SECTOR_SIZE as u32,
                    DESC_F_NEXT | DESC_F_WRITE,
                ),
                (dma_address(addr_of!((*request).status)), 1, DESC_F_WRITE),
            ];
            for (index, (address, length, flags)) in (0u16..).zip(chain) {
                let descriptor = addr_of_mut!((*rings).driver.descriptors[usize::from(index)]);
                descriptor.write_volatile(Descriptor {
                    address,
                    length,
                    flags,
                    next: index + 1,
                });
            }
            addr_of_mut!((*rings).driver.available.ring[usize::from(slot)]).write_volatile(0);
            self.next_available = self.next_available.wrapping_add(1);
            // The ring entry before the index that publishes it, both before the notification.
            core::arch::asm!("dsb sy", options(nostack));
            addr_of_mut!((*rings).driver.available.index).write_volatile(self.next_available);
            core::arch::asm!("dsb sy", options(nostack));
        }
        write32(self.base + QUEUE_NOTIFY, 0);
    }

    /// Puts request `slot` (below [`MAX_SLOTS`]) on the queue without notifying the device: a read
    /// into, or a write from, `buffers` of `sector` onwards. Call it only for a slot that is not
    /// in flight.
    pub fn queue(&mut self, slot: u16, write: bool, sector: u64, buffers: &RequestBuffers) {
        let rings = RINGS.0.get();
        let head = (slot % MAX_SLOTS) * 3;
        let header = buffers.header as *mut u32;
        let data_flags = if write {
            DESC_F_NEXT
        } else {
            DESC_F_NEXT | DESC_F_WRITE
        };
        // SAFETY: `buffers` lie in the guest's own RAM, outside its image (the caller's promise),
        // and the slot is not in flight, so the device does not access them or this chain now;
        // the statics are only accessed through these raw pointers, volatile.
        unsafe {
            header.write_volatile(if write { BLK_T_OUT } else { BLK_T_IN });
            header.add(1).write_volatile(0);
            (buffers.header as *mut u64).add(1).write_volatile(sector);
            (buffers.status as *mut u8).write_volatile(STATUS_UNSET);
            let chain = [
                (buffers.header, 16, DESC_F_NEXT),
                (buffers.data, buffers.length, data_flags),
                (buffers.status, 1, DESC_F_WRITE),
            ];
            for (index, (address, length, flags)) in (head..).zip(chain) {
                let descriptor = addr_of_mut!((*rings).driver.descriptors[usize::from(index)]);
                descriptor.write_volatile(Descriptor {
                    address,
                    length,
                    flags,
                    next: index + 1,
                });
            }
            let entry = self.next_available % QUEUE_SIZE;
            addr_of_mut!((*rings).driver.available.ring[usize::from(entry)]).write_volatile(head);
            self.next_available = self.next_available.wrapping_add(1);
            core::arch::asm!("dsb sy", options(nostack));
            addr_of_mut!((*rings).driver.available.index).write_volatile(self.next_available);
            core::arch::asm!("dsb sy", options(nostack));
        }
    }

    /// Tells the device that requests were queued (QueueNotify).
    pub fn notify(&self) {
        write32(self.base + QUEUE_NOTIFY, 0);
    }

    /// The slot ([`VirtioBlk::queue`]) of used-ring entry `index` (modulo the ring size).
    pub fn used_slot(index: u16) -> u16 {
        let entry = usize::from(index % QUEUE_SIZE);
        // SAFETY: a volatile read of a field of the static the device writes.
        let id = unsafe { addr_of!((*used_ring()).ring[entry].id).read_volatile() };
        (id / 3) as u16
    }

    /// How many requests the device has completed (the used ring's index).
    pub fn used_index() -> u16 {
        // SAFETY: a volatile read of a field of the static the device writes.
        unsafe { addr_of!((*used_ring()).index).read_volatile() }
    }

    /// The status byte of the last request: [`BLK_S_OK`] once it succeeded.
    pub fn last_status() -> u8 {
        // SAFETY: a volatile read of a field of the static.
        unsafe { addr_of!((*REQUEST.0.get()).status).read_volatile() }
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
