//! The QEMU `virt` board (`-M virt,virtualization=on,gic-version=3,iommu=smmuv3 -global
//! arm-smmuv3.stage=2 -cpu max -smp 4 -m 2G`) as data.
//!
//! RAM is 0x4000_0000..0xC000_0000. cellvisor keeps the first 512 MiB: QEMU loads the image at
//! 0x4020_0000, the guest bundle (`-initrd`) at 0x4800_0000 and the platform device tree after it.
//!
//! The default layout's devices are PCI functions behind the machine's SMMUv3 (`iommu=smmuv3`,
//! with stage 2 advertised by `-global arm-smmuv3.stage=2`): `virtio-blk-pci` at 00:02.0 for
//! corporate and `virtio-net-pci` at 00:03.0 for personal. The virtio-mmio slots remain for the
//! test layouts that exercise DMA without an SMMU, on cells the board trusts with all memory.
#![no_std]
#![forbid(unsafe_code)]

use cellvisor_board::{
    AllCellsOff, Board, CellCid, CellColour, CellConfig, CellMemory, CellPolicy, Channel,
    CpuSharing, Device, DeviceReset, Display, El2Counting, FaultLoop, Flow, FocusRule,
    GuestPlacement, Layout, MemRange, PciAddress, PciFunction, PciHost, PciReset, Smmu,
    VirtioMmioSlots,
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

/// `virtio-blk-pci` in slot 2 (`-device virtio-blk-pci,addr=0x2,disable-legacy=on`): the corporate
/// disk, INTA = SPI 5 (INTID 37).
pub const VIRTIO_BLK_PCI: PciFunction = PciFunction {
    name: "virtio-blk-pci",
    address: PciAddress::new(0, 2, 0),
    bar_window: MemRange::new(0x1000_0000, MIB),
    interrupt_pin: 1,
    reset: PciReset::Virtio,
};

/// `virtio-net-pci` in slot 3 (`-device virtio-net-pci,addr=0x3,disable-legacy=on,romfile=`): the
/// personal network interface, INTA = SPI 6 (INTID 38).
pub const VIRTIO_NET_PCI: PciFunction = PciFunction {
    name: "virtio-net-pci",
    address: PciAddress::new(0, 3, 0),
    bar_window: MemRange::new(0x1010_0000, MIB),
    interrupt_pin: 1,
    reset: PciReset::Virtio,
};

/// QEMU virt's PCIe host (`pcie@10000000`): high ECAM (256 buses), the 32-bit memory window, INTx
/// on SPIs 3..6, every requester behind the SMMU (`iommu-map`).
pub const PCI_HOST: PciHost = PciHost {
    ecam: MemRange::new(0x40_1000_0000, 0x1000_0000),
    memory_window: MemRange::new(0x1000_0000, 0x2eff_0000),
    intx: [32 + 3, 32 + 4, 32 + 5, 32 + 6],
    functions: &[VIRTIO_BLK_PCI, VIRTIO_NET_PCI],
    behind_smmu: true,
};

/// QEMU virt's SMMUv3 (`smmuv3@9050000`, `iommu=smmuv3`): event queue on SPI 0x4a, global errors
/// on SPI 0x4d.
pub const SMMU: Smmu = Smmu {
    registers: MemRange::new(0x0905_0000, 0x2_0000),
    event_intid: 32 + 0x4a,
    gerror_intid: 32 + 0x4d,
};

/// `linux`: a *personal* and a *corporate* Debian Linux, two CPUs and 768 MiB each; personal's
/// RAM is identity-mapped at 0x6000_0000, corporate's (physically at 0x9000_0000) is seen at
/// 0x4000_0000.
pub const LINUX_CELLS: Layout = Layout {
    name: "linux",
    cpu_sharing: None,
    channel: DEFAULT_FLOWS,
    cells: &[
        CellConfig {
            name: "personal",
            cpus: &[0, 1],
            memory: &[CellMemory {
                physical: MemRange::new(0x6000_0000, 768 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &["virtio-net-pci"],
            kernel: "linux",
            initrd: Some("initrd-personal"),
            bootargs: LINUX_BOOTARGS,
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
        },
        CellConfig {
            name: "corporate",
            cpus: &[2, 3],
            // Seen at 0x4000_0000: its disk's DMA is translated by the SMMU, so its RAM need not
            // be identity-mapped (the device uses guest addresses, the SMMU makes them physical).
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 768 * MIB),
                placement: GuestPlacement::At(0x4000_0000),
            }],
            devices: &["virtio-blk-pci"],
            kernel: "linux",
            initrd: Some("initrd-corporate"),
            bootargs: LINUX_BOOTARGS,
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
        },
    ],
};

/// `linux-shared`: the cells of [`LINUX_CELLS`], two vCPUs each, both on physical CPUs 0-1 (a
/// two-core phone): vCPU `n` of each cell time-shares CPU `n`. The cell in front (the console's
/// focus) runs whenever it can; the one behind is guaranteed 10 ms of every 100 ms on each CPU
/// and gets whatever the front leaves idle. Run on `-smp 2`.
pub const LINUX_SHARED_CELLS: Layout = Layout {
    name: "linux-shared",
    cpu_sharing: Some(LINUX_SHARING),
    channel: DEFAULT_FLOWS,
    cells: &[
        LINUX_CELLS.cells[0],
        CellConfig {
            cpus: &[0, 1],
            ..LINUX_CELLS.cells[1]
        },
    ],
};

/// The time-sharing of [`LINUX_SHARED_CELLS`]: 10 ms in every 100 ms for the cell behind, 5 ms
/// slices.
pub const LINUX_SHARING: CpuSharing = CpuSharing {
    period_us: 100_000,
    budget_us: 10_000,
    slice_us: 5_000,
    fixed: &[],
};

/// `linux-mmio`: the cells of [`LINUX_CELLS`] with the virtio-mmio devices instead of the PCI
/// functions ([`VIRTIO_NET`] for personal, [`VIRTIO_DISK`] for corporate): DMA that no SMMU
/// confines, so the board must trust both cells with all memory (cellvisor warns at boot). For
/// machines started without `iommu=smmuv3`, and for `cargo xtask bench` to show what the SMMU
/// costs.
pub const LINUX_MMIO_CELLS: Layout = Layout {
    name: "linux-mmio",
    cpu_sharing: None,
    channel: DEFAULT_FLOWS,
    cells: &[
        CellConfig {
            devices: &["virtio-net"],
            trusted_with_all_memory: true,
            ..LINUX_CELLS.cells[0]
        },
        CellConfig {
            // DMA without an SMMU uses physical addresses: identity-mapped RAM.
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 768 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &["virtio-disk"],
            trusted_with_all_memory: true,
            ..LINUX_CELLS.cells[1]
        },
    ],
};

/// Guest physical base of the Rust test guests: they are linked to run there.
pub const TEST_GUEST_BASE: u64 = 0x4000_0000;

/// `test-guests`: two Rust test-guest cells, each sees 64 MiB at [`TEST_GUEST_BASE`].
pub const TEST_GUEST_CELLS: Layout = Layout {
    name: "test-guests",
    cpu_sharing: None,
    channel: &[],
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
            trusted_with_all_memory: false,
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
            trusted_with_all_memory: false,
        },
    ],
};

/// `test-guests-shared`: the two test-guest cells of [`TEST_GUEST_CELLS`], one vCPU each, both on
/// physical CPU 0 (with [`LINUX_SHARING`]'s shares), running `test=switch` with a seed of their
/// own: each checks that its registers keep its values while the other cell's vCPU takes turns on
/// the CPU (tests/tests/sharing_hostile.rs). Run on `-smp 1`.
pub const TEST_GUESTS_SHARED_CELLS: Layout = Layout {
    name: "test-guests-shared",
    cpu_sharing: Some(LINUX_SHARING),
    channel: &[],
    cells: &[
        CellConfig {
            cpus: &[0],
            bootargs: "test=switch seed=1",
            ..TEST_GUEST_CELLS.cells[0]
        },
        CellConfig {
            cpus: &[0],
            bootargs: "test=switch seed=2",
            ..TEST_GUEST_CELLS.cells[1]
        },
    ],
};

/// `test-guest-disk`: one Rust test-guest cell that owns QEMU's virtio-mmio disk ([`VIRTIO_DISK`]),
/// for `test=spis` (its bootargs): the disk's SPI reaches the guest as cellvisor forwards it. The
/// disk is DMA-capable and no SMMU stands in its way, so the board trusts the cell with all memory
/// (cellvisor says so at boot) and its 64 MiB are identity-mapped (guest physical = physical, as
/// such DMA requires): the test guest, linked at [`TEST_GUEST_BASE`] where cellvisor itself lives,
/// relocates itself to 0x6000_0000 at entry.
pub const TEST_GUEST_DISK_CELLS: Layout = Layout {
    name: "test-guest-disk",
    cpu_sharing: None,
    channel: &[],
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
        trusted_with_all_memory: true,
    }],
};

/// `test-guest-dma`: the cell of [`TEST_GUEST_DISK_CELLS`] running `test=dma-flood` (the disk's
/// reads kept in flight into its own RAM, for a wipe to meet), and a second test-guest cell,
/// `beat`, printing a heartbeat a second, so that the machine stays on while `disk` is wiped and
/// its RAM checked afterwards (the board powers off once every cell is off).
pub const TEST_GUEST_DMA_CELLS: Layout = Layout {
    name: "test-guest-dma",
    cpu_sharing: None,
    channel: &[],
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
            trusted_with_all_memory: false,
        },
    ],
};

/// Where `dma-attack`'s attacker aims its disk's DMA: corporate's RAM (the victim's pattern),
/// cellvisor's image and heap, just past its own RAM, and its own RAM.
pub const DMA_ATTACK_BOOTARGS: &str = "test=dma-attack targets=corporate:0x90100000,cellvisor-image:0x40210000,cellvisor-heap:0x44000000,beyond:0x64000000,own:0x62000000";

/// `dma-attack`: the attack that used to work. `personal` (a test guest, 64 MiB identity-mapped at
/// 0x6000_0000) drives its `virtio-blk-pci` with its own driver and points the disk's DMA at
/// corporate's RAM, cellvisor's image and heap, past its own RAM and into its own RAM
/// ([`DMA_ATTACK_BOOTARGS`]); the SMMU must stop all but the last. `corporate` (a test guest at
/// [`TEST_GUEST_BASE`], physically 0x9000_0000) writes a pattern and keeps checking it.
pub const DMA_ATTACK_CELLS: Layout = Layout {
    name: "dma-attack",
    cpu_sharing: None,
    channel: &[],
    cells: &[
        CellConfig {
            name: "personal",
            cpus: &[0, 1],
            memory: &[CellMemory {
                physical: MemRange::new(0x6000_0000, 64 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &["virtio-blk-pci"],
            kernel: "test-guest",
            initrd: None,
            bootargs: DMA_ATTACK_BOOTARGS,
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
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
            bootargs: "test=pattern",
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
        },
    ],
};

/// `channel-attack`: a Rust test guest as *personal* (`test=vsock-attack`, attacking its
/// virtio-vsock device and the channel's policy) and Debian Linux as *corporate*, with the
/// default flows (tests/tests/channel_hostile.rs).
pub const CHANNEL_ATTACK_CELLS: Layout = Layout {
    name: "channel-attack",
    cpu_sharing: None,
    channel: DEFAULT_FLOWS,
    cells: &[
        CellConfig {
            bootargs: "test=vsock-attack",
            ..TEST_GUEST_CELLS.cells[0]
        },
        CellConfig {
            devices: &[],
            ..LINUX_CELLS.cells[1]
        },
    ],
};

/// `linux-bench`: the Linux cells of [`LINUX_CELLS`] with [`DEFAULT_FLOWS`] and one more flow,
/// personal to corporate port 7000 with the largest messages and no practical rate limit, for
/// `cargo xtask bench`'s channel latency and throughput (the policy is still checked on every
/// packet).
pub const LINUX_BENCH_CELLS: Layout = Layout {
    name: "linux-bench",
    channel: &[
        DEFAULT_FLOWS[0],
        DEFAULT_FLOWS[1],
        Flow {
            from: "personal",
            to: "corporate",
            port: 7000,
            max_message: 65536,
            rate_per_second: 1_000_000,
            only_while_focused: FocusRule::None,
        },
    ],
    ..LINUX_CELLS
};

/// The channel's flows on the default layouts (docs/channel.md): corporate may send short
/// notification badges to personal's port 5000; personal may paste into corporate's port 6000,
/// only while personal is in front (the user is looking at what is pasted from). Nothing else.
pub const DEFAULT_FLOWS: &[Flow] = &[
    Flow {
        from: "corporate",
        to: "personal",
        port: 5000,
        max_message: 256,
        rate_per_second: 20,
        only_while_focused: FocusRule::None,
    },
    Flow {
        from: "personal",
        to: "corporate",
        port: 6000,
        max_message: 16384,
        rate_per_second: 50,
        only_while_focused: FocusRule::Source,
    },
];

/// The channel on QEMU virt: every cell sees its virtio-vsock device at 0x0C02_0000, INTID 152
/// (SPI 120: in the platform bus's range, which nothing here uses); personal is CID 3, corporate
/// CID 4.
pub const CHANNEL: Channel = Channel {
    cell_window: MemRange::new(0x0C02_0000, 0x200),
    intid: 32 + 120,
    cids: &[
        CellCid {
            cell: "personal",
            cid: 3,
        },
        CellCid {
            cell: "corporate",
            cid: 4,
        },
    ],
};

/// `bench`: one cell running the Rust bench guest (guests/bench-guest) on CPUs 0-1 with 64 MiB at
/// [`TEST_GUEST_BASE`], for `cargo xtask bench`. The only cell of the board whose PMU may count
/// at EL2 ([`El2Counting::AllowedForMeasurement`]). It owns `virtio-blk-pci` ([`VIRTIO_BLK_PCI`],
/// INTx on INTID 37) for the guest's `pci_intx` op; the remapped RAM is fine for its DMA, which
/// the SMMU translates with the cell's stage 2.
pub const BENCH_CELLS: Layout = Layout {
    name: "bench",
    cpu_sharing: None,
    channel: &[],
    cells: &[CellConfig {
        name: "bench",
        cpus: &[0, 1],
        memory: &[CellMemory {
            physical: MemRange::new(0x6000_0000, 64 * MIB),
            placement: GuestPlacement::At(TEST_GUEST_BASE),
        }],
        devices: &["virtio-blk-pci"],
        kernel: "bench-guest",
        initrd: None,
        bootargs: "",
        // Measurement only: `cargo xtask bench` has the bench guest count the instructions EL2
        // runs for each of its exits (docs/benchmarks.md); no other cell may count at EL2.
        policy: CellPolicy {
            el2_counting: El2Counting::AllowedForMeasurement,
            ..CellPolicy::ALL
        },
        trusted_with_all_memory: false,
    }],
};

/// `bench-shared`: the [`BENCH_CELLS`] cell, in front, time-sharing CPU 0 with a test guest that
/// never idles (`test=heartbeat` spins between its beats), as [`LINUX_SHARING`] shares: for
/// `cargo xtask bench`'s foreground timer and IPI latency with a busy background.
pub const BENCH_SHARED_CELLS: Layout = Layout {
    name: "bench-shared",
    cpu_sharing: Some(LINUX_SHARING),
    channel: &[],
    cells: &[
        BENCH_CELLS.cells[0],
        CellConfig {
            name: "busy",
            cpus: &[0],
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 64 * MIB),
                placement: GuestPlacement::At(TEST_GUEST_BASE),
            }],
            devices: &[],
            kernel: "test-guest",
            initrd: None,
            bootargs: "test=heartbeat beats=100000 period_ms=1000",
            policy: CellPolicy::ALL,
            trusted_with_all_memory: false,
        },
    ],
};

/// `hostile-shared`: the two test-guest cells of [`TEST_GUEST_CELLS`], both on CPUs 0-1,
/// time-shared as [`LINUX_SHARING`] shares (run on `-smp 2`): the hostile suite's attacker and
/// victim sharing CPUs.
pub const HOSTILE_SHARED_CELLS: Layout = Layout {
    name: "hostile-shared",
    cpu_sharing: Some(LINUX_SHARING),
    channel: &[],
    cells: &[
        TEST_GUEST_CELLS.cells[0],
        CellConfig {
            cpus: &[0, 1],
            ..TEST_GUEST_CELLS.cells[1]
        },
    ],
};

/// `linux-personal`: the *personal* Debian cell of [`LINUX_CELLS`] alone, for `cargo xtask bench`'s
/// one-cell Linux boot figures.
pub const LINUX_PERSONAL_CELLS: Layout = Layout {
    name: "linux-personal",
    cpu_sharing: None,
    channel: &[],
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
        trusted_with_all_memory: false,
    }],
};

/// `invalid-dma-remapped`: deliberately invalid, it exists only so tests can prove that cellvisor
/// refuses it (at validation on the host, and at boot with one `cellvisor: fatal:` line): a cell
/// whose RAM is placed at a remapped guest address gets the DMA-capable `virtio-disk`, whose DMA
/// would use guest addresses as physical ones and land outside the cell.
pub const INVALID_DMA_REMAPPED: Layout = Layout {
    name: "invalid-dma-remapped",
    cpu_sharing: None,
    channel: &[],
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
        trusted_with_all_memory: true,
    }],
};

/// The board.
pub const BOARD: Board = Board {
    name: "qemu-virt",
    hypervisor_memory: MemRange::new(image_address::RAM_BASE, 512 * MIB),
    devices: &[VIRTIO_DISK, VIRTIO_NET],
    pci: Some(PCI_HOST),
    smmu: Some(SMMU),
    layouts: &[
        LINUX_CELLS,
        LINUX_SHARED_CELLS,
        TEST_GUEST_CELLS,
        TEST_GUESTS_SHARED_CELLS,
        TEST_GUEST_DISK_CELLS,
        TEST_GUEST_DMA_CELLS,
        DMA_ATTACK_CELLS,
        BENCH_CELLS,
        BENCH_SHARED_CELLS,
        HOSTILE_SHARED_CELLS,
        LINUX_PERSONAL_CELLS,
        LINUX_MMIO_CELLS,
        CHANNEL_ATTACK_CELLS,
        LINUX_BENCH_CELLS,
        INVALID_DMA_REMAPPED,
    ],
    when_all_cells_off: AllCellsOff::PowerOff,
    // The test guests and the benchmark guest are raw binaries.
    raw_binaries: true,
    fault_loop: FaultLoop::Stop { after: 64 },
    display: Some(DISPLAY),
    channel: Some(CHANNEL),
};

/// The phone's screen and keys on QEMU virt: `-device ramfb` (configured through fw_cfg at
/// 0x0902_0000), and `virtio-keyboard-device`/`virtio-tablet-device` in whichever virtio-mmio slots
/// QEMU gives them. Cells see their PL111 at 0x0C00_0000 and their input devices from 0x0C01_0000
/// (INTIDs 144..: SPIs 112.., which QEMU's platform bus would use and nothing here does).
pub const DISPLAY: Display = Display {
    fw_cfg: MemRange::new(0x0902_0000, 0x1000),
    width: 640,
    height: 480,
    cell_display: MemRange::new(0x0C00_0000, 0x1000),
    input_transports: VirtioMmioSlots {
        base: 0x0A00_0000,
        count: 32,
        stride: 0x200,
        first_intid: 32 + 16,
    },
    cell_input: MemRange::new(0x0C01_0000, 0x1000),
    cell_input_intid: 32 + 112,
    // KEY_PAUSE (QEMU's qcode `pause`): a key no phone app needs, standing in for a dedicated
    // switch key.
    switch_key: 119,
    banner_ms: 400,
    colours: &[
        CellColour {
            cell: "personal",
            rgb: 0x2E7D32,
        },
        CellColour {
            cell: "corporate",
            rgb: 0x1565C0,
        },
    ],
};
