//! PSCI calls from cellvisor to the platform firmware (SMC or HVC, as the platform DT says).

use core::arch::asm;

/// The firmware's PSCI conduit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `smc #0` (QEMU virt with virtualization=on, real phones).
    Smc,
    /// `hvc #0` (only when cellvisor itself runs below a hypervisor, e.g. at EL1).
    Hvc,
}

const PSCI_CPU_ON_64: u64 = 0xC400_0003;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;

/// Makes an SMCCC call with three arguments and returns x0.
fn call(conduit: Conduit, function: u64, arg1: u64, arg2: u64, arg3: u64) -> i64 {
    let mut x0 = function;
    match conduit {
        // SAFETY: an SMCCC call to firmware preserves x4-x17 and x18-x30 for SMCCC ≥ 1.1 callers;
        // x0-x3 are declared clobbered. The functions used here do not touch our memory.
        Conduit::Smc => unsafe {
            asm!("smc #0", inout("x0") x0, inout("x1") arg1 => _, inout("x2") arg2 => _, inout("x3") arg3 => _, options(nostack));
        },
        // SAFETY: as above, through the HVC conduit.
        Conduit::Hvc => unsafe {
            asm!("hvc #0", inout("x0") x0, inout("x1") arg1 => _, inout("x2") arg2 => _, inout("x3") arg3 => _, options(nostack));
        },
    }
    x0 as i64
}

/// Starts physical CPU `mpidr` at `entry` (a physical address) with x0 = `context`.
/// Returns the PSCI status (0 = success).
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> i64 {
    call(conduit, PSCI_CPU_ON_64, mpidr, entry, context)
}

/// Powers the machine off. Does not return on success; spins in WFI if firmware refuses.
pub fn system_off(conduit: Conduit) -> ! {
    call(conduit, PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        super::sysreg::wfi();
    }
}

/// Resets the machine.
pub fn system_reset(conduit: Conduit) -> ! {
    call(conduit, PSCI_SYSTEM_RESET, 0, 0, 0);
    loop {
        super::sysreg::wfi();
    }
}
