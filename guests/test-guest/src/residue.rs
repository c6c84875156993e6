//! `test=residue`: nothing of a previous instance survives into this one. vCPU 0 first checks that
//! every register below holds its reset value, printing
//! `test-guest: FAIL residue: <NAME> = <value>` for each one that does not and
//! `test-guest: residue clean: <N> registers at their reset values` otherwise; then it fills them
//! all with a pattern, reads the system registers back to check the fill took (a FAIL line for
//! each that still reads its reset value), prints `test-guest: residue filled (...)` and beats
//! like `test=heartbeat`. The QEMU side
//! (tests/tests/lifecycle.rs `a_wiped_cell_starts_with_no_register_of_its_previous_instance`) wipes
//! and starts the cell and reads the next instance's check.
//!
//! The FP/SIMD registers are read as [`entry`] saved them, before any Rust code ran (which may
//! use them for copies); the system registers are read directly (no Rust code writes them).

use crate::lines;
use cellvisor_guest_support::println;
use core::arch::asm;

/// q0-q31, then FPCR and FPSR, as vCPU 0 had them when it reached Rust.
#[repr(C, align(16))]
pub struct EntryFp {
    q: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

/// Written once, by [`entry`] on vCPU 0, before anything else runs.
static mut ENTRY_FP: EntryFp = EntryFp {
    q: [0; 32],
    fpcr: 0,
    fpsr: 0,
};

/// vCPU 0's first Rust-level code: saves the FP/SIMD state to [`ENTRY_FP`] (the entry assembly
/// before it only uses general-purpose registers), then continues at `primary_main` with x0, the
/// device tree, untouched.
#[unsafe(naked)]
pub extern "C" fn entry(device_tree: u64) -> ! {
    core::arch::naked_asm!(
        "adrp x9, {fp}",
        "add x9, x9, :lo12:{fp}",
        "stp q0, q1, [x9, #0]",
        "stp q2, q3, [x9, #32]",
        "stp q4, q5, [x9, #64]",
        "stp q6, q7, [x9, #96]",
        "stp q8, q9, [x9, #128]",
        "stp q10, q11, [x9, #160]",
        "stp q12, q13, [x9, #192]",
        "stp q14, q15, [x9, #224]",
        "stp q16, q17, [x9, #256]",
        "stp q18, q19, [x9, #288]",
        "stp q20, q21, [x9, #320]",
        "stp q22, q23, [x9, #352]",
        "stp q24, q25, [x9, #384]",
        "stp q26, q27, [x9, #416]",
        "stp q28, q29, [x9, #448]",
        "stp q30, q31, [x9, #480]",
        "mrs x10, fpcr",
        "mrs x11, fpsr",
        "add x9, x9, #512",
        "stp x10, x11, [x9]",
        "b {main}",
        fp = sym ENTRY_FP,
        main = sym crate::primary_main,
    )
}

/// Names of V0-V31 for the FAIL lines.
const V_NAMES: [&str; 32] = [
    "V0", "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "V10", "V11", "V12", "V13", "V14",
    "V15", "V16", "V17", "V18", "V19", "V20", "V21", "V22", "V23", "V24", "V25", "V26", "V27",
    "V28", "V29", "V30", "V31",
];

/// The pattern register `n` is filled with: distinct per register, never a reset value.
const fn pattern(n: u64) -> u64 {
    0x5a5a_0000_0000_0000 | (n << 32) | 0xc0de_0000 | n
}

/// Reads the system register `$name` (an assembler name or encoding).
macro_rules! read {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading this EL1/EL0 register has no side effect.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
        value
    }};
}

/// Writes the system register `$name`.
macro_rules! write {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: these registers only configure this guest, which is not using them: the MMU
        // is off, no timer interrupt is enabled, debug exceptions are disabled (MDSCR_EL1.KDE and
        // MDE clear) and the keys written are not the instruction keys this guest might sign with.
        unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nomem, nostack)) };
        isb();
    }};
}

fn isb() {
    // SAFETY: a barrier.
    unsafe { asm!("isb", options(nomem, nostack)) };
}

/// Which optional registers this CPU has.
struct Present {
    pauth_address: bool,
    pauth_generic: bool,
    pmu: bool,
    sve: bool,
}

impl Present {
    fn read() -> Self {
        let isar1 = read!("id_aa64isar1_el1");
        let isar2 = read!("s3_0_c0_c6_2");
        let dfr0 = read!("id_aa64dfr0_el1");
        let pfr0 = read!("id_aa64pfr0_el1");
        Self {
            // APA, API (ISAR1 bits 4-11) or APA3 (ISAR2 bits 12-15).
            pauth_address: isar1 & 0xff0 != 0 || isar2 & 0xf000 != 0,
            // GPA, GPI (ISAR1 bits 24-31) or GPA3 (ISAR2 bits 8-11).
            pauth_generic: isar1 & 0xff00_0000 != 0 || isar2 & 0xf00 != 0,
            pmu: !matches!((dfr0 >> 8) & 0xf, 0 | 0xf),
            sve: (pfr0 >> 32) & 0xf != 0,
        }
    }
}

/// Each system register the check reads and the fill writes: name, reset value, and for the fill
/// the pattern number (0 = leave it alone).
macro_rules! each_register {
    ($visit:ident, $present:expr) => {{
        let present = $present;
        $visit!("TPIDR_EL0", "tpidr_el0", 0, true);
        $visit!("TPIDRRO_EL0", "tpidrro_el0", 0, true);
        $visit!("TPIDR_EL1", "tpidr_el1", 0, true);
        $visit!("CONTEXTIDR_EL1", "contextidr_el1", 0, true);
        $visit!("SP_EL0", "sp_el0", 0, true);
        $visit!("TTBR0_EL1", "ttbr0_el1", 0, true);
        $visit!("TTBR1_EL1", "ttbr1_el1", 0, true);
        $visit!("MAIR_EL1", "mair_el1", 0, true);
        $visit!("AMAIR_EL1", "amair_el1", 0, true);
        $visit!("FAR_EL1", "far_el1", 0, true);
        $visit!("AFSR0_EL1", "afsr0_el1", 0, true);
        $visit!("CNTV_CVAL_EL0", "cntv_cval_el0", 0, true);
        $visit!("CNTP_CVAL_EL0", "cntp_cval_el0", 0, true);
        $visit!("CNTKCTL_EL1", "cntkctl_el1", 0, true);
        $visit!("MDSCR_EL1", "mdscr_el1", 0, true);
        $visit!("DBGBVR0_EL1", "dbgbvr0_el1", 0, true);
        $visit!("DBGBCR0_EL1", "dbgbcr0_el1", 0, true);
        $visit!("DBGWVR0_EL1", "dbgwvr0_el1", 0, true);
        $visit!("DBGWCR0_EL1", "dbgwcr0_el1", 0, true);
        $visit!("APDBKEYLO_EL1", "s3_0_c2_c2_2", 0, present.pauth_address);
        $visit!("APDBKEYHI_EL1", "s3_0_c2_c2_3", 0, present.pauth_address);
        $visit!("APGAKEYLO_EL1", "s3_0_c2_c3_0", 0, present.pauth_generic);
        $visit!("PMUSERENR_EL0", "pmuserenr_el0", 0, present.pmu);
        $visit!("PMCNTENSET_EL0", "pmcntenset_el0", 0, present.pmu);
        $visit!("PMINTENSET_EL1", "pmintenset_el1", 0, present.pmu);
        $visit!("PMCCFILTR_EL0", "pmccfiltr_el0", 0, present.pmu);
        $visit!("PMCCNTR_EL0", "pmccntr_el0", 0, present.pmu);
        $visit!("ZCR_EL1", "s3_0_c1_c2_0", 0, present.sve);
    }};
}

/// Checks every register; returns how many were checked and how many were not at their reset
/// values, with a FAIL line printed for each of those.
fn check(present: &Present) -> (u32, u32) {
    let mut checked = 0;
    let mut dirty = 0;
    let mut expect = |name: &str, value: u64, reset: u64| {
        checked += 1;
        if value != reset {
            dirty += 1;
            println!(
                "{}residue: {name} = {value:#x} (reset value {reset:#x})",
                lines::FAIL
            );
        }
    };
    macro_rules! check_one {
        ($name:literal, $asm:literal, $reset:expr, $present:expr) => {
            if $present {
                expect($name, read!($asm), $reset);
            }
        };
    }
    each_register!(check_one, present);
    // The OS lock is locked after a reset (OSLSR_EL1.OSLK, bit 1).
    expect("OSLSR_EL1.OSLK", (read!("oslsr_el1") >> 1) & 1, 1);
    if present.pmu {
        // Event counter 0 and its type, through the selector.
        write!("pmselr_el0", 0);
        expect("PMEVTYPER0_EL0", read!("pmxevtyper_el0"), 0);
        expect("PMEVCNTR0_EL0", read!("pmxevcntr_el0"), 0);
    }
    // SAFETY: `entry` wrote ENTRY_FP before primary_main started; nothing writes it since.
    let fp = unsafe { &*core::ptr::addr_of!(ENTRY_FP) };
    for (n, &q) in fp.q.iter().enumerate() {
        // Each V register as two doublewords, both 0 after a reset.
        let name = V_NAMES.get(n).copied().unwrap_or("V?");
        expect(name, q as u64, 0);
        expect(name, (q >> 64) as u64, 0);
    }
    expect("FPCR", fp.fpcr, 0);
    expect("FPSR", fp.fpsr, 0);
    (checked, dirty)
}

/// Fills every register with its pattern.
fn fill(present: &Present) {
    let mut n = 0;
    macro_rules! fill_one {
        ($name:literal, $asm:literal, $reset:expr, $present:expr) => {
            n += 1;
            if $present {
                write!($asm, fill_value($name, pattern(n)));
            }
        };
    }
    each_register!(fill_one, present);
    // Unlock the OS lock (the next instance must find it locked again).
    write!("oslar_el1", 0);
    if present.pmu {
        write!("pmselr_el0", 0);
        write!("pmxevtyper_el0", 0x11);
        write!("pmxevcntr_el0", 0xdead_beef);
    }
    // SAFETY: only V0-V31, FPCR and FPSR change; this function uses none of them afterwards
    // (the asm block is the last use and Rust keeps no values in them across it).
    unsafe {
        asm!(
            "dup v0.2d, {p}", "dup v1.2d, {p}", "dup v2.2d, {p}", "dup v3.2d, {p}",
            "dup v4.2d, {p}", "dup v5.2d, {p}", "dup v6.2d, {p}", "dup v7.2d, {p}",
            "dup v8.2d, {p}", "dup v9.2d, {p}", "dup v10.2d, {p}", "dup v11.2d, {p}",
            "dup v12.2d, {p}", "dup v13.2d, {p}", "dup v14.2d, {p}", "dup v15.2d, {p}",
            "dup v16.2d, {p}", "dup v17.2d, {p}", "dup v18.2d, {p}", "dup v19.2d, {p}",
            "dup v20.2d, {p}", "dup v21.2d, {p}", "dup v22.2d, {p}", "dup v23.2d, {p}",
            "dup v24.2d, {p}", "dup v25.2d, {p}", "dup v26.2d, {p}", "dup v27.2d, {p}",
            "dup v28.2d, {p}", "dup v29.2d, {p}", "dup v30.2d, {p}", "dup v31.2d, {p}",
            // Round towards zero, flush-to-zero, default NaN; every cumulative flag set.
            "msr fpcr, {fpcr}",
            "msr fpsr, {fpsr}",
            p = in(reg) pattern(99),
            fpcr = in(reg) 0x03c0_0000u64,
            fpsr = in(reg) 0x0800_009fu64,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _,
            out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nomem, nostack),
        );
    }
}

/// Reads back every register [`fill`] wrote: each must hold something other than its reset
/// value, or a clean next instance would prove nothing about the reset. Prints a FAIL line for
/// each that does not; returns how many were read back.
fn verify_filled(present: &Present) -> u32 {
    let mut verified = 0;
    let mut expect_changed = |name: &str, value: u64, reset: u64| {
        verified += 1;
        if value == reset {
            println!(
                "{}residue: {name} still reads its reset value {reset:#x} after the fill",
                lines::FAIL
            );
        }
    };
    macro_rules! verify_one {
        ($name:literal, $asm:literal, $reset:expr, $present:expr) => {
            // AMAIR_EL1 and AFSR0_EL1 are IMPLEMENTATION DEFINED and may ignore writes.
            if $present && !matches!($name, "AMAIR_EL1" | "AFSR0_EL1") {
                expect_changed($name, read!($asm), $reset);
            }
        };
    }
    each_register!(verify_one, present);
    expect_changed("OSLSR_EL1.OSLK", (read!("oslsr_el1") >> 1) & 1, 1);
    if present.pmu {
        write!("pmselr_el0", 0);
        expect_changed("PMEVTYPER0_EL0", read!("pmxevtyper_el0"), 0);
        expect_changed("PMEVCNTR0_EL0", read!("pmxevcntr_el0"), 0);
    }
    verified
}

/// The value written into `name`: the pattern, shaped to what the register keeps.
fn fill_value(name: &str, pattern: u64) -> u64 {
    match name {
        // Enabled, all byte lanes, every EL (breakpoint and watchpoint control).
        "DBGBCR0_EL1" => 0x1e7,
        "DBGWCR0_EL1" => 0x1ff7,
        // Aligned addresses.
        "DBGBVR0_EL1" | "DBGWVR0_EL1" => 0x0000_1234_5678_9000,
        // EL0 may read both counters; MDSCR_EL1: EL0 DCC accesses trap (TDCC).
        "CNTKCTL_EL1" => 0x3,
        "MDSCR_EL1" => 1 << 12,
        // EL0 access; counter 0 enabled and its interrupt (PMCR_EL0.E stays 0: nothing counts).
        "PMUSERENR_EL0" | "PMCNTENSET_EL0" | "PMINTENSET_EL1" => 1,
        // Do not count at EL1.
        "PMCCFILTR_EL0" => 1 << 31,
        // The longest vector length the CPU allows.
        "ZCR_EL1" => 0xf,
        // A stack pointer and addresses: 16-byte aligned.
        "SP_EL0" => pattern & !0xf,
        // Only TCR-independent bits matter; keep it a plausible value.
        "TTBR0_EL1" | "TTBR1_EL1" => pattern & 0x0000_ffff_ffff_f000,
        _ => pattern,
    }
}

/// Runs `test=residue`: check, fill, then beat.
pub fn run(beat: impl FnOnce()) {
    let present = Present::read();
    match check(&present) {
        (checked, 0) => println!(
            "{}{checked} registers at their reset values",
            lines::RESIDUE_CLEAN
        ),
        (checked, dirty) => println!(
            "{}residue: {dirty} of {checked} registers not at their reset values",
            lines::FAIL
        ),
    }
    fill(&present);
    let verified = verify_filled(&present);
    println!(
        "{} ({verified} system registers read back changed)",
        lines::RESIDUE_FILLED
    );
    beat();
}
