//! `inject::synchronous_abort(_with_sctlr)` on random PSTATE, VBAR and PC.
#![forbid(unsafe_code)]

use cellvisor::core::inject::{self, GuestExceptionState, InjectKind};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Inject;

/// One injection request.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// The guest at the trap.
    pub guest: GuestExceptionState,
    /// The guest's SCTLR_EL1, if the caller passes it.
    pub sctlr_el1: Option<u64>,
    /// What is injected.
    pub kind: InjectKind,
}

/// SPSR.M[3:0] values: EL0t, EL1t, EL1h are guest modes.
const EL0T: u64 = 0b0000;
const EL1T: u64 = 0b0100;
const EL1H: u64 = 0b0101;
const DAIF: u64 = 0b1111 << 6;
const NRW: u64 = 1 << 4;

impl FuzzTarget for Inject {
    type Input = Request;
    const NAME: &'static str = "inject";
    const SUMMARY: &'static str =
        "abort injection: EL1h with DAIF masked at VBAR_EL1 + the right sync vector, or an error";

    fn generate(rng: &mut Rng) -> Request {
        let mut pstate = rng.next_u64();
        if rng.chance(3, 4) {
            pstate = (pstate & !0x1f)
                | rng.pick(&[EL0T, EL1T, EL1H, EL1H, 0b1000, 0b1001, 0b1101, 0b0001]);
        }
        if rng.chance(1, 2) {
            pstate &= 0xffff_ffff;
        }
        let far = rng.interesting_u64();
        Request {
            guest: GuestExceptionState {
                pc: rng.interesting_u64(),
                pstate,
                vbar_el1: rng.interesting_u64(),
            },
            sctlr_el1: rng.coin().then(|| rng.next_u64()),
            kind: match rng.below(3) {
                0 => InjectKind::DataAbort {
                    far,
                    write: rng.coin(),
                },
                1 => InjectKind::InstructionAbort { far },
                _ => InjectKind::Undefined,
            },
        }
    }

    fn check(request: &Request) -> Result<(), String> {
        let result = match request.sctlr_el1 {
            None => inject::synchronous_abort(request.guest, request.kind),
            Some(sctlr) => inject::synchronous_abort_with_sctlr(request.guest, sctlr, request.kind),
        };
        let pstate = request.guest.pstate;
        let vector = match pstate & 0xf {
            // AArch32 User (EL0): the lower-EL AArch32 vector; AArch32 above EL0 is refused.
            0 if pstate & NRW != 0 => Some(0x600),
            _ if pstate & NRW != 0 => None,
            EL0T => Some(0x400),
            EL1T => Some(0x000),
            EL1H => Some(0x200),
            _ => None,
        };
        let injection = match (result, vector) {
            (Ok(injection), Some(_)) => injection,
            (Err(error), None) => {
                let text = error.to_string();
                ensure!(
                    !text.is_empty() && !text.contains('\n'),
                    "error text {text:?}"
                );
                return Ok(());
            }
            (result, _) => return Err(format!("{result:?} for PSTATE {pstate:#x}")),
        };
        let new = injection.new_pstate;
        ensure!(
            new & 0xf == EL1H && new & NRW == 0,
            "new PSTATE {new:#x} is not EL1h AArch64"
        );
        ensure!(
            new & DAIF == DAIF,
            "new PSTATE {new:#x} leaves an exception unmasked"
        );
        let offset = injection.new_pc.wrapping_sub(request.guest.vbar_el1);
        ensure!(
            Some(offset) == vector,
            "new PC is VBAR + {offset:#x}, expected {vector:?}"
        );
        ensure!(
            injection.elr_el1 == request.guest.pc,
            "ELR_EL1 is not the trapped PC"
        );
        ensure!(
            injection.spsr_el1 == pstate,
            "SPSR_EL1 is not the trapped PSTATE"
        );
        let ec = (injection.esr_el1 >> 26) & 0x3f;
        let from_el0 = pstate & 0xf == EL0T;
        let (expected_ec, far) = match request.kind {
            InjectKind::DataAbort { far, .. } => (if from_el0 { 0x24 } else { 0x25 }, Some(far)),
            InjectKind::InstructionAbort { far } => (if from_el0 { 0x20 } else { 0x21 }, Some(far)),
            InjectKind::Undefined => (0, None),
        };
        ensure!(
            ec == expected_ec,
            "ESR_EL1 EC {ec:#x}, expected {expected_ec:#x}"
        );
        ensure!(injection.far_el1 == far, "FAR_EL1 {:?}", injection.far_el1);
        Ok(())
    }
}
