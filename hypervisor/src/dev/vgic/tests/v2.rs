//! Host tests of the GICv2 distributor view (`distributor_v2`): the same interrupt model behind
//! the GIC-400 register map.
#![forbid(unsafe_code)]

use super::*;

const CTLR: u64 = 0x000;
const TYPER: u64 = 0x004;
const ISENABLER: u64 = 0x100;
const ISPENDR: u64 = 0x200;
const IPRIORITYR: u64 = 0x400;
const ITARGETSR: u64 = 0x800;
const SGIR: u64 = 0xF00;
const CPENDSGIR: u64 = 0xF10;
const SPENDSGIR: u64 = 0xF20;
const PIDR2: u64 = 0xFE8;

/// A 4-vCPU vGIC with the GICv2 distributor enabled.
fn enabled_v2() -> (Vgic, FakePhysicalDistributor) {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    vgic.distributor_v2_write(0, CTLR, Word, 1, &mut physical)
        .unwrap();
    (vgic, physical)
}

fn read(vgic: &mut Vgic, vcpu: usize, offset: u64, width: AccessWidth) -> u64 {
    let mut physical = FakePhysicalDistributor::default();
    vgic.distributor_v2_read(vcpu, offset, width, &mut physical)
        .unwrap()
}

fn sgir(filter: u64, targets: u64, intid: u64) -> u64 {
    filter << 24 | targets << 16 | intid
}

/// The SGIs pending on `vcpu`, as its banked `GICD_ISPENDR0` shows them.
fn pending_sgis(vgic: &mut Vgic, vcpu: usize) -> u64 {
    read(vgic, vcpu, ISPENDR, Word) & 0xFFFF
}

#[test]
fn identification_and_control() {
    let (mut vgic, _) = enabled_v2();
    assert_eq!(read(&mut vgic, 0, CTLR, Word), 1);
    // Lines up to SPI 48 (ITLinesNumber 1), 4 CPUs (CPUNumber 3), no Security Extensions.
    assert_eq!(read(&mut vgic, 0, TYPER, Word), 1 | 3 << 5);
    assert_eq!(read(&mut vgic, 0, PIDR2, Word) >> 4 & 0xF, 2);
    // IGROUPR: every interrupt Group 0, writes ignored.
    let mut physical = FakePhysicalDistributor::default();
    vgic.distributor_v2_write(0, 0x084, Word, u64::from(u32::MAX), &mut physical)
        .unwrap();
    assert_eq!(read(&mut vgic, 0, 0x084, Word), 0);
    vgic.distributor_v2_write(0, CTLR, Word, 0, &mut physical)
        .unwrap();
    assert_eq!(read(&mut vgic, 0, CTLR, Word), 0);
}

#[test]
fn sgi_and_ppi_registers_are_banked_per_vcpu() {
    let (mut vgic, mut physical) = enabled_v2();
    vgic.distributor_v2_write(1, ISENABLER, Word, 1 << 27 | 1 << 3, &mut physical)
        .unwrap();
    vgic.distributor_v2_write(1, IPRIORITYR + 27, Byte, 0xa0, &mut physical)
        .unwrap();
    assert_eq!(read(&mut vgic, 1, ISENABLER, Word), 1 << 27 | 1 << 3);
    assert_eq!(read(&mut vgic, 0, ISENABLER, Word), 0);
    assert_eq!(read(&mut vgic, 1, IPRIORITYR + 27, Byte), 0xa0);
    assert_eq!(read(&mut vgic, 2, IPRIORITYR + 27, Byte), 0);
    // The SPI words are shared: vCPU 3 sees what vCPU 0 enabled.
    let (offset, bit) = bit_register(ISENABLER, DEVICE_SPI);
    vgic.distributor_v2_write(0, offset, Word, bit, &mut physical)
        .unwrap();
    assert_eq!(read(&mut vgic, 3, offset, Word), bit);
    assert!(
        physical
            .log
            .contains(&PhysicalOp::Enabled(DEVICE_SPI, true))
    );
}

#[test]
fn itargetsr_uses_the_cells_own_cpu_numbers() {
    let (mut vgic, mut physical) = enabled_v2();
    // SGI/PPI bytes read as the reader's own bit and ignore writes.
    for vcpu in 0..4 {
        assert_eq!(read(&mut vgic, vcpu, ITARGETSR, Word), 0x0101_0101 << vcpu);
    }
    vgic.distributor_v2_write(0, ITARGETSR + 27, Byte, 0xFF, &mut physical)
        .unwrap();
    assert_eq!(read(&mut vgic, 0, ITARGETSR + 27, Byte), 1);
    // An SPI to vCPU 2: stored, and the hardware SPI follows to vCPU 2's CPU.
    vgic.distributor_v2_write(
        0,
        ITARGETSR + u64::from(DEVICE_SPI),
        Byte,
        0b100,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        read(&mut vgic, 1, ITARGETSR + u64::from(DEVICE_SPI), Byte),
        0b100
    );
    assert!(physical.log.contains(&PhysicalOp::Route(DEVICE_SPI, 2)));
    // CPUs 4-7 are not the cell's: dropped; a mask naming only them changes nothing.
    vgic.distributor_v2_write(
        0,
        ITARGETSR + u64::from(DEVICE_SPI),
        Byte,
        0xF0,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        read(&mut vgic, 0, ITARGETSR + u64::from(DEVICE_SPI), Byte),
        0
    );
    let routes = physical
        .log
        .iter()
        .filter(|op| matches!(op, PhysicalOp::Route(..)))
        .count();
    assert_eq!(
        routes, 1,
        "an empty target list reaches no CPU of another cell"
    );
    // Several targets: stored as written, delivered to the lowest.
    vgic.distributor_v2_write(
        0,
        ITARGETSR + u64::from(EDGE_SPI),
        Byte,
        0b1010,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        read(&mut vgic, 0, ITARGETSR + u64::from(EDGE_SPI), Byte),
        0b1010
    );
    let (offset, bit) = bit_register(ISENABLER, EDGE_SPI);
    vgic.distributor_v2_write(0, offset, Word, bit, &mut physical)
        .unwrap();
    assert_eq!(vgic.inject(EDGE_SPI, 0), Ok(Delivery::Ready { vcpu: 1 }));
    // SPIs the cell does not own: RAZ/WI.
    vgic.distributor_v2_write(0, ITARGETSR + 36, Byte, 1, &mut physical)
        .unwrap();
    assert_eq!(read(&mut vgic, 0, ITARGETSR + 36, Byte), 0);
}

#[test]
fn sgir_reaches_only_the_cells_vcpus_in_every_filter_mode() {
    let (mut vgic, mut physical) = enabled_v2();
    for vcpu in 0..4 {
        vgic.distributor_v2_write(vcpu, ISENABLER, Word, 0xFFFF, &mut physical)
            .unwrap();
    }
    // Filter 0: the target list, in the cell's numbering; bits 4-7 name nobody.
    let kick = vgic
        .distributor_v2_write(0, SGIR, Word, sgir(0, 0b1111_0110, 1), &mut physical)
        .unwrap();
    assert_eq!(kick.iter().collect::<Vec<_>>(), vec![1, 2]);
    for (vcpu, expected) in [(0, 0), (1, 1 << 1), (2, 1 << 1), (3, 0)] {
        assert_eq!(pending_sgis(&mut vgic, vcpu), expected, "vCPU {vcpu}");
    }
    // Filter 1: all but the sender.
    vgic.distributor_v2_write(2, SGIR, Word, sgir(1, 0, 2), &mut physical)
        .unwrap();
    for vcpu in 0..4 {
        assert_eq!(pending_sgis(&mut vgic, vcpu) & 1 << 2 != 0, vcpu != 2);
    }
    // Filter 2: the sender only.
    vgic.distributor_v2_write(3, SGIR, Word, sgir(2, 0xFF, 3), &mut physical)
        .unwrap();
    for vcpu in 0..4 {
        assert_eq!(pending_sgis(&mut vgic, vcpu) & 1 << 3 != 0, vcpu == 3);
    }
    // Filter 3: reserved, nothing.
    let kick = vgic
        .distributor_v2_write(0, SGIR, Word, sgir(3, 0xFF, 4), &mut physical)
        .unwrap();
    assert!(kick.is_empty());
    for vcpu in 0..4 {
        assert_eq!(pending_sgis(&mut vgic, vcpu) & 1 << 4, 0);
    }
    // SGIR is write-only.
    assert_eq!(read(&mut vgic, 0, SGIR, Word), 0);
}

#[test]
fn spendsgir_and_cpendsgir_show_and_change_pending_sgis_by_source() {
    let (mut vgic, mut physical) = enabled_v2();
    vgic.distributor_v2_write(2, SGIR, Word, sgir(0, 0b1, 5), &mut physical)
        .unwrap();
    // SGI 5 on vCPU 0, from vCPU 2: byte 1 of SPENDSGIR1.
    assert_eq!(read(&mut vgic, 0, SPENDSGIR + 5, Byte), 1 << 2);
    assert_eq!(read(&mut vgic, 0, CPENDSGIR + 4, Word), (1 << 2) << 8);
    assert_eq!(read(&mut vgic, 1, SPENDSGIR + 5, Byte), 0);
    // Clearing another source's bit leaves it; the sender's bit clears it.
    vgic.distributor_v2_write(0, CPENDSGIR + 5, Byte, 1 << 1, &mut physical)
        .unwrap();
    assert_eq!(pending_sgis(&mut vgic, 0), 1 << 5);
    vgic.distributor_v2_write(0, CPENDSGIR + 5, Byte, 1 << 2, &mut physical)
        .unwrap();
    assert_eq!(pending_sgis(&mut vgic, 0), 0);
    // Setting with a source outside the cell does nothing; inside, it pends from that source.
    vgic.distributor_v2_write(1, SPENDSGIR + 7, Byte, 0xF0, &mut physical)
        .unwrap();
    assert_eq!(pending_sgis(&mut vgic, 1), 0);
    vgic.distributor_v2_write(1, SPENDSGIR + 4, Word, 0b1000 << 24, &mut physical)
        .unwrap();
    assert_eq!(pending_sgis(&mut vgic, 1), 1 << 7);
    assert_eq!(read(&mut vgic, 1, SPENDSGIR + 7, Byte), 0b1000);
}

/// A GICv2 interface: records the source passed with each SGI entry.
struct SourceRecorder {
    inner: FakeListRegisters,
    sources: Vec<(usize, u8)>,
}

impl ListRegisters for SourceRecorder {
    fn count(&self) -> usize {
        self.inner.count()
    }
    fn read(&self, n: usize) -> u64 {
        self.inner.read(n)
    }
    fn write(&mut self, n: usize, value: u64) {
        self.inner.write(n, value);
    }
    fn write_sgi(&mut self, n: usize, value: u64, source: u8) {
        self.sources.push((n, source));
        self.inner.write(n, value);
    }
    fn empty_list_registers(&self) -> u16 {
        self.inner.empty_list_registers()
    }
    fn hcr(&self) -> u64 {
        self.inner.hcr()
    }
    fn set_hcr(&mut self, value: u64) {
        self.inner.set_hcr(value);
    }
    fn line_asserted(&mut self, physical_intid: u32) -> bool {
        self.inner.line_asserted(physical_intid)
    }
    fn deactivate_physical(&mut self, physical_intid: u32) {
        self.inner.deactivate_physical(physical_intid);
    }
}

#[test]
fn an_sgi_reaches_the_list_registers_with_its_source() {
    let (mut vgic, mut physical) = enabled_v2();
    vgic.distributor_v2_write(1, ISENABLER, Word, 1 << 6, &mut physical)
        .unwrap();
    let kick = vgic
        .distributor_v2_write(3, SGIR, Word, sgir(0, 0b10, 6), &mut physical)
        .unwrap();
    assert_eq!(kick.iter().collect::<Vec<_>>(), vec![1]);
    let mut lrs = SourceRecorder {
        inner: FakeListRegisters::new(4),
        sources: Vec::new(),
    };
    vgic.flush(1, &mut lrs).unwrap();
    assert_eq!(lrs.sources, vec![(0, 3)]);
    assert_eq!(lrs.inner.entries(), vec![(6, 0b01)]);
    vgic.assert_bookkeeping();
}

#[test]
fn bad_v2_accesses_are_errors() {
    let (mut vgic, mut physical) = enabled_v2();
    let mut err = |vcpu: usize, offset: u64, width: AccessWidth| {
        vgic.distributor_v2_read(vcpu, offset, width, &mut physical)
            .unwrap_err()
    };
    assert_eq!(err(0, 0x1000, Word), VgicError::OutsideFrame);
    assert_eq!(err(0, 0x102, Halfword), VgicError::UnsupportedWidth);
    assert_eq!(err(0, 0x101, Byte), VgicError::UnsupportedWidth);
    assert_eq!(err(0, 0x802, Word), VgicError::Unaligned);
    assert_eq!(err(0, CTLR, Doubleword), VgicError::UnsupportedWidth);
    assert_eq!(err(4, CTLR, Word), VgicError::NoSuchVcpu);
    assert_eq!(
        vgic.distributor_v2_write(9, SGIR, Word, 0, &mut physical),
        Err(VgicError::NoSuchVcpu)
    );
}

#[test]
fn sgis_from_vcpus_a_gicv2_cannot_number_are_handled_without_harm() {
    // A cell with more vCPUs than GICv2's 8 CPU interfaces: vCPU 10's SGI reaches the others,
    // and shows no source bit, which CPENDSGIR/SPENDSGIR cannot name.
    let mut vgic = Vgic::new(&VgicConfig {
        vcpu_count: 12,
        ..config()
    })
    .expect("valid config");
    let mut physical = FakePhysicalDistributor::default();
    vgic.distributor_v2_write(0, CTLR, Word, 1, &mut physical)
        .unwrap();
    vgic.distributor_v2_write(10, SGIR, Word, sgir(1, 0, 2), &mut physical)
        .unwrap();
    assert_eq!(pending_sgis(&mut vgic, 0), 1 << 2);
    assert_eq!(read(&mut vgic, 0, SPENDSGIR + 2, Byte), 0);
    vgic.distributor_v2_write(0, CPENDSGIR, Word, u64::from(u32::MAX), &mut physical)
        .unwrap();
    assert_eq!(
        pending_sgis(&mut vgic, 0),
        1 << 2,
        "no source bit names vCPU 10"
    );
}
