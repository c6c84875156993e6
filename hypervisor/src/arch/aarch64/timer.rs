//! The guest's EL1 timers as EL2 sees them. In non-VHE EL2, CNTV_CTL_EL0 and CNTP_CTL_EL0 are the
//! EL1 virtual and physical timers of the vCPU loaded on this CPU (EL2 has its own, CNTHP_*), so
//! between an exit and the next entry they hold the guest's live timer state.

use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTV_CTL_EL0};
use tock_registers::LocalRegisterCopy;

use super::sysreg::read_sysreg;
use crate::drivers::counter::read_counter;

/// The platform's counter has the Allwinner A64 erratum (`allwinner,erratum-unknown1`).
static COUNTER_ERRATUM: AtomicBool = AtomicBool::new(false);

/// Makes every [`counter`] read work around the A64 counter erratum: set once at boot from the
/// platform DT's timer node.
pub fn set_counter_erratum(erratum: bool) {
    COUNTER_ERRATUM.store(erratum, Ordering::Relaxed);
}

/// The system counter (CNTPCT_EL0), read around the platform's erratum if it has one.
pub fn counter() -> u64 {
    read_counter(COUNTER_ERRATUM.load(Ordering::Relaxed), || {
        read_sysreg!("cntpct_el0")
    })
}

/// The system counter's frequency (CNTFRQ_EL0) in Hz.
pub fn frequency() -> u64 {
    read_sysreg!("cntfrq_el0")
}

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
