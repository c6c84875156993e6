//! Decoding of ESR_EL2/HPFAR_EL2/FAR_EL2 at a guest exit into a typed request.
#![forbid(unsafe_code)]
//!
//! [`decode`] is total: every 64-bit syndrome maps to some [`Exit`], unknown or malformed ones to
//! [`Exit::Other`]. Nothing here trusts ISS fields that the architecture marks as invalid: a data
//! abort only carries an [`MmioAccess`] when ISS.ISV = 1.

use tock_registers::fields::Field;
use tock_registers::{LocalRegisterCopy, register_bitfields};

use crate::dev::mmio::{AccessWidth, MmioAccess, TransferRegister};
use crate::mem::addr::GuestPhysAddr;

register_bitfields![u64,
    /// ESR_EL2, the Exception Syndrome Register for exceptions taken to EL2.
    pub(crate) ESR_EL2 [
        /// Instruction Specific Syndrome 2 (FEAT_LS64 and friends); unused by cellvisor.
        ISS2 OFFSET(32) NUMBITS(24) [],
        /// Exception Class.
        EC OFFSET(26) NUMBITS(6) [],
        /// Instruction Length: 1 = 32-bit instruction.
        IL OFFSET(25) NUMBITS(1) [],
        /// Instruction Specific Syndrome.
        ISS OFFSET(0) NUMBITS(25) []
    ],
    /// HPFAR_EL2, the faulting IPA page for stage-2 aborts.
    pub(crate) HPFAR_EL2 [
        /// Faulting IPA bits [55:12].
        FIPA OFFSET(4) NUMBITS(44) []
    ]
];

register_bitfields![u32,
    /// ISS of a data abort (EC 0x24/0x25).
    pub(crate) ISS_DATA_ABORT [
        /// Instruction Syndrome Valid: bits 23:14 hold a valid syndrome.
        ISV OFFSET(24) NUMBITS(1) [],
        /// Syndrome Access Size.
        SAS OFFSET(22) NUMBITS(2) [],
        /// Syndrome Sign Extend.
        SSE OFFSET(21) NUMBITS(1) [],
        /// Syndrome Register Transfer.
        SRT OFFSET(16) NUMBITS(5) [],
        /// Sixty-Four bit general-purpose register transfer.
        SF OFFSET(15) NUMBITS(1) [],
        /// Acquire/Release.
        AR OFFSET(14) NUMBITS(1) [],
        /// FAR not Valid (for external aborts).
        FNV OFFSET(10) NUMBITS(1) [],
        /// External Abort type.
        EA OFFSET(9) NUMBITS(1) [],
        /// Cache Maintenance operation.
        CM OFFSET(8) NUMBITS(1) [],
        /// Fault on the stage-2 translation of a stage-1 page-table walk.
        S1PTW OFFSET(7) NUMBITS(1) [],
        /// Write not Read.
        WNR OFFSET(6) NUMBITS(1) [],
        /// Data Fault Status Code.
        DFSC OFFSET(0) NUMBITS(6) []
    ],
    /// ISS of an instruction abort (EC 0x20/0x21).
    pub(crate) ISS_INSTRUCTION_ABORT [
        /// FAR not Valid (for external aborts).
        FNV OFFSET(10) NUMBITS(1) [],
        /// Fault on the stage-2 translation of a stage-1 page-table walk.
        S1PTW OFFSET(7) NUMBITS(1) [],
        /// Instruction Fault Status Code.
        IFSC OFFSET(0) NUMBITS(6) []
    ],
    /// ISS of a trapped HVC or SMC (EC 0x16/0x17).
    pub(crate) ISS_HVC_SMC [
        /// The instruction's 16-bit immediate.
        IMM16 OFFSET(0) NUMBITS(16) []
    ],
    /// ISS of a trapped WFI/WFE/WFIT/WFET (EC 0x01).
    pub(crate) ISS_WFX [
        /// Trapped instruction: 0b00 WFI, 0b01 WFE, 0b10 WFIT, 0b11 WFET.
        TI OFFSET(0) NUMBITS(2) [
            Wfi = 0b00,
            Wfe = 0b01,
            Wfit = 0b10,
            Wfet = 0b11
        ]
    ],
    /// ISS of a trapped MSR/MRS/system instruction (EC 0x18).
    pub(crate) ISS_SYSREG [
        /// Op0.
        OP0 OFFSET(20) NUMBITS(2) [],
        /// Op2.
        OP2 OFFSET(17) NUMBITS(3) [],
        /// Op1.
        OP1 OFFSET(14) NUMBITS(3) [],
        /// CRn.
        CRN OFFSET(10) NUMBITS(4) [],
        /// Rt, the general-purpose register transferred.
        RT OFFSET(5) NUMBITS(5) [],
        /// CRm.
        CRM OFFSET(1) NUMBITS(4) [],
        /// Direction: 1 = read (MRS), 0 = write (MSR).
        DIRECTION OFFSET(0) NUMBITS(1) []
    ]
];

/// Exception classes cellvisor distinguishes (ESR_ELx.EC).
pub mod exception_class {
    /// Unknown reason (also: undefined instruction).
    pub const UNKNOWN: u8 = 0x00;
    /// Trapped WFI/WFE/WFIT/WFET.
    pub const WFX: u8 = 0x01;
    /// Access to SIMD/floating point trapped by CPTR_EL2.
    pub const FP_ASIMD: u8 = 0x07;
    /// Pointer authentication instruction or key register trapped by HCR_EL2.API/APK.
    pub const PAUTH: u8 = 0x09;
    /// HVC executed in AArch64 state.
    pub const HVC64: u8 = 0x16;
    /// SMC executed in AArch64 state (trapped by HCR_EL2.TSC).
    pub const SMC64: u8 = 0x17;
    /// Trapped MSR, MRS or System instruction in AArch64 state.
    pub const SYSREG: u8 = 0x18;
    /// Access to SVE trapped by CPTR_EL2.
    pub const SVE: u8 = 0x19;
    /// Instruction abort from a lower exception level.
    pub const INSTRUCTION_ABORT_LOWER: u8 = 0x20;
    /// Instruction abort taken without a change in exception level.
    pub const INSTRUCTION_ABORT_SAME: u8 = 0x21;
    /// Data abort from a lower exception level.
    pub const DATA_ABORT_LOWER: u8 = 0x24;
    /// Data abort taken without a change in exception level.
    pub const DATA_ABORT_SAME: u8 = 0x25;
}

/// What a guest exit asks cellvisor to do, decoded from ESR_EL2 (and FAR/HPFAR for aborts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `HVC #imm` (EC 0x16). ELR_EL2 already points past the instruction.
    Hvc {
        /// The instruction's immediate; SMCCC calls use 0.
        imm: u16,
    },
    /// `SMC #imm` trapped by HCR_EL2.TSC (EC 0x17). ELR_EL2 points *at* the SMC: the caller must
    /// advance the PC by 4 when it completes the call.
    Smc {
        /// The instruction's immediate; SMCCC calls use 0.
        imm: u16,
    },
    /// A stage-2 data abort from the guest (EC 0x24).
    DataAbort(DataAbort),
    /// A stage-2 instruction abort from the guest (EC 0x20).
    InstructionAbort {
        /// The faulting guest physical address, where HPFAR_EL2 records one for this fault
        /// (see [`FaultStatus::records_ipa`]).
        ipa: Option<GuestPhysAddr>,
        /// Why it faulted.
        fault: FaultStatus,
    },
    /// Trapped WFI/WFE/WFIT/WFET (EC 0x01).
    Wfx {
        /// `true` for WFE/WFET, `false` for WFI/WFIT.
        wfe: bool,
        /// `true` for WFIT/WFET (FEAT_WFxT), which end at a timeout EL2 has no timer for: the run
        /// loop completes them at once, as the architecture allows any WFx to.
        timeout: bool,
    },
    /// A trapped MSR/MRS/system instruction (EC 0x18).
    SysReg(SysRegAccess),
    /// A trapped SIMD/FP access (EC 0x07).
    FpTrap,
    /// A trapped SVE access (EC 0x19).
    SveTrap,
    /// A trapped pointer-authentication instruction or key access (EC 0x09).
    Pauth,
    /// Anything else; the caller normally injects an undefined-instruction exception.
    Other {
        /// The exception class.
        ec: u8,
        /// The raw 25-bit ISS.
        iss: u32,
    },
}

/// A stage-2 data abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// The faulting guest physical address, HPFAR_EL2.FIPA << 12 | FAR_EL2\[11:0\], where
    /// HPFAR_EL2 records one for this fault ([`FaultStatus::records_ipa`]); `None` where it is
    /// UNKNOWN (an external abort, an alignment fault, ...).
    pub ipa: Option<GuestPhysAddr>,
    /// The access was a write (ISS.WnR). For a fault on a stage-1 table walk (`s1ptw`) or a cache
    /// maintenance operation this does not describe a guest store.
    pub write: bool,
    /// The load/store syndrome, present only when ISS.ISV = 1. `None` means the instruction cannot
    /// be emulated from the syndrome (e.g. a load pair or a post-indexed access).
    pub access: Option<MmioAccess>,
    /// Why it faulted.
    pub fault: FaultStatus,
    /// The fault happened on the stage-2 translation of a stage-1 page-table walk (ISS.S1PTW).
    pub s1ptw: bool,
    /// The fault was caused by a cache maintenance or address translation instruction (ISS.CM).
    pub cache_maintenance: bool,
    /// FAR_EL2 (and so the low 12 bits of `ipa`) is not valid (ISS.FnV, external aborts only).
    pub far_not_valid: bool,
}

/// Fault status class of an abort (ISS.DFSC / ISS.IFSC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultStatus {
    /// Address size fault at the given lookup level (-1..=3).
    AddressSize {
        /// Lookup level.
        level: i8,
    },
    /// Translation fault at the given lookup level (-1..=3): nothing mapped there.
    Translation {
        /// Lookup level.
        level: i8,
    },
    /// Access flag fault at the given lookup level (0..=3).
    AccessFlag {
        /// Lookup level.
        level: i8,
    },
    /// Permission fault at the given lookup level (0..=3).
    Permission {
        /// Lookup level.
        level: i8,
    },
    /// Synchronous external abort, not on a table walk.
    SyncExternal,
    /// Synchronous external abort on a table walk at the given lookup level (-1..=3).
    SyncExternalOnWalk {
        /// Lookup level.
        level: i8,
    },
    /// Synchronous parity or ECC error on a memory access, not on a table walk.
    Parity,
    /// Synchronous parity or ECC error on a table walk at the given lookup level (-1..=3).
    ParityOnWalk {
        /// Lookup level.
        level: i8,
    },
    /// Synchronous tag check fault (FEAT_MTE).
    TagCheck,
    /// Alignment fault.
    Alignment,
    /// TLB conflict abort.
    TlbConflict,
    /// Unsupported atomic hardware update fault.
    UnsupportedAtomicUpdate,
    /// Any other (reserved, implementation defined or feature-specific) code.
    Other(u8),
}

/// [`FaultStatus::records_ipa`] straight from an ISS.DFSC/IFSC code, without decoding it (the fast
/// path asks this of every trapped device access): address size, translation, access flag and
/// permission faults at levels 0-3 are codes 0x00-0x0F; at level -1 (FEAT_LPA2) address size and
/// translation faults are 0x29 and 0x2B.
pub const fn records_ipa(code: u8) -> bool {
    code < 0x10 || code == 0x29 || code == 0x2B
}

impl FaultStatus {
    /// Whether HPFAR_EL2 holds the faulting IPA for this fault: a stage-2 address size,
    /// translation, access flag or permission fault (Arm ARM, HPFAR_EL2). For every other fault
    /// type (external aborts, parity errors, alignment, TLB conflicts, ...) it is UNKNOWN, so
    /// nothing may be looked up by it.
    pub const fn records_ipa(self) -> bool {
        matches!(
            self,
            Self::AddressSize { .. }
                | Self::Translation { .. }
                | Self::AccessFlag { .. }
                | Self::Permission { .. }
        )
    }
}

impl FaultStatus {
    /// Classifies a 6-bit DFSC/IFSC value; only the low six bits of `code` are used.
    pub const fn from_code(code: u8) -> Self {
        let code = code & 0x3f;
        let level = (code & 0b11) as i8;
        // By groups of four first (the level-indexed classes), so the common translation and
        // permission faults take a table lookup rather than a chain of range checks.
        match code >> 2 {
            0b0000 => Self::AddressSize { level },
            0b0001 => Self::Translation { level },
            0b0010 => Self::AccessFlag { level },
            0b0011 => Self::Permission { level },
            0b0101 => Self::SyncExternalOnWalk { level },
            0b0111 => Self::ParityOnWalk { level },
            _ => match code {
                0b10_1001 => Self::AddressSize { level: -1 },
                0b10_1011 => Self::Translation { level: -1 },
                0b01_0000 => Self::SyncExternal,
                0b01_0001 => Self::TagCheck,
                0b01_0011 => Self::SyncExternalOnWalk { level: -1 },
                0b01_1000 => Self::Parity,
                0b01_1011 => Self::ParityOnWalk { level: -1 },
                0b10_0001 => Self::Alignment,
                0b11_0000 => Self::TlbConflict,
                0b11_0001 => Self::UnsupportedAtomicUpdate,
                other => Self::Other(other),
            },
        }
    }
}

/// A trapped MSR/MRS or system instruction (EC 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysRegAccess {
    /// Op0 (0..=3).
    pub op0: u8,
    /// Op1 (0..=7).
    pub op1: u8,
    /// CRn (0..=15).
    pub crn: u8,
    /// CRm (0..=15).
    pub crm: u8,
    /// Op2 (0..=7).
    pub op2: u8,
    /// The general-purpose register transferred, 0..=31 (31 = XZR).
    pub rt: u8,
    /// `true` for MRS (read into `rt`), `false` for MSR/SYS (write from `rt`).
    pub read: bool,
}

/// System registers and instructions cellvisor recognises by name in a [`SysRegAccess`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownSysReg {
    /// ICC_SGI1R_EL1 (3, 0, c12, c11, 5): generate a Group 1 SGI for the current security state.
    IccSgi1rEl1,
    /// ICC_ASGI1R_EL1 (3, 1, c12, c11, 6): generate a Group 1 SGI for the other security state.
    IccAsgi1rEl1,
    /// ICC_SGI0R_EL1 (3, 2, c12, c11, 7): generate a Group 0 SGI.
    IccSgi0rEl1,
    /// ICC_SRE_EL1 (3, 0, c12, c12, 5): system register interface enable.
    IccSreEl1,
    /// CNTP_TVAL_EL0 (3, 3, c14, c2, 0).
    CntpTvalEl0,
    /// CNTP_CTL_EL0 (3, 3, c14, c2, 1).
    CntpCtlEl0,
    /// CNTP_CVAL_EL0 (3, 3, c14, c2, 2).
    CntpCvalEl0,
    /// DC ISW (1, 0, c7, c6, 2): invalidate data cache by set/way (trapped by HCR_EL2.TSW).
    DcIsw,
    /// DC CSW (1, 0, c7, c10, 2): clean data cache by set/way.
    DcCsw,
    /// DC CISW (1, 0, c7, c14, 2): clean and invalidate data cache by set/way.
    DcCisw,
    /// DC IGSW (1, 0, c7, c6, 4): invalidate allocation tags by set/way (FEAT_MTE2).
    DcIgsw,
    /// DC IGDSW (1, 0, c7, c6, 6): invalidate data and allocation tags by set/way.
    DcIgdsw,
    /// DC CGSW (1, 0, c7, c10, 4): clean allocation tags by set/way.
    DcCgsw,
    /// DC CGDSW (1, 0, c7, c10, 6): clean data and allocation tags by set/way.
    DcCgdsw,
    /// DC CIGSW (1, 0, c7, c14, 4): clean and invalidate allocation tags by set/way.
    DcCigsw,
    /// DC CIGDSW (1, 0, c7, c14, 6): clean and invalidate data and allocation tags by set/way.
    DcCigdsw,
    /// ACTLR_EL1 (3, 0, c1, c0, 1): the IMPLEMENTATION DEFINED auxiliary control register
    /// (trapped by HCR_EL2.TACR).
    ActlrEl1,
    /// PMCR_EL0 (3, 3, c9, c12, 0): the PMU control register (trapped by MDCR_EL2.TPMCR).
    PmcrEl0,
}

impl SysRegAccess {
    /// The encoding `(op0, op1, crn, crm, op2)`.
    pub const fn encoding(&self) -> (u8, u8, u8, u8, u8) {
        (self.op0, self.op1, self.crn, self.crm, self.op2)
    }

    /// The register or instruction by name, if cellvisor knows it.
    pub const fn known(&self) -> Option<KnownSysReg> {
        Some(match self.encoding() {
            (3, 0, 12, 11, 5) => KnownSysReg::IccSgi1rEl1,
            (3, 1, 12, 11, 6) => KnownSysReg::IccAsgi1rEl1,
            (3, 2, 12, 11, 7) => KnownSysReg::IccSgi0rEl1,
            (3, 0, 12, 12, 5) => KnownSysReg::IccSreEl1,
            (3, 3, 14, 2, 0) => KnownSysReg::CntpTvalEl0,
            (3, 3, 14, 2, 1) => KnownSysReg::CntpCtlEl0,
            (3, 3, 14, 2, 2) => KnownSysReg::CntpCvalEl0,
            (1, 0, 7, 6, 2) => KnownSysReg::DcIsw,
            (1, 0, 7, 10, 2) => KnownSysReg::DcCsw,
            (1, 0, 7, 14, 2) => KnownSysReg::DcCisw,
            (1, 0, 7, 6, 4) => KnownSysReg::DcIgsw,
            (1, 0, 7, 6, 6) => KnownSysReg::DcIgdsw,
            (1, 0, 7, 10, 4) => KnownSysReg::DcCgsw,
            (1, 0, 7, 10, 6) => KnownSysReg::DcCgdsw,
            (1, 0, 7, 14, 4) => KnownSysReg::DcCigsw,
            (1, 0, 7, 14, 6) => KnownSysReg::DcCigdsw,
            (3, 0, 1, 0, 1) => KnownSysReg::ActlrEl1,
            (3, 3, 9, 12, 0) => KnownSysReg::PmcrEl0,
            _ => return None,
        })
    }

    /// Whether this is an access to ICC_SGI1R_EL1 (a write is the usual way a GICv3 guest sends
    /// an IPI). One comparison of the encoding rather than [`SysRegAccess::known`]'s whole table:
    /// the fast path asks it at every SGI.
    pub const fn is_icc_sgi1r_el1(&self) -> bool {
        matches!(self.encoding(), (3, 0, 12, 11, 5))
    }

    /// Whether this is a data or allocation-tag cache maintenance instruction by set/way (every
    /// one HCR_EL2.TSW traps).
    pub const fn is_set_way(&self) -> bool {
        matches!(
            self.known(),
            Some(
                KnownSysReg::DcIsw
                    | KnownSysReg::DcCsw
                    | KnownSysReg::DcCisw
                    | KnownSysReg::DcIgsw
                    | KnownSysReg::DcIgdsw
                    | KnownSysReg::DcCgsw
                    | KnownSysReg::DcCgdsw
                    | KnownSysReg::DcCigsw
                    | KnownSysReg::DcCigdsw
            )
        )
    }

    /// Whether this is a RAS error record register (op0 3, op1 0, c5, c3..c5: ERRIDR_EL1,
    /// ERRSELR_EL1, ERXGSR_EL1, ERXFR_EL1, ERXCTLR_EL1, ERXSTATUS_EL1, ERXADDR_EL1, ERXPFG*_EL1,
    /// `ERXMISC<n>_EL1`), trapped by HCR_EL2.TERR (and FIEN for ERXPFG*).
    pub const fn is_error_record(&self) -> bool {
        self.op0 == 3 && self.op1 == 0 && self.crn == 5 && self.crm >= 3 && self.crm <= 5
    }

    /// Whether this is an activity monitor register (op0 3, op1 3, c13, c2..c15: AMCR_EL0,
    /// AMCFGR_EL0, AMCGCR_EL0, AMUSERENR_EL0, AMCNTEN*, AMEVCNTR*, AMEVTYPER*), trapped by
    /// CPTR_EL2.TAM.
    pub const fn is_activity_monitor(&self) -> bool {
        self.op0 == 3 && self.op1 == 3 && self.crn == 13 && self.crm >= 2
    }

    /// Whether this is in a space the architecture reserves for IMPLEMENTATION DEFINED
    /// registers (op0 3) and instructions (op0 1), CRn 11 or 15, trapped by HCR_EL2.TIDCP.
    pub const fn is_implementation_defined(&self) -> bool {
        (self.op0 == 3 || self.op0 == 1) && (self.crn == 11 || self.crn == 15)
    }
}

/// Decodes a guest exit from the raw ESR_EL2, FAR_EL2 and HPFAR_EL2 values.
///
/// FAR and HPFAR are only read for aborts. Exception classes that cannot come from a well-formed
/// AArch64 guest trap, and aborts taken from EL2 itself (EC 0x21/0x25), become [`Exit::Other`].
pub fn decode(esr: u64, far: u64, hpfar: u64) -> Exit {
    let esr = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr);
    // Both casts are lossless: EC is 6 bits, ISS 25 bits.
    let ec = esr.read(ESR_EL2::EC) as u8;
    let iss = esr.read(ESR_EL2::ISS) as u32;
    match ec {
        exception_class::HVC64 => Exit::Hvc { imm: imm16(iss) },
        exception_class::SMC64 => Exit::Smc { imm: imm16(iss) },
        exception_class::DATA_ABORT_LOWER => Exit::DataAbort(data_abort(iss, far, hpfar)),
        exception_class::INSTRUCTION_ABORT_LOWER => {
            let iss = LocalRegisterCopy::<u32, ISS_INSTRUCTION_ABORT::Register>::new(iss);
            let fault = FaultStatus::from_code(iss.read(ISS_INSTRUCTION_ABORT::IFSC) as u8);
            Exit::InstructionAbort {
                ipa: fault.records_ipa().then(|| fault_ipa(far, hpfar)),
                fault,
            }
        }
        exception_class::WFX => {
            let iss = LocalRegisterCopy::<u32, ISS_WFX::Register>::new(iss);
            let kind = iss.read_as_enum(ISS_WFX::TI);
            let wfe = matches!(
                kind,
                Some(ISS_WFX::TI::Value::Wfe | ISS_WFX::TI::Value::Wfet)
            );
            let timeout = matches!(
                kind,
                Some(ISS_WFX::TI::Value::Wfit | ISS_WFX::TI::Value::Wfet)
            );
            Exit::Wfx { wfe, timeout }
        }
        exception_class::SYSREG => Exit::SysReg(sysreg(iss)),
        exception_class::FP_ASIMD => Exit::FpTrap,
        exception_class::SVE => Exit::SveTrap,
        exception_class::PAUTH => Exit::Pauth,
        _ => Exit::Other { ec, iss },
    }
}

/// The length in bytes of the instruction that trapped (ESR_EL2.IL): 4, or 2 for a 16-bit T32
/// instruction. The caller adds this to ELR_EL2 after emulating an MMIO access or system register.
pub fn instruction_length(esr: u64) -> u64 {
    let esr = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr);
    if esr.is_set(ESR_EL2::IL) { 4 } else { 2 }
}

/// For an HVC or trapped SMC exit: whether it was an SMC, and its immediate; `None` for any other
/// exit. All the fast path needs, without the rest of [`decode`].
pub fn hypercall(esr: u64) -> Option<(bool, u16)> {
    let esr = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr);
    let smc = match esr.read(ESR_EL2::EC) as u8 {
        exception_class::HVC64 => false,
        exception_class::SMC64 => true,
        _ => return None,
    };
    // Lossless: ISS is 25 bits wide.
    Some((smc, imm16(esr.read(ESR_EL2::ISS) as u32)))
}

/// The ESR_EL2 bits of `value` in ISS field `field` of a trapped system register access.
const fn sysreg_bits(field: Field<u32, ISS_SYSREG::Register>, value: u32) -> u64 {
    ((value & field.mask) as u64) << field.shift
}

/// The ESR_EL2 bits that make an exit an MSR to ICC_SGI1R_EL1, whatever its transfer register:
/// EC and ISS's Op0, Op2, Op1, CRn, CRm and Direction.
const SGI1R_WRITE_MASK: u64 = (ESR_EL2::EC.mask << ESR_EL2::EC.shift)
    | sysreg_bits(ISS_SYSREG::OP0, u32::MAX)
    | sysreg_bits(ISS_SYSREG::OP2, u32::MAX)
    | sysreg_bits(ISS_SYSREG::OP1, u32::MAX)
    | sysreg_bits(ISS_SYSREG::CRN, u32::MAX)
    | sysreg_bits(ISS_SYSREG::CRM, u32::MAX)
    | sysreg_bits(ISS_SYSREG::DIRECTION, u32::MAX);
/// Those bits' values for `MSR ICC_SGI1R_EL1, Xt` (3, 0, c12, c11, 5).
const SGI1R_WRITE: u64 = ((exception_class::SYSREG as u64) << ESR_EL2::EC.shift)
    | sysreg_bits(ISS_SYSREG::OP0, 3)
    | sysreg_bits(ISS_SYSREG::OP2, 5)
    | sysreg_bits(ISS_SYSREG::OP1, 0)
    | sysreg_bits(ISS_SYSREG::CRN, 12)
    | sysreg_bits(ISS_SYSREG::CRM, 11)
    | sysreg_bits(ISS_SYSREG::DIRECTION, 0);

/// For a trapped MSR ICC_SGI1R_EL1 (a guest sending SGIs): the transfer register; `None` for any
/// other exit. One masked compare of the syndrome instead of [`decode`], for the fast path (it
/// agrees with [`SysRegAccess::is_icc_sgi1r_el1`] on every syndrome; tested).
pub fn sgi1r_write(esr: u64) -> Option<u8> {
    if esr & SGI1R_WRITE_MASK != SGI1R_WRITE {
        return None;
    }
    let esr = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr);
    // Lossless: ISS is 25 bits wide, RT 5.
    let iss = LocalRegisterCopy::<u32, ISS_SYSREG::Register>::new(esr.read(ESR_EL2::ISS) as u32);
    Some(iss.read(ISS_SYSREG::RT) as u8)
}

/// For a stage-2 data abort that can be emulated from its syndrome (ISS.ISV set, not on a
/// stage-1 table walk, not a cache maintenance operation): the faulting IPA, whether it is a
/// write, and the access. `None` for any other exit. Less than [`decode`], for the fast path.
pub fn emulable_access(
    esr: u64,
    far: u64,
    hpfar: u64,
) -> Option<(GuestPhysAddr, bool, MmioAccess)> {
    let esr = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr);
    if esr.read(ESR_EL2::EC) as u8 != exception_class::DATA_ABORT_LOWER {
        return None;
    }
    // Lossless: ISS is 25 bits wide.
    let iss =
        LocalRegisterCopy::<u32, ISS_DATA_ABORT::Register>::new(esr.read(ESR_EL2::ISS) as u32);
    if !iss.is_set(ISS_DATA_ABORT::ISV)
        || iss.is_set(ISS_DATA_ABORT::S1PTW)
        || iss.is_set(ISS_DATA_ABORT::CM)
        || !records_ipa(iss.read(ISS_DATA_ABORT::DFSC) as u8)
    {
        return None;
    }
    let access = MmioAccess {
        width: AccessWidth::from_sas(iss.read(ISS_DATA_ABORT::SAS) as u8),
        sign_extend: iss.is_set(ISS_DATA_ABORT::SSE),
        register: TransferRegister::from_srt(iss.read(ISS_DATA_ABORT::SRT) as u8),
        sixty_four: iss.is_set(ISS_DATA_ABORT::SF),
        acquire_release: iss.is_set(ISS_DATA_ABORT::AR),
    };
    Some((
        fault_ipa(far, hpfar),
        iss.is_set(ISS_DATA_ABORT::WNR),
        access,
    ))
}

fn imm16(iss: u32) -> u16 {
    // Lossless: IMM16 is 16 bits wide.
    LocalRegisterCopy::<u32, ISS_HVC_SMC::Register>::new(iss).read(ISS_HVC_SMC::IMM16) as u16
}

/// HPFAR_EL2.FIPA holds IPA[55:12]; FAR_EL2 supplies the offset within the page.
fn fault_ipa(far: u64, hpfar: u64) -> GuestPhysAddr {
    let hpfar = LocalRegisterCopy::<u64, HPFAR_EL2::Register>::new(hpfar);
    GuestPhysAddr::new((hpfar.read(HPFAR_EL2::FIPA) << 12) | (far & 0xfff))
}

fn data_abort(iss: u32, far: u64, hpfar: u64) -> DataAbort {
    let iss = LocalRegisterCopy::<u32, ISS_DATA_ABORT::Register>::new(iss);
    // The syndrome fields (SAS, SSE, SRT, SF, AR) are only meaningful with ISV = 1.
    let access = iss.is_set(ISS_DATA_ABORT::ISV).then(|| MmioAccess {
        width: AccessWidth::from_sas(iss.read(ISS_DATA_ABORT::SAS) as u8),
        sign_extend: iss.is_set(ISS_DATA_ABORT::SSE),
        register: TransferRegister::from_srt(iss.read(ISS_DATA_ABORT::SRT) as u8),
        sixty_four: iss.is_set(ISS_DATA_ABORT::SF),
        acquire_release: iss.is_set(ISS_DATA_ABORT::AR),
    });
    let external = iss.is_set(ISS_DATA_ABORT::EA);
    let fault = FaultStatus::from_code(iss.read(ISS_DATA_ABORT::DFSC) as u8);
    DataAbort {
        ipa: fault.records_ipa().then(|| fault_ipa(far, hpfar)),
        write: iss.is_set(ISS_DATA_ABORT::WNR),
        access,
        fault,
        s1ptw: iss.is_set(ISS_DATA_ABORT::S1PTW),
        cache_maintenance: iss.is_set(ISS_DATA_ABORT::CM),
        far_not_valid: external && iss.is_set(ISS_DATA_ABORT::FNV),
    }
}

fn sysreg(iss: u32) -> SysRegAccess {
    let iss = LocalRegisterCopy::<u32, ISS_SYSREG::Register>::new(iss);
    // All fields are at most 5 bits wide, so the casts are lossless.
    SysRegAccess {
        op0: iss.read(ISS_SYSREG::OP0) as u8,
        op1: iss.read(ISS_SYSREG::OP1) as u8,
        crn: iss.read(ISS_SYSREG::CRN) as u8,
        crm: iss.read(ISS_SYSREG::CRM) as u8,
        op2: iss.read(ISS_SYSREG::OP2) as u8,
        rt: iss.read(ISS_SYSREG::RT) as u8,
        read: iss.is_set(ISS_SYSREG::DIRECTION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IL: u64 = 1 << 25;

    fn esr(ec: u8, iss: u32) -> u64 {
        (u64::from(ec) << 26) | IL | u64::from(iss)
    }

    #[test]
    fn hvc_and_smc_immediates() {
        assert_eq!(decode(esr(0x16, 0), 0, 0), Exit::Hvc { imm: 0 });
        assert_eq!(decode(esr(0x16, 0x1234), 0, 0), Exit::Hvc { imm: 0x1234 });
        assert_eq!(decode(esr(0x17, 0xffff), 0, 0), Exit::Smc { imm: 0xffff });
        // HVC from AArch32 (EC 0x12) is not an AArch64 HVC.
        assert_eq!(decode(esr(0x12, 0), 0, 0), Exit::Other { ec: 0x12, iss: 0 });
    }

    /// `str w1, [x0]` to an unmapped IPA 0x0900_0000 (the PL011 DR), as QEMU reports it.
    #[test]
    fn data_abort_store_word_with_syndrome() {
        // ISV=1, SAS=0b10, SSE=0, SRT=1, SF=0, AR=0, WnR=1, DFSC=translation level 3 (0b000111)
        let iss = (1 << 24) | (0b10 << 22) | (1 << 16) | (1 << 6) | 0b00_0111;
        let hpfar = (0x0900_0000u64 >> 12) << 4;
        let exit = decode(esr(0x24, iss), 0xffff_0000_0000_0018, hpfar);
        let Exit::DataAbort(abort) = exit else {
            panic!("not a data abort: {exit:?}");
        };
        assert_eq!(abort.ipa, Some(GuestPhysAddr::new(0x0900_0018)));
        assert!(abort.write);
        assert_eq!(abort.fault, FaultStatus::Translation { level: 3 });
        assert!(!abort.s1ptw);
        assert!(!abort.cache_maintenance);
        assert!(!abort.far_not_valid);
        assert_eq!(
            abort.access,
            Some(MmioAccess {
                width: AccessWidth::Word,
                sign_extend: false,
                register: TransferRegister::X(1),
                sixty_four: false,
                acquire_release: false,
            })
        );
    }

    /// `ldrsb x30, [x2]` with acquire semantics and a permission fault.
    #[test]
    fn data_abort_load_signed_byte_sf_ar() {
        let iss = (1 << 24) | (1 << 21) | (30 << 16) | (1 << 15) | (1 << 14) | 0b00_1111;
        let exit = decode(esr(0x24, iss), 0x7, 0x1234_5670);
        let Exit::DataAbort(abort) = exit else {
            panic!("not a data abort: {exit:?}");
        };
        assert_eq!(abort.ipa, Some(GuestPhysAddr::new(0x12_3456_7007)));
        assert!(!abort.write);
        assert_eq!(abort.fault, FaultStatus::Permission { level: 3 });
        let access = abort.access.expect("ISV=1 must give an access");
        assert_eq!(access.width, AccessWidth::Byte);
        assert!(access.sign_extend);
        assert!(access.sixty_four);
        assert!(access.acquire_release);
        assert_eq!(access.register, TransferRegister::X(30));
    }

    #[test]
    fn data_abort_store_of_xzr_doubleword() {
        let iss = (1 << 24) | (0b11 << 22) | (31 << 16) | (1 << 15) | (1 << 6) | 0b00_0101;
        let Exit::DataAbort(abort) = decode(esr(0x24, iss), 0, 0) else {
            panic!("not a data abort");
        };
        let access = abort.access.expect("ISV=1");
        assert_eq!(access.width, AccessWidth::Doubleword);
        assert_eq!(access.register, TransferRegister::Zero);
        assert_eq!(abort.fault, FaultStatus::Translation { level: 1 });
    }

    /// With ISV = 0 the syndrome bits are garbage and must not become an access.
    #[test]
    fn data_abort_without_isv_has_no_access() {
        let iss = (0b11 << 22) | (1 << 21) | (5 << 16) | (1 << 15) | (1 << 7) | 0b00_0110;
        let Exit::DataAbort(abort) = decode(esr(0x24, iss), 0xabc, 0x40 << 4) else {
            panic!("not a data abort");
        };
        assert_eq!(abort.access, None);
        assert!(abort.s1ptw);
        assert_eq!(abort.ipa, Some(GuestPhysAddr::new(0x40abc)));
        assert_eq!(abort.fault, FaultStatus::Translation { level: 2 });
    }

    #[test]
    fn data_abort_external_with_fnv() {
        let iss = (1 << 10) | (1 << 9) | (1 << 8) | 0b01_0000;
        let Exit::DataAbort(abort) = decode(esr(0x24, iss), 0, 0) else {
            panic!("not a data abort");
        };
        assert!(abort.far_not_valid);
        assert!(abort.cache_maintenance);
        assert_eq!(abort.fault, FaultStatus::SyncExternal);
        assert_eq!(
            abort.ipa, None,
            "HPFAR_EL2 is UNKNOWN for an external abort"
        );
        // FnV without EA is not meaningful.
        let Exit::DataAbort(abort) = decode(esr(0x24, 1 << 10), 0, 0) else {
            panic!("not a data abort");
        };
        assert!(!abort.far_not_valid);
    }

    #[test]
    fn the_fast_ipa_check_agrees_with_the_decoded_fault_for_every_code() {
        for code in 0..64u8 {
            assert_eq!(
                records_ipa(code),
                FaultStatus::from_code(code).records_ipa(),
                "code {code:#x}: {:?}",
                FaultStatus::from_code(code)
            );
        }
    }

    #[test]
    fn aborts_from_el2_are_not_guest_exits() {
        assert_eq!(
            decode(esr(0x25, 0x7), 0, 0),
            Exit::Other { ec: 0x25, iss: 0x7 }
        );
        assert_eq!(
            decode(esr(0x21, 0x7), 0, 0),
            Exit::Other { ec: 0x21, iss: 0x7 }
        );
    }

    #[test]
    fn instruction_abort() {
        let exit = decode(
            esr(0x20, 0b00_1010),
            0x4008_0123,
            (0x4008_0000u64 >> 12) << 4,
        );
        assert_eq!(
            exit,
            Exit::InstructionAbort {
                ipa: Some(GuestPhysAddr::new(0x4008_0123)),
                fault: FaultStatus::AccessFlag { level: 2 },
            }
        );
    }

    #[test]
    fn fault_status_codes() {
        assert_eq!(
            FaultStatus::from_code(0b00_0000),
            FaultStatus::AddressSize { level: 0 }
        );
        assert_eq!(
            FaultStatus::from_code(0b10_1001),
            FaultStatus::AddressSize { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0b10_1011),
            FaultStatus::Translation { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0b00_0100),
            FaultStatus::Translation { level: 0 }
        );
        assert_eq!(
            FaultStatus::from_code(0b00_1101),
            FaultStatus::Permission { level: 1 }
        );
        assert_eq!(FaultStatus::from_code(0b01_0001), FaultStatus::TagCheck);
        assert_eq!(
            FaultStatus::from_code(0b01_0101),
            FaultStatus::SyncExternalOnWalk { level: 1 }
        );
        assert_eq!(
            FaultStatus::from_code(0b01_0011),
            FaultStatus::SyncExternalOnWalk { level: -1 }
        );
        assert_eq!(FaultStatus::from_code(0b01_1000), FaultStatus::Parity);
        assert_eq!(
            FaultStatus::from_code(0b01_1110),
            FaultStatus::ParityOnWalk { level: 2 }
        );
        assert_eq!(FaultStatus::from_code(0b10_0001), FaultStatus::Alignment);
        assert_eq!(FaultStatus::from_code(0b11_0000), FaultStatus::TlbConflict);
        assert_eq!(
            FaultStatus::from_code(0b11_0001),
            FaultStatus::UnsupportedAtomicUpdate
        );
        assert_eq!(
            FaultStatus::from_code(0b11_0100),
            FaultStatus::Other(0b11_0100)
        );
        // Only six bits count.
        assert_eq!(
            FaultStatus::from_code(0xc0 | 0b01_0000),
            FaultStatus::SyncExternal
        );
    }

    #[test]
    fn wfi_wfe_wfit_wfet() {
        assert_eq!(
            decode(esr(0x01, 0b00), 0, 0),
            Exit::Wfx {
                wfe: false,
                timeout: false
            }
        );
        assert_eq!(
            decode(esr(0x01, 0b01), 0, 0),
            Exit::Wfx {
                wfe: true,
                timeout: false
            }
        );
        assert_eq!(
            decode(esr(0x01, 0b10), 0, 0),
            Exit::Wfx {
                wfe: false,
                timeout: true
            }
        );
        assert_eq!(
            decode(esr(0x01, 0b11), 0, 0),
            Exit::Wfx {
                wfe: true,
                timeout: true
            }
        );
        // CV/COND and RN bits set around TI do not confuse the decoder.
        assert_eq!(
            decode(esr(0x01, (1 << 24) | (0xe << 20) | 0b01), 0, 0),
            Exit::Wfx {
                wfe: true,
                timeout: false
            }
        );
    }

    fn sysreg_iss(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32, rt: u32, read: bool) -> u32 {
        (op0 << 20)
            | (op2 << 17)
            | (op1 << 14)
            | (crn << 10)
            | (rt << 5)
            | (crm << 1)
            | u32::from(read)
    }

    #[test]
    fn sysreg_icc_sgi1r_write() {
        let exit = decode(esr(0x18, sysreg_iss(3, 0, 12, 11, 5, 9, false)), 0, 0);
        let Exit::SysReg(access) = exit else {
            panic!("not a sysreg trap: {exit:?}");
        };
        assert_eq!(
            access,
            SysRegAccess {
                op0: 3,
                op1: 0,
                crn: 12,
                crm: 11,
                op2: 5,
                rt: 9,
                read: false
            }
        );
        assert!(access.is_icc_sgi1r_el1());
        assert_eq!(access.known(), Some(KnownSysReg::IccSgi1rEl1));
    }

    /// The fast path's one-compare check and the full decode agree on which exits are an MSR to
    /// ICC_SGI1R_EL1, for every transfer register, with IL and RES0 bits either way.
    #[test]
    fn sgi1r_write_agrees_with_the_decoder() {
        let encodings = [
            (3, 0, 12, 11, 5),
            (3, 1, 12, 11, 6),
            (3, 2, 12, 11, 7),
            (3, 0, 12, 11, 4),
            (3, 0, 12, 12, 5),
            (3, 0, 13, 11, 5),
            (1, 0, 12, 11, 5),
            (3, 4, 12, 11, 5),
        ];
        for (op0, op1, crn, crm, op2) in encodings {
            for rt in [0, 5, 18, 19, 30, 31] {
                for read in [false, true] {
                    let iss = sysreg_iss(op0, op1, crn, crm, op2, rt, read);
                    for esr in [
                        esr(0x18, iss),
                        esr(0x18, iss) & !IL,
                        esr(0x18, iss) | 1 << 40,
                    ] {
                        let Exit::SysReg(access) = decode(esr, 0, 0) else {
                            panic!("not a sysreg trap");
                        };
                        let expected =
                            (access.is_icc_sgi1r_el1() && !access.read).then_some(rt as u8);
                        assert_eq!(sgi1r_write(esr), expected, "{esr:#x}");
                    }
                }
            }
        }
        // Another exception class with the same ISS is not one.
        let iss = sysreg_iss(3, 0, 12, 11, 5, 1, false);
        assert_eq!(sgi1r_write(esr(0x24, iss)), None);
        assert_eq!(sgi1r_write(esr(0x19, iss)), None);
    }

    #[test]
    fn sysreg_named_registers() {
        let cases = [
            ((3, 1, 12, 11, 6), KnownSysReg::IccAsgi1rEl1),
            ((3, 2, 12, 11, 7), KnownSysReg::IccSgi0rEl1),
            ((3, 0, 12, 12, 5), KnownSysReg::IccSreEl1),
            ((3, 3, 14, 2, 0), KnownSysReg::CntpTvalEl0),
            ((3, 3, 14, 2, 1), KnownSysReg::CntpCtlEl0),
            ((3, 3, 14, 2, 2), KnownSysReg::CntpCvalEl0),
            ((1, 0, 7, 6, 2), KnownSysReg::DcIsw),
            ((1, 0, 7, 10, 2), KnownSysReg::DcCsw),
            ((1, 0, 7, 14, 2), KnownSysReg::DcCisw),
            ((1, 0, 7, 6, 4), KnownSysReg::DcIgsw),
            ((1, 0, 7, 6, 6), KnownSysReg::DcIgdsw),
            ((1, 0, 7, 10, 4), KnownSysReg::DcCgsw),
            ((1, 0, 7, 10, 6), KnownSysReg::DcCgdsw),
            ((1, 0, 7, 14, 4), KnownSysReg::DcCigsw),
            ((1, 0, 7, 14, 6), KnownSysReg::DcCigdsw),
            ((3, 0, 1, 0, 1), KnownSysReg::ActlrEl1),
            ((3, 3, 9, 12, 0), KnownSysReg::PmcrEl0),
        ];
        for ((op0, op1, crn, crm, op2), name) in cases {
            let Exit::SysReg(access) = decode(
                esr(0x18, sysreg_iss(op0, op1, crn, crm, op2, 31, true)),
                0,
                0,
            ) else {
                panic!("not a sysreg trap");
            };
            assert_eq!(access.known(), Some(name));
            assert!(access.read);
            assert_eq!(access.rt, 31);
            assert!(!access.is_icc_sgi1r_el1());
        }
        // MIDR_EL1 (3, 0, c0, c0, 0) is not one of them.
        let Exit::SysReg(access) = decode(esr(0x18, sysreg_iss(3, 0, 0, 0, 0, 0, true)), 0, 0)
        else {
            panic!("not a sysreg trap");
        };
        assert_eq!(access.known(), None);
    }

    fn access(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> SysRegAccess {
        SysRegAccess {
            op0,
            op1,
            crn,
            crm,
            op2,
            rt: 0,
            read: true,
        }
    }

    #[test]
    fn sysreg_spaces_set_way_error_records_activity_monitors_implementation_defined() {
        // Every set/way operation TSW traps, and not the by-address ones beside them.
        for (crm, op2) in [
            (6, 2),
            (10, 2),
            (14, 2),
            (6, 4),
            (6, 6),
            (10, 4),
            (10, 6),
            (14, 4),
        ] {
            assert!(access(1, 0, 7, crm, op2).is_set_way(), "c7, c{crm}, {op2}");
        }
        assert!(access(1, 0, 7, 14, 6).is_set_way());
        // DC IVAC, DC CIVAC, DC CVAC, DC ZVA.
        for (op1, crm, op2) in [(0, 6, 1), (3, 14, 1), (3, 10, 1), (3, 4, 1)] {
            assert!(!access(1, op1, 7, crm, op2).is_set_way());
        }
        // ERRIDR_EL1, ERRSELR_EL1, ERXGSR_EL1, ERXSTATUS_EL1, ERXPFGCDN_EL1, ERXMISC3_EL1.
        for (crm, op2) in [(3, 0), (3, 1), (3, 2), (4, 2), (4, 6), (5, 3)] {
            assert!(access(3, 0, 5, crm, op2).is_error_record());
        }
        // ESR_EL1, AFSR0_EL1, TFSR_EL1 share CRn 5 and are not error records.
        for (crm, op2) in [(2, 0), (1, 0), (6, 0)] {
            assert!(!access(3, 0, 5, crm, op2).is_error_record());
        }
        // AMCR_EL0, AMCNTENSET1_EL0, AMEVCNTR00_EL0, AMEVTYPER115_EL0.
        for (crm, op2) in [(2, 0), (3, 1), (4, 0), (15, 7)] {
            assert!(access(3, 3, 13, crm, op2).is_activity_monitor());
        }
        // TPIDR_EL0, TPIDR_EL1.
        assert!(!access(3, 3, 13, 0, 2).is_activity_monitor());
        assert!(!access(3, 0, 13, 2, 0).is_activity_monitor());
        // Cortex-A57's CPUACTLR_EL1 and L2CTLR_EL1, an IMPDEF system instruction.
        assert!(access(3, 1, 15, 2, 0).is_implementation_defined());
        assert!(access(3, 1, 11, 0, 2).is_implementation_defined());
        assert!(access(1, 0, 15, 0, 0).is_implementation_defined());
        // ACTLR_EL1, ICC_SGI1R_EL1 (CRn 12), CNTV_CTL_EL0 (CRn 14), a debug register (op0 2).
        assert!(!access(3, 0, 1, 0, 1).is_implementation_defined());
        assert!(!access(3, 0, 12, 11, 5).is_implementation_defined());
        assert!(!access(3, 3, 14, 3, 1).is_implementation_defined());
        assert!(!access(2, 0, 15, 0, 0).is_implementation_defined());
    }

    #[test]
    fn fp_sve_pauth_traps() {
        assert_eq!(decode(esr(0x07, 0x1e0_0000), 0, 0), Exit::FpTrap);
        assert_eq!(decode(esr(0x19, 0), 0, 0), Exit::SveTrap);
        assert_eq!(decode(esr(0x09, 0), 0, 0), Exit::Pauth);
    }

    #[test]
    fn other_classes_keep_ec_and_iss() {
        assert_eq!(decode(esr(0x00, 0), 0, 0), Exit::Other { ec: 0, iss: 0 });
        assert_eq!(
            decode(esr(0x3c, 0x1_ffff), 0, 0),
            Exit::Other {
                ec: 0x3c,
                iss: 0x1_ffff
            }
        );
        // ISS2 and RES0 bits above EC do not leak into the result.
        assert_eq!(
            decode(u64::MAX, 0, 0),
            Exit::Other {
                ec: 0x3f,
                iss: 0x1ff_ffff
            }
        );
    }

    #[test]
    fn instruction_length_from_il() {
        assert_eq!(instruction_length(esr(0x24, 0)), 4);
        assert_eq!(instruction_length(0x24 << 26), 2);
    }
}
