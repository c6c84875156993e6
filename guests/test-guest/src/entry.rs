//! Entry points, per-vCPU stacks and the EL1 exception vector table: the shared assembly of
//! [`cellvisor_guest_support::guest_entry!`], set up for this guest.

pub use cellvisor_guest_support::entry::{ExceptionFrame, secondary_entry};

/// Most vCPUs a cell may give this guest; a vCPU with a higher MPIDR_EL1.Aff0 parks itself.
pub const MAX_VCPUS: usize = 4;
/// Stack bytes per vCPU.
pub const STACK_SIZE: usize = 64 * 1024;

cellvisor_guest_support::guest_entry! {
    max_vcpus: MAX_VCPUS,
    stack_size: STACK_SIZE,
    counter_at_entry: false,
    relocate: true,
    // An arm64 Image, so that plain QEMU's `-kernel` passes it a device tree with the `-append`
    // bootargs (see main.rs); cellvisor places it where it placed the raw binary.
    image_header: true,
    // Saves the FP/SIMD state as entered before any Rust code runs (see `residue`).
    primary_main: crate::residue::entry,
    secondary_main: crate::secondary_main,
    exception_handler: crate::exception::handle,
}
