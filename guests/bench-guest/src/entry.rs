//! Entry points, per-vCPU stacks and the EL1 exception vector table: the shared assembly of
//! [`cellvisor_guest_support::guest_entry!`], set up for this guest, which reads the virtual
//! counter at its entry and at every exception vector.

pub use cellvisor_guest_support::entry::{ExceptionFrame, secondary_entry};

/// vCPUs the guest uses; a vCPU with a higher MPIDR_EL1.Aff0 parks itself.
pub const MAX_VCPUS: usize = 2;
/// Stack bytes per vCPU.
pub const STACK_SIZE: usize = 64 * 1024;

cellvisor_guest_support::guest_entry! {
    max_vcpus: MAX_VCPUS,
    stack_size: STACK_SIZE,
    counter_at_entry: true,
    relocate: false,
    primary_main: crate::primary_main,
    secondary_main: crate::secondary_main,
    exception_handler: crate::exception::handle,
}
