//! The PinePhone's layouts validated against its real device tree (Debian's
//! `sun50i-a64-pinephone-1.2.dtb`), with the RAM U-Boot would add.

use cellvisor::setup::partition::{self, LayoutError, Reserved, ReservedKind};
use cellvisor::setup::platform::{self, Platform};
use cellvisor_board::{Board, CellConfig, Layout, MemRange};
use pinephone::{BOARD, DRAM_2GIB, DRAM_3GIB, KEPT_CONTROLLERS, LINUX_CELLS, image_address};

/// The real PinePhone 1.2 DTB (hypervisor/tests/data/README.md).
const DTB: &[u8] = include_bytes!("../../../hypervisor/tests/data/sun50i-a64-pinephone-1.2.dtb");

/// The platform as U-Boot would pass it on a PinePhone with `ram`.
fn platform(ram: MemRange) -> Platform {
    platform::parse_with_memory(DTB, &[ram]).expect("the PinePhone DTB parses")
}

/// What sits in cellvisor's RAM at boot: the image at U-Boot's `kernel_addr_r`, the DTB at its
/// default `fdt_addr_r`, the guest bundle at 0x4400_0000.
fn reserved() -> [Reserved; 3] {
    [
        Reserved {
            what: ReservedKind::HypervisorImage,
            range: MemRange::new(image_address::LOAD_ADDRESS, 8 << 20),
        },
        Reserved {
            what: ReservedKind::PlatformDeviceTree,
            range: MemRange::new(0x4FA0_0000, DTB.len() as u64),
        },
        Reserved {
            what: ReservedKind::GuestBundle,
            range: MemRange::new(0x4400_0000, 128 << 20),
        },
    ]
}

#[test]
fn default_layout_validates_on_the_2_gib_phone() {
    let partition = partition::validate(&BOARD, None, &platform(DRAM_2GIB), &reserved())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(partition.layout, "linux");
    assert_eq!(partition.cells.len(), 2);
    for cell in LINUX_CELLS.cells {
        assert_eq!(cell.cpus.len(), 2, "{}", cell.name);
        for region in cell.memory {
            assert!(DRAM_2GIB.contains_range(&region.physical), "{}", cell.name);
        }
    }
}

#[test]
fn default_layout_validates_on_the_3_gib_phone() {
    partition::validate(&BOARD, Some("linux"), &platform(DRAM_3GIB), &reserved())
        .unwrap_or_else(|error| panic!("{error}"));
}

#[test]
fn the_image_address_lies_in_hypervisor_memory() {
    assert!(
        BOARD
            .hypervisor_memory
            .contains(image_address::LOAD_ADDRESS)
    );
    assert_eq!(image_address::LOAD_ADDRESS, 0x4008_0000);
}

#[test]
fn every_board_device_is_a_node_of_the_dtb_with_its_interrupts() {
    let platform = platform(DRAM_2GIB);
    for device in BOARD.devices {
        for window in device.mmio {
            let node = platform
                .devices
                .iter()
                .find(|node| node.registers.iter().any(|reg| reg.contains_range(window)))
                .unwrap_or_else(|| panic!("{}: no node holds {window:x?}", device.name));
            let mut node_intids = node.intids();
            let mut board_intids = device.interrupts.to_vec();
            node_intids.sort_unstable();
            board_intids.sort_unstable();
            assert_eq!(node_intids, board_intids, "{} ({})", device.name, node.name);
        }
    }
}

#[test]
fn kept_controllers_are_no_board_devices() {
    let platform = platform(DRAM_2GIB);
    for controller in KEPT_CONTROLLERS {
        assert!(
            BOARD.device(controller.name).is_none(),
            "{}",
            controller.name
        );
        assert!(
            platform.device_node(controller.registers.base).is_some(),
            "{} is in the DTB",
            controller.name
        );
        for device in BOARD.devices {
            assert!(
                device
                    .mmio
                    .iter()
                    .all(|window| !window.overlaps(&controller.registers)),
                "{} overlaps {}",
                device.name,
                controller.name
            );
        }
    }
}

/// [`LINUX_CELLS`] with corporate also claiming `device`.
fn board_with_corporate_device(device: &'static str) -> Board {
    let corporate: &'static CellConfig = Box::leak(Box::new(CellConfig {
        devices: Box::leak(vec!["ehci1", "ohci1", "uart3", device].into_boxed_slice()),
        ..LINUX_CELLS.cells[1]
    }));
    let cells: &'static [CellConfig] =
        Box::leak(vec![LINUX_CELLS.cells[0], *corporate].into_boxed_slice());
    let layouts: &'static [Layout] = Box::leak(
        vec![Layout {
            name: "linux",
            cpu_sharing: None,
            channel: &[],
            cells,
        }]
        .into_boxed_slice(),
    );
    Board { layouts, ..BOARD }
}

#[test]
fn a_cell_cannot_own_a_shared_controller() {
    for controller in KEPT_CONTROLLERS {
        let board = board_with_corporate_device(controller.name);
        let error = partition::validate(&board, None, &platform(DRAM_2GIB), &reserved())
            .expect_err("a kept controller is refused");
        assert!(
            matches!(
                error,
                LayoutError::UnknownDevice { cell: "corporate", device, .. } if device == controller.name
            ),
            "{error}"
        );
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains(controller.name) && line.contains("does not describe"),
            "{line}"
        );
    }
}

#[test]
fn a_device_goes_to_one_cell_only() {
    let board = board_with_corporate_device("mmc0");
    let error = partition::validate(&board, None, &platform(DRAM_2GIB), &reserved())
        .expect_err("mmc0 twice");
    assert!(
        matches!(
            error,
            LayoutError::DeviceAssignedTwice { device: "mmc0", .. }
        ),
        "{error}"
    );
}
