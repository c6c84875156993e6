//! Broken exception state: a VBAR_EL1 nobody maps, and an SP that makes every exception abort.

use crate::psci;
use cellvisor_guest_support::println;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use super::power::start_vcpu1;
use super::{JOB_BOGUS_VBAR, PREFIX, Verdict};

/// Set by vCPU 1 once it has printed its `bogus-vbar` line: the console has no lock, so vCPU 0
/// waits for it before printing again (two vCPUs writing at once mix their bytes in one line).
static BOGUS_VBAR_ANNOUNCED: AtomicU32 = AtomicU32::new(0);

pub(super) fn bogus_vbar() -> Verdict {
    let started = start_vcpu1(JOB_BOGUS_VBAR);
    if started != psci::SUCCESS {
        println!("{PREFIX}bogus-vbar: cpu_on(1) returned {started}");
        return Err("could not start vcpu 1");
    }
    let deadline = crate::timer::Instant::now().after_ms(5_000);
    while BOGUS_VBAR_ANNOUNCED.load(Ordering::SeqCst) == 0 {
        if deadline.has_passed() {
            return Err("vcpu 1 did not announce its exception loop within 5 s");
        }
    }
    Ok("vcpu 1 launched into an endless exception loop")
}

pub(super) fn bogus_vbar_secondary() -> ! {
    println!("{PREFIX}bogus-vbar: vcpu 1 sets VBAR_EL1=0x444444444444 and reads 0x90000000");
    BOGUS_VBAR_ANNOUNCED.store(1, Ordering::SeqCst);
    // SAFETY: deliberately breaks this vCPU: the abort goes to an unmapped vector, whose fetch
    // aborts again, forever. Nothing returns from here.
    unsafe {
        asm!("msr vbar_el1, {v}", "isb", "ldr x9, [{a}]", "1: b 1b", v = in(reg) 0x4444_4444_4444u64,
            a = in(reg) 0x9000_0000u64, options(noreturn, nostack))
    }
}

pub(super) fn bogus_stack() -> ! {
    println!("{PREFIX}bogus-sp: vcpu 0 sets SP=0x90000000 and raises an undefined instruction");
    // SAFETY: deliberately breaks this vCPU: the exception's frame push aborts at a foreign
    // address, whose abort pushes again, forever. Nothing returns from here.
    unsafe {
        asm!("mov sp, {s}", "udf #0", "1: b 1b", s = in(reg) 0x9000_0000u64, options(noreturn))
    }
}
