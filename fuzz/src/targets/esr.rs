//! `esr::decode` and `esr::instruction_length` on random and structured syndromes.
#![forbid(unsafe_code)]

use cellvisor::core::esr::{self, Exit, exception_class};
use cellvisor::dev::mmio::{AccessWidth, TransferRegister};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Esr;

/// One trap: the raw ESR_EL2, FAR_EL2 and HPFAR_EL2.
#[derive(Clone, Copy)]
pub struct Trap {
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2.
    pub far: u64,
    /// HPFAR_EL2.
    pub hpfar: u64,
}

impl std::fmt::Debug for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Trap {{ esr: {:#x} (EC {:#x}, ISS {:#x}), far: {:#x}, hpfar: {:#x} }}",
            self.esr,
            (self.esr >> 26) & 0x3f,
            self.esr & 0x1ff_ffff,
            self.far,
            self.hpfar
        )
    }
}

const ISV: u64 = 1 << 24;

impl FuzzTarget for Esr {
    type Input = Trap;
    const NAME: &'static str = "esr";
    const SUMMARY: &'static str =
        "ESR/FAR/HPFAR decoding: total, ISS fields trusted only with ISV, IPA from HPFAR|FAR[11:0]";

    fn generate(rng: &mut Rng) -> Trap {
        let esr = if rng.chance(1, 4) {
            rng.next_u64()
        } else {
            // Any of the 64 classes, biased towards the ones cellvisor decodes.
            let ec = if rng.coin() {
                rng.below(64)
            } else {
                u64::from(rng.pick(&[
                    exception_class::DATA_ABORT_LOWER,
                    exception_class::DATA_ABORT_SAME,
                    exception_class::INSTRUCTION_ABORT_LOWER,
                    exception_class::SYSREG,
                    exception_class::HVC64,
                    exception_class::SMC64,
                    exception_class::WFX,
                ]))
            };
            let iss2 = if rng.chance(1, 4) {
                rng.next_u64() & 0xff_ffff
            } else {
                0
            };
            (iss2 << 32) | (ec << 26) | (rng.below(2) << 25) | (rng.next_u64() & 0x1ff_ffff)
        };
        Trap {
            esr,
            far: rng.interesting_u64(),
            hpfar: rng.interesting_u64(),
        }
    }

    fn check(trap: &Trap) -> Result<(), String> {
        let exit = esr::decode(trap.esr, trap.far, trap.hpfar);
        let length = esr::instruction_length(trap.esr);
        let il = trap.esr & (1 << 25) != 0;
        ensure!(
            length == if il { 4 } else { 2 },
            "instruction length {length} with IL={il}"
        );
        // Bits 63:32 (ISS2, RES0) never change the decoded exit.
        let low = esr::decode(trap.esr & 0xffff_ffff, trap.far, trap.hpfar);
        ensure!(
            exit == low,
            "ISS2/RES0 bits changed the decode: {exit:?} vs {low:?}"
        );

        let ec = ((trap.esr >> 26) & 0x3f) as u8;
        let iss = (trap.esr & 0x1ff_ffff) as u32;
        let expected_ipa = ((trap.hpfar >> 4) & ((1 << 44) - 1)) << 12 | (trap.far & 0xfff);
        match exit {
            Exit::DataAbort(abort) => {
                ensure!(
                    ec == exception_class::DATA_ABORT_LOWER,
                    "data abort from EC {ec:#x}"
                );
                ensure!(
                    abort.access.is_some() == (u64::from(iss) & ISV != 0),
                    "access {:?} with ISV={}",
                    abort.access,
                    u64::from(iss) & ISV != 0
                );
                ensure!(
                    abort.ipa.is_some() == abort.fault.records_ipa(),
                    "IPA {:?} for fault {:?}",
                    abort.ipa,
                    abort.fault
                );
                if let Some(ipa) = abort.ipa {
                    ensure!(
                        ipa.raw() & 0xfff == trap.far & 0xfff,
                        "IPA page offset != FAR[11:0]"
                    );
                    ensure!(
                        ipa.raw() == expected_ipa,
                        "IPA {:#x} != {expected_ipa:#x}",
                        ipa.raw()
                    );
                }
                ensure!(abort.write == (iss & (1 << 6) != 0), "WnR");
                if let Some(access) = abort.access {
                    let sas = ((iss >> 22) & 3) as u8;
                    ensure!(
                        access.width == AccessWidth::from_sas(sas),
                        "width {:?} for SAS {sas}",
                        access.width
                    );
                    let srt = ((iss >> 16) & 0x1f) as u8;
                    let register_ok = match access.register {
                        TransferRegister::X(n) => n == srt && n < 31,
                        TransferRegister::Zero => srt == 31,
                    };
                    ensure!(register_ok, "register {:?} for SRT {srt}", access.register);
                }
                ensure!(
                    !abort.far_not_valid || iss & (1 << 9) != 0,
                    "FnV trusted without EA"
                );
            }
            Exit::InstructionAbort { ipa, fault } => {
                ensure!(
                    ec == exception_class::INSTRUCTION_ABORT_LOWER,
                    "instruction abort from EC {ec:#x}"
                );
                ensure!(
                    ipa.is_some() == fault.records_ipa(),
                    "IPA {ipa:?} for fault {fault:?}"
                );
                if let Some(ipa) = ipa {
                    ensure!(
                        ipa.raw() == expected_ipa,
                        "IPA {:#x} != {expected_ipa:#x}",
                        ipa.raw()
                    );
                }
            }
            Exit::Hvc { imm } => {
                ensure!(
                    ec == exception_class::HVC64 && u32::from(imm) == iss & 0xffff,
                    "HVC {imm:#x} from EC {ec:#x}"
                );
            }
            Exit::Smc { imm } => {
                ensure!(
                    ec == exception_class::SMC64 && u32::from(imm) == iss & 0xffff,
                    "SMC {imm:#x} from EC {ec:#x}"
                );
            }
            Exit::Wfx { .. } => ensure!(ec == exception_class::WFX, "WFx from EC {ec:#x}"),
            Exit::SysReg(access) => {
                ensure!(ec == exception_class::SYSREG, "sysreg from EC {ec:#x}");
                ensure!(
                    access.op0 <= 3
                        && access.op1 <= 7
                        && access.op2 <= 7
                        && access.crn <= 15
                        && access.crm <= 15
                        && access.rt <= 31,
                    "sysreg field out of range: {access:?}"
                );
                ensure!(access.read == (iss & 1 != 0), "sysreg direction");
            }
            Exit::FpTrap => ensure!(ec == exception_class::FP_ASIMD, "FP trap from EC {ec:#x}"),
            Exit::SveTrap => ensure!(ec == exception_class::SVE, "SVE trap from EC {ec:#x}"),
            Exit::Pauth => ensure!(ec == exception_class::PAUTH, "PAuth trap from EC {ec:#x}"),
            Exit::Other {
                ec: other_ec,
                iss: other_iss,
            } => {
                ensure!(
                    other_ec == ec && other_iss == iss,
                    "Other carries EC {other_ec:#x} ISS {other_iss:#x}"
                );
                ensure!(
                    ![
                        exception_class::DATA_ABORT_LOWER,
                        exception_class::INSTRUCTION_ABORT_LOWER,
                        exception_class::HVC64,
                        exception_class::SMC64,
                        exception_class::WFX,
                        exception_class::SYSREG,
                    ]
                    .contains(&ec),
                    "decoded class {ec:#x} reported as Other"
                );
            }
        }
        Ok(())
    }
}
