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
            intid: 33
        }
    );
    assert_eq!(platform.psci_method, PsciMethod::Smc);
    assert_eq!(
        platform.timer,
        TimerInterrupts {
            secure_physical: 29,
            nonsecure_physical: 30,
            virtual_timer: 27,
            hypervisor_physical: 26,
            hypervisor_virtual: Some(28),
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
        PlatformError::NoTimer,
        PlatformError::BadProperty {
            node: "n".into(),
            property: "reg",
        },
        PlatformError::TranslatedAddress("n".into()),
    ];
    for error in errors {
        let line = error.to_string();
        assert!(!line.contains('\n') && line.contains(": "), "{line}");
    }
}
