//! Scripted guest exits for the fake CPU: what the guest does, then how it traps, with ESR_EL2,
//! FAR_EL2 and HPFAR_EL2 built from the real field layouts of `core::esr`.
//!
//! A script is a list of [`GuestExit`]s; the fake's `enter` plays one per call. The guest is
//! modelled as executing the trapping instruction at the address it resumed at, so consecutive
//! exits behave like consecutive instructions.
#![forbid(unsafe_code)]

use std::vec::Vec;

use tock_registers::LocalRegisterCopy;

use crate::core::esr::{
    ESR_EL2, HPFAR_EL2, ISS_DATA_ABORT, ISS_HVC_SMC, ISS_SYSREG, ISS_WFX, exception_class,
};
use crate::core::hardware::Syndrome;
use crate::dev::mmio::AccessWidth;

/// Something the guest (or a device) does before the exit, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestAction {
    /// The guest sets `x<n>`.
    SetRegister {
        /// Register number (31 is XZR and ignored).
        n: usize,
        /// Its new value.
        value: u64,
    },
    /// The guest writes VBAR_EL1.
    SetVbar(u64),
    /// The guest runs on to `pc` (a handler ran and returned there): the exit happens at `pc`.
    RunTo(u64),
    /// The guest acknowledges virtual interrupt `intid` (its list register goes Pending → Active).
    TakeVirtual(u32),
    /// The guest EOIs and deactivates virtual interrupt `intid`; a hardware-linked entry
    /// deactivates its physical interrupt too.
    CompleteVirtual(u32),
    /// A device raises physical interrupt `intid` (an SGI/PPI of this CPU, or an SPI) as an edge:
    /// pending until acknowledged.
    RaisePhysical(u32),
    /// A level-sensitive source drives the line of physical interrupt `intid` (a PPI of this CPU,
    /// such as the guest's timer, or a device's SPI): pending while asserted.
    SetLine {
        /// The INTID.
        intid: u32,
        /// High (the timer's condition holds, the device wants service) or low.
        asserted: bool,
    },
    /// Blocks until physical CPU `cpu` runs its guest (for tests with one thread per CPU).
    AwaitGuestOn(usize),
    /// Blocks until physical CPU `cpu` has acknowledged physical interrupt `intid` (for tests with
    /// one thread per CPU that need a kick taken before they go on).
    AwaitAcknowledged {
        /// The CPU.
        cpu: usize,
        /// The physical INTID.
        intid: u32,
    },
    /// The next `count` kicks to physical CPU `cpu` get lost on the way.
    LoseKicksTo {
        /// The CPU.
        cpu: usize,
        /// How many.
        count: u32,
    },
    /// Blocks until the guest on physical CPU `cpu` has completed virtual interrupt `intid`
    /// ([`GuestAction::CompleteVirtual`]) `count` times in all (for tests with one thread per CPU).
    AwaitCompleted {
        /// The physical CPU whose guest completes it.
        cpu: usize,
        /// The virtual INTID.
        intid: u32,
        /// Completions to wait for, counted from the start of the test.
        count: u32,
    },
}

/// How a scripted exit reaches EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// A synchronous exception with this syndrome. `past` says whether ELR_EL2 points past the
    /// trapping instruction (HVC) rather than at it (aborts, WFI, trapped system registers).
    Synchronous {
        /// ESR/FAR/HPFAR.
        syndrome: Syndrome,
        /// ELR_EL2 is the instruction's address + 4.
        past: bool,
    },
    /// The guest runs until a physical interrupt is signalled to this CPU (an IRQ exit).
    Interrupt,
    /// A physical SError with this ESR_EL2 is taken while the guest runs.
    SError {
        /// ESR_EL2.
        esr: u64,
    },
}

/// One scripted exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestExit {
    /// The guest runs on (exiting only for physical interrupts) until its list registers hold this
    /// virtual INTID pending; see [`GuestExit::once_listed`].
    pub(super) once_listed: Option<u32>,
    pub(super) actions: Vec<GuestAction>,
    pub(super) trap: Trap,
}

/// Translation fault, level 3: what an access to an unmapped page of a 4 KiB stage 2 reports.
const DFSC_TRANSLATION_LEVEL_3: u32 = 0b00_0111;

fn esr(ec: u8, iss: u32) -> u64 {
    let mut esr = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(0);
    esr.modify(
        ESR_EL2::EC.val(u64::from(ec)) + ESR_EL2::IL::SET + ESR_EL2::ISS.val(u64::from(iss)),
    );
    esr.get()
}

fn sas(width: AccessWidth) -> u32 {
    match width {
        AccessWidth::Byte => 0b00,
        AccessWidth::Halfword => 0b01,
        AccessWidth::Word => 0b10,
        AccessWidth::Doubleword => 0b11,
    }
}

/// The syndrome of a stage-2 data abort at `ipa` by a load or store of `width` through `x<rt>`,
/// with the MMU off (FAR_EL2 = the IPA).
fn data_abort(ipa: u64, width: AccessWidth, rt: u8, write: bool) -> Syndrome {
    let mut iss = LocalRegisterCopy::<u32, ISS_DATA_ABORT::Register>::new(0);
    iss.modify(
        ISS_DATA_ABORT::ISV::SET
            + ISS_DATA_ABORT::SAS.val(sas(width))
            + ISS_DATA_ABORT::SRT.val(u32::from(rt))
            + ISS_DATA_ABORT::SF.val(u32::from(width == AccessWidth::Doubleword))
            + ISS_DATA_ABORT::WNR.val(u32::from(write))
            + ISS_DATA_ABORT::DFSC.val(DFSC_TRANSLATION_LEVEL_3),
    );
    let mut hpfar = LocalRegisterCopy::<u64, HPFAR_EL2::Register>::new(0);
    hpfar.modify(HPFAR_EL2::FIPA.val(ipa >> 12));
    Syndrome {
        esr: esr(exception_class::DATA_ABORT_LOWER, iss.get()),
        far: ipa,
        hpfar: hpfar.get(),
    }
}

/// The syndrome of a trapped MSR/MRS/system instruction (EC 0x18).
fn system_register(encoding: (u8, u8, u8, u8, u8), rt: u8, read: bool) -> Syndrome {
    let (op0, op1, crn, crm, op2) = encoding;
    let mut iss = LocalRegisterCopy::<u32, ISS_SYSREG::Register>::new(0);
    iss.modify(
        ISS_SYSREG::OP0.val(u32::from(op0))
            + ISS_SYSREG::OP1.val(u32::from(op1))
            + ISS_SYSREG::CRN.val(u32::from(crn))
            + ISS_SYSREG::CRM.val(u32::from(crm))
            + ISS_SYSREG::OP2.val(u32::from(op2))
            + ISS_SYSREG::RT.val(u32::from(rt))
            + ISS_SYSREG::DIRECTION.val(u32::from(read)),
    );
    Syndrome {
        esr: esr(exception_class::SYSREG, iss.get()),
        ..Syndrome::default()
    }
}

impl GuestExit {
    fn synchronous(syndrome: Syndrome, past: bool) -> Self {
        Self {
            once_listed: None,
            actions: Vec::new(),
            trap: Trap::Synchronous { syndrome, past },
        }
    }

    /// `HVC #0` with x0 = `function` and x1.. = `arguments` (an SMCCC call).
    pub fn hvc(function: u32, arguments: &[u64]) -> Self {
        let mut iss = LocalRegisterCopy::<u32, ISS_HVC_SMC::Register>::new(0);
        iss.modify(ISS_HVC_SMC::IMM16.val(0));
        let mut exit = Self::synchronous(
            Syndrome {
                esr: esr(exception_class::HVC64, iss.get()),
                ..Syndrome::default()
            },
            true,
        );
        exit.actions.push(GuestAction::SetRegister {
            n: 0,
            value: u64::from(function),
        });
        for (n, &value) in (1..).zip(arguments) {
            exit.actions.push(GuestAction::SetRegister { n, value });
        }
        exit
    }

    /// A store of `value` (`width`) from `x<rt>` to `ipa`, which stage 2 does not map.
    pub fn store(ipa: u64, width: AccessWidth, rt: u8, value: u64) -> Self {
        let mut exit = Self::synchronous(data_abort(ipa, width, rt, true), false);
        exit.actions.push(GuestAction::SetRegister {
            n: usize::from(rt),
            value,
        });
        exit
    }

    /// A load of `width` from `ipa`, which stage 2 does not map, into `x<rt>`.
    pub fn load(ipa: u64, width: AccessWidth, rt: u8) -> Self {
        Self::synchronous(data_abort(ipa, width, rt, false), false)
    }

    /// A trapped `MSR ICC_SGI1R_EL1, x<rt>` of `value`: the guest sends SGIs.
    pub fn send_sgis(rt: u8, value: u64) -> Self {
        let mut iss = LocalRegisterCopy::<u32, ISS_SYSREG::Register>::new(0);
        iss.modify(
            ISS_SYSREG::OP0.val(3)
                + ISS_SYSREG::OP1.val(0)
                + ISS_SYSREG::CRN.val(12)
                + ISS_SYSREG::CRM.val(11)
                + ISS_SYSREG::OP2.val(5)
                + ISS_SYSREG::RT.val(u32::from(rt)),
        );
        let mut exit = Self::synchronous(
            Syndrome {
                esr: esr(exception_class::SYSREG, iss.get()),
                ..Syndrome::default()
            },
            false,
        );
        exit.actions.push(GuestAction::SetRegister {
            n: usize::from(rt),
            value,
        });
        exit
    }

    /// A trapped MSR of `x<rt>` = `value` to the system register, or a trapped SYS instruction
    /// with operand `x<rt>` = `value`, `(op0, op1, crn, crm, op2)`.
    pub fn msr(encoding: (u8, u8, u8, u8, u8), rt: u8, value: u64) -> Self {
        Self::synchronous(system_register(encoding, rt, false), false).with(
            GuestAction::SetRegister {
                n: usize::from(rt),
                value,
            },
        )
    }

    /// A trapped MRS of the system register `(op0, op1, crn, crm, op2)` into `x<rt>`.
    pub fn mrs(encoding: (u8, u8, u8, u8, u8), rt: u8) -> Self {
        Self::synchronous(system_register(encoding, rt, true), false)
    }

    /// A trapped `WFI`.
    pub fn wfi() -> Self {
        let mut iss = LocalRegisterCopy::<u32, ISS_WFX::Register>::new(0);
        iss.modify(ISS_WFX::TI::Wfi);
        Self::synchronous(
            Syndrome {
                esr: esr(exception_class::WFX, iss.get()),
                ..Syndrome::default()
            },
            false,
        )
    }

    /// The guest executes WFIT (FEAT_WFxT) with its timeout in x0.
    pub fn wfit() -> Self {
        let mut iss = LocalRegisterCopy::<u32, ISS_WFX::Register>::new(0);
        iss.modify(ISS_WFX::TI::Wfit);
        Self::synchronous(
            Syndrome {
                esr: esr(exception_class::WFX, iss.get()),
                ..Syndrome::default()
            },
            false,
        )
    }

    /// A device raises physical interrupt `intid`, and the guest is interrupted by it.
    pub fn interrupt(intid: u32) -> Self {
        Self::runs_until_interrupted().with(GuestAction::RaisePhysical(intid))
    }

    /// A level-sensitive source asserts the line of physical interrupt `intid`, and the guest is
    /// interrupted by it.
    pub fn level_interrupt(intid: u32) -> Self {
        Self::runs_until_interrupted().with(GuestAction::SetLine {
            intid,
            asserted: true,
        })
    }

    /// The guest runs (spins) until some physical interrupt is signalled to its CPU.
    pub fn runs_until_interrupted() -> Self {
        Self {
            once_listed: None,
            actions: Vec::new(),
            trap: Trap::Interrupt,
        }
    }

    /// A physical SError (an external abort of the guest's own access) with ESR_EL2 `esr`.
    pub fn serror(esr: u64) -> Self {
        Self {
            once_listed: None,
            actions: Vec::new(),
            trap: Trap::SError { esr },
        }
    }

    /// Makes the guest first run on until its list registers hold virtual interrupt `intid`
    /// pending, as a guest that spins with IRQs unmasked does: each physical interrupt that arrives
    /// meanwhile is an IRQ exit and the exit waits for the next entry. Then the actions run and
    /// the exit traps. For a guest whose interrupts come from another CPU (a sibling's SGI, an SPI
    /// routed elsewhere), where the number of kicks before delivery depends on timing.
    pub fn once_listed(mut self, intid: u32) -> Self {
        self.once_listed = Some(intid);
        self
    }

    /// Does `action` before the exit (after the actions added so far).
    pub fn with(mut self, action: GuestAction) -> Self {
        self.actions.push(action);
        self
    }

    /// The exit's syndrome, if it is synchronous.
    pub fn syndrome(&self) -> Option<Syndrome> {
        match self.trap {
            Trap::Synchronous { syndrome, .. } => Some(syndrome),
            Trap::Interrupt | Trap::SError { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::esr::{Exit, decode};
    use crate::dev::mmio::{MmioAccess, TransferRegister};
    use crate::mem::addr::GuestPhysAddr;

    fn decoded(exit: &GuestExit) -> Exit {
        let syndrome = exit.syndrome().expect("synchronous");
        decode(syndrome.esr, syndrome.far, syndrome.hpfar)
    }

    #[test]
    fn scripted_syndromes_decode_as_the_exits_they_stand_for() {
        let sgis = GuestExit::send_sgis(9, 1 << 24 | 0b10);
        let syndrome = sgis.syndrome().expect("synchronous");
        assert_eq!(crate::core::esr::sgi1r_write(syndrome.esr), Some(9));
        assert_eq!(
            decoded(&GuestExit::hvc(0x8400_0000, &[])),
            Exit::Hvc { imm: 0 }
        );
        assert_eq!(
            decoded(&GuestExit::wfi()),
            Exit::Wfx {
                wfe: false,
                timeout: false
            }
        );
        let Exit::SysReg(access) = decoded(&GuestExit::msr((1, 0, 7, 14, 2), 4, 0)) else {
            panic!("not a system register trap");
        };
        assert!(access.is_set_way() && !access.read && access.rt == 4);
        let Exit::SysReg(access) = decoded(&GuestExit::mrs((3, 0, 5, 3, 0), 5)) else {
            panic!("not a system register trap");
        };
        assert!(access.is_error_record() && access.read && access.rt == 5);
        let Exit::DataAbort(abort) =
            decoded(&GuestExit::store(0x0800_0104, AccessWidth::Word, 3, 1))
        else {
            panic!("not a data abort");
        };
        assert_eq!(abort.ipa, Some(GuestPhysAddr::new(0x0800_0104)));
        assert!(abort.write);
        assert_eq!(
            abort.access,
            Some(MmioAccess {
                width: AccessWidth::Word,
                sign_extend: false,
                register: TransferRegister::X(3),
                sixty_four: false,
                acquire_release: false,
            })
        );
    }
}
