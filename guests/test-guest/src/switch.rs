//! `test=switch seed=N rounds=R`: a vCPU's state survives being descheduled, and nothing of the
//! cell it shares its CPU with shows up in it (layout `test-guests-shared`, where two cells with
//! different seeds time-share one CPU; tests/tests/sharing_hostile.rs).
//!
//! vCPU 0 fills system registers with a pattern derived from `seed` once, then runs `rounds`
//! rounds. Each round is a busy phase inside one assembly block (V0-V31 filled with the pattern,
//! the counter read in a loop for about 20 ms while the largest gap between two reads is kept,
//! V0-V31 stored back: no Rust code runs in between, so only a switch could change them) and an
//! idle phase (the virtual timer armed 2 ms ahead, WFI with IRQs masked until its interrupt is
//! pending, acknowledged and ended at the GIC), each followed by a check of every register. A gap
//! longer than 1 ms means the vCPU was descheduled (`descheduled=` counts them). A mismatch prints
//! `test-guest: FAIL switch: <register> expected <hex> got <hex>` and ends the mode; a timer that
//! does not fire prints a FAIL line too. At the end: `test-guest: switch-probe PASS rounds=R
//! checks=C descheduled=D longest_gap_us=G`.
//!
//! With two seeds, a register that lost its value or took the other cell's both fail the check.

use crate::gic;
use cellvisor_guest_support::println;
use cellvisor_guest_support::timer::{self, Instant};
use core::arch::asm;

/// The virtual timer's PPI.
const VIRTUAL_TIMER: u32 = 27;
/// Busy phase length and the gap that counts as a deschedule.
const BUSY_MS: u64 = 20;
const DESCHEDULED_US: u64 = 1_000;
/// How far ahead the idle phase's timer fires, and how long it may take.
const IDLE_MS: u64 = 2;
const FIRE_MS: u64 = 2_000;
/// Rounds when `rounds=` does not say.
pub const DEFAULT_ROUNDS: u32 = 150;

/// The value of pattern word `index` for `seed`: distinct per word and per seed.
const fn pattern(seed: u64, index: u64) -> u64 {
    let mixed =
        (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ index.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    mixed ^ (mixed >> 29) ^ (index << 56)
}

/// The system registers checked, with the bits of each a guest can write and read back.
const REGISTERS: [(&str, u64); 9] = [
    ("TPIDR_EL0", u64::MAX),
    ("TPIDRRO_EL0", u64::MAX),
    ("TPIDR_EL1", u64::MAX),
    ("SP_EL0", u64::MAX),
    ("CONTEXTIDR_EL1", 0xFFFF_FFFF),
    ("FAR_EL1", u64::MAX),
    ("MAIR_EL1", u64::MAX),
    ("CNTP_CVAL_EL0", u64::MAX),
    ("CNTKCTL_EL1", 0x3),
];

/// The pattern value of register `index` (masked to its writable bits).
fn register_value(seed: u64, index: usize) -> u64 {
    pattern(seed, 100 + index as u64) & REGISTERS[index].1
}

fn write_registers(seed: u64) {
    let v: [u64; 9] = core::array::from_fn(|index| register_value(seed, index));
    // SAFETY: these registers hold nothing the guest relies on: TLS registers no code uses, SP_EL0
    // (the guest runs on SP_EL1), CONTEXTIDR, FAR (the guest takes no exception here), MAIR (the
    // MMU is off), the physical timer's compare value (its timer stays off) and CNTKCTL (EL0 never
    // runs).
    unsafe {
        asm!(
            "msr tpidr_el0, {0}",
            "msr tpidrro_el0, {1}",
            "msr tpidr_el1, {2}",
            "msr sp_el0, {3}",
            "msr contextidr_el1, {4}",
            "msr far_el1, {5}",
            "msr mair_el1, {6}",
            "msr cntp_cval_el0, {7}",
            "msr cntkctl_el1, {8}",
            "isb",
            in(reg) v[0], in(reg) v[1], in(reg) v[2], in(reg) v[3], in(reg) v[4],
            in(reg) v[5], in(reg) v[6], in(reg) v[7], in(reg) v[8],
            options(nostack),
        );
    }
}

fn read_registers() -> [u64; 9] {
    let mut v = [0u64; 9];
    // SAFETY: reads only.
    unsafe {
        asm!(
            "mrs {0}, tpidr_el0",
            "mrs {1}, tpidrro_el0",
            "mrs {2}, tpidr_el1",
            "mrs {3}, sp_el0",
            "mrs {4}, contextidr_el1",
            "mrs {5}, far_el1",
            "mrs {6}, mair_el1",
            "mrs {7}, cntp_cval_el0",
            "mrs {8}, cntkctl_el1",
            out(reg) v[0], out(reg) v[1], out(reg) v[2], out(reg) v[3], out(reg) v[4],
            out(reg) v[5], out(reg) v[6], out(reg) v[7], out(reg) v[8],
            options(nomem, nostack),
        );
    }
    v
}

/// The first register whose value is not `seed`'s pattern: (name, expected, got).
fn first_mismatch(seed: u64, got: &[u64; 9]) -> Option<(&'static str, u64, u64)> {
    (0..REGISTERS.len()).find_map(|index| {
        let expected = register_value(seed, index);
        let value = got[index] & REGISTERS[index].1;
        (value != expected).then_some((REGISTERS[index].0, expected, value))
    })
}

/// V0-V31 as 64 words (low, high).
#[repr(C, align(16))]
struct Vectors([u64; 64]);

/// The busy phase: fills V0-V31 from `input`, reads the counter until `ticks` passed, stores
/// V0-V31 to `output`; returns the largest gap between two counter reads, in ticks.
fn busy(input: &Vectors, output: &mut Vectors, ticks: u64) -> u64 {
    let largest: u64;
    // SAFETY: CPACR_EL1.FPEN lets EL1 use FP/SIMD (the guest's start-up code); the block uses
    // only the registers it names and the two buffers.
    unsafe {
        asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{i}, #0]",
            "ldp q2, q3, [{i}, #32]",
            "ldp q4, q5, [{i}, #64]",
            "ldp q6, q7, [{i}, #96]",
            "ldp q8, q9, [{i}, #128]",
            "ldp q10, q11, [{i}, #160]",
            "ldp q12, q13, [{i}, #192]",
            "ldp q14, q15, [{i}, #224]",
            "ldp q16, q17, [{i}, #256]",
            "ldp q18, q19, [{i}, #288]",
            "ldp q20, q21, [{i}, #320]",
            "ldp q22, q23, [{i}, #352]",
            "ldp q24, q25, [{i}, #384]",
            "ldp q26, q27, [{i}, #416]",
            "ldp q28, q29, [{i}, #448]",
            "ldp q30, q31, [{i}, #480]",
            "isb",
            "mrs {start}, cntvct_el0",
            "mov {last}, {start}",
            "mov {largest}, #0",
            "2:",
            "isb",
            "mrs {now}, cntvct_el0",
            "sub {gap}, {now}, {last}",
            "cmp {gap}, {largest}",
            "csel {largest}, {gap}, {largest}, hi",
            "mov {last}, {now}",
            "sub {gap}, {now}, {start}",
            "cmp {gap}, {ticks}",
            "b.lo 2b",
            "stp q0, q1, [{o}, #0]",
            "stp q2, q3, [{o}, #32]",
            "stp q4, q5, [{o}, #64]",
            "stp q6, q7, [{o}, #96]",
            "stp q8, q9, [{o}, #128]",
            "stp q10, q11, [{o}, #160]",
            "stp q12, q13, [{o}, #192]",
            "stp q14, q15, [{o}, #224]",
            "stp q16, q17, [{o}, #256]",
            "stp q18, q19, [{o}, #288]",
            "stp q20, q21, [{o}, #320]",
            "stp q22, q23, [{o}, #352]",
            "stp q24, q25, [{o}, #384]",
            "stp q26, q27, [{o}, #416]",
            "stp q28, q29, [{o}, #448]",
            "stp q30, q31, [{o}, #480]",
            i = in(reg) input.0.as_ptr(),
            o = in(reg) output.0.as_mut_ptr(),
            ticks = in(reg) ticks,
            start = out(reg) _,
            last = out(reg) _,
            now = out(reg) _,
            gap = out(reg) _,
            largest = out(reg) largest,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _,
            out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    largest
}

/// The idle phase: the virtual timer fires `IDLE_MS` ahead while the vCPU waits in WFI (IRQs
/// masked, so the interrupt only wakes it); false if it is not pending at the GIC in time.
fn idle() -> bool {
    let deadline = timer::ticks_in_ms(IDLE_MS);
    // SAFETY: the virtual timer belongs to this vCPU; IMASK clear, enabled.
    unsafe {
        asm!(
            "mrs {now}, cntvct_el0",
            "add {now}, {now}, {delta}",
            "msr cntv_cval_el0, {now}",
            "mov {now}, #1",
            "msr cntv_ctl_el0, {now}",
            "isb",
            now = out(reg) _,
            delta = in(reg) deadline,
            options(nomem, nostack),
        );
    }
    let give_up = Instant::now().after_ms(FIRE_MS);
    let mut fired = false;
    while !give_up.has_passed() {
        gic::wfi();
        let intid = gic::acknowledge();
        if intid == VIRTUAL_TIMER {
            fired = true;
            // The condition ends before the EOI: the timer off.
            // SAFETY: the vCPU's own timer.
            unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
            gic::end_of_interrupt(intid);
            break;
        } else if intid < 1020 {
            gic::end_of_interrupt(intid);
        }
    }
    fired
}

/// Runs the probe on vCPU 0 (see the module documentation).
pub fn run(seed: u64, rounds: u32) {
    let rounds = if rounds == 0 { DEFAULT_ROUNDS } else { rounds };
    gic::mask_irq();
    gic::enable_distributor();
    gic::init_this_cpu(0, 1 << VIRTUAL_TIMER);
    write_registers(seed);
    let input = Vectors(core::array::from_fn(|word| pattern(seed, word as u64)));
    let mut output = Vectors([0; 64]);
    let busy_ticks = timer::ticks_in_ms(BUSY_MS);
    let descheduled_ticks = timer::ticks_in_ms(1) * DESCHEDULED_US / 1000;
    let (mut checks, mut descheduled, mut longest) = (0u64, 0u64, 0u64);
    for round in 1..=rounds {
        let gap = busy(&input, &mut output, busy_ticks);
        longest = longest.max(gap);
        if gap > descheduled_ticks {
            descheduled += 1;
        }
        if let Some(word) = (0..64).find(|&word| output.0[word] != input.0[word]) {
            println!(
                "test-guest: FAIL switch: V{}[{}] expected {:#018x} got {:#018x}",
                word / 2,
                if word % 2 == 0 { "63:0" } else { "127:64" },
                input.0[word],
                output.0[word]
            );
            return;
        }
        checks += 1;
        if !idle() {
            println!("test-guest: FAIL switch: the virtual timer did not fire in round {round}");
            return;
        }
        if let Some((name, expected, got)) = first_mismatch(seed, &read_registers()) {
            println!("test-guest: FAIL switch: {name} expected {expected:#x} got {got:#x}");
            return;
        }
        checks += 1;
        if round % 50 == 0 {
            println!("test-guest: switch-probe round {round}/{rounds} descheduled={descheduled}");
        }
    }
    let frequency = timer::ticks_in_ms(1000).max(1);
    println!(
        "test-guest: switch-probe PASS rounds={rounds} checks={checks} descheduled={descheduled} longest_gap_us={}",
        u128::from(longest) * 1_000_000 / u128::from(frequency)
    );
}
