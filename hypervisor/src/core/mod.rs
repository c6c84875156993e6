//! The core: the run loop and its exit handlers, the cells and their lifecycle, SMCCC and PSCI.

pub mod cell;
pub mod esr;
pub mod inject;
pub mod psci;
pub mod run;
pub mod smccc;
