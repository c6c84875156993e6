//! The Raspberry Pi 4 Model B (Broadcom BCM2711: 4× Cortex-A72, GIC-400 with the virtualization
//! extensions, PL011 UART, no SMMU) as data, as QEMU 10's `raspi4b` machine emulates it (2 GiB
//! board revision) and booted by it with `-kernel` at EL2.
//!
//! The platform DT is Debian's unmodified `broadcom/bcm2711-rpi-4-b.dtb` (`cargo xtask` fetches
//! and pins it; hypervisor/tests/data/README.md). Its peripherals sit behind `/soc`'s `ranges`
//! (bus address 0x7E00_0000 is CPU address 0xFE00_0000), the GIC-400 behind the same bus at CPU
//! address 0xFF84_0000. There is no PSCI firmware: QEMU's boot stub (like the Pi's `armstub8`)
//! holds CPUs 1-3 in a spin table on the first page of RAM (`cpu-release-addr` 0xd8..0xf0), so
//! cellvisor releases them from there and gives each cell PSCI through HVC itself. Nothing can
//! switch the machine off, so once every cell is off cellvisor halts ([`AllCellsOff::Halt`]).
//!
//! The DT's `stdout-path` is `serial1`, the mini UART, which cellvisor does not drive; the
//! console is the PL011 (`serial0`, UART0 at 0xFE20_1000), named with the `cellvisor.console=serial0`
//! bootarg ([`CONSOLE_BOOTARG`]). On a real Pi 4 put `enable_uart=1` and `dtoverlay=disable-bt`
//! in `config.txt` so the PL011 is on the header pins.
//!
//! RAM is what QEMU's DT gives the ARM: 960 MiB from 0 ([`RAM`]). cellvisor keeps the first
//! 256 MiB: the spin table's page, the image at 2 MiB, the guest bundle QEMU puts at 128 MiB
//! (`-initrd`) and the platform DT after it. The cells split the rest; they own no device (the
//! SoC has no SMMU, and QEMU emulates none of the Pi's DMA masters a cell could use safely).
#![no_std]
#![forbid(unsafe_code)]

use cellvisor_board::{
    AllCellsOff, Board, CellConfig, CellMemory, CellPolicy, FaultLoop, GuestPlacement, Layout,
    MemRange,
};

pub mod image_address;

/// One mebibyte.
const MIB: u64 = 1024 * 1024;

/// The ARM's RAM on QEMU's `raspi4b`: 960 MiB from 0 (the top 64 MiB of the first GiB belong to
/// the VideoCore).
pub const RAM: MemRange = MemRange::new(image_address::RAM_BASE, 960 * MIB);

/// RAM cellvisor keeps: the first 256 MiB (spin table, image, heap, page tables, guest bundle,
/// platform DT).
pub const HYPERVISOR_MEMORY: MemRange = MemRange::new(image_address::RAM_BASE, 256 * MIB);

/// The bootarg that makes cellvisor's console the PL011 instead of `stdout-path`'s mini UART.
pub const CONSOLE_BOOTARG: &str = "cellvisor.console=serial0";

/// Bootargs shared by the Linux cells: each cell's console is the PL011 cellvisor emulates at the
/// console UART's address.
const LINUX_BOOTARGS: &str = "console=ttyAMA0 earlycon=pl011,0xfe201000 rdinit=/init";

/// `linux`: a *personal* Linux (CPUs 0-1) and a *corporate* Linux (CPUs 2-3), 352 MiB each, after
/// cellvisor's 256 MiB.
pub const LINUX_CELLS: Layout = Layout {
    name: "linux",
    cpu_sharing: None,
    channel: &[],
    cells: &[
        CellConfig {
            name: "personal",
            cpus: &[0, 1],
            memory: &[CellMemory {
                physical: MemRange::new(0x1000_0000, 352 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &[],
            kernel: "linux",
            initrd: Some("initrd-personal"),
            bootargs: LINUX_BOOTARGS,
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
        },
        CellConfig {
            name: "corporate",
            cpus: &[2, 3],
            memory: &[CellMemory {
                physical: MemRange::new(0x2600_0000, 352 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &[],
            kernel: "linux",
            initrd: Some("initrd-corporate"),
            bootargs: LINUX_BOOTARGS,
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
        },
    ],
};

/// The board.
pub const BOARD: Board = Board {
    name: "raspi4b",
    hypervisor_memory: HYPERVISOR_MEMORY,
    devices: &[],
    pci: None,
    smmu: None,
    layouts: &[LINUX_CELLS],
    when_all_cells_off: AllCellsOff::Halt,
    // Both cells run Linux: anything but an arm64 Image is refused.
    raw_binaries: false,
    fault_loop: FaultLoop::Stop { after: 64 },
    display: None,
    channel: None,
};
