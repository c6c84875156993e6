//! The EL2 controls a guest runs under, in one place: every register `prepare` programs, as a list
//! of named fields with the reason for each group, checked against the raw values they replaced.

use aarch64_cpu::registers::{
    CNTHCTL_EL2, CPTR_EL2, HCR_EL2, ICH_HCR_EL2, ID_AA64DFR0_EL1, ID_AA64PFR0_EL1, ID_AA64PFR1_EL1,
    MDCR_EL2, MPIDR_EL1, SCTLR_EL1, VMPIDR_EL2, VTCR_EL2,
};
use tock_registers::fields::FieldValue;
use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::fields::{ICH_VMCR_EL2, PMCR_EL0, cptr_el2, id_aa64pfr1_el1, merge, sctlr_el1};
use super::mmu;
use super::sysreg::read_sysreg;
use crate::mem::stage2::{VTCR_SL0, VTCR_T0SZ};

/// HCR_EL2 while a guest runs.
pub const HCR_GUEST: FieldValue<u64, HCR_EL2::Register> = merge(&[
    // Stage 2 on: the cell's table confines every guest access.
    HCR_EL2::VM::Enable,
    // A guest's data cache invalidate by set/way is done as clean and invalidate, so it cannot
    // discard dirty lines of another cell or of cellvisor.
    HCR_EL2::SWIO::SET,
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
const _: () = assert!(HCR_GUEST.value == 0x0000_0300_8008_203b);

/// CPTR_EL2 while a guest runs: nothing trapped. FP/SIMD, SVE (`sve` = FEAT_SVE implemented) and
/// SME (`sme`) belong to the guest, because EL2 is built soft-float and never touches them; TZ and
/// TSM are RES1 on a CPU without the feature, so they stay set there.
pub const fn cptr_el2_guest(sve: bool, sme: bool) -> FieldValue<u64, CPTR_EL2::Register> {
    merge(&[
        cptr_el2::RES1_0_7.val(0xff),
        cptr_el2::RES1_9.val(1),
        cptr_el2::RES1_13.val(1),
        cptr_el2::TFP.val(0),
        cptr_el2::TZ.val(if sve { 0 } else { 1 }),
        cptr_el2::TSM.val(if sme { 0 } else { 1 }),
        cptr_el2::TTA.val(0),
        CPTR_EL2::TAM::CLEAR,
        cptr_el2::TCPAC.val(0),
    ])
}
const _: () = assert!(cptr_el2_guest(false, false).value == 0x33ff);
const _: () = assert!(cptr_el2_guest(true, false).value == 0x32ff);
const _: () = assert!(cptr_el2_guest(false, true).value == 0x23ff);
const _: () = assert!(cptr_el2_guest(true, true).value == 0x22ff);

/// [`cptr_el2_guest`] for this CPU's features.
pub fn cptr_el2() -> u64 {
    let pfr0 =
        LocalRegisterCopy::<u64, ID_AA64PFR0_EL1::Register>::new(read_sysreg!("id_aa64pfr0_el1"));
    let pfr1 =
        LocalRegisterCopy::<u64, ID_AA64PFR1_EL1::Register>::new(read_sysreg!("id_aa64pfr1_el1"));
    let sve = pfr0.read(ID_AA64PFR0_EL1::SVE) != 0;
    let sme = pfr1.read(id_aa64pfr1_el1::SME) != 0;
    cptr_el2_guest(sve, sme).value
}

/// MDCR_EL2 while a guest runs, `counters` being PMCR_EL0.N: the guest owns the whole PMU and the
/// debug registers.
pub const fn mdcr_el2_guest(counters: u64) -> FieldValue<u64, MDCR_EL2::Register> {
    merge(&[
        // Every event counter belongs to EL1/EL0; none is reserved for EL2.
        MDCR_EL2::HPMN.val(counters),
        MDCR_EL2::HPME::CLEAR,
        // PMU registers do not trap.
        MDCR_EL2::TPM::CLEAR,
        MDCR_EL2::TPMCR::CLEAR,
        // Counting at EL2 is not prohibited (HPMD, HCCD): `cargo xtask bench` has the guest count
        // the instructions EL2 runs for it, with the PMU's EL2 filter.
        MDCR_EL2::HPMD::CLEAR,
        MDCR_EL2::HCCD::CLEAR,
        MDCR_EL2::HLP::CLEAR,
        // Debug exceptions stay at EL1 and debug registers do not trap.
        MDCR_EL2::TDE::RouteToEL1,
        MDCR_EL2::TDA::CLEAR,
        MDCR_EL2::TDOSA::CLEAR,
        MDCR_EL2::TDRA::CLEAR,
        // Trace filter controls do not trap.
        MDCR_EL2::TTRF::CLEAR,
    ])
}
// What QEMU's reset value (HPMN = PMCR_EL0.N, everything else 0) was, so behaviour is unchanged.
const _: () = assert!(mdcr_el2_guest(6).value == 6);
const _: () = assert!(mdcr_el2_guest(31).value == 31);

/// [`mdcr_el2_guest`] for this CPU: PMCR_EL0.N when it implements PMUv3, else 0.
pub fn mdcr_el2() -> u64 {
    let dfr0 =
        LocalRegisterCopy::<u64, ID_AA64DFR0_EL1::Register>::new(read_sysreg!("id_aa64dfr0_el1"));
    // PMUVer 0 is no PMU, 0xf an IMPLEMENTATION DEFINED one: PMCR_EL0 is then not PMUv3's.
    let counters = match dfr0.read(ID_AA64DFR0_EL1::PMUVer) {
        0 | 0xf => 0,
        _ => LocalRegisterCopy::<u64, PMCR_EL0::Register>::new(read_sysreg!("pmcr_el0"))
            .read(PMCR_EL0::N),
    };
    mdcr_el2_guest(counters).value
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

/// CNTVOFF_EL2 while a guest runs: no offset, the guest's virtual counter is the physical one
/// (every cell sees the same time base).
pub const CNTVOFF_GUEST: u64 = 0;

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
