//! System-register access: `read_sysreg!`/`write_sysreg!` and `unsafe fn` wrappers for the registers
//! that change how EL2 or a guest runs (HCR_EL2, VTTBR_EL2, SCTLR_EL2, ...).

use aarch64_cpu::registers::MPIDR_EL1;
use tock_registers::LocalRegisterCopy;

/// Reads a system register by its assembler name (e.g. `"esr_el2"` or `"s3_0_c12_c12_0"`).
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading a system register has no side effects on memory; the registers read
        // through this macro are read-only observations (syndromes, IDs, counters, GIC state).
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags));
        }
        value
    }};
}
pub(crate) use read_sysreg;

/// Writes a system register by its assembler name. Callers are `unsafe fn`s whose contract
/// covers the register's effect.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nostack, preserves_flags));
    }};
}
pub(crate) use write_sysreg;

/// Instruction synchronization barrier.
pub fn isb() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) }
}

/// Data synchronization barrier, inner shareable.
pub fn dsb_ish() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) }
}

/// Data synchronization barrier, full system.
pub fn dsb_sy() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) }
}

/// Sends an event to every CPU (wakes a `wfe`, as a spin table's waiting loop uses).
pub fn sev() {
    // SAFETY: SEV only sets the event register of every PE.
    unsafe { core::arch::asm!("sev", options(nomem, nostack, preserves_flags)) };
}

/// Wait for interrupt (wakes on any pending physical interrupt even while masked at EL2).
pub fn wfi() {
    // SAFETY: WFI only pauses this CPU.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) }
}

/// Sets HCR_EL2.
///
/// # Safety
/// Controls which guest operations trap and how stage 2 applies; the caller sets a value that
/// keeps every guest confined (VM=1 with a valid VTTBR_EL2 before entering a guest).
pub unsafe fn set_hcr_el2(value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { write_sysreg!("hcr_el2", value) };
}

/// Sets VTTBR_EL2 (stage-2 root and VMID) and VTCR_EL2.
///
/// # Safety
/// `vttbr` must hold the root of a valid stage-2 table whose every mapping belongs to the cell
/// about to run on this CPU, and `vtcr` must describe that table's format.
pub unsafe fn set_stage2(vttbr: u64, vtcr: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        write_sysreg!("vtcr_el2", vtcr);
        write_sysreg!("vttbr_el2", vttbr);
    }
    isb();
}

/// Sets SCTLR_EL2 (EL2's own MMU and caches).
///
/// # Safety
/// Turning the MMU on requires TTBR0_EL2/TCR_EL2/MAIR_EL2 to describe an identity map of all code
/// and data in use.
pub unsafe fn set_sctlr_el2(value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { write_sysreg!("sctlr_el2", value) };
    isb();
}

/// This CPU's MPIDR_EL1 affinity (Aff3..Aff0 in their MPIDR positions, every other bit clear),
/// as the platform device tree's `/cpus` `reg` values give it.
pub fn mpidr() -> u64 {
    let mpidr = LocalRegisterCopy::<u64, MPIDR_EL1::Register>::new(read_sysreg!("mpidr_el1"));
    (MPIDR_EL1::Aff3.val(mpidr.read(MPIDR_EL1::Aff3))
        + MPIDR_EL1::Aff2.val(mpidr.read(MPIDR_EL1::Aff2))
        + MPIDR_EL1::Aff1.val(mpidr.read(MPIDR_EL1::Aff1))
        + MPIDR_EL1::Aff0.val(mpidr.read(MPIDR_EL1::Aff0)))
    .value
}

/// Current exception level (0..=3).
pub fn current_el() -> u64 {
    (read_sysreg!("CurrentEL") >> 2) & 3
}
