//! The EL2 controls a guest runs under, in one place: every register `prepare` programs, as a list
//! of named fields with the reason for each group, checked against the raw values they replaced.
//!
//! The CPU feature policy (docs/architecture.md, "CPU features"): the guest reads the real ID
//! registers, so every feature they advertise must work in a cell. [`CpuFeatures`] is what this
//! CPU implements of the features that have EL2 controls, and each register below enables, for
//! the features present, exactly the controls those features need.

use aarch64_cpu::registers::{
    CNTHCTL_EL2, CPTR_EL2, HAFGRTR_EL2, HCR_EL2, HDFGRTR_EL2, HDFGWTR_EL2, HFGITR_EL2, HFGRTR_EL2,
    HFGWTR_EL2, ICH_HCR_EL2, ID_AA64DFR0_EL1, ID_AA64ISAR1_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1,
    ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, MDCR_EL2, MPIDR_EL1, SCTLR_EL1, VMPIDR_EL2, VTCR_EL2,
};
use tock_registers::fields::FieldValue;
use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::fields::{
    HCRX_EL2, ICH_VMCR_EL2, ID_AA64ISAR2_EL1, ID_AA64MMFR3_EL1, ID_AA64PFR2_EL1, ID_AA64SMFR0_EL1,
    PMCR_EL0, SMCR_EL2, ZCR_EL2, cptr_el2, id_aa64isar1_el1, id_aa64mmfr0_el1, id_aa64mmfr1_el1,
    id_aa64pfr0_el1, id_aa64pfr1_el1, merge, sctlr_el1,
};
use super::mmu;
use super::sysreg::read_sysreg;
use crate::board::El2Counting;
use crate::mem::stage2::{VTCR_SL0, VTCR_T0SZ};

/// What this CPU implements of the features whose EL2 controls a guest depends on (read from its
/// ID registers by [`CpuFeatures::this_cpu`]); every register value below is a function of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// FEAT_HCX: HCRX_EL2 exists.
    pub hcx: bool,
    /// FEAT_FGT: the fine-grained trap registers exist.
    pub fgt: bool,
    /// FEAT_AMUv1: HAFGRTR_EL2 exists (with FEAT_FGT).
    pub amu: bool,
    /// FEAT_SVE.
    pub sve: bool,
    /// FEAT_SME.
    pub sme: bool,
    /// SME2 (ZT0).
    pub sme2: bool,
    /// FEAT_SME_FA64.
    pub sme_fa64: bool,
    /// FEAT_MOPS: the memory copy/set instructions.
    pub mops: bool,
    /// FEAT_MTE2: allocation tags in memory.
    pub mte2: bool,
    /// FEAT_CSV2_2 or FEAT_CSV2_1p2: SCXTNUM_EL0/EL1.
    pub scxtnum: bool,
    /// FEAT_LS64 level: 1 LD64B/ST64B, 2 also ST64BV, 3 also ST64BV0/ACCDATA_EL1.
    pub ls64: u64,
    /// FEAT_TCR2.
    pub tcr2: bool,
    /// FEAT_SCTLR2.
    pub sctlr2: bool,
    /// FEAT_D128.
    pub d128: bool,
    /// FEAT_GCS.
    pub gcs: bool,
    /// FEAT_FPMR.
    pub fpmr: bool,
    /// FEAT_PAuth_LR.
    pub pauth_lr: bool,
    /// FEAT_S1PIE: PIR_EL1/PIRE0_EL1.
    pub s1pie: bool,
    /// FEAT_S1POE: POR_EL0/POR_EL1.
    pub s1poe: bool,
    /// FEAT_S2POE: S2POR_EL1.
    pub s2poe: bool,
    /// FEAT_AIE: MAIR2_EL1/AMAIR2_EL1.
    pub aie: bool,
    /// FEAT_THE: RCWMASK_EL1.
    pub the: bool,
    /// FEAT_SPEv1p2: PMSNEVFR_EL1.
    pub spe_v1p2: bool,
    /// FEAT_BRBE.
    pub brbe: bool,
    /// FEAT_FGT2: HFGRTR2/HFGWTR2/HFGITR2/HDFGRTR2/HDFGWTR2_EL2 exist.
    pub fgt2: bool,
    /// FEAT_PFAR: PFAR_EL1.
    pub pfar: bool,
    /// FEAT_RASv2: ERXGSR_EL1.
    pub ras_v2: bool,
    /// SME priority mapping (SMIDR_EL1.SMPS): SMPRIMAP_EL2 exists.
    pub sme_priority: bool,
    /// FEAT_PAuth (address or generic authentication): the pointer-authentication keys.
    pub pauth: bool,
    /// FEAT_LOR: the limited-ordering-region registers.
    pub lor: bool,
    /// FEAT_RAS: DISR_EL1 (VDISR_EL2 while HCR_EL2.AMO is set).
    pub ras: bool,
    /// A PMUv3 (ID_AA64DFR0_EL1.PMUVer neither 0 nor IMPLEMENTATION DEFINED).
    pub pmu: bool,
    /// FEAT_PMUv3p1: MDCR_EL2.HPMD prohibits event counting at EL2.
    pub pmu_v3p1: bool,
    /// FEAT_PMUv3p5: MDCR_EL2.HCCD prohibits the cycle counter at EL2.
    pub pmu_v3p5: bool,
    /// FEAT_TRF: TRFCR_EL1 (and MDCR_EL2.TTRF) exist.
    pub trace_filter: bool,
    /// FEAT_SPE: the statistical profiling registers (and MDCR_EL2.TPMS) exist.
    pub spe: bool,
}

impl CpuFeatures {
    /// A CPU with none of the features (the base the `const` checks below build on).
    pub const NONE: Self = Self {
        hcx: false,
        fgt: false,
        amu: false,
        sve: false,
        sme: false,
        sme2: false,
        sme_fa64: false,
        mops: false,
        mte2: false,
        scxtnum: false,
        ls64: 0,
        tcr2: false,
        sctlr2: false,
        d128: false,
        gcs: false,
        fpmr: false,
        pauth_lr: false,
        s1pie: false,
        s1poe: false,
        s2poe: false,
        aie: false,
        the: false,
        spe_v1p2: false,
        brbe: false,
        fgt2: false,
        pfar: false,
        ras_v2: false,
        sme_priority: false,
        pauth: false,
        lor: false,
        ras: false,
        pmu: false,
        pmu_v3p1: false,
        pmu_v3p5: false,
        trace_filter: false,
        spe: false,
    };

    /// This CPU's features, from its ID registers. Every encoding read is in the ID register space
    /// (op0 3, op1 0, CRn 0, CRm 1..7), which reads as zero where the CPU predates the register.
    pub fn this_cpu() -> Self {
        let pfr0 = LocalRegisterCopy::<u64, ID_AA64PFR0_EL1::Register>::new(read_sysreg!(
            "id_aa64pfr0_el1"
        ));
        let pfr1 = LocalRegisterCopy::<u64, ID_AA64PFR1_EL1::Register>::new(read_sysreg!(
            "id_aa64pfr1_el1"
        ));
        let pfr2 =
            LocalRegisterCopy::<u64, ID_AA64PFR2_EL1::Register>::new(read_sysreg!("s3_0_c0_c4_2"));
        let smfr0 =
            LocalRegisterCopy::<u64, ID_AA64SMFR0_EL1::Register>::new(read_sysreg!("s3_0_c0_c4_5"));
        let dfr0 = LocalRegisterCopy::<u64, ID_AA64DFR0_EL1::Register>::new(read_sysreg!(
            "id_aa64dfr0_el1"
        ));
        let isar1 = LocalRegisterCopy::<u64, ID_AA64ISAR1_EL1::Register>::new(read_sysreg!(
            "id_aa64isar1_el1"
        ));
        let isar2 =
            LocalRegisterCopy::<u64, ID_AA64ISAR2_EL1::Register>::new(read_sysreg!("s3_0_c0_c6_2"));
        let mmfr0 = LocalRegisterCopy::<u64, ID_AA64MMFR0_EL1::Register>::new(read_sysreg!(
            "id_aa64mmfr0_el1"
        ));
        let mmfr1 = LocalRegisterCopy::<u64, ID_AA64MMFR1_EL1::Register>::new(read_sysreg!(
            "id_aa64mmfr1_el1"
        ));
        let mmfr3 =
            LocalRegisterCopy::<u64, ID_AA64MMFR3_EL1::Register>::new(read_sysreg!("s3_0_c0_c7_3"));
        // Address authentication value 6 is FEAT_PAuth_LR, in whichever algorithm field is used.
        const PAUTH_LR: u64 = 6;
        let sme = pfr1.read(id_aa64pfr1_el1::SME);
        // SMIDR_EL1 exists only with SME; SMPS (bit 15) says SMPRIMAP_EL2 does.
        const SMIDR_SMPS: u64 = 1 << 15;
        let sme_priority = sme != 0 && read_sysreg!("s3_1_c0_c0_6") & SMIDR_SMPS != 0;
        let pmu_version = dfr0.read(ID_AA64DFR0_EL1::PMUVer);
        Self {
            hcx: mmfr1.read(id_aa64mmfr1_el1::HCX) != 0,
            fgt: mmfr0.read(id_aa64mmfr0_el1::FGT) != 0,
            amu: pfr0.read(ID_AA64PFR0_EL1::AMU) != 0,
            sve: pfr0.read(ID_AA64PFR0_EL1::SVE) != 0,
            sme: sme != 0,
            sme2: sme != 0 && smfr0.read(ID_AA64SMFR0_EL1::SMEver) != 0,
            sme_fa64: sme != 0 && smfr0.read(ID_AA64SMFR0_EL1::FA64) != 0,
            mops: isar2.read(ID_AA64ISAR2_EL1::MOPS) != 0,
            mte2: pfr1.read(ID_AA64PFR1_EL1::MTE) >= 2,
            scxtnum: pfr0.read(id_aa64pfr0_el1::CSV2) >= 2
                || pfr1.read(id_aa64pfr1_el1::CSV2_frac) >= 2,
            ls64: isar1.read(id_aa64isar1_el1::LS64),
            tcr2: mmfr3.read(ID_AA64MMFR3_EL1::TCRX) != 0,
            sctlr2: mmfr3.read(ID_AA64MMFR3_EL1::SCTLRX) != 0,
            d128: mmfr3.read(ID_AA64MMFR3_EL1::D128) != 0,
            gcs: pfr1.read(id_aa64pfr1_el1::GCS) != 0,
            fpmr: pfr2.read(ID_AA64PFR2_EL1::FPMR) != 0,
            pauth_lr: isar1.read(ID_AA64ISAR1_EL1::APA) == PAUTH_LR
                || isar1.read(ID_AA64ISAR1_EL1::API) == PAUTH_LR
                || isar2.read(ID_AA64ISAR2_EL1::APA3) == PAUTH_LR,
            s1pie: mmfr3.read(ID_AA64MMFR3_EL1::S1PIE) != 0,
            s1poe: mmfr3.read(ID_AA64MMFR3_EL1::S1POE) != 0,
            s2poe: mmfr3.read(ID_AA64MMFR3_EL1::S2POE) != 0,
            aie: mmfr3.read(ID_AA64MMFR3_EL1::AIE) != 0,
            the: pfr1.read(id_aa64pfr1_el1::THE) != 0,
            // PMSVer 3 is FEAT_SPEv1p2.
            spe_v1p2: dfr0.read(ID_AA64DFR0_EL1::PMSVer) >= 3,
            brbe: dfr0.read(ID_AA64DFR0_EL1::BRBE) != 0,
            fgt2: mmfr0.read(id_aa64mmfr0_el1::FGT) >= 2,
            pfar: pfr1.read(id_aa64pfr1_el1::PFAR) != 0,
            ras_v2: pfr0.read(id_aa64pfr0_el1::RAS) >= 3,
            sme_priority,
            // APA, API, GPA, GPI of ISAR1 (bits 4-11, 24-31) and APA3, GPA3 of ISAR2 (bits 8-15).
            pauth: isar1.get() & 0xff00_0ff0 != 0 || isar2.get() & 0xff00 != 0,
            lor: mmfr1.read(id_aa64mmfr1_el1::LO) != 0,
            ras: pfr0.read(id_aa64pfr0_el1::RAS) != 0,
            pmu: !matches!(pmu_version, 0 | 0xf),
            // PMUVer 4 is PMUv3 for Armv8.1, 6 PMUv3 for Armv8.5 (0xf: IMPLEMENTATION DEFINED).
            pmu_v3p1: (4..0xf).contains(&pmu_version),
            pmu_v3p5: (6..0xf).contains(&pmu_version),
            trace_filter: dfr0.read(ID_AA64DFR0_EL1::TraceFilt) != 0,
            spe: dfr0.read(ID_AA64DFR0_EL1::PMSVer) != 0,
        }
    }
}

/// A field value when `condition` holds, else the same field cleared (so it is still named in the
/// register's mask and its value is deliberate either way).
const fn when<R: tock_registers::RegisterLongName>(
    condition: bool,
    field: tock_registers::fields::Field<u64, R>,
) -> FieldValue<u64, R> {
    field.val(if condition { 1 } else { 0 })
}

/// HCR_EL2 while a guest runs, for the features of [`CpuFeatures`] HCR_EL2 controls.
pub const fn hcr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HCR_EL2::Register> {
    merge(&[
        HCR_GUEST,
        // Allocation tag accesses at EL1/EL0 do not trap (FEAT_MTE2; RES0 without it).
        when(features.mte2, HCR_EL2::ATA),
        // SCXTNUM_EL0/EL1 accesses do not trap (RES0 without the feature).
        when(features.scxtnum, HCR_EL2::EnSCXT),
        // The RAS error record registers trap (RES0 without FEAT_RAS): the records of a real SoC
        // cover hardware other cells share (the cluster, a shared L3), so a cell sees none.
        // ERXPFG* trap too, FIEN being clear.
        when(features.ras, HCR_EL2::TERR),
        HCR_EL2::FIEN::CLEAR,
    ])
}
const _: () = assert!(hcr_el2_guest(&CpuFeatures::NONE).value == HCR_GUEST.value);
const _: () = assert!(hcr_el2_guest(&ALL_FEATURES).value == 0x0120_0310_8078_203b);
const _: () = assert!(
    hcr_el2_guest(&CpuFeatures {
        ras: true,
        ..CpuFeatures::NONE
    })
    .value
        == HCR_GUEST.value | 1 << 36
);

/// HCR_EL2 while a guest runs, whatever the CPU implements.
pub const HCR_GUEST: FieldValue<u64, HCR_EL2::Register> = merge(&[
    // Stage 2 on: the cell's table confines every guest access.
    HCR_EL2::VM::Enable,
    // Data cache maintenance by set/way traps: it acts on caches the cells and cellvisor share,
    // so EL2 does it by address over the cell's own RAM instead (core::set_way). SWIO as well,
    // in case an implementation ever lets one through: an invalidate by set/way is then a clean
    // and invalidate, which cannot discard another cell's or cellvisor's dirty lines.
    HCR_EL2::TSW::SET,
    HCR_EL2::SWIO::SET,
    // IMPLEMENTATION DEFINED registers and instructions trap (answered as undefined), and so
    // does ACTLR_EL1 (read as zero, writes ignored): their effects are the core's, and the core's
    // next cell would inherit them.
    HCR_EL2::TIDCP::SET,
    HCR_EL2::TACR::SET,
    // Physical FIQs, IRQs and SErrors are taken to EL2; the guest gets virtual ones instead.
    HCR_EL2::FMO::EnableVirtualFIQ,
    HCR_EL2::IMO::EnableVirtualIRQ,
    HCR_EL2::AMO::SET,
    // WFI traps, so an idle vCPU waits at EL2 for its virtual interrupts (docs/architecture.md).
    HCR_EL2::TWI::SET,
    // SMC traps: PSCI and every other firmware call go through cellvisor.
    HCR_EL2::TSC::EnableTrapEl1SmcToEl2,
    // EL1 is AArch64.
    HCR_EL2::RW::EL1IsAarch64,
    // The guest owns pointer authentication: its key registers and instructions do not trap.
    HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2,
    HCR_EL2::API::DisableTrapPointerAuthInstToEl2,
]);
const _: () = assert!(HCR_GUEST.value == 0x0000_0300_8078_203b);

/// CPTR_EL2 while a guest runs. FP/SIMD, SVE and SME belong to the guest, because EL2 is built
/// soft-float and never touches them; TZ and TSM are RES1 on a CPU without the feature, so they
/// stay set there. The trace unit's system registers and the activity monitors trap: both count
/// or record what the core does at every exception level, EL2 included.
pub const fn cptr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, CPTR_EL2::Register> {
    merge(&[
        cptr_el2::RES1_0_7.val(0xff),
        cptr_el2::RES1_9.val(1),
        cptr_el2::RES1_13.val(1),
        cptr_el2::TFP.val(0),
        cptr_el2::TZ.val(if features.sve { 0 } else { 1 }),
        cptr_el2::TSM.val(if features.sme { 0 } else { 1 }),
        // Trace unit registers: undefined for the guest.
        cptr_el2::TTA.val(1),
        // Activity monitors (RES0 without FEAT_AMUv1): read as zero, writes ignored.
        when(features.amu, CPTR_EL2::TAM),
        cptr_el2::TCPAC.val(0),
    ])
}
const _: () = assert!(cptr_el2_guest(&CpuFeatures::NONE).value == 0x1033ff);
const _: () = assert!(
    cptr_el2_guest(&CpuFeatures {
        sve: true,
        ..CpuFeatures::NONE
    })
    .value
        == 0x1032ff
);
const _: () = assert!(
    cptr_el2_guest(&CpuFeatures {
        sme: true,
        ..CpuFeatures::NONE
    })
    .value
        == 0x1023ff
);
const _: () = assert!(cptr_el2_guest(&ALL_FEATURES).value == 0x4010_22ff);

/// ZCR_EL2 while a guest runs (FEAT_SVE): the largest length field, which the CPU clamps to the
/// longest vector it implements, so the guest may choose any vector length the CPU has.
pub const ZCR_GUEST: FieldValue<u64, ZCR_EL2::Register> = ZCR_EL2::LEN.val(0xf);
const _: () = assert!(ZCR_GUEST.value == 0xf);

/// SMCR_EL2 while a guest runs (FEAT_SME): every streaming vector length, ZT0 (SME2) and the full
/// A64 instruction set in streaming mode (FEAT_SME_FA64) are the guest's.
pub const fn smcr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, SMCR_EL2::Register> {
    merge(&[
        SMCR_EL2::LEN.val(0xf),
        when(features.sme2, SMCR_EL2::EZT0),
        when(features.sme_fa64, SMCR_EL2::FA64),
    ])
}
const _: () = assert!(smcr_el2_guest(&CpuFeatures::NONE).value == 0xf);
const _: () = assert!(
    smcr_el2_guest(&CpuFeatures {
        sme: true,
        sme2: true,
        sme_fa64: true,
        ..CpuFeatures::NONE
    })
    .value
        == 0xc000_000f
);

/// HCRX_EL2 while a guest runs (written only with FEAT_HCX): each enable whose feature the CPU has
/// is set, every trap and redirection is off.
pub const fn hcrx_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HCRX_EL2::Register> {
    merge(&[
        // Instructions and registers that are the guest's own: enabled where implemented.
        when(features.mops, HCRX_EL2::MSCEn),
        when(features.ls64 >= 1, HCRX_EL2::EnALS),
        when(features.ls64 >= 2, HCRX_EL2::EnASR),
        when(features.ls64 >= 3, HCRX_EL2::EnAS0),
        when(features.tcr2, HCRX_EL2::TCR2En),
        when(features.sctlr2, HCRX_EL2::SCTLR2En),
        when(features.d128, HCRX_EL2::D128En),
        when(features.gcs, HCRX_EL2::GCSEn),
        when(features.fpmr, HCRX_EL2::EnFPM),
        when(features.pauth_lr, HCRX_EL2::PACMEn),
        // Memory copy/set exceptions go to the guest's own EL1, which restarts the instruction.
        HCRX_EL2::MCE2::CLEAR,
        // No streaming-mode priority mapping (SMPRIMAP_EL2 is never programmed).
        HCRX_EL2::SMPME::CLEAR,
        // ALLINT writes do not trap and no virtual NMI is injected: the guest's NMIs are its own.
        HCRX_EL2::TALLINT::CLEAR,
        HCRX_EL2::VINMI::CLEAR,
        HCRX_EL2::VFNMI::CLEAR,
        // Architectural defaults for the nXS, CMOW and translation-walk coherence controls.
        HCRX_EL2::FnXS::CLEAR,
        HCRX_EL2::FGTnXS::CLEAR,
        HCRX_EL2::CMOW::CLEAR,
        HCRX_EL2::PTTWI::CLEAR,
    ])
}
const _: () = assert!(hcrx_el2_guest(&CpuFeatures::NONE).value == 0);
const _: () = assert!(
    hcrx_el2_guest(&CpuFeatures {
        hcx: true,
        mops: true,
        ..CpuFeatures::NONE
    })
    .value
        == 0x800
);
const _: () = assert!(hcrx_el2_guest(&ALL_FEATURES).value == 0x01c2_c807);

/// Every feature at once, for the checks that each enable lands on its own bit.
const ALL_FEATURES: CpuFeatures = CpuFeatures {
    hcx: true,
    fgt: true,
    amu: true,
    sve: true,
    sme: true,
    sme2: true,
    sme_fa64: true,
    mops: true,
    mte2: true,
    scxtnum: true,
    ls64: 3,
    tcr2: true,
    sctlr2: true,
    d128: true,
    gcs: true,
    fpmr: true,
    pauth_lr: true,
    s1pie: true,
    s1poe: true,
    s2poe: true,
    aie: true,
    the: true,
    spe_v1p2: true,
    brbe: true,
    fgt2: true,
    pfar: true,
    ras_v2: true,
    sme_priority: true,
    pauth: true,
    lor: true,
    ras: true,
    pmu: true,
    pmu_v3p1: true,
    pmu_v3p5: true,
    trace_filter: true,
    spe: true,
};

/// HFGRTR_EL2 while a guest runs (written only with FEAT_FGT): no fine-grained read trap. The
/// positive trap bits are clear; the negative ones (`n...`, where 0 traps) are set for every
/// register the CPU implements and stay clear (RES0) for the rest.
pub const fn hfgrtr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HFGRTR_EL2::Register> {
    FieldValue::<u64, HFGRTR_EL2::Register>::new(u64::MAX, 0, hfgxtr_enables(features))
}

/// HFGWTR_EL2 while a guest runs: as [`hfgrtr_el2_guest`] for writes (the two share a layout).
pub const fn hfgwtr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HFGWTR_EL2::Register> {
    FieldValue::<u64, HFGWTR_EL2::Register>::new(u64::MAX, 0, hfgxtr_enables(features))
}

/// The negative-polarity bits of HFGRTR_EL2/HFGWTR_EL2 for `features`.
const fn hfgxtr_enables(features: &CpuFeatures) -> u64 {
    merge(&[
        when(features.aie, HFGRTR_EL2::nAMAIR2_EL1),
        when(features.aie, HFGRTR_EL2::nMAIR2_EL1),
        when(features.s2poe, HFGRTR_EL2::nS2POR_EL1),
        when(features.s1poe, HFGRTR_EL2::nPOR_EL1),
        when(features.s1poe, HFGRTR_EL2::nPOR_EL0),
        when(features.s1pie, HFGRTR_EL2::nPIR_EL1),
        when(features.s1pie, HFGRTR_EL2::nPIRE0_EL1),
        when(features.the, HFGRTR_EL2::nRCWMASK_EL1),
        when(features.sme, HFGRTR_EL2::nTPIDR2_EL0),
        when(features.sme, HFGRTR_EL2::nSMPRI_EL1),
        when(features.gcs, HFGRTR_EL2::nGCS_EL1),
        when(features.gcs, HFGRTR_EL2::nGCS_EL0),
        when(features.ls64 >= 3, HFGRTR_EL2::nACCDATA_EL1),
    ])
    .value
}
const _: () = assert!(hfgrtr_el2_guest(&CpuFeatures::NONE).value == 0);
const _: () = assert!(
    hfgrtr_el2_guest(&CpuFeatures {
        sme: true,
        ..CpuFeatures::NONE
    })
    .value
        == 0x00c0_0000_0000_0000
);
const _: () = assert!(hfgwtr_el2_guest(&ALL_FEATURES).value == 0xfff4_0000_0000_0000);

/// HFGITR_EL2 while a guest runs: no fine-grained instruction trap (the GCS and BRBE
/// instructions' negative bits set where implemented).
pub const fn hfgitr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HFGITR_EL2::Register> {
    let enables = merge(&[
        when(features.gcs, HFGITR_EL2::nGCSEPP),
        when(features.gcs, HFGITR_EL2::nGCSSTR_EL1),
        when(features.gcs, HFGITR_EL2::nGCSPUSHM_EL1),
        when(features.brbe, HFGITR_EL2::nBRBIALL),
        when(features.brbe, HFGITR_EL2::nBRBINJ),
    ]);
    FieldValue::<u64, HFGITR_EL2::Register>::new(u64::MAX, 0, enables.value)
}
const _: () = assert!(hfgitr_el2_guest(&CpuFeatures::NONE).value == 0);
const _: () = assert!(hfgitr_el2_guest(&ALL_FEATURES).value == 0x0f80_0000_0000_0000);

/// HDFGRTR_EL2 while a guest runs: no fine-grained debug, trace or PMU read trap (PMSNEVFR_EL1 and
/// the BRBE registers' negative bits set where implemented); MDCR_EL2 alone decides.
pub const fn hdfgrtr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HDFGRTR_EL2::Register> {
    let enables = merge(&[
        when(features.spe_v1p2, HDFGRTR_EL2::nPMSNEVFR_EL1),
        when(features.brbe, HDFGRTR_EL2::nBRBDATA),
        when(features.brbe, HDFGRTR_EL2::nBRBCTL),
        when(features.brbe, HDFGRTR_EL2::nBRBIDR),
    ]);
    FieldValue::<u64, HDFGRTR_EL2::Register>::new(u64::MAX, 0, enables.value)
}
const _: () = assert!(hdfgrtr_el2_guest(&CpuFeatures::NONE).value == 0);
const _: () = assert!(hdfgrtr_el2_guest(&ALL_FEATURES).value == 0x7800_0000_0000_0000);

/// HDFGWTR_EL2 while a guest runs: as [`hdfgrtr_el2_guest`] for writes (BRBIDR_EL1 is read-only).
pub const fn hdfgwtr_el2_guest(features: &CpuFeatures) -> FieldValue<u64, HDFGWTR_EL2::Register> {
    let enables = merge(&[
        when(features.spe_v1p2, HDFGWTR_EL2::nPMSNEVFR_EL1),
        when(features.brbe, HDFGWTR_EL2::nBRBDATA),
        when(features.brbe, HDFGWTR_EL2::nBRBCTL),
    ]);
    FieldValue::<u64, HDFGWTR_EL2::Register>::new(u64::MAX, 0, enables.value)
}
const _: () = assert!(hdfgwtr_el2_guest(&ALL_FEATURES).value == 0x7000_0000_0000_0000);

/// HFGRTR2_EL2 while a guest runs (written only with FEAT_FGT2). Every field is a
/// negative-polarity trap: set for PFAR_EL1 (FEAT_PFAR), ERXGSR_EL1 (FEAT_RASv2; HCR_EL2.TERR
/// still traps it, and it reads as zero like every error record) and RCWSMASK_EL1 (FEAT_THE with
/// FEAT_D128) where implemented. The FEAT_SRMASK fields (bits 3-14: the
/// `*MASK_EL1`/`*ALIAS_EL1` registers) stay 0, so those registers trap and the guest gets an
/// undefined instruction: SRMASK is hidden (docs/architecture.md, CPU features).
pub const fn hfgrtr2_el2_guest(features: &CpuFeatures) -> u64 {
    hfgxtr2_enables(features) | if features.ras_v2 { 1 << 1 } else { 0 }
}

/// HFGWTR2_EL2 while a guest runs: as [`hfgrtr2_el2_guest`] for writes (bit 1, ERXGSR_EL1, is
/// RES0: the register is read-only).
pub const fn hfgwtr2_el2_guest(features: &CpuFeatures) -> u64 {
    hfgxtr2_enables(features)
}

/// The fields HFGRTR2_EL2 and HFGWTR2_EL2 share: nPFAR_EL1 (bit 0), nRCWSMASK_EL1 (bit 2).
const fn hfgxtr2_enables(features: &CpuFeatures) -> u64 {
    let pfar = if features.pfar { 1 } else { 0 };
    let rcwsmask = if features.the && features.d128 {
        1 << 2
    } else {
        0
    };
    pfar | rcwsmask
}
const _: () = assert!(hfgrtr2_el2_guest(&CpuFeatures::NONE) == 0);
const _: () = assert!(hfgrtr2_el2_guest(&ALL_FEATURES) == 0b111);
const _: () = assert!(hfgwtr2_el2_guest(&ALL_FEATURES) == 0b101);

/// HFGITR2_EL2, HDFGRTR2_EL2 and HDFGWTR2_EL2 while a guest runs (written only with FEAT_FGT2):
/// 0. Their positive trap bits (TSBCSYNC, the PMU/SPE/trace ones) are clear, so nothing
/// cellvisor passes traps; their negative bits (for FEAT_OCCMO, PMUv3p9, SPE_FDS, ... registers
/// newer than any kernel a cell runs) are clear too, so those registers trap and are hidden.
pub const FGT2_OTHERS_GUEST: u64 = 0;

/// HCR_EL2.VSE: a virtual SError is pending for the guest.
pub const HCR_VSE: u64 = HCR_EL2::VSE::SET.value;
const _: () = assert!(HCR_VSE == 1 << 8);
/// The bits of ESR_EL2 a virtual SError's syndrome (VSESR_EL2) takes: IDS (24) and ISS[23:0].
pub const VSESR_ISS_MASK: u64 = 0x1ff_ffff;

/// SMPRIMAP_EL2 while a guest runs (written only where SMIDR_EL1.SMPS says it exists): 0.
/// HCRX_EL2.SMPME is clear, so streaming-mode priority mapping is off and the register is unused;
/// it is written so it never holds a previous value.
pub const SMPRIMAP_GUEST: u64 = 0;

/// HAFGRTR_EL2 while a guest runs (written only with FEAT_FGT and FEAT_AMUv1): no fine-grained
/// activity monitor read traps (the register has only positive trap bits); CPTR_EL2.TAM traps
/// them all.
pub const HAFGRTR_GUEST: FieldValue<u64, HAFGRTR_EL2::Register> =
    FieldValue::<u64, HAFGRTR_EL2::Register>::new(u64::MAX, 0, 0);

/// MDCR_EL2 while a guest runs, `counters` being PMCR_EL0.N: the guest owns the PMU and the
/// debug registers of its CPU (reset at every vCPU start, `arch::aarch64::reset`), but its PMU
/// never counts at EL2 unless the cell's board policy `el2_counting` is
/// `AllowedForMeasurement`; trace filtering, SPE and TRBE are EL2's.
pub const fn mdcr_el2_guest(
    counters: u64,
    features: &CpuFeatures,
    el2_counting: El2Counting,
) -> FieldValue<u64, MDCR_EL2::Register> {
    let prohibit = matches!(el2_counting, El2Counting::Prohibited);
    merge(&[
        // Every event counter belongs to EL1/EL0; none is reserved for EL2.
        MDCR_EL2::HPMN.val(counters),
        MDCR_EL2::HPME::CLEAR,
        // PMU registers do not trap, but for PMCR_EL0 on a PMUv3p1..p4 core (below).
        MDCR_EL2::TPM::CLEAR,
        // Counting at EL2 is prohibited, whatever the guest's filters say: HPMD for the event
        // counters (FEAT_PMUv3p1), HCCD for the cycle counter (FEAT_PMUv3p5; RES0 before). A
        // core with HPMD but not HCCD stops its cycle counter where counting is prohibited only
        // with PMCR_EL0.DP set, so there PMCR_EL0 traps and EL2 forces DP on at every write
        // (core::sysreg). The measurement-only exception leaves all of it clear, so `cargo
        // xtask bench` can count the instructions EL2 runs for the guest.
        when(features.pmu_v3p1 && prohibit, MDCR_EL2::HPMD),
        when(features.pmu_v3p5 && prohibit, MDCR_EL2::HCCD),
        when(
            features.pmu_v3p1 && !features.pmu_v3p5 && prohibit,
            MDCR_EL2::TPMCR,
        ),
        MDCR_EL2::HLP::CLEAR,
        // Debug exceptions stay at EL1 (from where they cannot target EL2) and debug registers do
        // not trap: passed through, with their state reset at every vCPU start.
        MDCR_EL2::TDE::RouteToEL1,
        MDCR_EL2::TDA::CLEAR,
        MDCR_EL2::TDOSA::CLEAR,
        MDCR_EL2::TDRA::CLEAR,
        // TRFCR_EL1 traps (FEAT_TRF; RES0 without): trace is EL2's, and hidden.
        when(features.trace_filter, MDCR_EL2::TTRF),
        // SPE and TRBE are hidden (docs/architecture.md, "CPU features"): their buffers stay
        // EL2's (which never enables them), so EL1's accesses to the buffer registers trap, and
        // so do the sampling controls (TPMS, FEAT_SPE); each becomes an undefined instruction.
        MDCR_EL2::E2PB::OwnedByEL2OrEL1,
        when(features.spe, MDCR_EL2::TPMS),
        MDCR_EL2::E2TB::EL1OrEL2OwnerTrapToEL2,
    ])
}
// Without the features, QEMU's reset value (HPMN = PMCR_EL0.N, everything else 0).
const _: () = assert!(mdcr_el2_guest(6, &CpuFeatures::NONE, El2Counting::Prohibited).value == 6);
const _: () = assert!(mdcr_el2_guest(31, &CpuFeatures::NONE, El2Counting::Prohibited).value == 31);
// QEMU `-cpu max` (PMUv3p5, no TRF, no SPE): HPMD and HCCD, unless measuring.
const _: () = assert!(
    mdcr_el2_guest(
        6,
        &CpuFeatures {
            pmu: true,
            pmu_v3p1: true,
            pmu_v3p5: true,
            ..CpuFeatures::NONE
        },
        El2Counting::Prohibited
    )
    .value
        == 0x82_0006
);
const _: () = assert!(
    mdcr_el2_guest(
        6,
        &CpuFeatures {
            pmu: true,
            pmu_v3p1: true,
            pmu_v3p5: true,
            ..CpuFeatures::NONE
        },
        El2Counting::AllowedForMeasurement
    )
    .value
        == 6
);
// A PMUv3p1..p4 core (Cortex-A55, A76, A78): HPMD, and PMCR_EL0 traps so DP can be forced.
const _: () = assert!(
    mdcr_el2_guest(
        6,
        &CpuFeatures {
            pmu: true,
            pmu_v3p1: true,
            ..CpuFeatures::NONE
        },
        El2Counting::Prohibited
    )
    .value
        == 0x2_0026
);
// An Armv8.0 PMU (PMUv3: Cortex-A53, A57, A72): nothing can prohibit counting at EL2.
const _: () = assert!(
    mdcr_el2_guest(
        6,
        &CpuFeatures {
            pmu: true,
            ..CpuFeatures::NONE
        },
        El2Counting::Prohibited
    )
    .value
        == 6
);
// Every feature: HPMD, HCCD, TTRF, TPMS.
const _: () = assert!(mdcr_el2_guest(6, &ALL_FEATURES, El2Counting::Prohibited).value == 0x8a_4006);

/// [`mdcr_el2_guest`] for this CPU (PMCR_EL0.N when it implements PMUv3, else 0) and a cell
/// whose policy is `el2_counting`.
pub fn mdcr_el2(features: &CpuFeatures, el2_counting: El2Counting) -> u64 {
    let counters = if features.pmu {
        LocalRegisterCopy::<u64, PMCR_EL0::Register>::new(read_sysreg!("pmcr_el0"))
            .read(PMCR_EL0::N)
    } else {
        0
    };
    mdcr_el2_guest(counters, features, el2_counting).value
}

/// VTCR_EL2 for every cell's stage 2 (the format `mem::stage2` builds), `physical_address_size`
/// being the PS encoding.
pub const fn vtcr_el2_guest(physical_address_size: u64) -> FieldValue<u64, VTCR_EL2::Register> {
    merge(&[
        VTCR_EL2::RES1::SET,
        VTCR_EL2::PS.val(physical_address_size),
        // 4 KiB granule; 39-bit IPA space starting at level 1.
        VTCR_EL2::TG0::Granule4KB,
        VTCR_EL2::SL0.val(VTCR_SL0),
        VTCR_EL2::T0SZ.val(VTCR_T0SZ),
        // Table walks: inner shareable, write-back cacheable.
        VTCR_EL2::SH0::Inner,
        VTCR_EL2::ORGN0::NormalWBRAWA,
        VTCR_EL2::IRGN0::NormalWBRAWA,
    ])
}
const _: () = assert!(vtcr_el2_guest(0).value == 0x8000_3559);
const _: () = assert!(vtcr_el2_guest(2).value == 0x8002_3559);
const _: () = assert!(vtcr_el2_guest(5).value == 0x8005_3559);

/// [`vtcr_el2_guest`] for this CPU's physical address size.
pub fn vtcr_el2() -> u64 {
    vtcr_el2_guest(mmu::physical_address_size()).value
}

/// VMPIDR_EL2 for a vCPU whose MPIDR affinity (Aff3..Aff0 in MPIDR layout) is `affinity`.
pub fn vmpidr_el2(affinity: u64) -> u64 {
    let affinity = LocalRegisterCopy::<u64, MPIDR_EL1::Register>::new(affinity);
    (VMPIDR_EL2::RES1::SET
        + VMPIDR_EL2::Aff3.val(affinity.read(MPIDR_EL1::Aff3))
        + VMPIDR_EL2::Aff2.val(affinity.read(MPIDR_EL1::Aff2))
        + VMPIDR_EL2::Aff1.val(affinity.read(MPIDR_EL1::Aff1))
        + VMPIDR_EL2::Aff0.val(affinity.read(MPIDR_EL1::Aff0)))
    .value
}

/// CNTHCTL_EL2 while a guest runs: EL1 reads the physical counter and uses the physical timer
/// without trapping (the virtual ones never trap).
pub const CNTHCTL_GUEST: FieldValue<u64, CNTHCTL_EL2::Register> =
    merge(&[CNTHCTL_EL2::EL1PCTEN::SET, CNTHCTL_EL2::EL1PCEN::SET]);
const _: () = assert!(CNTHCTL_GUEST.value == 0b11);

register_bitfields![u64,
    /// `HSTR_EL2`: traps of EL1/EL0 AArch32 CP15 accesses, by primary register CRn.
    pub HSTR_EL2 [
        /// Bit n set traps CP15 accesses with CRn = n (bits 4 and 14 are RES0).
        T OFFSET(0) NUMBITS(16) []
    ]
];

/// HSTR_EL2 while a guest runs: no AArch32 CP15 trap (EL1 is AArch64 and EL0 is not given AArch32
/// system-register traps of its own).
pub const HSTR_GUEST: FieldValue<u64, HSTR_EL2::Register> = HSTR_EL2::T.val(0);
const _: () = assert!(HSTR_GUEST.value == 0);

/// SCTLR_EL1 a vCPU starts with: MMU, caches and alignment checks off, the bits that are RES1
/// without their feature set.
pub const SCTLR_EL1_RESET: FieldValue<u64, SCTLR_EL1::Register> = merge(&[
    SCTLR_EL1::M::Disable,
    SCTLR_EL1::A::Disable,
    SCTLR_EL1::C::NonCacheable,
    SCTLR_EL1::I::NonCacheable,
    sctlr_el1::EOS.val(1),
    sctlr_el1::TSCXT.val(1),
    sctlr_el1::EIS.val(1),
    sctlr_el1::SPAN.val(1),
    sctlr_el1::nTLSMD.val(1),
    sctlr_el1::LSMAOE.val(1),
]);
const _: () = assert!(SCTLR_EL1_RESET.value == 0x30D0_0800);
const _: () = assert!(SCTLR_EL1_RESET.value == crate::core::reset::SCTLR_EL1);

/// ICH_HCR_EL2 outside what the vGIC sets per entry: the virtual CPU interface is on.
pub const ICH_HCR_GUEST: FieldValue<u64, ICH_HCR_EL2::Register> = ICH_HCR_EL2::En::SET;
const _: () = assert!(ICH_HCR_GUEST.value == 1);

/// ICH_VMCR_EL2 a vCPU starts with: both virtual groups disabled and every priority masked, as the
/// GIC CPU interface is after reset; the guest's GIC driver programs them.
pub const ICH_VMCR_RESET: FieldValue<u64, ICH_VMCR_EL2::Register> = merge(&[
    ICH_VMCR_EL2::VENG0::CLEAR,
    ICH_VMCR_EL2::VENG1::CLEAR,
    ICH_VMCR_EL2::VAckCtl::CLEAR,
    ICH_VMCR_EL2::VFIQEn::CLEAR,
    ICH_VMCR_EL2::VCBPR::CLEAR,
    ICH_VMCR_EL2::VEOIM::CLEAR,
    ICH_VMCR_EL2::VBPR1.val(0),
    ICH_VMCR_EL2::VBPR0.val(0),
    ICH_VMCR_EL2::VPMR.val(0),
]);
const _: () = assert!(ICH_VMCR_RESET.value == 0);
