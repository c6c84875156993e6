//! Device register accesses as single plain loads and stores of 8, 16 and 32 bits.
//!
//! One `ldr`/`str` (never with writeback, which the compiler may pick for a volatile access in a
//! loop): a trapped access must carry a valid syndrome, and cellvisor refuses one without it with
//! an abort. Callers pass device registers in windows the guest has (the GIC, a passthrough
//! device's registers or BARs, the PCI configuration space); an access touches no Rust object.

/// Reads the byte register at `address`.
pub fn read8(address: u64) -> u8 {
    let value: u32;
    // SAFETY: `address` is a device register the guest has (module documentation); the load
    // touches no Rust object, and its side effects (e.g. a virtio ISR read clears it) are what
    // the caller asks for.
    unsafe {
        core::arch::asm!("ldrb {value:w}, [{address}]", address = in(reg) address,
            value = out(reg) value, options(nostack, preserves_flags));
    }
    value as u8
}

/// Writes the byte register at `address`.
pub fn write8(address: u64, value: u8) {
    // SAFETY: as for `read8`.
    unsafe {
        core::arch::asm!("strb {value:w}, [{address}]", address = in(reg) address,
            value = in(reg) u32::from(value), options(nostack, preserves_flags));
    }
}

/// Reads the 16-bit register at `address`.
pub fn read16(address: u64) -> u16 {
    let value: u32;
    // SAFETY: as for `read8`.
    unsafe {
        core::arch::asm!("ldrh {value:w}, [{address}]", address = in(reg) address,
            value = out(reg) value, options(nostack, preserves_flags));
    }
    value as u16
}

/// Writes the 16-bit register at `address`.
pub fn write16(address: u64, value: u16) {
    // SAFETY: as for `read8`.
    unsafe {
        core::arch::asm!("strh {value:w}, [{address}]", address = in(reg) address,
            value = in(reg) u32::from(value), options(nostack, preserves_flags));
    }
}

/// Reads the 32-bit register at `address`.
pub fn read32(address: u64) -> u32 {
    let value: u32;
    // SAFETY: as for `read8`.
    unsafe {
        core::arch::asm!("ldr {value:w}, [{address}]", address = in(reg) address,
            value = out(reg) value, options(nostack, preserves_flags));
    }
    value
}

/// Writes the 32-bit register at `address`.
pub fn write32(address: u64, value: u32) {
    // SAFETY: as for `read8`.
    unsafe {
        core::arch::asm!("str {value:w}, [{address}]", address = in(reg) address,
            value = in(reg) value, options(nostack, preserves_flags));
    }
}
