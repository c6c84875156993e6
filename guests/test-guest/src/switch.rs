//! `test=switch seed=N [rounds=N] [check_seed=N]`: the registers a vCPU switch must save and
//! restore keep this cell's values while it time-shares a physical CPU with another cell
//! (layout `test-guests-shared`, tests/tests/sharing_hostile.rs). vCPU 0 fills V0-V31 (all 128
//! bits), FPCR, FPSR, TPIDR_EL0, TPIDRRO_EL0, TPIDR_EL1, CONTEXTIDR_EL1, PAR_EL1, AFSR0_EL1,
//! CNTKCTL_EL1, CNTP_CVAL_EL0 and CNTP_CTL_EL0 (the EL1 physical timer enabled and masked, its
//! deadline centuries away) and DBGBVR0_EL1 (its breakpoint stays disabled) with values derived
//! from `seed` ([`pattern`]: distinct per register and per seed), so that with a different seed in
//! each cell a wrong value shows both a loss and the other cell's value leaking in.
//!
//! Then, for `rounds` rounds (0, the default: [`DEFAULT_ROUNDS`]), each round is
//! - a busy phase: for [`BUSY_MS`] of the virtual counter, compare every register with its
//!   pattern, over and over, reading the counter before each comparison; a gap of more than
//!   [`DESCHEDULED_US`] between two reads means the vCPU did not run in between (another cell had
//!   the CPU) and is counted as a descheduling;
//! - an idle phase: the virtual timer armed [`IDLE_MS`] ahead, WFI until its interrupt (PPI 27)
//!   has been taken, then one more comparison.
//!
//! V0-V31 are loaded with their pattern at the start of each phase and then only live inside the
//! phase's one assembly block (the guest is hard-float, so Rust code between phases may use
//! them; the exception vector saves and restores them around the IRQ handler). The system
//! registers, FPCR and FPSR are written once: nothing else in this guest writes them.
//!
//! Lines (see `lines::SWITCH`): every [`PROGRESS_EVERY`] rounds `test-guest: switch-probe: round
//! <n>/<rounds> checks=<c> descheduled=<d> max_gap_us=<us>`; at the end `test-guest:
//! switch-probe: PASS rounds=<r> checks=<c> descheduled=<d> max_gap_us=<us>`. The first mismatch
//! prints `test-guest: FAIL switch-probe: <register> expected <hex> got <hex>` (V registers as
//! 128-bit values) and the guest powers off at once. A register that keeps other bits than those
//! written (right after the write, before any round) fails the same way; only AFSR0_EL1, which is
//! IMPLEMENTATION DEFINED (RAZ/WI on QEMU), is then expected to keep what it read back.
//!
//! `check_seed=N` (default: `seed`) compares with the patterns of another seed than the one
//! written: the probe must then fail at once, at V0 (the QEMU tests prove the comparison can fail
//! with it).

use crate::gic::{self, Bits, SPURIOUS_INTID};
use crate::{lines, psci, timer};
use cellvisor_guest_support::println;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// Rounds when `rounds=` is not given (or 0).
pub const DEFAULT_ROUNDS: u32 = 200;
/// Milliseconds of the virtual counter each busy phase compares for.
pub const BUSY_MS: u64 = 20;
/// Milliseconds ahead the idle phase's virtual timer is armed. Short against the busy phase, so
/// that the cell in front leaves less than the background's budget idle and the scheduler has to
/// take the CPU from its busy phases too.
pub const IDLE_MS: u64 = 1;
/// A gap between two counter reads of a busy phase longer than this many microseconds counts as
/// a descheduling (a comparison takes a few microseconds).
pub const DESCHEDULED_US: u64 = 1000;
/// Rounds between progress lines.
pub const PROGRESS_EVERY: u32 = 50;
/// How long the idle phase waits for its timer interrupt before it fails (the machine may be
/// slow and shared, and the cell may be behind another).
const IRQ_WAIT_MS: u64 = 10_000;

/// The virtual timer's PPI.
const VIRTUAL_TIMER_PPI: u32 = 27;
/// The redistributor of vCPU 0.
const VCPU0: u64 = 0;
/// `CNTx_CTL_EL0.ENABLE` and `IMASK`.
const CTL_ENABLE: u64 = 1 << 0;
const CTL_IMASK: u64 = 1 << 1;

/// Set by the IRQ handler when it took the virtual timer's interrupt; cleared before each idle
/// phase. Only vCPU 0 runs this mode.
static TIMER_FIRED: AtomicBool = AtomicBool::new(false);
/// Set while this mode takes IRQs.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The system registers (and FPCR, FPSR) in the order of [`State::sys`]; [`read_sys`] and the
/// comparison in [`compare!`] read them in this order.
const SYS_NAMES: [&str; SYS] = [
    "FPCR",
    "FPSR",
    "TPIDR_EL0",
    "TPIDRRO_EL0",
    "TPIDR_EL1",
    "CONTEXTIDR_EL1",
    "PAR_EL1",
    "AFSR0_EL1",
    "CNTKCTL_EL1",
    "CNTP_CVAL_EL0",
    "CNTP_CTL_EL0",
    "DBGBVR0_EL1",
];
const SYS: usize = 12;
/// Index of AFSR0_EL1 in [`SYS_NAMES`].
const AFSR0: usize = 7;

/// Register values: V0-V31 as (low, high) doublewords, then [`SYS_NAMES`]. The assembly reads
/// it in this layout (512 bytes of V registers, then 8 bytes per system register).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct State {
    v: [[u64; 2]; 32],
    sys: [u64; SYS],
}

/// The raw pattern word number `index` of `seed`: the seed in every byte, mixed with the index
/// (a golden-ratio multiple, so neighbouring registers differ in most bits).
const fn pattern(seed: u64, index: u64) -> u64 {
    seed.wrapping_mul(0x0101_0101_0101_0101) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The bits of system register `index` (of [`SYS_NAMES`]) that hold what was written, and the
/// bits that must be set.
const fn shape(index: usize) -> (u64, u64) {
    match index {
        // FPCR: AHP, DN, FZ, RMode (bits 22-26).
        0 => (0x07c0_0000, 0),
        // FPSR: QC and the cumulative exception flags IDC, IXC, UFC, OFC, DZC, IOC.
        1 => (0x0800_009f, 0),
        // CONTEXTIDR_EL1: PROCID, 32 bits.
        5 => (0xffff_ffff, 0),
        // PAR_EL1 as a successful translation (F = 0): ATTR, PA[51:12], NS, SH; bit 11 RES1.
        6 => (0xff0f_ffff_ffff_f380, 1 << 11),
        // CNTKCTL_EL1: EL0PTEN, EL0VTEN, EVNTI, EVNTDIR, EL0VCTEN, EL0PCTEN; EVNTEN (bit 2)
        // stays 0, no event stream.
        8 => (0x3fb, 0),
        // CNTP_CVAL_EL0: at least 2^60 ticks away (centuries at any counter frequency).
        9 => (u64::MAX, 1 << 60),
        // CNTP_CTL_EL0: enabled, interrupt masked; ISTATUS stays 0 that far from the deadline.
        10 => (0, CTL_ENABLE | CTL_IMASK),
        // DBGBVR0_EL1: a word-aligned address below 2^48 (the top bits sign-extend bit 48).
        11 => (0x0000_ffff_ffff_fffc, 0),
        _ => (u64::MAX, 0),
    }
}

impl State {
    /// The values `seed` writes.
    fn of_seed(seed: u64) -> Self {
        let mut state = State {
            v: [[0; 2]; 32],
            sys: [0; SYS],
        };
        for (n, v) in state.v.iter_mut().enumerate() {
            let n = n as u64;
            *v = [pattern(seed, 2 * n), pattern(seed, 2 * n + 1)];
        }
        for (n, sys) in state.sys.iter_mut().enumerate() {
            let (keep, set) = shape(n);
            *sys = (pattern(seed, 64 + n as u64) & keep) | set;
        }
        state
    }

    /// The first register of `self` (expected) that `observed` differs in: its name and both
    /// values (a V register's as 128 bits).
    fn first_difference(&self, observed: &State) -> Option<(&'static str, u128, u128)> {
        let both = |pair: [u64; 2]| u128::from(pair[1]) << 64 | u128::from(pair[0]);
        let v = (0..32).find(|&n| self.v[n] != observed.v[n]).map(|n| {
            (
                V_NAMES.get(n).copied().unwrap_or("V?"),
                both(self.v[n]),
                both(observed.v[n]),
            )
        });
        v.or_else(|| {
            (0..SYS).find(|&n| self.sys[n] != observed.sys[n]).map(|n| {
                (
                    SYS_NAMES[n],
                    u128::from(self.sys[n]),
                    u128::from(observed.sys[n]),
                )
            })
        })
    }
}

/// Names of V0-V31 for the FAIL lines.
const V_NAMES: [&str; 32] = [
    "V0", "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "V10", "V11", "V12", "V13", "V14",
    "V15", "V16", "V17", "V18", "V19", "V20", "V21", "V22", "V23", "V24", "V25", "V26", "V27",
    "V28", "V29", "V30", "V31",
];

/// Writes the system registers (and FPCR, FPSR) of `state`.
fn write_sys(state: &State) {
    let s = &state.sys;
    // SAFETY: these registers only configure this vCPU: FPCR's modes and FPSR's flags affect no
    // integer code (the guest does no floating-point arithmetic), the thread ID and context ID
    // registers, PAR_EL1 and AFSR0_EL1 are only read back; CNTKCTL_EL1 only gives EL0 (unused)
    // counter access, without an event stream; the EL1 physical timer is masked and centuries
    // away, its PPI disabled; breakpoint 0 stays disabled (DBGBCR0_EL1.E = 0, as reset).
    unsafe {
        asm!(
            "msr fpcr, {0}",
            "msr fpsr, {1}",
            "msr tpidr_el0, {2}",
            "msr tpidrro_el0, {3}",
            "msr tpidr_el1, {4}",
            "msr contextidr_el1, {5}",
            "msr par_el1, {6}",
            "msr afsr0_el1, {7}",
            "msr cntkctl_el1, {8}",
            "msr cntp_cval_el0, {9}",
            "isb",
            "msr cntp_ctl_el0, {10}",
            "msr dbgbvr0_el1, {11}",
            "isb",
            in(reg) s[0], in(reg) s[1], in(reg) s[2], in(reg) s[3], in(reg) s[4], in(reg) s[5],
            in(reg) s[6], in(reg) s[7], in(reg) s[8], in(reg) s[9], in(reg) s[10], in(reg) s[11],
            options(nomem, nostack),
        );
    }
}

/// Reads the system registers (and FPCR, FPSR) into `state`.
fn read_sys(state: &mut State) {
    let s = &mut state.sys;
    // SAFETY: reading these registers has no side effect.
    unsafe {
        asm!(
            "isb",
            "mrs {0}, fpcr",
            "mrs {1}, fpsr",
            "mrs {2}, tpidr_el0",
            "mrs {3}, tpidrro_el0",
            "mrs {4}, tpidr_el1",
            "mrs {5}, contextidr_el1",
            "mrs {6}, par_el1",
            "mrs {7}, afsr0_el1",
            "mrs {8}, cntkctl_el1",
            "mrs {9}, cntp_cval_el0",
            "mrs {10}, cntp_ctl_el0",
            "mrs {11}, dbgbvr0_el1",
            out(reg) s[0], out(reg) s[1], out(reg) s[2], out(reg) s[3], out(reg) s[4],
            out(reg) s[5], out(reg) s[6], out(reg) s[7], out(reg) s[8], out(reg) s[9],
            out(reg) s[10], out(reg) s[11],
            options(nomem, nostack),
        );
    }
}

/// Assembly: V0-V31 loaded from `{src}` (a [`State`]).
macro_rules! load_v {
    () => {
        concat!(
            "ldp q0, q1, [{src}, #0]\n",
            "ldp q2, q3, [{src}, #32]\n",
            "ldp q4, q5, [{src}, #64]\n",
            "ldp q6, q7, [{src}, #96]\n",
            "ldp q8, q9, [{src}, #128]\n",
            "ldp q10, q11, [{src}, #160]\n",
            "ldp q12, q13, [{src}, #192]\n",
            "ldp q14, q15, [{src}, #224]\n",
            "ldp q16, q17, [{src}, #256]\n",
            "ldp q18, q19, [{src}, #288]\n",
            "ldp q20, q21, [{src}, #320]\n",
            "ldp q22, q23, [{src}, #352]\n",
            "ldp q24, q25, [{src}, #384]\n",
            "ldp q26, q27, [{src}, #416]\n",
            "ldp q28, q29, [{src}, #448]\n",
            "ldp q30, q31, [{src}, #480]\n",
        )
    };
}

/// Assembly: V0-V31 stored to `{obs}` (a [`State`]).
macro_rules! store_v {
    () => {
        concat!(
            "stp q0, q1, [{obs}, #0]\n",
            "stp q2, q3, [{obs}, #32]\n",
            "stp q4, q5, [{obs}, #64]\n",
            "stp q6, q7, [{obs}, #96]\n",
            "stp q8, q9, [{obs}, #128]\n",
            "stp q10, q11, [{obs}, #160]\n",
            "stp q12, q13, [{obs}, #192]\n",
            "stp q14, q15, [{obs}, #224]\n",
            "stp q16, q17, [{obs}, #256]\n",
            "stp q18, q19, [{obs}, #288]\n",
            "stp q20, q21, [{obs}, #320]\n",
            "stp q22, q23, [{obs}, #352]\n",
            "stp q24, q25, [{obs}, #384]\n",
            "stp q26, q27, [{obs}, #416]\n",
            "stp q28, q29, [{obs}, #448]\n",
            "stp q30, q31, [{obs}, #480]\n",
        )
    };
}

/// Assembly: `{acc}` = the OR of every register's XOR with its value in `{exp}` (0: all match);
/// `{checks}` counts one more comparison. Clobbers `{p}`, `{t1}`-`{t3}`.
macro_rules! compare {
    () => {
        concat!(
            "mov {acc}, xzr\n",
            "mov {p}, {exp}\n",
            ".irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n",
            "ldp {t1}, {t2}, [{p}], #16\n",
            "mov {t3}, v\\n\\().d[0]\n",
            "eor {t3}, {t3}, {t1}\n",
            "orr {acc}, {acc}, {t3}\n",
            "mov {t3}, v\\n\\().d[1]\n",
            "eor {t3}, {t3}, {t2}\n",
            "orr {acc}, {acc}, {t3}\n",
            ".endr\n",
            ".irp r,fpcr,fpsr,tpidr_el0,tpidrro_el0,tpidr_el1,contextidr_el1,par_el1,afsr0_el1,cntkctl_el1,cntp_cval_el0,cntp_ctl_el0,dbgbvr0_el1\n",
            "ldr {t1}, [{p}], #8\n",
            "mrs {t3}, \\r\n",
            "eor {t3}, {t3}, {t1}\n",
            "orr {acc}, {acc}, {t3}\n",
            ".endr\n",
            "add {checks}, {checks}, #1\n",
        )
    };
}

/// What a phase saw.
#[derive(Default)]
struct Phase {
    /// Comparisons made.
    checks: u64,
    /// The longest gap between two counter reads, in ticks (busy phase).
    max_gap: u64,
    /// Gaps longer than the descheduling threshold (busy phase).
    gaps: u64,
    /// Whether the last comparison found a difference (the phase stopped there).
    differs: bool,
    /// Whether the timer interrupt did not come in time (idle phase).
    timed_out: bool,
}

/// Loads V0-V31 from `written`, then compares the registers with `expected` until the virtual
/// counter reaches `deadline`, or until a comparison finds a difference; V0-V31 as they were at
/// the end go to `observed`.
fn busy(
    written: &State,
    expected: &State,
    observed: &mut State,
    deadline: u64,
    threshold: u64,
) -> Phase {
    let mut phase = Phase::default();
    let acc: u64;
    // SAFETY: reads `written` and `expected` and writes `observed` (both [`State`]s, 16-aligned, the sizes the
    // loops walk); V0-V31 are declared clobbered; the system registers are only read.
    unsafe {
        asm!(
            load_v!(),
            "isb",
            "mrs {prev}, cntvct_el0",
            "2:",
            "isb",
            "mrs {now}, cntvct_el0",
            "sub {t1}, {now}, {prev}",
            "mov {prev}, {now}",
            "cmp {t1}, {max}",
            "csel {max}, {t1}, {max}, hi",
            "cmp {t1}, {threshold}",
            "cinc {gaps}, {gaps}, hi",
            compare!(),
            "cbnz {acc}, 3f",
            "cmp {now}, {deadline}",
            "b.lo 2b",
            "3:",
            store_v!(),
            src = in(reg) written as *const State,
            exp = in(reg) expected as *const State,
            obs = in(reg) observed as *mut State,
            deadline = in(reg) deadline,
            threshold = in(reg) threshold,
            checks = inout(reg) phase.checks,
            max = inout(reg) phase.max_gap,
            gaps = inout(reg) phase.gaps,
            acc = out(reg) acc,
            p = out(reg) _,
            prev = out(reg) _,
            now = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _,
            out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    phase.differs = acc != 0;
    phase
}

/// Loads V0-V31 from `written`, arms the virtual timer for `deadline`, waits in WFI until the IRQ handler took
/// its interrupt (or the counter passed `limit`), then compares once; V0-V31 as they were at the
/// end go to `observed`. Returns with IRQs masked.
fn idle(
    written: &State,
    expected: &State,
    observed: &mut State,
    deadline: u64,
    limit: u64,
) -> Phase {
    let mut phase = Phase::default();
    let acc: u64;
    let timed_out: u64;
    TIMER_FIRED.store(false, Ordering::SeqCst);
    // SAFETY: as in `busy`; besides, the virtual timer is this vCPU's own, and IRQs are taken
    // between the WFI and the next mask: the vector saves and restores every general-purpose and
    // FP/SIMD register around the handler, which only sets TIMER_FIRED and disables the timer.
    unsafe {
        asm!(
            load_v!(),
            "msr daifset, #2",
            "msr cntv_cval_el0, {deadline}",
            "mov {t1}, #{enable}",
            "msr cntv_ctl_el0, {t1}",
            "isb",
            "mov {timed_out}, xzr",
            "2:",
            "msr daifset, #2",
            "ldrb {t1:w}, [{fired}]",
            "cbnz {t1:w}, 4f",
            "isb",
            "mrs {t1}, cntvct_el0",
            "cmp {t1}, {limit}",
            "b.hs 3f",
            "wfi",
            "msr daifclr, #2",
            "isb",
            "b 2b",
            "3:",
            "mov {timed_out}, #1",
            "4:",
            compare!(),
            store_v!(),
            src = in(reg) written as *const State,
            exp = in(reg) expected as *const State,
            obs = in(reg) observed as *mut State,
            fired = in(reg) TIMER_FIRED.as_ptr(),
            deadline = in(reg) deadline,
            limit = in(reg) limit,
            enable = const CTL_ENABLE,
            checks = inout(reg) phase.checks,
            timed_out = out(reg) timed_out,
            acc = out(reg) acc,
            p = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _,
            out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    // Disabled by the handler if it fired; in any case nothing is left armed.
    set_virtual_ctl(0);
    phase.differs = acc != 0;
    phase.timed_out = timed_out != 0;
    phase
}

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 (after an ISB so it is not read early) has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

fn set_virtual_ctl(value: u64) {
    // SAFETY: CNTV_CTL_EL0 only controls this vCPU's virtual timer.
    unsafe { asm!("msr cntv_ctl_el0, {}", "isb", in(reg) value, options(nomem, nostack)) };
}

/// The IRQ vector's work while this mode runs: acknowledges and ends every pending interrupt;
/// the virtual timer's is disabled and noted in [`TIMER_FIRED`]. Returns whether the IRQ was
/// this mode's.
pub fn handle_irq() -> bool {
    if !ACTIVE.load(Ordering::SeqCst) {
        return false;
    }
    loop {
        let intid = gic::acknowledge();
        if intid == SPURIOUS_INTID {
            return true;
        }
        if intid == VIRTUAL_TIMER_PPI {
            set_virtual_ctl(0);
            TIMER_FIRED.store(true, Ordering::SeqCst);
        }
        gic::end_of_interrupt(intid);
    }
}

/// Prints the FAIL line of the first difference between `expected` and what the registers
/// hold (`observed`'s V registers, the system registers read now) and powers off; returns if
/// there is none.
fn fail_on_difference(expected: &State, observed: &mut State) {
    read_sys(observed);
    if let Some((name, want, got)) = expected.first_difference(observed) {
        println!(
            "{}switch-probe: {name} expected {want:#x} got {got:#x}",
            lines::FAIL
        );
        psci::system_off();
    }
}

/// Runs `test=switch`.
pub fn run(seed: u64, check_seed: u64, rounds: u32) {
    let rounds = if rounds == 0 { DEFAULT_ROUNDS } else { rounds };
    gic::enable_distributor();
    gic::init_this_cpu(VCPU0, 0);
    gic::write_bits(VCPU0, Bits::ClearPending, 1 << VIRTUAL_TIMER_PPI);
    gic::write_bits(VCPU0, Bits::SetEnable, 1 << VIRTUAL_TIMER_PPI);
    ACTIVE.store(true, Ordering::SeqCst);

    let written = State::of_seed(seed);
    let mut expected = State::of_seed(check_seed);
    write_sys(&written);
    let mut observed = written;
    read_sys(&mut observed);
    if observed.sys[AFSR0] != written.sys[AFSR0] {
        println!(
            "{}AFSR0_EL1 keeps {:#x} of {:#x} written (IMPLEMENTATION DEFINED): expected so",
            lines::SWITCH,
            observed.sys[AFSR0],
            written.sys[AFSR0]
        );
        expected.sys[AFSR0] = observed.sys[AFSR0];
    }
    // What the registers keep right after the write, before any round: a register that does not
    // keep the written bits fails here (under the written seed's name of the difference).
    let mut kept = written;
    kept.sys[AFSR0] = expected.sys[AFSR0];
    fail_on_difference(&kept, &mut observed);
    println!(
        "{}seed={seed} check_seed={check_seed} rounds={rounds} busy_ms={BUSY_MS} idle_ms={IDLE_MS}",
        lines::SWITCH
    );

    let threshold = timer::ticks_in_ms(1) * DESCHEDULED_US / 1000;
    let ticks_per_ms = timer::ticks_in_ms(1).max(1);
    let microseconds = |ticks: u64| ticks.saturating_mul(1000) / ticks_per_ms;
    let (mut checks, mut descheduled, mut max_gap) = (0u64, 0u64, 0u64);
    for round in 1..=rounds {
        let start = counter();
        let phase = busy(
            &written,
            &expected,
            &mut observed,
            start + timer::ticks_in_ms(BUSY_MS),
            threshold,
        );
        checks += phase.checks;
        descheduled += phase.gaps;
        max_gap = max_gap.max(phase.max_gap);
        fail_on_difference(&expected, &mut observed);
        if phase.differs {
            // The assembly saw a difference that is gone by now: still a failure.
            println!(
                "{}switch-probe: a register differed for a moment (round {round}, busy)",
                lines::FAIL
            );
            psci::system_off();
        }

        let now = counter();
        let phase = idle(
            &written,
            &expected,
            &mut observed,
            now + timer::ticks_in_ms(IDLE_MS),
            now + timer::ticks_in_ms(IRQ_WAIT_MS),
        );
        checks += phase.checks;
        fail_on_difference(&expected, &mut observed);
        if phase.differs {
            println!(
                "{}switch-probe: a register differed for a moment (round {round}, idle)",
                lines::FAIL
            );
            psci::system_off();
        }
        if phase.timed_out {
            println!(
                "{}switch-probe: the virtual timer's interrupt was not taken within \
                 {IRQ_WAIT_MS} ms (round {round})",
                lines::FAIL
            );
            psci::system_off();
        }
        if round % PROGRESS_EVERY == 0 && round != rounds {
            println!(
                "{}round {round}/{rounds} checks={checks} descheduled={descheduled} \
                 max_gap_us={}",
                lines::SWITCH,
                microseconds(max_gap)
            );
        }
    }
    ACTIVE.store(false, Ordering::SeqCst);
    println!(
        "{}PASS rounds={rounds} checks={checks} descheduled={descheduled} max_gap_us={}",
        lines::SWITCH,
        microseconds(max_gap)
    );
}
