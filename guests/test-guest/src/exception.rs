//! Exceptions: the data aborts the isolation probes expect are recorded and skipped, the IRQs of
//! `test=sgis`, `test=spis`, `test=timer-levels` and `test=switch` go to their handlers; anything else is reported
//! and powers the cell off.

use crate::entry::ExceptionFrame;
use crate::lines;
use cellvisor_guest_support::println;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// ESR_ELx.EC of a data abort taken without a change in exception level.
pub const EC_DATA_ABORT_SAME_EL: u64 = 0x25;
/// ESR_ELx.ISS.DFSC of a synchronous external abort not on a translation table walk.
pub const DFSC_SYNC_EXTERNAL_ABORT: u64 = 0x10;
/// Vector number (0..15, in table order) of "current EL with SP_ELx, synchronous" (offset 0x200).
const CURRENT_EL_SPX_SYNC: u64 = 4;
/// Vector number of "current EL with SP_ELx, IRQ" (offset 0x280).
const CURRENT_EL_SPX_IRQ: u64 = 5;

const VECTOR_NAMES: [&str; 16] = [
    "current EL SP0 sync",
    "current EL SP0 irq",
    "current EL SP0 fiq",
    "current EL SP0 serror",
    "current EL SPx sync",
    "current EL SPx irq",
    "current EL SPx fiq",
    "current EL SPx serror",
    "lower EL AArch64 sync",
    "lower EL AArch64 irq",
    "lower EL AArch64 fiq",
    "lower EL AArch64 serror",
    "lower EL AArch32 sync",
    "lower EL AArch32 irq",
    "lower EL AArch32 fiq",
    "lower EL AArch32 serror",
];

/// Set while a probe access runs; the handler clears it when it takes the probe's abort.
/// Only the probing vCPU touches these (plain loads and stores, no exclusives with the MMU off).
static PROBE_ARMED: AtomicBool = AtomicBool::new(false);
static PROBE_ESR: AtomicU64 = AtomicU64::new(0);
static PROBE_FAR: AtomicU64 = AtomicU64::new(0);

/// The syndrome of an abort a probe took.
#[derive(Clone, Copy)]
pub struct Abort {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
}

impl Abort {
    /// ESR_EL1.EC.
    pub fn exception_class(self) -> u64 {
        (self.esr >> 26) & 0x3F
    }

    /// ESR_EL1.ISS.DFSC.
    pub fn fault_status(self) -> u64 {
        self.esr & 0x3F
    }
}

/// A probe access.
#[derive(Clone, Copy)]
pub enum Access {
    /// A 64-bit load.
    Read,
    /// A 64-bit store.
    Write,
}

/// Makes one 64-bit access to `address` and returns the data abort it raised, if any; a read
/// that did not abort returns what it read.
pub fn probe(address: u64, access: Access) -> Result<Abort, u64> {
    PROBE_ARMED.store(true, Ordering::SeqCst);
    let mut value = 0x7E57_6E57_u64;
    match access {
        // SAFETY: `address` lies outside the memory this guest uses, so no Rust object is read
        // or written; if the access aborts, `handle` skips exactly this one instruction.
        Access::Read => unsafe {
            core::arch::asm!("ldr {value}, [{address}]", address = in(reg) address,
                value = inout(reg) value, options(nostack));
        },
        // SAFETY: as for the read.
        Access::Write => unsafe {
            core::arch::asm!("str {value}, [{address}]", address = in(reg) address,
                value = in(reg) value, options(nostack));
        },
    }
    if PROBE_ARMED.load(Ordering::SeqCst) {
        PROBE_ARMED.store(false, Ordering::SeqCst);
        Err(value)
    } else {
        Ok(Abort {
            esr: PROBE_ESR.load(Ordering::SeqCst),
            far: PROBE_FAR.load(Ordering::SeqCst),
        })
    }
}

/// Makes one 32-bit load from `address` (a device register that takes only 32-bit accesses) and
/// returns the data abort it raised, if any, or else what it read.
pub fn probe_read32(address: u64) -> Result<Abort, u32> {
    PROBE_ARMED.store(true, Ordering::SeqCst);
    let mut value = 0x7E57_6E57_u32;
    // SAFETY: as for `probe`: `address` is a device register or lies outside the memory this
    // guest uses; if the load aborts, `handle` skips exactly this one instruction.
    unsafe {
        core::arch::asm!("ldr {value:w}, [{address}]", address = in(reg) address,
            value = inout(reg) value, options(nostack));
    }
    probe_result(value)
}

/// Makes one 32-bit store of `value` to `address` and returns the data abort it raised, if any.
pub fn probe_write32(address: u64, value: u32) -> Option<Abort> {
    PROBE_ARMED.store(true, Ordering::SeqCst);
    // SAFETY: as for `probe_read32`.
    unsafe {
        core::arch::asm!("str {value:w}, [{address}]", address = in(reg) address,
            value = in(reg) value, options(nostack));
    }
    probe_result(()).ok()
}

/// The abort the armed probe took, if it took one (it disarms it), or else `value`.
fn probe_result<T>(value: T) -> Result<Abort, T> {
    if PROBE_ARMED.load(Ordering::SeqCst) {
        PROBE_ARMED.store(false, Ordering::SeqCst);
        Err(value)
    } else {
        Ok(Abort {
            esr: PROBE_ESR.load(Ordering::SeqCst),
            far: PROBE_FAR.load(Ordering::SeqCst),
        })
    }
}

fn esr_el1() -> u64 {
    let value: u64;
    // SAFETY: reading ESR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, esr_el1", out(reg) value, options(nomem, nostack)) };
    value
}

fn far_el1() -> u64 {
    let value: u64;
    // SAFETY: reading FAR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, far_el1", out(reg) value, options(nomem, nostack)) };
    value
}

/// Called by the vector table with the saved registers and the vector number (0..15).
pub extern "C" fn handle(frame: &mut ExceptionFrame, vector: u64) {
    if vector == CURRENT_EL_SPX_IRQ
        && (crate::sgis::handle_irq()
            || crate::spis::handle_irq()
            || crate::timer_levels::handle_irq()
            || crate::switch::handle_irq())
    {
        return;
    }
    let esr = esr_el1();
    let far = far_el1();
    let expected = vector == CURRENT_EL_SPX_SYNC
        && (esr >> 26) & 0x3F == EC_DATA_ABORT_SAME_EL
        && PROBE_ARMED.load(Ordering::SeqCst);
    if expected {
        PROBE_ESR.store(esr, Ordering::SeqCst);
        PROBE_FAR.store(far, Ordering::SeqCst);
        PROBE_ARMED.store(false, Ordering::SeqCst);
        // Skip the probe's single load or store.
        frame.elr += 4;
        return;
    }
    let name = usize::try_from(vector)
        .ok()
        .and_then(|index| VECTOR_NAMES.get(index));
    println!(
        "test-guest: exception {} esr={esr:#x} elr={:#x} far={far:#x} spsr={:#x}",
        name.unwrap_or(&"?"),
        frame.elr,
        frame.spsr
    );
    println!("{}", lines::FAIL_UNEXPECTED_EXCEPTION);
    crate::psci::system_off();
}
