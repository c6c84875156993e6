//! `serror`: what a guest can do around SErrors. With HCR_EL2.AMO set, physical SErrors go to EL2
//! and the guest's ESB and DISR_EL1 act on the *virtual* SError state (VDISR_EL2): ESB completes,
//! DISR_EL1 reads 0 until the guest writes it, and a value the guest writes there (even with its
//! "SError deferred" bit A set) is a record, not a pending SError. No SError may ever be delivered
//! while PSTATE.A is unmasked: cellvisor only makes one pending (HCR_EL2.VSE) when a physical
//! SError arrives while the guest runs, and QEMU cannot raise a physical SError (TCG models
//! external aborts as synchronous, and the CPU has no SError input).

use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{Outcome, last_trap, trap_count};
use super::{PREFIX, Verdict};

/// DISR_EL1.A (a deferred SError recorded) and the bits a write keeps: A, IDS and the syndrome.
const DISR_A: u64 = 1 << 31;
const DISR_WRITABLE: u64 = DISR_A | (1 << 24) | 0xFF_FFFF;
/// A syndrome to write: A, IDS = 0, AET = UER (0b010), EA = 1, DFSC = 0b010001 (asynchronous
/// SError).
const DISR_PATTERN: u64 = DISR_A | (0b010 << 10) | (1 << 9) | 0x11;

fn esb() {
    // SAFETY: ESB (hint #16, a NOP without FEAT_RAS) only synchronizes pending SErrors into
    // DISR_EL1 (VDISR_EL2 under AMO); it touches no memory.
    unsafe { asm!("hint #16", "isb", options(nomem, nostack)) };
}

/// Unmasks SErrors (PSTATE.A) for a while, runs ESB in the middle, masks them again.
fn unmasked_window() {
    // SAFETY: unmasking PSTATE.A only lets a pending SError be taken, which the recording vector
    // table counts and returns from; nothing else changes.
    unsafe { asm!("msr daifclr, #4", "isb", options(nomem, nostack)) };
    let start = crate::timer::Instant::now().after_ms(20);
    esb();
    while !start.has_passed() {
        core::hint::spin_loop();
    }
    esb();
    // SAFETY: masks SErrors again, as the attack code normally runs.
    unsafe { asm!("msr daifset, #4", "isb", options(nomem, nostack)) };
}

pub(super) fn serror() -> Verdict {
    let pfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
    let ras = (pfr0 >> 28) & 0xF;
    let before = trap_count();
    let mut ok = true;
    esb();
    unmasked_window();
    if ras == 0 {
        println!("{PREFIX}serror: no FEAT_RAS: ESB is a NOP, DISR_EL1 does not exist");
    } else {
        // DISR_EL1 is S3_0_C12_C1_1 (VDISR_EL2 under HCR_EL2.AMO).
        let first = try_read!("S3_0_C12_C1_1");
        let wrote = try_write!("S3_0_C12_C1_1", DISR_PATTERN);
        let back = try_read!("S3_0_C12_C1_1");
        // A recorded SError with A set is not a pending one: nothing may be taken.
        unmasked_window();
        esb();
        let still = try_read!("S3_0_C12_C1_1");
        let cleared = try_write!("S3_0_C12_C1_1", 0);
        let last = try_read!("S3_0_C12_C1_1");
        println!(
            "{PREFIX}serror: RAS {ras}: DISR_EL1 {first}; write {DISR_PATTERN:#x} ({wrote}) reads {back}, after an unmasked window and ESB {still}; cleared ({cleared}) reads {last}"
        );
        ok &= matches!(first, Outcome::Done(0));
        ok &= matches!(back, Outcome::Done(value) if value & DISR_WRITABLE == DISR_PATTERN);
        ok &= matches!((back, still), (Outcome::Done(a), Outcome::Done(b)) if a == b);
        ok &= matches!(last, Outcome::Done(0));
        ok &= [wrote, cleared]
            .iter()
            .all(|outcome| matches!(outcome, Outcome::Done(_)));
    }
    let after = trap_count();
    if after != before {
        let (esr, far, vector) = last_trap();
        println!(
            "{PREFIX}serror: {} exceptions taken, the last esr={esr:#x} far={far:#x} vector {vector}",
            after - before
        );
        return Err("an exception (SError?) was taken with nothing to cause it");
    }
    println!("{PREFIX}serror: no SError or other exception taken with PSTATE.A unmasked");
    if ok {
        Ok("ESB completes, DISR_EL1 is the guest's virtual record, no SError is delivered")
    } else {
        Err("DISR_EL1 did not behave as the guest's own record")
    }
}
