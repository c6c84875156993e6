//! Register fields aarch64-cpu 11 does not define: missing fields as [`Field`]s of aarch64-cpu's own
//! register types (so they combine with its fields), whole registers it lacks as `register_bitfields!`.
//!
//! Each module below is named after its register and holds only what aarch64-cpu leaves out; the
//! rest of the register comes from `aarch64_cpu::registers`.

use aarch64_cpu::registers::{
    CPTR_EL2, ICC_CTLR_EL1, ID_AA64ISAR1_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, ID_AA64PFR0_EL1,
    ID_AA64PFR1_EL1, SCTLR_EL1, SCTLR_EL2, TCR_EL2,
};
use tock_registers::fields::{Field, FieldValue};
use tock_registers::{RegisterLongName, register_bitfields};

/// ORs field values of one register into one `FieldValue`; unlike `+` it works in `const` items, so
/// the values built from it can be checked with `const` assertions.
pub const fn merge<R: RegisterLongName>(fields: &[FieldValue<u64, R>]) -> FieldValue<u64, R> {
    let mut mask = 0;
    let mut value = 0;
    let mut index = 0;
    while index < fields.len() {
        mask |= fields[index].mask();
        value |= fields[index].value;
        index += 1;
    }
    FieldValue::<u64, R>::new(mask, 0, value)
}

/// `CPTR_EL2` (nVHE layout) beyond aarch64-cpu's `TAM`.
pub mod cptr_el2 {
    use super::{CPTR_EL2, Field};
    type Register = CPTR_EL2::Register;

    /// Bits 7:0, RES1.
    pub const RES1_0_7: Field<u64, Register> = Field::new(0xff, 0);
    /// Trap SVE (and, without FEAT_SVE, RES1).
    pub const TZ: Field<u64, Register> = Field::new(1, 8);
    /// Bit 9, RES1.
    pub const RES1_9: Field<u64, Register> = Field::new(1, 9);
    /// Trap FP/SIMD.
    pub const TFP: Field<u64, Register> = Field::new(1, 10);
    /// Trap SME (and, without FEAT_SME, RES1).
    pub const TSM: Field<u64, Register> = Field::new(1, 12);
    /// Bit 13, RES1.
    pub const RES1_13: Field<u64, Register> = Field::new(1, 13);
    /// Trap trace register accesses.
    pub const TTA: Field<u64, Register> = Field::new(1, 20);
    /// Trap CPACR_EL1 accesses.
    pub const TCPAC: Field<u64, Register> = Field::new(1, 31);
}

/// `SCTLR_EL2` (nVHE layout) beyond aarch64-cpu's fields: the RES1 bits.
#[allow(non_upper_case_globals)]
pub mod sctlr_el2 {
    use super::{Field, SCTLR_EL2};
    type Register = SCTLR_EL2::Register;

    /// Bits 5:4, RES1.
    pub const RES1_4_5: Field<u64, Register> = Field::new(0b11, 4);
    /// Bit 16, RES1.
    pub const RES1_16: Field<u64, Register> = Field::new(1, 16);
    /// Bit 18, RES1.
    pub const RES1_18: Field<u64, Register> = Field::new(1, 18);
    /// Set Privileged Access Never on exception entry: RES1 without VHE.
    pub const SPAN: Field<u64, Register> = Field::new(1, 23);
    /// No trap of load/store multiple to Device memory (RES1 without FEAT_LSMAOC).
    pub const nTLSMD: Field<u64, Register> = Field::new(1, 28);
    /// Load/store multiple atomicity and ordering (RES1 without FEAT_LSMAOC).
    pub const LSMAOE: Field<u64, Register> = Field::new(1, 29);
}

/// `SCTLR_EL1` beyond aarch64-cpu's fields: the bits that are RES1 on a CPU without the feature.
#[allow(non_upper_case_globals)]
pub mod sctlr_el1 {
    use super::{Field, SCTLR_EL1};
    type Register = SCTLR_EL1::Register;

    /// Exception exit is context synchronizing (RES1 without FEAT_ExS).
    pub const EOS: Field<u64, Register> = Field::new(1, 11);
    /// Trap EL0 access to SCXTNUM_EL0 (RES1 without FEAT_CSV2_2).
    pub const TSCXT: Field<u64, Register> = Field::new(1, 20);
    /// Exception entry is context synchronizing (RES1 without FEAT_ExS).
    pub const EIS: Field<u64, Register> = Field::new(1, 22);
    /// PSTATE.PAN unchanged on exception entry (RES1 without FEAT_PAN).
    pub const SPAN: Field<u64, Register> = Field::new(1, 23);
    /// No trap of load/store multiple to Device memory (RES1 without FEAT_LSMAOC).
    pub const nTLSMD: Field<u64, Register> = Field::new(1, 28);
    /// Load/store multiple atomicity and ordering (RES1 without FEAT_LSMAOC).
    pub const LSMAOE: Field<u64, Register> = Field::new(1, 29);
}

/// `TCR_EL2` (nVHE layout) beyond aarch64-cpu's fields: the RES1 bits.
pub mod tcr_el2 {
    use super::{Field, TCR_EL2};
    type Register = TCR_EL2::Register;

    /// Bit 23, RES1.
    pub const RES1_23: Field<u64, Register> = Field::new(1, 23);
    /// Bit 31, RES1.
    pub const RES1_31: Field<u64, Register> = Field::new(1, 31);
}

/// `ICC_CTLR_EL1` beyond aarch64-cpu's `ExtRange`.
#[allow(non_upper_case_globals)]
pub mod icc_ctlr_el1 {
    use super::{Field, ICC_CTLR_EL1};

    /// EOI mode: 1 = a write to ICC_EOIR1_EL1 only drops the priority, ICC_DIR_EL1 deactivates.
    pub const EOImode: Field<u64, ICC_CTLR_EL1::Register> = Field::new(1, 1);
}

/// `ID_AA64PFR0_EL1` beyond aarch64-cpu's fields.
pub mod id_aa64pfr0_el1 {
    use super::{Field, ID_AA64PFR0_EL1};

    /// CSV2: 2 or more = FEAT_CSV2_2 (SCXTNUM_ELx implemented).
    pub const CSV2: Field<u64, ID_AA64PFR0_EL1::Register> = Field::new(0xf, 56);
    /// RAS: 3 or more = FEAT_RASv2 (ERXGSR_EL1 implemented).
    pub const RAS: Field<u64, ID_AA64PFR0_EL1::Register> = Field::new(0xf, 28);
}

/// `ID_AA64PFR1_EL1` beyond aarch64-cpu's `MTE`.
#[allow(non_upper_case_globals)]
pub mod id_aa64pfr1_el1 {
    use super::{Field, ID_AA64PFR1_EL1};
    type Register = ID_AA64PFR1_EL1::Register;

    /// SME implemented (non-zero); 2 = SME2.
    pub const SME: Field<u64, Register> = Field::new(0xf, 24);
    /// CSV2 fraction: 2 = FEAT_CSV2_1p2 (SCXTNUM_ELx implemented without CSV2_2).
    pub const CSV2_frac: Field<u64, Register> = Field::new(0xf, 32);
    /// FEAT_GCS implemented (non-zero).
    pub const GCS: Field<u64, Register> = Field::new(0xf, 44);
    /// FEAT_THE implemented (non-zero).
    pub const THE: Field<u64, Register> = Field::new(0xf, 48);
    /// FEAT_PFAR implemented (non-zero): PFAR_EL1 exists.
    pub const PFAR: Field<u64, Register> = Field::new(0xf, 60);
}

/// `ID_AA64ISAR1_EL1` beyond aarch64-cpu's fields.
pub mod id_aa64isar1_el1 {
    use super::{Field, ID_AA64ISAR1_EL1};

    /// 1 = FEAT_LS64, 2 = FEAT_LS64_V, 3 = FEAT_LS64_ACCDATA.
    pub const LS64: Field<u64, ID_AA64ISAR1_EL1::Register> = Field::new(0xf, 60);
}

/// `ID_AA64MMFR0_EL1` beyond aarch64-cpu's fields.
pub mod id_aa64mmfr0_el1 {
    use super::{Field, ID_AA64MMFR0_EL1};

    /// FEAT_FGT implemented (non-zero); 2 = FEAT_FGT2 (the `...2_EL2` trap registers exist).
    pub const FGT: Field<u64, ID_AA64MMFR0_EL1::Register> = Field::new(0xf, 56);
}

/// `ID_AA64MMFR1_EL1` beyond aarch64-cpu's fields.
pub mod id_aa64mmfr1_el1 {
    use super::{Field, ID_AA64MMFR1_EL1};

    /// FEAT_HCX implemented (non-zero): HCRX_EL2 exists.
    pub const HCX: Field<u64, ID_AA64MMFR1_EL1::Register> = Field::new(0xf, 40);
    /// FEAT_LOR implemented (non-zero).
    pub const LO: Field<u64, ID_AA64MMFR1_EL1::Register> = Field::new(0xf, 16);
}

register_bitfields![u64,
    /// `ICH_VMCR_EL2`: the guest's view of its virtual CPU interface controls.
    pub ICH_VMCR_EL2 [
        /// Virtual Group 0 enable.
        VENG0 OFFSET(0) NUMBITS(1) [],
        /// Virtual Group 1 enable.
        VENG1 OFFSET(1) NUMBITS(1) [],
        /// Virtual AckCtl (legacy).
        VAckCtl OFFSET(2) NUMBITS(1) [],
        /// Virtual Group 0 as FIQ.
        VFIQEn OFFSET(3) NUMBITS(1) [],
        /// Virtual common binary point register.
        VCBPR OFFSET(4) NUMBITS(1) [],
        /// Virtual EOI mode.
        VEOIM OFFSET(9) NUMBITS(1) [],
        /// Virtual Group 1 binary point.
        VBPR1 OFFSET(18) NUMBITS(3) [],
        /// Virtual Group 0 binary point.
        VBPR0 OFFSET(21) NUMBITS(3) [],
        /// Virtual priority mask.
        VPMR OFFSET(24) NUMBITS(8) []
    ],

    /// `ICC_PMR_EL1`: this CPU's interrupt priority mask.
    pub ICC_PMR_EL1 [
        /// Only interrupts with a higher priority (lower value) than this are signalled.
        Priority OFFSET(0) NUMBITS(8) []
    ],

    /// `ICC_BPR1_EL1`: Group 1 binary point (priority grouping for preemption).
    pub ICC_BPR1_EL1 [
        BinaryPoint OFFSET(0) NUMBITS(3) []
    ],

    /// `ICC_IGRPEN1_EL1`: Group 1 interrupt enable of this CPU's interface.
    pub ICC_IGRPEN1_EL1 [
        Enable OFFSET(0) NUMBITS(1) []
    ],

    /// `ICC_IAR1_EL1`: the acknowledged Group 1 interrupt.
    pub ICC_IAR1_EL1 [
        INTID OFFSET(0) NUMBITS(24) []
    ],

    /// `PMCR_EL0`: PMU control; only the counter count is read here.
    pub PMCR_EL0 [
        /// Number of event counters implemented.
        N OFFSET(11) NUMBITS(5) []
    ],

    /// `ID_AA64ISAR2_EL1` (`s3_0_c0_c6_2`): the fields the feature policy reads.
    pub ID_AA64ISAR2_EL1 [
        /// QARMA3 address authentication: 6 = FEAT_PAuth_LR.
        APA3 OFFSET(12) NUMBITS(4) [],
        /// FEAT_MOPS implemented (non-zero).
        MOPS OFFSET(16) NUMBITS(4) []
    ],

    /// `ID_AA64PFR2_EL1` (`s3_0_c0_c4_2`): the fields the feature policy reads.
    pub ID_AA64PFR2_EL1 [
        /// FEAT_FPMR implemented (non-zero).
        FPMR OFFSET(32) NUMBITS(4) []
    ],

    /// `ID_AA64MMFR3_EL1` (`s3_0_c0_c7_3`): the fields the feature policy reads (each non-zero
    /// when the feature is implemented).
    pub ID_AA64MMFR3_EL1 [
        /// FEAT_TCR2.
        TCRX OFFSET(0) NUMBITS(4) [],
        /// FEAT_SCTLR2.
        SCTLRX OFFSET(4) NUMBITS(4) [],
        /// FEAT_S1PIE.
        S1PIE OFFSET(8) NUMBITS(4) [],
        /// FEAT_S1POE.
        S1POE OFFSET(16) NUMBITS(4) [],
        /// FEAT_S2POE.
        S2POE OFFSET(20) NUMBITS(4) [],
        /// FEAT_AIE.
        AIE OFFSET(24) NUMBITS(4) [],
        /// FEAT_D128.
        D128 OFFSET(32) NUMBITS(4) []
    ],

    /// `ID_AA64SMFR0_EL1` (`s3_0_c0_c4_5`): the fields the feature policy reads.
    pub ID_AA64SMFR0_EL1 [
        /// SME version: 1 or more = SME2 (ZT0).
        SMEver OFFSET(56) NUMBITS(4) [],
        /// FEAT_SME_FA64 implemented.
        FA64 OFFSET(63) NUMBITS(1) []
    ],

    /// `HCRX_EL2` (`s3_4_c1_c2_2`, FEAT_HCX): extended hypervisor configuration.
    pub HCRX_EL2 [
        /// Enable ST64BV0 and ACCDATA_EL1 at EL1/EL0 (FEAT_LS64_ACCDATA).
        EnAS0 OFFSET(0) NUMBITS(1) [],
        /// Enable LD64B/ST64B at EL1/EL0 (FEAT_LS64).
        EnALS OFFSET(1) NUMBITS(1) [],
        /// Enable ST64BV at EL1/EL0 (FEAT_LS64_V).
        EnASR OFFSET(2) NUMBITS(1) [],
        /// TLBI/DSB nXS behaviour at EL1 (FEAT_XS).
        FnXS OFFSET(3) NUMBITS(1) [],
        /// Fine-grained traps of the nXS TLBIs (FEAT_XS).
        FGTnXS OFFSET(4) NUMBITS(1) [],
        /// Streaming-mode execution priority mapping through SMPRIMAP_EL2 (FEAT_SME).
        SMPME OFFSET(5) NUMBITS(1) [],
        /// Trap MSR writes of ALLINT to EL2 (FEAT_NMI).
        TALLINT OFFSET(6) NUMBITS(1) [],
        /// Virtual IRQ superpriority (FEAT_NMI).
        VINMI OFFSET(7) NUMBITS(1) [],
        /// Virtual FIQ superpriority (FEAT_NMI).
        VFNMI OFFSET(8) NUMBITS(1) [],
        /// Cache maintenance needs stage-2 write permission (FEAT_CMOW).
        CMOW OFFSET(9) NUMBITS(1) [],
        /// Memory copy/set exceptions from EL1 taken to EL2 (FEAT_MOPS).
        MCE2 OFFSET(10) NUMBITS(1) [],
        /// Enable the memory copy/set instructions at EL1/EL0 (FEAT_MOPS).
        MSCEn OFFSET(11) NUMBITS(1) [],
        /// Enable TCR2_EL1 at EL1 (FEAT_TCR2).
        TCR2En OFFSET(14) NUMBITS(1) [],
        /// Enable SCTLR2_EL1 at EL1 (FEAT_SCTLR2).
        SCTLR2En OFFSET(15) NUMBITS(1) [],
        /// Permit translation table walk incoherence (FEAT_THE).
        PTTWI OFFSET(16) NUMBITS(1) [],
        /// Enable 128-bit translation descriptors at EL1 (FEAT_D128).
        D128En OFFSET(17) NUMBITS(1) [],
        /// Enable the GCS instructions and registers at EL1/EL0 (FEAT_GCS).
        GCSEn OFFSET(22) NUMBITS(1) [],
        /// Enable FPMR at EL1/EL0 (FEAT_FPMR).
        EnFPM OFFSET(23) NUMBITS(1) [],
        /// Enable PACM at EL1/EL0 (FEAT_PAuth_LR).
        PACMEn OFFSET(24) NUMBITS(1) []
    ],

    /// `ZCR_EL2` (`s3_4_c1_c2_0`, FEAT_SVE): the SVE vector length EL1/EL0 may choose up to.
    pub ZCR_EL2 [
        /// Vector length (LEN + 1) x 128 bits, clamped to what the CPU implements.
        LEN OFFSET(0) NUMBITS(4) []
    ],

    /// `SMCR_EL2` (`s3_4_c1_c2_6`, FEAT_SME): the streaming vector length and SME controls.
    pub SMCR_EL2 [
        /// Streaming vector length (LEN + 1) x 128 bits, clamped to what the CPU implements.
        LEN OFFSET(0) NUMBITS(4) [],
        /// ZT0 accesses at EL2 and below do not trap (SME2).
        EZT0 OFFSET(30) NUMBITS(1) [],
        /// The full A64 instruction set in streaming mode at EL2 and below (FEAT_SME_FA64).
        FA64 OFFSET(31) NUMBITS(1) []
    ]
];
