//! Validation of a board layout against the platform: board + platform -> partition or a typed error.
//!
//! [`validate`] runs once at boot, before any cell exists. It picks the layout, checks every CPU,
//! RAM region and device against the platform device tree and against each other, and returns a
//! [`Partition`]: the plan the rest of cellvisor builds cells from. Every way a layout can be wrong
//! is one [`LayoutError`] variant whose message names the conflict and the fix.
#![forbid(unsafe_code)]

mod channel;
mod cpus;
mod devices;
mod error;
mod memory;
mod plan;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::board::{Board, Layout};
use crate::setup::platform::Platform;

pub use channel::CHANNEL_WINDOW;
pub use error::{LayoutError, LayoutSite};
pub use plan::{
    CellPlan, ChannelPlan, MAX_CELLS, Partition, RamRegion, Reserved, ReservedKind, VcpuPlan,
};

use cpus::{check_sharing, plan_vcpus};
use devices::{check_devices, check_passthrough, check_pci};
use memory::{
    check_cell_memory, check_guest_address_space, check_hypervisor_memory,
    check_memory_against_earlier_cells,
};

/// Checks the chosen layout of `board` against `platform` and the ranges in use at boot.
///
/// `layout` is the `cellvisor.layout=` value, `None` for the board's default (first) layout.
pub fn validate(
    board: &Board,
    layout: Option<&str>,
    platform: &Platform,
    reserved: &[Reserved],
) -> Result<Partition, LayoutError> {
    let layout = choose_layout(board, layout)?;
    let site = LayoutSite {
        board: board.name,
        layout: layout.name,
    };
    check_hypervisor_memory(board, platform, reserved)?;
    if layout.cells.len() > MAX_CELLS {
        return Err(LayoutError::TooManyCells {
            site,
            count: layout.cells.len(),
        });
    }

    for (position, cell) in layout.cells.iter().enumerate() {
        if layout.cells[..position]
            .iter()
            .any(|earlier| earlier.name == cell.name)
        {
            return Err(LayoutError::DuplicateCellName {
                site,
                name: cell.name,
            });
        }
    }

    let mut cpu_owners: Vec<Vec<&'static str>> = alloc::vec![Vec::new(); platform.cpus.len()];
    let shared = layout.cpu_sharing.is_some();
    let mut cells = Vec::with_capacity(layout.cells.len());
    for (index, cell) in layout.cells.iter().enumerate() {
        let vcpus = plan_vcpus(site, cell, platform, &mut cpu_owners, shared)?;
        check_cell_memory(site, board, cell, platform)?;
        check_memory_against_earlier_cells(site, cell, &layout.cells[..index])?;
        let on_channel = !layout.channel.is_empty()
            && board
                .channel
                .is_some_and(|channel| channel.cid_of(cell.name).is_some());
        check_guest_address_space(site, board, cell, platform, vcpus.len(), on_channel)?;
        check_devices(site, board, cell, &layout.cells[..index])?;
        cells.push(CellPlan {
            index,
            name: cell.name,
            config: cell,
            // `index < MAX_CELLS` (255), so `index + 1` fits in a u16 and is never 0.
            vmid: u16::try_from(index + 1).unwrap_or(u16::MAX),
            vcpus,
            memory: cell.memory.iter().map(RamRegion::from_board).collect(),
            raw_binaries: board.raw_binaries,
        });
    }
    check_sharing(site, layout, &cpu_owners)?;
    let channel = channel::plan_channel(site, board, layout)?;
    let partition = Partition {
        layout: layout.name,
        cells,
        cpu_sharing: layout.cpu_sharing,
        channel,
    };
    check_passthrough(site, board, &partition, platform)?;
    check_pci(site, board, &partition, platform)?;
    Ok(partition)
}

fn choose_layout(board: &Board, requested: Option<&str>) -> Result<&'static Layout, LayoutError> {
    if board.layouts.is_empty() {
        return Err(LayoutError::NoLayouts { board: board.name });
    }
    match requested {
        None => board
            .default_layout()
            .ok_or(LayoutError::NoLayouts { board: board.name }),
        Some(name) => board
            .layout(name)
            .ok_or_else(|| LayoutError::UnknownLayout {
                board: board.name,
                requested: String::from(name),
                available: board.layouts,
            }),
    }
}

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

/// The real QEMU virt board data, compiled into the tests: cellvisor cannot depend on the board
/// crate, which depends on cellvisor.
#[cfg(test)]
#[allow(unused_attributes, dead_code)]
#[path = "../../../../boards/qemu-virt/src/lib.rs"]
pub(crate) mod qemu_virt;

#[cfg(test)]
mod tests;
