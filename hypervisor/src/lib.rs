//! cellvisor: a static-partitioning EL2 microvisor that splits one Arm SoC into isolated cells.
//!
//! Everything outside [`arch`] is plain Rust that builds and is unit-tested on the host; only
//! `arch::aarch64` holds assembly and system-register access, and [`drivers`] (which builds on the
//! host too) the MMIO drivers of the physical GIC and console UART.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod console;
pub mod core;
pub mod dev;
pub mod display;
pub mod drivers;
pub mod mem;
pub mod setup;
pub mod smmu;

pub use cellvisor_board as board;

/// Declares the board a hypervisor image is built for. A board crate's `main.rs` calls this once.
#[macro_export]
macro_rules! image {
    ($board:expr) => {
        /// The board this image was built for; called by cellvisor's boot path.
        #[unsafe(no_mangle)]
        pub fn cellvisor_board() -> &'static $crate::board::Board {
            static BOARD: $crate::board::Board = $board;
            &BOARD
        }
    };
}
