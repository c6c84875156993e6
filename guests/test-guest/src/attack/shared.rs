//! Attacks on what the cells' CPUs share or what counts EL2's work: set/way cache maintenance
//! storms, the PMU counting at EL2, the trace unit, SPE, TRBE and activity monitors, the RAS error
//! records and the IMPLEMENTATION DEFINED registers.

use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{Outcome, attempt, hvc4, trap_count};
use super::{CELLVISOR_ABI, CELLVISOR_VERSION, PREFIX, Verdict};

/// `mrs` of an always-readable register (an ID register, CLIDR_EL1, ...).
macro_rules! read {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading an identification or cache-geometry register has no side effects.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
        value
    }};
}

/// `msr` of a register this attack owns (the PMU of its own vCPU), followed by an ISB.
macro_rules! write {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: programs this vCPU's own PMU or cache selection; nothing else depends on it.
        unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack)) };
    }};
}

fn field(value: u64, shift: u32) -> u64 {
    value >> shift & 0xF
}

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 after an ISB has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

fn frequency() -> u64 {
    match read!("cntfrq_el0") {
        0 => 1_000_000_000,
        value => value,
    }
}

/// One data cache level's set/way geometry.
#[derive(Clone, Copy)]
struct CacheLevel {
    /// Level - 1, as DC *SW and CSSELR_EL1 encode it.
    level: u64,
    sets: u64,
    ways: u64,
    /// log2 of the line length in bytes: where the set field starts.
    set_shift: u32,
    /// 32 - log2(ways) rounded up: where the way field starts.
    way_shift: u32,
}

/// The data and unified cache levels CLIDR_EL1 names, from CCSIDR_EL1 (either format).
fn data_cache_levels() -> ([Option<CacheLevel>; 7], usize) {
    let clidr = read!("clidr_el1");
    // ID_AA64MMFR2_EL1.CCIDX: the 64-bit CCSIDR_EL1 format.
    let ccidx = field(read!("id_aa64mmfr2_el1"), 20) != 0;
    let mut levels = [None; 7];
    let mut count = 0;
    for level in 0..7u64 {
        let kind = clidr >> (3 * level) & 0b111;
        if kind == 0 {
            break;
        }
        // 2: data only, 3: separate instruction and data, 4: unified.
        if kind < 2 {
            continue;
        }
        write!("csselr_el1", level << 1);
        let ccsidr = read!("ccsidr_el1");
        let (ways, sets) = if ccidx {
            (
                (ccsidr >> 3 & 0x1F_FFFF) + 1,
                (ccsidr >> 32 & 0xFF_FFFF) + 1,
            )
        } else {
            ((ccsidr >> 3 & 0x3FF) + 1, (ccsidr >> 13 & 0x7FFF) + 1)
        };
        let way_bits = u64::BITS - (ways - 1).leading_zeros();
        levels[count] = Some(CacheLevel {
            level,
            sets,
            ways,
            set_shift: (ccsidr & 0b111) as u32 + 4,
            way_shift: 32 - way_bits,
        });
        count += 1;
    }
    write!("csselr_el1", 0);
    (levels, count)
}

fn set_way(operation: usize, value: u64) {
    // SAFETY: cache maintenance by set/way of this vCPU's caches. With HCR_EL2.TSW cellvisor does
    // it by address over the cell's own RAM; without, SWIO makes an invalidate a clean and
    // invalidate, so no dirty line of anyone is lost either way.
    unsafe {
        match operation {
            0 => asm!("dc cisw, {}", in(reg) value, options(nostack)),
            1 => asm!("dc isw, {}", in(reg) value, options(nostack)),
            _ => asm!("dc csw, {}", in(reg) value, options(nostack)),
        }
    }
}

/// Rounds of whole-cache walks: DC CISW, DC ISW, DC CSW.
const SET_WAY_ROUNDS: usize = 3;

pub(super) fn set_way_storm() -> Verdict {
    let (levels, count) = data_cache_levels();
    let levels = &levels[..count];
    for level in levels.iter().flatten() {
        println!(
            "{PREFIX}set-way-storm: L{} {} sets x {} ways, lines of {} bytes",
            level.level + 1,
            level.sets,
            level.ways,
            1u64 << level.set_shift
        );
    }
    if levels.is_empty() {
        return Err("CLIDR_EL1 names no data cache");
    }
    let traps_before = trap_count();
    let start = counter();
    let mut operations = 0u64;
    for round in 0..SET_WAY_ROUNDS {
        // Every set and way of every level, counting down as the architecture's example walk
        // does, so each level's walk ends at set 0 / way 0.
        for level in levels.iter().flatten() {
            for way in (0..level.ways).rev() {
                for set in (0..level.sets).rev() {
                    let value =
                        (way << level.way_shift) | (set << level.set_shift) | level.level << 1;
                    set_way(round, value);
                    operations += 1;
                }
            }
        }
    }
    let ticks = counter().wrapping_sub(start);
    let milliseconds = ticks * 1000 / frequency();
    let exceptions = trap_count() - traps_before;
    println!(
        "{PREFIX}set-way-storm: {operations} set/way operations ({SET_WAY_ROUNDS} rounds of DC CISW, ISW, CSW over {} levels) in {milliseconds} ms",
        levels.len()
    );
    if exceptions != 0 {
        Err("a set/way operation raised an exception")
    } else {
        Ok("every set/way operation completed; the victim beat on")
    }
}

/// PMU event numbers and filter bits (PMEVTYPER<n>_EL0, PMCCFILTR_EL0).
const CPU_CYCLES: u64 = 0x11;
const INST_RETIRED: u64 = 0x08;
/// P: do not count at EL1; U: do not count at EL0; NSH: count at EL2.
const FILTER_P: u64 = 1 << 31;
const FILTER_U: u64 = 1 << 30;
const FILTER_NSH: u64 = 1 << 27;
/// Count at EL2 only.
const EL2_ONLY: u64 = FILTER_P | FILTER_U | FILTER_NSH;
/// PMCR_EL0: E (enable), P (reset event counters), C (reset the cycle counter), LC (64-bit);
/// DP (bit 5) clear: the cycle counter is not stopped by prohibited regions on its own.
const PMCR_RUN: u64 = 1 | (1 << 1) | (1 << 2) | (1 << 6);
/// HVCs whose EL2 work the counters must not see.
const PMU_HVCS: u64 = 20_000;

/// Cycle counter, event counter 0 (cycles) and, if counted, event counter 1 (instructions).
#[derive(Clone, Copy)]
struct Counts([u64; 3]);

impl Counts {
    fn now() -> Self {
        // SAFETY: the ISB orders the reads after everything before; reading counters has no side
        // effects.
        unsafe { asm!("isb", options(nomem, nostack)) };
        let cycles = read!("pmccntr_el0");
        let event0 = read!("pmevcntr0_el0");
        let event1 = read!("pmevcntr1_el0");
        Self([cycles, event0, event1])
    }

    fn since(self, earlier: Counts) -> Counts {
        let mut delta = [0; 3];
        for (index, slot) in delta.iter_mut().enumerate() {
            *slot = self.0[index].wrapping_sub(earlier.0[index]) & 0xFFFF_FFFF;
        }
        Counts(delta)
    }
}

/// Programs the cycle counter and event counters 0 (cycles) and 1 (instructions, if the PMU
/// counts them) with `filter`, resets them and starts them.
fn pmu_start(filter: u64, instructions: bool) {
    write!("pmcntenclr_el0", u64::MAX);
    write!("pmccfiltr_el0", filter);
    write!("pmselr_el0", 0);
    write!("pmxevtyper_el0", CPU_CYCLES | filter);
    let mut enable = (1 << 31) | 1;
    if instructions {
        write!("pmselr_el0", 1);
        write!("pmxevtyper_el0", INST_RETIRED | filter);
        enable |= 2;
    }
    write!("pmcr_el0", PMCR_RUN);
    write!("pmcntenset_el0", enable);
}

fn pmu_stop() {
    write!("pmcntenclr_el0", u64::MAX);
    write!("pmcr_el0", 0);
    write!("pmccfiltr_el0", 0);
}

pub(super) fn pmu_el2() -> Verdict {
    let version = field(read!("id_aa64dfr0_el1"), 8);
    if version == 0 || version == 0xF {
        return Err("no PMUv3 to count with");
    }
    let counters = read!("pmcr_el0") >> 11 & 0x1F;
    if counters < 2 {
        return Err("fewer than two event counters");
    }
    let instructions = read!("pmceid0_el0") & (1 << INST_RETIRED) != 0;
    // Counting at EL2 only: across HVCs (EL2 work on every one) and across a spin of the same
    // length with no exit at all.
    pmu_start(EL2_ONLY, instructions);
    let before = Counts::now();
    let start = counter();
    let mut wrong = 0u64;
    for _ in 0..PMU_HVCS {
        if hvc4(u64::from(CELLVISOR_VERSION), 0, 0, 0)[0] as i64 != CELLVISOR_ABI {
            wrong += 1;
        }
    }
    let ticks = counter().wrapping_sub(start);
    let with_hvcs = Counts::now().since(before);
    pmu_start(EL2_ONLY, instructions);
    let before = Counts::now();
    let end = counter().wrapping_add(ticks);
    while counter() < end {
        core::hint::spin_loop();
    }
    let without = Counts::now().since(before);
    // The guest's own counting still works: EL0 and EL1 (no filter bit) over a short spin.
    pmu_start(0, instructions);
    let before = Counts::now();
    let end = counter().wrapping_add(frequency() / 1000);
    while counter() < end {
        core::hint::spin_loop();
    }
    let own = Counts::now().since(before);
    pmu_stop();
    let names = ["cycle counter", "event cycles", "event instructions"];
    let used = if instructions { 3 } else { 2 };
    let mut grew = false;
    for (index, name) in names.iter().enumerate().take(used) {
        let (hvcs, quiet) = (with_hvcs.0[index], without.0[index]);
        println!(
            "{PREFIX}pmu-el2: {name} filtered to EL2: +{hvcs} over {PMU_HVCS} HVCs, +{quiet} over as long without; counting EL1: +{}",
            own.0[index]
        );
        // Less than one count per ten HVCs beyond the quiet run: EL2's work is not counted.
        grew |= hvcs > quiet + PMU_HVCS / 10;
    }
    if wrong != 0 {
        Err("a CELLVISOR_VERSION call got a wrong answer")
    } else if grew {
        Err("the guest's PMU counted EL2's work")
    } else if own.0[0] == 0 || own.0[1] == 0 {
        Err("the guest's PMU does not count its own cycles")
    } else {
        Ok("the PMU counted nothing at EL2 and the guest's own cycles")
    }
}

/// Whether `outcome` is a completed read of zero.
fn reads_zero(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Done(0))
}

pub(super) fn trace_amu() -> Verdict {
    let dfr0 = read!("id_aa64dfr0_el1");
    let pfr0 = read!("id_aa64pfr0_el1");
    let amu = field(pfr0, 44) != 0;
    println!(
        "{PREFIX}trace-amu: ID_AA64DFR0_EL1 TraceVer {} TraceFilt {} TraceBuffer {} PMSVer {}; ID_AA64PFR0_EL1.AMU {}",
        field(dfr0, 4),
        field(dfr0, 40),
        field(dfr0, 44),
        field(dfr0, 32),
        field(pfr0, 44)
    );
    let mut ok = true;
    // Trace unit (TRCPRGCTLR, TRCSTATR, TRCIDR0), trace filter (TRFCR_EL1), trace buffer
    // (TRBLIMITR_EL1, TRBIDR_EL1), statistical profiling (PMSCR_EL1, PMSIDR_EL1, PMBLIMITR_EL1,
    // PMBIDR_EL1): undefined for the guest, whether or not the CPU has them.
    let undefined = [
        ("TRCPRGCTLR read", try_read!("S2_1_C0_C1_0")),
        ("TRCPRGCTLR write", try_write!("S2_1_C0_C1_0", 1)),
        ("TRCSTATR read", try_read!("S2_1_C0_C3_0")),
        ("TRCIDR0 read", try_read!("S2_1_C0_C8_7")),
        ("TRFCR_EL1 read", try_read!("S3_0_C1_C2_1")),
        ("TRFCR_EL1 write", try_write!("S3_0_C1_C2_1", 0x7F)),
        ("TRBLIMITR_EL1 write", try_write!("S3_0_C9_C11_0", 1)),
        ("TRBIDR_EL1 read", try_read!("S3_0_C9_C11_7")),
        ("PMSCR_EL1 write", try_write!("S3_0_C9_C9_0", 0x7)),
        ("PMSIDR_EL1 read", try_read!("S3_0_C9_C9_7")),
        ("PMBLIMITR_EL1 write", try_write!("S3_0_C9_C10_0", 1)),
        ("PMBIDR_EL1 read", try_read!("S3_0_C9_C10_7")),
    ];
    for (what, outcome) in undefined {
        println!("{PREFIX}trace-amu: {what} -> {outcome}");
        ok &= outcome.is_undefined();
    }
    // Activity monitors (AMCR_EL0, AMCFGR_EL0, AMUSERENR_EL0, AMCNTENSET0_EL0, AMEVCNTR00_EL0,
    // AMEVCNTR01_EL0): undefined without FEAT_AMUv1; with it, trapped by cellvisor and read as
    // zero (counters firmware left disabled), writes ignored.
    let monitors = [
        ("AMCR_EL0 read", try_read!("S3_3_C13_C2_0"), true),
        ("AMCFGR_EL0 read", try_read!("S3_3_C13_C2_1"), true),
        ("AMUSERENR_EL0 write", try_write!("S3_3_C13_C2_3", 1), false),
        (
            "AMCNTENSET0_EL0 write",
            try_write!("S3_3_C13_C2_5", 0xF),
            false,
        ),
        ("AMCNTENSET0_EL0 read", try_read!("S3_3_C13_C2_5"), true),
        ("AMEVCNTR00_EL0 read", try_read!("S3_3_C13_C4_0"), true),
        ("AMEVCNTR01_EL0 read", try_read!("S3_3_C13_C4_1"), true),
    ];
    for (what, outcome, read) in monitors {
        println!("{PREFIX}trace-amu: {what} -> {outcome}");
        ok &= if !amu {
            outcome.is_undefined()
        } else if read {
            reads_zero(outcome)
        } else {
            matches!(outcome, Outcome::Done(_))
        };
    }
    if ok {
        Ok("trace, trace filter, TRBE and SPE undefined; activity monitors undefined or zero")
    } else {
        Err("a trace, profiling or activity monitor register was reachable")
    }
}

pub(super) fn ras_impdef() -> Verdict {
    let ras = field(read!("id_aa64pfr0_el1"), 28) != 0;
    println!("{PREFIX}ras-impdef: ID_AA64PFR0_EL1.RAS {}", u64::from(ras));
    let mut ok = true;
    // RAS error records: the cell has none. ERRIDR_EL1 reads as zero records; with none, the
    // architecture lets ERRSELR_EL1 and the ERX* registers be RAZ/WI (cellvisor's answer when
    // they trap) or undefined (QEMU's, before any trap): either, never a record.
    let idr = try_read!("S3_0_C5_C3_0");
    println!("{PREFIX}ras-impdef: ERRIDR_EL1 read -> {idr}");
    ok &= if ras {
        reads_zero(idr)
    } else {
        idr.is_undefined()
    };
    let records = [
        ("ERRSELR_EL1 write 1", try_write!("S3_0_C5_C3_1", 1), false),
        ("ERRSELR_EL1 read", try_read!("S3_0_C5_C3_1"), true),
        ("ERXFR_EL1 read", try_read!("S3_0_C5_C4_0"), true),
        (
            "ERXCTLR_EL1 write",
            try_write!("S3_0_C5_C4_1", u64::MAX),
            false,
        ),
        ("ERXCTLR_EL1 read", try_read!("S3_0_C5_C4_1"), true),
        ("ERXSTATUS_EL1 read", try_read!("S3_0_C5_C4_2"), true),
        ("ERXADDR_EL1 read", try_read!("S3_0_C5_C4_3"), true),
        ("ERXMISC0_EL1 read", try_read!("S3_0_C5_C5_0"), true),
    ];
    for (what, outcome, read) in records {
        println!("{PREFIX}ras-impdef: {what} -> {outcome}");
        ok &= match outcome {
            Outcome::Done(value) => ras && (!read || value == 0),
            Outcome::Trapped { .. } => outcome.is_undefined(),
        };
    }
    // ACTLR_EL1: reads as zero, writes ignored.
    let actlr = [
        ("ACTLR_EL1 read", try_read!("actlr_el1"), true),
        ("ACTLR_EL1 write", try_write!("actlr_el1", u64::MAX), false),
        ("ACTLR_EL1 read back", try_read!("actlr_el1"), true),
    ];
    for (what, outcome, read) in actlr {
        println!("{PREFIX}ras-impdef: {what} -> {outcome}");
        ok &= if read {
            reads_zero(outcome)
        } else {
            matches!(outcome, Outcome::Done(_))
        };
    }
    // IMPLEMENTATION DEFINED registers and instructions (CRn 11 and 15): undefined, including
    // the ones the CPU implements (QEMU's `max` has Cortex-A57's CPUACTLR_EL1 and L2CTLR_EL1).
    let undefined = [
        (
            "CPUACTLR_EL1 (S3_1_C15_C2_0) read",
            try_read!("S3_1_C15_C2_0"),
        ),
        (
            "CPUACTLR_EL1 (S3_1_C15_C2_0) write",
            try_write!("S3_1_C15_C2_0", u64::MAX),
        ),
        (
            "L2CTLR_EL1 (S3_1_C11_C0_2) read",
            try_read!("S3_1_C11_C0_2"),
        ),
        ("S3_0_C15_C0_0 read", try_read!("S3_0_C15_C0_0")),
        ("S3_7_C15_C15_7 write", try_write!("S3_7_C15_C15_7", 1)),
        ("S3_0_C11_C0_0 read", try_read!("S3_0_C11_C0_0")),
        (
            "SYS #0, C15, C0, #0",
            attempt(|| {
                // SAFETY: an IMPLEMENTATION DEFINED system instruction: trapped and undefined.
                unsafe { asm!("sys #0, c15, c0, #0, {}", in(reg) 0u64, options(nostack)) };
                0
            }),
        ),
    ];
    for (what, outcome) in undefined {
        println!("{PREFIX}ras-impdef: {what} -> {outcome}");
        ok &= outcome.is_undefined();
    }
    if ok {
        Ok("no error record, ACTLR_EL1 zero, IMPLEMENTATION DEFINED registers undefined")
    } else {
        Err("an error record, ACTLR_EL1 or an IMPLEMENTATION DEFINED register was reachable")
    }
}
