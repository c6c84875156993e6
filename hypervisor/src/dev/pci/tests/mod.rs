//! Host tests of the PCI model against a fake ECAM with QEMU-like virtio-pci functions.

pub(crate) mod fake;

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::regs::*;
use super::*;
use crate::board::MemRange;
use crate::dev::mmio::{AccessWidth, MmioError};
use fake::{FakeEcam, FakeFunction, Op, express, virtio};

const fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(bus, device, function).unwrap()
}

/// The physical functions: virtio-blk at 00:02.0, virtio-net at 00:03.0, a PCIe NIC at 00:04.0.
const BLK: Bdf = bdf(0, 2, 0);
const NET: Bdf = bdf(0, 3, 0);
const NIC: Bdf = bdf(0, 4, 0);

const BLK_WINDOW: MemRange = MemRange::new(0x1000_0000, 0x1_0000);
const NET_WINDOW: MemRange = MemRange::new(0x1001_0000, 0x1_0000);
const NIC_WINDOW: MemRange = MemRange::new(0x1004_0000, 0x4_0000);

fn machine() -> FakeEcam {
    FakeEcam::new()
        .with(BLK, virtio(0x1042, 0x01_0000))
        .with(NET, virtio(0x1041, 0x02_0000))
        .with(NIC, express())
}

/// Probes, assigns and programs `physical`, numbered `guest` in the cell.
fn cell_function(ecam: &mut FakeEcam, guest: Bdf, physical: Bdf, window: MemRange) -> CellFunction {
    let info = probe(ecam, physical).unwrap();
    let bars = assign(&info, window).unwrap();
    program(ecam, physical, &bars).unwrap();
    CellFunction {
        guest,
        physical,
        info,
        bars,
    }
}

/// A cell with virtio-blk as 00:00.0 and virtio-net as 00:01.0 (both renumbered).
fn cell(ecam: &mut FakeEcam) -> PciBus {
    let functions = vec![
        cell_function(ecam, bdf(0, 0, 0), BLK, BLK_WINDOW),
        cell_function(ecam, bdf(0, 1, 0), NET, NET_WINDOW),
    ];
    ecam.log.clear();
    PciBus::new(functions).unwrap()
}

fn read(bus: &PciBus, ecam: &mut FakeEcam, guest: Bdf, offset: u16, width: AccessWidth) -> u64 {
    bus.read(guest.ecam_offset() + u64::from(offset), width, ecam)
        .unwrap()
}

fn read32(bus: &PciBus, ecam: &mut FakeEcam, guest: Bdf, offset: u16) -> u32 {
    read(bus, ecam, guest, offset, AccessWidth::Word) as u32
}

fn write(
    bus: &mut PciBus,
    ecam: &mut FakeEcam,
    guest: Bdf,
    offset: u16,
    width: AccessWidth,
    value: u64,
) {
    bus.write(guest.ecam_offset() + u64::from(offset), width, value, ecam)
        .unwrap()
}

fn write32(bus: &mut PciBus, ecam: &mut FakeEcam, guest: Bdf, offset: u16, value: u32) {
    write(
        bus,
        ecam,
        guest,
        offset,
        AccessWidth::Word,
        u64::from(value),
    );
}

// ---- Bdf ----

#[test]
fn bdf_numbers() {
    let function = bdf(3, 0x1f, 7);
    assert_eq!(function.requester_id(), 0x03ff);
    assert_eq!(function.ecam_offset(), 0x3f_f000);
    assert_eq!(bdf(0, 2, 1).requester_id(), 0x0011);
    assert_eq!(bdf(0, 2, 1).ecam_offset(), 0x1_1000);
    assert_eq!(function.to_string(), "03:1f.7");
    assert_eq!(Bdf::new(0, 32, 0), None);
    assert_eq!(Bdf::new(0, 0, 8), None);
    assert_eq!(
        Bdf::from_ecam_offset(0, 0x1_1ffc),
        Some((bdf(0, 2, 1), 0xffc))
    );
    assert_eq!(Bdf::from_ecam_offset(1, 0x10_0000), Some((bdf(2, 0, 0), 0)));
    assert_eq!(Bdf::from_ecam_offset(0, 0x1000_0000), None);
}

// ---- probe ----

#[test]
fn probe_virtio_blk() {
    let mut ecam = machine();
    let before = ecam.function(BLK).config;
    let info = probe(&mut ecam, BLK).unwrap();
    assert_eq!(info.bdf, BLK);
    assert_eq!((info.vendor_id, info.device_id), (0x1af4, 0x1042));
    assert_eq!((info.revision, info.class_code), (1, 0x01_0000));
    assert_eq!(
        (info.subsystem_vendor_id, info.subsystem_id),
        (0x1af4, 0x1100)
    );
    assert!(!info.multi_function);
    assert_eq!(info.interrupt_pin, Some(IntxPin::A));
    assert_eq!(
        info.bars,
        vec![
            BarInfo {
                index: 1,
                kind: BarKind::Memory32 {
                    prefetchable: false
                },
                size: 0x1000
            },
            BarInfo {
                index: 4,
                kind: BarKind::Memory64 { prefetchable: true },
                size: 0x4000
            },
        ]
    );
    assert_eq!(info.rom_size, None);
    let list: Vec<(u8, u16, u16)> = info
        .capabilities
        .iter()
        .map(|c| (c.id, c.offset, c.length))
        .collect();
    assert_eq!(
        list,
        vec![
            (0x11, 0x98, 12),
            (0x09, 0x84, 20),
            (0x09, 0x70, 20),
            (0x09, 0x60, 16),
            (0x09, 0x50, 16),
            (0x09, 0x40, 16)
        ]
    );
    assert_eq!(info.flr, None);
    assert_eq!(
        info.virtio_common,
        Some(VirtioCommonConfig {
            bar: 4,
            offset: 0,
            length: 0x1000
        })
    );
    assert_eq!(virtio_reset_location(&info), Some((4, 0x14)));
    // Sizing restored every register.
    assert_eq!(ecam.function(BLK).config, before);
}

#[test]
fn probe_sizes_with_decode_disabled_and_restores_command() {
    let mut ecam = machine();
    ecam.function_mut(NIC).set16(COMMAND, 0x0007);
    let info = probe(&mut ecam, NIC).unwrap();
    let writes = ecam.writes();
    assert_eq!(writes.first(), Some(&Op::Write16(NIC, COMMAND, 0x0004)));
    assert_eq!(writes.last(), Some(&Op::Write16(NIC, COMMAND, 0x0007)));
    // Both halves of the 64-bit BAR were probed with all ones, then restored.
    assert!(writes.contains(&Op::Write32(NIC, 0x1c, u32::MAX)));
    assert!(writes.contains(&Op::Write32(NIC, 0x20, u32::MAX)));
    assert_eq!(ecam.function(NIC).get32(0x1c), BAR_MEMORY_TYPE_64);
    assert_eq!(ecam.function(NIC).get16(COMMAND), 0x0007);
    assert_eq!(
        info.bars,
        vec![
            BarInfo {
                index: 0,
                kind: BarKind::Memory32 {
                    prefetchable: false
                },
                size: 0x2_0000
            },
            BarInfo {
                index: 2,
                kind: BarKind::Io,
                size: 32
            },
            BarInfo {
                index: 3,
                kind: BarKind::Memory64 {
                    prefetchable: false
                },
                size: 0x1_0000
            },
        ]
    );
    assert_eq!(info.rom_size, Some(0x4_0000));
    assert_eq!(info.flr, Some(FlrMethod::PciExpress { capability: 0x60 }));
    assert_eq!(info.interrupt_pin, Some(IntxPin::B));
    assert_eq!(info.virtio_common, None);
    assert_eq!(virtio_reset_location(&info), None);
    let ids: Vec<(u8, u16, u16)> = info
        .capabilities
        .iter()
        .map(|c| (c.id, c.offset, c.length))
        .collect();
    assert_eq!(
        ids,
        vec![
            (0x01, 0x40, 8),
            (0x05, 0x50, 14),
            (0x10, 0x60, 0x3c),
            (0x11, 0xa0, 12),
            (0x09, 0xb0, 8)
        ]
    );
}

#[test]
fn probe_refuses_bridges_cardbus_and_absent_functions() {
    let mut bridge = virtio(0x1042, 0);
    bridge.set8(HEADER_TYPE, 0x81);
    let mut cardbus = virtio(0x1042, 0);
    cardbus.set8(HEADER_TYPE, 0x02);
    let mut ecam = FakeEcam::new()
        .with(bdf(0, 1, 0), bridge)
        .with(bdf(0, 5, 0), cardbus);
    let error = probe(&mut ecam, bdf(0, 1, 0)).unwrap_err();
    assert_eq!(error, PciError::Bridge { bdf: bdf(0, 1, 0) });
    assert_eq!(
        error.to_string(),
        "PCI 00:01.0 is a bridge (header type 1): bridges cannot be passed through, give the cell the functions behind it"
    );
    assert_eq!(
        probe(&mut ecam, bdf(0, 5, 0)),
        Err(PciError::UnsupportedHeader {
            bdf: bdf(0, 5, 0),
            layout: 2
        })
    );
    assert_eq!(
        probe(&mut ecam, bdf(0, 9, 0)),
        Err(PciError::NoFunction { bdf: bdf(0, 9, 0) })
    );
    // Nothing was written to the bridge.
    assert!(ecam.writes().is_empty());
}

#[test]
fn probe_bounds_a_capability_loop() {
    let mut looped = virtio(0x1042, 0);
    looped.set8(0x40 + 1, 0x50); // common → ISR → common → …
    let mut ecam = FakeEcam::new().with(BLK, looped);
    let error = probe(&mut ecam, BLK).unwrap_err();
    assert_eq!(error, PciError::CapabilityLoop { bdf: BLK });
    assert_eq!(
        error.to_string(),
        "PCI 00:02.0 capability list does not end within 48 entries (a loop): the device is broken, do not pass it through"
    );
    // Bounded: at most 48 capability headers were read (plus their length bytes).
    let reads = ecam
        .log
        .iter()
        .filter(|op| matches!(op, Op::Read32(_, o) if *o >= 0x40))
        .count();
    assert!(reads <= 2 * CAPABILITY_BOUND + 8, "{reads} reads");
}

#[test]
fn probe_refuses_malformed_capabilities() {
    // A pointer into the header.
    let mut into_header = virtio(0x1042, 0);
    into_header.set8(0x40 + 1, 0x3c);
    // A vendor capability overlapping the next one.
    let mut overlapping = virtio(0x1042, 0);
    overlapping.set8(0x50 + 2, 0x14);
    // A PCIe v2 capability running past 0x100.
    let mut past_end = express();
    past_end.set8(0xb0 + 1, 0xe0);
    past_end.capability(0xe0, CAP_ID_PCI_EXPRESS, 0);
    past_end.set16(0xe2, 2);
    // A 64-bit BAR in the last slot.
    let mut last_slot = FakeFunction::new();
    last_slot.set16(VENDOR_ID, 0x1234);
    last_slot.set32(BAR0 + 20, BAR_MEMORY_TYPE_64);
    last_slot.writable32(BAR0 + 20, 0xffff_f000);
    let mut ecam = FakeEcam::new()
        .with(bdf(0, 1, 0), into_header)
        .with(bdf(0, 2, 0), overlapping)
        .with(bdf(0, 3, 0), past_end)
        .with(bdf(0, 4, 0), last_slot);
    assert_eq!(
        probe(&mut ecam, bdf(0, 1, 0)),
        Err(PciError::MalformedCapability {
            bdf: bdf(0, 1, 0),
            offset: 0x3c
        })
    );
    assert_eq!(
        probe(&mut ecam, bdf(0, 2, 0)),
        Err(PciError::MalformedCapability {
            bdf: bdf(0, 2, 0),
            offset: 0x50
        })
    );
    assert_eq!(
        probe(&mut ecam, bdf(0, 3, 0)),
        Err(PciError::MalformedCapability {
            bdf: bdf(0, 3, 0),
            offset: 0xe0
        })
    );
    assert_eq!(
        probe(&mut ecam, bdf(0, 4, 0)),
        Err(PciError::BadBar {
            bdf: bdf(0, 4, 0),
            index: 5
        })
    );
}

#[test]
fn probe_propagates_access_failures() {
    let mut ecam = machine();
    ecam.failing = Some(BLK);
    assert_eq!(
        probe(&mut ecam, BLK),
        Err(PciError::Access {
            bdf: BLK,
            offset: 0
        })
    );
}

// ---- assign and program ----

#[test]
fn assign_packs_largest_first_naturally_aligned() {
    let mut ecam = machine();
    let info = probe(&mut ecam, BLK).unwrap();
    let bars = assign(&info, BLK_WINDOW).unwrap();
    assert_eq!(
        bars,
        vec![
            AssignedBar {
                index: 1,
                kind: BarKind::Memory32 {
                    prefetchable: false
                },
                address: 0x1000_4000,
                size: 0x1000
            },
            AssignedBar {
                index: 4,
                kind: BarKind::Memory64 { prefetchable: true },
                address: 0x1000_0000,
                size: 0x4000
            },
        ]
    );
    // An exactly fitting window.
    assert!(assign(&info, MemRange::new(0x1000_0000, 0x5000)).is_ok());
    // A window not aligned to the largest BAR pads before it.
    let padded = assign(&info, MemRange::new(0x1000_1000, 0x8000)).unwrap();
    assert_eq!(padded[1].address, 0x1000_4000);
    assert_eq!(padded[0].address, 0x1000_8000);

    let nic = probe(&mut ecam, NIC).unwrap();
    let bars = assign(&nic, NIC_WINDOW).unwrap();
    let placed: Vec<(u8, u64)> = bars.iter().map(|b| (b.index, b.address)).collect();
    assert_eq!(placed, vec![(0, 0x1004_0000), (3, 0x1006_0000)]);
}

#[test]
fn assign_gives_small_bars_whole_pages() {
    let mut small = FakeFunction::new();
    small.set16(VENDOR_ID, 0x1234);
    small.memory_bar(0, 0x100, false, false);
    small.memory_bar(1, 0x80, false, false);
    let mut ecam = FakeEcam::new().with(BLK, small);
    let info = probe(&mut ecam, BLK).unwrap();
    let bars = assign(&info, MemRange::new(0x2000_0000, 0x2000)).unwrap();
    let placed: Vec<(u8, u64, u64)> = bars.iter().map(|b| (b.index, b.address, b.size)).collect();
    assert_eq!(
        placed,
        vec![(0, 0x2000_0000, 0x100), (1, 0x2000_1000, 0x80)]
    );
    assert_eq!(
        assign(&info, MemRange::new(0x2000_0000, 0x1000)),
        Err(PciError::BarsDoNotFit {
            bdf: BLK,
            needed: 0x2000,
            window: MemRange::new(0x2000_0000, 0x1000)
        })
    );
}

#[test]
fn assign_errors() {
    let mut ecam = machine();
    let info = probe(&mut ecam, BLK).unwrap();
    let small = MemRange::new(0x1000_0000, 0x1000);
    let error = assign(&info, small).unwrap_err();
    assert_eq!(
        error,
        PciError::BarsDoNotFit {
            bdf: BLK,
            needed: 0x5000,
            window: small
        }
    );
    assert_eq!(
        error.to_string(),
        "PCI 00:02.0 needs 20 KiB of BARs but its board window 0x10000000+0x1000 holds 4 KiB: give it a larger window"
    );
    // BAR4 (64-bit) may live above 4 GiB, BAR1 (32-bit) may not.
    let high = MemRange::new(0x80_0000_0000, 0x1_0000);
    let error = assign(&info, high).unwrap_err();
    assert_eq!(
        error,
        PciError::BarAboveFourGiB {
            bdf: BLK,
            index: 1,
            address: 0x80_0000_4000
        }
    );
    assert_eq!(
        error.to_string(),
        "PCI 00:02.0 BAR1 is 32-bit but would be placed at 0x8000004000, above 4 GiB: give it a window below 4 GiB"
    );
    // Straddling 4 GiB: the 64-bit BAR goes first and the 32-bit one lands above.
    assert_eq!(
        assign(&info, MemRange::new(0xffff_c000, 0x8000)),
        Err(PciError::BarAboveFourGiB {
            bdf: BLK,
            index: 1,
            address: 0x1_0000_0000
        })
    );
    for window in [
        MemRange::new(0x1000_0000, 0),
        MemRange::new(0x1000_0800, 0x1_0000),
        MemRange::new(0x1000_0000, 0x1_0800),
        MemRange::new(u64::MAX - 0xfff, 0x2000),
    ] {
        assert_eq!(
            assign(&info, window),
            Err(PciError::BadWindow { bdf: BLK, window }),
            "{window:?}"
        );
    }
}

#[test]
fn program_writes_both_halves_and_zeroes_io_and_rom() {
    let mut ecam = machine();
    {
        let nic = ecam.function_mut(NIC);
        nic.set32(BAR0 + 8, 0xc001); // firmware left an I/O address
        nic.set32(EXPANSION_ROM, 0x1008_0001);
        nic.set16(COMMAND, 0x0003);
    }
    let info = probe(&mut ecam, NIC).unwrap();
    let bars = assign(&info, MemRange::new(0x40_0000_0000, 0x4_0000)).err();
    // BAR0 is 32-bit: that window is refused, use one below 4 GiB with the 64-bit BAR.
    assert!(bars.is_some());
    let bars = vec![
        AssignedBar {
            index: 0,
            kind: BarKind::Memory32 {
                prefetchable: false,
            },
            address: 0x1004_0000,
            size: 0x2_0000,
        },
        AssignedBar {
            index: 3,
            kind: BarKind::Memory64 {
                prefetchable: false,
            },
            address: 0x80_0001_0000,
            size: 0x1_0000,
        },
    ];
    ecam.log.clear();
    program(&mut ecam, NIC, &bars).unwrap();
    let nic = ecam.function(NIC);
    assert_eq!(nic.get32(BAR0), 0x1004_0000);
    assert_eq!(nic.get32(BAR0 + 4), 0);
    assert_eq!(nic.get32(BAR0 + 8), BAR_IO_SPACE);
    assert_eq!(nic.get32(BAR0 + 12), 0x0001_0004);
    assert_eq!(nic.get32(BAR0 + 16), 0x80);
    assert_eq!(nic.get32(EXPANSION_ROM), 0);
    assert_eq!(nic.get16(COMMAND), 0);
    assert_eq!(ecam.writes()[0], Op::Write16(NIC, COMMAND, 0));
}

// ---- the cell's view ----

#[test]
fn every_header_register_through_the_model() {
    let mut ecam = machine();
    let bus = cell(&mut ecam);
    let expected: [(u16, u32); 16] = [
        (0x00, 0x1042_1af4),
        (0x04, 0x0010_0000),
        (0x08, 0x0100_0001),
        (0x0c, 0x0000_0000),
        (0x10, 0),
        (0x14, 0x1000_4000),
        (0x18, 0),
        (0x1c, 0),
        (0x20, 0x1000_000c),
        (0x24, 0),
        (0x28, 0),
        (0x2c, 0x1100_1af4),
        (0x30, 0),
        (0x34, 0x84),
        (0x38, 0),
        (0x3c, 0x0000_0100),
    ];
    for (offset, value) in expected {
        assert_eq!(
            read32(&bus, &mut ecam, bdf(0, 0, 0), offset),
            value,
            "offset {offset:#x}"
        );
    }
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 1, 0), 0x00), 0x1041_1af4);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 1, 0), 0x08), 0x0200_0001);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 1, 0), 0x14), 0x1001_4000);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 1, 0), 0x20), 0x1001_000c);
    // The identity and BARs come from the model: no physical reads for them.
    assert!(
        ecam.log
            .iter()
            .all(|op| matches!(op, Op::Read32(_, COMMAND)))
    );
}

#[test]
fn foreign_functions_and_buses_are_absent() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    // The physical numbers of the cell's own functions, another cell's function, and bus 1.
    for (offset, function) in [
        (0u64, BLK),
        (0, NET),
        (0, NIC),
        (0x10, bdf(0, 0, 1)),
        (0x3c, bdf(0, 31, 7)),
        (0, bdf(1, 0, 0)),
        (0x10, bdf(1, 1, 0)),
    ] {
        let address = function.ecam_offset() + offset;
        assert_eq!(
            bus.read(address, AccessWidth::Word, &mut ecam),
            Ok(0xffff_ffff)
        );
        assert_eq!(
            bus.read(address, AccessWidth::Halfword, &mut ecam),
            Ok(0xffff)
        );
        assert_eq!(
            bus.read(address + 1, AccessWidth::Byte, &mut ecam),
            Ok(0xff)
        );
        bus.write(address, AccessWidth::Word, 0, &mut ecam).unwrap();
    }
    // Past bus 255 of a huge window, too.
    assert_eq!(
        bus.read(0x1_0000_0000, AccessWidth::Word, &mut ecam),
        Ok(0xffff_ffff)
    );
    assert!(ecam.log.is_empty(), "{:?}", ecam.log);
}

#[test]
fn size_probes_32_and_64_bit_then_restore() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    // BAR1, 32-bit 4 KiB, the way Linux's __pci_read_base sizes it.
    write32(&mut bus, &mut ecam, blk, 0x14, u32::MAX);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x14), 0xffff_f000);
    write32(&mut bus, &mut ecam, blk, 0x14, 0x1000_4000);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x14), 0x1000_4000);
    // BAR4/5, 64-bit prefetchable 16 KiB: low half, then high half.
    write32(&mut bus, &mut ecam, blk, 0x20, u32::MAX);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x20), 0xffff_c00c);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x24), 0);
    write32(&mut bus, &mut ecam, blk, 0x20, 0x1000_000c);
    write32(&mut bus, &mut ecam, blk, 0x24, u32::MAX);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x24), 0xffff_ffff);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x20), 0x1000_000c);
    write32(&mut bus, &mut ecam, blk, 0x24, 0);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x24), 0);
    // Unimplemented BARs answer a probe with 0.
    for offset in [0x10, 0x18, 0x1c] {
        write32(&mut bus, &mut ecam, blk, offset, u32::MAX);
        assert_eq!(read32(&bus, &mut ecam, blk, offset), 0, "{offset:#x}");
    }
    // A probe with byte writes, then a halfword read of the mask.
    for byte in 0..4 {
        write(
            &mut bus,
            &mut ecam,
            blk,
            0x14 + byte,
            AccessWidth::Byte,
            0xff,
        );
    }
    assert_eq!(
        read(&bus, &mut ecam, blk, 0x16, AccessWidth::Halfword),
        0xffff
    );
    assert_eq!(
        read(&bus, &mut ecam, blk, 0x14, AccessWidth::Halfword),
        0xf000
    );
    write(&mut bus, &mut ecam, blk, 0x14, AccessWidth::Byte, 0);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x14), 0x1000_4000);
    // Nothing reached the device.
    assert!(ecam.writes().is_empty());
    assert_eq!(ecam.function(BLK).get32(0x14), 0x1000_4000);
}

#[test]
fn bar_writes_are_ignored() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    write32(&mut bus, &mut ecam, blk, 0x14, 0x3000_0000);
    write32(&mut bus, &mut ecam, blk, 0x20, 0x2000_0000);
    write32(&mut bus, &mut ecam, blk, 0x24, 0x1);
    write(
        &mut bus,
        &mut ecam,
        blk,
        0x22,
        AccessWidth::Halfword,
        0xffff,
    );
    assert_eq!(read32(&bus, &mut ecam, blk, 0x14), 0x1000_4000);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x20), 0x1000_000c);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x24), 0);
    assert!(ecam.writes().is_empty());
    assert_eq!(ecam.function(BLK).get32(0x20), 0x1000_000c);
}

#[test]
fn expansion_rom_cardbus_bist_read_zero() {
    let mut ecam = machine();
    let functions = vec![cell_function(&mut ecam, bdf(0, 0, 0), NIC, NIC_WINDOW)];
    let mut bus = PciBus::new(functions).unwrap();
    let nic = bdf(0, 0, 0);
    ecam.log.clear();
    // The NIC has a 256 KiB ROM; the cell sees none, even when it probes.
    assert_eq!(read32(&bus, &mut ecam, nic, EXPANSION_ROM), 0);
    write32(&mut bus, &mut ecam, nic, EXPANSION_ROM, 0xffff_f800);
    assert_eq!(read32(&bus, &mut ecam, nic, EXPANSION_ROM), 0);
    write32(&mut bus, &mut ecam, nic, EXPANSION_ROM, 0x1008_0001);
    write32(&mut bus, &mut ecam, nic, CARDBUS_CIS, 0x1234);
    write(&mut bus, &mut ecam, nic, BIST, AccessWidth::Byte, 0x40);
    assert_eq!(read32(&bus, &mut ecam, nic, CARDBUS_CIS), 0);
    assert_eq!(read(&bus, &mut ecam, nic, BIST, AccessWidth::Byte), 0);
    assert!(ecam.writes().is_empty());
    assert_eq!(ecam.function(NIC).get32(EXPANSION_ROM), 0);
    // Its I/O BAR reads 0, probe or not.
    write32(&mut bus, &mut ecam, nic, BAR0 + 8, u32::MAX);
    assert_eq!(read32(&bus, &mut ecam, nic, BAR0 + 8), 0);
}

#[test]
fn command_passes_memory_bus_master_intx_disable_only() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    // Everything the register has: I/O, Memory, Bus Master, Parity, SERR#, INTx Disable.
    write(
        &mut bus,
        &mut ecam,
        blk,
        COMMAND,
        AccessWidth::Halfword,
        0x0547,
    );
    assert_eq!(ecam.function(BLK).get16(COMMAND), 0x0406);
    assert_eq!(
        read(&bus, &mut ecam, blk, COMMAND, AccessWidth::Halfword),
        0x0406
    );
    // A byte write of the high byte clears INTx Disable and leaves the low byte.
    write(
        &mut bus,
        &mut ecam,
        blk,
        COMMAND + 1,
        AccessWidth::Byte,
        0x00,
    );
    assert_eq!(ecam.function(BLK).get16(COMMAND), 0x0006);
    // Bits the device has but the cell does not control are kept, and read as 0.
    ecam.function_mut(BLK).set16(COMMAND, 0x0146);
    write(&mut bus, &mut ecam, blk, COMMAND, AccessWidth::Byte, 0x00);
    assert_eq!(ecam.function(BLK).get16(COMMAND), 0x0140);
    assert_eq!(
        read(&bus, &mut ecam, blk, COMMAND, AccessWidth::Halfword),
        0
    );
}

#[test]
fn status_rw1c_is_never_clobbered_by_command_writes() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    // Received Master Abort and Detected Parity Error pending.
    ecam.function_mut(BLK)
        .set16(STATUS, STATUS_CAPABILITIES_LIST | 0xa000);
    assert_eq!(read32(&bus, &mut ecam, blk, COMMAND), 0xa010_0000);
    ecam.log.clear();
    write(
        &mut bus,
        &mut ecam,
        blk,
        COMMAND,
        AccessWidth::Halfword,
        0x0006,
    );
    write(&mut bus, &mut ecam, blk, COMMAND, AccessWidth::Byte, 0x06);
    // Only 16-bit writes of Command reached the device, and Status kept its bits.
    assert!(ecam.writes().iter().all(|op| matches!(
        op,
        Op::Write16(BLK, COMMAND, _) | Op::Write32(BLK, 0x10..=0x30, _)
    )));
    assert_eq!(ecam.function(BLK).get16(STATUS), 0xa010);
    // A 32-bit write with Status 0 clears nothing either.
    write32(&mut bus, &mut ecam, blk, COMMAND, 0x0000_0006);
    assert_eq!(ecam.function(BLK).get16(STATUS), 0xa010);
    // Writing 1 to Received Master Abort clears it alone, through a Status write.
    ecam.log.clear();
    write(
        &mut bus,
        &mut ecam,
        blk,
        STATUS,
        AccessWidth::Halfword,
        0x2000,
    );
    assert_eq!(ecam.function(BLK).get16(STATUS), 0x8010);
    // (Its read-only bits are written back as they are.)
    assert_eq!(ecam.writes(), vec![Op::Write16(BLK, STATUS, 0x2010)]);
    // A 32-bit write clears Detected Parity Error and keeps Command.
    write32(&mut bus, &mut ecam, blk, COMMAND, 0x8000_0006);
    assert_eq!(ecam.function(BLK).get32(COMMAND), 0x0010_0006);
}

#[test]
fn memory_enable_rewrites_bars_a_reset_cleared() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    // The cell put the device through D3hot → D0 (or an FLR): BARs and Command are 0.
    for offset in [0x14, 0x20, 0x24] {
        ecam.function_mut(BLK).set32(offset, 0);
    }
    ecam.function_mut(BLK)
        .set32(0x20, BAR_MEMORY_TYPE_64 | BAR_MEMORY_PREFETCHABLE);
    write(
        &mut bus,
        &mut ecam,
        blk,
        COMMAND,
        AccessWidth::Halfword,
        0x0002,
    );
    assert_eq!(ecam.function(BLK).get32(0x14), 0x1000_4000);
    assert_eq!(ecam.function(BLK).get32(0x20), 0x1000_000c);
    assert_eq!(ecam.function(BLK).get16(COMMAND), 0x0002);
    // Already enabled: no BAR writes.
    ecam.log.clear();
    write(
        &mut bus,
        &mut ecam,
        blk,
        COMMAND,
        AccessWidth::Halfword,
        0x0006,
    );
    assert_eq!(ecam.writes(), vec![Op::Write16(BLK, COMMAND, 0x0006)]);
}

#[test]
fn capability_list_is_filtered_and_relinked() {
    let mut ecam = machine();
    let bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    // MSI-X (0x98) is hidden: the list starts at the PCI cfg capability.
    assert_eq!(
        read(&bus, &mut ecam, blk, CAPABILITY_POINTER, AccessWidth::Byte),
        0x84
    );
    let mut chain = Vec::new();
    let mut pointer = 0x84u16;
    while pointer != 0 {
        let header = read32(&bus, &mut ecam, blk, pointer);
        chain.push((pointer, header as u8));
        pointer = u16::from((header >> 8) as u8);
    }
    assert_eq!(
        chain,
        vec![(0x84, 9), (0x70, 9), (0x60, 9), (0x50, 9), (0x40, 9)]
    );
    // The vendor capabilities' contents pass: the common config's bar, offset and length.
    assert_eq!(read32(&bus, &mut ecam, blk, 0x40), 0x0110_0009);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x44), 4);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x4c), 0x1000);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x80), 4);
    // MSI-X's bytes read 0.
    for offset in [0x98, 0x9c, 0xa0] {
        assert_eq!(read32(&bus, &mut ecam, blk, offset), 0, "{offset:#x}");
    }
    for offset in (0xa4..0x100).step_by(4) {
        assert_eq!(read32(&bus, &mut ecam, blk, offset), 0, "{offset:#x}");
    }
}

#[test]
fn express_capabilities_filtered_and_writes_masked() {
    let mut ecam = machine();
    let functions = vec![cell_function(&mut ecam, bdf(0, 0, 0), NIC, NIC_WINDOW)];
    let mut bus = PciBus::new(functions).unwrap();
    let nic = bdf(0, 0, 0);
    ecam.log.clear();
    // PM (0x40) → PCIe (0x60) → vendor (0xb0); MSI (0x50) and MSI-X (0xa0) hidden.
    assert_eq!(read32(&bus, &mut ecam, nic, CAPABILITY_POINTER), 0x40);
    assert_eq!(read32(&bus, &mut ecam, nic, 0x40), 0x0003_6001);
    assert_eq!(read32(&bus, &mut ecam, nic, 0x50), 0);
    assert_eq!(read32(&bus, &mut ecam, nic, 0x60), 0x0002_b010);
    assert_eq!(read32(&bus, &mut ecam, nic, 0xa0), 0);
    assert_eq!(read32(&bus, &mut ecam, nic, 0xb0), 0x0008_0009);
    // MSI enable writes are dropped.
    write(
        &mut bus,
        &mut ecam,
        nic,
        0x52,
        AccessWidth::Halfword,
        0x0001,
    );
    write(
        &mut bus,
        &mut ecam,
        nic,
        0xa2,
        AccessWidth::Halfword,
        0x8000,
    );
    assert!(ecam.writes().is_empty());

    // Device Control: FLR, relaxed ordering and MRRS pass; error reporting, MPS, phantom do not.
    // (Max_Payload_Size stays 256 bytes, Aux Power and No Snoop are written 0.)
    write(
        &mut bus,
        &mut ecam,
        nic,
        0x68,
        AccessWidth::Halfword,
        0xf3ff,
    );
    assert_eq!(ecam.writes(), vec![Op::Write16(NIC, 0x68, 0xf130)]);
    assert_eq!(ecam.function(NIC).get16(0x68), 0x7130);
    // Device Status: a 32-bit write of the DevCtl/DevSta dword clears UR Detected and writes
    // Device Control alone.
    ecam.log.clear();
    write32(&mut bus, &mut ecam, nic, 0x68, 0x0004_0000 | 0x7130);
    assert_eq!(
        ecam.writes(),
        vec![
            Op::Write16(NIC, 0x68, 0x7130),
            Op::Write16(NIC, 0x6a, 0x0004)
        ]
    );
    assert_eq!(ecam.function(NIC).get16(0x6a), 0);
    // Link Control is read-only.
    ecam.log.clear();
    write(
        &mut bus,
        &mut ecam,
        nic,
        0x70,
        AccessWidth::Halfword,
        0x0013,
    );
    assert!(ecam.writes().is_empty());
    assert_eq!(
        read(&bus, &mut ecam, nic, 0x70, AccessWidth::Halfword),
        0x0040
    );

    // PMCSR: D3hot passes, PME_En does not, PME_Status is cleared only when written with 1.
    write(
        &mut bus,
        &mut ecam,
        nic,
        0x44,
        AccessWidth::Halfword,
        0x0103,
    );
    assert_eq!(ecam.writes(), vec![Op::Write16(NIC, 0x44, 0x0003)]);
    assert_eq!(ecam.function(NIC).get16(0x44), 0x8003);
    write(&mut bus, &mut ecam, nic, 0x45, AccessWidth::Byte, 0x80);
    assert_eq!(ecam.function(NIC).get16(0x44), 0x0003);

    // A non-virtio vendor capability is read-only.
    ecam.log.clear();
    write32(&mut bus, &mut ecam, nic, 0xb4, 0);
    assert!(ecam.writes().is_empty());
    assert_eq!(read32(&bus, &mut ecam, nic, 0xb4), 0x1234_5678);

    // The extended capability (SR-IOV) is hidden.
    assert_eq!(read32(&bus, &mut ecam, nic, 0x100), 0);
    assert_eq!(read32(&bus, &mut ecam, nic, 0x104), 0);
    write32(&mut bus, &mut ecam, nic, 0x108, 0xffff_ffff);
    assert_eq!(read32(&bus, &mut ecam, nic, 0xffc), 0);
    assert!(ecam.writes().is_empty());
    assert_eq!(ecam.function(NIC).get32(0x108), 0);
}

#[test]
fn virtio_vendor_capability_writes_are_forwarded_as_written() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    // The PCI cfg capability at 0x84: bar byte, offset, length, data.
    write(&mut bus, &mut ecam, blk, 0x88, AccessWidth::Byte, 4);
    write32(&mut bus, &mut ecam, blk, 0x8c, 0x14);
    write(&mut bus, &mut ecam, blk, 0x90, AccessWidth::Halfword, 1);
    write32(&mut bus, &mut ecam, blk, 0x94, 0);
    // A dword write over the header: ID and next pointer are not forwarded.
    write32(&mut bus, &mut ecam, blk, 0x84, 0xffff_ffff);
    assert_eq!(
        ecam.writes(),
        vec![
            Op::Write8(BLK, 0x88, 4),
            Op::Write32(BLK, 0x8c, 0x14),
            Op::Write16(BLK, 0x90, 1),
            Op::Write32(BLK, 0x94, 0),
            Op::Write16(BLK, 0x86, 0xffff),
        ]
    );
    assert_eq!(read32(&bus, &mut ecam, blk, 0x88), 4);
    // MSI-X Message Control is not reachable.
    ecam.log.clear();
    write(
        &mut bus,
        &mut ecam,
        blk,
        0x9a,
        AccessWidth::Halfword,
        0x8000,
    );
    write32(&mut bus, &mut ecam, blk, 0x98, 0x8000_0000);
    assert!(ecam.writes().is_empty());
    assert_eq!(ecam.function(BLK).get16(0x9a), 2);
}

#[test]
fn status_capability_bit_follows_the_filtered_list() {
    let mut only_msix = virtio(0x1042, 0);
    only_msix.set8(0x98 + 1, 0);
    let mut ecam = FakeEcam::new().with(BLK, only_msix);
    let functions = vec![cell_function(&mut ecam, bdf(0, 0, 0), BLK, BLK_WINDOW)];
    let bus = PciBus::new(functions).unwrap();
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 0, 0), COMMAND), 0);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 0, 0), CAPABILITY_POINTER), 0);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 0, 0), 0x98), 0);
}

#[test]
fn sub_word_reads_are_the_dwords_bytes() {
    let mut ecam = machine();
    let nic_function = cell_function(&mut ecam, bdf(0, 2, 0), NIC, NIC_WINDOW);
    let mut functions = vec![
        cell_function(&mut ecam, bdf(0, 0, 0), BLK, BLK_WINDOW),
        cell_function(&mut ecam, bdf(0, 0, 1), NET, NET_WINDOW),
    ];
    functions.push(nic_function);
    let bus = PciBus::new(functions).unwrap();
    ecam.function_mut(BLK).set16(STATUS, 0x2010);
    for guest in [bdf(0, 0, 0), bdf(0, 0, 1), bdf(0, 2, 0), bdf(0, 3, 0)] {
        for offset in (0..0x140u16).step_by(4) {
            let dword = read32(&bus, &mut ecam, guest, offset);
            for byte in 0..4 {
                assert_eq!(
                    read(&bus, &mut ecam, guest, offset + byte, AccessWidth::Byte),
                    u64::from((dword >> (8 * byte)) as u8),
                    "{guest} {:#x}",
                    offset + byte
                );
            }
            for half in [0, 2] {
                assert_eq!(
                    read(&bus, &mut ecam, guest, offset + half, AccessWidth::Halfword),
                    u64::from((dword >> (8 * half)) as u16),
                    "{guest} {:#x}",
                    offset + half
                );
            }
        }
    }
}

#[test]
fn bad_widths_and_misaligned_accesses_are_refused() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    for (offset, width, error) in [
        (0x1u64, AccessWidth::Halfword, MmioError::Unaligned),
        (0x2, AccessWidth::Word, MmioError::Unaligned),
        (0x0, AccessWidth::Doubleword, MmioError::BadWidth),
        // Absent functions too.
        (0x8_0001, AccessWidth::Word, MmioError::Unaligned),
        (0x8_0000, AccessWidth::Doubleword, MmioError::BadWidth),
    ] {
        assert_eq!(bus.read(offset, width, &mut ecam), Err(error));
        assert_eq!(bus.write(offset, width, 0, &mut ecam), Err(error));
    }
    assert!(ecam.log.is_empty());
    // A failing physical access is an abort for the cell.
    ecam.failing = Some(BLK);
    assert_eq!(
        bus.read(COMMAND.into(), AccessWidth::Word, &mut ecam),
        Err(MmioError::DeviceAbort)
    );
    assert_eq!(
        bus.write(COMMAND.into(), AccessWidth::Halfword, 2, &mut ecam),
        Err(MmioError::DeviceAbort)
    );
}

#[test]
fn renumbering_and_the_multi_function_bit() {
    let mut ecam = machine();
    // virtio-blk and virtio-net as functions 0 and 1 of guest device 5; the NIC alone on 6.
    let functions = vec![
        cell_function(&mut ecam, bdf(0, 5, 1), NET, NET_WINDOW),
        cell_function(&mut ecam, bdf(0, 5, 0), BLK, BLK_WINDOW),
        cell_function(&mut ecam, bdf(0, 6, 0), NIC, NIC_WINDOW),
    ];
    let bus = PciBus::new(functions).unwrap();
    assert_eq!(
        bus.functions().collect::<Vec<_>>(),
        vec![
            (bdf(0, 5, 1), NET),
            (bdf(0, 5, 0), BLK),
            (bdf(0, 6, 0), NIC)
        ]
    );
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 5, 0), 0), 0x1042_1af4);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 5, 1), 0), 0x1041_1af4);
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 6, 0), 0), 0x10d3_8086);
    assert_eq!(
        read(
            &bus,
            &mut ecam,
            bdf(0, 5, 0),
            HEADER_TYPE,
            AccessWidth::Byte
        ),
        0x80
    );
    assert_eq!(
        read(
            &bus,
            &mut ecam,
            bdf(0, 5, 1),
            HEADER_TYPE,
            AccessWidth::Byte
        ),
        0x80
    );
    assert_eq!(
        read(
            &bus,
            &mut ecam,
            bdf(0, 6, 0),
            HEADER_TYPE,
            AccessWidth::Byte
        ),
        0
    );
    assert_eq!(read32(&bus, &mut ecam, bdf(0, 5, 2), 0), 0xffff_ffff);
    assert_eq!(read32(&bus, &mut ecam, BLK, 0), 0xffff_ffff);
}

#[test]
fn cell_layout_errors() {
    let mut ecam = machine();
    let blk = cell_function(&mut ecam, bdf(0, 0, 0), BLK, BLK_WINDOW);
    let net = cell_function(&mut ecam, bdf(0, 1, 0), NET, NET_WINDOW);
    let moved = |function: &CellFunction, guest| CellFunction {
        guest,
        ..function.clone()
    };
    assert_eq!(
        PciBus::new(vec![moved(&blk, bdf(1, 0, 0))]).unwrap_err(),
        PciError::GuestNotOnBusZero {
            guest: bdf(1, 0, 0)
        }
    );
    assert_eq!(
        PciBus::new(vec![blk.clone(), moved(&net, bdf(0, 0, 0))]).unwrap_err(),
        PciError::DuplicateGuestFunction {
            guest: bdf(0, 0, 0)
        }
    );
    let error = PciBus::new(vec![blk.clone(), moved(&net, bdf(0, 1, 2))]).unwrap_err();
    assert_eq!(
        error,
        PciError::NoFunctionZero {
            guest: bdf(0, 1, 2)
        }
    );
    assert_eq!(
        error.to_string(),
        "cell PCI function 00:01.2 is on a device without function 0, which Linux does not scan: number one of its functions 00:01.0"
    );
    let mut wrong = blk.clone();
    wrong.bars.pop();
    assert_eq!(
        PciBus::new(vec![wrong]).unwrap_err(),
        PciError::AssignmentMismatch { bdf: BLK }
    );
    let mut resized = blk.clone();
    resized.bars[0].size = 0x2000;
    assert_eq!(
        PciBus::new(vec![resized]).unwrap_err(),
        PciError::AssignmentMismatch { bdf: BLK }
    );
}

#[test]
fn interrupt_line_and_cache_line_are_scratch_and_reset() {
    let mut ecam = machine();
    let mut bus = cell(&mut ecam);
    let blk = bdf(0, 0, 0);
    write(
        &mut bus,
        &mut ecam,
        blk,
        INTERRUPT_LINE,
        AccessWidth::Byte,
        0x2a,
    );
    write(
        &mut bus,
        &mut ecam,
        blk,
        CACHE_LINE_SIZE,
        AccessWidth::Byte,
        0x10,
    );
    // Interrupt Pin is read-only: a dword write keeps it.
    write32(
        &mut bus,
        &mut ecam,
        bdf(0, 1, 0),
        INTERRUPT_LINE,
        0xffff_ff07,
    );
    assert_eq!(read32(&bus, &mut ecam, blk, INTERRUPT_LINE), 0x0000_012a);
    assert_eq!(
        read32(&bus, &mut ecam, bdf(0, 1, 0), INTERRUPT_LINE),
        0x0000_0107
    );
    assert_eq!(read32(&bus, &mut ecam, blk, CACHE_LINE_SIZE), 0x10);
    write32(&mut bus, &mut ecam, blk, 0x14, u32::MAX);
    assert!(ecam.writes().is_empty());
    assert_eq!(ecam.function(BLK).config[usize::from(INTERRUPT_LINE)], 0);
    bus.reset();
    assert_eq!(read32(&bus, &mut ecam, blk, INTERRUPT_LINE), 0x0000_0100);
    assert_eq!(read32(&bus, &mut ecam, blk, CACHE_LINE_SIZE), 0);
    assert_eq!(read32(&bus, &mut ecam, blk, 0x14), 0x1000_4000);
}

// ---- quiesce and reset ----

#[test]
fn quiesce_and_function_level_reset() {
    let mut ecam = machine();
    let nic = probe(&mut ecam, NIC).unwrap();
    let blk = probe(&mut ecam, BLK).unwrap();
    ecam.function_mut(NIC).set16(COMMAND, 0x0407);
    ecam.function_mut(NIC).set16(STATUS, 0x2010);
    stop_dma(&mut ecam, NIC).unwrap();
    assert_eq!(ecam.function(NIC).get16(COMMAND), 0x0403);
    quiesce(&mut ecam, NIC, &nic).unwrap();
    assert_eq!(ecam.function(NIC).get16(COMMAND), 0x0400);
    assert_eq!(ecam.function(NIC).get16(STATUS), 0x2010);
    assert_eq!(ecam.function(NIC).get16(0x52) & MSI_FLAGS_ENABLE, 0);
    assert_eq!(ecam.function(NIC).get16(0xa2), 0x0004);

    ecam.log.clear();
    assert_eq!(function_level_reset(&mut ecam, NIC, &nic), Ok(true));
    assert_eq!(ecam.writes(), vec![Op::Write16(NIC, 0x68, 0xa030)]);
    ecam.log.clear();
    assert_eq!(function_level_reset(&mut ecam, BLK, &blk), Ok(false));
    assert!(ecam.writes().is_empty());

    let mut advanced = blk.clone();
    advanced.flr = Some(FlrMethod::AdvancedFeatures { capability: 0x50 });
    assert_eq!(function_level_reset(&mut ecam, BLK, &advanced), Ok(true));
    assert_eq!(ecam.writes(), vec![Op::Write8(BLK, 0x54, 1)]);
}

#[test]
fn virtio_reset_location_must_lie_in_a_memory_bar() {
    let mut ecam = machine();
    let mut info = probe(&mut ecam, NET).unwrap();
    assert_eq!(virtio_reset_location(&info), Some((4, 0x14)));
    info.virtio_common = Some(VirtioCommonConfig {
        bar: 4,
        offset: 0x3ff0,
        length: 0x38,
    });
    assert_eq!(virtio_reset_location(&info), None);
    info.virtio_common = Some(VirtioCommonConfig {
        bar: 2,
        offset: 0,
        length: 0x38,
    });
    assert_eq!(virtio_reset_location(&info), None);
}

// ---- INTx ----

#[test]
fn interrupt_pins_are_the_registers_one_to_four() {
    assert_eq!(IntxPin::from_register(0), None);
    assert_eq!(IntxPin::from_register(5), None);
    assert_eq!(IntxPin::from_register(1), Some(IntxPin::A));
    assert_eq!(IntxPin::from_register(4), Some(IntxPin::D));
    assert_eq!(IntxPin::D.number(), 4);
}

#[test]
fn sizes_print_in_binary_units() {
    assert_eq!(Size(0x5000).to_string(), "20 KiB");
    assert_eq!(Size(0x10_0000).to_string(), "1 MiB");
    assert_eq!(Size(0x4000_0000).to_string(), "1 GiB");
    assert_eq!(Size(0x1800).to_string(), "6 KiB");
    assert_eq!(Size(100).to_string(), "100 bytes");
    assert_eq!(Size(0).to_string(), "0 bytes");
}
