//! What cellvisor's bare-metal EL1 Rust guests (`test-guest`, `bench-guest`) share: the entry
//! points and exception vector table ([`guest_entry!`]), the transmit-only PL011 console
//! ([`println!`]), the `/chosen/bootargs` reader ([`fdt`]), SMCCC calls through HVC ([`smccc`]),
//! time from the virtual counter ([`timer`]), single-instruction device accesses ([`mmio`]), and
//! the PCI disk driver: configuration space through ECAM ([`pci`]), virtio-blk over virtio-pci
//! ([`virtio_pci`]) and its virtqueue ([`virtqueue`]).
//!
//! aarch64 only: the guests build it for `aarch64-unknown-none` (`cargo xtask build`).
#![no_std]

pub mod console;
pub mod entry;
pub mod fdt;
pub mod mmio;
pub mod pci;
pub mod smccc;
pub mod timer;
pub mod virtio_pci;
pub mod virtqueue;
