//! This vCPU's side of the GIC: the ICC_* system registers beyond what `sysregs` touches (binary
//! points, active priorities, EOImode, EOIs and deactivations of interrupts that are not active),
//! and its redistributor (a GICR_WAKER sleep/wake storm, GICR_CTLR.EnableLPIs, LPI property and
//! pending tables pointed at another cell's RAM). Both end by sending this vCPU an SGI and taking
//! it: whatever the guest did to its interface and redistributor, they must still work.

use cellvisor_guest_support::println;

use super::probe::{Outcome, read32, read64, write32, write64};
use super::{GICD, GICR, GICR_FRAME, PREFIX, Verdict};

/// The SGI the checks send to this vCPU.
const SGI: u64 = 5;
/// ICC_IAR1_EL1's answer when nothing is pending.
const SPURIOUS: u64 = 1023;
/// GICR_WAKER and its bits.
const GICR_WAKER: u64 = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;
/// Another cell's RAM.
const FOREIGN_RAM: u64 = 0x9000_0000;

/// Group 1 on, this redistributor awake, SGI 5 group 1 and enabled, the priority mask open.
fn gic_setup() -> bool {
    [
        write32(GICD, 0x12),                // GICD_CTLR: ARE_NS | EnableGrp1NS
        write32(GICR + GICR_WAKER, 0),      // GICR_WAKER: ProcessorSleep = 0
        write32(GICR + 0x1_0080, u32::MAX), // GICR_IGROUPR0: group 1
        write32(GICR + 0x1_0100, 1 << SGI), // GICR_ISENABLER0
        try_write!("S3_0_C4_C6_0", 0xFF),   // ICC_PMR_EL1
        try_write!("S3_0_C12_C12_7", 1),    // ICC_IGRPEN1_EL1
    ]
    .iter()
    .all(|outcome| matches!(outcome, Outcome::Done(_)))
}

/// Sends SGI 5 to this vCPU (ICC_SGI1R_EL1, target list Aff0 = 0) and polls ICC_IAR1_EL1 for it
/// with IRQs masked; completes it. True if it arrived.
fn self_sgi_arrives() -> bool {
    if !matches!(
        try_write!("S3_0_C12_C11_5", (SGI << 24) | 1),
        Outcome::Done(_)
    ) {
        return false;
    }
    for _ in 0..10_000 {
        match try_read!("S3_0_C12_C12_0") {
            Outcome::Done(intid) if intid & 0xFF_FFFF == SPURIOUS => {}
            Outcome::Done(intid) => {
                let intid = intid & 0xFF_FFFF;
                let _ = try_write!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1
                if intid == SGI {
                    return true;
                }
            }
            Outcome::Trapped { .. } => return false,
        }
    }
    false
}

pub(super) fn icc_registers() -> Verdict {
    if !gic_setup() {
        return Err("GIC setup was refused");
    }
    let before = self_sgi_arrives();
    let ctlr = try_read!("S3_0_C12_C12_4");
    let bpr1 = try_read!("S3_0_C12_C12_3");
    let probes = [
        ("ICC_SRE_EL1 write 0", try_write!("S3_0_C12_C12_5", 0)),
        ("ICC_SRE_EL1 read", try_read!("S3_0_C12_C12_5")),
        ("ICC_SRE_EL1 write 0x7", try_write!("S3_0_C12_C12_5", 0x7)),
        ("ICC_BPR0_EL1 write 0", try_write!("S3_0_C12_C8_3", 0)),
        ("ICC_BPR0_EL1 read", try_read!("S3_0_C12_C8_3")),
        ("ICC_BPR1_EL1 write 0", try_write!("S3_0_C12_C12_3", 0)),
        ("ICC_BPR1_EL1 read", try_read!("S3_0_C12_C12_3")),
        ("ICC_BPR1_EL1 write 7", try_write!("S3_0_C12_C12_3", 7)),
        (
            "ICC_AP0R0_EL1 write all",
            try_write!("S3_0_C12_C8_4", u64::from(u32::MAX)),
        ),
        ("ICC_AP0R0_EL1 read", try_read!("S3_0_C12_C8_4")),
        (
            "ICC_AP1R0_EL1 write all",
            try_write!("S3_0_C12_C9_0", u64::from(u32::MAX)),
        ),
        ("ICC_AP1R0_EL1 read", try_read!("S3_0_C12_C9_0")),
        (
            "ICC_AP1R3_EL1 write all",
            try_write!("S3_0_C12_C9_3", u64::from(u32::MAX)),
        ),
        (
            "ICC_RPR_EL1 read (priorities active)",
            try_read!("S3_0_C12_C11_3"),
        ),
        ("ICC_PMR_EL1 write 0", try_write!("S3_0_C4_C6_0", 0)),
        ("ICC_HPPIR1_EL1 read", try_read!("S3_0_C12_C12_2")),
        ("ICC_HPPIR0_EL1 read", try_read!("S3_0_C12_C8_2")),
        ("ICC_IAR0_EL1 read", try_read!("S3_0_C12_C8_0")),
        ("ICC_IGRPEN0_EL1 write 1", try_write!("S3_0_C12_C12_6", 1)),
        ("ICC_IGRPEN0_EL1 write 0", try_write!("S3_0_C12_C12_6", 0)),
        (
            "ICC_CTLR_EL1 write EOImode",
            try_write!("S3_0_C12_C12_4", 0x2),
        ),
        ("ICC_CTLR_EL1 read", try_read!("S3_0_C12_C12_4")),
        (
            "ICC_CTLR_EL1 write all",
            try_write!("S3_0_C12_C12_4", u64::MAX),
        ),
        ("ICC_EOIR1_EL1 1023", try_write!("S3_0_C12_C12_1", 1023)),
        (
            "ICC_EOIR1_EL1 27 (not active)",
            try_write!("S3_0_C12_C12_1", 27),
        ),
        (
            "ICC_EOIR1_EL1 33 (not active)",
            try_write!("S3_0_C12_C12_1", 33),
        ),
        (
            "ICC_EOIR1_EL1 0xffffff",
            try_write!("S3_0_C12_C12_1", 0xFF_FFFF),
        ),
        (
            "ICC_EOIR1_EL1 all ones",
            try_write!("S3_0_C12_C12_1", u64::MAX),
        ),
        ("ICC_EOIR0_EL1 1023", try_write!("S3_0_C12_C8_1", 1023)),
        ("ICC_DIR_EL1 33", try_write!("S3_0_C12_C11_1", 33)),
        (
            "ICC_DIR_EL1 48 (not the cell's)",
            try_write!("S3_0_C12_C11_1", 48),
        ),
        (
            "ICC_DIR_EL1 0xffffff",
            try_write!("S3_0_C12_C11_1", 0xFF_FFFF),
        ),
        ("ICC_NMIAR1_EL1 read", try_read!("S3_0_C12_C9_5")),
    ];
    let mut ok = true;
    for (what, outcome) in probes {
        println!("{PREFIX}icc-registers: {what} -> {outcome}");
        // Emulated or passed to the virtual interface, or refused as undefined: nothing else.
        ok &= !matches!(outcome, Outcome::Trapped { .. }) || outcome.is_undefined();
    }
    // The system-register interface cannot be turned off from EL1.
    let sre = try_read!("S3_0_C12_C12_5");
    ok &= matches!(sre, Outcome::Done(value) if value & 1 == 1);
    // Undo: no active priorities, the old control and binary point, mask open.
    let _ = try_write!("S3_0_C12_C8_4", 0);
    let _ = try_write!("S3_0_C12_C9_0", 0);
    let _ = try_write!("S3_0_C12_C9_3", 0);
    if let Outcome::Done(value) = ctlr {
        let _ = try_write!("S3_0_C12_C12_4", value);
    }
    if let Outcome::Done(value) = bpr1 {
        let _ = try_write!("S3_0_C12_C12_3", value);
    }
    let running = try_read!("S3_0_C12_C11_3");
    let after = gic_setup() && self_sgi_arrives();
    println!(
        "{PREFIX}icc-registers: ICC_SRE_EL1 afterwards {sre}, ICC_RPR_EL1 after the undo {running}; self SGI before {before}, after {after}"
    );
    ok &= before && after;
    if ok {
        Ok("every ICC register access stayed in the vCPU interface, SGIs still arrive")
    } else {
        Err("an ICC register access misbehaved or the interface stopped working")
    }
}

pub(super) fn gicr_waker_storm() -> Verdict {
    if !gic_setup() {
        return Err("GIC setup was refused");
    }
    let mut ok = true;
    let typer = read64(GICR + 8);
    let lpis = matches!(typer, Outcome::Done(value) if value & 1 == 1);
    // 10,000 sleep/wake cycles of this vCPU's redistributor and of vCPU 1's (which is off).
    let mut asleep_seen = 0u32;
    let mut wrong = 0u32;
    for round in 0..10_000u64 {
        let frame = GICR + GICR_FRAME * (round % 2);
        let sleep = write32(frame + GICR_WAKER, WAKER_PROCESSOR_SLEEP);
        if let Outcome::Done(value) = read32(frame + GICR_WAKER)
            && value & WAKER_CHILDREN_ASLEEP != 0
        {
            asleep_seen += 1;
        }
        let wake = write32(frame + GICR_WAKER, 0);
        let awake = read32(frame + GICR_WAKER);
        if !matches!((sleep, wake, awake), (Outcome::Done(_), Outcome::Done(_), Outcome::Done(value)) if value & 0x6 == 0)
        {
            wrong += 1;
        }
    }
    println!(
        "{PREFIX}gicr-waker-storm: 10000 GICR_WAKER sleep/wake cycles, ChildrenAsleep seen {asleep_seen} times, {wrong} not awake afterwards"
    );
    ok &= wrong == 0;
    // LPIs: enable them, and point the property and pending tables at another cell's RAM.
    let mut lpi_state = 0u32;
    for frame in [GICR, GICR + GICR_FRAME] {
        let probes = [
            ("GICR_CTLR EnableLPIs", write32(frame, 1)),
            ("GICR_CTLR read", read32(frame)),
            ("GICR_CTLR write all", write32(frame, u32::MAX)),
            ("GICR_CTLR read", read32(frame)),
            (
                "GICR_PROPBASER -> 0x90000000",
                write64(frame + 0x70, FOREIGN_RAM | 0x78F),
            ),
            ("GICR_PROPBASER read", read64(frame + 0x70)),
            (
                "GICR_PENDBASER -> 0x90000000",
                write64(frame + 0x78, FOREIGN_RAM | (1 << 62)),
            ),
            ("GICR_PENDBASER read", read64(frame + 0x78)),
            ("GICR_SETLPIR 8192", write64(frame + 0x40, 8192)),
            ("GICR_CLRLPIR 8192", write64(frame + 0x48, 8192)),
            ("GICR_INVLPIR 8192", write64(frame + 0xA0, 8192)),
            ("GICR_INVALLR", write64(frame + 0xB0, 0)),
            ("GICR_SYNCR read", read32(frame + 0xC0)),
            ("GICR_CTLR disable", write32(frame, 0)),
        ];
        for (what, outcome) in probes {
            println!("{PREFIX}gicr-waker-storm: frame {frame:#x} {what} -> {outcome}");
            // Emulated (RAZ/WI without LPIs) or refused with an injected abort.
            ok &= !matches!(outcome, Outcome::Trapped { .. }) || outcome.is_injected_abort();
            if !lpis
                && matches!(
                    what,
                    "GICR_CTLR read" | "GICR_PROPBASER read" | "GICR_PENDBASER read"
                )
                && matches!(outcome, Outcome::Done(value) if value & !0x8 != 0)
            {
                // Without GICR_TYPER.PLPIS nothing of it may stick (GICR_CTLR.RWP excepted).
                lpi_state += 1;
            }
        }
    }
    ok &= lpi_state == 0;
    let _ = write32(GICR + GICR_WAKER, 0);
    let delivered = gic_setup() && self_sgi_arrives();
    println!(
        "{PREFIX}gicr-waker-storm: GICR_TYPER {typer} (LPIs {lpis}); {lpi_state} LPI settings kept; self SGI afterwards {delivered}"
    );
    ok &= delivered;
    if ok {
        Ok("the redistributor slept and woke, no LPI table reached memory, SGIs still arrive")
    } else {
        Err("the redistributor kept LPI state it does not have, or stopped delivering")
    }
}
