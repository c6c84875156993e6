//! The raspi4b layout validated against the device tree QEMU's `raspi4b` passes (Debian's
//! `bcm2711-rpi-4-b.dtb` with its memory filled in) and against the stock DTB.

use cellvisor::setup::partition::{self, Reserved, ReservedKind};
use cellvisor::setup::platform::{self, EnableMethod, GicVersion, UartKind};
use cellvisor_board::MemRange;
use raspi4b::{BOARD, CONSOLE_BOOTARG, HYPERVISOR_MEMORY, LINUX_CELLS, RAM, image_address};

/// The tree as QEMU 10's raspi4b hands it to the image (hypervisor/tests/data/README.md).
const QEMU_DTB: &[u8] = include_bytes!("../../../hypervisor/tests/data/raspi4b-qemu.dtb");
/// Debian's unmodified tree.
const STOCK_DTB: &[u8] = include_bytes!("../../../hypervisor/tests/data/bcm2711-rpi-4-b.dtb");

/// What sits in cellvisor's RAM at boot: the image at 2 MiB, the bundle at QEMU's 128 MiB, the
/// DTB after it, and the spin table's page.
fn reserved(dtb_len: usize) -> Vec<Reserved> {
    vec![
        Reserved {
            what: ReservedKind::HypervisorImage,
            range: MemRange::new(image_address::LOAD_ADDRESS, 8 << 20),
        },
        Reserved {
            what: ReservedKind::GuestBundle,
            range: MemRange::new(0x0800_0000, 64 << 20),
        },
        Reserved {
            what: ReservedKind::PlatformDeviceTree,
            range: MemRange::new(0x0C00_0000, dtb_len as u64),
        },
        Reserved {
            what: ReservedKind::SpinTable,
            range: MemRange::new(0, 0x1000),
        },
    ]
}

#[test]
fn the_default_layout_validates_on_the_tree_qemu_passes() {
    let platform = platform::parse(QEMU_DTB).expect("QEMU's raspi4b tree parses");
    assert_eq!(platform.memory, [RAM]);
    assert_eq!(platform.gic.version, GicVersion::V2);
    assert_eq!(platform.console.kind, UartKind::Pl011);
    assert!(platform.bootargs.contains(CONSOLE_BOOTARG));
    let partition = partition::validate(&BOARD, None, &platform, &reserved(QEMU_DTB.len()))
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(partition.layout, "linux");
    for cell in LINUX_CELLS.cells {
        assert_eq!(cell.cpus.len(), 2, "{}", cell.name);
    }
}

#[test]
fn every_secondary_cpu_waits_on_the_spin_table_page_cellvisor_keeps() {
    let platform = platform::parse(QEMU_DTB).expect("parses");
    assert_eq!(platform.psci_method, None);
    assert_eq!(platform.cpus.len(), 4);
    for cpu in &platform.cpus[1..] {
        let EnableMethod::SpinTable { release_address } = cpu.enable_method else {
            panic!("CPU {:#x} is not on a spin table", cpu.mpidr);
        };
        assert!(HYPERVISOR_MEMORY.contains(release_address));
        assert!(release_address < 0x1000);
    }
}

#[test]
fn the_stock_tree_validates_with_the_ram_and_console_qemu_adds() {
    let platform = platform::parse_with_memory(&patched_stdout_path(STOCK_DTB), &[RAM])
        .expect("the stock tree parses with its console on serial0");
    partition::validate(&BOARD, Some("linux"), &platform, &reserved(STOCK_DTB.len()))
        .unwrap_or_else(|error| panic!("{error}"));
}

#[test]
fn a_cell_cannot_take_the_spin_table_page() {
    let platform = platform::parse(QEMU_DTB).expect("parses");
    let mut reserved = reserved(QEMU_DTB.len());
    // A spin table outside cellvisor's memory (in personal's RAM) is refused in one line.
    reserved[3].range = MemRange::new(0x1000_0000, 0x1000);
    let error = partition::validate(&BOARD, None, &platform, &reserved)
        .expect_err("a spin table in a cell's RAM is refused");
    let line = error.to_string();
    assert!(
        !line.contains('\n') && line.contains("spin table"),
        "{line}"
    );
}

/// `dtb` with `stdout-path` naming `serial0` (the PL011) instead of `serial1` (the mini UART).
fn patched_stdout_path(dtb: &[u8]) -> Vec<u8> {
    let mut dtb = dtb.to_vec();
    let from = b"serial1:115200n8";
    let position = dtb
        .windows(from.len())
        .position(|window| window == from)
        .expect("the stock stdout-path");
    dtb[position..position + from.len()].copy_from_slice(b"serial0:115200n8");
    dtb
}
