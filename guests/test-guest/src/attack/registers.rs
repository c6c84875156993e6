//! System-register attacks: EL1-visible, EL2 and ICH registers, and the EL1 virtual timer.

use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{Outcome, attempt};
use super::{EC_UNKNOWN, PREFIX, Verdict};

pub(super) fn sysregs() -> Verdict {
    let mut ok = true;
    // Debug and PMU registers are the guest's own (passed through, reset at every vCPU start):
    // every access completes.
    let passed = [
        ("MDSCR_EL1 read", try_read!("mdscr_el1")),
        ("MDSCR_EL1 write", try_write!("mdscr_el1", 0x0000_A000)),
        ("MDSCR_EL1 clear", try_write!("mdscr_el1", 0)),
        ("OSLSR_EL1 read", try_read!("oslsr_el1")),
        ("OSLAR_EL1 lock", try_write!("oslar_el1", 1)),
        ("OSLAR_EL1 unlock", try_write!("oslar_el1", 0)),
        ("DBGBVR0_EL1 write", try_write!("dbgbvr0_el1", 0x9000_0000)),
        ("DBGBCR0_EL1 write", try_write!("dbgbcr0_el1", 0)),
        ("PMCR_EL0 read", try_read!("pmcr_el0")),
        ("PMCR_EL0 write", try_write!("pmcr_el0", 0x7)),
        ("PMCCNTR_EL0 read", try_read!("pmccntr_el0")),
        ("PMCCNTR_EL0 write", try_write!("pmccntr_el0", u64::MAX)),
        (
            "PMCNTENSET_EL0 write",
            try_write!("pmcntenset_el0", u64::MAX),
        ),
        ("PMUSERENR_EL0 write", try_write!("pmuserenr_el0", 0xF)),
        ("PMUSERENR_EL0 clear", try_write!("pmuserenr_el0", 0)),
        ("PMCR_EL0 stop", try_write!("pmcr_el0", 0)),
        (
            "PMCNTENCLR_EL0 write",
            try_write!("pmcntenclr_el0", u64::MAX),
        ),
    ];
    for (what, outcome) in passed {
        println!("{PREFIX}sysregs: {what} -> {outcome}");
        ok &= matches!(outcome, Outcome::Done(_));
    }
    // Trapped and emulated by cellvisor: ACTLR_EL1 reads as zero; a set/way clean completes
    // (done by address over the cell's own RAM).
    let actlr = try_read!("actlr_el1");
    println!("{PREFIX}sysregs: ACTLR_EL1 read -> {actlr}");
    ok &= matches!(actlr, Outcome::Done(0));
    let cisw = attempt(|| {
        // SAFETY: set/way clean-invalidate of set 0 way 0 of L1: at worst it cleans a line.
        unsafe { asm!("dc cisw, {}", in(reg) 0u64, options(nostack)) };
        0
    });
    println!("{PREFIX}sysregs: DC CISW -> {cisw}");
    ok &= matches!(cisw, Outcome::Done(_));
    // The GIC CPU interface: emulated, passed (ICV_*) or undefined; no hang.
    let allowed = [
        ("ICC_SRE_EL1 read", try_read!("S3_0_C12_C12_5")),
        ("ICC_SRE_EL1 write 0", try_write!("S3_0_C12_C12_5", 0)),
        ("ICC_CTLR_EL1 read", try_read!("S3_0_C12_C12_4")),
        (
            "ICC_SGI0R_EL1 broadcast",
            try_write!("S3_0_C12_C11_7", 1 << 40),
        ),
        (
            "ICC_ASGI1R_EL1 broadcast",
            try_write!("S3_0_C12_C11_6", 1 << 40),
        ),
        ("ICC_IAR1_EL1 read", try_read!("S3_0_C12_C12_0")),
        ("ICC_DIR_EL1 write 1019", try_write!("S3_0_C12_C11_1", 1019)),
    ];
    for (what, outcome) in allowed {
        println!("{PREFIX}sysregs: {what} -> {outcome}");
        if let Some(class) = outcome.class() {
            ok &= class == EC_UNKNOWN;
        }
    }
    // EL2 registers, the physical GIC's virtualization registers and EL2 TLB/AT operations:
    // undefined at EL1, whatever cellvisor does.
    let undefined = [
        ("ICH_HCR_EL2 read", try_read!("S3_4_C12_C11_0")),
        ("ICH_VTR_EL2 read", try_read!("S3_4_C12_C11_1")),
        ("ICH_LR0_EL2 write", try_write!("S3_4_C12_C12_0", u64::MAX)),
        ("ICC_SRE_EL2 read", try_read!("S3_4_C12_C9_5")),
        ("HCR_EL2 read", try_read!("hcr_el2")),
        ("HCR_EL2 write", try_write!("hcr_el2", 0)),
        ("VTTBR_EL2 write", try_write!("vttbr_el2", 0)),
        ("VBAR_EL2 write", try_write!("vbar_el2", 0)),
        ("SCTLR_EL2 read", try_read!("sctlr_el2")),
        ("CNTVOFF_EL2 write", try_write!("cntvoff_el2", u64::MAX)),
        ("CNTHCTL_EL2 write", try_write!("cnthctl_el2", u64::MAX)),
        (
            "TLBI ALLE2",
            attempt(|| {
                // SAFETY: undefined at EL1; if it were not, it would only invalidate TLBs.
                unsafe { asm!("tlbi alle2", "dsb sy", options(nostack)) };
                0
            }),
        ),
        (
            "AT S12E1R",
            attempt(|| {
                // SAFETY: undefined at EL1; otherwise an address translation with no side effect.
                unsafe { asm!("at s12e1r, {}", in(reg) 0x9000_0000u64, options(nostack)) };
                0
            }),
        ),
    ];
    for (what, outcome) in undefined {
        println!("{PREFIX}sysregs: {what} -> {outcome}");
        ok &= outcome.is_undefined();
    }
    if ok {
        Ok("EL2 and ICH registers undefined, debug and PMU the guest's, ACTLR and DC CISW emulated")
    } else {
        Err("an EL2 register was reachable, a passed register trapped or a trap was mishandled")
    }
}

pub(super) fn timer_read(which: u32) -> u64 {
    let value: u64;
    // SAFETY: reads of the EL1 virtual timer registers have no side effects.
    unsafe {
        match which {
            0 => asm!("mrs {}, cntv_ctl_el0", out(reg) value, options(nomem, nostack)),
            1 => asm!("mrs {}, cntv_tval_el0", out(reg) value, options(nomem, nostack)),
            _ => asm!("mrs {}, cntv_cval_el0", out(reg) value, options(nomem, nostack)),
        }
    }
    value
}

pub(super) fn timer_set(control: u64, compare: u64) {
    // SAFETY: programs this vCPU's virtual timer; its interrupt stays masked by PSTATE.I.
    unsafe {
        asm!("msr cntv_cval_el0, {c}", "msr cntv_ctl_el0, {t}", "isb", c = in(reg) compare,
            t = in(reg) control, options(nostack));
    }
}

pub(super) fn timer_set_tval(value: u64) {
    // SAFETY: as for `timer_set`.
    unsafe {
        asm!("msr cntv_tval_el0, {v}", "msr cntv_ctl_el0, {c}", "isb", v = in(reg) value, c = in(reg) 1u64, options(nostack))
    };
}

pub(super) fn timer() -> Verdict {
    let mut ok = true;
    for (what, compare) in [
        ("CVAL 0", 0u64),
        ("CVAL u64::MAX", u64::MAX),
        ("CVAL 1<<63", 1 << 63),
    ] {
        timer_set(1, compare);
        let control = timer_read(0);
        println!(
            "{PREFIX}timer: {what} -> CTL {control:#x} TVAL {:#x}",
            timer_read(1) as i32
        );
        // ISTATUS must say whether the compare value has passed.
        ok &= (control >> 2 & 1 == 1) == (compare == 0);
    }
    for (what, tval) in [
        ("TVAL -1", 0xFFFF_FFFFu64),
        ("TVAL i32::MIN", 0x8000_0000),
        ("TVAL i32::MAX", 0x7FFF_FFFF),
    ] {
        timer_set_tval(tval);
        println!(
            "{PREFIX}timer: {what} -> CTL {:#x} CVAL {:#x}",
            timer_read(0),
            timer_read(2)
        );
    }
    // The physical timer (EL1PCEN) and the secure one: allowed, trapped or undefined, no hang.
    let others = [
        ("CNTP_CVAL_EL0 0", try_write!("cntp_cval_el0", 0)),
        ("CNTP_CTL_EL0 enable", try_write!("cntp_ctl_el0", 1)),
        ("CNTP_CTL_EL0 read", try_read!("cntp_ctl_el0")),
        ("CNTP_CTL_EL0 disable", try_write!("cntp_ctl_el0", 0)),
        ("CNTPS_CTL_EL1 read", try_read!("S3_7_C14_C2_1")),
        ("CNTKCTL_EL1 write", try_write!("cntkctl_el1", u64::MAX)),
        ("CNTFRQ_EL0 write", try_write!("cntfrq_el0", 1)),
    ];
    for (what, outcome) in others {
        println!("{PREFIX}timer: {what} -> {outcome}");
    }
    timer_set(0, u64::MAX);
    // The guest's own clock still runs.
    let start = crate::timer::Instant::now().after_ms(1);
    ok &= crate::timer::wait_until(10_000, || start.has_passed());
    if ok {
        Ok("extreme compare values behave, the counter runs")
    } else {
        Err("timer status wrong")
    }
}
