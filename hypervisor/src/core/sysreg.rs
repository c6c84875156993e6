//! What a trapped system register access or system instruction is answered with: the one table
//! from a decoded [`SysRegAccess`] to its [`Answer`]. Which accesses trap at all is
//! `arch::aarch64::traps` (HCR_EL2, CPTR_EL2, MDCR_EL2); why each is answered as it is, is
//! docs/architecture.md ("CPU features") and docs/security.md ("What is enforced where").
#![forbid(unsafe_code)]

use crate::core::esr::{KnownSysReg, SysRegAccess};

/// How cellvisor completes a trapped access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A write of ICC_SGI1R_EL1: virtual SGIs to the cell's own vCPUs (`dev::vgic`).
    SendSgis,
    /// Data (or allocation-tag) cache maintenance by set/way (HCR_EL2.TSW): carried out by
    /// address over the cell's own RAM, a bounded piece per exit ([`crate::core::set_way`]),
    /// never on the caches themselves, which other cells and cellvisor share.
    SetWay,
    /// Reads as zero, writes are ignored, and nothing is logged (the register exists and this
    /// is its architectural behaviour for the cell):
    /// - the RAS error records (HCR_EL2.TERR, FIEN): ERRIDR_EL1 says the cell has no error
    ///   record, so ERRSELR_EL1 and every ERX* register are RAZ/WI, as the architecture makes
    ///   them with zero records. The records of a real SoC (the core's, its cluster's, a shared
    ///   L3's) describe errors of hardware other cells use too.
    /// - ACTLR_EL1 (HCR_EL2.TACR): a core with no auxiliary controls. No guest can change the
    ///   firmware's IMPLEMENTATION DEFINED settings of a core another cell may get next.
    /// - the activity monitors (CPTR_EL2.TAM): counters that read as zero are what Linux takes
    ///   for counters firmware left disabled (it stops using them); an undefined instruction
    ///   would kill a kernel that reads them at boot because the ID registers, which cellvisor
    ///   does not trap, advertise them.
    ReadAsZero,
    /// PMCR_EL0, which traps only on a core whose PMU can prohibit event counting at EL2
    /// (MDCR_EL2.HPMD, FEAT_PMUv3p1) but not the cycle counter's (HCCD, FEAT_PMUv3p5): read
    /// from the hardware, and written with [`PMCR_EL0_DP`] forced on, so the cycle counter stops
    /// wherever event counting is prohibited, EL2 included.
    PmuControl,
    /// An undefined instruction, logged rate-limited: IMPLEMENTATION DEFINED registers and
    /// instructions (HCR_EL2.TIDCP), the trace unit and trace filter (CPTR_EL2.TTA,
    /// MDCR_EL2.TTRF), SPE and TRBE (MDCR_EL2.E2PB, TPMS, E2TB), ICC_SGI0R/ASGI1R_EL1 and
    /// anything else that traps.
    Undefined,
}

/// PMCR_EL0.DP: disable the cycle counter where event counting is prohibited.
pub const PMCR_EL0_DP: u64 = 1 << 5;

/// The answer to `access`.
pub const fn answer(access: &SysRegAccess) -> Answer {
    if access.is_icc_sgi1r_el1() && !access.read {
        Answer::SendSgis
    } else if access.is_set_way() && !access.read {
        Answer::SetWay
    } else if access.is_error_record()
        || access.is_activity_monitor()
        || matches!(access.known(), Some(KnownSysReg::ActlrEl1))
    {
        Answer::ReadAsZero
    } else if matches!(access.known(), Some(KnownSysReg::PmcrEl0)) {
        Answer::PmuControl
    } else {
        Answer::Undefined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(encoding: (u8, u8, u8, u8, u8), read: bool) -> SysRegAccess {
        let (op0, op1, crn, crm, op2) = encoding;
        SysRegAccess {
            op0,
            op1,
            crn,
            crm,
            op2,
            rt: 3,
            read,
        }
    }

    #[test]
    fn each_trapped_space_has_its_answer() {
        let cases = [
            // ICC_SGI1R_EL1: a write sends SGIs, a read (write-only register) is undefined.
            ((3, 0, 12, 11, 5), false, Answer::SendSgis),
            ((3, 0, 12, 11, 5), true, Answer::Undefined),
            // DC CISW, DC ISW, DC CSW, DC CIGDSW.
            ((1, 0, 7, 14, 2), false, Answer::SetWay),
            ((1, 0, 7, 6, 2), false, Answer::SetWay),
            ((1, 0, 7, 10, 2), false, Answer::SetWay),
            ((1, 0, 7, 14, 6), false, Answer::SetWay),
            // ERRIDR_EL1, ERRSELR_EL1 written, ERXSTATUS_EL1, ERXMISC0_EL1.
            ((3, 0, 5, 3, 0), true, Answer::ReadAsZero),
            ((3, 0, 5, 3, 1), false, Answer::ReadAsZero),
            ((3, 0, 5, 4, 2), true, Answer::ReadAsZero),
            ((3, 0, 5, 5, 0), true, Answer::ReadAsZero),
            // ACTLR_EL1 read and written.
            ((3, 0, 1, 0, 1), true, Answer::ReadAsZero),
            ((3, 0, 1, 0, 1), false, Answer::ReadAsZero),
            // AMCNTENSET0_EL0, AMEVCNTR00_EL0 (the core cycle counter).
            ((3, 3, 13, 2, 5), false, Answer::ReadAsZero),
            ((3, 3, 13, 4, 0), true, Answer::ReadAsZero),
            // IMPLEMENTATION DEFINED: Cortex-A57's CPUACTLR_EL1, a CRn 11 register, an
            // instruction.
            ((3, 1, 15, 2, 0), true, Answer::Undefined),
            ((3, 0, 11, 0, 0), false, Answer::Undefined),
            ((1, 0, 15, 0, 0), false, Answer::Undefined),
            // TRFCR_EL1 (trace filter), TRCPRGCTLR (trace unit), PMBLIMITR_EL1 (SPE).
            ((3, 0, 1, 2, 1), true, Answer::Undefined),
            ((2, 1, 0, 1, 0), false, Answer::Undefined),
            ((3, 0, 9, 10, 0), true, Answer::Undefined),
            // ICC_SGI0R_EL1.
            ((3, 2, 12, 11, 7), false, Answer::Undefined),
            // PMCR_EL0 read and written.
            ((3, 3, 9, 12, 0), true, Answer::PmuControl),
            ((3, 3, 9, 12, 0), false, Answer::PmuControl),
            // PMCCFILTR_EL0 never traps on its own; if it did, it would be undefined.
            ((3, 3, 14, 15, 7), false, Answer::Undefined),
        ];
        for (encoding, read, expected) in cases {
            assert_eq!(
                answer(&access(encoding, read)),
                expected,
                "{encoding:?} read={read}"
            );
        }
    }
}
