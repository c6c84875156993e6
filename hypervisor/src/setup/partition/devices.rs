//! Device checks: each board device and PCI function is given to one cell at most and can be
//! passed through, and DMA that no SMMU confines goes only to a cell trusted with all memory.

use crate::board::{Board, CellConfig, GuestPlacement, MemRange};
use crate::dev::passthrough::PassthroughPlan;
use crate::mem::PAGE_SIZE;
use crate::setup::platform::Platform;

use super::error::{LayoutError, LayoutSite};
use super::plan::Partition;

pub(super) fn check_devices(
    site: LayoutSite,
    board: &Board,
    cell: &'static CellConfig,
    earlier_cells: &'static [CellConfig],
) -> Result<(), LayoutError> {
    for (position, &name) in cell.devices.iter().enumerate() {
        let Some(unconfined_dma) = board.dma_unconfined(name) else {
            return Err(LayoutError::UnknownDevice {
                site,
                cell: cell.name,
                device: name,
            });
        };
        let earlier_owner = earlier_cells
            .iter()
            .find(|other| other.devices.contains(&name))
            .map(|other| other.name)
            .or_else(|| {
                cell.devices[..position]
                    .contains(&name)
                    .then_some(cell.name)
            });
        if let Some(first_cell) = earlier_owner {
            return Err(LayoutError::DeviceAssignedTwice {
                site,
                device: name,
                first_cell,
                second_cell: cell.name,
            });
        }
        let identity = cell
            .memory
            .iter()
            .all(|region| region.placement == GuestPlacement::Identity);
        if unconfined_dma && !identity {
            return Err(LayoutError::DmaWithoutIdentity {
                site,
                cell: cell.name,
                device: name,
            });
        }
        if unconfined_dma && !cell.trusted_with_all_memory {
            return Err(LayoutError::UnconfinedDma {
                site,
                cell: cell.name,
                device: name,
            });
        }
    }
    Ok(())
}

/// Every cell's passthrough plan can be made and its devices are nodes of the platform tree.
pub(super) fn check_passthrough(
    site: LayoutSite,
    board: &Board,
    partition: &Partition,
    platform: &Platform,
) -> Result<(), LayoutError> {
    for cell in &partition.cells {
        PassthroughPlan::for_cell(board, partition, cell)
            .and_then(|plan| plan.device_nodes(platform))
            .map_err(|error| LayoutError::Passthrough {
                site,
                cell: cell.name,
                error,
            })?;
    }
    Ok(())
}

/// The PCI functions the layout passes through: their BAR windows lie in the host's memory window,
/// page-aligned and apart; the host (and, for DMA behind it, the SMMU) is in the platform tree.
pub(super) fn check_pci(
    site: LayoutSite,
    board: &Board,
    partition: &Partition,
    platform: &Platform,
) -> Result<(), LayoutError> {
    let Some(host) = &board.pci else {
        return Ok(());
    };
    let mut windows: alloc::vec::Vec<(&'static str, MemRange)> = alloc::vec::Vec::new();
    for cell in &partition.cells {
        for function in board.pci_functions_of(cell.config) {
            let name = function.name;
            let window = function.bar_window;
            let aligned = window.base % PAGE_SIZE == 0 && window.size % PAGE_SIZE == 0;
            if !aligned || window.size == 0 || !host.memory_window.contains_range(&window) {
                return Err(LayoutError::PciWindow {
                    site,
                    function: name,
                    window,
                    host_window: host.memory_window,
                });
            }
            if let Some((other, _)) = windows.iter().find(|(_, other)| other.overlaps(&window)) {
                return Err(LayoutError::PciWindowsOverlap {
                    site,
                    first: other,
                    second: name,
                });
            }
            windows.push((name, window));
        }
    }
    if windows.is_empty() {
        return Ok(());
    }
    if !platform.has_node_at(host.ecam.base, "pci-host-ecam-generic") {
        return Err(LayoutError::PciHostMissing {
            site,
            ecam: host.ecam.base,
        });
    }
    if let (true, Some(smmu)) = (host.behind_smmu, &board.smmu)
        && !platform.has_node_at(smmu.registers.base, "arm,smmu-v3")
    {
        return Err(LayoutError::SmmuMissing {
            site,
            registers: smmu.registers.base,
        });
    }
    Ok(())
}
