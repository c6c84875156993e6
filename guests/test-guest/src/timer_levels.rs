//! `test=timer-levels`: a level-sensitive interrupt follows its line. For each EL1 timer (the
//! virtual timer, PPI 27, and the physical timer, PPI 30) and each way its interrupt condition can
//! end (the timer disabled, its interrupt masked by `IMASK`, `CVAL` moved into the future), vCPU 0
//! lets the timer fire while its PPI cannot be taken, waits until `GICR_ISPENDR0` shows it
//! pending, ends the condition, and checks that the PPI is no longer pending and is not taken
//! once it can be. The PPI is held two ways ([`Hold`]): disabled at the redistributor
//! (`GICR_ICENABLER0`; the guest then reads `GICR_ISPENDR0` and `GICR_ICPENDR0`, which must no
//! longer show it, and enables it), or enabled with IRQs masked (the guest then makes a trapped
//! access that reads no pending state, and unmasks IRQs). `GICR_ISACTIVER0` must never show it.
//! A control case per timer and hold keeps the condition: the PPI stays pending and is taken
//! exactly once.
//!
//! Each case prints `test-guest: timer-levels <timer> <transition> <hold> ok` or
//! `test-guest: FAIL timer-levels <timer> <transition> <hold>: <what>`, and the mode ends with
//! `test-guest: timer-levels <passed>/<cases> ok` (see `lines`). The same guest passes on plain
//! QEMU, where the GIC and the timers are QEMU's own. The QEMU side is tests/tests/foundation.rs
//! `level_timer_interrupts_follow_their_line`.
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
enum Transition {
    /// Nothing: the condition holds, the PPI stays pending (the control).
    StillDue,
    /// `CNTx_CTL_EL0.ENABLE` = 0.
    Disable,
    /// `CNTx_CTL_EL0.IMASK` = 1.
    Imask,
    /// `CNTx_CVAL_EL0` a minute ahead.
    CvalFuture,
}

impl Transition {
    const ALL: [Transition; 4] = [
        Transition::StillDue,
        Transition::Disable,
        Transition::Imask,
        Transition::CvalFuture,
    ];

    fn name(self) -> &'static str {
        match self {
            Transition::StillDue => "still-due",
            Transition::Disable => "disable",
            Transition::Imask => "imask",
            Transition::CvalFuture => "cval-future",
        }
    }

    /// Whether the timer's interrupt condition still holds after the transition.
    fn condition_holds(self) -> bool {
        self == Transition::StillDue
    }

    fn apply(self, timer: Timer) {
        match self {
            Transition::StillDue => {}
            Transition::Disable => timer.set_ctl(0),
            Transition::Imask => timer.set_ctl(CTL_ENABLE | CTL_IMASK),
            Transition::CvalFuture => {
                let ahead = timer::ticks_in_ms(FUTURE_MS);
                timer.set_cval(timer.counter().saturating_add(ahead));
            }
        }
    }
}

/// What keeps the pending PPI from being taken while the timer's condition ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// The PPI is disabled at the redistributor (under cellvisor the interrupt waits in the
    /// vGIC); after the transition the guest reads its pending state, then enables it.
    PpiOff,
    /// The PPI is enabled but IRQs are masked at the vCPU (under cellvisor the interrupt waits in
    /// a list register); after the transition the guest makes a trapped access that does not
    /// read the pending state (GICD_CTLR), then unmasks IRQs.
    IrqsMasked,
}

impl Hold {
    const ALL: [Hold; 2] = [Hold::PpiOff, Hold::IrqsMasked];

    fn name(self) -> &'static str {
        match self {
            Hold::PpiOff => "ppi-off",
            Hold::IrqsMasked => "irqs-masked",
        }
    }
}

/// One case: a timer, how its interrupt is held, and what ends (or keeps) its condition.
#[derive(Clone, Copy)]
struct Case {
    timer: Timer,
    hold: Hold,
    transition: Transition,
}

impl Case {
    /// Prints the case's failure line; returns false.
    fn fail(self, what: core::fmt::Arguments<'_>) -> bool {
        println!(
            "{}timer-levels {} {} {}: {what}",
            lines::FAIL,
            self.timer.name(),
            self.transition.name(),
            self.hold.name()
        );
        false
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
        for hold in Hold::ALL {
            for transition in Transition::ALL {
                let case = Case {
                    timer,
                    hold,
                    transition,
                };
                cases += 1;
                if run_case(case) {
                    passed += 1;
                    println!(
                        "{}{} {} {} ok",
                        lines::TIMER_LEVELS,
                        timer.name(),
                        transition.name(),
                        hold.name()
                    );
                }
            }
        }
    }
    println!("{}{passed}/{cases} ok", lines::TIMER_LEVELS);
}

/// One case; prints a line for each check that fails and returns whether all passed.
fn run_case(case: Case) -> bool {
    let timer = case.timer;
    let ppi = timer.ppi();
    let bit = 1 << ppi;
    gic::mask_irq();
    gic::write_bits(VCPU0, Bits::ClearEnable, bit);
    gic::write_bits(VCPU0, Bits::ClearPending, bit);
    if case.hold == Hold::IrqsMasked {
        gic::write_bits(VCPU0, Bits::SetEnable, bit);
    }
    // Due at once, interrupt unmasked: the PPI's line goes high.
    timer.set_cval(timer.counter());
    timer.set_ctl(CTL_ENABLE);
    let became_pending = timer::wait_until(FIRE_MS, || {
        gic::read_bits(VCPU0, Bits::SetPending) & bit != 0
    });
    let mut ok = if became_pending {
        check(case, bit)
    } else {
        case.fail(format_args!(
            "PPI {ppi} never became pending in GICR_ISPENDR0 ({FIRE_MS} ms)"
        ))
    };
    // Leave nothing behind for the next case.
    timer.set_ctl(0);
    gic::mask_irq();
    ACTIVE.store(false, Ordering::SeqCst);
    gic::write_bits(VCPU0, Bits::ClearEnable, bit);
    gic::write_bits(VCPU0, Bits::ClearPending, bit);
    if gic::read_bits(VCPU0, Bits::SetPending) & bit != 0 {
        ok = case.fail(format_args!("PPI {ppi} still pending after GICR_ICPENDR0"));
    }
    ok
}

/// Whether the pending registers show the PPI as `expected`; prints what they show if not.
fn pending_is(case: Case, bit: u32, expected: bool, when: &str) -> bool {
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
            ok = case.fail(format_args!(
                "{name} = {value:#010x}: PPI {} {state} {when}",
                case.timer.ppi()
            ));
        }
    }
    ok
}

/// The checks of one case, from the PPI becoming pending on.
fn check(case: Case, bit: u32) -> bool {
    let ppi = case.timer.ppi();
    case.transition.apply(case.timer);
    let expected = case.transition.condition_holds();
    let mut ok = true;
    match case.hold {
        Hold::PpiOff => ok &= pending_is(case, bit, expected, "after the transition"),
        Hold::IrqsMasked => {
            // A trapped access that is not a pending read: the exit alone must retire a list
            // register whose line went low.
            let _ = gic::distributor_control();
        }
    }
    let active = gic::read_bits(VCPU0, Bits::SetActive);
    if active & bit != 0 {
        ok = case.fail(format_args!(
            "GICR_ISACTIVER0 = {active:#010x}: PPI {ppi} active, never taken"
        ));
    }
    // Let it be taken: enabled with IRQs unmasked, a pending PPI is taken at once. Wait for the
    // control's one interrupt, then a while longer for any that should not come.
    TAKEN.store(0, Ordering::SeqCst);
    OTHERS_TAKEN.store(0, Ordering::SeqCst);
    UNDER_TEST.store(ppi, Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    gic::unmask_irq();
    if case.hold == Hold::PpiOff {
        gic::write_bits(VCPU0, Bits::SetEnable, bit);
    }
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
        ok = case.fail(format_args!(
            "once PPI {ppi} could be taken: taken {taken} times (expected {}), {others} other interrupts",
            u32::from(expected)
        ));
    }
    // Taken (the handler disabled the timer) or never due again: nothing pending now.
    ok & pending_is(case, bit, false, "at the end")
}
