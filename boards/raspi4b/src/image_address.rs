//! Where QEMU's `raspi4b` (and the Pi's boot firmware, for an arm64 `Image` named in
//! `config.txt`) loads the hypervisor image: read by the board description and by `build.rs`,
//! which links the image there.

/// Start of RAM on the BCM2711: physical address 0.
pub const RAM_BASE: u64 = 0;
/// The image's arm64 `text_offset`: its offset from the 2 MiB-aligned RAM base. 2 MiB keeps the
/// image clear of the first page, where the boot stub's spin table waits for the secondary CPUs.
pub const TEXT_OFFSET: u64 = 0x20_0000;
/// Address the hypervisor image is linked at and loaded to.
pub const LOAD_ADDRESS: u64 = RAM_BASE + TEXT_OFFSET;
