//! `timer-storm`: the EL1 physical timer left firing. The attacker enables PPI 30, sets
//! CNTP_CVAL_EL0 = 0 with the timer on and unmasked, so its condition holds for ever, and for two
//! seconds acknowledges and completes the interrupt as fast as it comes back: every completion
//! deactivates the physical PPI, which fires again at once, an exit to EL2 each time. The storm
//! stays on the attacker's own CPU (the victim keeps beating). Then it turns the timer off: the
//! interrupt must stop (its line is level). One instance may still arrive: the one cellvisor had
//! already put in a list register when the guest turned the timer off without an exit (a guest's
//! timer writes do not trap; docs/architecture.md, "Interrupts", as with KVM); any more is a
//! failure.

use core::arch::asm;

use super::probe::{Outcome, write32};
use super::{GICD, GICR, PREFIX, Verdict};
use cellvisor_guest_support::println;

/// The EL1 physical timer's PPI.
const PHYSICAL_TIMER_PPI: u32 = 30;
/// ICC_IAR1_EL1's answer when nothing is pending.
const SPURIOUS: u64 = 1023;

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 after an ISB has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    if value == 0 { 1_000_000_000 } else { value }
}

/// CNTP_CTL_EL0 and CNTP_CVAL_EL0.
fn physical_timer(control: u64, compare: u64) {
    // SAFETY: the EL1 physical timer is this guest's; IRQs stay masked, so its interrupt is only
    // ever polled.
    unsafe {
        asm!(
            "msr cntp_cval_el0, {compare}",
            "msr cntp_ctl_el0, {control}",
            "isb",
            compare = in(reg) compare,
            control = in(reg) control,
            options(nomem, nostack),
        );
    }
}

/// ICC_IAR1_EL1: the acknowledged INTID (with IRQs masked, nothing is taken: it is polled).
fn acknowledge() -> u64 {
    match try_read!("S3_0_C12_C12_0") {
        Outcome::Done(intid) => intid & 0xff_ffff,
        Outcome::Trapped { .. } => SPURIOUS,
    }
}

/// ICC_EOIR1_EL1 (EOImode 0: priority drop and deactivation, which deactivates the physical PPI).
fn complete(intid: u64) {
    let _ = try_write!("S3_0_C12_C12_1", intid);
}

pub(super) fn timer_storm() -> Verdict {
    let setup = [
        write32(GICD, 0x12),                // GICD_CTLR: ARE_NS | EnableGrp1NS
        write32(GICR + 0x14, 0),            // GICR_WAKER: ProcessorSleep = 0
        write32(GICR + 0x1_0080, u32::MAX), // GICR_IGROUPR0: group 1
        write32(GICR + 0x1_0100, 1 << PHYSICAL_TIMER_PPI), // GICR_ISENABLER0
        try_write!("S3_0_C4_C6_0", 0xFF),   // ICC_PMR_EL1
        try_write!("S3_0_C12_C12_7", 1),    // ICC_IGRPEN1_EL1
    ];
    if !setup
        .iter()
        .all(|outcome| matches!(outcome, Outcome::Done(_)))
    {
        return Err("GIC setup was refused");
    }
    // On, unmasked, compare value 0: the condition holds for ever.
    physical_timer(1, 0);
    let deadline = counter().saturating_add(frequency().saturating_mul(2));
    let mut taken = 0u64;
    while counter() < deadline {
        let intid = acknowledge();
        if intid == u64::from(PHYSICAL_TIMER_PPI) {
            taken += 1;
            complete(intid);
        } else if intid != SPURIOUS {
            complete(intid);
        }
    }
    // Off: the line drops, so nothing may stay pending or arrive afterwards.
    physical_timer(0, 0);
    let mut late = 0u64;
    for _ in 0..1000 {
        let intid = acknowledge();
        if intid == SPURIOUS {
            continue;
        }
        if intid == u64::from(PHYSICAL_TIMER_PPI) {
            late += 1;
        }
        complete(intid);
    }
    let _ = write32(GICR + 0x1_0180, 1 << PHYSICAL_TIMER_PPI); // GICR_ICENABLER0
    println!(
        "{PREFIX}timer-storm: {taken} physical timer interrupts in 2 s, {late} after the timer was turned off"
    );
    match (taken, late) {
        (0, _) => Err("the physical timer never fired"),
        (_, 0 | 1) => Ok("the storm stayed on the attacker's CPU and stopped with the timer"),
        _ => Err("the interrupt kept coming after the timer was turned off"),
    }
}
