//! The cell's virtual distributor: guest accesses to the 64 KiB `GICD` frame.
#![forbid(unsafe_code)]

use tock_registers::LocalRegisterCopy;
use tock_registers::fields::FieldValue;

use super::bank_registers::{self, BankRegister};
use super::regs::{GICD_CTLR, GICD_IROUTER, GICD_TYPER};
use super::state::Route;
use super::{
    AccessWidth, Bank, DISTRIBUTOR_FRAME_SIZE, PhysicalDistributor, SPI_BASE_INTID, SPI_END_INTID,
    VcpuSet, Vgic, VgicError,
};

/// Register offsets within the `GICD` frame.
mod offset {
    pub const GICD_CTLR: u64 = 0x0000;
    pub const GICD_TYPER: u64 = 0x0004;
    pub const GICD_IIDR: u64 = 0x0008;
    pub const GICD_TYPER2: u64 = 0x000C;
    pub const GICD_STATUSR: u64 = 0x0010;
    pub const GICD_IROUTER: u64 = 0x6000;
    pub const GICD_IROUTER_END: u64 = 0x8000;
    pub const GICD_PIDR2: u64 = 0xFFE8;
}

/// `GICD_IIDR` and `GICR_IIDR`: Implementer 0x43B (JEP106 code of Arm, as the GIC architecture
/// asks of a virtual GIC's ID), ProductID 0x43 (`'C'`, cellvisor), Variant 0, Revision 0. A
/// ProductID of its own keeps guests from applying errata workarounds of real Arm GICs.
pub(super) const IIDR: u64 = 0x4300_043B;
/// `GICD_PIDR2` and `GICR_PIDR2`: ArchRev 3 (GICv3) in bits [7:4], JEP106 bits in [3:0].
pub(super) const PIDR2: u64 = 0x3B;

/// Which 32 bits of a `GICD_IROUTER<n>` an access covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Half {
    Both,
    Low,
    High,
}

/// A decoded `GICD` register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GicdRegister {
    Ctlr,
    Typer,
    Iidr,
    Pidr2,
    /// `GICD_TYPER2`, `GICD_STATUSR` and reserved offsets.
    RazWi,
    Bank(BankRegister),
    Irouter {
        intid: u32,
        half: Half,
    },
}

/// Checks that an access of `width` at `offset` lies in a frame of `frame_size` and is aligned.
#[inline(always)]
pub(super) fn check_access(
    offset: u64,
    width: AccessWidth,
    frame_size: u64,
) -> Result<(), VgicError> {
    if offset >= frame_size || frame_size - offset < width.bytes() {
        return Err(VgicError::OutsideFrame);
    }
    if !width.is_aligned(offset) {
        return Err(VgicError::Unaligned);
    }
    Ok(())
}

#[inline(always)]
fn decode(offset: u64, width: AccessWidth) -> Result<GicdRegister, VgicError> {
    check_access(offset, width, DISTRIBUTOR_FRAME_SIZE)?;
    let word_only = |register| match width {
        AccessWidth::Word => Ok(register),
        _ => Err(VgicError::UnsupportedWidth),
    };
    if let Some(register) = bank_registers::decode(offset, width) {
        return register.map(GicdRegister::Bank);
    }
    match offset {
        offset::GICD_CTLR => word_only(GicdRegister::Ctlr),
        offset::GICD_TYPER => word_only(GicdRegister::Typer),
        offset::GICD_IIDR => word_only(GicdRegister::Iidr),
        offset::GICD_TYPER2 | offset::GICD_STATUSR => word_only(GicdRegister::RazWi),
        offset::GICD_PIDR2 => word_only(GicdRegister::Pidr2),
        offset::GICD_IROUTER..offset::GICD_IROUTER_END => {
            let intid = ((offset - offset::GICD_IROUTER) / 8) as u32;
            let half = match (width, offset % 8) {
                (AccessWidth::Doubleword, _) => Half::Both,
                (AccessWidth::Word, 0) => Half::Low,
                (AccessWidth::Word, _) => Half::High,
                _ => return Err(VgicError::UnsupportedWidth),
            };
            Ok(GicdRegister::Irouter { intid, half })
        }
        _ => reserved(width).map(|()| GicdRegister::RazWi),
    }
}

/// Reserved offsets are RAZ/WI for 32- and 64-bit accesses; smaller ones abort.
pub(super) fn reserved(width: AccessWidth) -> Result<(), VgicError> {
    match width {
        AccessWidth::Word | AccessWidth::Doubleword => Ok(()),
        _ => Err(VgicError::UnsupportedWidth),
    }
}

/// The `GICD_IROUTER<n>` value of a route.
fn irouter_value(route: Route) -> u64 {
    let fields: FieldValue<u64, GICD_IROUTER::Register> = match route {
        Route::Vcpu(vcpu) => GICD_IROUTER::Aff0.val(u64::from(vcpu)),
        Route::Any => GICD_IROUTER::Interrupt_Routing_Mode::SET,
    };
    fields.value
}

impl Vgic {
    /// A guest read of `width` at `offset` in the distributor frame. Reading the pending state
    /// of held hardware-linked level-sensitive SPIs samples their lines through `physical` first.
    #[inline(always)]
    pub fn distributor_read(
        &mut self,
        offset: u64,
        width: AccessWidth,
        physical: &mut impl PhysicalDistributor,
    ) -> Result<u64, VgicError> {
        Ok(match decode(offset, width)? {
            GicdRegister::Ctlr => u64::from(self.gicd_ctlr()),
            GicdRegister::Typer => u64::from(self.gicd_typer()),
            GicdRegister::Iidr => IIDR,
            GicdRegister::Pidr2 => PIDR2,
            GicdRegister::RazWi => 0,
            GicdRegister::Bank(register) => {
                self.read_bank_register(Bank::Shared, register, physical)
            }
            GicdRegister::Irouter { intid, half } => {
                let value = self
                    .irq(Bank::Shared, intid)
                    .map_or(0, |irq| irouter_value(irq.route));
                match half {
                    Half::Both => value,
                    Half::Low => value & 0xFFFF_FFFF,
                    Half::High => value >> 32,
                }
            }
        })
    }

    /// A guest write of `width` at `offset` in the distributor frame. Returns the vCPUs that
    /// have a newly deliverable interrupt: kick each one other than the caller's.
    #[inline(always)]
    pub fn distributor_write(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u64,
        physical: &mut impl PhysicalDistributor,
    ) -> Result<VcpuSet, VgicError> {
        let register = decode(offset, width)?;
        let may_change_delivery = match register {
            GicdRegister::Ctlr | GicdRegister::Irouter { .. } => true,
            GicdRegister::Bank(register) => register.may_change_delivery(),
            GicdRegister::Typer
            | GicdRegister::Iidr
            | GicdRegister::Pidr2
            | GicdRegister::RazWi => false,
        };
        if may_change_delivery {
            self.touch();
        }
        Ok(match register {
            GicdRegister::Ctlr => {
                let ctlr = LocalRegisterCopy::<u32, GICD_CTLR::Register>::new(value as u32);
                self.set_forwarding(ctlr.is_set(GICD_CTLR::EnableGrp1A))
            }
            GicdRegister::Typer
            | GicdRegister::Iidr
            | GicdRegister::Pidr2
            | GicdRegister::RazWi => VcpuSet::empty(),
            GicdRegister::Bank(register) => {
                self.write_bank_register(Bank::Shared, register, value, physical)
            }
            GicdRegister::Irouter { intid, half } => {
                self.write_irouter(intid, half, value, physical)
            }
        })
    }

    /// `GICD_CTLR`: `ARE_NS` reads as one, `RWP` as zero.
    fn gicd_ctlr(&self) -> u32 {
        let mut ctlr = LocalRegisterCopy::<u32, GICD_CTLR::Register>::new(0);
        ctlr.modify(GICD_CTLR::ARE_NS::SET);
        if self.group1_enabled {
            ctlr.modify(GICD_CTLR::EnableGrp1A::SET);
        }
        ctlr.get()
    }

    /// `GICD_TYPER`: lines up to the highest owned SPI, 10 INTID bits, no LPIs, no MBIs.
    fn gicd_typer(&self) -> u32 {
        let cpu_number = self.vcpus.len().clamp(1, 8) as u32 - 1;
        let mut typer = LocalRegisterCopy::<u32, GICD_TYPER::Register>::new(0);
        typer.modify(
            GICD_TYPER::ITLinesNumber.val(self.it_lines_number)
                + GICD_TYPER::CPUNumber.val(cpu_number)
                + GICD_TYPER::SecurityExtn::SET
                + GICD_TYPER::IDbits.val(9),
        );
        typer.get()
    }

    /// Applies a write to (part of) `GICD_IROUTER<intid>`. A route naming an affinity that is not
    /// one of the cell's vCPUs is ignored; the register keeps its previous value.
    fn write_irouter(
        &mut self,
        intid: u32,
        half: Half,
        value: u64,
        physical: &mut impl PhysicalDistributor,
    ) -> VcpuSet {
        if !(SPI_BASE_INTID..SPI_END_INTID).contains(&intid) {
            return VcpuSet::empty();
        }
        let vcpu_count = self.vcpus.len();
        let Some(irq) = self.irq_mut(Bank::Shared, intid) else {
            return VcpuSet::empty();
        };
        let current = irouter_value(irq.route);
        let new = match half {
            Half::Both => value,
            Half::Low => (current & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
            Half::High => (current & 0xFFFF_FFFF) | (value << 32),
        };
        let irouter = LocalRegisterCopy::<u64, GICD_IROUTER::Register>::new(new);
        let route = if irouter.is_set(GICD_IROUTER::Interrupt_Routing_Mode) {
            Route::Any
        } else {
            let upper = irouter.read(GICD_IROUTER::Aff1)
                | irouter.read(GICD_IROUTER::Aff2)
                | irouter.read(GICD_IROUTER::Aff3);
            let aff0 = irouter.read(GICD_IROUTER::Aff0);
            if upper != 0 || aff0 >= vcpu_count as u64 {
                return VcpuSet::empty();
            }
            Route::Vcpu(aff0 as u8)
        };
        irq.route = route;
        if irq.hardware_spi {
            // The physical SPI never uses 1-of-N routing: that could reach another cell's CPU.
            let vcpu = match route {
                Route::Vcpu(vcpu) => usize::from(vcpu),
                Route::Any => 0,
            };
            physical.route_to(intid, vcpu);
        }
        let snapshot = *irq;
        self.kick_for(&snapshot)
    }

    /// Turns the distributor's forwarding (the one group a guest uses) on or off; returns the
    /// vCPUs to kick when turning it on made interrupts deliverable. The GICv3 `EnableGrp1A` and
    /// the GICv2 `Enable` bit of `GICD_CTLR`.
    pub(super) fn set_forwarding(&mut self, enabled: bool) -> VcpuSet {
        let was_enabled = self.group1_enabled;
        self.group1_enabled = enabled;
        if enabled && !was_enabled {
            self.vcpus_with_deliverable()
        } else {
            VcpuSet::empty()
        }
    }

    /// Every vCPU that has an interrupt to take.
    fn vcpus_with_deliverable(&self) -> VcpuSet {
        let mut set = VcpuSet::empty();
        for vcpu in (0..self.vcpus.len()).filter(|&vcpu| self.has_deliverable(vcpu)) {
            set.insert(vcpu);
        }
        set
    }
}
