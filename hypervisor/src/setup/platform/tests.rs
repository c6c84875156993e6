//! Host tests of platform DT reading, on QEMU virt fixtures and on corrupted trees.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::properties::FDT_HEADER_SIZE;
use super::*;

pub(crate) const QEMU_VIRT_GICV3: &[u8] = include_bytes!("../../../tests/data/qemu-virt-gicv3.dtb");
const QEMU_VIRT_GICV2: &[u8] = include_bytes!("../../../tests/data/qemu-virt-gicv2.dtb");

#[test]
fn reads_qemu_virt_gicv3() {
    let platform = parse(QEMU_VIRT_GICV3).expect("fixture parses");
    assert_eq!(platform.memory, [MemRange::new(0x4000_0000, 0x8000_0000)]);
    let mpidrs: Vec<u64> = platform.cpus.iter().map(|cpu| cpu.mpidr).collect();
    assert_eq!(mpidrs, [0, 1, 2, 3]);
    assert_eq!(platform.gic.version, GicVersion::V3);
    assert_eq!(
        platform.gic.distributor,
        MemRange::new(0x0800_0000, 0x1_0000)
    );
    assert_eq!(
        platform.gic.redistributor_regions,
        [MemRange::new(0x080A_0000, 0xF6_0000)]
    );
    assert_eq!(platform.gic.its, Some(MemRange::new(0x0808_0000, 0x2_0000)));
    assert_eq!(platform.gic.maintenance_intid, Some(16 + 9));
    assert_eq!(platform.gic.v2, None);
    assert_eq!(
        platform.console,
        Uart {
            registers: MemRange::new(0x0900_0000, 0x1000),
            intid: 33,
            kind: UartKind::Pl011,
        }
    );
    assert_eq!(platform.psci_method, Some(PsciMethod::Smc));
    assert!(
        platform
            .cpus
            .iter()
            .all(|cpu| cpu.enable_method == EnableMethod::Psci)
    );
    assert_eq!(
        platform.timer,
        TimerInterrupts {
            secure_physical: 29,
            nonsecure_physical: 30,
            virtual_timer: 27,
            hypervisor_physical: 26,
            hypervisor_virtual: Some(28),
            counter_erratum: false,
        }
    );
    assert_eq!(platform.bootargs, "");
    assert_eq!(platform.initrd, None);
    assert_eq!(platform.virtio_mmio.len(), 32);
    assert!(platform.virtio_mmio.contains(&VirtioMmio {
        registers: MemRange::new(0x0A00_3E00, 0x200),
        intid: 32 + 47,
    }));
    assert!(platform.virtio_mmio.contains(&VirtioMmio {
        registers: MemRange::new(0x0A00_0000, 0x200),
        intid: 32 + 16,
    }));
}

#[test]
fn device_nodes_are_found_by_any_address_in_their_windows() {
    let platform = parse(QEMU_VIRT_GICV3).expect("fixture parses");
    let expected = PlatformDevice {
        name: "virtio_mmio@a003e00".into(),
        compatible: alloc::vec!["virtio,mmio".into()],
        registers: alloc::vec![MemRange::new(0x0A00_3E00, 0x200)],
        interrupts: alloc::vec![GicInterrupt {
            kind: 0,
            number: 47,
            flags: 1
        }],
        dma_coherent: true,
    };
    for address in [0x0A00_3E00, 0x0A00_3E04, 0x0A00_3FFF] {
        assert_eq!(platform.device_node(address), Some(&expected));
    }
    assert_eq!(expected.intids(), [79]);
    let slot_30 = platform.device_node(0x0A00_3DFF).expect("slot 30");
    assert_eq!(slot_30.name, "virtio_mmio@a003c00");
    assert_eq!(slot_30.intids(), [78]);
    let uart = platform.device_node(0x0900_0000).expect("pl011");
    assert_eq!(uart.compatible, ["arm,pl011", "arm,primecell"]);
    assert!(!uart.dma_coherent);
    assert!(uart.interrupts.iter().all(GicInterrupt::is_spi));
    assert_eq!(uart.intids(), [33]);
    // Neither RAM nor the GIC is a device node; a gap between slots is no device.
    assert_eq!(platform.device_node(0x4000_0000), None);
    assert_eq!(platform.device_node(0x0800_0000), None);
    assert_eq!(platform.device_node(0x0A00_4000), None);
    let virtio_nodes = platform
        .devices
        .iter()
        .filter(|device| device.compatible.iter().any(|c| c == "virtio,mmio"))
        .count();
    assert_eq!(virtio_nodes, 32);
}

#[test]
fn reads_the_gicv2_frames() {
    let platform = parse(QEMU_VIRT_GICV2).expect("fixture parses");
    assert_eq!(platform.gic.version, GicVersion::V2);
    assert_eq!(
        platform.gic.distributor,
        MemRange::new(0x0800_0000, 0x1_0000)
    );
    assert!(platform.gic.redistributor_regions.is_empty());
    let frames = platform.gic.v2.expect("GICv2 frames");
    assert_eq!(frames.cpu_interface, MemRange::new(0x0801_0000, 0x1_0000));
    assert_eq!(
        frames.hypervisor_interface,
        MemRange::new(0x0803_0000, 0x1_0000)
    );
    assert_eq!(
        frames.virtual_cpu_interface,
        MemRange::new(0x0804_0000, 0x1_0000)
    );
    assert_eq!(platform.gic.maintenance_intid, Some(25));
}

#[test]
fn layout_name_comes_from_bootargs() {
    assert_eq!(
        layout_from_bootargs("quiet cellvisor.layout=linux"),
        Some("linux")
    );
    assert_eq!(
        layout_from_bootargs("cellvisor.layout=a x cellvisor.layout=test-guests"),
        Some("test-guests")
    );
    assert_eq!(layout_from_bootargs("cellvisor.layoutx=a"), None);
    assert_eq!(layout_from_bootargs(""), None);
}

#[test]
fn refuses_garbage_without_panicking() {
    assert!(matches!(parse(&[]), Err(PlatformError::BadHeader(_))));
    assert!(matches!(
        parse(&[0u8; 64]),
        Err(PlatformError::BadHeader(_))
    ));
    // A truncated real tree: the header promises more than the slice holds.
    assert!(matches!(
        parse(&QEMU_VIRT_GICV3[..4096]),
        Err(PlatformError::BadHeader(_))
    ));
    // Header offsets pointing past the blob.
    let mut broken = QEMU_VIRT_GICV3[..QEMU_VIRT_GICV3.len()].to_vec();
    broken[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(parse(&broken), Err(PlatformError::BadHeader(_))));
}

#[test]
fn corrupted_trees_give_errors_not_panics() {
    let header_field = |index: usize| {
        let bytes = &QEMU_VIRT_GICV3[index * 4..index * 4 + 4];
        u32::from_be_bytes(bytes.try_into().unwrap()) as usize
    };
    // Keep only the used part of the 1 MiB fixture so corruptions land in the structure.
    let used = (header_field(2) + header_field(9)).max(header_field(3) + header_field(8));
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut bytes = QEMU_VIRT_GICV3[..used].to_vec();
        bytes[4..8].copy_from_slice(&(used as u32).to_be_bytes());
        for _ in 0..1 + noise() % 3 {
            let position = FDT_HEADER_SIZE + (noise() as usize % (used - FDT_HEADER_SIZE));
            bytes[position] = noise() as u8;
        }
        let _ = parse(&bytes);
    }
}

#[test]
fn errors_are_one_line() {
    let errors = [
        PlatformError::BadHeader("bad magic"),
        PlatformError::Malformed("x".into()),
        PlatformError::NoMemory,
        PlatformError::NoCpus,
        PlatformError::NoGic,
        PlatformError::NoGicVirtualization,
        PlatformError::NoConsole,
        PlatformError::UnsupportedConsole("uart@1".into()),
        PlatformError::NoPsci,
        PlatformError::UnsupportedEnableMethod {
            cpu: "cpu@0".into(),
            method: "brcm,bcm2836-smp".into(),
        },
        PlatformError::NoTimer,
        PlatformError::BadProperty {
            node: "n".into(),
            property: "reg",
        },
        PlatformError::TranslatedAddress("n".into()),
        PlatformError::UntranslatableAddress {
            node: "serial@7e201000".into(),
            address: 0x7e20_1000,
            bus: "soc".into(),
        },
    ];
    for error in errors {
        let line = error.to_string();
        assert!(!line.contains('\n') && line.contains(": "), "{line}");
    }
}

/// The Raspberry Pi 4 B DTB of Debian's kernel package (tests/data/README.md).
const RASPI4B: &[u8] = include_bytes!("../../../tests/data/bcm2711-rpi-4-b.dtb");
/// The PinePhone 1.2 DTB of Debian's kernel package (tests/data/README.md).
const PINEPHONE: &[u8] = include_bytes!("../../../tests/data/sun50i-a64-pinephone-1.2.dtb");
/// 2 GiB of RAM from 0: what QEMU's raspi4b has (the DTB's `memory@0` is empty).
const RASPI4B_RAM: [MemRange; 1] = [MemRange::new(0, 0x8000_0000)];
/// The 2 GiB PinePhone's DRAM (the DTB has no `/memory`).
const PINEPHONE_RAM: [MemRange; 1] = [MemRange::new(0x4000_0000, 0x8000_0000)];

/// The raspi4b's PL011 (UART0, alias `serial0`), behind `/soc`'s ranges.
const RASPI4B_PL011: Uart = Uart {
    registers: MemRange::new(0xFE20_1000, 0x200),
    intid: 32 + 0x79,
    kind: UartKind::Pl011,
};

/// The raspi4b DTB with `stdout-path` pointing at UART0 (the PL011, alias `serial0`) instead of
/// the mini UART (`serial1`), as the Pi firmware's `enable_uart`/QEMU's console wiring want it.
fn raspi4b_with_pl011_console() -> Vec<u8> {
    let mut dtb = RASPI4B.to_vec();
    let from = b"serial1:115200n8";
    let position = dtb
        .windows(from.len())
        .position(|window| window == from)
        .expect("the fixture's stdout-path");
    dtb[position..position + from.len()].copy_from_slice(b"serial0:115200n8");
    dtb
}

#[test]
fn raspi4b_stock_console_is_the_unsupported_mini_uart() {
    // The stock tree's stdout-path is serial1, the BCM2835 AUX mini UART: neither PL011 nor 16550.
    assert_eq!(
        parse_with_memory(RASPI4B, &RASPI4B_RAM),
        Err(PlatformError::UnsupportedConsole("serial@7e215040".into()))
    );
}

/// The raspi4b tree as QEMU 10's `raspi4b` passes it to `-kernel` (`-machine dumpdtb`, with
/// `-append "cellvisor.console=serial0 cellvisor.layout=linux"`): `memory@0` filled in, the stock
/// `stdout-path` (the mini UART) kept.
const RASPI4B_QEMU: &[u8] = include_bytes!("../../../tests/data/raspi4b-qemu.dtb");

#[test]
fn the_console_bootarg_picks_the_pl011_over_the_stock_mini_uart() {
    let platform = parse(RASPI4B_QEMU).expect("QEMU's raspi4b tree parses");
    assert_eq!(platform.console, RASPI4B_PL011);
    // What QEMU's raspi4b gives the ARM: 960 MiB from 0 (the rest of its first GiB is the VC's).
    assert_eq!(platform.memory, [MemRange::new(0, 0x3C00_0000)]);
    assert_eq!(console_from_bootargs(&platform.bootargs), Some("serial0"));
    // The last one wins.
    assert_eq!(
        console_from_bootargs("cellvisor.console=/soc/serial@7e201000 cellvisor.console=serial0"),
        Some("serial0")
    );
}

#[test]
fn a_tree_that_cannot_be_read_still_names_its_console() {
    // The stock raspi4b tree without RAM fails as a whole, but its console (as the bootarg
    // names it in QEMU's copy) is found, so the fatal line can be printed there.
    assert_eq!(
        parse(&raspi4b_with_pl011_console()),
        Err(PlatformError::NoMemory)
    );
    assert_eq!(
        parse_console(&raspi4b_with_pl011_console()).map(|uart| uart.registers.base),
        Ok(0xFE20_1000)
    );
    assert_eq!(
        parse_console(RASPI4B).map(|uart| uart.kind),
        Err(PlatformError::UnsupportedConsole("serial@7e215040".into()))
    );
    // And how to power off: the raspi4b has no /psci; QEMU virt names its conduit.
    assert_eq!(parse_psci_method(RASPI4B), Ok(None));
    assert_eq!(
        parse_psci_method(QEMU_VIRT_GICV3),
        Ok(parse(QEMU_VIRT_GICV3).expect("parses").psci_method)
    );
    assert!(parse_psci_method(QEMU_VIRT_GICV3).expect("reads").is_some());
}

#[test]
fn raspi4b_without_memory_or_fallback_has_no_memory() {
    assert_eq!(
        parse(&raspi4b_with_pl011_console()),
        Err(PlatformError::NoMemory)
    );
}

/// Checks that `platform` has a GIC-400 laid out as Arm's GIC-400 TRM places its frames from
/// `base`: GICD at +0x1000, GICC at +0x2000, GICH at +0x4000, GICV at +0x6000, maintenance PPI 9.
fn assert_gic_400_at(platform: &Platform, base: u64) {
    assert_eq!(platform.gic.version, GicVersion::V2);
    assert_eq!(
        platform.gic.distributor,
        MemRange::new(base + 0x1000, 0x1000)
    );
    assert_eq!(
        platform.gic.v2,
        Some(GicV2Frames {
            cpu_interface: MemRange::new(base + 0x2000, 0x2000),
            hypervisor_interface: MemRange::new(base + 0x4000, 0x2000),
            virtual_cpu_interface: MemRange::new(base + 0x6000, 0x2000),
        })
    );
    assert_eq!(platform.gic.maintenance_intid, Some(25));
}

#[test]
fn reads_raspi4b_through_the_soc_ranges() {
    let platform =
        parse_with_memory(&raspi4b_with_pl011_console(), &RASPI4B_RAM).expect("raspi4b parses");
    assert_eq!(platform.memory, RASPI4B_RAM);
    // GIC-400 at bus address 0x4004_1000, mapped by /soc's ranges to 0xFF84_1000.
    assert_gic_400_at(&platform, 0xFF84_0000);
    assert_eq!(platform.console, RASPI4B_PL011);
    assert_eq!(
        platform.timer,
        TimerInterrupts {
            secure_physical: 29,
            nonsecure_physical: 30,
            virtual_timer: 27,
            hypervisor_physical: 26,
            hypervisor_virtual: None,
            counter_erratum: false,
        }
    );
    // No /psci: every CPU waits on a spin table.
    assert_eq!(platform.psci_method, None);
    let cpus: Vec<(u64, EnableMethod)> = platform
        .cpus
        .iter()
        .map(|cpu| (cpu.mpidr, cpu.enable_method))
        .collect();
    let spin = |release_address| EnableMethod::SpinTable { release_address };
    assert_eq!(
        cpus,
        [
            (0, spin(0xd8)),
            (1, spin(0xe0)),
            (2, spin(0xe8)),
            (3, spin(0xf0))
        ]
    );
    // Devices under /soc are listed with CPU physical addresses.
    let uart = platform.device_node(0xFE20_1000).expect("UART0 node");
    assert_eq!(uart.name, "serial@7e201000");
    assert_eq!(uart.registers, [MemRange::new(0xFE20_1000, 0x200)]);
    assert!(platform.has_node_at(0xFE21_5040, "brcm,bcm2835-aux-uart"));
    assert_eq!(
        platform.device_node(0x7E20_1000),
        None,
        "bus addresses are not physical"
    );
    // The GIC is no device node, even under a bus.
    assert_eq!(platform.device_node(0xFF84_1000), None);
}

#[test]
fn pinephone_needs_its_memory_from_the_boot_loader() {
    assert_eq!(parse(PINEPHONE), Err(PlatformError::NoMemory));
    let platform = parse_with_memory(PINEPHONE, &PINEPHONE_RAM).expect("pinephone parses");
    assert_eq!(platform.memory, PINEPHONE_RAM);
}

#[test]
fn reads_pinephone() {
    let platform = parse_with_memory(PINEPHONE, &PINEPHONE_RAM).expect("pinephone parses");
    assert_gic_400_at(&platform, 0x01C8_0000);
    // UART0, a DesignWare APB UART: 32-bit registers 4 bytes apart.
    assert_eq!(
        platform.console,
        Uart {
            registers: MemRange::new(0x01C2_8000, 0x400),
            intid: 32,
            kind: UartKind::Ns16550 {
                reg_shift: 2,
                reg_io_width: 4
            },
        }
    );
    assert_eq!(
        platform.timer,
        TimerInterrupts {
            secure_physical: 29,
            nonsecure_physical: 30,
            virtual_timer: 27,
            hypervisor_physical: 26,
            hypervisor_virtual: None,
            counter_erratum: true,
        }
    );
    assert_eq!(platform.psci_method, Some(PsciMethod::Smc));
    let mpidrs: Vec<u64> = platform.cpus.iter().map(|cpu| cpu.mpidr).collect();
    assert_eq!(mpidrs, [0, 1, 2, 3]);
    assert!(
        platform
            .cpus
            .iter()
            .all(|cpu| cpu.enable_method == EnableMethod::Psci)
    );
    let ehci1 = platform.device_node(0x01C1_B000).expect("EHCI1");
    assert!(ehci1.compatible.iter().any(|name| name == "generic-ehci"));
    assert!(platform.has_node_at(0x01C1_B400, "generic-ohci"));
    assert!(platform.has_node_at(0x01C2_8C00, "snps,dw-apb-uart"));
    assert!(platform.device_node(0x01CA_0000).is_some(), "DSI");
}

/// A minimal tree: `/soc` (one address cell, one size cell) with the given `ranges` cells,
/// holding a GIC-400 and a PL011 console at the given bus addresses.
fn tree_with_soc(ranges: Option<&[u32]>, uart_bus_address: u32) -> Vec<u8> {
    let mut writer = vm_fdt::FdtWriter::new().expect("writer");
    let root = writer.begin_node("").expect("root");
    writer.property_u32("#address-cells", 2).expect("cells");
    writer.property_u32("#size-cells", 1).expect("cells");
    let memory = writer.begin_node("memory@40000000").expect("memory");
    writer
        .property_string("device_type", "memory")
        .expect("type");
    writer
        .property_array_u32("reg", &[0, 0x4000_0000, 0x1000_0000])
        .expect("reg");
    writer.end_node(memory).expect("end");
    let cpus = writer.begin_node("cpus").expect("cpus");
    writer.property_u32("#address-cells", 1).expect("cells");
    writer.property_u32("#size-cells", 0).expect("cells");
    let cpu = writer.begin_node("cpu@0").expect("cpu");
    writer.property_string("device_type", "cpu").expect("type");
    writer.property_u32("reg", 0).expect("reg");
    writer
        .property_string("enable-method", "psci")
        .expect("method");
    writer.end_node(cpu).expect("end");
    writer.end_node(cpus).expect("end");
    let psci = writer.begin_node("psci").expect("psci");
    writer.property_string("method", "smc").expect("method");
    writer.end_node(psci).expect("end");
    let timer = writer.begin_node("timer").expect("timer");
    writer
        .property_string("compatible", "arm,armv8-timer")
        .expect("compatible");
    writer
        .property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
        .expect("interrupts");
    writer.end_node(timer).expect("end");
    let chosen = writer.begin_node("chosen").expect("chosen");
    let uart_path = alloc::format!("/soc/serial@{uart_bus_address:x}");
    writer
        .property_string("stdout-path", &uart_path)
        .expect("stdout");
    writer.end_node(chosen).expect("end");
    let soc = writer.begin_node("soc").expect("soc");
    writer
        .property_string("compatible", "simple-bus")
        .expect("compatible");
    writer.property_u32("#address-cells", 1).expect("cells");
    writer.property_u32("#size-cells", 1).expect("cells");
    if let Some(ranges) = ranges {
        writer.property_array_u32("ranges", ranges).expect("ranges");
    }
    let gic = writer
        .begin_node("interrupt-controller@40041000")
        .expect("gic");
    writer
        .property_string("compatible", "arm,gic-400")
        .expect("compatible");
    writer
        .property_array_u32(
            "reg",
            &[
                0x4004_1000,
                0x1000,
                0x4004_2000,
                0x2000,
                0x4004_4000,
                0x2000,
                0x4004_6000,
                0x2000,
            ],
        )
        .expect("reg");
    writer.end_node(gic).expect("end");
    let uart = writer
        .begin_node(&alloc::format!("serial@{uart_bus_address:x}"))
        .expect("uart");
    writer
        .property_string("compatible", "arm,pl011")
        .expect("compatible");
    writer
        .property_array_u32("reg", &[uart_bus_address, 0x200])
        .expect("reg");
    writer
        .property_array_u32("interrupts", &[0, 5, 4])
        .expect("interrupts");
    writer.end_node(uart).expect("end");
    writer.end_node(soc).expect("end");
    writer.end_node(root).expect("end");
    writer.finish().expect("finish")
}

/// `/soc`'s ranges in the raspi4b's shape: child address, two-cell parent address, size.
const SOC_RANGES: [u32; 8] = [
    0x7e00_0000,
    0,
    0xfe00_0000,
    0x180_0000,
    0x4000_0000,
    0,
    0xff80_0000,
    0x80_0000,
];

#[test]
fn bus_ranges_translate_reg() {
    let platform = parse(&tree_with_soc(Some(&SOC_RANGES), 0x7e20_1000)).expect("parses");
    assert_eq!(platform.gic.distributor, MemRange::new(0xff84_1000, 0x1000));
    assert_eq!(
        platform.console.registers,
        MemRange::new(0xfe20_1000, 0x200)
    );
    assert_eq!(platform.console.intid, 37);
}

#[test]
fn empty_bus_ranges_are_the_identity() {
    let platform = parse(&tree_with_soc(Some(&[]), 0x0900_0000)).expect("parses");
    assert_eq!(platform.gic.distributor, MemRange::new(0x4004_1000, 0x1000));
    assert_eq!(
        platform.console.registers,
        MemRange::new(0x0900_0000, 0x200)
    );
}

#[test]
fn an_address_outside_every_range_is_refused() {
    assert_eq!(
        parse(&tree_with_soc(Some(&SOC_RANGES), 0x1000_0000)),
        Err(PlatformError::UntranslatableAddress {
            node: "serial@10000000".into(),
            address: 0x1000_0000,
            bus: "soc".into(),
        })
    );
    // A window that starts inside a range but runs past its end is refused too.
    assert!(matches!(
        parse(&tree_with_soc(Some(&SOC_RANGES), 0x7f7f_ff00)),
        Err(PlatformError::UntranslatableAddress { .. })
    ));
}

#[test]
fn a_bus_without_ranges_is_refused() {
    assert_eq!(
        parse(&tree_with_soc(None, 0x7e20_1000)),
        Err(PlatformError::TranslatedAddress("soc".into()))
    );
}

#[test]
fn malformed_ranges_are_refused() {
    assert!(matches!(
        parse(&tree_with_soc(Some(&SOC_RANGES[..7]), 0x7e20_1000)),
        Err(PlatformError::BadProperty {
            property: "ranges",
            ..
        })
    ));
}

/// `dtb` with every occurrence of `from` replaced by `to` (same length).
fn patched(dtb: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut bytes = dtb.to_vec();
    let mut found = false;
    let mut position = 0;
    while let Some(offset) = bytes[position..]
        .windows(from.len())
        .position(|w| w == from)
    {
        let start = position + offset;
        bytes[start..start + from.len()].copy_from_slice(to);
        position = start + from.len();
        found = true;
    }
    assert!(found, "pattern not in the fixture");
    bytes
}

#[test]
fn an_unknown_enable_method_is_refused() {
    let dtb = patched(&raspi4b_with_pl011_console(), b"spin-table", b"spun-table");
    assert_eq!(
        parse_with_memory(&dtb, &RASPI4B_RAM),
        Err(PlatformError::UnsupportedEnableMethod {
            cpu: "cpu@0".into(),
            method: "spun-table".into(),
        })
    );
}

#[test]
fn psci_cpus_without_a_psci_node_are_refused() {
    // Rename the /psci node (its BEGIN_NODE token and name) so the tree has none.
    let dtb = patched(PINEPHONE, b"\0\0\0\x01psci\0", b"\0\0\0\x01pscx\0");
    assert_eq!(
        parse_with_memory(&dtb, &PINEPHONE_RAM),
        Err(PlatformError::NoPsci)
    );
}
