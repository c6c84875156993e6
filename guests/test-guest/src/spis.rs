//! `test=spis`: no lost interrupts from a passed-through device. The cell owns QEMU's virtio-blk
//! disk (layout `test-guest-disk`); its SPI is a physical interrupt that cellvisor takes at EL2,
//! acknowledges and injects hardware-linked into vCPU 1. vCPU 0 submits [`ROUNDS`] one-sector reads
//! one at a time, each only after vCPU 1's IRQ handler saw the used-ring update of the one before,
//! acknowledged the device's interrupt (InterruptACK), ended the SPI and counted it: first while
//! vCPU 1 spins with IRQs unmasked (its loop never exits to cellvisor, so it completes each SPI in
//! its list register without cellvisor seeing it), then while it waits in WFI between requests.
//! The handler's two device-register accesses (InterruptStatus, InterruptACK) do trap, as
//! cellvisor forwards the disk's registers (they share a page with another device's), but both
//! come before the EOI: the guest's deactivation, which through the hardware link also deactivates
//! the physical SPI, is never seen.
//!
//! The disk, its INTID and its trigger come from the cell's device tree (the first `virtio,mmio`
//! node holding a block device); the driver is [`crate::virtio_blk`]. A lost SPI stops that mode
//! with `test-guest: FAIL spi-<mode>: request <index> ... got no interrupt ...`; each mode ends
//! with `test-guest: spi-<mode> <received>/<ROUNDS> in <N> ms` (see `lines`; the time is for
//! whoever reads the log, nothing checks it). The QEMU side is tests/tests/passthrough.rs
//! `spis_from_a_passthrough_disk_reach_a_spinning_and_an_idle_vcpu`.
//!
//! Only vCPU 1 writes [`RECEIVED`], [`TAKEN`], [`SEEN_USED`] and [`IDLE_AT`], only vCPU 0 writes
//! [`PHASE`], [`DISK_BASE`] and [`DISK_INTID`]: plain loads and stores, no exclusives.

use crate::gic::{self, SPURIOUS_INTID, Trigger};
use crate::virtio_blk::VirtioBlk;
use crate::virtqueue::BLK_S_OK;
use crate::{lines, psci, timer};
use cellvisor_guest_support::fdt;
use cellvisor_guest_support::println;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// CPU_ON context id that makes vCPU 1 the disk's interrupt handler.
const CONTEXT_ID: u64 = 0xC0DE_5915;
/// Requests per mode. QEMU (TCG) completes one in well under a millisecond here, so a mode takes
/// seconds (see docs/testing.md for the measured times).
pub const ROUNDS: u32 = 10_000;
/// `interrupts` specifier type of an SPI, and the INTID of SPI 0.
const SPECIFIER_SPI: u32 = 0;
const SPI_BASE_INTID: u32 = 32;
/// `interrupts` trigger flags (the low four bits): rising edge, active-high level.
const FLAGS_EDGE_RISING: u32 = 1;
const FLAGS_LEVEL_HIGH: u32 = 4;

/// What vCPU 1 does, set by vCPU 0.
static PHASE: AtomicU32 = AtomicU32::new(PHASE_STARTING);
const PHASE_STARTING: u32 = 0;
/// Busy loop with IRQs unmasked.
const PHASE_SPIN: u32 = 1;
/// WFI with IRQs masked, unmasking after each wake-up.
const PHASE_WFI: u32 = 2;

/// The disk's transport and its INTID, for vCPU 1's handler; set before the SPI is enabled.
static DISK_BASE: AtomicU64 = AtomicU64::new(0);
static DISK_INTID: AtomicU32 = AtomicU32::new(0);
/// Disk interrupts vCPU 1's handler took that showed a used-ring update, in both modes.
static RECEIVED: AtomicU32 = AtomicU32::new(0);
/// Every disk interrupt vCPU 1's handler took (one per completion, unless one is taken twice).
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// The used ring's index as vCPU 1's handler last saw it.
static SEEN_USED: AtomicU32 = AtomicU32::new(0);
/// vCPU 1's CPU interface is set up and its IRQs are unmasked: it is in the phase loop.
static READY: AtomicU32 = AtomicU32::new(0);
/// [`RECEIVED`] as vCPU 1 saw it just before its last WFI (plus one, so 0 means "not yet").
static IDLE_AT: AtomicU32 = AtomicU32::new(0);

/// The IRQ vector's work: acknowledges and ends every pending interrupt. For the disk's SPI it
/// reads the used ring, acknowledges the device (InterruptACK), ends the SPI and only then counts
/// it, so the next request is submitted after a completion cellvisor did not see. Returns whether
/// the IRQ was expected: only vCPU 1 in this test takes IRQs.
pub fn handle_irq() -> bool {
    if READY.load(Ordering::SeqCst) == 0 {
        return false;
    }
    let disk = DISK_INTID.load(Ordering::SeqCst);
    let base = DISK_BASE.load(Ordering::SeqCst);
    loop {
        let intid = gic::acknowledge();
        if intid == SPURIOUS_INTID {
            return true;
        }
        if intid != disk {
            gic::end_of_interrupt(intid);
            println!("{}spi: vcpu 1 took interrupt {intid}", lines::FAIL);
            continue;
        }
        let used = u32::from(VirtioBlk::used_index());
        let causes = VirtioBlk::interrupt_status(base);
        VirtioBlk::acknowledge_interrupt(base, causes);
        gic::end_of_interrupt(intid);
        TAKEN.store(TAKEN.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        if used != SEEN_USED.load(Ordering::SeqCst) {
            SEEN_USED.store(used, Ordering::SeqCst);
            RECEIVED.store(RECEIVED.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        }
    }
}

/// vCPU 1's job if `context_id` says so: the handler's phase loop (never returns).
pub fn secondary(context_id: u64, index: u64) {
    if context_id != CONTEXT_ID {
        return;
    }
    gic::init_this_cpu(index, 0);
    READY.store(1, Ordering::SeqCst);
    gic::unmask_irq();
    loop {
        match PHASE.load(Ordering::SeqCst) {
            PHASE_WFI => {
                // Masked across the WFI so an SPI that lands between the store and the WFI stays
                // pending and makes the WFI return at once (as an OS idle loop does).
                gic::mask_irq();
                IDLE_AT.store(RECEIVED.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
                gic::wfi();
                gic::unmask_irq();
            }
            _ => core::hint::spin_loop(),
        }
    }
}

/// The disk the device tree names: the first `virtio,mmio` transport holding a block device,
/// set up, with its INTID and trigger.
fn find_disk(device_tree: &[u8]) -> Result<(VirtioBlk, u32, Trigger), &'static str> {
    let mut found = None;
    fdt::for_each_device(device_tree, "virtio,mmio", |node| {
        found = VirtioBlk::probe(node.address)
            .ok()
            .map(|disk| (disk, node.interrupt));
        found.is_some()
    });
    let Some((disk, interrupt)) = found else {
        return Err("no virtio-mmio block device in the device tree");
    };
    let Some([SPECIFIER_SPI, spi, flags]) = interrupt else {
        return Err("the disk's node has no SPI in `interrupts`");
    };
    let trigger = match flags & 0xF {
        FLAGS_EDGE_RISING => Trigger::Edge,
        FLAGS_LEVEL_HIGH => Trigger::Level,
        _ => return Err("the disk's SPI is neither rising-edge nor active-high level"),
    };
    Ok((disk, SPI_BASE_INTID + spi, trigger))
}

/// vCPU 0: finds the disk, starts vCPU 1 as its handler, runs both modes and prints their lines.
pub fn run(device_tree: Option<&[u8]>) {
    let Some(device_tree) = device_tree else {
        println!("{}spi: no device tree", lines::FAIL);
        return;
    };
    let (mut disk, intid, trigger) = match find_disk(device_tree) {
        Ok(found) => found,
        Err(why) => {
            println!("{}spi: {why}", lines::FAIL);
            return;
        }
    };
    println!(
        "{}virtio-mmio version {} at {:#x}, INTID {intid} ({trigger:?}), {} sectors",
        lines::SPI_DISK,
        disk.version(),
        disk.base(),
        disk.capacity()
    );
    if disk.capacity() == 0 {
        println!("{}spi: the disk is empty", lines::FAIL);
        return;
    }
    DISK_BASE.store(disk.base(), Ordering::SeqCst);
    DISK_INTID.store(intid, Ordering::SeqCst);
    gic::enable_distributor();
    let entry = crate::entry::secondary_entry as *const () as u64;
    let result = psci::cpu_on(1, entry, CONTEXT_ID);
    if result != psci::SUCCESS {
        println!("{}spi: cpu_on(1) returned {result}", lines::FAIL);
        return;
    }
    if !timer::wait_until(crate::WAIT_MS, || READY.load(Ordering::SeqCst) == 1) {
        println!("{}spi: vcpu 1 did not come online", lines::FAIL);
        return;
    }
    gic::route_spi(intid, trigger, 1);
    for (phase, line, mode) in [
        (PHASE_SPIN, lines::SPI_SPIN, "spin"),
        (PHASE_WFI, lines::SPI_WFI, "wfi"),
    ] {
        PHASE.store(phase, Ordering::SeqCst);
        let start = timer::Instant::now();
        let received = submit_all(&mut disk, phase, mode);
        println!("{line}{received}/{ROUNDS} in {} ms", start.elapsed_ms());
        if received != ROUNDS {
            return;
        }
    }
    let (taken, received) = (
        TAKEN.load(Ordering::SeqCst),
        RECEIVED.load(Ordering::SeqCst),
    );
    if taken != received {
        println!(
            "{}spi: {taken} disk interrupts taken for {received} completions",
            lines::FAIL
        );
    }
}

/// Submits [`ROUNDS`] reads, each once the previous one's interrupt was counted; returns how many
/// completed with their interrupt before the first that did not (within [`crate::WAIT_MS`]).
fn submit_all(disk: &mut VirtioBlk, phase: u32, mode: &str) -> u32 {
    let base = RECEIVED.load(Ordering::SeqCst);
    for index in 0..ROUNDS {
        let before = base + index;
        if phase == PHASE_WFI
            && !timer::wait_until(crate::WAIT_MS, || {
                IDLE_AT.load(Ordering::SeqCst) == before + 1
            })
        {
            println!(
                "{}spi-{mode}: vcpu 1 did not go back to WFI before request {index}",
                lines::FAIL
            );
            return index;
        }
        let sector = u64::from(index) % disk.capacity();
        disk.submit_read(sector);
        if !timer::wait_until(crate::WAIT_MS, || RECEIVED.load(Ordering::SeqCst) != before) {
            // Whether the device completed the request tells a lost interrupt from a stuck disk.
            println!(
                "{}spi-{mode}: request {index} (sector {sector}) got no interrupt within {} ms \
                 (used index {}, InterruptStatus {:#x}, {} received in all)",
                lines::FAIL,
                crate::WAIT_MS,
                VirtioBlk::used_index(),
                VirtioBlk::interrupt_status(disk.base()),
                RECEIVED.load(Ordering::SeqCst)
            );
            return index;
        }
        let after = RECEIVED.load(Ordering::SeqCst);
        if after != before + 1 {
            println!(
                "{}spi-{mode}: request {index} was counted {} times",
                lines::FAIL,
                after - before
            );
            return index;
        }
        let status = VirtioBlk::last_status();
        if status != BLK_S_OK {
            println!(
                "{}spi-{mode}: request {index} (sector {sector}) ended with status {status}",
                lines::FAIL
            );
            return index;
        }
    }
    ROUNDS
}
