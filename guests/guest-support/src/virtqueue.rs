//! The one split virtqueue of a guest's one virtio-blk disk, whichever transport carries it
//! (virtio-mmio in the test guest's `virtio_blk`, virtio-pci in [`crate::virtio_pci`]):
//! [`QUEUE_SIZE`] descriptors, the available and used rings, and the requests put on them. A
//! request is a chain of three descriptors: its 16-byte header (type, reserved, sector), its data,
//! its status byte. [`Virtqueue::queue_read`] reads one sector into the guest's own request buffer
//! (chain at descriptor 0); [`Virtqueue::queue`] puts request `slot` (below [`MAX_SLOTS`]) on the
//! queue with buffers the caller chooses (chain at descriptor `slot` × 3), so up to [`MAX_SLOTS`]
//! can be in flight and the data may lie anywhere the caller wants the device to write.
//!
//! The device reads and writes the rings and the request buffers by DMA, at the addresses the
//! guest programs: guest-physical ones. They reach the guest's own RAM behind an SMMU that
//! translates the device's DMA with the cell's stage 2 (any cell placement), and without one only
//! in an identity-mapped cell (cellvisor gives an unconfined DMA-capable device only to such a
//! cell, see docs/security.md). The rings and the request buffer are statics of the image, so they
//! lie in the cell's own RAM. With the guest's MMU off every access is Device-nGnRnE: nothing is
//! cached, so nothing needs cleaning for the device. Only one disk is driven per boot, so the
//! statics are the one queue's.

use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};
use core::ptr::{addr_of, addr_of_mut};

/// Descriptors in the one virtqueue (a request uses three).
pub const QUEUE_SIZE: u16 = 64;
/// Requests that can be in flight at once ([`Virtqueue::queue`]).
pub const MAX_SLOTS: u16 = QUEUE_SIZE / 3;
/// Bytes per sector.
pub const SECTOR_SIZE: usize = 512;
/// Device status bits (virtio 1.2, 2.1), the same on every transport.
pub const STATUS_ACKNOWLEDGE: u8 = 1;
/// The driver knows how to drive the device.
pub const STATUS_DRIVER: u8 = 2;
/// The driver is ready.
pub const STATUS_DRIVER_OK: u8 = 4;
/// Feature negotiation is complete.
pub const STATUS_FEATURES_OK: u8 = 8;
/// Feature word 1 (features 32..63): VIRTIO_F_VERSION_1 (32).
pub const FEATURE_WORD1_VERSION_1: u32 = 1 << 0;
/// virtio-blk status: success.
pub const BLK_S_OK: u8 = 0;
/// Page size of the legacy virtio-mmio interface (GuestPageSize, QueueAlign, QueuePFN): the used
/// ring starts this far after the descriptors.
pub const LEGACY_PAGE: u32 = 4096;

/// Descriptor flags.
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
/// virtio-blk request type: read.
const BLK_T_IN: u32 = 0;
/// virtio-blk request type: write.
const BLK_T_OUT: u32 = 1;
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
const _: () = assert!(size_of::<Rings>().is_multiple_of(8));

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
// the protocol in `Virtqueue` (vCPU 0 writes requests, vCPU 1 reads the used ring index), never
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

/// Where one request lives: guest-physical (= physical) addresses of its 16-byte header, its data
/// and its status byte.
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

/// Guest-physical addresses of the three parts of the queue, as a transport hands them over.
pub struct RingAddresses {
    /// The descriptor table (16-byte aligned).
    pub descriptors: u64,
    /// The available ring ("driver area").
    pub driver: u64,
    /// The used ring ("device area", 4-byte aligned).
    pub device: u64,
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

/// The three parts of the queue.
pub fn ring_addresses() -> RingAddresses {
    let rings = RINGS.0.get();
    // SAFETY: only addresses of fields of the static are computed.
    unsafe {
        RingAddresses {
            descriptors: dma_address(addr_of!((*rings).driver.descriptors)),
            driver: dma_address(addr_of!((*rings).driver.available)),
            device: dma_address(used_ring()),
        }
    }
}

/// The guest's own request buffer's header and status byte, with the data at `data` (`length`
/// bytes, anywhere the device is to write or read).
pub fn request_buffers(data: u64, length: u32) -> RequestBuffers {
    let request = REQUEST.0.get();
    // SAFETY: only addresses of fields of the static are computed.
    unsafe {
        RequestBuffers {
            header: dma_address(request),
            data,
            length,
            status: dma_address(addr_of!((*request).status)),
        }
    }
}

/// How many requests the device has completed (the used ring's index).
pub fn used_index() -> u16 {
    // SAFETY: a volatile read of a field of the static the device writes.
    unsafe { addr_of!((*used_ring()).index).read_volatile() }
}

/// The slot ([`Virtqueue::queue`]) of used-ring entry `index` (modulo the ring size).
pub fn used_slot(index: u16) -> u16 {
    let entry = usize::from(index % QUEUE_SIZE);
    // SAFETY: a volatile read of a field of the static the device writes.
    let id = unsafe { addr_of!((*used_ring()).ring[entry].id).read_volatile() };
    (id / 3) as u16
}

/// The status byte of the guest's own request buffer: [`BLK_S_OK`] once its last request
/// succeeded.
pub fn last_status() -> u8 {
    // SAFETY: a volatile read of a field of the static.
    unsafe { addr_of!((*REQUEST.0.get()).status).read_volatile() }
}

/// The driver's side of the queue: what it publishes next.
pub struct Virtqueue {
    /// The next available-ring index to publish.
    next_available: u16,
}

impl Virtqueue {
    /// A queue with nothing published: zeroes the rings. Call it while the device is reset (its
    /// status 0), before the transport hands the device the rings, so that no used-ring entry of
    /// an earlier instance is taken for a completion.
    // No `Default`: making a queue zeroes the one set of rings the device may be using, which a
    // `Default::default()` would hide.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let words = RINGS.0.get() as *mut u64;
        for index in 0..size_of::<Rings>() / 8 {
            // SAFETY: inside the static (its size is a multiple of 8); the device is reset, so it
            // does not access the rings now; only raw-pointer volatile accesses touch them.
            unsafe { words.add(index).write_volatile(0) };
        }
        Self { next_available: 0 }
    }

    /// Puts a read of `sector` into the guest's own one-sector buffer on the queue (descriptors
    /// 0..3). Call it only when the previous request completed (its used-ring entry is there).
    pub fn queue_read(&mut self, sector: u64) {
        let request = REQUEST.0.get();
        // SAFETY: only the address of a field of the static is computed.
        let data = dma_address(unsafe { addr_of!((*request).data) });
        self.queue(0, false, sector, &request_buffers(data, SECTOR_SIZE as u32));
    }

    /// Puts request `slot` (below [`MAX_SLOTS`]) on the queue without notifying the device: a read
    /// into, or a write from, `buffers` of `sector` onwards. Call it only for a slot that is not
    /// in flight, with buffers the device may access (for a read, the data is what it writes).
    pub fn queue(&mut self, slot: u16, write: bool, sector: u64, buffers: &RequestBuffers) {
        let rings = RINGS.0.get();
        let head = (slot % MAX_SLOTS) * 3;
        let header = buffers.header as *mut u32;
        let data_flags = if write {
            DESC_F_NEXT
        } else {
            DESC_F_NEXT | DESC_F_WRITE
        };
        // SAFETY: the header and status lie in the guest's own RAM, outside anything else it uses
        // (the caller's promise: its own request buffer or its own areas), and the slot is not in
        // flight, so the device does not access them or this chain now; the statics are only
        // accessed through these raw pointers, volatile. The data is not touched here.
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
            // The ring entry before the index that publishes it, both before the notification.
            core::arch::asm!("dsb sy", options(nostack));
            addr_of_mut!((*rings).driver.available.index).write_volatile(self.next_available);
            core::arch::asm!("dsb sy", options(nostack));
        }
    }

    /// The available-ring index published last: the used index the device reaches once it has
    /// completed everything queued.
    pub fn published(&self) -> u16 {
        self.next_available
    }
}
