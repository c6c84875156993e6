//! `test=sgis`: no lost interrupts. vCPU 0 sends [`ROUNDS`] SGIs to vCPU 1 one at a time, each
//! only after vCPU 1's IRQ handler counted the one before, first while vCPU 1 spins with IRQs
//! unmasked (it never exits to cellvisor, so it completes each SGI in its list register without
//! cellvisor seeing it), then while it waits in WFI between SGIs. A lost SGI stops that mode with
//! `test-guest: FAIL sgi-<mode>: SGI <index> did not arrive ...`; each mode ends with
//! `test-guest: sgi-<mode> <received>/<ROUNDS> in <N> ms` (see `lines`; the time is for
//! whoever reads the log, nothing checks it). The QEMU side is
//! tests/tests/foundation.rs `sgis_reach_a_spinning_and_an_idle_sibling`.
//!
//! Only vCPU 1 writes [`RECEIVED`] and [`IDLE_AT`], only vCPU 0 writes [`PHASE`]: plain loads and
//! stores, no exclusives.

use crate::{lines, psci, timer};
use cellvisor_guest_support::println;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

/// CPU_ON context id that makes vCPU 1 the receiver.
const CONTEXT_ID: u64 = 0xC0DE_5610;
/// SGIs per mode.
pub const ROUNDS: u32 = 10_000;
/// The SGI sent.
const SGI_INTID: u32 = 1;
/// ICC_IAR1_EL1's answer when nothing is pending.
const SPURIOUS_INTID: u32 = 1023;

/// GICv3 distributor and redistributors as QEMU `virt` places them (and a cell sees them).
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;
/// Bytes per redistributor (RD frame and SGI frame).
const GICR_STRIDE: u64 = 0x2_0000;
/// GICD_CTLR and its ARE_NS | EnableGrp1NS bits.
const GICD_CTLR: u64 = 0x0;
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1);
/// GICR_WAKER and its ProcessorSleep and ChildrenAsleep bits.
const GICR_WAKER: u64 = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_IGROUPR0 and GICR_ISENABLER0, in the SGI frame.
const GICR_IGROUPR0: u64 = 0x1_0080;
const GICR_ISENABLER0: u64 = 0x1_0100;

/// What vCPU 1 does, set by vCPU 0.
static PHASE: AtomicU32 = AtomicU32::new(PHASE_STARTING);
const PHASE_STARTING: u32 = 0;
/// Busy loop with IRQs unmasked.
const PHASE_SPIN: u32 = 1;
/// WFI with IRQs masked, unmasking after each wake-up.
const PHASE_WFI: u32 = 2;

/// SGIs vCPU 1's handler took, in both modes together.
static RECEIVED: AtomicU32 = AtomicU32::new(0);
/// vCPU 1's GIC is set up and its IRQs are unmasked: it is in the phase loop.
static READY: AtomicU32 = AtomicU32::new(0);
/// [`RECEIVED`] as vCPU 1 saw it just before its last WFI (plus one, so 0 means "not yet").
static IDLE_AT: AtomicU32 = AtomicU32::new(0);

fn read32(address: u64) -> u32 {
    // SAFETY: `address` is a GIC register in the device window every cell maps; it touches no
    // Rust object, and reads of the registers used here have no side effects.
    unsafe { (address as *const u32).read_volatile() }
}

fn write32(address: u64, value: u32) {
    // SAFETY: `address` is a GIC register in the device window; it touches no Rust object.
    unsafe { (address as *mut u32).write_volatile(value) }
}

/// Sends SGI `intid` to the vCPU with Aff0 `target` (Aff3..1 = 0) through ICC_SGI1R_EL1.
fn send_sgi(intid: u32, target: u32) {
    let value = u64::from(intid) << 24 | 1 << target;
    // SAFETY: ICC_SGI1R_EL1 is trapped by cellvisor and turned into a virtual SGI in this cell;
    // the DSB orders the counter reads before it, as a real IPI sender would.
    unsafe { asm!("dsb sy", "msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nostack)) };
}

/// ICC_IAR1_EL1: acknowledges the highest-priority pending group-1 interrupt.
fn acknowledge() -> u32 {
    let value: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt (the caller ends it); no memory.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) value, options(nomem, nostack)) };
    (value & 0xFF_FFFF) as u32
}

/// ICC_EOIR1_EL1: ends (EOImode 0: also deactivates) `intid`.
fn end_of_interrupt(intid: u32) {
    // SAFETY: ends the interrupt this vCPU acknowledged; no memory.
    unsafe { asm!("msr S3_0_C12_C12_1, {}", in(reg) u64::from(intid), options(nomem, nostack)) };
}

fn mask_irq() {
    // SAFETY: sets PSTATE.I; the compiler may not move memory accesses across it.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

fn unmask_irq() {
    // SAFETY: clears PSTATE.I; the IRQ vector (`handle_irq`) is in place from `cpu_setup`.
    unsafe { asm!("msr daifclr, #2", options(nostack)) };
}

fn wfi() {
    // SAFETY: waits for an interrupt (trapped by cellvisor); no memory or register effects.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}

/// Wakes this vCPU's redistributor, makes SGI [`SGI_INTID`] group 1 and enables it, and opens the
/// CPU interface (system registers, priority mask, group 1).
fn init_this_cpu(index: u64) {
    let frame = GICR + index * GICR_STRIDE;
    write32(
        frame + GICR_WAKER,
        read32(frame + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    // Bounded: a redistributor that never wakes shows as a lost SGI.
    let _ = timer::wait_until(crate::WAIT_MS, || {
        read32(frame + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0
    });
    write32(frame + GICR_IGROUPR0, u32::MAX);
    write32(frame + GICR_ISENABLER0, 1 << SGI_INTID);
    // SAFETY: ICC_SRE_EL1 = SRE | DFB | DIB (the system-register interface), ICC_PMR_EL1 = 0xFF
    // (every priority) and ICC_IGRPEN1_EL1 = 1 only configure this vCPU's CPU interface.
    unsafe {
        asm!(
            "msr S3_0_C12_C12_5, {sre}",
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",
            "msr S3_0_C12_C12_7, {enable}",
            "isb",
            sre = in(reg) 0x7u64,
            pmr = in(reg) 0xFFu64,
            enable = in(reg) 1u64,
            options(nomem, nostack),
        )
    };
}

/// The IRQ vector's work: acknowledges and ends every pending interrupt, counting SGI
/// [`SGI_INTID`] after its EOI (so the next one is sent after a completion cellvisor did not see).
/// Returns whether the IRQ was expected: only vCPU 1 in this test takes IRQs.
pub fn handle_irq() -> bool {
    if READY.load(Ordering::SeqCst) == 0 {
        return false;
    }
    loop {
        let intid = acknowledge();
        if intid == SPURIOUS_INTID {
            return true;
        }
        end_of_interrupt(intid);
        if intid == SGI_INTID {
            RECEIVED.store(RECEIVED.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        } else {
            println!("{}sgi: vcpu 1 took interrupt {intid}", lines::FAIL);
        }
    }
}

/// vCPU 1's job if `context_id` says so: the receiver loop (never returns).
pub fn secondary(context_id: u64, index: u64) {
    if context_id != CONTEXT_ID {
        return;
    }
    init_this_cpu(index);
    READY.store(1, Ordering::SeqCst);
    unmask_irq();
    loop {
        match PHASE.load(Ordering::SeqCst) {
            PHASE_WFI => {
                // Masked across the WFI so an SGI that lands between the store and the WFI stays
                // pending and makes the WFI return at once (as an OS idle loop does).
                mask_irq();
                IDLE_AT.store(RECEIVED.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
                wfi();
                unmask_irq();
            }
            _ => core::hint::spin_loop(),
        }
    }
}

/// vCPU 0: starts vCPU 1 as the receiver, runs both modes and prints their lines.
pub fn run() {
    write32(GICD + GICD_CTLR, GICD_CTLR_ENABLE);
    let entry = crate::entry::secondary_entry as *const () as u64;
    let result = psci::cpu_on(1, entry, CONTEXT_ID);
    if result != psci::SUCCESS {
        println!("{}sgi: cpu_on(1) returned {result}", lines::FAIL);
        return;
    }
    if !timer::wait_until(crate::WAIT_MS, || READY.load(Ordering::SeqCst) == 1) {
        println!("{}sgi: vcpu 1 did not come online", lines::FAIL);
        return;
    }
    for (phase, line, mode) in [
        (PHASE_SPIN, lines::SGI_SPIN, "spin"),
        (PHASE_WFI, lines::SGI_WFI, "wfi"),
    ] {
        PHASE.store(phase, Ordering::SeqCst);
        let start = timer::Instant::now();
        let received = send_all(phase, mode);
        println!("{line}{received}/{ROUNDS} in {} ms", start.elapsed_ms());
    }
}

/// Sends [`ROUNDS`] SGIs to vCPU 1, each once the previous one was counted; returns how many
/// arrived before the first that did not (within [`crate::WAIT_MS`]).
fn send_all(phase: u32, mode: &str) -> u32 {
    let base = RECEIVED.load(Ordering::SeqCst);
    for index in 0..ROUNDS {
        let before = base + index;
        if phase == PHASE_WFI
            && !timer::wait_until(crate::WAIT_MS, || {
                IDLE_AT.load(Ordering::SeqCst) == before + 1
            })
        {
            println!(
                "{}sgi-{mode}: vcpu 1 did not go back to WFI before SGI {index}",
                lines::FAIL
            );
            return index;
        }
        send_sgi(SGI_INTID, 1);
        if !timer::wait_until(crate::WAIT_MS, || RECEIVED.load(Ordering::SeqCst) != before) {
            println!(
                "{}sgi-{mode}: SGI {index} did not arrive within {} ms ({} received in all)",
                lines::FAIL,
                crate::WAIT_MS,
                RECEIVED.load(Ordering::SeqCst)
            );
            return index;
        }
        let after = RECEIVED.load(Ordering::SeqCst);
        if after != before + 1 {
            println!(
                "{}sgi-{mode}: SGI {index} was taken {} times",
                lines::FAIL,
                after - before
            );
            return index;
        }
    }
    ROUNDS
}
