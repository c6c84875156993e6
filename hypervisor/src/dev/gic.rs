//! GIC architecture facts shared by the platform reader, the physical GIC drivers and the vGIC:
//! INTID ranges, the GICv3 redistributor frame layout and the GICv2 frames a cell sees.
#![forbid(unsafe_code)]

/// First INTID of the private peripheral interrupts (SGIs are 0-15; `interrupts = <1 N flags>` in a
/// device tree is INTID 16 + N).
pub const PPI_BASE_INTID: u32 = 16;
/// First INTID of the shared peripheral interrupts (`interrupts = <0 N flags>` is INTID 32 + N).
pub const SPI_BASE_INTID: u32 = 32;
/// One past the last SPI: INTIDs 1020-1023 are special (spurious and friends).
pub const SPI_END_INTID: u32 = 1020;
/// Size of one redistributor: its `RD_base` frame then its `SGI_base` frame (no VLPI frames).
pub const REDISTRIBUTOR_STRIDE: u64 = 0x2_0000;
/// Offset of the `SGI_base` frame inside a redistributor.
pub const SGI_FRAME_OFFSET: u64 = 0x1_0000;
/// Size of the GICv2 distributor frame a cell sees (a GIC-400's `GICD` is 4 KiB).
pub const GICV2_DISTRIBUTOR_SIZE: u64 = 0x1000;
/// Size of the GICv2 CPU interface a cell sees (`GICC` of a GIC-400, 8 KiB: `GICC_DIR` is at
/// 0x1000), backed by the same amount of the hardware `GICV` frame.
pub const GICV2_CPU_INTERFACE_SIZE: u64 = 0x2000;
