//! The QEMU `virt` board (`-M virt,virtualization=on,gic-version=3 -cpu max -smp 4 -m 2G`) as data.
//!
//! RAM is 0x4000_0000..0xC000_0000. cellvisor keeps the first 512 MiB: QEMU loads the image at
//! 0x4020_0000, the guest bundle (`-initrd`) at 0x4800_0000 and the platform device tree after it.
#![no_std]
#![forbid(unsafe_code)]

use cellvisor_board::{
    Board, CellConfig, CellMemory, CellPolicy, Device, DeviceReset, El2Counting, FaultLoop,
    GuestPlacement, Layout, MemRange,
};

pub mod image_address;

const MIB: u64 = 1024 * 1024;

/// Bootargs shared by the Linux cells.
const LINUX_BOOTARGS: &str = "console=ttyAMA0 earlycon=pl011,0x09000000 rdinit=/init";

/// QEMU's top virtio-mmio slot (31, the first `-device virtio-*-device` fills): the corporate disk.
pub const VIRTIO_DISK: Device = Device {
    name: "virtio-disk",
    mmio: &[MemRange::new(0x0A00_3E00, 0x200)],
    interrupts: &[32 + 16 + 31],
    dma_capable: true,
    reset: DeviceReset::VirtioMmio,
};

/// Virtio-mmio slot 30 (the second `-device virtio-*-device`): the personal network interface.
pub const VIRTIO_NET: Device = Device {
    name: "virtio-net",
    mmio: &[MemRange::new(0x0A00_3C00, 0x200)],
    interrupts: &[32 + 16 + 30],
    dma_capable: true,
    reset: DeviceReset::VirtioMmio,
};

/// `linux`: a *personal* and a *corporate* Debian Linux, two CPUs and 768 MiB each.
pub const LINUX_CELLS: Layout = Layout {
    name: "linux",
    cells: &[
        CellConfig {
            name: "personal",
            cpus: &[0, 1],
            memory: &[CellMemory {
                physical: MemRange::new(0x6000_0000, 768 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &["virtio-net"],
            kernel: "linux",
            initrd: Some("initrd-personal"),
            bootargs: LINUX_BOOTARGS,
            policy: CellPolicy::ALL,
        },
        CellConfig {
            name: "corporate",
            cpus: &[2, 3],
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 768 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &["virtio-disk"],
            kernel: "linux",
            initrd: Some("initrd-corporate"),
            bootargs: LINUX_BOOTARGS,
            policy: CellPolicy::ALL,
        },
    ],
};

/// Guest physical base of the Rust test guests: they are linked to run there.
pub const TEST_GUEST_BASE: u64 = 0x4000_0000;

/// `test-guests`: two Rust test-guest cells, each sees 64 MiB at [`TEST_GUEST_BASE`].
pub const TEST_GUEST_CELLS: Layout = Layout {
    name: "test-guests",
    cells: &[
        CellConfig {
            name: "personal",
            cpus: &[0, 1],
            memory: &[CellMemory {
                physical: MemRange::new(0x6000_0000, 64 * MIB),
                placement: GuestPlacement::At(TEST_GUEST_BASE),
            }],
            devices: &[],
            kernel: "test-guest",
            initrd: None,
            bootargs: "",
            policy: CellPolicy::ALL,
        },
        CellConfig {
            name: "corporate",
            cpus: &[2, 3],
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 64 * MIB),
                placement: GuestPlacement::At(TEST_GUEST_BASE),
            }],
            devices: &[],
            kernel: "test-guest",
            initrd: None,
            bootargs: "",
            policy: CellPolicy::ALL,
        },
    ],
};

/// `test-guest-disk`: one Rust test-guest cell that owns QEMU's virtio-blk disk ([`VIRTIO_DISK`]),
/// for `test=spis` (its bootargs): the disk's SPI reaches the guest as cellvisor forwards it. The
/// disk is DMA-capable and there is no IOMMU, so the cell's 64 MiB are identity-mapped (guest
/// physical = physical, as the DMA rule requires): the test guest, linked at [`TEST_GUEST_BASE`]
/// where cellvisor itself lives, relocates itself to 0x6000_0000 at entry.
pub const TEST_GUEST_DISK_CELLS: Layout = Layout {
    name: "test-guest-disk",
    cells: &[CellConfig {
        name: "disk",
        cpus: &[0, 1],
        memory: &[CellMemory {
            physical: MemRange::new(0x6000_0000, 64 * MIB),
            placement: GuestPlacement::Identity,
        }],
        devices: &["virtio-disk"],
        kernel: "test-guest",
        initrd: None,
        bootargs: "test=spis",
        policy: CellPolicy::ALL,
    }],
};

/// `test-guest-dma`: the cell of [`TEST_GUEST_DISK_CELLS`] running `test=dma-flood` (the disk's
/// reads kept in flight into its own RAM, for a wipe to meet), and a second test-guest cell,
/// `beat`, printing a heartbeat a second, so that the machine stays on while `disk` is wiped and
/// its RAM checked afterwards (the board powers off once every cell is off).
pub const TEST_GUEST_DMA_CELLS: Layout = Layout {
    name: "test-guest-dma",
    cells: &[
        CellConfig {
            bootargs: "test=dma-flood",
            ..TEST_GUEST_DISK_CELLS.cells[0]
        },
        CellConfig {
            name: "beat",
            cpus: &[2, 3],
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 64 * MIB),
                placement: GuestPlacement::At(TEST_GUEST_BASE),
            }],
            devices: &[],
            kernel: "test-guest",
            initrd: None,
            bootargs: "test=heartbeat beats=1000000 period_ms=1000",
            policy: CellPolicy::ALL,
        },
    ],
};

/// `bench`: one cell running the Rust bench guest (guests/bench-guest) on CPUs 0-1 with 64 MiB at
/// [`TEST_GUEST_BASE`], for `cargo xtask bench`. The only cell of the board whose PMU may count
/// at EL2 ([`El2Counting::AllowedForMeasurement`]).
pub const BENCH_CELLS: Layout = Layout {
    name: "bench",
    cells: &[CellConfig {
        name: "bench",
        cpus: &[0, 1],
        memory: &[CellMemory {
            physical: MemRange::new(0x6000_0000, 64 * MIB),
            placement: GuestPlacement::At(TEST_GUEST_BASE),
        }],
        devices: &[],
        kernel: "bench-guest",
        initrd: None,
        bootargs: "",
        // Measurement only: `cargo xtask bench` has the bench guest count the instructions EL2
        // runs for each of its exits (docs/benchmarks.md); no other cell may count at EL2.
        policy: CellPolicy {
            el2_counting: El2Counting::AllowedForMeasurement,
            ..CellPolicy::ALL
        },
    }],
};

/// `linux-personal`: the *personal* Debian cell of [`LINUX_CELLS`] alone, for `cargo xtask bench`'s
/// one-cell Linux boot figures.
pub const LINUX_PERSONAL_CELLS: Layout = Layout {
    name: "linux-personal",
    cells: &[CellConfig {
        name: "personal",
        cpus: &[0, 1],
        memory: &[CellMemory {
            physical: MemRange::new(0x6000_0000, 768 * MIB),
            placement: GuestPlacement::Identity,
        }],
        devices: &[],
        kernel: "linux",
        initrd: Some("initrd-personal"),
        bootargs: LINUX_BOOTARGS,
        policy: CellPolicy::ALL,
    }],
};

/// `invalid-dma-remapped`: deliberately invalid, it exists only so tests can prove that cellvisor
/// refuses it (at validation on the host, and at boot with one `cellvisor: fatal:` line): a cell
/// whose RAM is placed at a remapped guest address gets the DMA-capable `virtio-disk`, whose DMA
/// would use guest addresses as physical ones and land outside the cell.
pub const INVALID_DMA_REMAPPED: Layout = Layout {
    name: "invalid-dma-remapped",
    cells: &[CellConfig {
        name: "corporate",
        cpus: &[2, 3],
        memory: &[CellMemory {
            physical: MemRange::new(0x9000_0000, 64 * MIB),
            placement: GuestPlacement::At(TEST_GUEST_BASE),
        }],
        devices: &["virtio-disk"],
        kernel: "test-guest",
        initrd: None,
        bootargs: "",
        policy: CellPolicy::ALL,
    }],
};

/// The board.
pub const BOARD: Board = Board {
    name: "qemu-virt",
    hypervisor_memory: MemRange::new(image_address::RAM_BASE, 512 * MIB),
    devices: &[VIRTIO_DISK, VIRTIO_NET],
    layouts: &[
        LINUX_CELLS,
        TEST_GUEST_CELLS,
        TEST_GUEST_DISK_CELLS,
        TEST_GUEST_DMA_CELLS,
        BENCH_CELLS,
        LINUX_PERSONAL_CELLS,
        INVALID_DMA_REMAPPED,
    ],
    power_off_when_all_cells_off: true,
    // The test guests and the benchmark guest are raw binaries.
    raw_binaries: true,
    fault_loop: FaultLoop::Stop { after: 64 },
};
