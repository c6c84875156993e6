//! This CPU's GIC CPU interface: EL2's own interface (enable, acknowledge, priority drop,
//! deactivate, SGIs) and the list registers used to deliver virtual interrupts, with the lines of
//! the physical interrupts their hardware-linked entries stand for.
//!
//! On a GICv3 these are system registers (`ICC_*`, `ICH_*_EL2`); the distributor and
//! redistributors are MMIO, driven by [`crate::drivers::gicv3`]. On a GICv2 (GIC-400) every one of
//! them is MMIO in [`crate::drivers::gicv2`] (`GICC`, `GICH`, `GICD_SGIR`), chosen once at boot
//! ([`use_gicv2`]); the GICv3 system registers are then never touched (they do not exist). The
//! vGIC speaks the GICv3 list-register layout either way: [`ListRegisters`] translates it for a
//! GICv2 `GICH_LR<n>`.
//!
//! Hand-written rather than arm-gic's driver because cellvisor needs EOImode=1 (split priority drop
//! and deactivation, for hardware-linked virtual interrupts) and EL2's ICC_SRE_EL2; see
//! docs/architecture.md.

use aarch64_cpu::registers::{ICC_CTLR_EL1, ICC_SRE_EL2, ICH_HCR_EL2, MPIDR_EL1};
use tock_registers::LocalRegisterCopy;
use tock_registers::fields::FieldValue;

use spin::Once;

use super::boot::GIC;
use super::fields::{
    ICC_BPR1_EL1, ICC_IAR1_EL1, ICC_IGRPEN1_EL1, ICC_PMR_EL1, icc_ctlr_el1, merge,
};
use super::sysreg::{self, dsb_sy, isb, read_sysreg, write_sysreg};
use super::{timer, traps};
use crate::dev::gic::{SPI_BASE_INTID, SPI_END_INTID};
use crate::dev::vgic::{ICC_SGI1R_EL1, list_register_count_from_vtr};
use crate::drivers::gicv2::{self, CpuFrames, GicV2};
use crate::setup::platform::TimerInterrupts;

/// ICC_SRE_EL2: EL2 uses the system-register interface, IRQ/FIQ bypass off, and EL1 may use the
/// system-register interface too (ENABLE).
const ICC_SRE_EL2_ON: FieldValue<u64, ICC_SRE_EL2::Register> = merge(&[
    ICC_SRE_EL2::SRE::SET,
    ICC_SRE_EL2::DFB::SET,
    ICC_SRE_EL2::DIB::SET,
    ICC_SRE_EL2::ENABLE::SET,
]);
const _: () = assert!(ICC_SRE_EL2_ON.value == 0xf);

/// ICC_PMR_EL1: the lowest priority, so every interrupt is signalled.
const ICC_PMR_ALL: FieldValue<u64, ICC_PMR_EL1::Register> = ICC_PMR_EL1::Priority.val(0xff);
const _: () = assert!(ICC_PMR_ALL.value == 0xff);

/// ICC_BPR1_EL1: every priority bit takes part in preemption.
const ICC_BPR1: FieldValue<u64, ICC_BPR1_EL1::Register> = ICC_BPR1_EL1::BinaryPoint.val(0);
const _: () = assert!(ICC_BPR1.value == 0);

/// ICC_CTLR_EL1: EOImode 1, a write to ICC_EOIR1_EL1 drops the priority and ICC_DIR_EL1
/// deactivates, so a hardware-linked virtual interrupt can be deactivated by the guest.
const ICC_CTLR_EOIMODE_SPLIT: FieldValue<u64, ICC_CTLR_EL1::Register> =
    icc_ctlr_el1::EOImode.val(1);
const _: () = assert!(ICC_CTLR_EOIMODE_SPLIT.value == 0b10);

/// ICC_IGRPEN1_EL1: Group 1 interrupts enabled at this CPU's interface.
const ICC_IGRPEN1_ON: FieldValue<u64, ICC_IGRPEN1_EL1::Register> = ICC_IGRPEN1_EL1::Enable::SET;
const _: () = assert!(ICC_IGRPEN1_ON.value == 1);

/// The platform's GICv2, when it has one instead of a GICv3.
static GICV2: Once<&'static GicV2> = Once::new();

/// Makes this module drive `gic` (the platform's GICv2) on every CPU: called once on the boot CPU,
/// before any CPU interface is used.
pub fn use_gicv2(gic: &'static GicV2) {
    GICV2.call_once(|| gic);
}

/// The GICv2 driver if the platform has one.
#[inline(always)]
fn v2() -> Option<&'static GicV2> {
    GICV2.get().copied()
}

/// Turns on this CPU's EL2 CPU interface (EOImode 1) and its virtual CPU interface; runs after the
/// driver has set up this CPU's redistributor (GICv3) or banked distributor registers and CPU
/// interface (GICv2, whose `init_cpu` does the whole physical side).
pub fn init_cpu_interface() {
    if let Some(gic) = v2() {
        let frames = gic.cpu_frames();
        frames.set_vmcr(0);
        frames.set_hcr(GICH_HCR_EN);
        return;
    }
    dsb_sy();
    // SAFETY: enabling the system-register interface and group 1 at EL2 only affects how this
    // CPU takes physical interrupts (masked in PSTATE at EL2; routed to EL2 via HCR_EL2.IMO).
    unsafe {
        write_sysreg!("icc_sre_el2", ICC_SRE_EL2_ON.value);
        isb();
        write_sysreg!("icc_pmr_el1", ICC_PMR_ALL.value);
        write_sysreg!("icc_bpr1_el1", ICC_BPR1.value);
        write_sysreg!("icc_ctlr_el1", ICC_CTLR_EOIMODE_SPLIT.value);
        write_sysreg!("icc_igrpen1_el1", ICC_IGRPEN1_ON.value);
        write_sysreg!("ich_vmcr_el2", traps::ICH_VMCR_RESET.value);
        write_sysreg!("ich_hcr_el2", traps::ICH_HCR_GUEST.value);
    }
    isb();
}

/// `GICC_IAR.InterruptID`: the INTID in a GICv2 acknowledgement's raw value.
const GICC_IAR_INTID_MASK: u32 = 0x3FF;

/// `GICH_HCR.En`: the GICv2 virtual CPU interface is on.
const GICH_HCR_EN: u32 = 1;
/// The `GICH_HCR` bits the vGIC's `ICH_HCR_EL2` image shares with a GICv2 (En, UIE, LRENPIE and
/// NPIE sit at the same positions; GICv3's trap bits have no GICv2 meaning and are dropped).
const GICH_HCR_SHARED: u64 = 0xF;

/// One GIC version's CPU interface as the hot paths drive it: EL2's own (acknowledge, priority
/// drop, deactivate, SGIs) and the list registers of its virtual interface, in the ICH_LR_EL2
/// layout the vGIC speaks. [`SystemRegisters`] is a GICv3's, [`Gicv2Interface`] a GIC-400's. Each
/// CPU picks one at boot and runs its whole run loop with it ([`super::cpu::Cpu`] is generic over
/// this), so no interrupt, list-register or SGI access asks which GIC the platform has.
pub trait CpuInterface: Copy {
    /// Acknowledges the highest-priority pending interrupt: `(intid, handle)`, where `handle` is
    /// what [`CpuInterface::end_of_interrupt`] and [`CpuInterface::deactivate`] take (the INTID,
    /// plus on a GICv2 the requesting CPU of an SGI, without which its EOI would not match).
    /// `None` if only a spurious ID.
    fn acknowledge(self) -> Option<(u32, u32)>;
    /// Drops the running priority of the interrupt acknowledged with `handle` (EOImode=1: does
    /// not deactivate).
    fn end_of_interrupt(self, handle: u32);
    /// Deactivates the interrupt with `handle`, for interrupts cellvisor handled itself.
    fn deactivate(self, handle: u32);
    /// Sends SGI `intid` (0..16) to the CPU with affinity `mpidr`.
    fn send_sgi(self, mpidr: u64, intid: u32);
    /// How many list registers this CPU implements.
    fn list_register_count(self) -> usize;
    /// Reads list register `n` in the ICH_LR_EL2 layout (`n` < 16; others read as 0).
    fn read_lr(self, n: usize) -> u64;
    /// Writes list register `n` from the ICH_LR_EL2 layout; `source` is an SGI's sending vCPU
    /// (GICv2 reports it to the guest; GICv3 has no field for it).
    fn write_lr(self, n: usize, value: u64, source: u8);
    /// ICH_ELRSR_EL2 / GICH_ELRSR0: bit n set = list register n holds no valid interrupt.
    fn empty_mask(self) -> u64;
    /// ICH_HCR_EL2, or GICH_HCR in its layout.
    fn hcr(self) -> u64;
    /// Sets ICH_HCR_EL2 or GICH_HCR (En is kept set).
    fn set_hcr(self, value: u64);
    /// Saves the guest's state of the virtual CPU interface (its first `count` list registers,
    /// active priorities, VMCR and HCR) into `state`, then empties the list registers.
    fn save_virtual(self, count: usize, state: &mut VirtualInterface);
    /// Loads what [`CpuInterface::save_virtual`] saved.
    fn restore_virtual(self, count: usize, state: &VirtualInterface);
}

/// A descheduled vCPU's virtual CPU interface, in its own GIC's register layout (a GICv2's list
/// registers are kept as `GICH_LR` values, with an SGI's source CPU).
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtualInterface {
    pub list_registers: [u64; 16],
    /// ICH_AP0R<n>_EL2 then ICH_AP1R<n>_EL2 (GICv2: `GICH_APR` in the first).
    pub priorities: [u32; 8],
    pub vmcr: u64,
    pub hcr: u64,
}

/// How many ICH_AP0R<n>/ICH_AP1R<n>_EL2 of each this CPU has: 1, 2 or 4 for 5, 6 or 7 priority
/// bits (ICH_VTR_EL2.PRIbits).
fn active_priority_registers() -> usize {
    match (read_sysreg!("ich_vtr_el2") >> 29) & 0x7 {
        0..=4 => 1,
        5 => 2,
        _ => 4,
    }
}

/// A GICv3's CPU interface: the `ICC_*` and `ICH_*_EL2` system registers.
#[derive(Clone, Copy, Debug)]
pub struct SystemRegisters;

/// A GICv2's (GIC-400's) CPU interface: its `GICC` and `GICH` frames (their addresses held by
/// value, so a hot-path access is one load from the CPU's own structure less) and, for kicks,
/// the driver's `GICD_SGIR`.
#[derive(Clone, Copy)]
pub struct Gicv2Interface {
    frames: CpuFrames,
    gic: &'static GicV2,
}

/// The GICv2 CPU interface, if the platform's GIC is a GICv2 ([`use_gicv2`] was called).
pub fn gicv2_interface() -> Option<Gicv2Interface> {
    v2().map(|gic| Gicv2Interface {
        frames: gic.cpu_frames(),
        gic,
    })
}

impl CpuInterface for SystemRegisters {
    #[inline(always)]
    fn acknowledge(self) -> Option<(u32, u32)> {
        let iar =
            LocalRegisterCopy::<u64, ICC_IAR1_EL1::Register>::new(read_sysreg!("icc_iar1_el1"));
        let intid = iar.read(ICC_IAR1_EL1::INTID) as u32;
        (intid < SPI_END_INTID).then_some((intid, intid))
    }

    #[inline(always)]
    fn end_of_interrupt(self, handle: u32) {
        // SAFETY: writing an acknowledged INTID to ICC_EOIR1_EL1 only affects the CPU interface
        // state.
        unsafe { write_sysreg!("icc_eoir1_el1", u64::from(handle)) };
        isb();
    }

    #[inline(always)]
    fn deactivate(self, handle: u32) {
        // SAFETY: deactivating an interrupt this CPU acknowledged.
        unsafe { write_sysreg!("icc_dir_el1", u64::from(handle)) };
        isb();
    }

    fn send_sgi(self, mpidr: u64, intid: u32) {
        let mpidr = LocalRegisterCopy::<u64, MPIDR_EL1::Register>::new(mpidr);
        let aff0 = mpidr.read(MPIDR_EL1::Aff0);
        let value = ICC_SGI1R_EL1::Aff3.val(mpidr.read(MPIDR_EL1::Aff3))
            + ICC_SGI1R_EL1::Aff2.val(mpidr.read(MPIDR_EL1::Aff2))
            + ICC_SGI1R_EL1::Aff1.val(mpidr.read(MPIDR_EL1::Aff1))
            // TargetList bit n names the CPU with Aff0 = RS * 16 + n.
            + ICC_SGI1R_EL1::RS.val(aff0 / 16)
            + ICC_SGI1R_EL1::TargetList.val(1 << (aff0 % 16))
            + ICC_SGI1R_EL1::INTID.val(u64::from(intid))
            + ICC_SGI1R_EL1::IRM::CLEAR;
        dsb_sy();
        // SAFETY: generating an SGI to another physical CPU; cellvisor's SGI handlers tolerate
        // spurious kicks.
        unsafe { write_sysreg!("icc_sgi1r_el1", value.value) };
        isb();
    }

    fn list_register_count(self) -> usize {
        list_register_count_from_vtr(read_sysreg!("ich_vtr_el2"))
    }

    #[inline(always)]
    fn read_lr(self, n: usize) -> u64 {
        match n {
            0 => read_sysreg!("ich_lr0_el2"),
            1 => read_sysreg!("ich_lr1_el2"),
            2 => read_sysreg!("ich_lr2_el2"),
            3 => read_sysreg!("ich_lr3_el2"),
            4 => read_sysreg!("ich_lr4_el2"),
            5 => read_sysreg!("ich_lr5_el2"),
            6 => read_sysreg!("ich_lr6_el2"),
            7 => read_sysreg!("ich_lr7_el2"),
            8 => read_sysreg!("ich_lr8_el2"),
            9 => read_sysreg!("ich_lr9_el2"),
            10 => read_sysreg!("ich_lr10_el2"),
            11 => read_sysreg!("ich_lr11_el2"),
            12 => read_sysreg!("ich_lr12_el2"),
            13 => read_sysreg!("ich_lr13_el2"),
            14 => read_sysreg!("ich_lr14_el2"),
            15 => read_sysreg!("ich_lr15_el2"),
            _ => 0,
        }
    }

    #[inline(always)]
    fn write_lr(self, n: usize, value: u64, _source: u8) {
        // SAFETY: list registers only affect the virtual interrupts of the guest on this CPU,
        // whose contents the vGIC model decides.
        unsafe {
            match n {
                0 => write_sysreg!("ich_lr0_el2", value),
                1 => write_sysreg!("ich_lr1_el2", value),
                2 => write_sysreg!("ich_lr2_el2", value),
                3 => write_sysreg!("ich_lr3_el2", value),
                4 => write_sysreg!("ich_lr4_el2", value),
                5 => write_sysreg!("ich_lr5_el2", value),
                6 => write_sysreg!("ich_lr6_el2", value),
                7 => write_sysreg!("ich_lr7_el2", value),
                8 => write_sysreg!("ich_lr8_el2", value),
                9 => write_sysreg!("ich_lr9_el2", value),
                10 => write_sysreg!("ich_lr10_el2", value),
                11 => write_sysreg!("ich_lr11_el2", value),
                12 => write_sysreg!("ich_lr12_el2", value),
                13 => write_sysreg!("ich_lr13_el2", value),
                14 => write_sysreg!("ich_lr14_el2", value),
                15 => write_sysreg!("ich_lr15_el2", value),
                _ => {}
            }
        }
    }

    #[inline(always)]
    fn empty_mask(self) -> u64 {
        read_sysreg!("ich_elrsr_el2")
    }

    #[inline(always)]
    fn hcr(self) -> u64 {
        read_sysreg!("ich_hcr_el2")
    }

    #[inline(always)]
    fn set_hcr(self, value: u64) {
        // SAFETY: ICH_HCR_EL2 controls virtual interrupt delivery to this CPU's guest only.
        unsafe { write_sysreg!("ich_hcr_el2", value | ICH_HCR_EL2::En::SET.value) };
    }

    fn save_virtual(self, count: usize, state: &mut VirtualInterface) {
        for n in 0..count.min(16) {
            state.list_registers[n] = self.read_lr(n);
            self.write_lr(n, 0, 0);
        }
        let registers = active_priority_registers();
        let p = &mut state.priorities;
        p[0] = read_sysreg!("ich_ap0r0_el2") as u32;
        p[4] = read_sysreg!("ich_ap1r0_el2") as u32;
        if registers >= 2 {
            p[1] = read_sysreg!("ich_ap0r1_el2") as u32;
            p[5] = read_sysreg!("ich_ap1r1_el2") as u32;
        }
        if registers >= 4 {
            p[2] = read_sysreg!("ich_ap0r2_el2") as u32;
            p[6] = read_sysreg!("ich_ap1r2_el2") as u32;
            p[3] = read_sysreg!("ich_ap0r3_el2") as u32;
            p[7] = read_sysreg!("ich_ap1r3_el2") as u32;
        }
        state.vmcr = read_sysreg!("ich_vmcr_el2");
        state.hcr = read_sysreg!("ich_hcr_el2");
    }

    fn restore_virtual(self, count: usize, state: &VirtualInterface) {
        for n in 0..count.min(16) {
            self.write_lr(n, state.list_registers[n], 0);
        }
        let registers = active_priority_registers();
        let p = &state.priorities;
        // SAFETY: the active priorities, VMCR and HCR are the guest's, loaded back as they were;
        // each register written exists for this CPU's priority bits.
        unsafe {
            write_sysreg!("ich_ap0r0_el2", u64::from(p[0]));
            write_sysreg!("ich_ap1r0_el2", u64::from(p[4]));
            if registers >= 2 {
                write_sysreg!("ich_ap0r1_el2", u64::from(p[1]));
                write_sysreg!("ich_ap1r1_el2", u64::from(p[5]));
            }
            if registers >= 4 {
                write_sysreg!("ich_ap0r2_el2", u64::from(p[2]));
                write_sysreg!("ich_ap1r2_el2", u64::from(p[6]));
                write_sysreg!("ich_ap0r3_el2", u64::from(p[3]));
                write_sysreg!("ich_ap1r3_el2", u64::from(p[7]));
            }
            write_sysreg!("ich_vmcr_el2", state.vmcr);
        }
        self.set_hcr(state.hcr);
    }
}

impl CpuInterface for Gicv2Interface {
    #[inline(always)]
    fn acknowledge(self) -> Option<(u32, u32)> {
        let raw = self.frames.acknowledge()?;
        Some((raw & GICC_IAR_INTID_MASK, raw))
    }

    #[inline(always)]
    fn end_of_interrupt(self, handle: u32) {
        self.frames.end_of_interrupt(handle);
    }

    #[inline(always)]
    fn deactivate(self, handle: u32) {
        self.frames.deactivate(handle);
    }

    #[inline(always)]
    fn send_sgi(self, mpidr: u64, intid: u32) {
        dsb_sy();
        self.gic.send_sgi(mpidr, intid);
    }

    #[inline(always)]
    fn list_register_count(self) -> usize {
        self.frames.list_register_count()
    }

    #[inline(always)]
    fn read_lr(self, n: usize) -> u64 {
        gicv2::lr_to_ich(self.frames.read_lr(n))
    }

    #[inline(always)]
    fn write_lr(self, n: usize, value: u64, source: u8) {
        self.frames.write_lr(n, gicv2::lr_from_ich(value, source));
    }

    #[inline(always)]
    fn empty_mask(self) -> u64 {
        u64::from(self.frames.empty_list_registers())
    }

    #[inline(always)]
    fn hcr(self) -> u64 {
        u64::from(self.frames.hcr())
    }

    #[inline(always)]
    fn set_hcr(self, value: u64) {
        self.frames
            .set_hcr((value & GICH_HCR_SHARED) as u32 | GICH_HCR_EN);
    }

    fn save_virtual(self, count: usize, state: &mut VirtualInterface) {
        for n in 0..count.min(16) {
            state.list_registers[n] = u64::from(self.frames.read_lr(n));
            self.frames.write_lr(n, 0);
        }
        state.priorities[0] = self.frames.apr();
        state.vmcr = u64::from(self.frames.vmcr());
        state.hcr = u64::from(self.frames.hcr());
    }

    fn restore_virtual(self, count: usize, state: &VirtualInterface) {
        for n in 0..count.min(16) {
            self.frames.write_lr(n, state.list_registers[n] as u32);
        }
        self.frames.set_apr(state.priorities[0]);
        self.frames.set_vmcr(state.vmcr as u32);
        self.frames.set_hcr(state.hcr as u32 | GICH_HCR_EN);
    }
}

/// How many list registers this CPU implements (ICH_VTR_EL2.ListRegs or GICH_VTR.ListRegs, + 1).
pub fn list_register_count() -> usize {
    match gicv2_interface() {
        Some(interface) => interface.list_register_count(),
        None => SystemRegisters.list_register_count(),
    }
}

/// The virtual CPU interface of this CPU through `I`, and the lines of the physical interrupts
/// its hardware-linked entries stand for.
pub struct ListRegisters<I> {
    interface: I,
    /// How many list registers the interface implements, read once.
    count: usize,
    /// The PPI of the guest's EL1 virtual timer.
    virtual_timer: u32,
    /// The PPI of the guest's EL1 physical timer.
    physical_timer: u32,
}

impl<I: CpuInterface> crate::dev::vgic::ListRegisters for ListRegisters<I> {
    #[inline(always)]
    fn count(&self) -> usize {
        self.count
    }

    #[inline(always)]
    fn read(&self, n: usize) -> u64 {
        self.interface.read_lr(n)
    }

    #[inline(always)]
    fn write(&mut self, n: usize, value: u64) {
        self.interface.write_lr(n, value, 0);
    }

    #[inline(always)]
    fn write_sgi(&mut self, n: usize, value: u64, source: u8) {
        self.interface.write_lr(n, value, source);
    }

    #[inline(always)]
    fn empty_list_registers(&self) -> u16 {
        self.interface.empty_mask() as u16
    }

    #[inline(always)]
    fn hcr(&self) -> u64 {
        self.interface.hcr()
    }

    #[inline(always)]
    fn set_hcr(&mut self, value: u64) {
        self.interface.set_hcr(value);
    }

    fn line_asserted(&mut self, physical_intid: u32) -> bool {
        ListRegisters::line_asserted(self, physical_intid)
    }

    fn deactivate_physical(&mut self, physical_intid: u32) {
        if physical_intid < SPI_BASE_INTID {
            self.interface.deactivate(physical_intid);
        } else if let Some(gic) = GIC.get() {
            // Through the distributor: right whichever CPU acknowledged the SPI.
            gic.deactivate_on(physical_intid, sysreg::mpidr());
        }
    }
}

impl<I: CpuInterface> ListRegisters<I> {
    /// This CPU's vCPU interface through `interface`, with the guest timers' PPIs as the platform
    /// DT gives them. The list registers are counted through the platform's GIC, whichever
    /// interface type this is built with.
    pub fn new(interface: I, timers: &TimerInterrupts) -> Self {
        Self {
            interface,
            count: list_register_count(),
            virtual_timer: timers.virtual_timer,
            physical_timer: timers.nonsecure_physical,
        }
    }

    /// The CPU interface these list registers belong to.
    #[inline(always)]
    pub fn interface(&self) -> I {
        self.interface
    }

    /// The PPIs of the guest's EL1 virtual and physical timers.
    pub fn timer_ppis(&self) -> (u32, u32) {
        (self.virtual_timer, self.physical_timer)
    }

    /// Whether the level-sensitive physical interrupt `intid` (a PPI of this CPU, or an SPI) is
    /// asserted by its source. The guest's timers are read where they are, in their control
    /// registers (exact, and no MMIO: these are sampled on guest exits); anything else through
    /// its pending bit at the physical GIC, which for a level-sensitive interrupt is its line.
    pub fn line_asserted(&self, intid: u32) -> bool {
        if intid == self.virtual_timer {
            timer::virtual_timer_asserted()
        } else if intid == self.physical_timer {
            timer::physical_timer_asserted()
        } else {
            GIC.get()
                .is_some_and(|gic| gic.is_pending(intid, sysreg::mpidr()))
        }
    }
}

/// Puts the virtual CPU interface's guest-programmed state back to reset for a starting vCPU:
/// ICH_VMCR_EL2 or GICH_VMCR (groups off, every priority masked) and the active priorities
/// (every ICH_AP0R<n>/ICH_AP1R<n>_EL2, or GICH_APR), so nothing of a previous instance stays.
pub fn reset_virtual_interface() {
    if let Some(gic) = v2() {
        let frames = gic.cpu_frames();
        frames.set_vmcr(0);
        frames.set_apr(0);
        return;
    }
    // SAFETY: ICH_VMCR_EL2 is the guest's virtual CPU interface state on this CPU.
    unsafe { write_sysreg!("ich_vmcr_el2", traps::ICH_VMCR_RESET.value) };
    // SAFETY: the active priorities are the guest's, reset before it starts.
    unsafe { super::reset::gic_priorities() };
}
