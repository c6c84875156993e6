//! What cellvisor's bare-metal EL1 Rust guests (`test-guest`, `bench-guest`) share: the entry
//! points and exception vector table ([`guest_entry!`]), the transmit-only PL011 console
//! ([`println!`]), the `/chosen/bootargs` reader ([`fdt`]) and SMCCC calls through HVC ([`smccc`]).
//!
//! aarch64 only: the guests build it for `aarch64-unknown-none` (`cargo xtask build`).
#![no_std]

pub mod console;
pub mod entry;
pub mod fdt;
pub mod smccc;
