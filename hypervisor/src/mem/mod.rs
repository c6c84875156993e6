//! Memory: opaque address types and ranges, and the per-cell stage-2 tables.

pub mod addr;
pub mod range;
pub mod stage2;

/// The translation granule cellvisor uses everywhere (stage 1 at EL2, stage 2, device pages).
pub const PAGE_SIZE: u64 = 4096;
