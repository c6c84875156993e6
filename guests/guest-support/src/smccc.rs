//! SMCCC calls through HVC.

/// Makes an SMCCC call through HVC with up to three arguments and returns x0.
#[inline(always)]
pub fn hvc(function: u32, arg1: u64, arg2: u64, arg3: u64) -> i64 {
    let result: u64;
    // SAFETY: HVC traps to the hypervisor (or, for a guest run natively, QEMU's PSCI firmware),
    // which answers in x0..x3 and touches no guest memory for the calls the guests make. x4..x17
    // are marked clobbered because SMCCC 1.0 does not preserve them.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") u64::from(function) => result,
            inout("x1") arg1 => _,
            inout("x2") arg2 => _,
            inout("x3") arg3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    result as i64
}
