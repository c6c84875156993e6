//! The cell's virtual GICv2 distributor: guest accesses to the 4 KiB `GICD` frame of a GIC-400.
//!
//! The interrupt model is the one the GICv3 view uses; only the register map differs:
//! - the per-interrupt families (`ISENABLER` to `ICFGR`) are shared with GICv3 through
//!   `bank_registers`, with the first 32 INTIDs (SGIs and PPIs) banked per accessing vCPU, as a
//!   GICv3 redistributor's `SGI_base` frame has them;
//! - `GICD_ITARGETSR` replaces `GICD_IROUTER`: a CPU-target mask in the cell's own numbering
//!   (bit n = the cell's vCPU n, whatever physical CPU runs it); bits naming no vCPU of the cell
//!   are dropped. An SPI whose mask names several vCPUs goes to the lowest of them (the GICv2
//!   architecture lets an implementation pick any one); an empty mask keeps the previous target;
//! - `GICD_SGIR` replaces `ICC_SGI1R_EL1`, and `GICD_CPENDSGIR`/`GICD_SPENDSGIR` show and change
//!   the SGIs pending on the accessing vCPU, by source. One instance of an SGI is pending at a
//!   time, from the vCPU that sent it last;
//! - every interrupt is Group 0 (`GICD_IGROUPR` RAZ/WI) and the distributor has no Security
//!   Extensions: `GICD_CTLR.Enable` is the one enable the guest sees.
#![forbid(unsafe_code)]

use super::bank_registers::{self, BankRegister};
use super::distributor::{IIDR, check_access, reserved};
use super::state::Route;
use super::{
    AccessWidth, Bank, PhysicalDistributor, SPI_BASE_INTID, SPI_END_INTID, VcpuSet, Vgic, VgicError,
};

/// Size of the GICv2 `GICD` frame the guest sees.
pub const DISTRIBUTOR_V2_FRAME_SIZE: u64 = 0x1000;

/// Register offsets within the GICv2 `GICD` frame.
mod offset {
    pub const GICD_CTLR: u64 = 0x000;
    pub const GICD_TYPER: u64 = 0x004;
    pub const GICD_IIDR: u64 = 0x008;
    pub const GICD_ITARGETSR: u64 = 0x800;
    pub const GICD_ITARGETSR_END: u64 = 0xC00;
    pub const GICD_SGIR: u64 = 0xF00;
    pub const GICD_CPENDSGIR: u64 = 0xF10;
    pub const GICD_SPENDSGIR: u64 = 0xF20;
    pub const GICD_SPENDSGIR_END: u64 = 0xF30;
    pub const GICD_PIDR2: u64 = 0xFE8;
}

/// `GICD_PIDR2`: ArchRev 2 (GICv2) in bits [7:4], JEP106 bits in [3:0].
const PIDR2_V2: u64 = 0x2B;
/// `GICD_CTLR.Enable`.
const CTLR_ENABLE: u64 = 1;
/// `GICD_SGIR` fields.
const SGIR_INTID_MASK: u64 = 0xF;
const SGIR_TARGET_LIST_SHIFT: u64 = 16;
const SGIR_FILTER_SHIFT: u64 = 24;

/// A decoded GICv2 `GICD` register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GicdV2Register {
    Ctlr,
    Typer,
    Iidr,
    Pidr2,
    /// Reserved and implementation-defined offsets.
    RazWi,
    Bank(BankRegister),
    /// `count` bytes of `GICD_ITARGETSR` from INTID `first`.
    Targets {
        first: u32,
        count: u32,
    },
    Sgir,
    /// `count` bytes of `GICD_CPENDSGIR` (`set` false) or `GICD_SPENDSGIR` from SGI `first`.
    SgiPending {
        set: bool,
        first: u32,
        count: u32,
    },
}

fn decode(offset: u64, width: AccessWidth) -> Result<GicdV2Register, VgicError> {
    check_access(offset, width, DISTRIBUTOR_V2_FRAME_SIZE)?;
    let word_only = |register| match width {
        AccessWidth::Word => Ok(register),
        _ => Err(VgicError::UnsupportedWidth),
    };
    let byte_or_word = |register| match width {
        AccessWidth::Byte | AccessWidth::Word => Ok(register),
        _ => Err(VgicError::UnsupportedWidth),
    };
    let count = width.bytes() as u32;
    match offset {
        offset::GICD_CTLR => word_only(GicdV2Register::Ctlr),
        offset::GICD_TYPER => word_only(GicdV2Register::Typer),
        offset::GICD_IIDR => word_only(GicdV2Register::Iidr),
        offset::GICD_PIDR2 => word_only(GicdV2Register::Pidr2),
        offset::GICD_ITARGETSR..offset::GICD_ITARGETSR_END => {
            byte_or_word(GicdV2Register::Targets {
                first: (offset - offset::GICD_ITARGETSR) as u32,
                count,
            })
        }
        offset::GICD_SGIR => word_only(GicdV2Register::Sgir),
        offset::GICD_CPENDSGIR..offset::GICD_SPENDSGIR_END => {
            let set = offset >= offset::GICD_SPENDSGIR;
            let base = if set {
                offset::GICD_SPENDSGIR
            } else {
                offset::GICD_CPENDSGIR
            };
            byte_or_word(GicdV2Register::SgiPending {
                set,
                first: (offset - base) as u32,
                count,
            })
        }
        // 0x080-0xBFF and 0xC00-0xEFF: the families GICv3 shares (IGROUPR RAZ/WI, IGRPMODR and
        // NSACR are RAZ/WI here too, since GICv2 has no such registers for a Non-secure guest).
        _ => match bank_registers::decode(offset, width) {
            Some(register) => register.map(GicdV2Register::Bank),
            None => reserved(width).map(|()| GicdV2Register::RazWi),
        },
    }
}

/// The bank a shared-family register reaches from `vcpu`: its own SGIs and PPIs for the first
/// 32 INTIDs (banked per CPU on GICv2), the SPIs otherwise.
fn bank_for(register: BankRegister, vcpu: usize) -> Bank {
    let first = match register {
        BankRegister::Bits(_, first) | BankRegister::Config(first) => first,
        BankRegister::Priority { first, .. } => first,
        BankRegister::RazWi => SPI_BASE_INTID,
    };
    if first < SPI_BASE_INTID {
        Bank::Private(vcpu)
    } else {
        Bank::Shared
    }
}

impl Vgic {
    /// A read by vCPU `vcpu` of `width` at `offset` in the GICv2 distributor frame (4 KiB).
    pub fn distributor_v2_read(
        &mut self,
        vcpu: usize,
        offset: u64,
        width: AccessWidth,
        physical: &mut impl PhysicalDistributor,
    ) -> Result<u64, VgicError> {
        if vcpu >= self.vcpus.len() {
            return Err(VgicError::NoSuchVcpu);
        }
        Ok(match decode(offset, width)? {
            GicdV2Register::Ctlr => u64::from(self.group1_enabled) * CTLR_ENABLE,
            GicdV2Register::Typer => self.gicd_v2_typer(),
            GicdV2Register::Iidr => IIDR,
            GicdV2Register::Pidr2 => PIDR2_V2,
            GicdV2Register::RazWi | GicdV2Register::Sgir => 0,
            GicdV2Register::Bank(register) => {
                self.read_bank_register(bank_for(register, vcpu), register, physical)
            }
            GicdV2Register::Targets { first, count } => (0..count).fold(0, |value, byte| {
                value | u64::from(self.target_byte(vcpu, first + byte)) << (8 * byte)
            }),
            GicdV2Register::SgiPending { first, count, .. } => (0..count).fold(0, |value, byte| {
                value | u64::from(self.sgi_sources(vcpu, first + byte)) << (8 * byte)
            }),
        })
    }

    /// A write by vCPU `vcpu` of `width` at `offset` in the GICv2 distributor frame. Returns the
    /// vCPUs that have a newly deliverable interrupt: kick each one other than the caller's.
    pub fn distributor_v2_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        width: AccessWidth,
        value: u64,
        physical: &mut impl PhysicalDistributor,
    ) -> Result<VcpuSet, VgicError> {
        if vcpu >= self.vcpus.len() {
            return Err(VgicError::NoSuchVcpu);
        }
        Ok(match decode(offset, width)? {
            GicdV2Register::Ctlr => {
                self.touch();
                self.set_forwarding(value & CTLR_ENABLE != 0)
            }
            GicdV2Register::Typer
            | GicdV2Register::Iidr
            | GicdV2Register::Pidr2
            | GicdV2Register::RazWi => VcpuSet::empty(),
            GicdV2Register::Bank(register) => {
                let bank = bank_for(register, vcpu);
                if register.may_change_delivery() {
                    self.touch_bank(bank);
                }
                self.write_bank_register(bank, register, value, physical)
            }
            GicdV2Register::Targets { first, count } => {
                let mut kick = VcpuSet::empty();
                for byte in 0..count {
                    let mask = (value >> (8 * byte)) as u8;
                    kick = kick.union(self.write_targets(first + byte, mask, physical));
                }
                kick
            }
            GicdV2Register::Sgir => self.write_sgir(vcpu, value),
            GicdV2Register::SgiPending { set, first, count } => {
                let mut kick = VcpuSet::empty();
                for byte in 0..count {
                    let sources = (value >> (8 * byte)) as u8;
                    kick = kick.union(self.write_sgi_pending(vcpu, first + byte, set, sources));
                }
                kick
            }
        })
    }

    /// `GICD_TYPER`: lines up to the highest owned SPI, the cell's vCPU count, no Security
    /// Extensions.
    fn gicd_v2_typer(&self) -> u64 {
        let cpu_number = self.vcpus.len().clamp(1, 8) as u64 - 1;
        u64::from(self.it_lines_number) | cpu_number << 5
    }

    /// The cell's vCPUs as a GICv2 CPU-target mask (at most 8 CPU interfaces).
    fn vcpu_mask(&self) -> u8 {
        (VcpuSet::first(self.vcpus.len().min(8)).bits() & 0xFF) as u8
    }

    /// One `GICD_ITARGETSR` byte as `vcpu` reads it: its own bit for its SGIs and PPIs, the
    /// stored mask for an owned SPI, zero otherwise.
    fn target_byte(&self, vcpu: usize, intid: u32) -> u8 {
        if intid < SPI_BASE_INTID {
            return if vcpu < 8 { 1 << vcpu } else { 0 };
        }
        self.irq(Bank::Shared, intid).map_or(0, |irq| irq.targets)
    }

    /// Writes one `GICD_ITARGETSR` byte of SPI `intid` (SGI and PPI bytes are read-only).
    fn write_targets(
        &mut self,
        intid: u32,
        mask: u8,
        physical: &mut impl PhysicalDistributor,
    ) -> VcpuSet {
        if !(SPI_BASE_INTID..SPI_END_INTID).contains(&intid) {
            return VcpuSet::empty();
        }
        let mask = mask & self.vcpu_mask();
        let Some(irq) = self.irq_mut(Bank::Shared, intid) else {
            return VcpuSet::empty();
        };
        irq.targets = mask;
        if mask == 0 {
            return VcpuSet::empty();
        }
        let target = mask.trailing_zeros() as u8;
        irq.route = Route::Vcpu(target);
        if irq.hardware_spi {
            physical.route_to(intid, usize::from(target));
        }
        let snapshot = *irq;
        self.touch();
        self.kick_for(&snapshot)
    }

    /// `GICD_SGIR` written by `caller`: SGI `SGIINTID` to the vCPUs its `TargetListFilter` names
    /// (0: `CPUTargetList`, in the cell's numbering; 1: every vCPU but the caller; 2: the caller;
    /// 3: reserved, nothing).
    fn write_sgir(&mut self, caller: usize, value: u64) -> VcpuSet {
        let intid = (value & SGIR_INTID_MASK) as u32;
        let list = ((value >> SGIR_TARGET_LIST_SHIFT) & 0xFF) as u8 & self.vcpu_mask();
        let mut targets = VcpuSet::empty();
        match (value >> SGIR_FILTER_SHIFT) & 0b11 {
            0 => {
                for vcpu in (0..8).filter(|vcpu| list & 1 << vcpu != 0) {
                    targets.insert(vcpu);
                }
            }
            1 => {
                for vcpu in (0..self.vcpus.len()).filter(|&vcpu| vcpu != caller) {
                    targets.insert(vcpu);
                }
            }
            2 => targets.insert(caller),
            _ => {}
        }
        self.send_sgi(caller, intid, targets)
    }

    /// One byte of `GICD_SPENDSGIR`/`GICD_CPENDSGIR` for SGI `sgi` of `vcpu`: the bit of the
    /// vCPU that sent the pending instance.
    fn sgi_sources(&self, vcpu: usize, sgi: u32) -> u8 {
        match self.irq(Bank::Private(vcpu), sgi) {
            Some(irq) if irq.pending_view() && irq.source < 8 => 1 << irq.source,
            _ => 0,
        }
    }

    /// Sets (`set`) or clears SGI `sgi` of `vcpu` pending from the sources in `sources` (bits
    /// naming no vCPU of the cell are ignored).
    fn write_sgi_pending(&mut self, vcpu: usize, sgi: u32, set: bool, sources: u8) -> VcpuSet {
        let sources = sources & self.vcpu_mask();
        if sgi >= 16 || sources == 0 {
            return VcpuSet::empty();
        }
        let Some(irq) = self.irq_mut(Bank::Private(vcpu), sgi) else {
            return VcpuSet::empty();
        };
        if set {
            irq.pending_latch = true;
            irq.source = sources.trailing_zeros() as u8;
        } else if 1u8
            .checked_shl(u32::from(irq.source))
            .is_some_and(|bit| sources & bit != 0)
            && !irq.in_list_register
        {
            // An instance in a list register belongs to that interface until the next exit,
            // as for `GICD_ICPENDR`.
            irq.pending_latch = false;
            irq.latch_in_list_register = false;
        }
        let snapshot = *irq;
        self.touch_vcpu(vcpu);
        self.kick_for(&snapshot)
    }
}
