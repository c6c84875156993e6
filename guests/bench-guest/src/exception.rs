//! Exceptions: the IRQ vector serves the benchmark's interrupts (SGIs, the virtual timer, the PCI
//! disk's INTx); anything else is reported and powers the machine (or cell) off.

use crate::entry::ExceptionFrame;
use crate::gic;
use crate::sys::{self, read_sysreg, write_sysreg};
use cellvisor_guest_support::println;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Vector number of "current EL with SP_ELx, IRQ" (offset 0x280).
const CURRENT_EL_SPX_IRQ: u64 = 5;

/// Set by vCPU 0's handler when the sibling's IPI reply arrived.
pub static IPI_REPLY: AtomicBool = AtomicBool::new(false);
/// Set by the handler when the virtual timer fired.
pub static TIMER_FIRED: AtomicBool = AtomicBool::new(false);
/// Sum of (handler entry − programmed deadline) over the timer interrupts taken, in ticks.
/// Only vCPU 0 writes it (plain load + store: no exclusives with the MMU off).
pub static TIMER_LATENCY: AtomicU64 = AtomicU64::new(0);

/// Called by the vector table with the saved registers, the vector number (0..15) and the
/// virtual counter read at the vector's first instruction.
pub extern "C" fn handle(frame: &mut ExceptionFrame, vector: u64, entry_ticks: u64) {
    if vector != CURRENT_EL_SPX_IRQ {
        println!(
            "bench: error: exception vector {vector} esr={:#x} elr={:#x} far={:#x}",
            read_sysreg!("esr_el1"),
            frame.elr,
            read_sysreg!("far_el1")
        );
        sys::system_off();
    }
    let interrupt = gic::acknowledge();
    if crate::pci_intx::handle_interrupt(interrupt.intid) {
        gic::end_of_interrupt(interrupt);
        return;
    }
    match interrupt.intid {
        gic::SGI_IPI => {
            if sys::vcpu_index() == 0 {
                IPI_REPLY.store(true, Ordering::SeqCst);
            } else {
                gic::send_sgi(gic::sgi_value(gic::SGI_IPI, 0));
            }
        }
        gic::VIRTUAL_TIMER => {
            let deadline = read_sysreg!("cntv_cval_el0");
            // Disable the timer so its level drops before the EOI.
            write_sysreg!("cntv_ctl_el0", 0);
            sys::isb();
            let latency = entry_ticks.saturating_sub(deadline);
            TIMER_LATENCY.store(
                TIMER_LATENCY.load(Ordering::Relaxed) + latency,
                Ordering::Relaxed,
            );
            TIMER_FIRED.store(true, Ordering::SeqCst);
        }
        gic::SPURIOUS => return,
        _ => {}
    }
    gic::end_of_interrupt(interrupt);
}
