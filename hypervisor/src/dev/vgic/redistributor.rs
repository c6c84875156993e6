//! The cell's virtual redistributors: one `RD_base` + `SGI_base` pair (0x2_0000) per vCPU, back
//! to back in the guest's redistributor region.
#![forbid(unsafe_code)]

use tock_registers::LocalRegisterCopy;

use super::bank_registers::{self, BankRegister};
use super::distributor::{IIDR, PIDR2, check_access, reserved};
use super::regs::{GICR_TYPER, GICR_WAKER};
use super::{
    AccessWidth, Bank, PhysicalDistributor, REDISTRIBUTOR_STRIDE, VcpuSet, Vgic, VgicError,
};
use crate::dev::gic::SGI_FRAME_OFFSET;

/// Register offsets within the `RD_base` frame.
mod offset {
    pub const GICR_CTLR: u64 = 0x0000;
    pub const GICR_IIDR: u64 = 0x0004;
    pub const GICR_TYPER: u64 = 0x0008;
    pub const GICR_TYPER_HIGH: u64 = 0x000C;
    pub const GICR_STATUSR: u64 = 0x0010;
    pub const GICR_WAKER: u64 = 0x0014;
    pub const GICR_PIDR2: u64 = 0xFFE8;
}

/// A decoded redistributor register of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GicrRegister {
    /// `GICR_TYPER`, whole or one 32-bit half (0 = low, 32 = high).
    Typer {
        shift: u32,
        width: AccessWidth,
    },
    Iidr,
    Waker,
    Pidr2,
    /// `GICR_CTLR` (no LPIs: `EnableLPIs`, `RWP`, `UWP` read as 0), `GICR_STATUSR`, reserved.
    RazWi,
    /// `SGI_base` registers: the vCPU's SGIs and PPIs.
    Bank(BankRegister),
}

/// Splits an offset into the region into (vCPU, decoded register).
#[inline(always)]
fn decode(
    region_offset: u64,
    width: AccessWidth,
    vcpu_count: usize,
) -> Result<(usize, GicrRegister), VgicError> {
    let vcpu = usize::try_from(region_offset / REDISTRIBUTOR_STRIDE)
        .map_err(|_| VgicError::OutsideFrame)?;
    if vcpu >= vcpu_count {
        return Err(VgicError::OutsideFrame);
    }
    let frame_offset = region_offset % REDISTRIBUTOR_STRIDE;
    check_access(frame_offset, width, REDISTRIBUTOR_STRIDE)?;
    let word_only = |register| match width {
        AccessWidth::Word => Ok(register),
        _ => Err(VgicError::UnsupportedWidth),
    };
    let register = if frame_offset >= SGI_FRAME_OFFSET {
        match bank_registers::decode(frame_offset - SGI_FRAME_OFFSET, width) {
            // Only the first register of each family exists here (INTIDs 0-31); the rest of
            // the range is reserved and RAZ/WI anyway since the bank holds no SPIs.
            Some(register) => register.map(GicrRegister::Bank)?,
            None => reserved(width).map(|()| GicrRegister::RazWi)?,
        }
    } else {
        match (frame_offset, width) {
            (offset::GICR_TYPER, AccessWidth::Doubleword | AccessWidth::Word) => {
                GicrRegister::Typer { shift: 0, width }
            }
            (offset::GICR_TYPER_HIGH, AccessWidth::Word) => {
                GicrRegister::Typer { shift: 32, width }
            }
            (offset::GICR_TYPER | offset::GICR_TYPER_HIGH, _) => {
                return Err(VgicError::UnsupportedWidth);
            }
            (offset::GICR_CTLR | offset::GICR_STATUSR, _) => word_only(GicrRegister::RazWi)?,
            (offset::GICR_IIDR, _) => word_only(GicrRegister::Iidr)?,
            (offset::GICR_WAKER, _) => word_only(GicrRegister::Waker)?,
            (offset::GICR_PIDR2, _) => word_only(GicrRegister::Pidr2)?,
            _ => reserved(width).map(|()| GicrRegister::RazWi)?,
        }
    };
    Ok((vcpu, register))
}

impl Vgic {
    /// A guest read of `width` at `region_offset` into the cell's redistributor region
    /// (vCPU = `region_offset` / 0x2_0000). Offsets past the last vCPU are an error. Reading the
    /// pending state of held hardware-linked level-sensitive PPIs samples their lines through
    /// `physical` first.
    #[inline(always)]
    pub fn redistributor_read(
        &mut self,
        region_offset: u64,
        width: AccessWidth,
        physical: &mut impl PhysicalDistributor,
    ) -> Result<u64, VgicError> {
        let (vcpu, register) = decode(region_offset, width, self.vcpus.len())?;
        Ok(match register {
            GicrRegister::Typer { shift, width } => {
                let value = self.gicr_typer(vcpu) >> shift;
                if width == AccessWidth::Word {
                    value & 0xFFFF_FFFF
                } else {
                    value
                }
            }
            GicrRegister::Iidr => IIDR,
            GicrRegister::Pidr2 => PIDR2,
            GicrRegister::Waker => {
                let asleep = self
                    .vcpus
                    .get(vcpu)
                    .is_some_and(|state| state.processor_sleep);
                let mut waker = LocalRegisterCopy::<u32, GICR_WAKER::Register>::new(0);
                if asleep {
                    waker.modify(GICR_WAKER::ProcessorSleep::SET + GICR_WAKER::ChildrenAsleep::SET);
                }
                u64::from(waker.get())
            }
            GicrRegister::RazWi => 0,
            GicrRegister::Bank(register) => {
                self.read_bank_register(Bank::Private(vcpu), register, physical)
            }
        })
    }

    /// A guest write of `width` at `region_offset` into the cell's redistributor region.
    /// Returns the vCPUs that have a newly deliverable interrupt: kick each one other than the
    /// caller's.
    #[inline(always)]
    pub fn redistributor_write(
        &mut self,
        region_offset: u64,
        width: AccessWidth,
        value: u64,
        physical: &mut impl PhysicalDistributor,
    ) -> Result<VcpuSet, VgicError> {
        let (vcpu, register) = decode(region_offset, width, self.vcpus.len())?;
        let may_change_delivery = match register {
            GicrRegister::Waker => true,
            GicrRegister::Bank(register) => register.may_change_delivery(),
            GicrRegister::Typer { .. }
            | GicrRegister::Iidr
            | GicrRegister::Pidr2
            | GicrRegister::RazWi => false,
        };
        if may_change_delivery {
            self.touch_vcpu(vcpu);
        }
        Ok(match register {
            GicrRegister::Waker => {
                // ChildrenAsleep follows ProcessorSleep at once: there is no interface to drain.
                let waker = LocalRegisterCopy::<u32, GICR_WAKER::Register>::new(value as u32);
                if let Some(state) = self.vcpus.get_mut(vcpu) {
                    state.processor_sleep = waker.is_set(GICR_WAKER::ProcessorSleep);
                }
                VcpuSet::empty()
            }
            GicrRegister::Bank(register) => {
                self.write_bank_register(Bank::Private(vcpu), register, value, physical)
            }
            GicrRegister::Typer { .. }
            | GicrRegister::Iidr
            | GicrRegister::Pidr2
            | GicrRegister::RazWi => VcpuSet::empty(),
        })
    }

    /// `GICR_TYPER` of `vcpu`: affinity = the vCPU's virtual MPIDR (Aff0 = index), Processor_Number
    /// = index, `Last` on the last vCPU, no LPIs.
    fn gicr_typer(&self, vcpu: usize) -> u64 {
        let mut typer = LocalRegisterCopy::<u64, GICR_TYPER::Register>::new(0);
        typer.modify(
            GICR_TYPER::Affinity_Value.val(vcpu as u64)
                + GICR_TYPER::Processor_Number.val(vcpu as u64),
        );
        if vcpu + 1 == self.vcpus.len() {
            typer.modify(GICR_TYPER::Last::SET);
        }
        typer.get()
    }
}
