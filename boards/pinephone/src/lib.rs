//! The PINE64 PinePhone 1.2 (Allwinner A64: 4× Cortex-A53, GIC-400, no SMMU) as data.
//!
//! DRAM starts at 0x4000_0000 and is 2 GiB ([`DRAM_2GIB`]) or 3 GiB ([`DRAM_3GIB`]); the DTB has
//! no `/memory` node, U-Boot adds it. cellvisor keeps the first 256 MiB ([`HYPERVISOR_MEMORY`]):
//! U-Boot loads the image at `kernel_addr_r` = 0x4008_0000 ([`image_address::LOAD_ADDRESS`]) and
//! its default `fdt_addr_r` (0x4FA0_0000) lies inside too; the boot script must load the guest
//! bundle inside it as well (e.g. `ramdisk_addr_r=0x44000000`: U-Boot's default 0x4FE0_0000
//! leaves only 2 MiB before the end). The default layout uses only the first 2 GiB, so it runs on
//! both variants.
//!
//! The A64 has no SMMU: every device that masters DMA reaches all memory, so both cells are
//! [`CellConfig::trusted_with_all_memory`] and their RAM is identity-mapped. Devices are read from
//! Debian's `sun50i-a64-pinephone-1.2.dtb` (hypervisor/tests/data/README.md): windows are their
//! `reg`, interrupts 32 + their SPI numbers.
//!
//! The controllers every device depends on ([`KEPT_CONTROLLERS`]: clocks, pins, the PMIC bus,
//! the watchdog, the R_INTC) are deliberately not board devices, so no layout can give them to a
//! cell: validation refuses a cell naming one as a device the board does not describe.
#![no_std]
#![forbid(unsafe_code)]

use cellvisor_board::{
    AllCellsOff, Board, CellConfig, CellMemory, CellPolicy, Device, DeviceReset, El2Counting,
    FaultLoop, GuestPlacement, Layout, MemRange, RegisterMatch,
};

pub mod image_address;

/// One mebibyte.
const MIB: u64 = 1024 * 1024;
/// One gibibyte.
const GIB: u64 = 1024 * MIB;

/// The DRAM of the 2 GiB PinePhone (the 1.2 "community edition" boards and most retail units).
pub const DRAM_2GIB: MemRange = MemRange::new(image_address::RAM_BASE, 2 * GIB);
/// The DRAM of the 3 GiB PinePhone ("Convergence Package").
pub const DRAM_3GIB: MemRange = MemRange::new(image_address::RAM_BASE, 3 * GIB);

/// RAM cellvisor keeps: the first 256 MiB of DRAM (image, heap, page tables, the platform DTB
/// U-Boot passes and the guest bundle).
pub const HYPERVISOR_MEMORY: MemRange = MemRange::new(image_address::RAM_BASE, 256 * MIB);

/// Bootargs shared by the Linux cells: each cell's console is the PL011 cellvisor emulates at the
/// console UART's address.
const LINUX_BOOTARGS: &str = "console=ttyAMA0 earlycon=pl011,0x01c28000 rdinit=/init";

/// A 16550 (DesignWare APB UART, reg-shift 2) reset: IER (register 1, at offset 4) cleared, so the
/// UART raises no interrupt until a driver enables one. The UART does no DMA of its own.
const UART_RESET: DeviceReset = DeviceReset::RegisterWrite {
    window: 0,
    offset: 0x4,
    value: 0,
    settled: None,
};

/// An Allwinner MMC controller's reset: SD_GCTL (offset 0) with SOFT_RST, FIFO_RST and DMA_RST
/// set (bits 0-2) and DMA_ENB and INT_ENB clear; the controller clears the reset bits when done.
const MMC_RESET: DeviceReset = DeviceReset::RegisterWrite {
    window: 0,
    offset: 0x0,
    value: 0x7,
    settled: Some(RegisterMatch {
        offset: 0x0,
        mask: 0x7,
        value: 0,
    }),
};

/// The display engine 2.0 (`bus@1000000`, `allwinner,sun50i-a64-de2`): mixers, the rotation and
/// writeback engines. It reads framebuffers (and writeback writes them) with physical addresses.
/// Its only reset is in the CCU, which cellvisor keeps: none the board can trust. The bus node
/// lists no interrupts (the rotation engine's SPI 0x60 sits on a child node cellvisor does not
/// read).
pub const DISPLAY_ENGINE: Device = Device {
    name: "display-engine",
    mmio: &[MemRange::new(0x0100_0000, 0x40_0000)],
    interrupts: &[],
    dma_capable: true,
    reset: DeviceReset::None,
};

/// TCON0 (`lcd-controller@1c0c000`), the LCD timing controller feeding the DSI bridge: pixels
/// come from the display engine, it does no DMA. Reset: TCON_GINT0 (offset 4) cleared, which
/// disables its interrupts.
pub const TCON0: Device = Device {
    name: "tcon0",
    mmio: &[MemRange::new(0x01C0_C000, 0x1000)],
    interrupts: &[32 + 0x56],
    dma_capable: false,
    reset: DeviceReset::RegisterWrite {
        window: 0,
        offset: 0x4,
        value: 0,
        settled: None,
    },
};

/// The MIPI DSI host (`dsi@1ca0000`) and its D-PHY (`d-phy@1ca1000`), one device because both
/// nodes name SPI 0x59. Neither masters DMA; no reset register is known to quiesce them, and as
/// they cannot write memory the board accepts restarting their cell without one.
pub const DSI: Device = Device {
    name: "dsi",
    mmio: &[
        MemRange::new(0x01CA_0000, 0x1000),
        MemRange::new(0x01CA_1000, 0x1000),
    ],
    interrupts: &[32 + 0x59],
    dma_capable: false,
    reset: DeviceReset::UnsafeAccepted,
};

/// The Mali-400 MP2 GPU (`gpu@1c40000`): its own MMUs are programmed by the guest, so its DMA
/// reaches all memory. Its per-core resets are several registers in sequence, more than one
/// register write: no reset the board can trust. SPIs 0x61-0x67 (GP, GP MMU, PP0, PP0 MMU, PP1,
/// PP1 MMU, PMU).
pub const MALI: Device = Device {
    name: "mali",
    mmio: &[MemRange::new(0x01C4_0000, 0x1_0000)],
    interrupts: &[
        32 + 0x61,
        32 + 0x62,
        32 + 0x63,
        32 + 0x64,
        32 + 0x66,
        32 + 0x67,
        32 + 0x65,
    ],
    dma_capable: true,
    reset: DeviceReset::None,
};

/// I2C0 (`i2c@1c2ac00`), the touch panel's bus (Goodix GT917S; its interrupt line is a GPIO of
/// the pin controller cellvisor keeps). Reset: TWI_SRST (offset 0x18) bit 0, cleared by the
/// controller when done.
pub const I2C0: Device = Device {
    name: "i2c0",
    mmio: &[MemRange::new(0x01C2_AC00, 0x400)],
    interrupts: &[32 + 6],
    dma_capable: false,
    reset: DeviceReset::RegisterWrite {
        window: 0,
        offset: 0x18,
        value: 1,
        settled: Some(RegisterMatch {
            offset: 0x18,
            mask: 1,
            value: 0,
        }),
    },
};

/// MMC0 (`mmc@1c0f000`), the microSD slot; its internal DMA uses physical addresses.
pub const MMC0: Device = Device {
    name: "mmc0",
    mmio: &[MemRange::new(0x01C0_F000, 0x1000)],
    interrupts: &[32 + 0x3c],
    dma_capable: true,
    reset: MMC_RESET,
};

/// MMC1 (`mmc@1c10000`), the SDIO Wi-Fi (RTL8723CS).
pub const MMC1: Device = Device {
    name: "mmc1",
    mmio: &[MemRange::new(0x01C1_0000, 0x1000)],
    interrupts: &[32 + 0x3d],
    dma_capable: true,
    reset: MMC_RESET,
};

/// MMC2 (`mmc@1c11000`), the eMMC: one owner. The default layout gives it to neither cell
/// (both boot from their initrd), so a layout can name it for the cell that should own storage.
pub const EMMC: Device = Device {
    name: "emmc",
    mmio: &[MemRange::new(0x01C1_1000, 0x1000)],
    interrupts: &[32 + 0x3e],
    dma_capable: true,
    reset: MMC_RESET,
};

/// UART1 (`serial@1c28400`), the Bluetooth half of the RTL8723CS.
pub const UART1: Device = Device {
    name: "uart1",
    mmio: &[MemRange::new(0x01C2_8400, 0x400)],
    interrupts: &[32 + 1],
    dma_capable: false,
    reset: UART_RESET,
};

/// UART3 (`serial@1c28c00`), the modem's (Quectel EG25-G) serial line.
pub const UART3: Device = Device {
    name: "uart3",
    mmio: &[MemRange::new(0x01C2_8C00, 0x400)],
    interrupts: &[32 + 3],
    dma_capable: false,
    reset: UART_RESET,
};

/// The USB OTG controller (`usb@1c19000`, `allwinner,sun8i-a33-musb`). Counted as DMA-capable:
/// cellvisor cannot rule out that it masters memory. Its reset is in the CCU: none to trust.
pub const USB_OTG: Device = Device {
    name: "usb-otg",
    mmio: &[MemRange::new(0x01C1_9000, 0x400)],
    interrupts: &[32 + 0x47],
    dma_capable: true,
    reset: DeviceReset::None,
};

/// EHCI1 (`usb@1c1b000`), the USB 2.0 host port of the modem. Its HCRESET must only be set
/// after the controller has halted (EHCI 1.0, 2.3.1), a sequence of two writes and a wait that a
/// single register write cannot express: no reset the board can trust.
pub const EHCI1: Device = Device {
    name: "ehci1",
    mmio: &[MemRange::new(0x01C1_B000, 0x100)],
    interrupts: &[32 + 0x4a],
    dma_capable: true,
    reset: DeviceReset::None,
};

/// OHCI1 (`usb@1c1b400`), the modem port's full/low-speed companion. Reset: HcCommandStatus
/// (offset 8) HCR (bit 0), which the controller clears within 10 µs (OHCI 1.0a, 7.1.3).
pub const OHCI1: Device = Device {
    name: "ohci1",
    mmio: &[MemRange::new(0x01C1_B400, 0x100)],
    interrupts: &[32 + 0x4b],
    dma_capable: true,
    reset: DeviceReset::RegisterWrite {
        window: 0,
        offset: 0x8,
        value: 1,
        settled: Some(RegisterMatch {
            offset: 0x8,
            mask: 1,
            value: 0,
        }),
    },
};

/// The analog/digital audio codec (`codec@1c22e00`). It does no DMA itself (its samples move
/// through the A64's DMA engine, which cellvisor keeps) and it has no reset register of its own;
/// as it cannot write memory the board accepts restarting its cell without one.
pub const AUDIO_CODEC: Device = Device {
    name: "audio-codec",
    mmio: &[MemRange::new(0x01C2_2E00, 0x600)],
    interrupts: &[32 + 0x1c],
    dma_capable: false,
    reset: DeviceReset::UnsafeAccepted,
};

/// A controller cellvisor keeps for itself: every device depends on it, so no cell may own it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeptController {
    /// The name a layout might wrongly use for it.
    pub name: &'static str,
    /// Its register window (from the DTB).
    pub registers: MemRange,
}

/// The shared controllers: none of them is a [`Device`] of [`BOARD`], so validation refuses a
/// cell that names one.
pub const KEPT_CONTROLLERS: &[KeptController] = &[
    KeptController {
        name: "ccu",
        registers: MemRange::new(0x01C2_0000, 0x400),
    },
    KeptController {
        name: "pinctrl",
        registers: MemRange::new(0x01C2_0800, 0x400),
    },
    KeptController {
        name: "watchdog",
        registers: MemRange::new(0x01C2_0CA0, 0x20),
    },
    KeptController {
        name: "r-intc",
        registers: MemRange::new(0x01F0_0C00, 0x400),
    },
    KeptController {
        name: "r-rsb",
        registers: MemRange::new(0x01F0_3400, 0x400),
    },
    KeptController {
        name: "dma-engine",
        registers: MemRange::new(0x01C0_2000, 0x1000),
    },
    KeptController {
        name: "usb-phy",
        registers: MemRange::new(0x01C1_9400, 0x14),
    },
];

/// What the prompt may do to a cell that owns a device without a trusted reset: stop it (it
/// stays off), never restart or wipe it (cellvisor would refuse anyway, its RAM cannot be made
/// clean).
const STOP_ONLY: CellPolicy = CellPolicy {
    may_restart: false,
    may_stop: true,
    may_wipe: false,
    el2_counting: El2Counting::Prohibited,
};

/// `linux`: a *personal* Linux (CPUs 0-1, 1 GiB at 0x5000_0000) with the display, GPU, touch,
/// audio, microSD, Wi-Fi, Bluetooth and USB OTG, and a *corporate* Linux (CPUs 2-3, 768 MiB at
/// 0x9000_0000) with the modem (EHCI1, OHCI1, UART3). Both within the first 2 GiB of DRAM, both
/// identity-mapped and trusted with all memory (their devices' DMA is unconfined).
pub const LINUX_CELLS: Layout = Layout {
    name: "linux",
    cpu_sharing: None,
    channel: &[],
    cells: &[
        CellConfig {
            name: "personal",
            cpus: &[0, 1],
            memory: &[CellMemory {
                physical: MemRange::new(0x5000_0000, GIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &[
                "display-engine",
                "tcon0",
                "dsi",
                "mali",
                "i2c0",
                "audio-codec",
                "mmc0",
                "mmc1",
                "uart1",
                "usb-otg",
            ],
            kernel: "linux",
            initrd: Some("initrd-personal"),
            bootargs: LINUX_BOOTARGS,
            policy: STOP_ONLY,
            trusted_with_all_memory: true,
        },
        CellConfig {
            name: "corporate",
            cpus: &[2, 3],
            memory: &[CellMemory {
                physical: MemRange::new(0x9000_0000, 768 * MIB),
                placement: GuestPlacement::Identity,
            }],
            devices: &["ehci1", "ohci1", "uart3"],
            kernel: "linux",
            initrd: Some("initrd-corporate"),
            bootargs: LINUX_BOOTARGS,
            policy: STOP_ONLY,
            trusted_with_all_memory: true,
        },
    ],
};

/// The board.
pub const BOARD: Board = Board {
    name: "pinephone",
    hypervisor_memory: HYPERVISOR_MEMORY,
    devices: &[
        DISPLAY_ENGINE,
        TCON0,
        DSI,
        MALI,
        I2C0,
        MMC0,
        MMC1,
        EMMC,
        UART1,
        UART3,
        USB_OTG,
        EHCI1,
        OHCI1,
        AUDIO_CODEC,
    ],
    pci: None,
    smmu: None,
    layouts: &[LINUX_CELLS],
    when_all_cells_off: AllCellsOff::PowerOff,
    // Both cells run Linux: anything but an arm64 Image is refused.
    raw_binaries: false,
    fault_loop: FaultLoop::Stop { after: 64 },
    display: None,
    channel: None,
};
