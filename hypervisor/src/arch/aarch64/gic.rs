//! The physical GICv3: distributor and redistributor setup, the EL2 CPU interface (acknowledge,
//! priority drop, deactivate, SGIs) and the ICH_* list registers used to deliver virtual interrupts.
//!
//! Hand-written rather than arm-gic's driver because cellvisor needs EOImode=1 (split priority drop
//! and deactivation, for hardware-linked virtual interrupts), EL2's ICC_SRE_EL2, and redistributor
//! lookup by MPIDR; see docs/architecture.md.

use core::ptr::{read_volatile, write_volatile};

use super::sysreg::{dsb_sy, isb, read_sysreg, write_sysreg};
use crate::dev::gic::{
    PPI_BASE_INTID, REDISTRIBUTOR_STRIDE, SGI_FRAME_OFFSET, SPI_BASE_INTID, SPI_END_INTID,
};

const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0C00;
const GICD_IROUTER: usize = 0x6000;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_CTLR_ARE_NS: u32 = 1 << 4;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;

const GICR_FRAME_SIZE: usize = REDISTRIBUTOR_STRIDE as usize;
const GICR_WAKER: usize = 0x0014;
const GICR_TYPER: usize = 0x0008;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_SGI_BASE: usize = SGI_FRAME_OFFSET as usize;
const GICR_IGROUPR0: usize = GICR_SGI_BASE + 0x0080;
const GICR_ISENABLER0: usize = GICR_SGI_BASE + 0x0100;
const GICR_ICENABLER0: usize = GICR_SGI_BASE + 0x0180;
const GICR_IPRIORITYR: usize = GICR_SGI_BASE + 0x0400;
const GICR_ICACTIVER0: usize = GICR_SGI_BASE + 0x0380;

/// Priority given to every physical interrupt cellvisor enables.
const DEFAULT_PRIORITY: u8 = 0xa0;

/// The distributor and redistributor frames.
#[derive(Clone, Copy, Debug)]
pub struct Gic {
    distributor: usize,
    redistributors: usize,
    redistributor_size: usize,
}

fn read32(address: usize) -> u32 {
    // SAFETY: `Gic` is only constructed over the platform's GIC frames, mapped as device memory.
    unsafe { read_volatile(address as *const u32) }
}

fn write32(address: usize, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u32, value) }
}

fn read64(address: usize) -> u64 {
    // SAFETY: as in `read32`.
    unsafe { read_volatile(address as *const u64) }
}

fn write64(address: usize, value: u64) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u64, value) }
}

impl Gic {
    /// Describes the GIC at these addresses.
    ///
    /// # Safety
    /// The addresses must be the platform GICv3's distributor and redistributor region, mapped as
    /// device memory in EL2's translation, and only cellvisor may program them.
    pub unsafe fn new(distributor: u64, redistributors: u64, redistributor_size: u64) -> Self {
        Self {
            distributor: distributor as usize,
            redistributors: redistributors as usize,
            redistributor_size: redistributor_size as usize,
        }
    }

    fn wait_for_distributor(&self) {
        for _ in 0..1_000_000 {
            if read32(self.distributor + GICD_CTLR) & GICD_CTLR_RWP == 0 {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Number of interrupt IDs the distributor implements (SGIs, PPIs and SPIs).
    pub fn interrupt_lines(&self) -> u32 {
        ((read32(self.distributor + GICD_TYPER) & 0x1f) + 1) * 32
    }

    /// Global setup on the boot CPU: every SPI disabled, group 1, default priority; affinity
    /// routing and group 1 enabled.
    pub fn init_distributor(&self) {
        write32(self.distributor + GICD_CTLR, 0);
        self.wait_for_distributor();
        let lines = self.interrupt_lines() as usize;
        for word in 1..lines / 32 {
            write32(self.distributor + GICD_ICENABLER + word * 4, u32::MAX);
            write32(self.distributor + GICD_IGROUPR + word * 4, u32::MAX);
        }
        for intid in SPI_BASE_INTID as usize..lines {
            // SAFETY: byte access to IPRIORITYR is architecturally permitted.
            unsafe {
                write_volatile(
                    (self.distributor + GICD_IPRIORITYR + intid) as *mut u8,
                    DEFAULT_PRIORITY,
                )
            };
        }
        self.wait_for_distributor();
        write32(
            self.distributor + GICD_CTLR,
            GICD_CTLR_ARE_NS | GICD_CTLR_ENABLE_GRP1,
        );
        self.wait_for_distributor();
    }

    /// Routes SPI `intid` to the CPU with affinity `mpidr` and enables it.
    pub fn route_and_enable_spi(&self, intid: u32, mpidr: u64) {
        if !(SPI_BASE_INTID..self.interrupt_lines()).contains(&intid) {
            return;
        }
        let affinity = (mpidr & 0xff_00ff_ffff) & !(1 << 31);
        write64(
            self.distributor + GICD_IROUTER + intid as usize * 8,
            affinity,
        );
        let word = (intid / 32) as usize;
        write32(
            self.distributor + GICD_ISENABLER + word * 4,
            1 << (intid % 32),
        );
        self.wait_for_distributor();
    }

    fn is_spi(&self, intid: u32) -> bool {
        (SPI_BASE_INTID..self.interrupt_lines().min(SPI_END_INTID)).contains(&intid)
    }

    /// Enables or disables SPI `intid` (ignored for anything that is not an implemented SPI).
    pub fn set_spi_enabled(&self, intid: u32, enabled: bool) {
        if !self.is_spi(intid) {
            return;
        }
        let word = (intid / 32) as usize * 4;
        let register = if enabled {
            GICD_ISENABLER
        } else {
            GICD_ICENABLER
        };
        write32(self.distributor + register + word, 1 << (intid % 32));
        self.wait_for_distributor();
    }

    /// Sets the priority of SPI `intid`, never above cellvisor's own interrupts' priority.
    pub fn set_spi_priority(&self, intid: u32, priority: u8) {
        if !self.is_spi(intid) {
            return;
        }
        // SAFETY: byte access to IPRIORITYR is architecturally permitted.
        unsafe {
            write_volatile(
                (self.distributor + GICD_IPRIORITYR + intid as usize) as *mut u8,
                priority.max(DEFAULT_PRIORITY),
            )
        };
    }

    /// Sets SPI `intid` edge-triggered (`true`) or level-sensitive.
    pub fn set_spi_edge_triggered(&self, intid: u32, edge: bool) {
        if !self.is_spi(intid) {
            return;
        }
        let address = self.distributor + GICD_ICFGR + (intid / 16) as usize * 4;
        let shift = (intid % 16) * 2 + 1;
        let value = read32(address);
        let value = if edge {
            value | (1 << shift)
        } else {
            value & !(1 << shift)
        };
        write32(address, value);
    }

    /// Routes SPI `intid` to the CPU with affinity `mpidr` without changing its enable.
    pub fn route_spi(&self, intid: u32, mpidr: u64) {
        if !self.is_spi(intid) {
            return;
        }
        let affinity = mpidr & 0xff_00ff_ffff;
        write64(
            self.distributor + GICD_IROUTER + intid as usize * 8,
            affinity,
        );
    }

    /// Deactivates `intid`: an SPI in the distributor, a PPI/SGI in the redistributor of `mpidr`.
    pub fn deactivate_on(&self, intid: u32, mpidr: u64) {
        if intid < SPI_BASE_INTID {
            if let Some(frame) = self.redistributor_of(mpidr) {
                write32(frame + GICR_ICACTIVER0, 1 << intid);
            }
        } else if self.is_spi(intid) {
            write32(
                self.distributor + GICD_ICACTIVER + (intid / 32) as usize * 4,
                1 << (intid % 32),
            );
        }
    }

    /// `GICD_TYPER.ITLinesNumber`.
    pub fn it_lines_number(&self) -> u32 {
        read32(self.distributor + GICD_TYPER) & 0x1f
    }

    /// The redistributor frame of the CPU with affinity `mpidr`.
    fn redistributor_of(&self, mpidr: u64) -> Option<usize> {
        // GICR_TYPER.Affinity_Value is Aff3.Aff2.Aff1.Aff0 packed into 32 bits.
        let wanted = (mpidr & 0xff_ffff) | (((mpidr >> 32) & 0xff) << 24);
        let mut frame = self.redistributors;
        let end = self.redistributors + self.redistributor_size;
        while frame + GICR_FRAME_SIZE <= end {
            let typer = read64(frame + GICR_TYPER);
            if (typer >> 32) == wanted {
                return Some(frame);
            }
            if typer & GICR_TYPER_LAST != 0 {
                break;
            }
            frame += GICR_FRAME_SIZE;
        }
        None
    }

    /// Per-CPU setup: wakes this CPU's redistributor, makes SGIs/PPIs group 1 with the default
    /// priority, enables the SGIs and the given PPIs, and turns on the EL2 CPU interface and the
    /// virtual CPU interface. Returns false if this CPU has no redistributor.
    pub fn init_this_cpu(&self, mpidr: u64, ppis: &[u32]) -> bool {
        let Some(frame) = self.redistributor_of(mpidr) else {
            return false;
        };
        let waker = read32(frame + GICR_WAKER);
        write32(frame + GICR_WAKER, waker & !(1 << 1));
        for _ in 0..1_000_000 {
            if read32(frame + GICR_WAKER) & (1 << 2) == 0 {
                break;
            }
            core::hint::spin_loop();
        }
        write32(frame + GICR_ICENABLER0, u32::MAX);
        write32(frame + GICR_IGROUPR0, u32::MAX);
        for intid in 0..SPI_BASE_INTID as usize {
            // SAFETY: byte access to IPRIORITYR is architecturally permitted.
            unsafe {
                write_volatile(
                    (frame + GICR_IPRIORITYR + intid) as *mut u8,
                    DEFAULT_PRIORITY,
                )
            };
        }
        let mut enable = 0xffff_u32; // SGIs
        for &ppi in ppis {
            if (PPI_BASE_INTID..SPI_BASE_INTID).contains(&ppi) {
                enable |= 1 << ppi;
            }
        }
        write32(frame + GICR_ISENABLER0, enable);
        dsb_sy();
        // SAFETY: enabling the system-register interface and group 1 at EL2 only affects how this
        // CPU takes physical interrupts (masked in PSTATE at EL2; routed to EL2 via HCR_EL2.IMO).
        unsafe {
            write_sysreg!("icc_sre_el2", 0xf); // SRE, DFB, DIB, Enable (EL1 may use SRE)
            isb();
            write_sysreg!("icc_pmr_el1", 0xff);
            write_sysreg!("icc_bpr1_el1", 0);
            write_sysreg!("icc_ctlr_el1", 1 << 1); // EOImode: EOIR drops priority, DIR deactivates
            write_sysreg!("icc_igrpen1_el1", 1);
            write_sysreg!("ich_vmcr_el2", 0);
            write_sysreg!("ich_hcr_el2", 1); // En
        }
        isb();
        true
    }
}

/// Acknowledges the highest-priority pending group-1 interrupt; `None` if only a spurious ID.
pub fn acknowledge() -> Option<u32> {
    let intid = (read_sysreg!("icc_iar1_el1") & 0xff_ffff) as u32;
    (intid < SPI_END_INTID).then_some(intid)
}

/// Drops the running priority of `intid` (EOImode=1: does not deactivate).
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: writing an acknowledged INTID to ICC_EOIR1_EL1 only affects the CPU interface state.
    unsafe { write_sysreg!("icc_eoir1_el1", u64::from(intid)) };
    isb();
}

/// Deactivates `intid` (for interrupts cellvisor handled itself).
pub fn deactivate(intid: u32) {
    // SAFETY: deactivating an interrupt this CPU acknowledged.
    unsafe { write_sysreg!("icc_dir_el1", u64::from(intid)) };
    isb();
}

/// Sends SGI `intid` (0..16) to the CPU with affinity `mpidr`.
pub fn send_sgi(mpidr: u64, intid: u32) {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    let range_selector = aff0 / 16;
    let value = (aff3 << 48)
        | (range_selector << 44)
        | (aff2 << 32)
        | (u64::from(intid & 0xf) << 24)
        | (aff1 << 16)
        | (1 << (aff0 % 16));
    dsb_sy();
    // SAFETY: generating an SGI to another physical CPU; cellvisor's SGI handlers tolerate spurious kicks.
    unsafe { write_sysreg!("icc_sgi1r_el1", value) };
    isb();
}

/// The ICH_* virtual CPU interface registers of this CPU.
pub struct ListRegisters;

impl crate::dev::vgic::ListRegisters for ListRegisters {
    fn count(&self) -> usize {
        ListRegisters::count(self)
    }

    fn read(&self, n: usize) -> u64 {
        ListRegisters::read(self, n)
    }

    fn write(&mut self, n: usize, value: u64) {
        ListRegisters::write(self, n, value);
    }

    fn empty_list_registers(&self) -> u16 {
        self.empty_mask() as u16
    }

    fn hcr(&self) -> u64 {
        ListRegisters::hcr(self)
    }

    fn set_hcr(&mut self, value: u64) {
        ListRegisters::set_hcr(self, value);
    }
}

impl ListRegisters {
    /// How many list registers this CPU implements (ICH_VTR_EL2.ListRegs + 1).
    pub fn count(&self) -> usize {
        ((read_sysreg!("ich_vtr_el2") & 0x1f) + 1) as usize
    }

    /// Reads ICH_LR<n>_EL2 (`n` < 16; other values read as 0).
    pub fn read(&self, n: usize) -> u64 {
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

    /// Writes ICH_LR<n>_EL2 (`n` < 16; other values are ignored).
    pub fn write(&mut self, n: usize, value: u64) {
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

    /// ICH_ELRSR_EL2: bit n set = LR n holds no valid interrupt.
    pub fn empty_mask(&self) -> u64 {
        read_sysreg!("ich_elrsr_el2")
    }

    /// ICH_MISR_EL2: the maintenance interrupt status.
    pub fn maintenance_status(&self) -> u64 {
        read_sysreg!("ich_misr_el2")
    }

    /// ICH_HCR_EL2.
    pub fn hcr(&self) -> u64 {
        read_sysreg!("ich_hcr_el2")
    }

    /// Sets ICH_HCR_EL2 (En must stay set).
    pub fn set_hcr(&mut self, value: u64) {
        // SAFETY: ICH_HCR_EL2 controls virtual interrupt delivery to this CPU's guest only.
        unsafe { write_sysreg!("ich_hcr_el2", value | 1) };
    }
}
