//! The physical GICv3's distributor and redistributors (MMIO): global and per-CPU setup, SPI
//! configuration and routing, deactivation on another CPU, pending state. The CPU interface is
//! system registers and lives in `arch::aarch64::gic`.
//!
//! Hand-written rather than arm-gic's driver because cellvisor needs redistributor lookup by MPIDR
//! and its own split of MMIO from the EOImode=1 CPU interface; see docs/architecture.md.

use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::InterruptController;
use super::gic_mmio::{read32, read64, write8, write32, write64};
use super::gic_spi::{self, DEFAULT_PRIORITY};
use crate::dev::gic::{REDISTRIBUTOR_STRIDE, SGI_FRAME_OFFSET, SPI_END_INTID};
use crate::dev::vgic::{GICD_CTLR, GICD_IROUTER, GICD_TYPER, GICR_TYPER, GICR_WAKER};

const GICD_CTLR_OFFSET: usize = 0x0000;
const GICD_TYPER_OFFSET: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ISPENDR: usize = 0x0200;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_IROUTER_OFFSET: usize = 0x6000;

const GICR_FRAME_SIZE: usize = REDISTRIBUTOR_STRIDE as usize;
const GICR_WAKER_OFFSET: usize = 0x0014;
const GICR_TYPER_OFFSET: usize = 0x0008;
const GICR_SGI_BASE: usize = SGI_FRAME_OFFSET as usize;
const GICR_IGROUPR0: usize = GICR_SGI_BASE + 0x0080;
const GICR_ISENABLER0: usize = GICR_SGI_BASE + 0x0100;
const GICR_ICENABLER0: usize = GICR_SGI_BASE + 0x0180;
const GICR_ISPENDR0: usize = GICR_SGI_BASE + 0x0200;
const GICR_IPRIORITYR: usize = GICR_SGI_BASE + 0x0400;
const GICR_ISACTIVER0: usize = GICR_SGI_BASE + 0x0300;
const GICR_ICACTIVER0: usize = GICR_SGI_BASE + 0x0380;

/// `GICD_IROUTER` value routing to the one CPU with affinity `mpidr` (`Interrupt_Routing_Mode` 0).
/// The register's affinity fields sit where MPIDR_EL1 has them, so `mpidr` is read through the same
/// layout.
fn irouter(mpidr: u64) -> u64 {
    let mpidr = LocalRegisterCopy::<u64, GICD_IROUTER::Register>::new(mpidr);
    (GICD_IROUTER::Aff3.val(mpidr.read(GICD_IROUTER::Aff3))
        + GICD_IROUTER::Aff2.val(mpidr.read(GICD_IROUTER::Aff2))
        + GICD_IROUTER::Aff1.val(mpidr.read(GICD_IROUTER::Aff1))
        + GICD_IROUTER::Aff0.val(mpidr.read(GICD_IROUTER::Aff0))
        + GICD_IROUTER::Interrupt_Routing_Mode::CLEAR)
        .value
}

register_bitfields![u64,
    /// `GICR_TYPER.Affinity_Value`: the affinity of the PE a redistributor serves, packed.
    AFFINITY_VALUE [
        Aff0 OFFSET(0) NUMBITS(8) [],
        Aff1 OFFSET(8) NUMBITS(8) [],
        Aff2 OFFSET(16) NUMBITS(8) [],
        Aff3 OFFSET(24) NUMBITS(8) []
    ]
];

/// `GICR_TYPER.Affinity_Value` of the redistributor serving the CPU with affinity `mpidr`.
fn redistributor_affinity(mpidr: u64) -> u64 {
    let mpidr = LocalRegisterCopy::<u64, GICD_IROUTER::Register>::new(mpidr);
    (AFFINITY_VALUE::Aff3.val(mpidr.read(GICD_IROUTER::Aff3))
        + AFFINITY_VALUE::Aff2.val(mpidr.read(GICD_IROUTER::Aff2))
        + AFFINITY_VALUE::Aff1.val(mpidr.read(GICD_IROUTER::Aff1))
        + AFFINITY_VALUE::Aff0.val(mpidr.read(GICD_IROUTER::Aff0)))
    .value
}

/// The distributor and redistributor frames of the platform's GICv3.
#[derive(Clone, Copy, Debug)]
pub struct GicV3 {
    distributor: usize,
    redistributors: usize,
    redistributor_size: usize,
}

impl GicV3 {
    /// Describes the GIC at these addresses.
    ///
    /// # Safety
    /// The addresses must be the platform GICv3's distributor and redistributor region, mapped as
    /// device memory in EL2's translation (or plain memory standing in for it), and only cellvisor
    /// may program them.
    pub unsafe fn new(distributor: u64, redistributors: u64, redistributor_size: u64) -> Self {
        Self {
            distributor: distributor as usize,
            redistributors: redistributors as usize,
            redistributor_size: redistributor_size as usize,
        }
    }

    fn ctlr(&self) -> LocalRegisterCopy<u32, GICD_CTLR::Register> {
        LocalRegisterCopy::new(read32(self.distributor + GICD_CTLR_OFFSET))
    }

    fn typer(&self) -> LocalRegisterCopy<u32, GICD_TYPER::Register> {
        LocalRegisterCopy::new(read32(self.distributor + GICD_TYPER_OFFSET))
    }

    fn wait_for_distributor(&self) {
        for _ in 0..1_000_000 {
            if !self.ctlr().is_set(GICD_CTLR::RWP) {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Number of interrupt IDs the distributor implements (SGIs, PPIs and SPIs).
    fn interrupt_lines(&self) -> u32 {
        (self.it_lines_number() + 1) * 32
    }

    fn is_spi(&self, intid: u32) -> bool {
        (32..self.interrupt_lines().min(SPI_END_INTID)).contains(&intid)
    }

    /// The redistributor frame of the CPU with affinity `mpidr`.
    fn redistributor_of(&self, mpidr: u64) -> Option<usize> {
        let wanted = redistributor_affinity(mpidr);
        let mut frame = self.redistributors;
        let end = self.redistributors + self.redistributor_size;
        while frame + GICR_FRAME_SIZE <= end {
            let typer = LocalRegisterCopy::<u64, GICR_TYPER::Register>::new(read64(
                frame + GICR_TYPER_OFFSET,
            ));
            if typer.read(GICR_TYPER::Affinity_Value) == wanted {
                return Some(frame);
            }
            if typer.is_set(GICR_TYPER::Last) {
                break;
            }
            frame += GICR_FRAME_SIZE;
        }
        None
    }
}

/// Bits 15:0 of `GICR_ISENABLER0`: the SGIs.
const SGI_ENABLE_BITS: u32 = 0xffff;

impl InterruptController for GicV3 {
    fn init(&self) {
        write32(self.distributor + GICD_CTLR_OFFSET, 0);
        self.wait_for_distributor();
        let lines = self.interrupt_lines() as usize;
        for word in 1..lines / 32 {
            write32(self.distributor + GICD_ICENABLER + word * 4, u32::MAX);
            write32(self.distributor + GICD_IGROUPR + word * 4, u32::MAX);
        }
        for intid in 32..lines {
            write8(self.distributor + GICD_IPRIORITYR + intid, DEFAULT_PRIORITY);
        }
        self.wait_for_distributor();
        let enable = GICD_CTLR::ARE_NS::SET + GICD_CTLR::EnableGrp1A::SET;
        write32(self.distributor + GICD_CTLR_OFFSET, enable.value);
        self.wait_for_distributor();
    }

    fn init_cpu(&self, mpidr: u64, ppis: &[u32]) -> bool {
        let Some(frame) = self.redistributor_of(mpidr) else {
            return false;
        };
        let mut waker =
            LocalRegisterCopy::<u32, GICR_WAKER::Register>::new(read32(frame + GICR_WAKER_OFFSET));
        waker.modify(GICR_WAKER::ProcessorSleep::CLEAR);
        write32(frame + GICR_WAKER_OFFSET, waker.get());
        for _ in 0..1_000_000 {
            let waker = LocalRegisterCopy::<u32, GICR_WAKER::Register>::new(read32(
                frame + GICR_WAKER_OFFSET,
            ));
            if !waker.is_set(GICR_WAKER::ChildrenAsleep) {
                break;
            }
            core::hint::spin_loop();
        }
        write32(frame + GICR_ICENABLER0, u32::MAX);
        write32(frame + GICR_IGROUPR0, u32::MAX);
        for intid in 0..32 {
            write8(frame + GICR_IPRIORITYR + intid, DEFAULT_PRIORITY);
        }
        let mut enable = SGI_ENABLE_BITS;
        for &ppi in ppis {
            if (16..32).contains(&ppi) {
                enable |= 1 << ppi;
            }
        }
        write32(frame + GICR_ISENABLER0, enable);
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
        self.wait_for_distributor();
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

    fn route_spi(&self, intid: u32, mpidr: u64) {
        if !self.is_spi(intid) {
            return;
        }
        write64(
            self.distributor + GICD_IROUTER_OFFSET + intid as usize * 8,
            irouter(mpidr),
        );
    }

    fn deactivate_on(&self, intid: u32, mpidr: u64) {
        if intid < 32 {
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

    fn is_pending(&self, intid: u32, mpidr: u64) -> bool {
        let bits = if intid < 32 {
            self.redistributor_of(mpidr)
                .map_or(0, |frame| read32(frame + GICR_ISPENDR0))
        } else if self.is_spi(intid) {
            read32(self.distributor + GICD_ISPENDR + (intid / 32) as usize * 4)
        } else {
            0
        };
        bits & 1 << (intid % 32) != 0
    }

    fn private_active(&self, mpidr: u64) -> u32 {
        self.redistributor_of(mpidr)
            .map_or(0, |frame| read32(frame + GICR_ISACTIVER0))
    }

    fn activate_private(&self, mpidr: u64, bits: u32) {
        if let Some(frame) = self.redistributor_of(mpidr) {
            write32(frame + GICR_ISACTIVER0, bits);
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::drivers::gic_spi::GICD_ICFGR;

    /// Plain memory standing in for a distributor frame and `count` redistributors.
    struct FakeFrames {
        distributor: Vec<u64>,
        redistributors: Vec<u64>,
    }

    const DISTRIBUTOR_SIZE: usize = 0x1_0000;

    impl FakeFrames {
        /// A GIC with 64 INTIDs (ITLinesNumber 1) and redistributors for the given affinities.
        fn new(affinities: &[u64]) -> Self {
            let mut frames = Self {
                distributor: vec![0; DISTRIBUTOR_SIZE / 8],
                redistributors: vec![0; affinities.len() * GICR_FRAME_SIZE / 8],
            };
            frames.distributor[GICD_TYPER_OFFSET / 8] = 1 << 32;
            for (index, &affinity) in affinities.iter().enumerate() {
                let last = index + 1 == affinities.len();
                let typer =
                    GICR_TYPER::Affinity_Value.val(affinity) + GICR_TYPER::Last.val(last.into());
                frames.redistributors[(index * GICR_FRAME_SIZE + GICR_TYPER_OFFSET) / 8] =
                    typer.value;
            }
            frames
        }

        fn gic(&mut self) -> GicV3 {
            // SAFETY: the frames are plain memory owned by the test, large enough for every
            // register the driver touches.
            unsafe {
                GicV3::new(
                    self.distributor.as_mut_ptr() as u64,
                    self.redistributors.as_mut_ptr() as u64,
                    (self.redistributors.len() * 8) as u64,
                )
            }
        }

        fn distributor32(&self, offset: usize) -> u32 {
            (self.distributor[offset / 8] >> ((offset % 8) * 8)) as u32
        }

        fn redistributor32(&self, frame: usize, offset: usize) -> u32 {
            let offset = frame * GICR_FRAME_SIZE + offset;
            (self.redistributors[offset / 8] >> ((offset % 8) * 8)) as u32
        }
    }

    #[test]
    fn trigger_changes_of_spis_sharing_an_icfgr_word_from_two_cpus_are_never_lost() {
        // SPIs 32 and 33 share GICD_ICFGR2; two CPUs (one cell's vGIC each) keep changing their
        // own SPI's trigger at once, each ending with edge. Without the shared-word lock a
        // read-modify-write of one would sometimes put back the other's old bit.
        let mut frames = FakeFrames::new(&[0]);
        let gic = frames.gic();
        std::thread::scope(|scope| {
            for intid in [32, 33] {
                scope.spawn(move || {
                    for round in 0..20_000 {
                        gic.set_spi_edge_triggered(intid, round % 2 == 1);
                    }
                });
            }
        });
        let edge_bits = (1 << 1) | (1 << 3);
        assert_eq!(
            frames.distributor32(GICD_ICFGR + 8) & edge_bits,
            edge_bits,
            "both SPIs end edge-triggered"
        );
    }

    #[test]
    fn init_enables_affinity_routing_and_group_1() {
        let mut frames = FakeFrames::new(&[0]);
        let gic = frames.gic();
        gic.init();
        assert_eq!(gic.it_lines_number(), 1);
        assert_eq!(frames.distributor32(GICD_CTLR_OFFSET), 0x12);
        assert_eq!(frames.distributor32(GICD_ICENABLER + 4), u32::MAX);
        assert_eq!(frames.distributor32(GICD_IGROUPR + 4), u32::MAX);
        assert_eq!(frames.distributor32(GICD_IPRIORITYR + 32), 0xa0a0_a0a0);
    }

    #[test]
    fn spis_are_routed_by_affinity_and_others_ignored() {
        let mut frames = FakeFrames::new(&[0]);
        let gic = frames.gic();
        gic.route_spi(40, 0x0000_0012_0000_0304);
        assert_eq!(
            frames.distributor[(GICD_IROUTER_OFFSET + 40 * 8) / 8],
            0x12_0000_0304
        );
        // Outside the implemented SPIs (64 INTIDs): nothing is written.
        gic.route_spi(64, 1);
        gic.set_spi_enabled(64, true);
        assert_eq!(frames.distributor[(GICD_IROUTER_OFFSET + 64 * 8) / 8], 0);
        assert_eq!(frames.distributor32(GICD_ISENABLER + 8), 0);
        gic.set_spi_enabled(33, true);
        assert_eq!(frames.distributor32(GICD_ISENABLER + 4), 1 << 1);
        gic.set_spi_edge_triggered(33, true);
        assert_eq!(frames.distributor32(GICD_ICFGR + 8), 1 << 3);
        gic.set_spi_edge_triggered(33, false);
        assert_eq!(frames.distributor32(GICD_ICFGR + 8), 0);
    }

    #[test]
    fn each_cpu_finds_its_own_redistributor() {
        // MPIDR 0x1_0000_0100 (Aff3 = 1, Aff1 = 1) is Affinity_Value 0x0100_0100.
        let mut frames = FakeFrames::new(&[0, 0x0100_0100]);
        let gic = frames.gic();
        assert!(gic.init_cpu(0x1_0000_0100, &[27, 30, 99]));
        assert_eq!(
            frames.redistributor32(1, GICR_ISENABLER0),
            0xffff | (1 << 27) | (1 << 30)
        );
        assert_eq!(frames.redistributor32(0, GICR_ISENABLER0), 0);
        gic.deactivate_on(27, 0x1_0000_0100);
        assert_eq!(frames.redistributor32(1, GICR_ICACTIVER0), 1 << 27);
        assert!(!gic.init_cpu(0x2, &[]));
    }

    #[test]
    fn pending_state_is_read_from_the_cpus_redistributor_or_the_distributor() {
        let mut frames = FakeFrames::new(&[0, 0x0100_0100]);
        // CPU 1's PPI 27 pending, and SPI 33.
        let ppi = GICR_FRAME_SIZE + GICR_ISPENDR0;
        frames.redistributors[ppi / 8] |= u64::from(1u32 << 27) << ((ppi % 8) * 8);
        let spi = GICD_ISPENDR + 4;
        frames.distributor[spi / 8] |= u64::from(1u32 << 1) << ((spi % 8) * 8);
        let gic = frames.gic();
        assert!(gic.is_pending(27, 0x1_0000_0100));
        assert!(!gic.is_pending(27, 0), "CPU 0's PPI 27 is not");
        assert!(!gic.is_pending(30, 0x1_0000_0100));
        assert!(gic.is_pending(33, 0));
        assert!(!gic.is_pending(34, 0));
        assert!(!gic.is_pending(64, 0), "beyond the implemented SPIs");
        assert!(!gic.is_pending(27, 0x2), "no such CPU");
    }

    #[test]
    fn a_cpus_private_active_bits_are_its_own_redistributors() {
        let mut frames = FakeFrames::new(&[0, 0x0100_0100]);
        let active = GICR_FRAME_SIZE + GICR_ISACTIVER0;
        frames.redistributors[active / 8] |= u64::from(1u32 << 27) << ((active % 8) * 8);
        let gic = frames.gic();
        assert_eq!(gic.private_active(0x1_0000_0100), 1 << 27);
        assert_eq!(gic.private_active(0), 0);
        assert_eq!(gic.private_active(0x2), 0, "no such CPU");
        gic.activate_private(0, 1 << 30);
        assert_eq!(frames.redistributor32(0, GICR_ISACTIVER0), 1 << 30);
        assert_eq!(frames.redistributor32(1, GICR_ISACTIVER0), 1 << 27);
    }
}
