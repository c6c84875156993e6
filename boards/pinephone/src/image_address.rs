//! Where U-Boot loads the hypervisor image: read by the board description and by `build.rs`, which
//! links the image there.

/// Start of DRAM on the Allwinner A64 (TF-A's BL31 lives in SRAM A2, not in DRAM).
pub const RAM_BASE: u64 = 0x4000_0000;
/// The image's arm64 `text_offset`: its offset from the 2 MiB-aligned RAM base. U-Boot's sunxi
/// default `kernel_addr_r` is 0x4008_0000, and booti places the image at the 2 MiB-aligned base
/// below it plus this offset, so the image stays where it was loaded.
pub const TEXT_OFFSET: u64 = 0x8_0000;
/// Address the hypervisor image is linked at and U-Boot loads it to (`kernel_addr_r`).
pub const LOAD_ADDRESS: u64 = RAM_BASE + TEXT_OFFSET;
