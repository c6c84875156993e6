//! The register accesses both GIC drivers (and their shared SPI configuration, `gic_spi`) make:
//! volatile loads and stores at addresses inside the platform GIC's frames.

use core::ptr::{read_volatile, write_volatile};

/// Reads the 32-bit register at `address`.
#[inline(always)]
pub(super) fn read32(address: usize) -> u32 {
    // SAFETY: the GIC drivers are only constructed over the platform's GIC frames, mapped as
    // device memory (or plain memory standing in for them in host tests), and every offset they
    // add lies inside the frame it is added to.
    unsafe { read_volatile(address as *const u32) }
}

/// Writes the 32-bit register at `address`.
#[inline(always)]
pub(super) fn write32(address: usize, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u32, value) }
}

/// Reads the byte register at `address` (byte access is architecturally permitted to the
/// ITARGETSR registers, the only ones read this way).
pub(super) fn read8(address: usize) -> u8 {
    // SAFETY: as in `read32`.
    unsafe { read_volatile(address as *const u8) }
}

/// Writes the byte register at `address` (byte access is architecturally permitted to the
/// IPRIORITYR and ITARGETSR registers, the only ones written this way).
pub(super) fn write8(address: usize, value: u8) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u8, value) }
}

/// Reads the 64-bit register at `address` (GICv3's IROUTER and TYPER).
pub(super) fn read64(address: usize) -> u64 {
    // SAFETY: as in `read32`.
    unsafe { read_volatile(address as *const u64) }
}

/// Writes the 64-bit register at `address` (GICv3's IROUTER).
pub(super) fn write64(address: usize, value: u64) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u64, value) }
}
