//! What a vCPU starts with: the one table of every EL1/EL0 system register a guest can write,
//! and the value each gets at every vCPU start (boot, CPU_ON, restart, start after a wipe), so
//! nothing of a previous instance of the cell, or of the vCPU before its CPU_OFF, survives.
//!
//! [`el1_registers!`](crate::el1_registers) is the table. It is a macro so that the one list feeds both the aarch64
//! glue, which expands it into one `msr` per register (`arch::aarch64::reset`), and the host
//! tests below, which check it against the architecture's list of guest-reachable registers. Each
//! row is `(NAME, "assembler encoding", value, needs)`, where `needs` names the
//! `arch::aarch64::traps::CpuFeatures` field that says the register exists (`always` for the base
//! architecture), so a register is written exactly where the CPU implements it.
//!
//! What the table does not hold, because it is not one system register per row, is reset beside
//! it by the same glue and listed in [`RESET_ELSEWHERE`]: the FP/SIMD/SVE/SME register files, the
//! numbered debug and PMU registers, and the guest's GIC CPU interface (its ICH_* state). What no
//! reset writes, on purpose, is in [`NOT_RESET`] with the reason.
#![forbid(unsafe_code)]

/// SCTLR_EL1 at vCPU start: MMU, caches and alignment checks off, the bits that are RES1 without
/// their feature set (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE). `arch::aarch64::traps` builds the
/// same value from named fields and checks that they agree.
pub const SCTLR_EL1: u64 = 0x30D0_0800;
/// OSLAR_EL1 at vCPU start: 1 locks the OS lock, as a cold reset leaves it (the guest's debug
/// code unlocks it).
pub const OS_LOCK: u64 = 1;

/// Calls `$apply!` with every row of the table (see the module documentation).
#[macro_export]
macro_rules! el1_registers {
    ($apply:ident) => {
        $apply! {
            // Translation and the MMU.
            (SCTLR_EL1, "sctlr_el1", $crate::core::reset::SCTLR_EL1, always),
            (TTBR0_EL1, "ttbr0_el1", 0, always),
            (TTBR1_EL1, "ttbr1_el1", 0, always),
            (TCR_EL1, "tcr_el1", 0, always),
            (MAIR_EL1, "mair_el1", 0, always),
            (AMAIR_EL1, "amair_el1", 0, always),
            (CONTEXTIDR_EL1, "contextidr_el1", 0, always),
            (TCR2_EL1, "s3_0_c2_c0_3", 0, tcr2),
            (SCTLR2_EL1, "s3_0_c1_c0_3", 0, sctlr2),
            (MAIR2_EL1, "s3_0_c10_c2_1", 0, aie),
            (AMAIR2_EL1, "s3_0_c10_c3_1", 0, aie),
            (PIRE0_EL1, "s3_0_c10_c2_2", 0, s1pie),
            (PIR_EL1, "s3_0_c10_c2_3", 0, s1pie),
            (POR_EL0, "s3_3_c10_c2_4", 0, s1poe),
            (POR_EL1, "s3_0_c10_c2_4", 0, s1poe),
            (S2POR_EL1, "s3_0_c10_c2_5", 0, s2poe),
            (RCWMASK_EL1, "s3_0_c13_c0_6", 0, the),
            (LORSA_EL1, "s3_0_c10_c4_0", 0, lor),
            (LOREA_EL1, "s3_0_c10_c4_1", 0, lor),
            (LORN_EL1, "s3_0_c10_c4_2", 0, lor),
            (LORC_EL1, "s3_0_c10_c4_3", 0, lor),
            // Exceptions.
            (VBAR_EL1, "vbar_el1", 0, always),
            (ESR_EL1, "esr_el1", 0, always),
            (FAR_EL1, "far_el1", 0, always),
            (PAR_EL1, "par_el1", 0, always),
            (AFSR0_EL1, "afsr0_el1", 0, always),
            (AFSR1_EL1, "afsr1_el1", 0, always),
            (ELR_EL1, "elr_el1", 0, always),
            (SPSR_EL1, "spsr_el1", 0, always),
            (SP_EL0, "sp_el0", 0, always),
            (SP_EL1, "sp_el1", 0, always),
            (PFAR_EL1, "s3_0_c6_c0_5", 0, pfar),
            // DISR_EL1 is VDISR_EL2 while HCR_EL2.AMO is set.
            (VDISR_EL2, "s3_4_c12_c1_1", 0, ras),
            // Thread and context IDs.
            (TPIDR_EL0, "tpidr_el0", 0, always),
            (TPIDRRO_EL0, "tpidrro_el0", 0, always),
            (TPIDR_EL1, "tpidr_el1", 0, always),
            (SCXTNUM_EL0, "s3_3_c13_c0_7", 0, scxtnum),
            (SCXTNUM_EL1, "s3_0_c13_c0_7", 0, scxtnum),
            (ACCDATA_EL1, "s3_0_c13_c0_5", 0, ls64_accdata),
            // Caches and traps of EL0.
            (CSSELR_EL1, "csselr_el1", 0, always),
            (CPACR_EL1, "cpacr_el1", 0, always),
            // FP, SVE, SME control (the register files are reset beside the table).
            (FPCR, "s3_3_c4_c4_0", 0, always),
            (FPSR, "s3_3_c4_c4_1", 0, always),
            (FPMR, "s3_3_c4_c4_2", 0, fpmr),
            (ZCR_EL1, "s3_0_c1_c2_0", 0, sve),
            (SMCR_EL1, "s3_0_c1_c2_6", 0, sme),
            (SMPRI_EL1, "s3_0_c1_c2_4", 0, sme),
            (TPIDR2_EL0, "s3_3_c13_c0_5", 0, sme),
            // SVCR 0 leaves streaming mode and turns ZA (and ZT0) off: their contents are gone,
            // and ZA reads as zero when the guest turns it on again.
            (SVCR, "s3_3_c4_c2_2", 0, sme),
            // Pointer authentication keys.
            (APIAKEYLO_EL1, "s3_0_c2_c1_0", 0, pauth),
            (APIAKEYHI_EL1, "s3_0_c2_c1_1", 0, pauth),
            (APIBKEYLO_EL1, "s3_0_c2_c1_2", 0, pauth),
            (APIBKEYHI_EL1, "s3_0_c2_c1_3", 0, pauth),
            (APDAKEYLO_EL1, "s3_0_c2_c2_0", 0, pauth),
            (APDAKEYHI_EL1, "s3_0_c2_c2_1", 0, pauth),
            (APDBKEYLO_EL1, "s3_0_c2_c2_2", 0, pauth),
            (APDBKEYHI_EL1, "s3_0_c2_c2_3", 0, pauth),
            (APGAKEYLO_EL1, "s3_0_c2_c3_0", 0, pauth),
            (APGAKEYHI_EL1, "s3_0_c2_c3_1", 0, pauth),
            // Memory tagging.
            (TFSR_EL1, "s3_0_c5_c6_0", 0, mte2),
            (TFSRE0_EL1, "s3_0_c5_c6_1", 0, mte2),
            (GCR_EL1, "s3_0_c1_c0_6", 0, mte2),
            (RGSR_EL1, "s3_0_c1_c0_5", 0, mte2),
            // Guarded control stacks.
            (GCSCR_EL1, "s3_0_c2_c5_0", 0, gcs),
            (GCSPR_EL1, "s3_0_c2_c5_1", 0, gcs),
            (GCSCRE0_EL1, "s3_0_c2_c5_2", 0, gcs),
            (GCSPR_EL0, "s3_3_c2_c5_1", 0, gcs),
            // Generic timers: both EL1 timers off, their compare values cleared, EL0 access off.
            (CNTKCTL_EL1, "cntkctl_el1", 0, always),
            (CNTV_CTL_EL0, "cntv_ctl_el0", 0, always),
            (CNTV_CVAL_EL0, "cntv_cval_el0", 0, always),
            (CNTP_CTL_EL0, "cntp_ctl_el0", 0, always),
            (CNTP_CVAL_EL0, "cntp_cval_el0", 0, always),
            // Self-hosted debug (the numbered breakpoint and watchpoint registers beside the
            // table). The OS lock is locked first: the OS save/restore registers below are only
            // defined while it is.
            (OSLAR_EL1, "oslar_el1", $crate::core::reset::OS_LOCK, always),
            (MDSCR_EL1, "mdscr_el1", 0, always),
            (MDCCINT_EL1, "mdccint_el1", 0, always),
            (OSDTRRX_EL1, "osdtrrx_el1", 0, always),
            (OSDTRTX_EL1, "osdtrtx_el1", 0, always),
            (OSECCR_EL1, "oseccr_el1", 0, always),
            // Writing ones clears every claim tag.
            (DBGCLAIMCLR_EL1, "dbgclaimclr_el1", 0xff, always),
            // PMU (the numbered event type registers beside the table): counting off, P and C
            // reset every event counter and the cycle counter, every enable, interrupt enable and
            // overflow flag cleared, EL0 access off.
            (PMCR_EL0, "pmcr_el0", 0b110, pmu),
            (PMCNTENCLR_EL0, "pmcntenclr_el0", 0xffff_ffff, pmu),
            (PMINTENCLR_EL1, "pmintenclr_el1", 0xffff_ffff, pmu),
            (PMOVSCLR_EL0, "pmovsclr_el0", 0xffff_ffff, pmu),
            (PMUSERENR_EL0, "pmuserenr_el0", 0, pmu),
            (PMCCFILTR_EL0, "pmccfiltr_el0", 0, pmu),
            (PMSELR_EL0, "pmselr_el0", 0, pmu),
        }
    };
}

/// One row of [`el1_registers!`](crate::el1_registers), for the host tests and the documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    /// The architectural name.
    pub name: &'static str,
    /// The value written at every vCPU start.
    pub value: u64,
    /// The `CpuFeatures` field that says the register exists (`always`: the base architecture).
    pub needs: &'static str,
}

macro_rules! table {
    ($(($name:ident, $encoding:literal, $value:expr, $needs:ident)),* $(,)?) => {
        /// Every row of [`el1_registers!`](crate::el1_registers).
        pub const TABLE: &[ResetRegister] = &[$(ResetRegister {
            name: stringify!($name),
            value: $value,
            needs: stringify!($needs),
        }),*];
    };
}
el1_registers!(table);

/// Guest state reset at every vCPU start beside the table (by `arch::aarch64::reset`, except
/// where another module is named), as register-name patterns: `<n>` stands for every index the
/// CPU implements.
pub const RESET_ELSEWHERE: &[(&str, &str)] = &[
    (
        "V<n>",
        "zeroed with AdvSIMD moves, which also zero the rest of each SVE Z<n>",
    ),
    (
        "Z<n>",
        "upper bits zeroed with V<n>; streaming mode is off (SVCR)",
    ),
    ("P<n>", "PFALSE (SVE)"),
    ("FFR", "WRFFR from a false predicate (SVE)"),
    ("ZA", "off and discarded (SVCR.ZA = 0)"),
    ("ZT0", "off and discarded with ZA (SME2)"),
    (
        "DBGBCR<n>_EL1",
        "0, for every breakpoint ID_AA64DFR0_EL1.BRPs counts",
    ),
    ("DBGBVR<n>_EL1", "0, for every breakpoint"),
    (
        "DBGWCR<n>_EL1",
        "0, for every watchpoint ID_AA64DFR0_EL1.WRPs counts",
    ),
    ("DBGWVR<n>_EL1", "0, for every watchpoint"),
    (
        "PMEVTYPER<n>_EL0",
        "0 through PMSELR_EL0/PMXEVTYPER_EL0, for every counter PMCR_EL0.N counts",
    ),
    ("PMEVCNTR<n>_EL0", "reset by PMCR_EL0.P"),
    ("PMCCNTR_EL0", "reset by PMCR_EL0.C"),
    ("PMCNTENSET_EL0", "the same bits as PMCNTENCLR_EL0"),
    ("PMINTENSET_EL1", "the same bits as PMINTENCLR_EL1"),
    ("PMOVSSET_EL0", "the same bits as PMOVSCLR_EL0"),
    ("PMXEVTYPER_EL0", "the PMEVTYPER<n>_EL0 PMSELR_EL0 selects"),
    ("PMXEVCNTR_EL0", "the PMEVCNTR<n>_EL0 PMSELR_EL0 selects"),
    ("OSLSR_EL1", "reads the OS lock OSLAR_EL1 sets"),
    ("DBGCLAIMSET_EL1", "the same tags as DBGCLAIMCLR_EL1"),
    (
        "ICC_* (ICV_*)",
        "the virtual CPU interface: ICH_VMCR_EL2 and every ICH_AP0R<n>/ICH_AP1R<n>_EL2 \
      (arch::aarch64::cpu prepare), the list registers (emptied)",
    ),
    (
        "X0-X30, PC, PSTATE",
        "core::hardware::GuestRegs::boot: zero but x0, the entry, EL1h masked",
    ),
    (
        "CNTVOFF_EL2",
        "0 (the cell's virtual counter is the physical one)",
    ),
];

/// Guest-reachable registers no reset writes, and why.
pub const NOT_RESET: &[(&str, &str)] = &[
    (
        "ACTLR_EL1",
        "trapped (HCR_EL2.TACR): reads as zero, writes ignored, so no guest changes it",
    ),
    (
        "IMPLEMENTATION DEFINED registers (S3_<op1>_C11/C15_*)",
        "trapped (HCR_EL2.TIDCP): undefined for the guest",
    ),
    (
        "RAS error records (ERRSELR_EL1, ERX*)",
        "trapped (HCR_EL2.TERR, FIEN): the cell has no record (RAZ/WI)",
    ),
    (
        "TRFCR_EL1",
        "trapped where it exists (MDCR_EL2.TTRF): undefined for the guest",
    ),
    (
        "trace unit (TRC*)",
        "trapped (CPTR_EL2.TTA): undefined for the guest",
    ),
    (
        "RCWSMASK_EL1",
        "FEAT_THE with FEAT_D128: 128-bit, needs MSRR; hidden by FGT2",
    ),
    (
        "SPE (PMS*, PMB*)",
        "owned by EL2 (MDCR_EL2.E2PB = 0, TPMS): the guest's accesses trap",
    ),
    (
        "TRBE (TRB*)",
        "owned by EL2 (MDCR_EL2.E2TB = 0): the guest's accesses trap",
    ),
    (
        "BRBE (BRB*)",
        "branch records: passed; BRBCR_EL1 is 0 at reset on the cores that have it",
    ),
    (
        "AMU (AMEVCNTR*, AMCNTEN*)",
        "trapped (CPTR_EL2.TAM): reads as zero, writes ignored",
    ),
    (
        "ID registers, MIDR/MPIDR/REVIDR, CTR, DCZID, CLIDR, CCSIDR, AIDR, ISR, GMID, SMIDR",
        "read-only",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every EL1/EL0 system register a fine-grained read trap (HFGRTR_EL2, HDFGRTR_EL2) can name,
    /// which is the architecture's own list of registers a guest can reach, plus the ones no FGT
    /// covers (FP control, timers, stack pointers, SVE/SME control, the OS lock). Each must be
    /// reset by the table, reset elsewhere, or read-only / deliberately not reset.
    const REACHABLE: &[&str] = &[
        // HFGRTR_EL2.
        "AFSR0_EL1",
        "AFSR1_EL1",
        "AMAIR_EL1",
        "APDAKEYLO_EL1",
        "APDAKEYHI_EL1",
        "APDBKEYLO_EL1",
        "APDBKEYHI_EL1",
        "APGAKEYLO_EL1",
        "APGAKEYHI_EL1",
        "APIAKEYLO_EL1",
        "APIAKEYHI_EL1",
        "APIBKEYLO_EL1",
        "APIBKEYHI_EL1",
        "CONTEXTIDR_EL1",
        "CPACR_EL1",
        "CSSELR_EL1",
        "ESR_EL1",
        "FAR_EL1",
        "LORC_EL1",
        "LOREA_EL1",
        "LORN_EL1",
        "LORSA_EL1",
        "MAIR_EL1",
        "PAR_EL1",
        "SCTLR_EL1",
        "SCXTNUM_EL1",
        "SCXTNUM_EL0",
        "TCR_EL1",
        "TPIDR_EL1",
        "TPIDRRO_EL0",
        "TPIDR_EL0",
        "TTBR0_EL1",
        "TTBR1_EL1",
        "VBAR_EL1",
        "ACCDATA_EL1",
        "TPIDR2_EL0",
        "SMPRI_EL1",
        "GCSCR_EL1",
        "GCSPR_EL1",
        "GCSCRE0_EL1",
        "GCSPR_EL0",
        "RCWMASK_EL1",
        "PIRE0_EL1",
        "PIR_EL1",
        "POR_EL0",
        "POR_EL1",
        "S2POR_EL1",
        "MAIR2_EL1",
        "AMAIR2_EL1",
        "TCR2_EL1",
        "SCTLR2_EL1",
        "PFAR_EL1",
        "ACTLR_EL1",
        // HDFGRTR_EL2 (self-hosted debug and the PMU).
        "MDSCR_EL1",
        "OSLAR_EL1",
        "OSDTRRX_EL1",
        "OSDTRTX_EL1",
        "OSECCR_EL1",
        "MDCCINT_EL1",
        "DBGCLAIMCLR_EL1",
        "DBGBCR<n>_EL1",
        "DBGBVR<n>_EL1",
        "DBGWCR<n>_EL1",
        "DBGWVR<n>_EL1",
        "PMCR_EL0",
        "PMCNTENCLR_EL0",
        "PMCNTENSET_EL0",
        "PMINTENCLR_EL1",
        "PMINTENSET_EL1",
        "PMOVSCLR_EL0",
        "PMOVSSET_EL0",
        "PMUSERENR_EL0",
        "PMCCFILTR_EL0",
        "PMSELR_EL0",
        "PMEVTYPER<n>_EL0",
        "PMEVCNTR<n>_EL0",
        "PMCCNTR_EL0",
        "PMXEVTYPER_EL0",
        "PMXEVCNTR_EL0",
        "TRFCR_EL1",
        // Not covered by a fine-grained trap.
        "ELR_EL1",
        "SPSR_EL1",
        "SP_EL0",
        "SP_EL1",
        "FPCR",
        "FPSR",
        "FPMR",
        "ZCR_EL1",
        "SMCR_EL1",
        "SVCR",
        "CNTKCTL_EL1",
        "CNTV_CTL_EL0",
        "CNTV_CVAL_EL0",
        "CNTP_CTL_EL0",
        "CNTP_CVAL_EL0",
        "TFSR_EL1",
        "TFSRE0_EL1",
        "GCR_EL1",
        "RGSR_EL1",
        "VDISR_EL2",
        // The register files.
        "V<n>",
        "Z<n>",
        "P<n>",
        "FFR",
        "ZA",
        "ZT0",
    ];

    fn covered() -> BTreeSet<&'static str> {
        TABLE
            .iter()
            .map(|register| register.name)
            .chain(RESET_ELSEWHERE.iter().map(|(name, _)| *name))
            .chain(NOT_RESET.iter().map(|(name, _)| *name))
            .collect()
    }

    #[test]
    fn every_register_a_guest_can_reach_is_reset_or_explained() {
        let covered = covered();
        let missing: Vec<&str> = REACHABLE
            .iter()
            .copied()
            .filter(|name| !covered.contains(name))
            .collect();
        assert!(missing.is_empty(), "reachable but never reset: {missing:?}");
    }

    #[test]
    fn each_register_is_reset_once_and_only_where_the_cpu_has_it() {
        let mut seen = BTreeSet::new();
        for register in TABLE {
            assert!(seen.insert(register.name), "{} twice", register.name);
        }
        // The `needs` names are the feature flags the glue reads (arch::aarch64::traps).
        let features = [
            "always",
            "tcr2",
            "sctlr2",
            "aie",
            "s1pie",
            "s1poe",
            "s2poe",
            "the",
            "lor",
            "pfar",
            "ras",
            "scxtnum",
            "ls64_accdata",
            "fpmr",
            "sve",
            "sme",
            "pauth",
            "mte2",
            "gcs",
            "pmu",
        ];
        for register in TABLE {
            assert!(
                features.contains(&register.needs),
                "{} needs unknown feature {}",
                register.name,
                register.needs
            );
        }
    }

    #[test]
    fn values_are_reset_values() {
        let value = |name: &str| TABLE.iter().find(|r| r.name == name).map(|r| r.value);
        assert_eq!(value("SCTLR_EL1"), Some(SCTLR_EL1));
        // Locked, as after a cold reset.
        assert_eq!(value("OSLAR_EL1"), Some(1));
        // Counters reset (P, C), counting off (E).
        assert_eq!(value("PMCR_EL0"), Some(0b110));
        // Everything else starts at 0 except the clear-by-writing-ones registers.
        let ones = [
            "DBGCLAIMCLR_EL1",
            "PMCNTENCLR_EL0",
            "PMINTENCLR_EL1",
            "PMOVSCLR_EL0",
        ];
        for register in TABLE {
            if !["SCTLR_EL1", "OSLAR_EL1", "PMCR_EL0"].contains(&register.name)
                && !ones.contains(&register.name)
            {
                assert_eq!(register.value, 0, "{}", register.name);
            }
        }
    }
}
