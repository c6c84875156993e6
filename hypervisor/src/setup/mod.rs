//! Boot-time setup, all pure and host-tested: the platform DT, layout validation, the guest bundle,
//! image placement and each cell's generated device tree.

pub mod bundle;
pub mod guest_fdt;
pub mod image;
pub mod partition;
pub mod platform;
