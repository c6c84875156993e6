//! Computes the EL1 register state that injects a synchronous exception into a guest.
#![forbid(unsafe_code)]
//!
//! This follows the ARM ARM's `AArch64.TakeException` for a synchronous exception taken to EL1
//! from EL0 or EL1 in AArch64 state: ELR_EL1/SPSR_EL1 get the interrupted PC and PSTATE, ESR_EL1
//! (and FAR_EL1 for aborts) describe the exception, and the guest continues at
//! VBAR_EL1 + vector offset in EL1h with D, A, I and F masked. The arch glue writes the EL1
//! registers and puts `new_pc`/`new_pstate` in ELR_EL2/SPSR_EL2 before returning to the guest.

use core::fmt;

use tock_registers::{LocalRegisterCopy, register_bitfields};

register_bitfields![u64,
    /// SPSR_ELx / PSTATE as saved on exception entry to an AArch64 exception level.
    SPSR [
        /// Condition flags N, Z, C, V.
        NZCV OFFSET(28) NUMBITS(4) [],
        /// Tag Check Override (FEAT_MTE).
        TCO OFFSET(25) NUMBITS(1) [],
        /// Data Independent Timing.
        DIT OFFSET(24) NUMBITS(1) [],
        /// User Access Override.
        UAO OFFSET(23) NUMBITS(1) [],
        /// Privileged Access Never.
        PAN OFFSET(22) NUMBITS(1) [],
        /// Software Step.
        SS OFFSET(21) NUMBITS(1) [],
        /// Illegal Execution state.
        IL OFFSET(20) NUMBITS(1) [],
        /// All IRQ/FIQ interrupt mask (FEAT_NMI).
        ALLINT OFFSET(13) NUMBITS(1) [],
        /// Speculative Store Bypass Safe.
        SSBS OFFSET(12) NUMBITS(1) [],
        /// Branch Target Identification type.
        BTYPE OFFSET(10) NUMBITS(2) [],
        /// Debug exception mask.
        D OFFSET(9) NUMBITS(1) [],
        /// SError mask.
        A OFFSET(8) NUMBITS(1) [],
        /// IRQ mask.
        I OFFSET(7) NUMBITS(1) [],
        /// FIQ mask.
        F OFFSET(6) NUMBITS(1) [],
        /// Execution state: 1 = AArch32.
        NRW OFFSET(4) NUMBITS(1) [],
        /// AArch64 exception level and stack pointer selection.
        M OFFSET(0) NUMBITS(4) [
            EL0t = 0b0000,
            EL1t = 0b0100,
            EL1h = 0b0101,
            EL2t = 0b1000,
            EL2h = 0b1001,
            EL3t = 0b1100,
            EL3h = 0b1101
        ]
    ],
    /// SCTLR_EL1 bits that affect PSTATE on exception entry.
    SCTLR_EL1 [
        /// Default PSTATE.SSBS on exception entry.
        DSSBS OFFSET(44) NUMBITS(1) [],
        /// Set Privileged Access Never on exception entry when 0.
        SPAN OFFSET(23) NUMBITS(1) []
    ]
];

register_bitfields![u32,
    /// ESR_EL1 as cellvisor writes it.
    ESR_EL1 [
        /// Exception Class.
        EC OFFSET(26) NUMBITS(6) [
            Unknown = 0x00,
            InstructionAbortLower = 0x20,
            InstructionAbortSame = 0x21,
            DataAbortLower = 0x24,
            DataAbortSame = 0x25
        ],
        /// Instruction Length: 1 = 32-bit instruction.
        IL OFFSET(25) NUMBITS(1) [],
        /// Data aborts: Write not Read.
        WNR OFFSET(6) NUMBITS(1) [],
        /// Data/Instruction Fault Status Code.
        FSC OFFSET(0) NUMBITS(6) [
            SynchronousExternalAbort = 0x10
        ]
    ]
];

/// Vector table offset of "synchronous, current EL, SP_EL0".
const VECTOR_CURRENT_SP0: u64 = 0x000;
/// Vector table offset of "synchronous, current EL, SP_ELx".
const VECTOR_CURRENT_SPX: u64 = 0x200;
/// Vector table offset of "synchronous, lower EL, AArch64".
const VECTOR_LOWER_AARCH64: u64 = 0x400;
/// Vector offset of a synchronous exception from a lower EL running AArch32.
const VECTOR_LOWER_AARCH32: u64 = 0x600;
/// AArch32 CPSR.M[3:0] of User mode (EL0), with CPSR.M[4] (SPSR.nRW) set.
const AARCH32_USER: u64 = 0b0000;
/// AArch32 CPSR bits that sit elsewhere than in an AArch64 SPSR: DIT (21) and SSBS (23); PAN (22)
/// and NZCV (31:28) share their AArch64 positions.
const AARCH32_DIT: u64 = 1 << 21;
const AARCH32_SSBS: u64 = 1 << 23;

/// The guest's state at the trap, as the arch glue read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestExceptionState {
    /// ELR_EL2: the address of the instruction the exception is reported for.
    pub pc: u64,
    /// SPSR_EL2: the guest's PSTATE at the trap.
    pub pstate: u64,
    /// The guest's VBAR_EL1.
    pub vbar_el1: u64,
}

/// Which exception to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectKind {
    /// A synchronous external abort on a data access at virtual address `far`.
    DataAbort {
        /// The faulting virtual address (FAR_EL2 of the trap).
        far: u64,
        /// The access was a write.
        write: bool,
    },
    /// A synchronous external abort on an instruction fetch at virtual address `far`.
    InstructionAbort {
        /// The faulting virtual address.
        far: u64,
    },
    /// An undefined instruction (EC 0x00, "unknown reason").
    Undefined,
}

/// The registers to write for an injected exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// ESR_EL1.
    pub esr_el1: u64,
    /// FAR_EL1, for aborts; `None` leaves FAR_EL1 unchanged.
    pub far_el1: Option<u64>,
    /// ELR_EL1: the guest's PC at the trap.
    pub elr_el1: u64,
    /// SPSR_EL1: the guest's PSTATE at the trap.
    pub spsr_el1: u64,
    /// The new ELR_EL2: the EL1 vector the guest resumes at.
    pub new_pc: u64,
    /// The new SPSR_EL2: EL1h with D, A, I, F masked.
    pub new_pstate: u64,
}

/// Why an exception could not be injected; the caller logs it and stops the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectError {
    /// The saved PSTATE says AArch32 above EL0, which a cell never runs (EL1 is AArch64).
    AArch32,
    /// The saved PSTATE claims EL2 or EL3, which a guest trap cannot come from.
    NotFromGuest {
        /// The SPSR.M\[3:0\] value.
        mode: u8,
    },
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AArch32 => f.write_str("guest PSTATE is AArch32 above EL0"),
            Self::NotFromGuest { mode } => {
                write!(f, "guest PSTATE mode {mode:#06b} is not EL0 or EL1")
            }
        }
    }
}

/// Computes the injection of `kind` into a guest interrupted in state `guest`.
///
/// Without the guest's SCTLR_EL1, PSTATE.PAN and PSTATE.SSBS are carried over unchanged (as if
/// SCTLR_EL1.SPAN = 1, which never turns PAN on behind a guest that does not use it). Use
/// [`synchronous_abort_with_sctlr`] to apply the guest's real SCTLR_EL1.SPAN/DSSBS as the
/// architecture does.
pub fn synchronous_abort(
    guest: GuestExceptionState,
    kind: InjectKind,
) -> Result<Injection, InjectError> {
    compute(guest, None, kind)
}

/// As [`synchronous_abort`], with the guest's SCTLR_EL1: PSTATE.PAN is set on entry when
/// SCTLR_EL1.SPAN = 0 (Linux's setting with FEAT_PAN) and PSTATE.SSBS is set to SCTLR_EL1.DSSBS.
pub fn synchronous_abort_with_sctlr(
    guest: GuestExceptionState,
    sctlr_el1: u64,
    kind: InjectKind,
) -> Result<Injection, InjectError> {
    compute(guest, Some(sctlr_el1), kind)
}

fn compute(
    guest: GuestExceptionState,
    sctlr_el1: Option<u64>,
    kind: InjectKind,
) -> Result<Injection, InjectError> {
    let old = LocalRegisterCopy::<u64, SPSR::Register>::new(guest.pstate);
    let (old, from_el0, vector) = if old.is_set(SPSR::NRW) {
        // Only EL0 can run AArch32 in a cell (HCR_EL2.RW makes EL1 AArch64): an AArch32 user
        // program's fault goes to its AArch64 kernel's lower-EL AArch32 vector.
        if guest.pstate & 0xf != AARCH32_USER {
            return Err(InjectError::AArch32);
        }
        (aarch32_as_aarch64(guest.pstate), true, VECTOR_LOWER_AARCH32)
    } else {
        let (from_el0, vector) = aarch64_source(old)?;
        (old, from_el0, vector)
    };

    let mut esr = LocalRegisterCopy::<u32, ESR_EL1::Register>::new(0);
    esr.modify(ESR_EL1::IL::SET);
    let far_el1 = match kind {
        InjectKind::DataAbort { far, write } => {
            esr.modify(if from_el0 {
                ESR_EL1::EC::DataAbortLower
            } else {
                ESR_EL1::EC::DataAbortSame
            });
            esr.modify(ESR_EL1::FSC::SynchronousExternalAbort);
            esr.modify(ESR_EL1::WNR.val(u32::from(write)));
            Some(far)
        }
        InjectKind::InstructionAbort { far } => {
            esr.modify(if from_el0 {
                ESR_EL1::EC::InstructionAbortLower
            } else {
                ESR_EL1::EC::InstructionAbortSame
            });
            esr.modify(ESR_EL1::FSC::SynchronousExternalAbort);
            Some(far)
        }
        InjectKind::Undefined => {
            esr.modify(ESR_EL1::EC::Unknown);
            None
        }
    };

    Ok(Injection {
        esr_el1: u64::from(esr.get()),
        far_el1,
        elr_el1: guest.pc,
        spsr_el1: guest.pstate,
        new_pc: guest.vbar_el1.wrapping_add(vector),
        new_pstate: entry_pstate(old, sctlr_el1),
    })
}

/// Whether an AArch64 guest state is EL0, and the vector offset its synchronous exception uses.
fn aarch64_source(old: LocalRegisterCopy<u64, SPSR::Register>) -> Result<(bool, u64), InjectError> {
    match old.read_as_enum(SPSR::M) {
        Some(SPSR::M::Value::EL0t) => Ok((true, VECTOR_LOWER_AARCH64)),
        Some(SPSR::M::Value::EL1t) => Ok((false, VECTOR_CURRENT_SP0)),
        Some(SPSR::M::Value::EL1h) => Ok((false, VECTOR_CURRENT_SPX)),
        _ => Err(InjectError::NotFromGuest {
            mode: old.read(SPSR::M) as u8,
        }),
    }
}

/// An AArch32 CPSR with the fields exception entry carries over (NZCV, DIT, PAN, SSBS) moved to
/// where an AArch64 SPSR has them, for [`entry_pstate`].
fn aarch32_as_aarch64(cpsr: u64) -> LocalRegisterCopy<u64, SPSR::Register> {
    let old = LocalRegisterCopy::<u64, SPSR::Register>::new(cpsr);
    let mut moved = LocalRegisterCopy::<u64, SPSR::Register>::new(0);
    moved.modify(SPSR::NZCV.val(old.read(SPSR::NZCV)));
    moved.modify(SPSR::PAN.val(old.read(SPSR::PAN)));
    moved.modify(SPSR::DIT.val(u64::from(cpsr & AARCH32_DIT != 0)));
    moved.modify(SPSR::SSBS.val(u64::from(cpsr & AARCH32_SSBS != 0)));
    moved
}

/// PSTATE on entry to EL1h (ARM ARM `AArch64.TakeException`): NZCV, DIT kept; PAN kept or set per
/// SCTLR_EL1.SPAN; SSBS kept or set from SCTLR_EL1.DSSBS; UAO, SS, IL, BTYPE, TCO, ALLINT cleared;
/// D, A, I, F set. TCO stays 0 because cellvisor does not expose FEAT_MTE to guests.
fn entry_pstate(old: LocalRegisterCopy<u64, SPSR::Register>, sctlr_el1: Option<u64>) -> u64 {
    let mut new = LocalRegisterCopy::<u64, SPSR::Register>::new(0);
    new.modify(SPSR::NZCV.val(old.read(SPSR::NZCV)));
    new.modify(SPSR::DIT.val(old.read(SPSR::DIT)));
    match sctlr_el1.map(LocalRegisterCopy::<u64, SCTLR_EL1::Register>::new) {
        None => {
            new.modify(SPSR::PAN.val(old.read(SPSR::PAN)));
            new.modify(SPSR::SSBS.val(old.read(SPSR::SSBS)));
        }
        Some(sctlr) => {
            let pan = old.is_set(SPSR::PAN) || !sctlr.is_set(SCTLR_EL1::SPAN);
            new.modify(SPSR::PAN.val(u64::from(pan)));
            new.modify(SPSR::SSBS.val(sctlr.read(SCTLR_EL1::DSSBS)));
        }
    }
    new.modify(SPSR::D::SET + SPSR::A::SET + SPSR::I::SET + SPSR::F::SET + SPSR::M::EL1h);
    new.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0xffff_8000_1001_0800;
    const EL0T: u64 = 0b0000;
    const EL1T: u64 = 0b0100;
    const EL1H: u64 = 0b0101;
    const DAIF_EL1H: u64 = 0x3c5;
    const PC: u64 = 0xffff_8000_0800_1234;

    fn state(pstate: u64) -> GuestExceptionState {
        GuestExceptionState {
            pc: PC,
            pstate,
            vbar_el1: VBAR,
        }
    }

    #[test]
    fn data_abort_from_el1h() {
        let injection = synchronous_abort(
            state(EL1H),
            InjectKind::DataAbort {
                far: 0xffff_0000_0900_0000,
                write: true,
            },
        )
        .unwrap();
        assert_eq!(
            injection.esr_el1,
            (0x25 << 26) | (1 << 25) | (1 << 6) | 0x10
        );
        assert_eq!(injection.far_el1, Some(0xffff_0000_0900_0000));
        assert_eq!(injection.elr_el1, 0xffff_8000_0800_1234);
        assert_eq!(injection.spsr_el1, EL1H);
        assert_eq!(injection.new_pc, VBAR + 0x200);
        assert_eq!(injection.new_pstate, DAIF_EL1H);
    }

    #[test]
    fn data_abort_read_from_el0() {
        let injection = synchronous_abort(
            state(EL0T),
            InjectKind::DataAbort {
                far: 0x1000,
                write: false,
            },
        )
        .unwrap();
        assert_eq!(injection.esr_el1, (0x24 << 26) | (1 << 25) | 0x10);
        assert_eq!(injection.new_pc, VBAR + 0x400);
        assert_eq!(injection.new_pstate, DAIF_EL1H);
    }

    #[test]
    fn instruction_abort_from_el1t_and_el0() {
        let injection =
            synchronous_abort(state(EL1T), InjectKind::InstructionAbort { far: 0x4000 }).unwrap();
        assert_eq!(injection.esr_el1, (0x21 << 26) | (1 << 25) | 0x10);
        assert_eq!(injection.far_el1, Some(0x4000));
        assert_eq!(injection.new_pc, VBAR);
        let injection =
            synchronous_abort(state(EL0T), InjectKind::InstructionAbort { far: 0x4000 }).unwrap();
        assert_eq!(injection.esr_el1, (0x20 << 26) | (1 << 25) | 0x10);
        assert_eq!(injection.new_pc, VBAR + 0x400);
    }

    #[test]
    fn undefined() {
        let injection = synchronous_abort(state(EL1H), InjectKind::Undefined).unwrap();
        assert_eq!(injection.esr_el1, 1 << 25);
        assert_eq!(injection.far_el1, None);
        assert_eq!(injection.new_pc, VBAR + 0x200);
    }

    #[test]
    fn pstate_fields_kept_and_cleared() {
        // N, Z, DIT, PAN, SSBS kept; UAO, SS, IL, BTYPE, TCO cleared; old DAIF irrelevant.
        let nz = 0b1100 << 28;
        let dit = 1 << 24;
        let pan = 1 << 22;
        let ssbs = 1 << 12;
        let cleared = (1 << 25) | (1 << 23) | (1 << 21) | (1 << 20) | (0b11 << 10) | (1 << 13);
        let old = nz | dit | pan | ssbs | cleared | EL1H;
        let injection = synchronous_abort(state(old), InjectKind::Undefined).unwrap();
        assert_eq!(injection.new_pstate, nz | dit | pan | ssbs | DAIF_EL1H);
        assert_eq!(injection.spsr_el1, old);
    }

    #[test]
    fn sctlr_span_and_dssbs() {
        let span = 1 << 23;
        let dssbs = 1 << 44;
        let pan = 1 << 22;
        let ssbs = 1 << 12;
        // SPAN = 0: PAN set on entry; DSSBS = 0 clears SSBS.
        let injection =
            synchronous_abort_with_sctlr(state(EL0T | ssbs), 0, InjectKind::Undefined).unwrap();
        assert_eq!(injection.new_pstate, pan | DAIF_EL1H);
        // SPAN = 1: PAN unchanged; DSSBS = 1 sets SSBS.
        let injection =
            synchronous_abort_with_sctlr(state(EL0T), span | dssbs, InjectKind::Undefined).unwrap();
        assert_eq!(injection.new_pstate, ssbs | DAIF_EL1H);
        let injection =
            synchronous_abort_with_sctlr(state(EL1H | pan), span, InjectKind::Undefined).unwrap();
        assert_eq!(injection.new_pstate, pan | DAIF_EL1H);
    }

    #[test]
    fn an_aarch32_user_fault_goes_to_the_lower_aarch32_vector() {
        // User mode, T32, Z and C set, DIT (CPSR bit 21) and SSBS (bit 23).
        let cpsr = 0x10 | (1 << 5) | (0b0110 << 28) | (1 << 21) | (1 << 23);
        let kind = InjectKind::DataAbort {
            far: 0x1000,
            write: true,
        };
        let injection = synchronous_abort(state(cpsr), kind).unwrap();
        assert_eq!(injection.new_pc, VBAR + VECTOR_LOWER_AARCH32);
        assert_eq!(injection.elr_el1, PC);
        assert_eq!(injection.spsr_el1, cpsr, "SPSR_EL1 is the AArch32 CPSR");
        assert_eq!(injection.esr_el1 >> 26, 0x24, "data abort from a lower EL");
        // NZCV, DIT (AArch64 bit 24) and SSBS (bit 12) carried over, EL1h, DAIF masked.
        assert_eq!(
            injection.new_pstate,
            (0b0110 << 28) | (1 << 24) | (1 << 12) | DAIF_EL1H
        );
    }

    #[test]
    fn refuses_aarch32_above_el0_and_higher_els() {
        let kind = InjectKind::Undefined;
        // AArch32 Supervisor, System.
        assert_eq!(
            synchronous_abort(state(0x13), kind),
            Err(InjectError::AArch32)
        );
        assert_eq!(
            synchronous_abort(state(0x1f), kind),
            Err(InjectError::AArch32)
        );
        for mode in [0b1000, 0b1001, 0b1100, 0b1101, 0b0010, 0b0110] {
            assert_eq!(
                synchronous_abort(state(mode), kind),
                Err(InjectError::NotFromGuest { mode: mode as u8 }),
                "{mode:#b}"
            );
        }
        assert!(alloc::format!("{}", InjectError::NotFromGuest { mode: 9 }).contains("0b1001"));
    }

    #[test]
    fn vector_address_wraps_instead_of_panicking() {
        let guest = GuestExceptionState {
            pc: 0,
            pstate: EL0T,
            vbar_el1: u64::MAX - 0xff,
        };
        let injection = synchronous_abort(guest, InjectKind::Undefined).unwrap();
        assert_eq!(injection.new_pc, 0x300);
    }
}
