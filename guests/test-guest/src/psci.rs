//! SMCCC calls through HVC and the PSCI functions the guest uses.

/// PSCI_VERSION.
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// CPU_OFF.
pub const CPU_OFF: u32 = 0x8400_0002;
/// CPU_ON, SMC64 calling convention.
pub const CPU_ON: u32 = 0xC400_0003;
/// AFFINITY_INFO, SMC64 calling convention.
pub const AFFINITY_INFO: u32 = 0xC400_0004;
/// SYSTEM_OFF.
pub const SYSTEM_OFF: u32 = 0x8400_0008;

/// PSCI return codes.
pub const SUCCESS: i64 = 0;
/// SMCCC / PSCI NOT_SUPPORTED.
pub const NOT_SUPPORTED: i64 = -1;
/// PSCI INVALID_PARAMETERS.
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI ALREADY_ON.
pub const ALREADY_ON: i64 = -4;
/// PSCI INVALID_ADDRESS.
pub const INVALID_ADDRESS: i64 = -9;

/// AFFINITY_INFO result: the vCPU is off.
pub const AFFINITY_OFF: i64 = 1;

pub use cellvisor_guest_support::smccc::hvc;

/// PSCI CPU_ON of the vCPU with MPIDR `target`.
pub fn cpu_on(target: u64, entry: u64, context_id: u64) -> i64 {
    hvc(CPU_ON, target, entry, context_id)
}

/// PSCI AFFINITY_INFO of the vCPU with MPIDR `target` (affinity level 0).
pub fn affinity_info(target: u64) -> i64 {
    hvc(AFFINITY_INFO, target, 0, 0)
}

/// PSCI SYSTEM_OFF; returns only if the call failed (then parks the vCPU).
pub fn system_off() -> ! {
    let result = hvc(SYSTEM_OFF, 0, 0, 0);
    cellvisor_guest_support::println!("{}{result}", crate::lines::FAIL_SYSTEM_OFF);
    park()
}

/// PSCI CPU_OFF for the calling vCPU; parks if the call fails.
pub fn cpu_off() -> ! {
    let result = hvc(CPU_OFF, 0, 0, 0);
    cellvisor_guest_support::println!("{}{result}", crate::lines::FAIL_CPU_OFF);
    park()
}

/// Waits for events forever.
pub fn park() -> ! {
    loop {
        aarch64_wfe();
    }
}

fn aarch64_wfe() {
    // SAFETY: WFE only waits for an event; it has no memory or register effects.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack, preserves_flags)) };
}
