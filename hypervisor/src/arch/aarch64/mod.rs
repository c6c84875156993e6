//! aarch64 EL2 glue: boot, exception vectors, world switch, MMU, caches, the GIC CPU interface,
//! the guest's timers as EL2 sees them, the guest's trap configuration ([`traps`]) and PSCI calls
//! to firmware. The only place with
//! assembly and system registers; the physical GIC's MMIO and the console UART are in
//! [`crate::drivers`].

pub mod boot;
pub mod cache;
pub mod context;
pub mod cpu;
pub mod device;
pub mod entry;
pub mod fields;
pub mod gic;
pub mod heap;
pub mod input;
pub mod memory;
pub mod mmu;
pub mod psci;
pub mod reset;
pub mod screen;
pub mod smmu;
pub mod sysreg;
pub mod timer;
pub mod traps;

/// Size of each physical CPU's EL2 stack (keep in sync with image.ld).
pub const STACK_SIZE: usize = 0x10000;
/// Each CPU's stack slot: an unmapped guard of [`STACK_SIZE`] below its stack (keep in sync with
/// image.ld). A power of two, so an address's half of its slot is one bit.
pub const STACK_SLOT: usize = 2 * STACK_SIZE;
const _: () = assert!(STACK_SIZE.is_power_of_two());
/// Physical CPUs cellvisor can drive (keep in sync with image.ld).
pub const MAX_CPUS: usize = 8;
/// Size of the EL2 heap (keep in sync with image.ld).
pub const HEAP_SIZE: usize = 0x80_0000;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    boot::halt_with_message(format_args!("cellvisor panic: {info}"))
}
