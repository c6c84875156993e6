//! Virtual GIC per cell: distributor, redistributors and list-register delivery, for a GICv3
//! view and (through [`Vgic::distributor_v2_read`]/[`Vgic::distributor_v2_write`], see
//! `distributor_v2`) a GICv2 / GIC-400 view of the same interrupt model.
//!
//! One [`Vgic`] models the interrupt controller a cell's guest sees: the Non-secure view of a
//! GICv3 with affinity routing always on (`GICD_CTLR.ARE_NS` RAO/WI), no LPIs, no ITS, every
//! interrupt Non-secure Group 1. The cell owns its vCPUs' SGIs and PPIs and the SPIs its
//! [`VgicConfig`] lists; every register bit of any other interrupt reads as zero and ignores
//! writes, and no route can leave the cell's vCPUs.
//!
//! Guest accesses come in through [`Vgic::distributor_read`]/[`Vgic::distributor_write`] (offsets
//! within the 64 KiB `GICD` frame), [`Vgic::redistributor_read`]/[`Vgic::redistributor_write`]
//! (offsets within the cell's redistributor region, 0x2_0000 per vCPU) and
//! [`Vgic::write_sgi1r`] (a trapped `ICC_SGI1R_EL1`). The hypervisor raises interrupts with
//! [`Vgic::inject`], [`Vgic::inject_hardware`] and [`Vgic::set_level`]. Around every guest entry the
//! vCPU's run loop calls [`Vgic::sync`] right after the exit and [`Vgic::flush`] right before the
//! next entry; both work on the `ICH_*_EL2` registers through the [`ListRegisters`] trait, whose
//! values are in the GICv3 layout: a GICv2 interface (`GICH_LR<n>`) translates them, and is
//! handed the sender of each SGI entry ([`ListRegisters::write_sgi`]), which only GICv2 reports.
//!
//! Level-triggered means level: a hardware-linked level-sensitive interrupt that waits for the
//! guest outside the list registers (disabled, the distributor off, no list register free) is
//! pending only while its physical line is high. Its line is sampled when the guest reads its
//! pending state, when the guest enables it, and before `flush` would put it into a list register
//! (which also retires an entry the guest had not taken by its next exit); a low line drops the
//! instance and deactivates the physical interrupt, which fires afresh when the line rises. See
//! docs/architecture.md, "Level-sensitive interrupts follow their line".
//!
//! The model is per cell; the caller keeps it behind one lock (a `spin::Mutex`) and never
//! allocates through it after [`Vgic::new`].
#![forbid(unsafe_code)]

mod bank_registers;
mod distributor;
mod distributor_v2;
mod list_registers;
mod redistributor;
mod regs;
mod sgi;
mod state;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::fmt;

use crate::dev::gic::{PPI_BASE_INTID, REDISTRIBUTOR_STRIDE, SPI_BASE_INTID, SPI_END_INTID};
use state::{IrqState, Route, VcpuState};

pub use distributor_v2::DISTRIBUTOR_V2_FRAME_SIZE;
pub use list_registers::{Direct, Flushed, list_register_count_from_vtr};
pub use regs::{GICD_CTLR, GICD_IROUTER, GICD_TYPER, GICR_TYPER, GICR_WAKER, ICC_SGI1R_EL1};
pub use regs::{ICH_HCR_EL2, ICH_LR_EL2, ICH_VTR_EL2};

/// Most vCPUs one cell may have: `ICC_SGI1R_EL1.TargetList` with `RS` = 0 reaches Aff0 0-15.
pub const MAX_VCPUS: usize = 16;
/// Most list registers a GICv3 vCPU interface implements (`ICH_VTR_EL2.ListRegs` + 1).
pub const MAX_LIST_REGISTERS: usize = 16;
/// Size of the `GICD` frame the guest sees.
pub const DISTRIBUTOR_FRAME_SIZE: u64 = 0x1_0000;

/// Whether an SPI the cell owns comes from a device or from cellvisor itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiKind {
    /// Raised only by cellvisor (an emulated device such as the cell's vUART).
    Virtual,
    /// The same INTID on the physical GIC, from a device passed through to the cell: register
    /// writes are forwarded to the physical distributor and deliveries are hardware-linked.
    Hardware,
}

/// One SPI given to a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpiAssignment {
    /// The INTID, 32-1019, the same in the guest and (for [`SpiKind::Hardware`]) on the platform.
    pub intid: u32,
    /// Where the interrupt comes from.
    pub kind: SpiKind,
}

/// Everything [`Vgic::new`] needs to build a cell's vGIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VgicConfig {
    /// Number of vCPUs; vCPU *n* has virtual MPIDR Aff0 = *n* and Aff1-3 = 0.
    pub vcpu_count: usize,
    /// The SPIs the cell owns.
    pub owned_spis: Vec<SpiAssignment>,
    /// The physical distributor's `GICD_TYPER.ITLinesNumber`: hardware SPIs must lie below
    /// 32 * (`spi_lines` + 1).
    pub spi_lines: u32,
    /// Number of list registers of the physical vCPU interface (`ICH_VTR_EL2.ListRegs` + 1).
    pub list_register_count: usize,
}

/// A [`VgicConfig`] that cannot describe a cell; one variant per way it can be wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicConfigError {
    /// `vcpu_count` is 0 or above [`MAX_VCPUS`].
    VcpuCount(usize),
    /// `list_register_count` is below 2 or above [`MAX_LIST_REGISTERS`].
    ListRegisterCount(usize),
    /// An owned INTID is not an SPI (32-1019).
    NotAnSpi(u32),
    /// A hardware SPI the physical distributor does not implement.
    BeyondPlatform(u32),
    /// The same SPI is listed twice.
    DuplicateSpi(u32),
}

impl fmt::Display for VgicConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VcpuCount(count) => write!(f, "{count} vCPUs (a vGIC takes 1 to {MAX_VCPUS})"),
            Self::ListRegisterCount(count) => {
                write!(
                    f,
                    "{count} list registers (2 to {MAX_LIST_REGISTERS} supported)"
                )
            }
            Self::NotAnSpi(intid) => write!(f, "INTID {intid} is not an SPI (32-1019)"),
            Self::BeyondPlatform(intid) => {
                write!(f, "SPI {intid} is beyond the platform distributor's lines")
            }
            Self::DuplicateSpi(intid) => write!(f, "SPI {intid} is assigned twice"),
        }
    }
}

/// A guest access or a hypervisor request the vGIC refuses. For guest MMIO the caller injects a
/// synchronous external abort into the guest; nothing in the model changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// The offset lies outside the distributor frame or past the last vCPU's redistributor.
    OutsideFrame,
    /// The offset is not a multiple of the access size.
    Unaligned,
    /// The register does not support an access of this size.
    UnsupportedWidth,
    /// The vCPU index is not one of the cell's.
    NoSuchVcpu,
    /// The INTID is not one the cell owns (or not valid for the request).
    NotOwned(u32),
    /// The physical INTID of a hardware link is not a PPI or SPI.
    InvalidPhysicalIntid(u32),
}

/// Size of a guest MMIO access (the same type the rest of the MMIO path uses).
pub use crate::dev::mmio::AccessWidth;

/// Trigger mode of an interrupt (`GICD_ICFGR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Level-sensitive.
    Level,
    /// Edge-triggered.
    Edge,
}

/// A set of the cell's vCPUs, by index: the vCPUs that have a newly deliverable interrupt and must
/// be kicked (sent a physical SGI) if they are not the one running the caller.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct VcpuSet(u16);

impl VcpuSet {
    /// No vCPU.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// vCPUs 0 to `count` - 1.
    pub const fn first(count: usize) -> Self {
        if count >= MAX_VCPUS {
            Self(u16::MAX)
        } else {
            Self((1 << count) - 1)
        }
    }

    /// Adds `vcpu` (ignored if it is not below [`MAX_VCPUS`]).
    pub fn insert(&mut self, vcpu: usize) {
        if vcpu < MAX_VCPUS {
            self.0 |= 1 << vcpu;
        }
    }

    /// The set as a bit mask (bit n = vCPU n).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether `vcpu` is in the set.
    pub const fn contains(self, vcpu: usize) -> bool {
        vcpu < MAX_VCPUS && self.0 & (1 << vcpu) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of two sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The vCPU indices in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let vcpu = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(vcpu)
        })
    }
}

impl fmt::Debug for VcpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The result of raising an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Deliverable now on this vCPU, or pending again while a list register of this vCPU still
    /// holds the previous instance (which its guest may have completed without an exit: a vCPU
    /// that spins never exits by itself). Kick it unless it is the one running the caller, which
    /// takes it at its next [`Vgic::flush`] (whose sync first takes the old instance back).
    Ready {
        /// The vCPU that will take the interrupt, or must exit so that it can be taken.
        vcpu: usize,
    },
    /// Recorded as pending but not deliverable now (disabled, distributor off, or already
    /// active): no vCPU needs a kick.
    Held,
}

/// The vCPU interface of the physical CPU a vCPU is pinned to: its `ICH_*_EL2` registers, and
/// the physical interrupts their hardware-linked entries stand for. The arch glue implements it
/// with `mrs`/`msr`; host tests with a fake.
pub trait ListRegisters {
    /// Number of implemented list registers (`ICH_VTR_EL2.ListRegs` + 1).
    fn count(&self) -> usize;
    /// Reads `ICH_LR<n>_EL2`; `n` is below [`ListRegisters::count`].
    fn read(&self, n: usize) -> u64;
    /// Writes `ICH_LR<n>_EL2`; `n` is below [`ListRegisters::count`].
    fn write(&mut self, n: usize, value: u64);
    /// Writes list register `n` with SGI entry `value` (`ICH_LR<n>_EL2` layout) sent by the
    /// cell's vCPU `source`. The vGIC speaks the GICv3 layout; a GICv2 interface translates it
    /// into `GICH_LR<n>` and reports `source` to the guest (`GICC_IAR.CPUID`), which GICv3 has no
    /// field for: its default ignores `source`.
    fn write_sgi(&mut self, n: usize, value: u64, source: u8) {
        let _ = source;
        self.write(n, value);
    }
    /// Reads `ICH_ELRSR_EL2`: bit n set = `ICH_LR<n>_EL2` is empty.
    fn empty_list_registers(&self) -> u16;
    /// Reads `ICH_HCR_EL2`.
    fn hcr(&self) -> u64;
    /// Writes `ICH_HCR_EL2` (the vGIC changes only `UIE` and `NPIE`).
    fn set_hcr(&mut self, value: u64);
    /// Whether the level-sensitive physical interrupt `physical_intid` (a PPI of this CPU, or an
    /// SPI), which EL2 acknowledged and holds active for a hardware-linked virtual interrupt, is
    /// still asserted by its source: the line the interrupt's pending state follows.
    fn line_asserted(&mut self, physical_intid: u32) -> bool;
    /// Deactivates the physical interrupt `physical_intid` (a PPI of this CPU, or an SPI) whose
    /// hardware-linked virtual instance the vGIC dropped because its line went low.
    fn deactivate_physical(&mut self, physical_intid: u32);
}

/// The physical distributor, narrowed to the hardware SPIs of one cell. The arch glue implements it
/// per cell: it maps a vCPU index to the physical CPU the vCPU is pinned to.
pub trait PhysicalDistributor {
    /// Enables or disables the physical SPI `intid`.
    fn set_enabled(&mut self, intid: u32, enabled: bool);
    /// Sets the physical SPI's priority (the glue may clamp it).
    fn set_priority(&mut self, intid: u32, priority: u8);
    /// Sets the physical SPI's trigger mode.
    fn set_trigger(&mut self, intid: u32, trigger: Trigger);
    /// Routes the physical SPI to the physical CPU of the cell's `vcpu`.
    fn route_to(&mut self, intid: u32, vcpu: usize);
    /// Deactivates a physical interrupt whose hardware-linked virtual instance was dropped
    /// without the guest deactivating it. For a PPI, `vcpu` says whose CPU's PPI it is.
    fn deactivate(&mut self, intid: u32, vcpu: usize);
    /// Whether the level-sensitive physical interrupt `intid`, held active by EL2 for a
    /// hardware-linked virtual interrupt, is still asserted by its source (see
    /// [`ListRegisters::line_asserted`]). For a PPI, `vcpu` says whose CPU's PPI it is.
    fn line_asserted(&mut self, intid: u32, vcpu: usize) -> bool;
}

/// Which interrupts a register access can reach: the distributor's (SPIs) or one vCPU's
/// redistributor (SGIs and PPIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bank {
    Shared,
    Private(usize),
}

impl Bank {
    /// The vCPU a [`PhysicalDistributor`] call about this bank names: the bank's own for a
    /// private one (whose CPU's PPI it is), 0 for the shared one (SPIs ignore it).
    fn vcpu(self) -> usize {
        match self {
            Bank::Private(vcpu) => vcpu,
            Bank::Shared => 0,
        }
    }
}

/// The virtual GICv3 of one cell.
#[derive(Clone, Debug)]
pub struct Vgic {
    vcpus: Vec<VcpuState>,
    /// SPIs 32 up to the virtual `GICD_TYPER.ITLinesNumber` lines, indexed by INTID - 32.
    spis: Vec<IrqState>,
    /// Which SPIs are owned and how, to rebuild `spis` on reset.
    owned_spis: Vec<SpiAssignment>,
    /// `GICD_CTLR.EnableGrp1A`.
    group1_enabled: bool,
    list_register_count: usize,
    /// The virtual `GICD_TYPER.ITLinesNumber`.
    it_lines_number: u32,
    /// Bumped by every change that could make an interrupt deliverable to any vCPU (SPIs, the
    /// distributor, a reset); never 0. A change to one vCPU's private interrupts only resets that
    /// vCPU's markers below (see [`Vgic::touch_vcpu`]).
    generation: u64,
    /// Per vCPU: the `generation` at which `flush` last found nothing to put in its list
    /// registers, so the next `flush` at the same generation has nothing to do either; 0 after a
    /// change to the vCPU's own interrupts.
    idle_at: Vec<u64>,
    /// Per vCPU: the `generation` at which its list registers last held everything deliverable
    /// to it (a `flush` without overflow); 0 after a change to the vCPU's own interrupts. While it
    /// equals `generation`, [`Vgic::forward_ppi_direct`] may add to the list registers without a
    /// full `flush`.
    complete_at: Vec<u64>,
}

impl Vgic {
    /// Builds the vGIC of a cell in its power-on state, or says what is wrong with `config`.
    pub fn new(config: &VgicConfig) -> Result<Self, VgicConfigError> {
        if config.vcpu_count == 0 || config.vcpu_count > MAX_VCPUS {
            return Err(VgicConfigError::VcpuCount(config.vcpu_count));
        }
        if !(2..=MAX_LIST_REGISTERS).contains(&config.list_register_count) {
            return Err(VgicConfigError::ListRegisterCount(
                config.list_register_count,
            ));
        }
        let platform_limit = (config.spi_lines.min(31) + 1) * 32;
        let mut highest = SPI_BASE_INTID - 1;
        for (index, spi) in config.owned_spis.iter().enumerate() {
            if !(SPI_BASE_INTID..SPI_END_INTID).contains(&spi.intid) {
                return Err(VgicConfigError::NotAnSpi(spi.intid));
            }
            if spi.kind == SpiKind::Hardware && spi.intid >= platform_limit {
                return Err(VgicConfigError::BeyondPlatform(spi.intid));
            }
            if config.owned_spis[..index]
                .iter()
                .any(|earlier| earlier.intid == spi.intid)
            {
                return Err(VgicConfigError::DuplicateSpi(spi.intid));
            }
            highest = highest.max(spi.intid);
        }
        let it_lines_number = highest / 32;
        let spi_count = ((it_lines_number + 1) * 32).min(SPI_END_INTID) - SPI_BASE_INTID;
        let mut vgic = Self {
            vcpus: Vec::with_capacity(config.vcpu_count),
            spis: Vec::with_capacity(spi_count as usize),
            owned_spis: config.owned_spis.clone(),
            group1_enabled: false,
            list_register_count: config.list_register_count,
            it_lines_number,
            generation: 1,
            idle_at: Vec::with_capacity(config.vcpu_count),
            complete_at: Vec::with_capacity(config.vcpu_count),
        };
        vgic.idle_at.resize(config.vcpu_count, 0);
        vgic.complete_at.resize(config.vcpu_count, 0);
        vgic.vcpus.resize(config.vcpu_count, VcpuState::reset(0));
        vgic.spis.resize(spi_count as usize, IrqState::UNOWNED);
        vgic.reset_virtual_state();
        Ok(vgic)
    }

    /// Records that interrupt state changed, so the next [`Vgic::flush`] of every vCPU looks.
    fn touch(&mut self) {
        self.generation = self.generation.wrapping_add(1).max(1);
    }

    /// Records that the private interrupts of `vcpu` changed, so its next [`Vgic::flush`] looks
    /// (the other vCPUs' flushes are not disturbed).
    fn touch_vcpu(&mut self, vcpu: usize) {
        if let Some(idle) = self.idle_at.get_mut(vcpu) {
            *idle = 0;
        }
        if let Some(complete) = self.complete_at.get_mut(vcpu) {
            *complete = 0;
        }
    }

    /// [`Vgic::touch`] for the shared bank, [`Vgic::touch_vcpu`] for a private one.
    fn touch_bank(&mut self, bank: Bank) {
        match bank {
            Bank::Shared => self.touch(),
            Bank::Private(vcpu) => self.touch_vcpu(vcpu),
        }
    }

    /// Number of vCPUs of the cell.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// Puts the vGIC back to its power-on state (cell restart): every interrupt disabled,
    /// inactive, not pending, priority 0, SPIs routed to vCPU 0, distributor disabled,
    /// redistributors asleep. The cell's hardware SPIs are disabled, deactivated if a
    /// hardware-linked instance was outstanding, and routed to vCPU 0's CPU; hardware-linked PPIs
    /// still outstanding are deactivated too. Call it once after [`Vgic::new`] to put the hardware
    /// SPIs in that state. List registers still holding entries on the cell's CPUs are cleared
    /// by each vCPU's next [`Vgic::flush`].
    pub fn reset(&mut self, physical: &mut impl PhysicalDistributor) {
        self.touch();
        for (vcpu, state) in self.vcpus.iter().enumerate() {
            for link in state.private.iter().filter_map(|irq| irq.hardware_link) {
                physical.deactivate(u32::from(link), vcpu);
            }
        }
        for spi in &self.owned_spis {
            if spi.kind != SpiKind::Hardware {
                continue;
            }
            physical.set_enabled(spi.intid, false);
            let link = self
                .irq(Bank::Shared, spi.intid)
                .and_then(|irq| irq.hardware_link);
            if let Some(link) = link {
                physical.deactivate(u32::from(link), 0);
            }
            physical.route_to(spi.intid, 0);
        }
        self.reset_virtual_state();
    }

    fn reset_virtual_state(&mut self) {
        self.group1_enabled = false;
        for (index, vcpu) in (0u8..).zip(self.vcpus.iter_mut()) {
            *vcpu = VcpuState::reset(index);
        }
        self.spis.fill(IrqState::UNOWNED);
        for spi in &self.owned_spis {
            let hardware = spi.kind == SpiKind::Hardware;
            if let Some(irq) = self.spis.get_mut((spi.intid - SPI_BASE_INTID) as usize) {
                *irq = IrqState::reset(Route::Vcpu(0), false, hardware);
            }
        }
    }

    /// Marks `intid` pending as an edge: an SGI or PPI of vCPU `target_vcpu_hint`, or an SPI the
    /// cell owns (which goes where its route says; `target_vcpu_hint` takes a 1-of-N SPI).
    pub fn inject(&mut self, intid: u32, target_vcpu_hint: usize) -> Result<Delivery, VgicError> {
        let bank = self.bank_of(intid, target_vcpu_hint)?;
        self.touch_bank(bank);
        let irq = self
            .irq_mut(bank, intid)
            .ok_or(VgicError::NotOwned(intid))?;
        irq.pending_latch = true;
        Ok(self.delivery(bank, intid, target_vcpu_hint))
    }

    /// Marks `intid` pending as the virtual side of the physical interrupt `physical_intid`, which
    /// cellvisor has acknowledged and left active (EOImode = 1): the list register gets `HW` = 1
    /// so the guest's deactivation deactivates the physical interrupt. `intid` is a PPI of `vcpu`
    /// (the virtual timer 27, the physical timer 30, the PMU 23) linked to a physical PPI of
    /// `vcpu`'s CPU, or a hardware SPI of the cell linked to the same physical INTID.
    pub fn inject_hardware(
        &mut self,
        vcpu: usize,
        intid: u32,
        physical_intid: u32,
    ) -> Result<Delivery, VgicError> {
        if intid < 16 {
            return Err(VgicError::NotOwned(intid));
        }
        let bank = self.bank_of(intid, vcpu)?;
        self.touch_bank(bank);
        let physical_ok = match bank {
            Bank::Private(_) => (PPI_BASE_INTID..SPI_BASE_INTID).contains(&physical_intid),
            Bank::Shared => physical_intid == intid,
        };
        if !physical_ok {
            return Err(VgicError::InvalidPhysicalIntid(physical_intid));
        }
        let irq = self
            .irq_mut(bank, intid)
            .ok_or(VgicError::NotOwned(intid))?;
        if bank == Bank::Shared && !irq.hardware_spi {
            return Err(VgicError::NotOwned(intid));
        }
        // A new physical instance while a list register still tracks the previous one: the
        // guest completed that one (the physical interrupt could not fire again otherwise), and
        // the sync that takes it back must not drop the link of this one.
        irq.link_renewed |= irq.in_list_register;
        // Below 1020: fits pINTID's 13 bits.
        irq.hardware_link = Some(physical_intid as u16);
        irq.pending_latch = true;
        Ok(self.delivery(bank, intid, vcpu))
    }

    /// Sets the input line of a virtual SPI the cell owns. A level-sensitive SPI is pending while
    /// the line is high (and re-pends after the guest's EOI if it still is); an edge-triggered one
    /// latches pending on a rising edge.
    pub fn set_level(&mut self, intid: u32, level: bool) -> Result<Delivery, VgicError> {
        if intid < SPI_BASE_INTID {
            return Err(VgicError::NotOwned(intid));
        }
        let irq = self
            .irq_mut(Bank::Shared, intid)
            .ok_or(VgicError::NotOwned(intid))?;
        if irq.edge_triggered && level && !irq.line_level {
            irq.pending_latch = true;
        }
        let changed = irq.line_level != level;
        irq.line_level = level;
        if changed {
            self.touch();
        }
        Ok(self.delivery(Bank::Shared, intid, 0))
    }

    /// Level-triggered means level: samples the line of every held hardware-linked
    /// level-sensitive instance ([`IrqState::held_line`]) among the 32 INTIDs from `first` of
    /// `bank`, and drops the ones whose line went low, deactivating their physical interrupts.
    /// Called before a guest reads their pending state; enabling one and `flush` sample it too.
    /// Dropping an instance makes nothing newly deliverable, so no vCPU needs to look again.
    fn follow_lines(&mut self, bank: Bank, first: u32, physical: &mut impl PhysicalDistributor) {
        let vcpu = bank.vcpu();
        for intid in first..first.saturating_add(32) {
            let Some(link) = self.irq(bank, intid).and_then(IrqState::held_line) else {
                continue;
            };
            if physical.line_asserted(u32::from(link), vcpu) {
                continue;
            }
            if let Some(link) = self
                .irq_mut(bank, intid)
                .and_then(IrqState::drop_held_instance)
            {
                physical.deactivate(u32::from(link), vcpu);
            }
        }
    }

    /// Whether `vcpu`'s list registers hold entries the vGIC wrote (so its `sync` has work).
    pub fn holds_list_registers(&self, vcpu: usize) -> bool {
        self.vcpus
            .get(vcpu)
            .is_some_and(|state| state.list_registers_in_use != 0)
    }

    /// Whether vCPU `vcpu` has an interrupt it would take now (for WFI: idle only if not).
    /// Call it after [`Vgic::sync`].
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        let Some(state) = self.vcpus.get(vcpu) else {
            return false;
        };
        // Private interrupts: only those `watch` says may be pending. `may_need_list_register`
        // first: a cheap filter that passes every pending interrupt.
        let mut watch = state.watch;
        while watch != 0 {
            let intid = watch.trailing_zeros() as usize;
            watch &= watch - 1;
            if state.private.get(intid).is_some_and(|irq| {
                irq.may_need_list_register() && self.is_deliverable_to(irq, vcpu)
            }) {
                return true;
            }
        }
        self.owned_spis.iter().any(|spi| {
            self.irq(Bank::Shared, spi.intid).is_some_and(|irq| {
                irq.may_need_list_register() && self.is_deliverable_to(irq, vcpu)
            })
        })
    }

    /// Whether `irq` is pending, enabled and forwarded, and would go to `vcpu`.
    fn is_deliverable_to(&self, irq: &IrqState, vcpu: usize) -> bool {
        self.is_deliverable(irq) && self.target_of(irq, vcpu) == vcpu
    }

    /// Pending, enabled, forwarded by the distributor and not already active or in a list register.
    fn is_deliverable(&self, irq: &IrqState) -> bool {
        irq.owned
            && irq.enabled
            && self.group1_enabled
            && irq.pending()
            && !irq.active
            && !irq.in_list_register
    }

    /// The vCPU that would take `irq` now; `hint` stands for "any vCPU".
    fn target_of(&self, irq: &IrqState, hint: usize) -> usize {
        if irq.active || irq.in_list_register {
            return usize::from(irq.holder_vcpu);
        }
        match irq.route {
            Route::Vcpu(vcpu) => usize::from(vcpu),
            Route::Any if hint < self.vcpus.len() => hint,
            Route::Any => 0,
        }
    }

    /// What raising `intid` in `bank` means for the caller.
    fn delivery(&self, bank: Bank, intid: u32, hint: usize) -> Delivery {
        match self.irq(bank, intid) {
            Some(irq) if self.is_deliverable(irq) => Delivery::Ready {
                vcpu: self.target_of(irq, hint),
            },
            Some(irq) if self.is_pending_behind_its_holder(irq) => Delivery::Ready {
                vcpu: usize::from(irq.holder_vcpu),
            },
            _ => Delivery::Held,
        }
    }

    /// Pending (and enabled, and forwarded) again while a list register of its holder still has
    /// the previous instance, which the guest may have completed since, unseen: a vCPU that spins
    /// never exits by itself. The holder must exit, so its sync takes the old instance back and
    /// the new one can be delivered (by its flush, or, if the interrupt now goes elsewhere, to the
    /// vCPU that sync names).
    fn is_pending_behind_its_holder(&self, irq: &IrqState) -> bool {
        irq.in_list_register && irq.enabled && self.group1_enabled && irq.pending()
    }

    /// The vCPUs to kick after `irq` may have become deliverable.
    fn kick_for(&self, irq: &IrqState) -> VcpuSet {
        let mut kick = VcpuSet::empty();
        if self.is_deliverable(irq) {
            match irq.route {
                Route::Any => kick = VcpuSet::first(self.vcpus.len()),
                Route::Vcpu(_) => kick.insert(self.target_of(irq, 0)),
            }
        } else if self.is_pending_behind_its_holder(irq) {
            kick.insert(usize::from(irq.holder_vcpu));
        }
        kick
    }

    /// The bank an INTID raised for `vcpu` lives in.
    fn bank_of(&self, intid: u32, vcpu: usize) -> Result<Bank, VgicError> {
        if intid >= SPI_BASE_INTID {
            return Ok(Bank::Shared);
        }
        if vcpu >= self.vcpus.len() {
            return Err(VgicError::NoSuchVcpu);
        }
        Ok(Bank::Private(vcpu))
    }

    /// Checks the scan shortcuts against the full state: `watch` covers every private interrupt
    /// that is pending or active, and `list_registers_in_use` mirrors `list_registers`.
    #[cfg(test)]
    pub(crate) fn assert_bookkeeping(&self) {
        for (vcpu, state) in self.vcpus.iter().enumerate() {
            for (intid, irq) in state.private.iter().enumerate() {
                assert!(
                    !irq.may_need_list_register() || state.watch & 1 << intid != 0,
                    "vCPU {vcpu} INTID {intid} pending or active but not watched"
                );
            }
            for (n, slot) in state.list_registers.iter().enumerate() {
                assert_eq!(
                    slot.is_some(),
                    state.list_registers_in_use & 1 << n != 0,
                    "vCPU {vcpu} LR {n}"
                );
            }
        }
    }

    /// The state of an owned interrupt reachable through `bank`.
    fn irq(&self, bank: Bank, intid: u32) -> Option<&IrqState> {
        let irq = match bank {
            Bank::Shared => self.spis.get(intid.checked_sub(SPI_BASE_INTID)? as usize)?,
            Bank::Private(vcpu) => self.vcpus.get(vcpu)?.private.get(intid as usize)?,
        };
        irq.owned.then_some(irq)
    }

    /// The state of an owned interrupt reachable through `bank`, for change.
    fn irq_mut(&mut self, bank: Bank, intid: u32) -> Option<&mut IrqState> {
        let irq = match bank {
            Bank::Shared => self
                .spis
                .get_mut(intid.checked_sub(SPI_BASE_INTID)? as usize)?,
            Bank::Private(vcpu) => {
                let state = self.vcpus.get_mut(vcpu)?;
                let irq = state.private.get_mut(intid as usize)?;
                // Below 32, since the lookup succeeded. The caller may make it pending or active.
                state.watch |= 1 << intid;
                irq
            }
        };
        irq.owned.then_some(irq)
    }
}
