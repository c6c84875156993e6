//! Validation of a board layout against the platform: board + platform -> partition or a typed error.
#![forbid(unsafe_code)]

use alloc::string::String;
use core::fmt::Write;

use crate::board::Board;

/// A human-readable summary of a board's layouts (used by the board binary on the host).
pub fn describe_board(board: &Board) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "board {}", board.name);
    for layout in board.layouts {
        let _ = writeln!(out, "layout {}", layout.name);
        for cell in layout.cells {
            let ram: u64 = cell.memory.iter().map(|region| region.physical.size).sum();
            let _ = writeln!(
                out,
                "  {:<10} cpus {:?} ram {} MiB kernel {}",
                cell.name,
                cell.cpus,
                ram >> 20,
                cell.kernel
            );
        }
    }
    out
}
