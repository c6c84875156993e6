//! `test=timer-levels`: a level-sensitive interrupt follows its line. For each EL1 timer (the
//! virtual timer, PPI 27, and the physical timer, PPI 30) and each way its interrupt condition can
//! end (the timer disabled, its interrupt masked by `IMASK`, `CVAL` moved into the future), vCPU 0
//! disables the PPI at its redistributor (`GICR_ICENABLER0`), lets the timer fire, waits until
//! `GICR_ISPENDR0` shows the PPI pending, ends the condition, and then checks that
//! `GICR_ISPENDR0` and `GICR_ICPENDR0` no longer show it, that `GICR_ISACTIVER0` never did, and
//! that re-enabling the PPI with IRQs unmasked delivers nothing. A control case per timer keeps
//! the condition: the PPI stays pending and is taken exactly once when enabled.
//!
//! Each case prints `test-guest: timer-levels <timer> <case> ok` or
//! `test-guest: FAIL timer-levels <timer> <case>: <what>`, and the mode ends with
//! `test-guest: timer-levels <passed>/<cases> ok` (see `lines`). The same guest behaves the same
//! on plain QEMU, where the GIC and the timers are QEMU's own. The QEMU side is
//! tests/tests/foundation.rs `level_timer_interrupts_follow_their_line`.
//!
//! Only vCPU 0 runs this mode; its IRQ handler and its main line share the statics below.

use crate::gic::{self, Bits, SPURIOUS_INTID};
use crate::{lines, timer};
use cellvisor_guest_support::println;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The redistributor of vCPU 0 (Aff0 0).
const VCPU0: u64 = 0;
/// `CNTx_CTL_EL0.ENABLE`.
const CTL_ENABLE: u64 = 1 << 0;
/// `CNTx_CTL_EL0.IMASK`.
const CTL_IMASK: u64 = 1 << 1;
/// How long a timer may take to fire once its deadline has passed.
const FIRE_MS: u64 = 1_000;
/// How long an interrupt that should not come is waited for once it could be taken.
const QUIET_MS: u64 = 50;
/// How far into the future `CVAL` moves (far beyond the case's end, when the timer is disabled).
const FUTURE_MS: u64 = 60_000;

/// Set while this mode takes IRQs.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Interrupts the handler took of the timer under test.
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// Interrupts the handler took of any other INTID.
static OTHERS_TAKEN: AtomicU32 = AtomicU32::new(0);
/// The PPI of the timer under test.
static UNDER_TEST: AtomicU32 = AtomicU32::new(0);

/// One of the EL1 timers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The EL1 virtual timer: CNTV_*, PPI 27.
    Virtual,
    /// The EL1 physical timer: CNTP_*, PPI 30.
    Physical,
}

impl Timer {
    const ALL: [Timer; 2] = [Timer::Virtual, Timer::Physical];

    fn name(self) -> &'static str {
        match self {
            Timer::Virtual => "virtual",
            Timer::Physical => "physical",
        }
    }

    /// Its PPI on QEMU `virt` (and in a cell, which sees the platform's timer PPIs).
    fn ppi(self) -> u32 {
        match self {
            Timer::Virtual => 27,
            Timer::Physical => 30,
        }
    }

    /// The counter it compares against (after an ISB, so it is not read early).
    fn counter(self) -> u64 {
        let value: u64;
        // SAFETY: reading CNTVCT_EL0/CNTPCT_EL0 has no side effects.
        unsafe {
            match self {
                Timer::Virtual => {
                    asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack))
                }
                Timer::Physical => {
                    asm!("isb", "mrs {}, cntpct_el0", out(reg) value, options(nomem, nostack))
                }
            }
        }
        value
    }

    fn set_ctl(self, value: u64) {
        // SAFETY: CNTV_CTL_EL0/CNTP_CTL_EL0 only control this vCPU's EL1 timer; the ISB makes the
        // change take effect before whatever the caller does next.
        unsafe {
            match self {
                Timer::Virtual => {
                    asm!("msr cntv_ctl_el0, {}", "isb", in(reg) value, options(nomem, nostack))
                }
                Timer::Physical => {
                    asm!("msr cntp_ctl_el0, {}", "isb", in(reg) value, options(nomem, nostack))
                }
            }
        }
    }

    fn set_cval(self, value: u64) {
        // SAFETY: as in `set_ctl`.
        unsafe {
            match self {
                Timer::Virtual => {
                    asm!("msr cntv_cval_el0, {}", "isb", in(reg) value, options(nomem, nostack))
                }
                Timer::Physical => {
                    asm!("msr cntp_cval_el0, {}", "isb", in(reg) value, options(nomem, nostack))
                }
            }
        }
    }
}

/// What a case does once the PPI is pending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Nothing: the condition holds, the PPI stays pending (the control).
    StillDue,
    /// `CNTx_CTL_EL0.ENABLE` = 0.
    Disable,
    /// `CNTx_CTL_EL0.IMASK` = 1.
    Imask,
    /// `CNTx_CVAL_EL0` a minute ahead.
    CvalFuture,
}

impl Case {
    const ALL: [Case; 4] = [Case::StillDue, Case::Disable, Case::Imask, Case::CvalFuture];

    fn name(self) -> &'static str {
        match self {
            Case::StillDue => "still-due",
            Case::Disable => "disable",
            Case::Imask => "imask",
            Case::CvalFuture => "cval-future",
        }
    }

    /// Whether the timer's interrupt condition still holds after the case's transition.
    fn condition_holds(self) -> bool {
        self == Case::StillDue
    }

    fn apply(self, timer: Timer) {
        match self {
            Case::StillDue => {}
            Case::Disable => timer.set_ctl(0),
            Case::Imask => timer.set_ctl(CTL_ENABLE | CTL_IMASK),
            Case::CvalFuture => {
                let ahead = timer::ticks_in_ms(FUTURE_MS);
                timer.set_cval(timer.counter().saturating_add(ahead));
            }
        }
    }
}

/// The IRQ vector's work while this mode runs: acknowledges and ends every pending interrupt,
/// counting it in [`TAKEN`] or [`OTHERS_TAKEN`], and disables a timer whose interrupt it took (so
/// a level that is still high does not fire again). Returns whether the IRQ was this mode's.
pub fn handle_irq() -> bool {
    if !ACTIVE.load(Ordering::SeqCst) {
        return false;
    }
    loop {
        let intid = gic::acknowledge();
        if intid == SPURIOUS_INTID {
            return true;
        }
        if let Some(timer) = Timer::ALL.into_iter().find(|timer| timer.ppi() == intid) {
            timer.set_ctl(0);
        }
        gic::end_of_interrupt(intid);
        let counter = if intid == UNDER_TEST.load(Ordering::SeqCst) {
            &TAKEN
        } else {
            &OTHERS_TAKEN
        };
        counter.store(counter.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    }
}

/// Runs every case for both timers and prints their lines.
pub fn run() {
    gic::enable_distributor();
    gic::init_this_cpu(VCPU0, 0);
    let mut passed = 0;
    let mut cases = 0;
    for timer in Timer::ALL {
        for case in Case::ALL {
            cases += 1;
            if run_case(timer, case) {
                passed += 1;
                println!("{}{} {} ok", lines::TIMER_LEVELS, timer.name(), case.name());
            }
        }
    }
    println!("{}{passed}/{cases} ok", lines::TIMER_LEVELS);
}

/// Prints the failure line of `timer`'s `case`.
fn fail(timer: Timer, case: Case, what: core::fmt::Arguments<'_>) -> bool {
    println!(
        "{}timer-levels {} {}: {what}",
        lines::FAIL,
        timer.name(),
        case.name()
    );
    false
}

/// One case; prints its failure line and returns false if it failed.
fn run_case(timer: Timer, case: Case) -> bool {
    let bit = 1 << timer.ppi();
    let ppi = timer.ppi();
    gic::write_bits(VCPU0, Bits::ClearEnable, bit);
    gic::write_bits(VCPU0, Bits::ClearPending, bit);
    // Due at once, interrupt unmasked: the PPI's line goes high, but the PPI is disabled.
    timer.set_cval(timer.counter());
    timer.set_ctl(CTL_ENABLE);
    let pending = || gic::read_bits(VCPU0, Bits::SetPending) & bit != 0;
    let became_pending = timer::wait_until(FIRE_MS, pending);
    let outcome = check(timer, case, bit, became_pending);
    // Leave nothing behind for the next case.
    timer.set_ctl(0);
    gic::mask_irq();
    ACTIVE.store(false, Ordering::SeqCst);
    gic::write_bits(VCPU0, Bits::ClearEnable, bit);
    gic::write_bits(VCPU0, Bits::ClearPending, bit);
    if outcome && gic::read_bits(VCPU0, Bits::SetPending) & bit != 0 {
        return fail(
            timer,
            case,
            format_args!("PPI {ppi} still pending after GICR_ICPENDR0"),
        );
    }
    outcome
}

/// The checks of one case, from the PPI becoming pending on; prints a line for each that fails.
fn check(timer: Timer, case: Case, bit: u32, became_pending: bool) -> bool {
    let ppi = timer.ppi();
    if !became_pending {
        return fail(
            timer,
            case,
            format_args!("PPI {ppi} never became pending in GICR_ISPENDR0 ({FIRE_MS} ms)"),
        );
    }
    case.apply(timer);
    let expected = case.condition_holds();
    let mut ok = true;
    for (register, name) in [
        (Bits::SetPending, "GICR_ISPENDR0"),
        (Bits::ClearPending, "GICR_ICPENDR0"),
    ] {
        let value = gic::read_bits(VCPU0, register);
        if (value & bit != 0) != expected {
            let state = if expected {
                "not pending"
            } else {
                "still pending"
            };
            ok = fail(
                timer,
                case,
                format_args!("{name} = {value:#010x}: PPI {ppi} {state} after the transition"),
            );
        }
    }
    let active = gic::read_bits(VCPU0, Bits::SetActive);
    if active & bit != 0 {
        ok = fail(
            timer,
            case,
            format_args!("GICR_ISACTIVER0 = {active:#010x}: PPI {ppi} active, never taken"),
        );
    }
    // Enable the PPI with IRQs unmasked: it is taken at once if it is pending. Wait for the
    // control's one interrupt, then a while longer for any that should not come.
    TAKEN.store(0, Ordering::SeqCst);
    OTHERS_TAKEN.store(0, Ordering::SeqCst);
    UNDER_TEST.store(ppi, Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    gic::unmask_irq();
    gic::write_bits(VCPU0, Bits::SetEnable, bit);
    if expected {
        let _ = timer::wait_until(FIRE_MS, || TAKEN.load(Ordering::SeqCst) != 0);
    }
    let settle = timer::Instant::now().after_ms(QUIET_MS);
    while !settle.has_passed() {
        core::hint::spin_loop();
    }
    gic::mask_irq();
    let taken = TAKEN.load(Ordering::SeqCst);
    let others = OTHERS_TAKEN.load(Ordering::SeqCst);
    if taken != u32::from(expected) || others != 0 {
        ok = fail(
            timer,
            case,
            format_args!(
                "after enabling PPI {ppi}: taken {taken} times (expected {}), {others} other interrupts",
                u32::from(expected)
            ),
        );
    }
    ok
}
