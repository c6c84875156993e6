//! `test=dma-flood`: keeps the passed-through disk reading into the cell's own RAM for ever, so
//! that a `wipe` from the management prompt finds requests in flight. The cell owns QEMU's
//! virtio-blk disk (layout `test-guest-dma`, identity-mapped RAM). vCPU 0 writes a non-zero
//! pattern to the first [`SLOTS`] × [`REQUEST_BYTES`] bytes of the disk, then queues one read of
//! [`REQUEST_BYTES`] per slot (a full queue) and polls the used ring, checking each completion
//! (status, and the pattern the first time a slot completes) and queuing it again at once. Without
//! interrupts: the guest acknowledges the device's interrupt status as it polls.
//!
//! Lines: `test-guest: dma-flood <SLOTS> reads of <REQUEST_BYTES> bytes in flight` once the reads
//! are queued, then `test-guest: dma-flood <N> reads completed` every [`REPORT_EVERY`]
//! completions, and `test-guest: dma-flood data ok` once every slot read the pattern back. The
//! QEMU side (tests/tests/passthrough.rs `a_wiped_cell_stays_zero_while_its_disk_had_reads_in_flight`)
//! throttles the disk's reads so that requests stay in flight for seconds.

use crate::virtio_blk::VirtioBlk;
use crate::virtqueue::{BLK_S_OK, MAX_SLOTS, RequestBuffers, SECTOR_SIZE};
use crate::{lines, timer};
use cellvisor_guest_support::fdt;
use cellvisor_guest_support::println;

/// Requests in flight.
pub const SLOTS: u16 = MAX_SLOTS;
/// Bytes each request reads.
pub const REQUEST_BYTES: u32 = 64 * 1024;
/// The pattern written to the disk and read back: non-zero in every byte.
const PATTERN: u64 = 0xC3C3_C3C3_C3C3_C3C3;
/// Where the request buffers start, from the cell's RAM base: past the image, its .bss and its
/// stacks (checked at run time).
const BUFFERS_OFFSET: u64 = 16 * 1024 * 1024;
/// Completions between two progress lines.
const REPORT_EVERY: u32 = 8;

/// The buffers of `slot` in the area at `area`: headers at the start (32 bytes each), status
/// bytes from 0x1000, data from 0x10000.
fn buffers(area: u64, slot: u16) -> RequestBuffers {
    let slot = u64::from(slot);
    RequestBuffers {
        header: area + slot * 32,
        data: area + 0x1_0000 + slot * u64::from(REQUEST_BYTES),
        length: REQUEST_BYTES,
        status: area + 0x1000 + slot,
    }
}

/// Sectors of one request.
const SECTORS: u64 = REQUEST_BYTES as u64 / SECTOR_SIZE as u64;

/// The first sector `slot` writes and reads: one request's length apart from the next slot's, so
/// that QEMU does not merge neighbouring requests into one (each stays its own request in flight).
fn first_sector(slot: u16) -> u64 {
    u64::from(slot) * 2 * SECTORS
}

/// Fills (`Some(value)`) or checks against `value` (`None` fills nothing, returns whether every
/// word is `value`) the data of one request.
fn data_words(buffers: &RequestBuffers, fill: Option<u64>, value: u64) -> bool {
    let words = buffers.data as *mut u64;
    let mut all = true;
    for index in 0..(REQUEST_BYTES as usize / 8) {
        // SAFETY: the data buffer lies in the cell's own RAM past the image (see `run`), and the
        // device is not using it (its slot is not in flight).
        unsafe {
            let word = words.add(index);
            match fill {
                Some(fill) => word.write_volatile(fill),
                None => all &= word.read_volatile() == value,
            }
        }
    }
    all
}

fn status(buffers: &RequestBuffers) -> u8 {
    // SAFETY: a volatile read of the status byte the device wrote, in the cell's own RAM.
    unsafe { (buffers.status as *const u8).read_volatile() }
}

/// Waits until the used ring's index reaches `target`; acknowledges the device's interrupts.
fn wait_used(disk: &VirtioBlk, target: u16) -> bool {
    timer::wait_until(crate::WAIT_MS, || {
        let causes = VirtioBlk::interrupt_status(disk.base());
        if causes != 0 {
            VirtioBlk::acknowledge_interrupt(disk.base(), causes);
        }
        VirtioBlk::used_index().wrapping_sub(target) < 0x8000
    })
}

/// vCPU 0: finds the disk, writes the pattern, then reads it for ever (returns only on a failure).
pub fn run(device_tree: Option<&[u8]>) {
    let Some(device_tree) = device_tree else {
        println!("{}dma-flood: no device tree", lines::FAIL);
        return;
    };
    let mut found = None;
    fdt::for_each_device(device_tree, "virtio,mmio", |node| {
        found = VirtioBlk::probe(node.address).ok();
        found.is_some()
    });
    let Some(mut disk) = found else {
        println!("{}dma-flood: no virtio-mmio block device", lines::FAIL);
        return;
    };
    let area = crate::ram_base() + BUFFERS_OFFSET;
    let end = buffers(area, SLOTS).data;
    if crate::image_end() > area || end > crate::ram_base() + crate::RAM_SIZE {
        println!("{}dma-flood: the buffers do not fit", lines::FAIL);
        return;
    }
    if disk.capacity() < first_sector(SLOTS) {
        println!("{}dma-flood: the disk is too small", lines::FAIL);
        return;
    }

    // The pattern, one write per slot.
    for slot in 0..SLOTS {
        let request = buffers(area, slot);
        data_words(&request, Some(PATTERN), 0);
        disk.queue(slot, true, first_sector(slot), &request);
    }
    disk.notify();
    if !wait_used(&disk, SLOTS) {
        println!(
            "{}dma-flood: the pattern writes did not complete",
            lines::FAIL
        );
        return;
    }
    for slot in 0..SLOTS {
        let request = buffers(area, slot);
        if status(&request) != BLK_S_OK {
            println!(
                "{}dma-flood: write {slot} ended with status {}",
                lines::FAIL,
                status(&request)
            );
            return;
        }
        data_words(&request, Some(0), 0);
        disk.queue(slot, false, first_sector(slot), &request);
    }
    disk.notify();
    println!(
        "{}{SLOTS} reads of {REQUEST_BYTES} bytes in flight",
        lines::DMA_FLOOD
    );

    // The writes took used-ring entries 0..SLOTS; the reads may complete during the notify itself.
    let mut seen = SLOTS;
    let mut completed = 0u32;
    let mut checked = 0u64;
    loop {
        if !wait_used(&disk, seen.wrapping_add(1)) {
            println!(
                "{}dma-flood: no read completed within {} ms (used index {}, slot 0 status {})",
                lines::FAIL,
                crate::WAIT_MS,
                VirtioBlk::used_index(),
                status(&buffers(area, 0))
            );
            return;
        }
        let used = VirtioBlk::used_index();
        while seen != used {
            let slot = VirtioBlk::used_slot(seen);
            seen = seen.wrapping_add(1);
            let request = buffers(area, slot);
            if status(&request) != BLK_S_OK {
                println!(
                    "{}dma-flood: read {slot} ended with status {}",
                    lines::FAIL,
                    status(&request)
                );
                return;
            }
            if checked & (1 << slot) == 0 {
                if !data_words(&request, None, PATTERN) {
                    println!(
                        "{}dma-flood: read {slot} did not return the pattern",
                        lines::FAIL
                    );
                    return;
                }
                checked |= 1 << slot;
                if checked == (1 << SLOTS) - 1 {
                    println!("{}data ok", lines::DMA_FLOOD);
                }
            }
            disk.queue(slot, false, first_sector(slot), &request);
            completed += 1;
            if completed.is_multiple_of(REPORT_EVERY) {
                println!("{}{completed} reads completed", lines::DMA_FLOOD);
            }
        }
        disk.notify();
    }
}
