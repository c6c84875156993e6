//! The fuzz targets, one module per cellvisor decoder.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod console;
pub mod esr;
pub mod guest_fdt;
mod guest_ram;
pub mod image;
pub mod inject;
pub mod mmio;
pub mod partition;
pub mod platform;
pub mod smccc;
pub mod vgic;
pub mod virtio;
pub mod vsock;
pub mod vuart;

/// The QEMU `virt` (GICv3, 4 CPUs, 2 GiB) platform device tree the hypervisor's tests use.
pub const QEMU_VIRT_DTB: &[u8] =
    include_bytes!("../../../hypervisor/tests/data/qemu-virt-gicv3.dtb");

/// The parsed [`QEMU_VIRT_DTB`], parsed once.
pub fn qemu_platform() -> &'static cellvisor::setup::platform::Platform {
    static PLATFORM: std::sync::OnceLock<cellvisor::setup::platform::Platform> =
        std::sync::OnceLock::new();
    PLATFORM.get_or_init(|| {
        cellvisor::setup::platform::parse(QEMU_VIRT_DTB).expect("the QEMU virt fixture parses")
    })
}
