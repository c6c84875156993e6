//! Host tests of the vGIC against a fake vCPU interface and a fake physical distributor.
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use tock_registers::LocalRegisterCopy;

use super::*;
use crate::dev::gic::SGI_FRAME_OFFSET;

/// Guest-physical layout of the test cell: 4 vCPUs; SPI 33 the vUART (level), SPI 40 a virtual
/// edge source, SPI 48 a passed-through device.
const UART_SPI: u32 = 33;
const EDGE_SPI: u32 = 40;
const DEVICE_SPI: u32 = 48;

fn config() -> VgicConfig {
    VgicConfig {
        vcpu_count: 4,
        owned_spis: vec![
            SpiAssignment {
                intid: UART_SPI,
                kind: SpiKind::Virtual,
            },
            SpiAssignment {
                intid: EDGE_SPI,
                kind: SpiKind::Virtual,
            },
            SpiAssignment {
                intid: DEVICE_SPI,
                kind: SpiKind::Hardware,
            },
        ],
        spi_lines: 8,
        list_register_count: 4,
    }
}

fn vgic() -> Vgic {
    Vgic::new(&config()).expect("valid test config")
}

/// A vCPU interface with `count` list registers, and a guest that acknowledges and EOIs. The
/// physical interrupts of its CPU have their lines asserted unless `low_lines` names them.
struct FakeListRegisters {
    values: [u64; MAX_LIST_REGISTERS],
    count: usize,
    hcr: u64,
    /// Physical INTIDs whose lines are low.
    low_lines: Vec<u32>,
    /// Physical INTIDs deactivated through `deactivate_physical`, in order.
    deactivated: Vec<u32>,
}

type Lr = LocalRegisterCopy<u64, ICH_LR_EL2::Register>;

impl FakeListRegisters {
    fn new(count: usize) -> Self {
        Self {
            values: [0; MAX_LIST_REGISTERS],
            count,
            hcr: 1,
            low_lines: Vec::new(),
            deactivated: Vec::new(),
        }
    }

    /// (vINTID, State) of every non-invalid entry, in list-register order.
    fn entries(&self) -> Vec<(u32, u64)> {
        self.values[..self.count]
            .iter()
            .map(|&value| Lr::new(value))
            .filter(|lr| lr.read(ICH_LR_EL2::State) != 0)
            .map(|lr| {
                (
                    lr.read(ICH_LR_EL2::vINTID) as u32,
                    lr.read(ICH_LR_EL2::State),
                )
            })
            .collect()
    }

    fn entry(&self, intid: u32) -> Option<Lr> {
        self.values[..self.count]
            .iter()
            .map(|&value| Lr::new(value))
            .find(|lr| {
                lr.read(ICH_LR_EL2::State) != 0 && lr.read(ICH_LR_EL2::vINTID) == u64::from(intid)
            })
    }

    /// The guest reads ICC_IAR1_EL1: the highest-priority pending entry becomes active.
    fn guest_acknowledge(&mut self) -> Option<u32> {
        let (n, _) = self.values[..self.count]
            .iter()
            .enumerate()
            .filter(|(_, value)| Lr::new(**value).read(ICH_LR_EL2::State) & 0b01 != 0)
            .min_by_key(|(_, value)| Lr::new(**value).read(ICH_LR_EL2::Priority))?;
        let mut lr = Lr::new(self.values[n]);
        lr.modify(ICH_LR_EL2::State::Active);
        self.values[n] = lr.get();
        Some(lr.read(ICH_LR_EL2::vINTID) as u32)
    }

    /// The guest writes ICC_EOIR1_EL1 (EOImode 0: drop and deactivate).
    fn guest_eoi(&mut self, intid: u32) {
        for value in &mut self.values[..self.count] {
            let mut lr = Lr::new(*value);
            if lr.read(ICH_LR_EL2::vINTID) == u64::from(intid)
                && lr.read(ICH_LR_EL2::State) & 0b10 != 0
            {
                let state = lr.read(ICH_LR_EL2::State) & 0b01;
                lr.modify(ICH_LR_EL2::State.val(state));
                *value = lr.get();
            }
        }
    }

    fn uie(&self) -> bool {
        LocalRegisterCopy::<u64, ICH_HCR_EL2::Register>::new(self.hcr).is_set(ICH_HCR_EL2::UIE)
    }

    fn npie(&self) -> bool {
        LocalRegisterCopy::<u64, ICH_HCR_EL2::Register>::new(self.hcr).is_set(ICH_HCR_EL2::NPIE)
    }
}

impl ListRegisters for FakeListRegisters {
    fn count(&self) -> usize {
        self.count
    }
    fn read(&self, n: usize) -> u64 {
        self.values[n]
    }
    fn write(&mut self, n: usize, value: u64) {
        assert!(n < self.count, "write to unimplemented ICH_LR{n}_EL2");
        self.values[n] = value;
    }
    fn empty_list_registers(&self) -> u16 {
        // Empty: State invalid and (HW set or EOI clear).
        (0..self.count).fold(0, |bits, n| {
            let lr = Lr::new(self.values[n]);
            let empty = lr.read(ICH_LR_EL2::State) == 0
                && (lr.is_set(ICH_LR_EL2::HW) || !lr.is_set(ICH_LR_EL2::EOI));
            bits | u16::from(empty) << n
        })
    }
    fn hcr(&self) -> u64 {
        self.hcr
    }
    fn set_hcr(&mut self, value: u64) {
        self.hcr = value;
    }
    fn line_asserted(&mut self, physical_intid: u32) -> bool {
        !self.low_lines.contains(&physical_intid)
    }
    fn deactivate_physical(&mut self, physical_intid: u32) {
        self.deactivated.push(physical_intid);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhysicalOp {
    Enabled(u32, bool),
    Priority(u32, u8),
    Trigger(u32, Trigger),
    Route(u32, usize),
    Deactivate(u32, usize),
}

/// Records what reaches the physical distributor. Every line is asserted unless `low_lines`
/// names it (INTID, vCPU; the vCPU is ignored for SPIs).
#[derive(Default)]
struct FakePhysicalDistributor {
    log: Vec<PhysicalOp>,
    low_lines: Vec<(u32, usize)>,
}

impl PhysicalDistributor for FakePhysicalDistributor {
    fn set_enabled(&mut self, intid: u32, enabled: bool) {
        self.log.push(PhysicalOp::Enabled(intid, enabled));
    }
    fn set_priority(&mut self, intid: u32, priority: u8) {
        self.log.push(PhysicalOp::Priority(intid, priority));
    }
    fn set_trigger(&mut self, intid: u32, trigger: Trigger) {
        self.log.push(PhysicalOp::Trigger(intid, trigger));
    }
    fn route_to(&mut self, intid: u32, vcpu: usize) {
        self.log.push(PhysicalOp::Route(intid, vcpu));
    }
    fn deactivate(&mut self, intid: u32, vcpu: usize) {
        self.log.push(PhysicalOp::Deactivate(intid, vcpu));
    }
    fn line_asserted(&mut self, intid: u32, vcpu: usize) -> bool {
        !self
            .low_lines
            .iter()
            .any(|&(low, of)| low == intid && (of == vcpu || intid >= SPI_BASE_INTID))
    }
}

use AccessWidth::{Byte, Doubleword, Halfword, Word};

const GICD_CTLR_OFFSET: u64 = 0x0000;
const GICD_TYPER_OFFSET: u64 = 0x0004;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_ICPENDR: u64 = 0x0280;
const GICD_ISACTIVER: u64 = 0x0300;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0C00;
const GICD_IROUTER_OFFSET: u64 = 0x6000;
const SGI_BASE: u64 = SGI_FRAME_OFFSET;

/// A vGIC with the distributor on, ready to deliver.
fn enabled_vgic() -> (Vgic, FakePhysicalDistributor) {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    vgic.distributor_write(GICD_CTLR_OFFSET, Word, 0x12, &mut physical)
        .unwrap();
    (vgic, physical)
}

/// Offset of `intid`'s word in a one-bit-per-interrupt family, and its bit.
fn bit_register(base: u64, intid: u32) -> (u64, u64) {
    (base + u64::from(intid / 32) * 4, 1 << (intid % 32))
}

fn enable_spi(vgic: &mut Vgic, physical: &mut FakePhysicalDistributor, intid: u32) {
    let (offset, bit) = bit_register(GICD_ISENABLER, intid);
    vgic.distributor_write(offset, Word, bit, physical).unwrap();
}

fn redistributor(vcpu: u64, offset: u64) -> u64 {
    vcpu * REDISTRIBUTOR_STRIDE + offset
}

fn enable_private(vgic: &mut Vgic, physical: &mut FakePhysicalDistributor, vcpu: u64, bits: u64) {
    vgic.redistributor_write(redistributor(vcpu, SGI_BASE + 0x0100), Word, bits, physical)
        .unwrap();
}

fn set_private_priority(
    vgic: &mut Vgic,
    physical: &mut FakePhysicalDistributor,
    vcpu: u64,
    intid: u64,
    priority: u64,
) {
    vgic.redistributor_write(
        redistributor(vcpu, SGI_BASE + 0x0400 + intid),
        Byte,
        priority,
        physical,
    )
    .unwrap();
}

#[test]
fn config_errors_have_one_variant_each() {
    let with = |change: fn(&mut VgicConfig)| {
        let mut config = config();
        change(&mut config);
        Vgic::new(&config).err()
    };
    assert_eq!(
        with(|c| c.vcpu_count = 0),
        Some(VgicConfigError::VcpuCount(0))
    );
    assert_eq!(
        with(|c| c.vcpu_count = 17),
        Some(VgicConfigError::VcpuCount(17))
    );
    assert_eq!(
        with(|c| c.list_register_count = 1),
        Some(VgicConfigError::ListRegisterCount(1))
    );
    assert_eq!(
        with(|c| c.list_register_count = 17),
        Some(VgicConfigError::ListRegisterCount(17))
    );
    assert_eq!(
        with(|c| c.owned_spis.push(SpiAssignment {
            intid: 31,
            kind: SpiKind::Virtual
        })),
        Some(VgicConfigError::NotAnSpi(31))
    );
    assert_eq!(
        with(|c| c.owned_spis.push(SpiAssignment {
            intid: 1020,
            kind: SpiKind::Virtual
        })),
        Some(VgicConfigError::NotAnSpi(1020))
    );
    assert_eq!(
        with(|c| c.owned_spis.push(SpiAssignment {
            intid: 288,
            kind: SpiKind::Hardware
        })),
        Some(VgicConfigError::BeyondPlatform(288))
    );
    assert_eq!(
        with(|c| c.owned_spis.push(SpiAssignment {
            intid: 288,
            kind: SpiKind::Virtual
        })),
        None,
        "virtual SPIs are not bound by the platform's lines"
    );
    assert_eq!(
        with(|c| c.owned_spis.push(SpiAssignment {
            intid: UART_SPI,
            kind: SpiKind::Hardware
        })),
        Some(VgicConfigError::DuplicateSpi(UART_SPI))
    );
}

#[test]
fn distributor_reset_values() {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    // ARE_NS reads as one, EnableGrp1A and RWP as zero.
    assert_eq!(
        vgic.distributor_read(GICD_CTLR_OFFSET, Word, &mut physical),
        Ok(0x10)
    );
    let typer = LocalRegisterCopy::<u32, GICD_TYPER::Register>::new(
        vgic.distributor_read(GICD_TYPER_OFFSET, Word, &mut physical)
            .unwrap() as u32,
    );
    assert_eq!(
        typer.read(GICD_TYPER::ITLinesNumber),
        1,
        "SPI 48 needs 64 lines"
    );
    assert_eq!(typer.read(GICD_TYPER::CPUNumber), 3);
    assert_eq!(typer.read(GICD_TYPER::IDbits), 9);
    assert!(!typer.is_set(GICD_TYPER::LPIS));
    assert!(!typer.is_set(GICD_TYPER::MBIS));
    assert!(!typer.is_set(GICD_TYPER::No1N));
    assert_eq!(
        vgic.distributor_read(0x0008, Word, &mut physical),
        Ok(0x4300_043B),
        "GICD_IIDR"
    );
    assert_eq!(
        vgic.distributor_read(0x000C, Word, &mut physical),
        Ok(0),
        "GICD_TYPER2"
    );
    assert_eq!(
        vgic.distributor_read(0x0010, Word, &mut physical),
        Ok(0),
        "GICD_STATUSR"
    );
    assert_eq!(
        vgic.distributor_read(0xFFE8, Word, &mut physical)
            .map(|pidr2| pidr2 >> 4 & 0xF),
        Ok(3),
        "ArchRev"
    );
    for base in [
        0x0080,
        GICD_ISENABLER,
        GICD_ISPENDR,
        GICD_ISACTIVER,
        0x0D00,
        0x0E00,
    ] {
        for n in 0..32 {
            assert_eq!(
                vgic.distributor_read(base + 4 * n, Word, &mut physical),
                Ok(0),
                "{:#x}",
                base + 4 * n
            );
        }
    }
    assert_eq!(
        vgic.distributor_read(
            GICD_IROUTER_OFFSET + 8 * u64::from(UART_SPI),
            Doubleword,
            &mut physical
        ),
        Ok(0)
    );
}

#[test]
fn typer_covers_the_highest_owned_spi() {
    let mut config = config();
    config.owned_spis = vec![SpiAssignment {
        intid: 1019,
        kind: SpiKind::Virtual,
    }];
    let mut physical = FakePhysicalDistributor::default();
    let mut vgic = Vgic::new(&config).unwrap();
    assert_eq!(
        vgic.distributor_read(GICD_TYPER_OFFSET, Word, &mut physical)
            .map(|typer| typer & 0x1F),
        Ok(31)
    );
    config.owned_spis.clear();
    let mut vgic = Vgic::new(&config).unwrap();
    assert_eq!(
        vgic.distributor_read(GICD_TYPER_OFFSET, Word, &mut physical)
            .map(|typer| typer & 0x1F),
        Ok(0)
    );
}

#[test]
fn ctlr_keeps_only_enable_grp1a() {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    vgic.distributor_write(GICD_CTLR_OFFSET, Word, 0xFFFF_FFFF, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(GICD_CTLR_OFFSET, Word, &mut physical),
        Ok(0x12)
    );
    vgic.distributor_write(GICD_CTLR_OFFSET, Word, 0, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(GICD_CTLR_OFFSET, Word, &mut physical),
        Ok(0x10),
        "ARE_NS is RAO/WI"
    );
}

#[test]
fn enable_pending_active_families_touch_only_owned_spis() {
    let (mut vgic, mut physical) = enabled_vgic();
    // Set every bit of the register holding SPIs 32-63: only 33, 40 and 48 stick.
    let owned_bits = 1 << (UART_SPI - 32) | 1 << (EDGE_SPI - 32) | 1 << (DEVICE_SPI - 32);
    for (set, clear) in [
        (GICD_ISENABLER, GICD_ICENABLER),
        (GICD_ISPENDR, GICD_ICPENDR),
        (GICD_ISACTIVER, 0x0380),
    ] {
        vgic.distributor_write(set + 4, Word, 0xFFFF_FFFF, &mut physical)
            .unwrap();
        assert_eq!(
            vgic.distributor_read(set + 4, Word, &mut physical),
            Ok(owned_bits),
            "{set:#x}"
        );
        assert_eq!(
            vgic.distributor_read(clear + 4, Word, &mut physical),
            Ok(owned_bits),
            "{clear:#x}"
        );
        // SPIs 64+ and the SGI/PPI word (RAZ/WI with affinity routing) stay clear.
        vgic.distributor_write(set, Word, 0xFFFF_FFFF, &mut physical)
            .unwrap();
        vgic.distributor_write(set + 8, Word, 0xFFFF_FFFF, &mut physical)
            .unwrap();
        assert_eq!(vgic.distributor_read(set, Word, &mut physical), Ok(0));
        assert_eq!(vgic.distributor_read(set + 8, Word, &mut physical), Ok(0));
        vgic.distributor_write(clear + 4, Word, 1 << (UART_SPI - 32), &mut physical)
            .unwrap();
        assert_eq!(
            vgic.distributor_read(set + 4, Word, &mut physical),
            Ok(owned_bits & !(1 << (UART_SPI - 32)))
        );
    }
    assert!(
        physical
            .log
            .contains(&PhysicalOp::Enabled(DEVICE_SPI, true))
    );
    assert!(
        !physical
            .log
            .iter()
            .any(|op| matches!(op, PhysicalOp::Enabled(intid, _) if *intid != DEVICE_SPI))
    );
}

#[test]
fn igroupr_igrpmodr_nsacr_itargetsr_are_raz_wi() {
    let (mut vgic, mut physical) = enabled_vgic();
    for offset in [0x0084, 0x0D04, 0x0E08, 0x0820] {
        vgic.distributor_write(offset, Word, 0xFFFF_FFFF, &mut physical)
            .unwrap();
        assert_eq!(
            vgic.distributor_read(offset, Word, &mut physical),
            Ok(0),
            "{offset:#x}"
        );
    }
    assert_eq!(
        vgic.distributor_read(0x0821, Byte, &mut physical),
        Ok(0),
        "ITARGETSR is byte-accessible"
    );
}

#[test]
fn ipriorityr_takes_bytes_and_words() {
    let (mut vgic, mut physical) = enabled_vgic();
    let word = GICD_IPRIORITYR + u64::from(UART_SPI & !3);
    // Word write over SPIs 32-35: only 33 is owned.
    vgic.distributor_write(word, Word, 0x4433_2211, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(word, Word, &mut physical),
        Ok(0x0000_2200)
    );
    vgic.distributor_write(
        GICD_IPRIORITYR + u64::from(UART_SPI),
        Byte,
        0xA0,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        vgic.distributor_read(GICD_IPRIORITYR + u64::from(UART_SPI), Byte, &mut physical),
        Ok(0xA0)
    );
    assert_eq!(
        vgic.distributor_read(word, Word, &mut physical),
        Ok(0x0000_A000)
    );
    assert_eq!(
        vgic.distributor_read(word, Halfword, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    assert_eq!(
        vgic.distributor_read(word, Doubleword, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    // SGI/PPI priorities live in the redistributors.
    vgic.distributor_write(GICD_IPRIORITYR, Word, 0xFFFF_FFFF, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(GICD_IPRIORITYR, Word, &mut physical),
        Ok(0)
    );
    // A hardware SPI's priority reaches the physical distributor.
    vgic.distributor_write(
        GICD_IPRIORITYR + u64::from(DEVICE_SPI),
        Byte,
        0x80,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        physical.log.last(),
        Some(&PhysicalOp::Priority(DEVICE_SPI, 0x80))
    );
}

#[test]
fn icfgr_programs_trigger_of_owned_spis() {
    let (mut vgic, mut physical) = enabled_vgic();
    let offset = GICD_ICFGR + u64::from(DEVICE_SPI / 16) * 4;
    vgic.distributor_write(offset, Word, 0xFFFF_FFFF, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(offset, Word, &mut physical),
        Ok(0b10 << (2 * (DEVICE_SPI % 16)))
    );
    assert_eq!(
        physical.log.last(),
        Some(&PhysicalOp::Trigger(DEVICE_SPI, Trigger::Edge))
    );
    assert_eq!(
        vgic.distributor_read(GICD_ICFGR, Word, &mut physical),
        Ok(0),
        "SGIs are RAZ in the distributor"
    );
}

#[test]
fn irouter_routes_only_inside_the_cell() {
    let (mut vgic, mut physical) = enabled_vgic();
    let irouter = GICD_IROUTER_OFFSET + 8 * u64::from(DEVICE_SPI);
    vgic.distributor_write(irouter, Doubleword, 2, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(irouter, Doubleword, &mut physical),
        Ok(2)
    );
    assert_eq!(physical.log.last(), Some(&PhysicalOp::Route(DEVICE_SPI, 2)));
    // Affinities that are not a vCPU of the cell: ignored, the route stays.
    for outside in [4, 0xFF, 1 << 8, 1 << 16, 1 << 32, 0xFF_0000_0000] {
        vgic.distributor_write(irouter, Doubleword, outside, &mut physical)
            .unwrap();
        assert_eq!(
            vgic.distributor_read(irouter, Doubleword, &mut physical),
            Ok(2),
            "{outside:#x}"
        );
    }
    vgic.distributor_write(irouter + 4, Word, 1, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(irouter, Doubleword, &mut physical),
        Ok(2),
        "Aff3 = 1 is outside"
    );
    // 1 of N: the physical SPI still goes to one CPU of the cell.
    vgic.distributor_write(irouter, Word, 0x8000_0003, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(irouter, Word, &mut physical),
        Ok(0x8000_0000)
    );
    assert_eq!(
        vgic.distributor_read(irouter + 4, Word, &mut physical),
        Ok(0)
    );
    assert_eq!(physical.log.last(), Some(&PhysicalOp::Route(DEVICE_SPI, 0)));
    // Unowned and SGI/PPI IROUTERs are RAZ/WI.
    let unowned = GICD_IROUTER_OFFSET + 8 * 50;
    vgic.distributor_write(unowned, Doubleword, 1, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.distributor_read(unowned, Doubleword, &mut physical),
        Ok(0)
    );
    assert_eq!(
        vgic.distributor_read(GICD_IROUTER_OFFSET + 8, Doubleword, &mut physical),
        Ok(0)
    );
}

#[test]
fn bad_accesses_are_errors() {
    let (mut vgic, mut physical) = enabled_vgic();
    assert_eq!(
        vgic.distributor_read(0x1_0000, Word, &mut physical),
        Err(VgicError::OutsideFrame)
    );
    assert_eq!(
        vgic.distributor_read(0xFFFC, Doubleword, &mut physical),
        Err(VgicError::OutsideFrame)
    );
    assert_eq!(
        vgic.distributor_read(u64::MAX, Byte, &mut physical),
        Err(VgicError::OutsideFrame)
    );
    assert_eq!(
        vgic.distributor_read(0x0102, Word, &mut physical),
        Err(VgicError::Unaligned)
    );
    assert_eq!(
        vgic.distributor_read(GICD_CTLR_OFFSET, Byte, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    assert_eq!(
        vgic.distributor_read(GICD_ISENABLER, Doubleword, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    assert_eq!(
        vgic.distributor_read(GICD_IROUTER_OFFSET + 8 * 40, Byte, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    assert_eq!(
        vgic.distributor_write(0x0100, Halfword, 1, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    assert_eq!(
        vgic.distributor_read(0x0700 + 1, Word, &mut physical),
        Err(VgicError::Unaligned)
    );
    // Reserved space is RAZ/WI.
    assert_eq!(vgic.distributor_read(0x0040, Word, &mut physical), Ok(0));
    assert_eq!(
        vgic.distributor_write(0x2000, Doubleword, u64::MAX, &mut physical),
        Ok(VcpuSet::empty())
    );
    assert_eq!(
        vgic.redistributor_read(4 * REDISTRIBUTOR_STRIDE, Word, &mut physical),
        Err(VgicError::OutsideFrame)
    );
    assert_eq!(
        vgic.redistributor_read(u64::MAX - 3, Word, &mut physical),
        Err(VgicError::OutsideFrame)
    );
    assert_eq!(
        vgic.redistributor_read(0x0004, Byte, &mut physical),
        Err(VgicError::UnsupportedWidth)
    );
    assert_eq!(
        vgic.redistributor_read(0x000C, Doubleword, &mut physical),
        Err(VgicError::Unaligned)
    );
}

#[test]
fn redistributor_typer_names_the_vcpu_and_marks_the_last() {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    for vcpu in 0..4 {
        let typer = vgic
            .redistributor_read(redistributor(vcpu, 0x0008), Doubleword, &mut physical)
            .unwrap();
        let typer = LocalRegisterCopy::<u64, GICR_TYPER::Register>::new(typer);
        assert_eq!(
            typer.read(GICR_TYPER::Affinity_Value),
            vcpu,
            "Aff0 = vCPU index"
        );
        assert_eq!(typer.read(GICR_TYPER::Processor_Number), vcpu);
        assert_eq!(typer.is_set(GICR_TYPER::Last), vcpu == 3);
        assert!(!typer.is_set(GICR_TYPER::PLPIS));
        let low = vgic
            .redistributor_read(redistributor(vcpu, 0x0008), Word, &mut physical)
            .unwrap();
        let high = vgic
            .redistributor_read(redistributor(vcpu, 0x000C), Word, &mut physical)
            .unwrap();
        assert_eq!(high << 32 | low, typer.get());
    }
}

#[test]
fn redistributor_identity_and_waker_handshake() {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    let waker = redistributor(1, 0x0014);
    assert_eq!(
        vgic.redistributor_read(waker, Word, &mut physical),
        Ok(0b110),
        "asleep at reset"
    );
    vgic.redistributor_write(waker, Word, 0, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.redistributor_read(waker, Word, &mut physical),
        Ok(0),
        "awake: ChildrenAsleep follows"
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(0, 0x0014), Word, &mut physical),
        Ok(0b110),
        "vCPU 0 untouched"
    );
    vgic.redistributor_write(waker, Word, 0b010, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.redistributor_read(waker, Word, &mut physical),
        Ok(0b110)
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(2, 0x0004), Word, &mut physical),
        Ok(0x4300_043B),
        "GICR_IIDR"
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(2, 0xFFE8), Word, &mut physical)
            .map(|v| v >> 4 & 0xF),
        Ok(3)
    );
    vgic.redistributor_write(redistributor(2, 0x0000), Word, 1, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.redistributor_read(redistributor(2, 0x0000), Word, &mut physical),
        Ok(0),
        "no LPIs"
    );
}

#[test]
fn sgi_base_registers_are_per_vcpu() {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    enable_private(&mut vgic, &mut physical, 1, 0x0800_0003);
    assert_eq!(
        vgic.redistributor_read(redistributor(1, SGI_BASE + 0x0100), Word, &mut physical),
        Ok(0x0800_0003)
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(1, SGI_BASE + 0x0180), Word, &mut physical),
        Ok(0x0800_0003)
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(0, SGI_BASE + 0x0100), Word, &mut physical),
        Ok(0)
    );
    vgic.redistributor_write(redistributor(1, SGI_BASE + 0x0180), Word, 1, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.redistributor_read(redistributor(1, SGI_BASE + 0x0100), Word, &mut physical),
        Ok(0x0800_0002)
    );
    // Priorities by byte and by word.
    set_private_priority(&mut vgic, &mut physical, 1, 27, 0x90);
    assert_eq!(
        vgic.redistributor_read(redistributor(1, SGI_BASE + 0x0418), Word, &mut physical),
        Ok(0x9000_0000)
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(1, SGI_BASE + 0x041B), Byte, &mut physical),
        Ok(0x90)
    );
    // ICFGR0: SGIs edge only; ICFGR1: PPIs programmable.
    let icfgr0 = redistributor(1, SGI_BASE + 0x0C00);
    vgic.redistributor_write(icfgr0, Word, 0, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.redistributor_read(icfgr0, Word, &mut physical),
        Ok(0xAAAA_AAAA)
    );
    let icfgr1 = redistributor(1, SGI_BASE + 0x0C04);
    assert_eq!(vgic.redistributor_read(icfgr1, Word, &mut physical), Ok(0));
    vgic.redistributor_write(icfgr1, Word, 0x2 << 22, &mut physical)
        .unwrap();
    assert_eq!(
        vgic.redistributor_read(icfgr1, Word, &mut physical),
        Ok(0x2 << 22)
    );
    // IGROUPR0, IGRPMODR0 and NSACR are RAZ/WI; the SPI words of SGI_base hold nothing.
    for offset in [0x0080, 0x0D00, 0x0E00, 0x0104] {
        vgic.redistributor_write(
            redistributor(1, SGI_BASE + offset),
            Word,
            u64::MAX,
            &mut physical,
        )
        .unwrap();
        assert_eq!(
            vgic.redistributor_read(redistributor(1, SGI_BASE + offset), Word, &mut physical),
            Ok(0)
        );
    }
    assert!(
        physical.log.is_empty(),
        "private interrupts never reach the physical distributor"
    );
}

#[test]
fn level_line_still_high_after_eoi_is_pending_again() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, UART_SPI);
    assert_eq!(
        vgic.set_level(UART_SPI, true),
        Ok(Delivery::Ready { vcpu: 0 })
    );
    assert!(
        vgic.flush(0, &mut lrs).unwrap().holds_list_registers,
        "flush reports the entry it wrote"
    );
    let lr = lrs.entry(UART_SPI).expect("vUART line in a list register");
    assert_eq!(lr.read(ICH_LR_EL2::State), 0b01);
    assert!(lr.is_set(ICH_LR_EL2::Group));
    assert!(
        lr.is_set(ICH_LR_EL2::EOI),
        "level: maintenance on EOI to resample"
    );
    assert!(!lr.is_set(ICH_LR_EL2::HW));

    assert_eq!(lrs.guest_acknowledge(), Some(UART_SPI));
    lrs.guest_eoi(UART_SPI);
    assert_eq!(
        lrs.empty_list_registers() & 1,
        0,
        "EOI bit keeps the entry for maintenance"
    );
    vgic.sync(0, &mut lrs);
    assert!(lrs.entries().is_empty());
    assert!(vgic.has_deliverable(0), "line still high");
    vgic.flush(0, &mut lrs).unwrap();
    assert_eq!(lrs.entries(), vec![(UART_SPI, 0b01)]);

    // The device drops its line before the guest EOIs: no second interrupt.
    assert_eq!(lrs.guest_acknowledge(), Some(UART_SPI));
    vgic.set_level(UART_SPI, false).unwrap();
    lrs.guest_eoi(UART_SPI);
    vgic.sync(0, &mut lrs);
    assert!(
        !vgic.flush(0, &mut lrs).unwrap().holds_list_registers,
        "nothing written, nothing to sync"
    );
    assert!(lrs.entries().is_empty());
    assert!(!vgic.has_deliverable(0));
}

#[test]
fn level_line_dropped_before_the_guest_takes_it_is_retracted() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, UART_SPI);
    vgic.set_level(UART_SPI, true).unwrap();
    vgic.flush(0, &mut lrs).unwrap();
    vgic.set_level(UART_SPI, false).unwrap();
    vgic.sync(0, &mut lrs);
    vgic.flush(0, &mut lrs).unwrap();
    assert!(lrs.entries().is_empty());
}

#[test]
fn more_pending_than_list_registers_requests_maintenance_in_priority_order() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_private(&mut vgic, &mut physical, 2, 0xFFFF);
    let priorities = [
        (0, 0xA0),
        (1, 0x20),
        (2, 0x80),
        (3, 0x40),
        (4, 0x60),
        (5, 0x10),
    ];
    for (sgi, priority) in priorities {
        set_private_priority(&mut vgic, &mut physical, 2, sgi, priority);
        assert_eq!(vgic.inject(sgi as u32, 2), Ok(Delivery::Ready { vcpu: 2 }));
    }
    vgic.flush(2, &mut lrs).unwrap();
    let mut held: Vec<u32> = lrs.entries().iter().map(|&(intid, _)| intid).collect();
    held.sort();
    assert_eq!(held, vec![1, 3, 4, 5], "the four highest priorities");
    assert!(
        lrs.npie(),
        "maintenance once the guest has taken the pending ones"
    );
    assert!(!lrs.uie());

    // The guest takes all four in priority order; the NP maintenance interrupt exits it.
    let taken: Vec<u32> = core::iter::from_fn(|| lrs.guest_acknowledge()).collect();
    assert_eq!(taken, vec![5, 1, 3, 4]);
    vgic.sync(2, &mut lrs);
    vgic.flush(2, &mut lrs).unwrap();
    assert_eq!(lrs.entries().len(), 4);
    assert!(
        lrs.entries().iter().all(|&(_, state)| state == 0b10),
        "active ones keep their registers"
    );
    assert!(
        lrs.uie() && !lrs.npie(),
        "only active entries: wait for underflow"
    );

    for intid in [5, 1, 3] {
        lrs.guest_eoi(intid);
    }
    vgic.sync(2, &mut lrs);
    vgic.flush(2, &mut lrs).unwrap();
    let mut entries = lrs.entries();
    entries.sort();
    assert_eq!(entries, vec![(0, 0b01), (2, 0b01), (4, 0b10)]);
    assert!(!lrs.uie() && !lrs.npie(), "everything fits: no maintenance");
}

#[test]
fn disabled_or_distributor_off_is_held() {
    let mut vgic = vgic();
    let mut physical = FakePhysicalDistributor::default();
    let mut lrs = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, EDGE_SPI);
    assert_eq!(
        vgic.inject(EDGE_SPI, 0),
        Ok(Delivery::Held),
        "distributor off"
    );
    vgic.flush(0, &mut lrs).unwrap();
    assert!(lrs.entries().is_empty());
    let kick = vgic
        .distributor_write(GICD_CTLR_OFFSET, Word, 0x2, &mut physical)
        .unwrap();
    assert_eq!(
        kick.iter().collect::<Vec<_>>(),
        vec![0],
        "enabling the distributor kicks the target"
    );
    assert_eq!(
        vgic.inject(UART_SPI, 0),
        Ok(Delivery::Held),
        "SPI 33 disabled"
    );
    assert_eq!(vgic.inject(50, 0), Err(VgicError::NotOwned(50)));
    assert_eq!(vgic.inject(27, 4), Err(VgicError::NoSuchVcpu));
}

#[test]
fn hardware_linked_ppi_carries_the_physical_intid() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_private(&mut vgic, &mut physical, 1, 1 << 27);
    assert_eq!(
        vgic.inject_hardware(1, 27, 27),
        Ok(Delivery::Ready { vcpu: 1 })
    );
    vgic.flush(1, &mut lrs).unwrap();
    let lr = lrs.entry(27).unwrap();
    assert!(lr.is_set(ICH_LR_EL2::HW));
    assert_eq!(lr.read(ICH_LR_EL2::pINTID), 27);
    assert_eq!(lr.read(ICH_LR_EL2::State), 0b01);
    lrs.guest_acknowledge();
    vgic.sync(1, &mut lrs);
    vgic.flush(1, &mut lrs).unwrap();
    assert_eq!(
        lrs.entry(27).map(|lr| lr.read(ICH_LR_EL2::State)),
        Some(0b10),
        "active, still linked"
    );
    assert!(lrs.entry(27).unwrap().is_set(ICH_LR_EL2::HW));
    lrs.guest_eoi(27);
    vgic.sync(1, &mut lrs);
    vgic.flush(1, &mut lrs).unwrap();
    assert!(lrs.entries().is_empty());
    assert!(
        physical.log.is_empty(),
        "the guest's EOI deactivated the physical timer itself"
    );

    assert_eq!(
        vgic.inject_hardware(1, 27, 26),
        Ok(Delivery::Ready { vcpu: 1 })
    );
    let ispendr0 = redistributor(1, SGI_BASE + 0x0200);
    assert_eq!(
        vgic.redistributor_read(ispendr0, Word, &mut physical),
        Ok(1 << 27)
    );
    vgic.redistributor_write(
        redistributor(1, SGI_BASE + 0x0280),
        Word,
        1 << 27,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        physical.log,
        vec![PhysicalOp::Deactivate(26, 1)],
        "dropped instance deactivated"
    );

    assert_eq!(
        vgic.inject_hardware(1, 27, 1020),
        Err(VgicError::InvalidPhysicalIntid(1020))
    );
    assert_eq!(
        vgic.inject_hardware(1, 27, DEVICE_SPI),
        Err(VgicError::InvalidPhysicalIntid(DEVICE_SPI)),
        "a PPI links to a PPI"
    );
    assert_eq!(
        vgic.inject_hardware(1, DEVICE_SPI, 49),
        Err(VgicError::InvalidPhysicalIntid(49)),
        "a hardware SPI links to itself"
    );
    assert_eq!(vgic.inject_hardware(1, 5, 27), Err(VgicError::NotOwned(5)));
    assert_eq!(
        vgic.inject_hardware(1, UART_SPI, 33),
        Err(VgicError::NotOwned(UART_SPI))
    );
    assert_eq!(
        vgic.inject_hardware(0, 50, 50),
        Err(VgicError::NotOwned(50))
    );
}

#[test]
fn hardware_spi_goes_to_its_routed_vcpu() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, DEVICE_SPI);
    vgic.distributor_write(
        GICD_IROUTER_OFFSET + 8 * u64::from(DEVICE_SPI),
        Doubleword,
        3,
        &mut physical,
    )
    .unwrap();
    assert_eq!(
        vgic.inject_hardware(0, DEVICE_SPI, DEVICE_SPI),
        Ok(Delivery::Ready { vcpu: 3 })
    );
    vgic.flush(0, &mut lrs).unwrap();
    assert!(lrs.entries().is_empty(), "not vCPU 0's");
    vgic.flush(3, &mut lrs).unwrap();
    assert!(lrs.entry(DEVICE_SPI).unwrap().is_set(ICH_LR_EL2::HW));
}

#[test]
fn any_routed_spi_is_taken_once() {
    let (mut vgic, mut physical) = enabled_vgic();
    let (mut lrs0, mut lrs1) = (FakeListRegisters::new(4), FakeListRegisters::new(4));
    enable_spi(&mut vgic, &mut physical, EDGE_SPI);
    vgic.distributor_write(
        GICD_IROUTER_OFFSET + 8 * u64::from(EDGE_SPI),
        Doubleword,
        1 << 31,
        &mut physical,
    )
    .unwrap();
    assert_eq!(vgic.inject(EDGE_SPI, 1), Ok(Delivery::Ready { vcpu: 1 }));
    vgic.flush(1, &mut lrs1).unwrap();
    vgic.flush(0, &mut lrs0).unwrap();
    assert_eq!(lrs1.entries(), vec![(EDGE_SPI, 0b01)]);
    assert!(lrs0.entries().is_empty());
    // Acknowledged on vCPU 1 then pending again: it stays with vCPU 1 until deactivated.
    lrs1.guest_acknowledge();
    vgic.sync(1, &mut lrs1);
    assert_eq!(vgic.inject(EDGE_SPI, 0), Ok(Delivery::Held));
    vgic.flush(0, &mut lrs0).unwrap();
    assert!(lrs0.entries().is_empty());
    vgic.flush(1, &mut lrs1).unwrap();
    assert_eq!(lrs1.entries(), vec![(EDGE_SPI, 0b11)]);
}

#[test]
fn sgi1r_reaches_only_the_cells_vcpus() {
    let (mut vgic, mut physical) = enabled_vgic();
    for vcpu in 0..4 {
        enable_private(&mut vgic, &mut physical, vcpu, 0xFFFF);
    }
    let pending_on = |vgic: &mut Vgic, sgi: u32| -> Vec<usize> {
        let mut physical = FakePhysicalDistributor::default();
        (0..4)
            .filter(|&vcpu| {
                vgic.redistributor_read(redistributor(vcpu, SGI_BASE + 0x0200), Word, &mut physical)
                    .unwrap()
                    & 1 << sgi
                    != 0
            })
            .map(|vcpu| vcpu as usize)
            .collect()
    };
    let sgi1r = |intid: u64, target_list: u64| intid << 24 | target_list;

    // IRM: everyone but the sender.
    let kick = vgic.write_sgi1r(1, 1 << 40 | sgi1r(1, 0)).unwrap();
    assert_eq!(kick.iter().collect::<Vec<_>>(), vec![0, 2, 3]);
    assert_eq!(pending_on(&mut vgic, 1), vec![0, 2, 3]);

    // Target list: Aff0 1 and 2 (and 5, which the cell does not have).
    let kick = vgic.write_sgi1r(0, sgi1r(2, 0b10_0110)).unwrap();
    assert_eq!(kick.iter().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(pending_on(&mut vgic, 2), vec![1, 2]);

    // Affinities outside the cell: Aff1, Aff2, Aff3 or a range beyond vCPU 15.
    for outside in [1 << 16, 1 << 32, 1 << 48, 1 << 44] {
        assert_eq!(
            vgic.write_sgi1r(0, outside | sgi1r(3, 0xFFFF)),
            Ok(VcpuSet::empty())
        );
    }
    assert!(pending_on(&mut vgic, 3).is_empty());

    // Self-targeted SGIs are allowed; a disabled SGI pends but kicks nobody.
    vgic.redistributor_write(
        redistributor(0, SGI_BASE + 0x0180),
        Word,
        1 << 4,
        &mut physical,
    )
    .unwrap();
    assert_eq!(vgic.write_sgi1r(0, sgi1r(4, 0b1)), Ok(VcpuSet::empty()));
    assert_eq!(pending_on(&mut vgic, 4), vec![0]);
    assert_eq!(vgic.write_sgi1r(4, 0), Err(VgicError::NoSuchVcpu));
}

#[test]
fn flush_repairs_stale_list_registers_and_reset_restores_power_on_state() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, DEVICE_SPI);
    vgic.distributor_write(
        GICD_IROUTER_OFFSET + 8 * u64::from(DEVICE_SPI),
        Doubleword,
        1,
        &mut physical,
    )
    .unwrap();
    vgic.inject_hardware(1, DEVICE_SPI, DEVICE_SPI).unwrap();
    vgic.inject_hardware(2, 30, 26).unwrap();
    vgic.redistributor_write(redistributor(1, 0x0014), Word, 0, &mut physical)
        .unwrap();
    vgic.flush(1, &mut lrs).unwrap();
    assert_eq!(lrs.entries().len(), 1);

    physical.log.clear();
    vgic.reset(&mut physical);
    assert_eq!(
        physical.log,
        vec![
            PhysicalOp::Deactivate(26, 2),
            PhysicalOp::Enabled(DEVICE_SPI, false),
            PhysicalOp::Deactivate(DEVICE_SPI, 0),
            PhysicalOp::Route(DEVICE_SPI, 0),
        ]
    );
    assert_eq!(
        vgic.distributor_read(GICD_CTLR_OFFSET, Word, &mut physical),
        Ok(0x10)
    );
    assert_eq!(
        vgic.distributor_read(GICD_ISENABLER + 4, Word, &mut physical),
        Ok(0)
    );
    assert_eq!(
        vgic.distributor_read(GICD_ISPENDR + 4, Word, &mut physical),
        Ok(0)
    );
    assert_eq!(
        vgic.distributor_read(
            GICD_IROUTER_OFFSET + 8 * u64::from(DEVICE_SPI),
            Doubleword,
            &mut physical
        ),
        Ok(0)
    );
    assert_eq!(
        vgic.redistributor_read(redistributor(1, 0x0014), Word, &mut physical),
        Ok(0b110)
    );
    // The entry left in vCPU 1's list register by the old incarnation is cleared on entry.
    vgic.flush(1, &mut lrs).unwrap();
    assert!(lrs.entries().is_empty());
}

/// xorshift64*: deterministic, no dependency.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// A guest offset biased towards the register families, sometimes anything at all.
fn random_offset(prng: &mut Prng, frame: u64) -> u64 {
    const INTERESTING: [u64; 8] = [
        0x0000, 0x0104, 0x0204, 0x0304, 0x0420, 0x0C08, 0x6108, 0x6180,
    ];
    match prng.below(9) {
        0 => prng.next(),
        8 => INTERESTING[prng.below(8) as usize],
        1 => prng.below(frame + 0x100),
        2 => 0x6000 + prng.below(0x2000),
        3 => 0x1_0000 + prng.below(0x1000),
        _ => prng.below(0x1000),
    }
}

fn random_width(prng: &mut Prng) -> AccessWidth {
    [Byte, Halfword, Word, Doubleword][prng.below(4) as usize]
}

/// A cell never gains an interrupt it does not own, and no route leaves it: thousands of random
/// guest accesses, SGI writes and deliveries, then every unowned SPI is checked through the
/// registers, the list registers and what reached the physical distributor.
#[test]
fn random_guest_accesses_never_leak_out_of_the_cell() {
    for seed in 1..=8u64 {
        let mut prng = Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut vgic = vgic();
        let mut physical = FakePhysicalDistributor::default();
        let mut lrs: Vec<FakeListRegisters> = (0..4).map(|_| FakeListRegisters::new(4)).collect();
        let mut delivered = 0;
        for _ in 0..5_000 {
            let vcpu = prng.below(4) as usize;
            let value = prng.next();
            match prng.below(10) {
                0..=3 => {
                    let _ = vgic.distributor_write(
                        random_offset(&mut prng, 0x1_0000),
                        random_width(&mut prng),
                        value,
                        &mut physical,
                    );
                }
                4..=5 => {
                    let offset = prng.below(4) * REDISTRIBUTOR_STRIDE
                        + random_offset(&mut prng, REDISTRIBUTOR_STRIDE);
                    let _ = vgic.redistributor_write(
                        offset,
                        random_width(&mut prng),
                        value,
                        &mut physical,
                    );
                }
                6 => {
                    let _ = vgic.distributor_read(
                        random_offset(&mut prng, 0x1_0000),
                        random_width(&mut prng),
                        &mut physical,
                    );
                    let _ = vgic.redistributor_read(
                        prng.next() % (5 * REDISTRIBUTOR_STRIDE),
                        random_width(&mut prng),
                        &mut physical,
                    );
                }
                7 => {
                    let _ = vgic.write_sgi1r(vcpu, value);
                }
                8 => {
                    let intid =
                        [UART_SPI, EDGE_SPI, DEVICE_SPI, 27, 1, 50, 1023][prng.below(7) as usize];
                    let _ = vgic.inject(intid, vcpu);
                    let _ = vgic.inject_hardware(vcpu, intid, intid);
                    let _ = vgic.set_level(intid, value & 1 != 0);
                }
                _ => {
                    let lrs = &mut lrs[vcpu];
                    vgic.sync(vcpu, lrs);
                    vgic.flush(vcpu, lrs).unwrap();
                    delivered += lrs.entries().len();
                    if let Some(intid) = lrs.guest_acknowledge()
                        && value & 1 != 0
                    {
                        lrs.guest_eoi(intid);
                    }
                }
            }
            vgic.assert_bookkeeping();
        }
        assert!(
            delivered > 20,
            "seed {seed}: the run must exercise delivery ({delivered})"
        );
        let owned = [UART_SPI, EDGE_SPI, DEVICE_SPI];
        for intid in (SPI_BASE_INTID..SPI_END_INTID).filter(|intid| !owned.contains(intid)) {
            for base in [GICD_ISENABLER, GICD_ISPENDR, GICD_ISACTIVER] {
                let (offset, bit) = bit_register(base, intid);
                assert_eq!(
                    vgic.distributor_read(offset, Word, &mut physical).unwrap() & bit,
                    0,
                    "seed {seed} INTID {intid}"
                );
            }
            let irouter = GICD_IROUTER_OFFSET + 8 * u64::from(intid);
            assert_eq!(
                vgic.distributor_read(irouter, Doubleword, &mut physical),
                Ok(0)
            );
        }
        for intid in owned {
            let route = vgic
                .distributor_read(
                    GICD_IROUTER_OFFSET + 8 * u64::from(intid),
                    Doubleword,
                    &mut physical,
                )
                .unwrap();
            assert!(
                route == 1 << 31 || route < 4,
                "seed {seed}: SPI {intid} routed to {route:#x}"
            );
        }
        for lrs in &lrs {
            for (intid, _) in lrs.entries() {
                assert!(
                    intid < 32 || owned.contains(&intid),
                    "seed {seed}: INTID {intid} in a list register"
                );
            }
        }
        for op in &physical.log {
            match *op {
                PhysicalOp::Enabled(intid, _)
                | PhysicalOp::Priority(intid, _)
                | PhysicalOp::Trigger(intid, _) => {
                    assert_eq!(intid, DEVICE_SPI, "seed {seed}: {op:?}")
                }
                PhysicalOp::Route(intid, vcpu) => {
                    assert!(intid == DEVICE_SPI && vcpu < 4, "seed {seed}: {op:?}")
                }
                PhysicalOp::Deactivate(intid, vcpu) => {
                    assert!(
                        (intid == DEVICE_SPI || (16..32).contains(&intid)) && vcpu < 4,
                        "seed {seed}: {op:?}"
                    )
                }
            }
        }
    }
}

/// The guest takes and completes (acknowledge, then EOI) every pending entry, as a handler does.
fn guest_handles_everything(lrs: &mut FakeListRegisters) -> Vec<u32> {
    let mut taken = Vec::new();
    while let Some(intid) = lrs.guest_acknowledge() {
        lrs.guest_eoi(intid);
        taken.push(intid);
    }
    taken
}

#[test]
fn direct_timer_forwarding_writes_what_inject_and_flush_would() {
    // Two vGICs in the same state: one forwards the timer with the direct path, the other with
    // `inject_hardware` + `flush`. What the guest sees in the list registers must be the same.
    let (mut direct, mut physical) = enabled_vgic();
    let (mut reference, mut physical_reference) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    let mut reference_lrs = FakeListRegisters::new(4);
    for (vgic, physical) in [
        (&mut direct, &mut physical),
        (&mut reference, &mut physical_reference),
    ] {
        enable_private(vgic, physical, 0, 1 << 27 | 1 << 3);
        set_private_priority(vgic, physical, 0, 27, 0x40);
    }
    direct.flush(0, &mut lrs).unwrap();
    reference.flush(0, &mut reference_lrs).unwrap();
    for round in 0..4 {
        // Round 2: another interrupt of the vCPU becomes pending first, so the direct path must
        // not assume the list registers are complete.
        if round == 2 {
            direct.inject(3, 0).unwrap();
            reference.inject(3, 0).unwrap();
        }
        let outcome = direct.forward_ppi_direct(0, 27, &mut lrs).unwrap();
        if outcome == Direct::NeedsFlush {
            direct.flush(0, &mut lrs).unwrap();
        }
        assert_eq!(
            outcome == Direct::NeedsFlush,
            round == 2,
            "round {round}: {outcome:?}"
        );
        reference.inject_hardware(0, 27, 27).unwrap();
        reference.flush(0, &mut reference_lrs).unwrap();
        let mut seen = lrs.entries();
        let mut expected = reference_lrs.entries();
        seen.sort_unstable();
        expected.sort_unstable();
        assert_eq!(seen, expected, "round {round}");
        let timer = lrs.entry(27).expect("the timer is in a list register");
        assert!(timer.is_set(ICH_LR_EL2::HW));
        assert_eq!(timer.read(ICH_LR_EL2::pINTID), 27);
        assert_eq!(timer.read(ICH_LR_EL2::Priority), 0x40);
        let mut taken = guest_handles_everything(&mut lrs);
        let mut taken_reference = guest_handles_everything(&mut reference_lrs);
        taken.sort_unstable();
        taken_reference.sort_unstable();
        assert_eq!(taken, taken_reference, "round {round}");
        direct.assert_bookkeeping();
    }
    // A disabled timer is held, exactly as a flush would leave it.
    for vgic in [&mut direct, &mut reference] {
        vgic.redistributor_write(
            redistributor(0, SGI_BASE + 0x0180),
            Word,
            1 << 27,
            &mut physical,
        )
        .unwrap();
    }
    direct.flush(0, &mut lrs).unwrap();
    let outcome = direct.forward_ppi_direct(0, 27, &mut lrs).unwrap();
    assert_ne!(outcome, Direct::Written);
    if outcome == Direct::NeedsFlush {
        direct.flush(0, &mut lrs).unwrap();
    }
    assert!(lrs.entry(27).is_none(), "disabled: not delivered");
    assert_eq!(
        direct.redistributor_read(redistributor(0, SGI_BASE + 0x0200), Word, &mut physical),
        Ok(1 << 27),
        "but pending"
    );
    assert_eq!(
        direct.forward_ppi_direct(0, 40, &mut lrs),
        Err(VgicError::NotOwned(40)),
        "only PPIs"
    );
}

#[test]
fn direct_spi_forwarding_writes_what_inject_and_flush_would_and_only_when_that_is_all() {
    let route = |vgic: &mut Vgic, physical: &mut FakePhysicalDistributor, vcpu: u64| {
        vgic.distributor_write(
            GICD_IROUTER_OFFSET + 8 * u64::from(DEVICE_SPI),
            Doubleword,
            vcpu,
            physical,
        )
        .unwrap();
    };
    let (mut direct, mut physical) = enabled_vgic();
    let (mut reference, mut physical_reference) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    let mut reference_lrs = FakeListRegisters::new(4);
    for (vgic, physical) in [
        (&mut direct, &mut physical),
        (&mut reference, &mut physical_reference),
    ] {
        enable_spi(vgic, physical, DEVICE_SPI);
        route(vgic, physical, 1);
    }
    // Stale (nothing flushed yet since the configuration changed): the general path.
    assert_eq!(
        direct.forward_spi_direct(1, DEVICE_SPI, &mut lrs),
        Ok(false)
    );
    direct.flush(1, &mut lrs).unwrap();
    reference.flush(1, &mut reference_lrs).unwrap();
    for round in 0..4 {
        assert_eq!(
            direct.forward_spi_direct(1, DEVICE_SPI, &mut lrs),
            Ok(true),
            "round {round}"
        );
        // Its instance is in a list register now: a second one goes the general way.
        assert_eq!(
            direct.forward_spi_direct(1, DEVICE_SPI, &mut lrs),
            Ok(false)
        );
        reference
            .inject_hardware(0, DEVICE_SPI, DEVICE_SPI)
            .unwrap();
        reference.flush(1, &mut reference_lrs).unwrap();
        assert_eq!(lrs.entries(), reference_lrs.entries(), "round {round}");
        let entry = lrs.entry(DEVICE_SPI).expect("in a list register");
        assert!(entry.is_set(ICH_LR_EL2::HW));
        assert_eq!(entry.read(ICH_LR_EL2::pINTID), u64::from(DEVICE_SPI));
        assert_eq!(
            guest_handles_everything(&mut lrs),
            guest_handles_everything(&mut reference_lrs)
        );
        // Odd rounds: the next instance arrives before any sync took the completed one back.
        if round % 2 == 0 {
            direct.flush(1, &mut lrs).unwrap();
        }
        reference.flush(1, &mut reference_lrs).unwrap();
        direct.assert_bookkeeping();
    }
    // Routed to another vCPU, or arriving on a vCPU whose list registers are not complete: no.
    route(&mut direct, &mut physical, 2);
    direct.flush(1, &mut lrs).unwrap();
    assert_eq!(
        direct.forward_spi_direct(1, DEVICE_SPI, &mut lrs),
        Ok(false)
    );
    assert!(lrs.entries().is_empty());
    assert_eq!(
        direct.forward_spi_direct(1, UART_SPI, &mut lrs),
        Ok(false),
        "a virtual SPI is never taken from hardware"
    );
}

#[test]
fn posted_sgi_is_delivered_at_the_kick_as_a_flush_would() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut receiver = FakeListRegisters::new(4);
    for vcpu in 0..4 {
        enable_private(&mut vgic, &mut physical, vcpu, 0xFFFF);
    }
    // The receiver's list registers are complete (it flushed, nothing changed since): the SGI is
    // posted and written at its kick without a flush.
    vgic.flush(1, &mut receiver).unwrap();
    let kick = vgic.write_sgi1r(0, 2 << 24 | 0b10).unwrap();
    assert_eq!(kick.iter().collect::<Vec<_>>(), vec![1]);
    assert_eq!(vgic.deliver_posted(1, &mut receiver), Ok(true));
    assert_eq!(receiver.entries(), vec![(2, 0b01)]);
    assert_eq!(guest_handles_everything(&mut receiver), vec![2]);
    vgic.assert_bookkeeping();
    // The same SGI again while the guest has completed the first: sync takes it back, the next
    // one is posted again.
    vgic.sync(1, &mut receiver);
    vgic.flush(1, &mut receiver).unwrap();
    vgic.write_sgi1r(0, 2 << 24 | 0b10).unwrap();
    assert_eq!(vgic.deliver_posted(1, &mut receiver), Ok(true));
    assert_eq!(receiver.entries(), vec![(2, 0b01)]);
    // Something else changed for the receiver first (an SPI routed to it became pending): no
    // shortcut, the flush delivers both.
    vgic.sync(1, &mut receiver);
    enable_spi(&mut vgic, &mut physical, EDGE_SPI);
    vgic.distributor_write(
        GICD_IROUTER_OFFSET + u64::from(EDGE_SPI) * 8,
        Doubleword,
        1,
        &mut physical,
    )
    .unwrap();
    vgic.inject(EDGE_SPI, 1).unwrap();
    vgic.write_sgi1r(0, 3 << 24 | 0b10).unwrap();
    assert_eq!(vgic.deliver_posted(1, &mut receiver), Ok(false));
    vgic.flush(1, &mut receiver).unwrap();
    let mut entries: Vec<u32> = receiver.entries().iter().map(|&(intid, _)| intid).collect();
    entries.sort_unstable();
    assert_eq!(entries, vec![2, 3, EDGE_SPI]);
    vgic.assert_bookkeeping();
    // A posted SGI the receiver has disabled is held, not written.
    guest_handles_everything(&mut receiver);
    vgic.sync(1, &mut receiver);
    vgic.flush(1, &mut receiver).unwrap();
    vgic.redistributor_write(
        redistributor(1, SGI_BASE + 0x0180),
        Word,
        1 << 5,
        &mut physical,
    )
    .unwrap();
    vgic.flush(1, &mut receiver).unwrap();
    vgic.write_sgi1r(0, 5 << 24 | 0b10).unwrap();
    assert_eq!(vgic.deliver_posted(1, &mut receiver), Ok(true));
    assert_eq!(receiver.entries(), vec![]);
    assert_ne!(
        vgic.redistributor_read(redistributor(1, SGI_BASE + 0x0200), Word, &mut physical),
        Ok(0),
        "held pending"
    );
}

#[test]
fn an_sgi_sent_while_its_previous_instance_is_in_a_list_register_kicks_the_holder() {
    // The receiver spins: it took and completed the first SGI without an exit, so the vGIC still
    // sees that instance in its list register. The second SGI must still kick it, or it would
    // wait until the receiver exits for some other reason.
    let (mut vgic, mut physical) = enabled_vgic();
    let mut receiver = FakeListRegisters::new(4);
    for vcpu in 0..2 {
        enable_private(&mut vgic, &mut physical, vcpu, 0xFFFF);
    }
    vgic.flush(1, &mut receiver).unwrap();
    for round in 0..3 {
        let kick = vgic.write_sgi1r(0, 4 << 24 | 0b10).unwrap();
        assert_eq!(kick.iter().collect::<Vec<_>>(), vec![1], "round {round}");
        if vgic.deliver_posted(1, &mut receiver) != Ok(true) {
            vgic.flush(1, &mut receiver).unwrap();
        }
        assert_eq!(
            guest_handles_everything(&mut receiver),
            vec![4],
            "round {round}"
        );
    }
}

/// `GICR_ISPENDR0`, `GICR_ICPENDR0`, `GICR_ISACTIVER0` of `vcpu` as the guest reads them.
fn private_state(
    vgic: &mut Vgic,
    physical: &mut FakePhysicalDistributor,
    vcpu: u64,
) -> (u64, u64, u64) {
    let mut read = |offset| {
        vgic.redistributor_read(redistributor(vcpu, SGI_BASE + offset), Word, physical)
            .unwrap()
    };
    (read(0x0200), read(0x0280), read(0x0300))
}

#[test]
fn held_timer_stops_pending_when_its_line_drops_before_a_pending_read() {
    // The guest disabled its virtual timer's PPI; the timer fired: EL2 holds the physical PPI
    // active and the virtual one pending. Then the guest disables the timer.
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    assert_eq!(vgic.inject_hardware(1, 27, 27), Ok(Delivery::Held));
    assert_eq!(
        private_state(&mut vgic, &mut physical, 1),
        (1 << 27, 1 << 27, 0),
        "line still high: pending, not active"
    );
    assert!(physical.log.is_empty(), "sampled, kept");
    physical.low_lines.push((27, 1));
    assert_eq!(
        private_state(&mut vgic, &mut physical, 1),
        (0, 0, 0),
        "line low: no longer pending (and never active)"
    );
    assert_eq!(
        physical.log,
        vec![PhysicalOp::Deactivate(27, 1)],
        "the physical PPI held for it is deactivated: it fires afresh when the line rises"
    );
    // Enabling it now delivers nothing.
    let kick = vgic
        .redistributor_write(
            redistributor(1, SGI_BASE + 0x0100),
            Word,
            1 << 27,
            &mut physical,
        )
        .unwrap();
    assert!(kick.is_empty());
    assert!(!vgic.has_deliverable(1));
    assert!(!vgic.flush(1, &mut lrs).unwrap().holds_list_registers);
    assert!(lrs.entries().is_empty());
    assert_eq!(physical.log.len(), 1, "deactivated once");
    vgic.assert_bookkeeping();
}

#[test]
fn enabling_a_held_hardware_interrupt_samples_its_line() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    // The physical timer's PPI and the passed-through device's level SPI, both disabled when
    // they fired; the PPI's line is still high, the SPI's went low.
    assert_eq!(vgic.inject_hardware(2, 30, 30), Ok(Delivery::Held));
    assert_eq!(
        vgic.inject_hardware(0, DEVICE_SPI, DEVICE_SPI),
        Ok(Delivery::Held)
    );
    physical.low_lines.push((DEVICE_SPI, 0));
    let (isenabler, bit) = bit_register(GICD_ISENABLER, DEVICE_SPI);
    let kick = vgic
        .distributor_write(isenabler, Word, bit, &mut physical)
        .unwrap();
    assert!(kick.is_empty(), "nothing to deliver");
    assert_eq!(
        physical.log,
        vec![
            PhysicalOp::Enabled(DEVICE_SPI, true),
            PhysicalOp::Deactivate(DEVICE_SPI, 0)
        ]
    );
    let (ispendr, _) = bit_register(GICD_ISPENDR, DEVICE_SPI);
    assert_eq!(vgic.distributor_read(ispendr, Word, &mut physical), Ok(0));
    let kick = vgic
        .redistributor_write(
            redistributor(2, SGI_BASE + 0x0100),
            Word,
            1 << 30,
            &mut physical,
        )
        .unwrap();
    assert_eq!(
        kick.iter().collect::<Vec<_>>(),
        vec![2],
        "line high: delivered"
    );
    vgic.flush(2, &mut lrs).unwrap();
    let lr = lrs
        .entry(30)
        .expect("the physical timer in a list register");
    assert_eq!(lr.read(ICH_LR_EL2::State), 0b01);
    assert!(lr.is_set(ICH_LR_EL2::HW));
    assert_eq!(lr.read(ICH_LR_EL2::pINTID), 30);
    assert!(lrs.deactivated.is_empty());
}

#[test]
fn flush_drops_a_pending_hardware_entry_whose_line_went_low() {
    // The timer's instance waits pending in a list register (the guest has IRQs masked), and
    // the guest disables the timer. At its next exit the entry is taken back and not written
    // again: its physical PPI is deactivated on this CPU.
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    enable_private(&mut vgic, &mut physical, 0, 1 << 27);
    enable_spi(&mut vgic, &mut physical, DEVICE_SPI);
    assert_eq!(
        vgic.forward_ppi_direct(0, 27, &mut lrs),
        Ok(Direct::NeedsFlush)
    );
    vgic.inject_hardware(0, DEVICE_SPI, DEVICE_SPI).unwrap();
    vgic.flush(0, &mut lrs).unwrap();
    let mut entries = lrs.entries();
    entries.sort_unstable();
    assert_eq!(entries, vec![(27, 0b01), (DEVICE_SPI, 0b01)]);
    // An exit with both lines still high changes nothing.
    vgic.sync(0, &mut lrs);
    vgic.flush(0, &mut lrs).unwrap();
    assert_eq!(lrs.entries().len(), 2);
    assert!(lrs.deactivated.is_empty());
    // Both lines drop; the next exit retires both entries.
    lrs.low_lines = vec![27, DEVICE_SPI];
    vgic.sync(0, &mut lrs);
    assert!(
        !vgic.flush(0, &mut lrs).unwrap().holds_list_registers,
        "nothing left to write"
    );
    assert!(lrs.entries().is_empty());
    assert_eq!(lrs.deactivated, vec![27, DEVICE_SPI]);
    assert!(!vgic.has_deliverable(0));
    assert_eq!(private_state(&mut vgic, &mut physical, 0), (0, 0, 0));
    let (ispendr, _) = bit_register(GICD_ISPENDR, DEVICE_SPI);
    assert_eq!(vgic.distributor_read(ispendr, Word, &mut physical), Ok(0));
    vgic.assert_bookkeeping();
    // When the timer fires again it is a fresh instance, delivered as before.
    lrs.low_lines.clear();
    assert_eq!(
        vgic.forward_ppi_direct(0, 27, &mut lrs),
        Ok(Direct::Written)
    );
    assert_eq!(lrs.entries(), vec![(27, 0b01)]);
}

#[test]
fn an_overflowing_hardware_interrupt_is_sampled_before_it_gets_a_list_register() {
    // Two list registers, three interrupts: the timer, at the lowest priority, waits in the
    // vGIC. Its line drops before a list register frees up: it never reaches one.
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(2);
    enable_private(&mut vgic, &mut physical, 3, 1 << 27 | 0b11);
    set_private_priority(&mut vgic, &mut physical, 3, 27, 0xF0);
    vgic.inject(0, 3).unwrap();
    vgic.inject(1, 3).unwrap();
    vgic.inject_hardware(3, 27, 27).unwrap();
    vgic.flush(3, &mut lrs).unwrap();
    let mut held: Vec<u32> = lrs.entries().iter().map(|&(intid, _)| intid).collect();
    held.sort_unstable();
    assert_eq!(held, vec![0, 1]);
    assert!(lrs.npie(), "maintenance once the guest took them");
    guest_handles_everything(&mut lrs);
    lrs.low_lines.push(27);
    vgic.sync(3, &mut lrs);
    vgic.flush(3, &mut lrs).unwrap();
    assert!(lrs.entries().is_empty(), "the timer's line is low");
    assert_eq!(lrs.deactivated, vec![27]);
    assert!(!lrs.npie() && !lrs.uie());
}

#[test]
fn only_a_held_level_instance_follows_its_line() {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs = FakeListRegisters::new(4);
    lrs.low_lines.push(27);
    physical.low_lines.push((27, 0));
    // Edge-configured (GICR_ICFGR1, INTID 27 = field 11): the pending state is a latch and
    // stays, whatever the line does.
    vgic.redistributor_write(
        redistributor(0, SGI_BASE + 0x0C04),
        Word,
        0b10 << 22,
        &mut physical,
    )
    .unwrap();
    vgic.inject_hardware(0, 27, 27).unwrap();
    assert_eq!(
        private_state(&mut vgic, &mut physical, 0),
        (1 << 27, 1 << 27, 0)
    );
    enable_private(&mut vgic, &mut physical, 0, 1 << 27);
    vgic.flush(0, &mut lrs).unwrap();
    assert_eq!(lrs.entries(), vec![(27, 0b01)], "delivered as an edge");
    // Active in the guest: the guest's deactivation ends it (and the physical PPI), not EL2.
    assert_eq!(lrs.guest_acknowledge(), Some(27));
    vgic.sync(0, &mut lrs);
    vgic.flush(0, &mut lrs).unwrap();
    assert_eq!(lrs.entries(), vec![(27, 0b10)]);
    assert_eq!(private_state(&mut vgic, &mut physical, 0).2, 1 << 27);
    vgic.redistributor_write(redistributor(0, SGI_BASE + 0x0C04), Word, 0, &mut physical)
        .unwrap();
    vgic.sync(0, &mut lrs);
    vgic.flush(0, &mut lrs).unwrap();
    assert_eq!(lrs.entries(), vec![(27, 0b10)], "level, but active: kept");
    // A virtual level SPI (no hardware link) follows `set_level`, not a sampled line.
    enable_spi(&mut vgic, &mut physical, UART_SPI);
    vgic.set_level(UART_SPI, true).unwrap();
    physical.low_lines.push((UART_SPI, 0));
    let (ispendr, bit) = bit_register(GICD_ISPENDR, UART_SPI);
    assert_eq!(vgic.distributor_read(ispendr, Word, &mut physical), Ok(bit));
    assert!(
        lrs.deactivated.is_empty()
            && physical
                .log
                .iter()
                .all(|op| !matches!(op, PhysicalOp::Deactivate(..)))
    );
}

/// Routes SPI `intid` to `vcpu` through `GICD_IROUTER`; returns the vCPUs to kick.
fn route(
    vgic: &mut Vgic,
    physical: &mut FakePhysicalDistributor,
    intid: u32,
    vcpu: u64,
) -> VcpuSet {
    vgic.distributor_write(
        GICD_IROUTER_OFFSET + 8 * u64::from(intid),
        Doubleword,
        vcpu,
        physical,
    )
    .unwrap()
}

/// A vGIC whose hardware SPI went to vCPU 1, which took and completed it in its list register
/// without an exit (it spins): the vGIC still sees that instance there.
fn spi_completed_unseen_on_vcpu1() -> (Vgic, FakePhysicalDistributor, FakeListRegisters) {
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs1 = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, DEVICE_SPI);
    route(&mut vgic, &mut physical, DEVICE_SPI, 1);
    assert_eq!(
        vgic.inject_hardware(0, DEVICE_SPI, DEVICE_SPI),
        Ok(Delivery::Ready { vcpu: 1 })
    );
    vgic.flush(1, &mut lrs1).unwrap();
    assert_eq!(guest_handles_everything(&mut lrs1), vec![DEVICE_SPI]);
    (vgic, physical, lrs1)
}

#[test]
fn a_hardware_spi_raised_while_its_holder_still_lists_the_completed_one_names_the_holder() {
    // The device interrupts again (the physical SPI could only fire once the guest deactivated the
    // previous one through the link). vCPU 1 must be kicked: a spinning vCPU would not look.
    let (mut vgic, _physical, mut lrs1) = spi_completed_unseen_on_vcpu1();
    for round in 0..3 {
        assert_eq!(
            vgic.inject_hardware(0, DEVICE_SPI, DEVICE_SPI),
            Ok(Delivery::Ready { vcpu: 1 }),
            "round {round}"
        );
        let flushed = vgic.flush(1, &mut lrs1).unwrap();
        assert_eq!(flushed.kick, VcpuSet::empty());
        let lr = lrs1.entry(DEVICE_SPI).expect("delivered again");
        assert!(lr.is_set(ICH_LR_EL2::HW), "round {round}: still linked");
        assert_eq!(lr.read(ICH_LR_EL2::pINTID), u64::from(DEVICE_SPI));
        assert_eq!(guest_handles_everything(&mut lrs1), vec![DEVICE_SPI]);
    }
}

#[test]
fn a_hardware_spi_rerouted_while_its_holder_lists_it_reaches_the_new_vcpu_still_linked() {
    // The guest routes the SPI from vCPU 1 (which completed the last instance unseen) to vCPU 0,
    // and the next instance arrives. vCPU 1 is the one to kick; its sync gives the old instance
    // back and names vCPU 0, which then gets the new one with the link to the physical SPI (the
    // old instance's deactivation ended only the old one).
    let (mut vgic, mut physical, mut lrs1) = spi_completed_unseen_on_vcpu1();
    let mut lrs0 = FakeListRegisters::new(4);
    assert_eq!(
        route(&mut vgic, &mut physical, DEVICE_SPI, 0),
        VcpuSet::empty(),
        "nothing pending yet"
    );
    assert_eq!(
        vgic.inject_hardware(0, DEVICE_SPI, DEVICE_SPI),
        Ok(Delivery::Ready { vcpu: 1 }),
        "the holder must exit"
    );
    vgic.flush(0, &mut lrs0).unwrap();
    assert!(lrs0.entries().is_empty(), "still in vCPU 1's list register");
    let flushed = vgic.flush(1, &mut lrs1).unwrap();
    assert_eq!(
        flushed.kick.iter().collect::<Vec<_>>(),
        vec![0],
        "vCPU 0 must look again"
    );
    assert!(lrs1.entries().is_empty(), "not vCPU 1's any more");
    vgic.flush(0, &mut lrs0).unwrap();
    let lr = lrs0.entry(DEVICE_SPI).expect("delivered to vCPU 0");
    assert!(lr.is_set(ICH_LR_EL2::HW), "hardware-linked");
    assert_eq!(lr.read(ICH_LR_EL2::pINTID), u64::from(DEVICE_SPI));
    assert_eq!(guest_handles_everything(&mut lrs0), vec![DEVICE_SPI]);
    let kick = vgic.sync(0, &mut lrs0);
    assert_eq!(kick, VcpuSet::empty());
    assert!(
        !physical
            .log
            .iter()
            .any(|op| matches!(op, PhysicalOp::Deactivate(..))),
        "EL2 deactivated nothing: both instances ended through the link"
    );
    vgic.assert_bookkeeping();
}

#[test]
fn a_pending_spi_taken_back_after_a_reroute_names_its_new_vcpu() {
    // vCPU 1 exits before taking the SPI (IRQs masked), after the guest routed it to vCPU 2:
    // the sync that takes it back pending names vCPU 2, which would otherwise not look.
    let (mut vgic, mut physical) = enabled_vgic();
    let mut lrs1 = FakeListRegisters::new(4);
    enable_spi(&mut vgic, &mut physical, EDGE_SPI);
    route(&mut vgic, &mut physical, EDGE_SPI, 1);
    assert_eq!(vgic.inject(EDGE_SPI, 0), Ok(Delivery::Ready { vcpu: 1 }));
    vgic.flush(1, &mut lrs1).unwrap();
    route(&mut vgic, &mut physical, EDGE_SPI, 2);
    assert_eq!(vgic.sync(1, &mut lrs1).iter().collect::<Vec<_>>(), vec![2]);
    let mut lrs2 = FakeListRegisters::new(4);
    vgic.flush(2, &mut lrs2).unwrap();
    assert_eq!(lrs2.entries(), vec![(EDGE_SPI, 0b01)]);
}

mod v2;
