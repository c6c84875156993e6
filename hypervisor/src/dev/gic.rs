//! GICv3 architecture facts shared by the platform reader, the physical GIC driver and the vGIC:
//! INTID ranges and the redistributor frame layout.
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
