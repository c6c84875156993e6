//! The per-cell device bus: the devices cellvisor emulates or forwards for a cell.

pub mod mmio;
pub mod passthrough;
pub mod vgic;
pub mod vuart;
