//! The per-interrupt register families the distributor and the redistributor's `SGI_base` frame
//! share (`IGROUPR` to `NSACR`, offsets 0x0080-0x0EFF of either frame).
#![forbid(unsafe_code)]

use super::state::{IrqState, Route};
use super::{
    AccessWidth, Bank, PhysicalDistributor, SPI_BASE_INTID, Trigger, VcpuSet, Vgic, VgicError,
};

/// A register family with one bit per interrupt, named as the GICv3 architecture names it.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BitRegister {
    /// `IGROUPR`: RAZ/WI, every interrupt of a cell is Non-secure Group 1 and the guest sees the
    /// Non-secure view of a GIC with two Security states.
    IGROUPR,
    ISENABLER,
    ICENABLER,
    ISPENDR,
    ICPENDR,
    ISACTIVER,
    ICACTIVER,
    /// `IGRPMODR`: RAZ/WI for Non-secure accesses.
    IGRPMODR,
}

/// One register of the shared families, decoded from an offset and an access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BankRegister {
    /// One bit per interrupt for the 32 INTIDs from `first`.
    Bits(BitRegister, u32),
    /// `IPRIORITYR`: one byte per interrupt, `count` bytes from INTID `first`.
    Priority { first: u32, count: u32 },
    /// `ICFGR`: two bits per interrupt for the 16 INTIDs from `first`.
    Config(u32),
    /// `ITARGETSR`, `NSACR` and the legacy SGI registers: RAZ/WI with affinity routing on and
    /// for a Non-secure guest.
    RazWi,
}

impl BankRegister {
    /// Whether a write can change which interrupts are deliverable (so the next `flush` must
    /// look): not for priorities, which only order candidates, nor for RAZ/WI registers.
    pub(super) fn may_change_delivery(self) -> bool {
        !matches!(self, Self::Priority { .. } | Self::RazWi)
    }
}

/// Decodes `offset` if it lies in the shared families (0x0080-0x0F2F), checking `width`:
/// `IPRIORITYR`, `ITARGETSR`, `CPENDSGIR` and `SPENDSGIR` take bytes or words, the rest words.
/// `None` if the offset is outside the families.
#[inline(always)]
pub(super) fn decode(offset: u64, width: AccessWidth) -> Option<Result<BankRegister, VgicError>> {
    let word_only = |register: BankRegister| {
        Some(if width == AccessWidth::Word {
            Ok(register)
        } else {
            Err(VgicError::UnsupportedWidth)
        })
    };
    let byte_or_word = |register: BankRegister| {
        Some(match width {
            AccessWidth::Byte | AccessWidth::Word => Ok(register),
            _ => Err(VgicError::UnsupportedWidth),
        })
    };
    // Offsets below 0x1_0000, so the INTID arithmetic below stays far from overflow.
    let bits = |base: u64, register: BitRegister| {
        word_only(BankRegister::Bits(register, ((offset - base) * 8) as u32))
    };
    match offset {
        0x0080..0x0100 => bits(0x0080, BitRegister::IGROUPR),
        0x0100..0x0180 => bits(0x0100, BitRegister::ISENABLER),
        0x0180..0x0200 => bits(0x0180, BitRegister::ICENABLER),
        0x0200..0x0280 => bits(0x0200, BitRegister::ISPENDR),
        0x0280..0x0300 => bits(0x0280, BitRegister::ICPENDR),
        0x0300..0x0380 => bits(0x0300, BitRegister::ISACTIVER),
        0x0380..0x0400 => bits(0x0380, BitRegister::ICACTIVER),
        0x0400..0x0800 => byte_or_word(BankRegister::Priority {
            first: (offset - 0x0400) as u32,
            count: width.bytes() as u32,
        }),
        0x0800..0x0C00 => byte_or_word(BankRegister::RazWi),
        0x0C00..0x0D00 => word_only(BankRegister::Config(((offset - 0x0C00) * 4) as u32)),
        0x0D00..0x0D80 => bits(0x0D00, BitRegister::IGRPMODR),
        0x0E00..0x0F00 => word_only(BankRegister::RazWi),
        // GICD_SGIR (write-only, legacy), GICD_CPENDSGIR<n>, GICD_SPENDSGIR<n>.
        0x0F00..0x0F04 => word_only(BankRegister::RazWi),
        0x0F10..0x0F30 => byte_or_word(BankRegister::RazWi),
        _ => None,
    }
}

impl Vgic {
    /// Reads a shared-family register of `bank`; interrupts `bank` does not own read as zero.
    /// A read of the pending state samples the lines of the held hardware-linked level-sensitive
    /// interrupts it shows first (`physical`), so it shows what the physical line says.
    #[inline(always)]
    pub(super) fn read_bank_register(
        &mut self,
        bank: Bank,
        register: BankRegister,
        physical: &mut impl PhysicalDistributor,
    ) -> u64 {
        match register {
            BankRegister::Bits(family, first) => {
                if matches!(family, BitRegister::ISPENDR | BitRegister::ICPENDR) {
                    self.follow_lines(bank, first, physical);
                }
                u64::from(self.read_bits(bank, family, first))
            }
            BankRegister::Priority { first, count } => (0..count).fold(0, |value, byte| {
                let priority = self.irq(bank, first + byte).map_or(0, |irq| irq.priority);
                value | u64::from(priority) << (8 * byte)
            }),
            BankRegister::Config(first) => (0..16).fold(0, |value, index| {
                let edge = self
                    .irq(bank, first + index)
                    .is_some_and(|irq| irq.edge_triggered);
                value | u64::from(edge) << (2 * index + 1)
            }),
            BankRegister::RazWi => 0,
        }
    }

    /// Writes a shared-family register of `bank`; bits of interrupts `bank` does not own are
    /// ignored. Returns the vCPUs to kick.
    #[inline(always)]
    pub(super) fn write_bank_register(
        &mut self,
        bank: Bank,
        register: BankRegister,
        value: u64,
        physical: &mut impl PhysicalDistributor,
    ) -> VcpuSet {
        match register {
            BankRegister::Bits(family, first) => {
                return self.write_bits(bank, family, first, value as u32, physical);
            }
            BankRegister::Priority { first, count } => {
                let priorities = value.to_le_bytes();
                let shared = match bank {
                    Bank::Shared => first
                        .checked_sub(SPI_BASE_INTID)
                        .map(|start| start as usize),
                    Bank::Private(_) => None,
                };
                if let Some(start) = shared {
                    // SPIs: one slice lookup for the (up to 8) interrupts of the access.
                    let end = (start + count as usize).min(self.spis.len());
                    let irqs = self.spis.get_mut(start..end).unwrap_or_default();
                    for (intid, (irq, &priority)) in (first..).zip(irqs.iter_mut().zip(&priorities))
                    {
                        if irq.owned {
                            irq.priority = priority;
                            if irq.hardware_spi {
                                physical.set_priority(intid, priority);
                            }
                        }
                    }
                } else {
                    for (intid, &priority) in (first..first + count).zip(&priorities) {
                        if let Some(irq) = self.irq_mut(bank, intid) {
                            irq.priority = priority;
                        }
                    }
                }
            }
            BankRegister::Config(first) => {
                // SGIs are edge-triggered only; PPIs and SPIs are programmable.
                for index in 0..16 {
                    let intid = first + index;
                    let edge = value & 1 << (2 * index + 1) != 0;
                    if intid < 16 {
                        continue;
                    }
                    if let Some(irq) = self.irq_mut(bank, intid) {
                        irq.edge_triggered = edge;
                        if irq.hardware_spi {
                            let trigger = if edge { Trigger::Edge } else { Trigger::Level };
                            physical.set_trigger(intid, trigger);
                        }
                    }
                }
            }
            BankRegister::RazWi => {}
        }
        VcpuSet::empty()
    }

    fn read_bits(&self, bank: Bank, family: BitRegister, first: u32) -> u32 {
        let bit_of = |irq: &IrqState| match family {
            BitRegister::IGROUPR | BitRegister::IGRPMODR => false,
            BitRegister::ISENABLER | BitRegister::ICENABLER => irq.enabled,
            BitRegister::ISPENDR | BitRegister::ICPENDR => irq.pending_view(),
            BitRegister::ISACTIVER | BitRegister::ICACTIVER => irq.active,
        };
        (0..32).fold(0, |value, bit| {
            let set = self.irq(bank, first + bit).is_some_and(bit_of);
            value | u32::from(set) << bit
        })
    }

    fn write_bits(
        &mut self,
        bank: Bank,
        family: BitRegister,
        first: u32,
        value: u32,
        physical: &mut impl PhysicalDistributor,
    ) -> VcpuSet {
        let mut kick = VcpuSet::empty();
        let bank_vcpu = bank.vcpu();
        for bit in (0..32).filter(|bit| value & 1 << bit != 0) {
            let intid = first + bit;
            let Some(irq) = self.irq_mut(bank, intid) else {
                continue;
            };
            match family {
                BitRegister::IGROUPR | BitRegister::IGRPMODR => {}
                BitRegister::ISENABLER | BitRegister::ICENABLER => {
                    irq.enabled = family == BitRegister::ISENABLER;
                    if irq.hardware_spi {
                        physical.set_enabled(intid, irq.enabled);
                    }
                    // An instance held while the interrupt was disabled is delivered only if
                    // its line is still high (level-triggered means level).
                    if irq.enabled
                        && let Some(link) = irq.held_line()
                        && !physical.line_asserted(u32::from(link), bank_vcpu)
                        && let Some(link) = irq.drop_held_instance()
                    {
                        physical.deactivate(u32::from(link), bank_vcpu);
                    }
                }
                BitRegister::ISPENDR => irq.pending_latch = true,
                BitRegister::ICPENDR => {
                    // A hardware-linked instance already in a list register belongs to that
                    // vCPU's interface until its next exit: leave it alone.
                    if irq.in_list_register && irq.hardware_link.is_some() {
                        continue;
                    }
                    irq.pending_latch = false;
                    irq.latch_in_list_register = false;
                    if !irq.active
                        && let Some(physical_intid) = irq.hardware_link.take()
                    {
                        physical.deactivate(u32::from(physical_intid), bank_vcpu);
                    }
                }
                BitRegister::ISACTIVER => {
                    if !irq.active && !irq.in_list_register {
                        irq.active = true;
                        irq.holder_vcpu = match irq.route {
                            Route::Vcpu(vcpu) => vcpu,
                            Route::Any => 0,
                        };
                    }
                }
                BitRegister::ICACTIVER => {
                    // An interrupt held in another running vCPU's list register is that
                    // interface's to deactivate.
                    if irq.in_list_register {
                        continue;
                    }
                    irq.active = false;
                    if !irq.pending()
                        && let Some(physical_intid) = irq.hardware_link.take()
                    {
                        physical.deactivate(u32::from(physical_intid), bank_vcpu);
                    }
                }
            }
            let snapshot = *irq;
            kick = kick.union(self.kick_for(&snapshot));
        }
        kick
    }
}
