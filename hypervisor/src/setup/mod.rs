//! Boot-time setup, all pure and host-tested: the platform DT, layout validation, the guest bundle (and
//! the cpio format it comes in), image placement and each cell's generated device tree.

pub mod bundle;
pub mod cpio;
pub mod display_fdt;
pub mod guest_fdt;
pub mod image;
pub mod partition;
pub mod platform;
