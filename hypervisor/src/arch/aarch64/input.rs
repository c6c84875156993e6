//! The phone's physical input devices: virtio-input devices on virtio-mmio transports (QEMU's
//! `virtio-keyboard-device` and `virtio-tablet-device`), driven at EL2 with the `virtio-drivers`
//! crate. Their queues and event buffers live in cellvisor's heap, which no cell can reach.
//!
//! The crate's [`Hal`] is implemented here: EL2 maps RAM and device registers identity, so a
//! buffer's physical address is its address, and QEMU's virtio-mmio devices are cache-coherent.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use spin::{Mutex, Once};
use virtio_drivers::device::input::{InputConfigSelect, VirtIOInput};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr as VirtioPhysAddr};

use crate::board::VirtioMmioSlots;
use crate::core::hardware::InputEvent;
use crate::dev::virtio::input::InputConfig;

/// The `virtio-drivers` HAL at EL2: DMA pages from the heap, identity addresses.
pub struct El2Hal;

fn pages_layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned heap blocks that nothing else aliases until
// `dma_dealloc`; EL2's identity map makes the pointer the physical address the device uses.
unsafe impl Hal for El2Hal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (VirtioPhysAddr, NonNull<u8>) {
        let Some(layout) = pages_layout(pages) else {
            crate::arch::aarch64::boot::fatal(format_args!("virtio: {pages} DMA pages"));
        };
        // SAFETY: the layout has a non-zero size (at least one page).
        let pointer = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let Some(pointer) = NonNull::new(pointer) else {
            crate::arch::aarch64::boot::fatal(format_args!(
                "virtio: out of heap for {pages} DMA pages"
            ));
        };
        (pointer.as_ptr() as u64, pointer)
    }

    unsafe fn dma_dealloc(_paddr: VirtioPhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        if let Some(layout) = pages_layout(pages) {
            // SAFETY: per the caller, `vaddr` came from `dma_alloc` with the same page count.
            unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: VirtioPhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> VirtioPhysAddr {
        buffer.as_ptr() as *mut u8 as u64
    }

    unsafe fn unshare(_paddr: VirtioPhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
    }
}

type Driver = VirtIOInput<El2Hal, MmioTransport<'static>>;

/// The input devices found at boot, in probe order.
static DEVICES: Once<Vec<Mutex<Driver>>> = Once::new();

/// A physical input device found at boot.
pub struct Found {
    /// Its interrupt.
    pub intid: u32,
    /// What it says of itself (name, event bits, axes): each cell's emulated device says the same.
    pub config: Arc<InputConfig>,
}

/// Probes the transports of `slots` for virtio-input devices, skipping any whose registers lie in
/// `owned` (a cell's device), and keeps a driver for each found. Call once, at boot, with the
/// slots mapped as device memory in EL2's map.
pub fn probe(slots: &VirtioMmioSlots, owned: &dyn Fn(u64) -> bool) -> Vec<Found> {
    let mut drivers = Vec::new();
    let mut found = Vec::new();
    for n in 0..slots.count {
        let Some((window, intid)) = slots.slot(n) else {
            break;
        };
        if owned(window.base) {
            continue;
        }
        let Some(header) = NonNull::new(window.base as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the slot is a virtio-mmio transport's register window (board data checked
        // against the platform's `virtio,mmio` nodes), mapped as device memory, and no cell owns
        // it, so nothing else drives it.
        let Ok(transport) = (unsafe { MmioTransport::new(header, window.size as usize) }) else {
            continue;
        };
        if transport.device_type() != DeviceType::Input {
            continue;
        }
        let mut driver = match Driver::new(transport) {
            Ok(driver) => driver,
            Err(error) => {
                log::warn!("input: virtio-input at {:#x}: {error:?}", window.base);
                continue;
            }
        };
        let config = InputConfig::from_query(|select, subsel, out| {
            let Some(select) = config_select(select) else {
                return 0;
            };
            driver
                .query_config_select(select, subsel, out)
                .unwrap_or(0)
        });
        log::info!(
            "input: {} at {:#x} (INTID {intid})",
            core::str::from_utf8(&config.name).unwrap_or("virtio-input"),
            window.base
        );
        drivers.push(Mutex::new(driver));
        found.push(Found {
            intid,
            config: Arc::new(config),
        });
    }
    DEVICES.call_once(|| drivers);
    found
}

fn config_select(select: u8) -> Option<InputConfigSelect> {
    Some(match select {
        0x01 => InputConfigSelect::IdName,
        0x02 => InputConfigSelect::IdSerial,
        0x03 => InputConfigSelect::IdDevids,
        0x10 => InputConfigSelect::PropBits,
        0x11 => InputConfigSelect::EvBits,
        0x12 => InputConfigSelect::AbsInfo,
        _ => return None,
    })
}

/// Hands `sink` what device `device` reported since the last call (its interrupt fired), and
/// acknowledges the interrupt first so an event arriving meanwhile raises it again.
pub fn drain(device: usize, sink: &mut dyn FnMut(InputEvent)) {
    let Some(driver) = DEVICES.get().and_then(|devices| devices.get(device)) else {
        return;
    };
    let mut driver = driver.lock();
    driver.ack_interrupt();
    // The queue holds at most its size in events; bound the loop by it anyway.
    for _ in 0..256 {
        let Some(event) = driver.pop_pending_event() else {
            break;
        };
        sink(InputEvent {
            kind: event.event_type,
            code: event.code,
            value: event.value,
        });
    }
}
