//! The physical GICv2 (GIC-400) over MMIO: distributor, CPU interface (`GICC`) and virtual
//! interface control (`GICH`), plus conversion between the vGIC's `ICH_LR<n>_EL2` images and
//! `GICH_LR<n>` values.
//!
//! Unlike the GICv3, every per-CPU register of a GICv2 is banked by the *accessing* CPU at one
//! address: `GICD_ISENABLER0` and its SGI/PPI siblings, `GICD_ITARGETSR0..7`, the whole `GICC` and
//! `GICH` frames. So per-CPU setup runs on that CPU, and a CPU's private interrupts can be reached
//! only from that CPU. CPUs are named to the distributor by a one-hot target mask, which each CPU
//! reads from its banked `GICD_ITARGETSR0` in [`InterruptController::init_cpu`] and this driver
//! remembers by CPU index (MPIDR `Aff0`).
//!
//! The driver touches no `GICD_IGROUPR`: when cellvisor runs non-secure on a GIC with the Security
//! Extensions, firmware has made the non-secure interrupts Group 1 and the non-secure view reaches
//! only those; on a GIC without them (QEMU's default) every interrupt stays Group 0. In both cases
//! bit 0 of `GICD_CTLR` and `GICC_CTLR` is the enable of the one group the view owns.

use core::sync::atomic::{AtomicU8, Ordering};

use tock_registers::fields::FieldValue;
use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::InterruptController;
use super::gic_mmio::{read8, read32, write8, write32};
use super::gic_spi::{self, DEFAULT_PRIORITY};
use crate::dev::gic::SPI_END_INTID;
use crate::dev::vgic::ICH_LR_EL2;

const GICD_CTLR_OFFSET: usize = 0x0000;
const GICD_TYPER_OFFSET: usize = 0x0004;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ISPENDR: usize = 0x0200;
const GICD_ISACTIVER: usize = 0x0300;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ITARGETSR: usize = 0x0800;
const GICD_SGIR_OFFSET: usize = 0x0F00;

const GICC_CTLR_OFFSET: usize = 0x0000;
const GICC_PMR: usize = 0x0004;
const GICC_BPR: usize = 0x0008;
const GICC_IAR_OFFSET: usize = 0x000C;
const GICC_EOIR: usize = 0x0010;
const GICC_DIR: usize = 0x1000;

const GICH_HCR_OFFSET: usize = 0x0000;
const GICH_VTR_OFFSET: usize = 0x0004;
const GICH_VMCR: usize = 0x0008;
const GICH_MISR: usize = 0x0010;
const GICH_ELRSR0: usize = 0x0030;
const GICH_APR: usize = 0x00F0;
const GICH_LR_OFFSET: usize = 0x0100;

/// The architectural maximum of list registers (`GICH_VTR.ListRegs` is 6 bits): `GICH_LR0..63`
/// fill 0x100..0x200 of the frame.
const LIST_REGISTER_LIMIT: usize = 64;

/// CPU interfaces a GICv2 can have, hence target-mask bits and [`GicV2`]'s CPU indices.
const CPU_LIMIT: usize = 8;

/// Bits 15:0 of `GICD_ISENABLER0`: the SGIs.
const SGI_ENABLE_BITS: u32 = 0xffff;

register_bitfields![u32,
    /// `GICD_CTLR`.
    GICD_CTLR [
        /// The enable of the group this view owns: Group 1 in the non-secure view of a GIC with
        /// the Security Extensions, Group 0 (`EnableGrp0`) in the secure view or without them.
        Enable OFFSET(0) NUMBITS(1) []
    ],

    /// `GICD_TYPER`.
    GICD_TYPER [
        /// The distributor handles INTIDs below 32 × (this + 1).
        ITLinesNumber OFFSET(0) NUMBITS(5) [],
        /// Number of CPU interfaces minus one.
        CPUNumber OFFSET(5) NUMBITS(3) []
    ],

    /// `GICD_SGIR`: software-generated interrupt request.
    GICD_SGIR [
        /// The SGI's INTID.
        SGIINTID OFFSET(0) NUMBITS(4) [],
        /// The CPU interfaces to signal, one bit each (when `TargetListFilter` is 0).
        CPUTargetList OFFSET(16) NUMBITS(8) [],
        /// 0: the CPUs in `CPUTargetList`; 1: every other CPU; 2: the requesting CPU.
        TargetListFilter OFFSET(24) NUMBITS(2) [
            TargetList = 0b00,
            AllOthers = 0b01,
            Requester = 0b10
        ]
    ],

    /// `GICC_CTLR`, as far as cellvisor writes it.
    GICC_CTLR [
        /// Signalling of the view's group: `EnableGrp1` in the non-secure view of a GIC with the
        /// Security Extensions, `EnableGrp0` in the secure view or without them.
        Enable OFFSET(0) NUMBITS(1) [],
        /// Split EOI: `GICC_EOIR` only drops priority, `GICC_DIR` deactivates. `EOImodeNS` in the
        /// non-secure view, `EOImodeS` (which governs the accessing, secure or only, world) in
        /// the secure view or without the Security Extensions.
        EOImode OFFSET(9) NUMBITS(1) []
    ],

    /// `GICC_IAR`, `GICC_EOIR` and `GICC_DIR`.
    GICC_IAR [
        /// The interrupt's INTID; 1020-1023 are special (1023: nothing pending).
        InterruptID OFFSET(0) NUMBITS(10) [],
        /// For an SGI, the CPU interface that requested it.
        CPUID OFFSET(10) NUMBITS(3) []
    ],

    /// `GICH_VTR`: what the virtual CPU interface implements.
    GICH_VTR [
        /// Number of list registers minus one.
        ListRegs OFFSET(0) NUMBITS(6) [],
        /// Number of preemption bits minus one.
        PREbits OFFSET(26) NUMBITS(3) [],
        /// Number of priority bits minus one.
        PRIbits OFFSET(29) NUMBITS(3) []
    ]
];

register_bitfields![u32,
    /// `GICH_HCR`: the virtual CPU interface's control.
    pub GICH_HCR [
        /// Global enable of the virtual CPU interface.
        En OFFSET(0) NUMBITS(1) [],
        /// Underflow interrupt: maintenance when at most one list register holds a valid entry.
        UIE OFFSET(1) NUMBITS(1) [],
        /// Maintenance when an EOI finds no matching list register.
        LRENPIE OFFSET(2) NUMBITS(1) [],
        /// No-pending interrupt: maintenance when no list register holds a pending entry.
        NPIE OFFSET(3) NUMBITS(1) [],
        /// Maintenance while the guest has Group 0 enabled.
        VGrp0EIE OFFSET(4) NUMBITS(1) [],
        /// Maintenance while the guest has Group 0 disabled.
        VGrp0DIE OFFSET(5) NUMBITS(1) [],
        /// Maintenance while the guest has Group 1 enabled.
        VGrp1EIE OFFSET(6) NUMBITS(1) [],
        /// Maintenance while the guest has Group 1 disabled.
        VGrp1DIE OFFSET(7) NUMBITS(1) [],
        /// Count of EOIs that found no list register.
        EOICount OFFSET(27) NUMBITS(5) []
    ],

    /// `GICH_LR<n>`: one virtual interrupt handed to the virtual CPU interface.
    pub GICH_LR [
        /// The virtual INTID the guest acknowledges.
        VirtualID OFFSET(0) NUMBITS(10) [],
        /// The physical INTID deactivated with the virtual one (only when `HW` is set).
        PhysicalID OFFSET(10) NUMBITS(10) [],
        /// For a virtual SGI (only when `HW` is clear), the requesting CPU the guest reads in
        /// `GICV_IAR`; shares bits 12:10 with `PhysicalID`.
        CPUID OFFSET(10) NUMBITS(3) [],
        /// Request a maintenance interrupt when the guest EOIs this entry (only when `HW` is
        /// clear; shares bit 19 with `PhysicalID`).
        EOI OFFSET(19) NUMBITS(1) [],
        /// The interrupt's priority, bits 7:3 of the 8-bit value.
        Priority OFFSET(23) NUMBITS(5) [],
        /// The entry's state.
        State OFFSET(28) NUMBITS(2) [
            Invalid = 0b00,
            Pending = 0b01,
            Active = 0b10,
            PendingActive = 0b11
        ],
        /// 1: Group 1; 0: Group 0.
        Grp1 OFFSET(30) NUMBITS(1) [],
        /// Hardware-linked: the guest's deactivation also deactivates `PhysicalID`.
        HW OFFSET(31) NUMBITS(1) []
    ]
];

register_bitfields![u64,
    /// The affinity fields of `MPIDR_EL1`.
    MPIDR [
        Aff0 OFFSET(0) NUMBITS(8) [],
        Aff1 OFFSET(8) NUMBITS(8) [],
        Aff2 OFFSET(16) NUMBITS(8) [],
        Aff3 OFFSET(32) NUMBITS(8) []
    ]
];

/// The CPU index cellvisor's GICv2 driver keeps a CPU's target mask under: `Aff0` of `mpidr`, for
/// a CPU with `Aff0` below 8 and every higher affinity level 0 (GICv2 serves at most 8 CPUs; a
/// multi-cluster GICv2 platform would need a platform-given mapping instead). Other MPIDR bits
/// (U, MT, the RES1 bit 31) are ignored.
fn cpu_index(mpidr: u64) -> Option<usize> {
    let mpidr = LocalRegisterCopy::<u64, MPIDR::Register>::new(mpidr);
    let higher = mpidr.read(MPIDR::Aff1) | mpidr.read(MPIDR::Aff2) | mpidr.read(MPIDR::Aff3);
    let aff0 = mpidr.read(MPIDR::Aff0) as usize;
    (higher == 0 && aff0 < CPU_LIMIT).then_some(aff0)
}

/// The distributor, CPU interface and virtual interface control frames of the platform's GICv2,
/// and the target mask each CPU read from its banked `GICD_ITARGETSR0` (0: not yet known).
#[derive(Debug)]
pub struct GicV2 {
    distributor: usize,
    frames: CpuFrames,
    cpu_targets: [AtomicU8; CPU_LIMIT],
}

/// The CPU interface (`GICC`) and virtual interface control (`GICH`) frames, banked per CPU at the
/// same addresses: everything EL2's hot paths touch on the calling CPU (acknowledge, EOI, list
/// registers), as a copyable pair of addresses a CPU keeps at hand ([`GicV2::cpu_frames`]).
#[derive(Clone, Copy, Debug)]
pub struct CpuFrames {
    cpu_interface: usize,
    hypervisor_interface: usize,
}

impl GicV2 {
    /// Describes the GIC at these addresses; no CPU's target mask is known yet.
    ///
    /// # Safety
    /// The addresses must be the platform GICv2's distributor (4 KiB), CPU interface (8 KiB) and
    /// virtual interface control (4 KiB) frames, mapped as device memory in EL2's translation (or
    /// plain memory standing in for them), and only cellvisor may program them.
    pub unsafe fn new(distributor: u64, cpu_interface: u64, hypervisor_interface: u64) -> Self {
        Self {
            distributor: distributor as usize,
            frames: CpuFrames {
                cpu_interface: cpu_interface as usize,
                hypervisor_interface: hypervisor_interface as usize,
            },
            cpu_targets: [const { AtomicU8::new(0) }; CPU_LIMIT],
        }
    }

    fn typer(&self) -> LocalRegisterCopy<u32, GICD_TYPER::Register> {
        LocalRegisterCopy::new(read32(self.distributor + GICD_TYPER_OFFSET))
    }

    /// Number of interrupt IDs the distributor implements (SGIs, PPIs and SPIs).
    fn interrupt_lines(&self) -> u32 {
        (self.it_lines_number() + 1) * 32
    }

    fn is_spi(&self, intid: u32) -> bool {
        (32..self.interrupt_lines().min(SPI_END_INTID)).contains(&intid)
    }

    /// The calling CPU's one-hot target mask: byte 0 of its banked `GICD_ITARGETSR0`. A GIC with
    /// one CPU interface may make the ITARGETSRs RAZ/WI; its only CPU is then bit 0.
    fn calling_cpu_mask(&self) -> u8 {
        let mask = read8(self.distributor + GICD_ITARGETSR);
        if mask == 0 && self.typer().read(GICD_TYPER::CPUNumber) == 0 {
            1
        } else {
            mask
        }
    }

    /// The target mask the CPU with affinity `mpidr` recorded in `init_cpu`, if it did.
    fn target_mask(&self, mpidr: u64) -> Option<u8> {
        let mask = self
            .cpu_targets
            .get(cpu_index(mpidr)?)?
            .load(Ordering::Acquire);
        (mask != 0).then_some(mask)
    }

    /// Whether the CPU with affinity `mpidr` is the calling one, so its banked registers are the
    /// ones this CPU reaches.
    fn is_calling_cpu(&self, mpidr: u64) -> bool {
        self.target_mask(mpidr) == Some(self.calling_cpu_mask())
    }

    /// Sends SGI `intid` to the CPU with affinity `cpu_mpidr` (`GICD_SGIR`, `TargetListFilter`
    /// 0, that CPU's target mask). Ignored for an INTID that is not an SGI or a CPU that has not
    /// run `init_cpu`.
    pub fn send_sgi(&self, cpu_mpidr: u64, intid: u32) {
        if intid >= 16 {
            return;
        }
        let Some(mask) = self.target_mask(cpu_mpidr) else {
            return;
        };
        let sgir = GICD_SGIR::SGIINTID.val(intid)
            + GICD_SGIR::CPUTargetList.val(mask.into())
            + GICD_SGIR::TargetListFilter::TargetList;
        write32(self.distributor + GICD_SGIR_OFFSET, sgir.value);
    }

    /// The calling CPU's `GICC` and `GICH` frames.
    pub fn cpu_frames(&self) -> CpuFrames {
        self.frames
    }
}

impl CpuFrames {
    /// Acknowledges the highest-priority pending interrupt of the calling CPU (`GICC_IAR`): the
    /// raw value (bits 12:0: INTID in 9:0, for an SGI the requesting CPU in 12:10) to pass back to
    /// [`Self::end_of_interrupt`] and [`Self::deactivate`]; its INTID is `raw & 0x3ff`. `None` for
    /// the special INTIDs 1020-1023 (1023: nothing pending), which need no EOI.
    #[inline(always)]
    pub fn acknowledge(&self) -> Option<u32> {
        let iar = LocalRegisterCopy::<u32, GICC_IAR::Register>::new(read32(
            self.cpu_interface + GICC_IAR_OFFSET,
        ));
        if iar.read(GICC_IAR::InterruptID) >= SPI_END_INTID {
            return None;
        }
        // InterruptID and CPUID are the low 13 bits: keep them, drop what is reserved above.
        Some(
            iar.get()
                & (GICC_IAR::InterruptID.mask | GICC_IAR::CPUID.mask << GICC_IAR::CPUID.shift),
        )
    }

    /// Drops the running priority of an interrupt [`Self::acknowledge`] returned as `raw`
    /// (`GICC_EOIR`); with `EOImode` set this does not deactivate it.
    #[inline(always)]
    pub fn end_of_interrupt(&self, raw: u32) {
        write32(self.cpu_interface + GICC_EOIR, raw);
    }

    /// Deactivates an interrupt [`Self::acknowledge`] returned as `raw` (`GICC_DIR`), on the
    /// calling CPU.
    #[inline(always)]
    pub fn deactivate(&self, raw: u32) {
        write32(self.cpu_interface + GICC_DIR, raw);
    }

    /// Number of list registers of the virtual CPU interface (`GICH_VTR.ListRegs` + 1).
    pub fn list_register_count(&self) -> usize {
        let vtr = LocalRegisterCopy::<u32, GICH_VTR::Register>::new(read32(
            self.hypervisor_interface + GICH_VTR_OFFSET,
        ));
        vtr.read(GICH_VTR::ListRegs) as usize + 1
    }

    /// `GICH_LR<n>` of the calling CPU; 0 (an invalid entry) for `n` of 64 or more. Meaningful
    /// only for `n` below [`Self::list_register_count`].
    #[inline(always)]
    pub fn read_lr(&self, n: usize) -> u32 {
        if n >= LIST_REGISTER_LIMIT {
            return 0;
        }
        read32(self.hypervisor_interface + GICH_LR_OFFSET + n * 4)
    }

    /// Writes `GICH_LR<n>` of the calling CPU; ignored for `n` of 64 or more. `n` must be below
    /// [`Self::list_register_count`] for the entry to exist.
    #[inline(always)]
    pub fn write_lr(&self, n: usize, value: u32) {
        if n >= LIST_REGISTER_LIMIT {
            return;
        }
        write32(self.hypervisor_interface + GICH_LR_OFFSET + n * 4, value);
    }

    /// `GICH_ELRSR0` of the calling CPU: bit `n` set when `GICH_LR<n>` holds no interrupt (list
    /// registers 0-31; a GIC-400 has 4).
    #[inline(always)]
    pub fn empty_list_registers(&self) -> u32 {
        read32(self.hypervisor_interface + GICH_ELRSR0)
    }

    /// `GICH_HCR` of the calling CPU (layout [`GICH_HCR`]).
    #[inline(always)]
    pub fn hcr(&self) -> u32 {
        read32(self.hypervisor_interface + GICH_HCR_OFFSET)
    }

    /// Writes `GICH_HCR` of the calling CPU (layout [`GICH_HCR`]).
    #[inline(always)]
    pub fn set_hcr(&self, value: u32) {
        write32(self.hypervisor_interface + GICH_HCR_OFFSET, value);
    }

    /// `GICH_VMCR` of the calling CPU: the guest's view of `GICV_CTLR`, `GICV_PMR` and `GICV_BPR`.
    pub fn vmcr(&self) -> u32 {
        read32(self.hypervisor_interface + GICH_VMCR)
    }

    /// Writes `GICH_VMCR` of the calling CPU.
    pub fn set_vmcr(&self, value: u32) {
        write32(self.hypervisor_interface + GICH_VMCR, value);
    }

    /// `GICH_MISR` of the calling CPU: which maintenance interrupt conditions hold.
    pub fn misr(&self) -> u32 {
        read32(self.hypervisor_interface + GICH_MISR)
    }

    /// `GICH_APR` of the calling CPU: the guest's active priorities.
    pub fn apr(&self) -> u32 {
        read32(self.hypervisor_interface + GICH_APR)
    }

    /// Writes `GICH_APR` of the calling CPU.
    pub fn set_apr(&self, value: u32) {
        write32(self.hypervisor_interface + GICH_APR, value);
    }
}

impl InterruptController for GicV2 {
    /// Global setup on the boot CPU: distributor off, every SPI disabled with the default priority
    /// and no target, then the distributor on. `GICD_IGROUPR` is left as firmware set it (see the
    /// module documentation).
    fn init(&self) {
        write32(self.distributor + GICD_CTLR_OFFSET, 0);
        let lines = self.interrupt_lines().min(SPI_END_INTID) as usize;
        for word in 1..lines.div_ceil(32) {
            write32(self.distributor + GICD_ICENABLER + word * 4, u32::MAX);
        }
        for intid in 32..lines {
            write8(self.distributor + GICD_IPRIORITYR + intid, DEFAULT_PRIORITY);
            write8(self.distributor + GICD_ITARGETSR + intid, 0);
        }
        // Bit 0 only: bit 1 (`EnableGrp1` of the secure view) is reserved in the non-secure view,
        // and without the Security Extensions no interrupt is in Group 1.
        write32(
            self.distributor + GICD_CTLR_OFFSET,
            GICD_CTLR::Enable::SET.value,
        );
    }

    /// Per-CPU setup; must run on the CPU with affinity `mpidr`, since GICv2 banks the registers
    /// by the accessing CPU. Records that CPU's target mask (its banked `GICD_ITARGETSR0` byte 0)
    /// under index `Aff0`, gives its SGIs and PPIs the default priority, enables the SGIs and
    /// `ppis`, and turns on its CPU interface (priority mask open, split EOI) and virtual CPU
    /// interface (`GICH_HCR.En`, `GICH_VMCR` 0). False, with nothing written, for an MPIDR with
    /// no index (see `cpu_index`) or when the target mask reads 0.
    fn init_cpu(&self, mpidr: u64, ppis: &[u32]) -> bool {
        let Some(slot) = cpu_index(mpidr).and_then(|index| self.cpu_targets.get(index)) else {
            return false;
        };
        let mask = self.calling_cpu_mask();
        if mask == 0 {
            return false;
        }
        slot.store(mask, Ordering::Release);
        write32(self.distributor + GICD_ICENABLER, u32::MAX);
        for intid in 0..32 {
            write8(self.distributor + GICD_IPRIORITYR + intid, DEFAULT_PRIORITY);
        }
        let mut enable = SGI_ENABLE_BITS;
        for &ppi in ppis {
            if (16..32).contains(&ppi) {
                enable |= 1 << ppi;
            }
        }
        write32(self.distributor + GICD_ISENABLER, enable);
        write32(self.frames.cpu_interface + GICC_PMR, 0xff);
        write32(self.frames.cpu_interface + GICC_BPR, 0);
        // 0x201 means the same in both views: the view's group enabled (bit 0: EnableGrp1
        // non-secure, EnableGrp0 secure or without the Security Extensions) and split EOI (bit 9:
        // EOImodeNS, or EOImodeS for the secure/only world). Bit 1 is left clear: reserved in the
        // non-secure view, and there is no Group 1 interrupt without the Security Extensions.
        let ctlr = GICC_CTLR::Enable::SET + GICC_CTLR::EOImode::SET;
        write32(self.frames.cpu_interface + GICC_CTLR_OFFSET, ctlr.value);
        write32(self.frames.hypervisor_interface + GICH_VMCR, 0);
        write32(
            self.frames.hypervisor_interface + GICH_HCR_OFFSET,
            GICH_HCR::En::SET.value,
        );
        true
    }

    fn it_lines_number(&self) -> u32 {
        self.typer().read(GICD_TYPER::ITLinesNumber)
    }

    fn set_spi_enabled(&self, intid: u32, enabled: bool) {
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
    }

    fn set_spi_priority(&self, intid: u32, priority: u8) {
        if self.is_spi(intid) {
            gic_spi::set_priority(self.distributor, intid, priority);
        }
    }

    fn set_spi_edge_triggered(&self, intid: u32, edge: bool) {
        if self.is_spi(intid) {
            gic_spi::set_edge_triggered(self.distributor, intid, edge);
        }
    }

    /// Routes SPI `intid` to the CPU with affinity `mpidr` by writing that CPU's target mask into
    /// the SPI's `GICD_ITARGETSR` byte. Ignored for a CPU that has not run `init_cpu`.
    fn route_spi(&self, intid: u32, mpidr: u64) {
        if !self.is_spi(intid) {
            return;
        }
        let Some(mask) = self.target_mask(mpidr) else {
            return;
        };
        write8(self.distributor + GICD_ITARGETSR + intid as usize, mask);
    }

    /// Deactivates `intid`: an SPI for the whole machine (`GICD_ICACTIVER`). An SGI or PPI is
    /// deactivated through the banked `GICD_ICACTIVER0`, which reaches only the calling CPU's
    /// private interrupts: GICv2 gives no CPU access to another's. So it is done only when `mpidr`
    /// is the calling CPU (callers deactivate private interrupts from their owning CPU) and
    /// ignored otherwise.
    fn deactivate_on(&self, intid: u32, mpidr: u64) {
        if intid < 32 {
            if self.is_calling_cpu(mpidr) {
                write32(self.distributor + GICD_ICACTIVER, 1 << intid);
            }
        } else if self.is_spi(intid) {
            write32(
                self.distributor + GICD_ICACTIVER + (intid / 32) as usize * 4,
                1 << (intid % 32),
            );
        }
    }

    /// Whether `intid` is pending (`GICD_ISPENDR`). For an SGI or PPI that is the banked
    /// `GICD_ISPENDR0` of the calling CPU, so false unless `mpidr` is the calling CPU (GICv2 cannot
    /// read another CPU's). For a level-sensitive interrupt that is its line, also while it is
    /// active. False for an INTID the controller does not implement.
    fn is_pending(&self, intid: u32, mpidr: u64) -> bool {
        let bits = if intid < 32 {
            if self.is_calling_cpu(mpidr) {
                read32(self.distributor + GICD_ISPENDR)
            } else {
                0
            }
        } else if self.is_spi(intid) {
            read32(self.distributor + GICD_ISPENDR + (intid / 32) as usize * 4)
        } else {
            0
        };
        bits & 1 << (intid % 32) != 0
    }

    fn private_active(&self, mpidr: u64) -> u32 {
        if self.is_calling_cpu(mpidr) {
            read32(self.distributor + GICD_ISACTIVER)
        } else {
            0
        }
    }

    fn activate_private(&self, mpidr: u64, bits: u32) {
        if self.is_calling_cpu(mpidr) {
            write32(self.distributor + GICD_ISACTIVER, bits);
        }
    }
}

/// The `GICH_LR<n>` value for the vGIC's `ICH_LR<n>_EL2` image `ich`.
///
/// - `vINTID` becomes `VirtualID` (10 bits: the vGIC has no LPIs, so every vINTID fits).
/// - With `HW` set, `pINTID` becomes `PhysicalID`; with it clear, `EOI` moves to bit 19 and, for a
///   virtual SGI (vINTID below 16), `sgi_source & 7` (the requesting vCPU's GICv2 CPU number) goes
///   into `CPUID`, which the guest reads back in `GICV_IAR`.
/// - The 8-bit priority keeps its top 5 bits, all `GICH_LR` holds.
/// - `State` and `HW` are copied.
/// - `Grp1` is always 0: a GICv2 guest's interrupts are Group 0 (Linux, on a GIC without security,
///   enables only Group 0 at `GICV_CTLR` bit 0), whereas the vGIC always writes `Group` 1 in its
///   v3 images; [`lr_to_ich`] puts `Group` 1 back, so the round trip is exact.
#[inline]
pub fn lr_from_ich(ich: u64, sgi_source: u8) -> u32 {
    let ich = LocalRegisterCopy::<u64, ICH_LR_EL2::Register>::new(ich);
    let vintid = ich.read(ICH_LR_EL2::vINTID);
    let hw = ich.is_set(ICH_LR_EL2::HW);
    let mut lr = GICH_LR::VirtualID.val(vintid as u32)
        + GICH_LR::Priority.val((ich.read(ICH_LR_EL2::Priority) >> 3) as u32)
        + GICH_LR::State.val(ich.read(ICH_LR_EL2::State) as u32)
        + GICH_LR::Grp1::CLEAR;
    let private: FieldValue<u32, GICH_LR::Register> = if hw {
        GICH_LR::HW::SET + GICH_LR::PhysicalID.val(ich.read(ICH_LR_EL2::pINTID) as u32)
    } else {
        let eoi = GICH_LR::EOI.val(ich.read(ICH_LR_EL2::EOI) as u32);
        if vintid < 16 {
            eoi + GICH_LR::CPUID.val(u32::from(sgi_source & 7))
        } else {
            eoi
        }
    };
    lr += private;
    lr.value
}

/// The vGIC's `ICH_LR<n>_EL2` image of `GICH_LR<n>` value `lr`: the inverse of [`lr_from_ich`].
/// `Priority` comes back with its low 3 bits 0, `Group` is 1 (as the vGIC writes it), and a
/// virtual SGI's `CPUID` is dropped (the vGIC keeps the source itself).
#[inline]
pub fn lr_to_ich(lr: u32) -> u64 {
    let lr = LocalRegisterCopy::<u32, GICH_LR::Register>::new(lr);
    let mut ich = ICH_LR_EL2::vINTID.val(lr.read(GICH_LR::VirtualID).into())
        + ICH_LR_EL2::Priority.val(u64::from(lr.read(GICH_LR::Priority)) << 3)
        + ICH_LR_EL2::State.val(lr.read(GICH_LR::State).into())
        + ICH_LR_EL2::Group::SET;
    if lr.is_set(GICH_LR::HW) {
        ich += ICH_LR_EL2::HW::SET + ICH_LR_EL2::pINTID.val(lr.read(GICH_LR::PhysicalID).into());
    } else {
        ich += ICH_LR_EL2::EOI.val(lr.read(GICH_LR::EOI).into());
    }
    ich.value
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::drivers::gic_spi::GICD_ICFGR;

    /// Plain memory standing in for the three frames.
    struct FakeFrames {
        distributor: Vec<u32>,
        cpu_interface: Vec<u32>,
        hypervisor_interface: Vec<u32>,
    }

    impl FakeFrames {
        /// A GIC with 64 INTIDs (ITLinesNumber 1), two CPU interfaces (CPUNumber 1), 4 list
        /// registers, and the calling CPU's `GICD_ITARGETSR0` byte 0 reading 0x04.
        fn new() -> Self {
            let mut frames = Self {
                distributor: vec![0; 0x1000 / 4],
                cpu_interface: vec![0; 0x2000 / 4],
                hypervisor_interface: vec![0; 0x1000 / 4],
            };
            frames.distributor[GICD_TYPER_OFFSET / 4] = 1 | (1 << 5);
            frames.distributor[GICD_ITARGETSR / 4] = 0x04;
            frames.hypervisor_interface[GICH_VTR_OFFSET / 4] = 3 | (4 << 26) | (4 << 29);
            frames
        }

        fn gic(&mut self) -> GicV2 {
            // SAFETY: the frames are plain memory owned by the test, as large as the real frames.
            unsafe {
                GicV2::new(
                    self.distributor.as_mut_ptr() as u64,
                    self.cpu_interface.as_mut_ptr() as u64,
                    self.hypervisor_interface.as_mut_ptr() as u64,
                )
            }
        }

        fn distributor32(&self, offset: usize) -> u32 {
            self.distributor[offset / 4]
        }

        fn distributor8(&self, offset: usize) -> u8 {
            (self.distributor[offset / 4] >> ((offset % 4) * 8)) as u8
        }
    }

    #[test]
    fn init_disables_every_spi_and_enables_the_distributor() {
        let mut frames = FakeFrames::new();
        frames.distributor[(GICD_ITARGETSR + 40) / 4] = 0xffff_ffff;
        let gic = frames.gic();
        gic.init();
        assert_eq!(gic.it_lines_number(), 1);
        assert_eq!(frames.distributor32(GICD_CTLR_OFFSET), 1);
        assert_eq!(
            frames.distributor32(GICD_ICENABLER),
            0,
            "SGIs and PPIs untouched"
        );
        assert_eq!(frames.distributor32(GICD_ICENABLER + 4), u32::MAX);
        assert_eq!(
            frames.distributor32(GICD_ICENABLER + 8),
            0,
            "beyond the SPIs"
        );
        assert_eq!(frames.distributor32(GICD_IPRIORITYR + 32), 0xa0a0_a0a0);
        assert_eq!(frames.distributor32(GICD_IPRIORITYR + 60), 0xa0a0_a0a0);
        assert_eq!(frames.distributor32(GICD_ITARGETSR + 40), 0);
        assert_eq!(
            frames.distributor8(GICD_ITARGETSR),
            0x04,
            "banked byte kept"
        );
    }

    #[test]
    fn init_cpu_records_the_banked_target_mask_used_for_routing_and_sgis() {
        let mut frames = FakeFrames::new();
        let gic = frames.gic();
        // Aff0 2 with the RES1 bit 31 set, as MPIDR_EL1 reads.
        let mpidr = 0x8000_0002;
        assert!(gic.init_cpu(mpidr, &[27, 30, 99]));
        assert_eq!(
            frames.distributor32(GICD_ISENABLER),
            0xffff | (1 << 27) | (1 << 30)
        );
        assert_eq!(frames.distributor32(GICD_IPRIORITYR + 28), 0xa0a0_a0a0);
        assert_eq!(frames.cpu_interface[GICC_PMR / 4], 0xff);
        assert_eq!(frames.cpu_interface[GICC_BPR / 4], 0);
        assert_eq!(frames.cpu_interface[GICC_CTLR_OFFSET / 4], 0x201);
        assert_eq!(frames.hypervisor_interface[GICH_HCR_OFFSET / 4], 1);
        gic.route_spi(41, mpidr);
        assert_eq!(frames.distributor32(GICD_ITARGETSR + 40), 0x04 << 8);
        gic.send_sgi(mpidr, 5);
        assert_eq!(frames.distributor32(GICD_SGIR_OFFSET), (0x04 << 16) | 5);
    }

    #[test]
    fn unknown_cpus_are_refused_and_ignored() {
        let mut frames = FakeFrames::new();
        let gic = frames.gic();
        assert!(!gic.init_cpu(8, &[]), "Aff0 beyond 8 CPUs");
        assert!(!gic.init_cpu(0x100, &[]), "a second cluster");
        assert_eq!(frames.distributor32(GICD_ISENABLER), 0, "nothing written");
        gic.route_spi(41, 2);
        gic.send_sgi(2, 5);
        assert_eq!(frames.distributor32(GICD_ITARGETSR + 40), 0);
        assert_eq!(frames.distributor32(GICD_SGIR_OFFSET), 0);
        frames.distributor[GICD_ITARGETSR / 4] = 0;
        let gic = frames.gic();
        assert!(!gic.init_cpu(0, &[]), "a zero mask on a multiprocessor GIC");
    }

    #[test]
    fn a_uniprocessor_gic_with_raz_targets_is_cpu_bit_0() {
        let mut frames = FakeFrames::new();
        frames.distributor[GICD_TYPER_OFFSET / 4] = 1;
        frames.distributor[GICD_ITARGETSR / 4] = 0;
        let gic = frames.gic();
        assert!(gic.init_cpu(0, &[]));
        gic.send_sgi(0, 1);
        assert_eq!(frames.distributor32(GICD_SGIR_OFFSET), (1 << 16) | 1);
    }

    #[test]
    fn spi_configuration_touches_only_its_own_bits() {
        let mut frames = FakeFrames::new();
        frames.distributor[(GICD_ICFGR + 8) / 4] = 0x5555_5555;
        let gic = frames.gic();
        gic.set_spi_edge_triggered(33, true);
        assert_eq!(frames.distributor32(GICD_ICFGR + 8), 0x5555_5555 | (1 << 3));
        gic.set_spi_edge_triggered(47, true);
        assert_eq!(
            frames.distributor32(GICD_ICFGR + 8),
            0x5555_5555 | (1 << 3) | (1 << 31)
        );
        gic.set_spi_edge_triggered(33, false);
        assert_eq!(
            frames.distributor32(GICD_ICFGR + 8),
            0x5555_5555 | (1 << 31)
        );
        gic.set_spi_enabled(33, true);
        assert_eq!(frames.distributor32(GICD_ISENABLER + 4), 1 << 1);
        gic.set_spi_enabled(63, false);
        assert_eq!(frames.distributor32(GICD_ICENABLER + 4), 1 << 31);
        gic.set_spi_priority(34, 0x10);
        assert_eq!(
            frames.distributor8(GICD_IPRIORITYR + 34),
            0xa0,
            "never above ours"
        );
        gic.set_spi_priority(35, 0xc0);
        assert_eq!(frames.distributor8(GICD_IPRIORITYR + 35), 0xc0);
        // Outside the implemented SPIs (64 INTIDs) and the private ones: nothing is written.
        gic.set_spi_enabled(64, true);
        gic.set_spi_enabled(20, true);
        gic.set_spi_edge_triggered(64, true);
        assert_eq!(frames.distributor32(GICD_ISENABLER + 8), 0);
        assert_eq!(frames.distributor32(GICD_ISENABLER), 0);
        assert_eq!(frames.distributor32(GICD_ICFGR + 16), 0);
    }

    #[test]
    fn trigger_changes_of_spis_sharing_an_icfgr_word_from_two_cpus_are_never_lost() {
        let mut frames = FakeFrames::new();
        let gic = frames.gic();
        std::thread::scope(|scope| {
            for intid in [32, 33] {
                let gic = &gic;
                scope.spawn(move || {
                    for round in 0..20_000 {
                        gic.set_spi_edge_triggered(intid, round % 2 == 1);
                    }
                });
            }
        });
        let edge_bits = (1 << 1) | (1 << 3);
        assert_eq!(frames.distributor32(GICD_ICFGR + 8) & edge_bits, edge_bits);
    }

    #[test]
    fn private_interrupts_are_reached_only_from_their_own_cpu() {
        let mut frames = FakeFrames::new();
        frames.distributor[GICD_ISPENDR / 4] = 1 << 27;
        frames.distributor[(GICD_ISPENDR + 4) / 4] = 1 << 1;
        let gic = frames.gic();
        assert!(gic.init_cpu(2, &[]));
        // CPU 3 claims another mask (its init_cpu ran on its own CPU).
        gic.cpu_targets[3].store(0x08, Ordering::Release);
        assert!(gic.is_pending(27, 2));
        assert!(!gic.is_pending(27, 3), "another CPU's PPI cannot be read");
        assert!(!gic.is_pending(26, 2));
        assert!(gic.is_pending(33, 3), "SPIs are global");
        assert!(!gic.is_pending(64, 2), "beyond the implemented SPIs");
        gic.deactivate_on(27, 3);
        assert_eq!(frames.distributor32(GICD_ICACTIVER), 0);
        gic.deactivate_on(27, 2);
        assert_eq!(frames.distributor32(GICD_ICACTIVER), 1 << 27);
        gic.deactivate_on(40, 3);
        assert_eq!(frames.distributor32(GICD_ICACTIVER + 4), 1 << 8);
        // The banked active bits of the SGIs and PPIs: the calling CPU's only.
        frames.distributor[GICD_ISACTIVER / 4] = 1 << 27 | 1 << 3;
        assert_eq!(gic.private_active(2), 1 << 27 | 1 << 3);
        assert_eq!(gic.private_active(3), 0, "another CPU's cannot be read");
        gic.activate_private(3, 1 << 30);
        assert_eq!(frames.distributor32(GICD_ISACTIVER), 1 << 27 | 1 << 3);
        gic.activate_private(2, 1 << 30);
        assert_eq!(frames.distributor32(GICD_ISACTIVER), 1 << 30);
    }

    #[test]
    fn the_cpu_interface_acknowledges_and_completes_with_the_raw_iar() {
        let mut frames = FakeFrames::new();
        frames.cpu_interface[GICC_IAR_OFFSET / 4] = 1023;
        let gic = frames.gic();
        assert_eq!(gic.cpu_frames().acknowledge(), None);
        frames.cpu_interface[GICC_IAR_OFFSET / 4] = 1020;
        assert_eq!(frames.gic().cpu_frames().acknowledge(), None);
        // SGI 3 from CPU 5, with stray upper bits.
        frames.cpu_interface[GICC_IAR_OFFSET / 4] = 0xffff_e000 | (5 << 10) | 3;
        let gic = frames.gic();
        let raw = gic.cpu_frames().acknowledge();
        assert_eq!(raw, Some((5 << 10) | 3));
        gic.cpu_frames().end_of_interrupt((5 << 10) | 3);
        gic.cpu_frames().deactivate(40);
        assert_eq!(frames.cpu_interface[GICC_EOIR / 4], (5 << 10) | 3);
        assert_eq!(frames.cpu_interface[GICC_DIR / 4], 40);
    }

    #[test]
    fn the_virtual_interface_control_registers_sit_at_their_offsets() {
        let mut frames = FakeFrames::new();
        frames.hypervisor_interface[GICH_ELRSR0 / 4] = 0b1010;
        frames.hypervisor_interface[GICH_MISR / 4] = 0x8;
        let gic = frames.gic();
        assert_eq!(gic.cpu_frames().list_register_count(), 4);
        gic.cpu_frames().write_lr(0, 0x1111);
        gic.cpu_frames().write_lr(3, 0x3333);
        gic.cpu_frames().write_lr(64, 0xdead);
        assert_eq!(gic.cpu_frames().read_lr(3), 0x3333);
        assert_eq!(gic.cpu_frames().read_lr(64), 0);
        gic.cpu_frames().set_hcr(0x5);
        gic.cpu_frames().set_vmcr(0x77);
        gic.cpu_frames().set_apr(0x9);
        assert_eq!(
            (
                gic.cpu_frames().hcr(),
                gic.cpu_frames().vmcr(),
                gic.cpu_frames().apr(),
                gic.cpu_frames().misr()
            ),
            (0x5, 0x77, 0x9, 0x8)
        );
        assert_eq!(gic.cpu_frames().empty_list_registers(), 0b1010);
        assert_eq!(frames.hypervisor_interface[0x100 / 4], 0x1111);
        assert_eq!(frames.hypervisor_interface[0x10c / 4], 0x3333);
        assert_eq!(frames.hypervisor_interface[GICH_HCR_OFFSET / 4], 0x5);
        assert_eq!(frames.hypervisor_interface[GICH_VMCR / 4], 0x77);
        assert_eq!(frames.hypervisor_interface[GICH_APR / 4], 0x9);
        assert!(
            frames.hypervisor_interface[0x200 / 4..]
                .iter()
                .all(|&word| word == 0)
        );
    }

    fn ich(vintid: u64, state: u64, hw: bool, pintid_or_eoi: u64, priority: u64) -> u64 {
        let mut value = ICH_LR_EL2::vINTID.val(vintid)
            + ICH_LR_EL2::State.val(state)
            + ICH_LR_EL2::Priority.val(priority)
            + ICH_LR_EL2::Group::SET;
        if hw {
            value += ICH_LR_EL2::HW::SET + ICH_LR_EL2::pINTID.val(pintid_or_eoi);
        } else {
            value += ICH_LR_EL2::EOI.val(pintid_or_eoi);
        }
        value.value
    }

    #[test]
    fn list_registers_round_trip_every_state_hw_and_eoi() {
        for state in 0..4 {
            for priority in [0x00, 0x08, 0xa0, 0xf8] {
                let hw = ich(40, state, true, 40, priority);
                let lr = lr_from_ich(hw, 0);
                assert_eq!(
                    lr,
                    (1 << 31)
                        | (state as u32) << 28
                        | ((priority as u32) >> 3) << 23
                        | (40 << 10)
                        | 40
                );
                assert_eq!(lr_to_ich(lr), hw);
                for eoi in [0, 1] {
                    let virtual_only = ich(100, state, false, eoi, priority);
                    let lr = lr_from_ich(virtual_only, 0);
                    assert_eq!(lr & (1 << 30), 0, "Grp1 is always 0");
                    assert_eq!(lr >> 19 & 1, eoi as u32);
                    assert_eq!(lr_to_ich(lr), virtual_only);
                }
            }
        }
    }

    #[test]
    fn priority_keeps_its_top_five_bits() {
        let lr = lr_from_ich(ich(33, 1, false, 0, 0xa7), 0);
        assert_eq!(lr >> 23 & 0x1f, 0xa7 >> 3);
        assert_eq!(lr_to_ich(lr), ich(33, 1, false, 0, 0xa0));
    }

    #[test]
    fn an_sgi_carries_its_source_cpu_only_in_the_gicv2_list_register() {
        let sgi = ich(3, 1, false, 1, 0xa0);
        let lr = lr_from_ich(sgi, 0x0d);
        assert_eq!(lr & 0x3ff, 3);
        assert_eq!(lr >> 10 & 7, 5, "source masked to 3 bits");
        assert_eq!(lr >> 19 & 1, 1);
        assert_eq!(lr_to_ich(lr), sgi, "the source is dropped");
        // Not an SGI: the source is ignored.
        assert_eq!(lr_from_ich(ich(40, 1, false, 0, 0), 5) >> 10 & 7, 0);
    }
}
