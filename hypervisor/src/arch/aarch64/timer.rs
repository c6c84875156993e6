//! The guest's EL1 timers as EL2 sees them. In non-VHE EL2, CNTV_CTL_EL0 and CNTP_CTL_EL0 are the
//! EL1 virtual and physical timers of the vCPU loaded on this CPU (EL2 has its own, CNTHP_*), so
//! between an exit and the next entry they hold the guest's live timer state.

use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTV_CTL_EL0};
use tock_registers::LocalRegisterCopy;

use super::sysreg::read_sysreg;

/// Whether the guest's EL1 virtual timer asserts its interrupt: enabled, condition met
/// (`ISTATUS`, meaningful only while enabled) and not masked by `IMASK`.
pub fn virtual_timer_asserted() -> bool {
    let ctl = LocalRegisterCopy::<u64, CNTV_CTL_EL0::Register>::new(read_sysreg!("cntv_ctl_el0"));
    ctl.is_set(CNTV_CTL_EL0::ENABLE)
        && ctl.is_set(CNTV_CTL_EL0::ISTATUS)
        && !ctl.is_set(CNTV_CTL_EL0::IMASK)
}

/// Whether the guest's EL1 physical timer asserts its interrupt (as [`virtual_timer_asserted`]).
pub fn physical_timer_asserted() -> bool {
    let ctl = LocalRegisterCopy::<u64, CNTP_CTL_EL0::Register>::new(read_sysreg!("cntp_ctl_el0"));
    ctl.is_set(CNTP_CTL_EL0::ENABLE)
        && ctl.is_set(CNTP_CTL_EL0::ISTATUS)
        && !ctl.is_set(CNTP_CTL_EL0::IMASK)
}
