//! `pci_intx`: EL2 instructions per passthrough interrupt on the PCIe path. vCPU 0 drives the
//! cell's `virtio-blk-pci` with the shared driver ([`cellvisor_guest_support::virtio_pci`]) with
//! its INTx enabled, and times N one-sector reads, each completed by the device's level-triggered
//! INTx while vCPU 0 spins with IRQs unmasked.
//!
//! Per read: with IRQs masked the request is queued and the device notified (a write to its
//! notification BAR, which the cell maps: no trap), then IRQs are unmasked and vCPU 0 spins (with
//! YIELD, see `spin_yield`) until its handler has seen the interrupt. The handler
//! ([`handle_interrupt`]) reads the EL2 count at its entry, reads the device's ISR status (which
//! lowers the INTx line: it must come before the EOI, or the line would still be high when the EOI
//! deactivates the physical SPI, which would fire again) and ends the interrupt; the EOI and its
//! deactivation of the hardware-linked physical SPI do not trap. `el2_instr_per_op` is the EL2
//! count across the whole window over N, and `el2_median` the median per read. The SPI is taken
//! at EL2 whenever it arrives, also while the guest still masks IRQs right after the notify (the
//! virtual interrupt then waits in its list register), so the delivery cannot be told from the
//! notify inside a read; two separate figures show what else the window holds:
//! `el2_after_entry_per_op` (from the handler's entry to the end of the spin: the ISR read, the
//! EOI, the return; expected 0) and `el2_notify_per_op` (N notifies on a queue with nothing new
//! after the reads: the BAR write alone, which raises no interrupt; expected 0). `ns_per_op` is the
//! whole read (the device completes it on QEMU's I/O threads in host time), so it is not
//! deterministic even under `-icount`.
//!
//! vCPU 0 spins rather than WFI for the reason the `ipi` op does: under `-icount` QEMU's
//! instruction counter is the whole machine's, so a vCPU idling at EL2 would count the other CPUs'
//! instructions as its own EL2 instructions; spinning leaves only the
//! delivery path at EL2.
//!
//! Needs the cell's device tree (the PCI host node and its `interrupt-map`): natively (no device
//! tree) the op is skipped.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use cellvisor_guest_support::pci::{self, Allocator, Host};
use cellvisor_guest_support::virtio_pci::{DEVICE_BLOCK, VENDOR_VIRTIO, VirtioPci};
use cellvisor_guest_support::virtqueue::{self, BLK_S_OK};
use cellvisor_guest_support::{mmio, println};

use crate::sys::{self, Sample};
use crate::{Histogram, Run, gic, spin_yield, wait};

/// The INTID of the disk's INTx while the op runs (0: none, so the handler never matches it).
static INTID: AtomicU32 = AtomicU32::new(0);
/// The CPU address of the disk's ISR status byte.
static ISR: AtomicU64 = AtomicU64::new(0);
/// Set by the handler when the disk's interrupt was taken.
static FIRED: AtomicBool = AtomicBool::new(false);
/// The ISR status the handler read (bit 0: a used buffer).
static ISR_VALUE: AtomicU32 = AtomicU32::new(0);
/// EL2 instructions (PMEVCNTR0_EL0) at the handler's entry.
static HANDLER_EL2: AtomicU64 = AtomicU64::new(0);

/// ISR status bit 0: the device used a buffer (virtio 1.x, 4.1.4.5).
const ISR_QUEUE: u32 = 1;

/// Per-read EL2 counts (submit to the spin's end), for `el2_median`.
static REQUEST_BINS: [AtomicU32; crate::BINS] = [const { AtomicU32::new(0) }; crate::BINS];

/// The exception handler's part: whether `intid` is the disk's INTx, and if so, the ISR read
/// that lowers the line, before the caller's EOI.
pub fn handle_interrupt(intid: u64) -> bool {
    let ours = INTID.load(Ordering::Relaxed);
    if ours == 0 || intid != u64::from(ours) {
        return false;
    }
    HANDLER_EL2.store(sys::el2_instructions(), Ordering::Relaxed);
    let status = mmio::read8(ISR.load(Ordering::Relaxed));
    ISR_VALUE.store(u32::from(status), Ordering::Relaxed);
    FIRED.store(true, Ordering::SeqCst);
    true
}

/// The disk, its INTx INTID and its address, set up with INTx enabled and routed to vCPU 0.
fn set_up(device_tree: &[u8]) -> Result<(VirtioPci, u32, pci::Function), &'static str> {
    let host = Host::from_device_tree(device_tree).map_err(|_| "no usable PCI host node")?;
    let function = host
        .find(VENDOR_VIRTIO, DEVICE_BLOCK)
        .ok_or("no virtio-blk-pci function")?;
    let intid = host
        .intx_intid(&function)
        .ok_or("no interrupt-map entry for the disk")?;
    let mut allocator = host.window_32().map(Allocator::new);
    let (disk, _) = VirtioPci::probe(&host, &function, &mut allocator)
        .map_err(|_| "virtio-pci probe failed")?;
    if disk.capacity() == 0 {
        return Err("the disk is empty");
    }
    gic::route_level_spi(intid, 0);
    function.set_command(function.command() & !pci::COMMAND_INTX_DISABLE);
    Ok((disk, intid, function))
}

/// The op: `run.iterations` reads of sector 0, each ended by the disk's INTx.
pub fn run(run: &Run, device_tree: Option<&[u8]>) {
    let Some(device_tree) = device_tree else {
        println!("bench: skip op=pci_intx reason=no_device_tree");
        return;
    };
    let (mut disk, intid, function) = match set_up(device_tree) {
        Ok(found) => found,
        Err(why) => {
            println!("bench: error: pci_intx: {why}");
            return;
        }
    };
    ISR.store(disk.isr_address(), Ordering::Relaxed);
    FIRED.store(false, Ordering::SeqCst);
    INTID.store(intid, Ordering::SeqCst);
    println!(
        "bench: pci_intx: virtio-blk-pci {function}, INTx on INTID {intid}, {} reads of sector 0",
        run.iterations
    );
    let request = Histogram::new(&REQUEST_BINS);
    let mut after_entry_el2 = 0u64;
    let mut failure = None;
    let before = Sample::now();
    for _ in 0..run.iterations {
        sys::mask_irq();
        FIRED.store(false, Ordering::SeqCst);
        let start = sys::el2_instructions();
        disk.submit_read(0);
        sys::unmask_irq();
        let fired = wait(|| {
            spin_yield();
            FIRED.load(Ordering::SeqCst)
        });
        let end = sys::el2_instructions();
        if !fired {
            failure = Some("the disk's interrupt never came");
            break;
        }
        if virtqueue::used_index() != disk.published() || virtqueue::last_status() != BLK_S_OK {
            failure = Some("the read did not complete with status OK");
            break;
        }
        if ISR_VALUE.load(Ordering::Relaxed) & ISR_QUEUE == 0 {
            failure = Some("the interrupt came without a used buffer");
            break;
        }
        after_entry_el2 += end.wrapping_sub(HANDLER_EL2.load(Ordering::Relaxed)) & 0xFFFF_FFFF;
        request.add(end.wrapping_sub(start) & 0xFFFF_FFFF);
    }
    let total = Sample::now().since(before);
    INTID.store(0, Ordering::SeqCst);
    function.set_command(function.command() | pci::COMMAND_INTX_DISABLE);
    if let Some(why) = failure {
        println!("bench: error: pci_intx: {why}");
        return;
    }
    if run.pmu.el2_instructions && !run.native {
        // The notify alone, on a queue with nothing new: the device finds no request and raises
        // no interrupt, so this is the EL2 cost of the BAR write itself.
        let mut notify_el2 = 0u64;
        for _ in 0..run.iterations {
            sys::mask_irq();
            let start = sys::el2_instructions();
            disk.notify();
            notify_el2 += sys::el2_instructions().wrapping_sub(start) & 0xFFFF_FFFF;
            sys::unmask_irq();
        }
        run.report(
            "pci_intx",
            total,
            format_args!(
                " intid={intid} el2_notify_per_op={} el2_after_entry_per_op={} el2_median={}",
                run.per_op(notify_el2),
                run.per_op(after_entry_el2),
                request.median()
            ),
        );
    } else {
        run.report("pci_intx", total, format_args!(" intid={intid}"));
    }
}
