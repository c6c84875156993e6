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
        // A platform device's DMA reaches all memory when it has any; a PCI function's only
        // without an SMMU in front of its host.
        let unconfined_dma = match (board.device(name), board.pci_function(name), &board.pci) {
            (Some(device), _, _) => device.dma_capable,
            (None, Some(_), Some(host)) => !(host.behind_smmu && board.smmu.is_some()),
            _ => {
                return Err(LayoutError::UnknownDevice {
                    site,
                    cell: cell.name,
                    device: name,
                });
            }
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

/// A platform node whose `reg` holds `address` and which is compatible with `compatible`.
fn has_node(platform: &Platform, address: u64, compatible: &str) -> bool {
    platform
        .devices
        .iter()
        .any(|node| node.contains(address) && node.compatible.iter().any(|name| name == compatible))
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
        for &name in cell.config.devices {
            let Some(function) = host.function(name) else {
                continue;
            };
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
    if !has_node(platform, host.ecam.base, "pci-host-ecam-generic") {
        return Err(LayoutError::PciHostMissing {
            site,
            ecam: host.ecam.base,
        });
    }
    if let (true, Some(smmu)) = (host.behind_smmu, &board.smmu)
        && !has_node(platform, smmu.registers.base, "arm,smmu-v3")
    {
        return Err(LayoutError::SmmuMissing {
            site,
            registers: smmu.registers.base,
        });
    }
    Ok(())
}
