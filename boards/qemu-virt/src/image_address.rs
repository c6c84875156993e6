//! Where QEMU loads the hypervisor image: read by the board description and by `build.rs`, which
//! links the image there.

/// Start of RAM on QEMU `virt`; QEMU and booti place the image at this 2 MiB-aligned base plus
/// [`TEXT_OFFSET`].
pub const RAM_BASE: u64 = 0x4000_0000;
/// The image's arm64 `text_offset`: its offset from the 2 MiB-aligned RAM base.
pub const TEXT_OFFSET: u64 = 0x20_0000;
/// Address the hypervisor image is linked at and QEMU loads it to (RAM base + 2 MiB).
pub const LOAD_ADDRESS: u64 = RAM_BASE + TEXT_OFFSET;
